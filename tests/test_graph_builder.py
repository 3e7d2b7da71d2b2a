"""The link-dictionary builder: counts against hand counts, the slides' dictionaries, the format's
features (several inputs and outputs, nested and shared blocks, string nodes), JSON round trip."""
import json
import math

import keras
import numpy as np
import pytest

import visionfw
from visionfw.errors import HyperparameterError
from visionfw.graph.printer import layer_table


def count(model, trainable=False):
    ws = model.trainable_weights if trainable else model.weights
    return sum(int(np.prod(w.shape)) for w in ws)


# ---- parameter counts of the defaults, worked out by hand -------------------------------------

def test_srresnet_x4_parameter_count_matches_hand_count():
    # head: 9*9*3*64 + 64 = 15,616; PReLU per channel: 64
    # residual block: 2 convs (3*3*64*64 + 64 = 36,928 each) + 2 BN (4*64 = 256 each) + PReLU 64
    #   = 74,432; 16 blocks = 1,190,912
    # body conv + BN: 36,928 + 256 = 37,184
    # up-sampling stage: conv 3*3*64*256 + 256 = 147,712 + PReLU 64 = 147,776; two stages 295,552
    # tail: 9*9*64*3 + 3 = 15,555
    # total 15,616 + 64 + 1,190,912 + 37,184 + 295,552 + 15,555 = 1,554,883
    # BN moving mean/variance are not trainable: 33 BN layers * 128 = 4,224 -> 1,550,659 trainable
    model = visionfw.build_model("srresnet", scale=4, compile=False)
    assert count(model) == 1_554_883
    assert count(model, trainable=True) == 1_550_659
    # without BatchNorm: 1,554,883 - 33 * 256 = 1,546,435
    plain = visionfw.build_model("srresnet", scale=4, batchnorm=False, compile=False)
    assert count(plain) == 1_546_435
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in _all_layers(plain))


def test_vdsr_parameter_count_matches_hand_count():
    # first 3*3*3*64 + 64 = 1,792; 18 hidden 3*3*64*64 + 64 = 36,928 each = 664,704;
    # last 3*3*64*3 + 3 = 1,731; total 668,227
    model = visionfw.build_model("vdsr", compile=False)
    assert count(model) == 668_227
    convs = [l for l in _all_layers(model) if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 20


def test_srresnet_structure_per_channel_prelu_and_pixel_shuffle():
    model = visionfw.build_model("srresnet", scale=4, compile=False)
    layers = _all_layers(model)
    prelus = [l for l in layers if isinstance(l, keras.layers.PReLU)]
    assert prelus and all(tuple(l.shared_axes) == (1, 2) for l in prelus)
    assert all(l.alpha.shape == (1, 1, 64) for l in prelus)
    shuffles = [l for l in layers if type(l).__name__ == "PixelShuffle"]
    assert [l.scale for l in shuffles] == [2, 2]
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in layers) == 33


def test_srresnet_activation_reaches_the_head_and_every_block():
    # B=2, 8 filters, x4 (two up-sampling stages), by hand:
    # head 9*9*3*8 + 8 = 1,952; residual block 2 * (3*3*8*8 + 8) + 2 * 32 (BN) = 1,232 each;
    # body conv + BN 584 + 32; up-sampling stage 3*3*8*32 + 32 = 2,336 each; tail 9*9*8*3 + 3
    # = 1,947: 1,952 + 2,464 + 616 + 4,672 + 1,947 = 11,651, plus 8 per PReLU (head, 2 blocks,
    # 2 stages: 40) = 11,691 by default
    hp = {"B": 2, "filters": 8, "scale": 4}
    default = visionfw.build_model("srresnet", compile=False, **hp)
    assert count(default) == 11_691
    assert sum(isinstance(l, keras.layers.PReLU) for l in _all_layers(default)) == 5
    leaky = visionfw.build_model("srresnet", activation="leakyrelu", compile=False, **hp)
    assert count(leaky) == 11_651
    layers = _all_layers(leaky)
    assert not any(isinstance(l, keras.layers.PReLU) for l in layers)
    slopes = [l.negative_slope for l in layers if isinstance(l, keras.layers.LeakyReLU)]
    assert slopes == pytest.approx([0.2] * 5)
    relu = visionfw.build_model("srresnet", activation="relu", compile=False, **hp)
    assert count(relu) == 11_651
    assert sum(isinstance(l, keras.layers.ReLU) for l in _all_layers(relu)) == 5
    # the default dictionary does not name the blocks' activation: it is the one checkpoints hold
    assert all("activation" not in p for p in visionfw.model_dict("srresnet")["block_par"])
    with pytest.raises(HyperparameterError,
                       match=r"unknown activation 'tanh'; valid: gelu, leakyrelu, prelu, relu"):
        visionfw.model_dict("srresnet", activation="tanh")


def test_block_with_an_unknown_activation_names_its_link():
    d = {"name": "b", "convo": [(0, 1)], "convo_par": {"filters": 8, "kernel_size": 3},
         "block": [(1, 2)], "block_sub": "gen_residual_block",
         "block_par": {"activation": "swish"}}
    with pytest.raises(visionfw.LinkError, match=r"^block\[0\] \(1 -> 2\): .*unknown activation "
                                                 r"'swish'; valid: gelu, leakyrelu"):
        visionfw.build(d)


def _all_layers(model):
    out = []
    for layer in model.layers:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
    return out


# ---- the slides' dictionaries, with only repr('same') turned into 'same' ---------------------

def slides_srresnet(B=16, scale=4):
    U = math.ceil(math.log2(scale))
    return {'name': 'SRResNet',
            'convo': [(0, 1), (B + 2, B + 3), (B + 5 + U, B + 6 + U)],
            'convo_sub': ['Conv2D', 'Conv2D', 'Conv2D'],
            'convo_par': [{'filters': 64, 'kernel_size': (9, 9), 'padding': 'same'},
                          {'filters': 64, 'kernel_size': (3, 3), 'padding': 'same'},
                          {'filters': 3, 'kernel_size': (9, 9), 'padding': 'same'}],
            'aactv': [(1, 2)], 'aactv_sub': ['PReLU'], 'aactv_par': [{'shared_axes': (1, 2)}],
            'block': [(2 + i, 3 + i) for i in range(B)] + [(B + 5 + i, B + 6 + i) for i in range(U)],
            'block_sub': ['gen_residual_block'] * B + ['gen_last_block'] * U,
            'btnrm': [(B + 3, B + 4)],
            'merge': [(2, B + 4, B + 5)], 'merge_sub': ['Add'],
            }


def slides_vdsr(D=20):
    # node 0 is the bicubic-up-sampled image; convolutions and ReLUs alternate; global residual
    return {'name': 'VDSR',
            'convo': [(2 * i, 2 * i + 1) for i in range(D)],
            'convo_sub': ['Conv2D'] * D,
            'convo_par': [{'filters': 64, 'kernel_size': (3, 3), 'padding': 'same'}] * (D - 1)
                         + [{'filters': 3, 'kernel_size': (3, 3), 'padding': 'same'}],
            'aactv': [(2 * i + 1, 2 * i + 2) for i in range(D - 1)],
            'aactv_sub': ['Activation'] * (D - 1),
            'aactv_par': [{'activation': 'relu'}] * (D - 1),
            'merge': [(0, 2 * D - 1, 2 * D)], 'merge_sub': ['Add'],
            }


def test_slides_srresnet_builds_unchanged():
    model = visionfw.build(slides_srresnet())
    assert count(model) == 1_554_883
    y = model(np.zeros((1, 6, 7, 3), "float32"))
    assert y.shape == (1, 24, 28, 3)


def test_slides_vdsr_builds_unchanged():
    model = visionfw.build(slides_vdsr())
    assert count(model) == 668_227
    x = np.random.default_rng(0).random((1, 9, 11, 3), dtype=np.float32)
    assert model(x).shape == x.shape


def test_registered_srresnet_equals_slides_layout():
    # the registered definition computes exactly what the slides' dictionary computes
    a = visionfw.build(slides_srresnet(B=2, scale=2))
    b = visionfw.build_model("srresnet", B=2, scale=2, compile=False)
    assert count(a) == count(b)
    b.set_weights(a.get_weights())
    x = np.random.default_rng(1).random((2, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(a(x), b(x), atol=1e-5)


# ---- format features -----------------------------------------------------------------------

def two_input_dict():
    """An LR image and a kernel code, stretched and concatenated; two outputs (SR and a code)."""
    return {
        "name": "conditioned",
        "inputs": [{"node": "lr", "shape": [None, None, 3]}, {"node": "code", "shape": [4]}],
        "outputs": ["sr", "pred"],
        "dense": [("code", "c1")], "dense_par": [{"units": 4}],
        "stretch": [("lr", "c1", "cmap")], "stretch_sub": ["code_map"],
        "cat": [("lr", "cmap", "x")], "cat_sub": ["Concatenate"],
        "convo": [("x", "f"), ("f", "sr")],
        "convo_par": [{"filters": 8, "kernel_size": 3, "padding": "same"},
                      {"filters": 3, "kernel_size": 3, "padding": "same"}],
        "pool": [("f", "pred")], "pool_sub": ["GlobalAveragePooling2D"],
    }


@visionfw.register_block
def code_map(image, code):
    """Stretch a (B, t) code over the image's height and width: (B, H, W, t)."""
    ones = keras.ops.ones_like(image[..., :1])
    return ones * code[:, None, None, :]


def test_several_named_inputs_and_outputs():
    model = visionfw.build(two_input_dict())
    assert [t.name for t in model.inputs] == ["lr", "code"]
    rng = np.random.default_rng(2)
    sr, pred = model([rng.random((2, 5, 6, 3), dtype=np.float32),
                      rng.random((2, 4), dtype=np.float32)])
    assert sr.shape == (2, 5, 6, 3) and pred.shape == (2, 8)


def test_nested_dictionary_block_and_registered_model_as_block():
    inner = {"name": "twoconv", "inputs": [{"node": 0, "shape": [None, None, 8]}],
             "convo": [(0, 1), (1, 2)],
             "convo_par": [{"filters": 8, "kernel_size": 3, "padding": "same"}] * 2,
             "merge": [(0, 2, 3)]}
    outer = {"name": "outer",
             "convo": [(0, 1), (3, 4)],
             "convo_par": [{"filters": 8, "kernel_size": 3, "padding": "same"},
                           {"filters": 3, "kernel_size": 3, "padding": "same"}],
             "block": [(1, 2), (2, 3)], "block_sub": [inner, "bicubic"],
             "block_par": [None, {"scale": 2, "channels": 8}]}
    model = visionfw.build(outer)
    x = np.random.default_rng(3).random((1, 5, 7, 3), dtype=np.float32)
    assert model(x).shape == (1, 10, 14, 3)
    # conv 3->8 (224) + inner 2 * (3*3*8*8 + 8) = 1,168 + conv 8->3 (219)
    assert count(model) == 224 + 1168 + 219


def test_nested_block_errors_name_the_path():
    inner = {"name": "bad", "convo": [(0, 1)], "convo_sub": ["Conv2d"]}
    outer = {"name": "outer", "block": [(0, 1)], "block_sub": [inner]}
    with pytest.raises(visionfw.LinkError, match=r"block\[0\] bad > convo\[0\] \(0 -> 1\).*"
                                                 r"'Conv2d'.*did you mean 'Conv2D'"):
        visionfw.build(outer)


def test_shared_layers_reuse_weights():
    d = {"name": "shared",
         "convo": [(0, 1), (1, 2), (2, 3)],
         "convo_par": [{"filters": 3, "kernel_size": 3, "padding": "same"}] * 3,
         "convo_share": ["same", "same", None]}
    model = visionfw.build(d)
    assert count(model) == 2 * (3 * 3 * 3 * 3 + 3)
    rows, totals = layer_table(d)
    assert sum(r["count"] for r in rows) == totals["total"]
    assert rows[1]["type"].endswith("(shared)")


def test_string_node_ids_and_default_families():
    d = {"name": "s", "convo": [("in", "a"), ("b", "out")], "aactv": [("a", "b")],
         "inputs": ["in"],
         "convo_par": [{"filters": 4, "kernel_size": 3, "padding": "same"},
                       {"filters": 3, "kernel_size": 1}]}
    model = visionfw.build(d)
    assert model.output.shape[-1] == 3


def test_json_round_trip_gives_identical_models(tmp_path):
    for d in (visionfw.model_dict("srresnet", B=2, filters=8, scale=2), two_input_dict()):
        text = visionfw.dict_to_json(d)
        back = visionfw.dict_from_json(text)
        assert visionfw.dict_to_json(back) == text
        path = tmp_path / "m.json"
        visionfw.save_dict(d, path)
        assert visionfw.load_dict(path) == json.loads(text)
        a, b = visionfw.build(d), visionfw.build(back)
        b.set_weights(a.get_weights())
        assert [w.path for w in a.weights] == [w.path for w in b.weights]
        inputs = [np.random.default_rng(4).random((1,) + tuple(8 if s is None else s
                                                               for s in t.shape[1:]),
                                                  dtype=np.float32) for t in a.inputs]
        inputs = inputs[0] if len(inputs) == 1 else inputs
        for ya, yb in zip(keras.tree.flatten(a(inputs)), keras.tree.flatten(b(inputs))):
            np.testing.assert_array_equal(ya, yb)


def test_json_refuses_live_objects():
    d = {"name": "x", "convo": [(0, 1)],
         "convo_par": [{"filters": 3, "kernel_size": 3, "kernel_initializer":
                        keras.initializers.Zeros()}]}
    with pytest.raises(visionfw.LinkError, match=r"convo\[0\].*cannot be written to JSON"):
        visionfw.dict_to_json(d)


def test_layer_table_rows_and_totals():
    d = visionfw.model_dict("srresnet", B=2, filters=8, scale=2)
    rows, totals = layer_table(d)
    assert [r["family"] for r in rows][:3] == ["convo[0]", "aactv[0]", "block[0]"]
    assert sum(r["count"] for r in rows) == totals["total"]
    assert rows[-1]["output_shape"] == "(?, 128, 128, 3)"      # a 64x64 LR image, x2
    # a residual block of 8 filters: 2 * (3*3*8*8 + 8) + 2 * 32 (BN) + 8 (PReLU) = 1,240
    assert rows[2]["count"] == 1240
