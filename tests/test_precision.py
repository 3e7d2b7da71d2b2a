"""--precision bf16: every registered model and visionfw layer builds and runs under Keras'
mixed_bfloat16 policy, and gives its float32 output within bfloat16's precision."""
import re

import numpy as np
import pytest

import visionfw
from tests.test_models import lr_batch, tiny
from visionfw import runtime


@pytest.fixture
def bf16():
    previous = runtime.set_precision("bf16")
    try:
        yield
    finally:
        import keras

        keras.mixed_precision.set_global_policy(previous)


def outputs(model, xs):
    from visionfw.inference import Predictor

    pred = Predictor(model)
    xs = xs if isinstance(xs, list) else [xs]
    return np.asarray(pred._fn(*xs))


@pytest.mark.parametrize("name", visionfw.model_names())
def test_every_model_under_bf16_matches_fp32(name, bf16):
    import keras

    keras.mixed_precision.set_global_policy("float32")
    ref_model = visionfw.build_model(name, compile=False, **tiny(name))
    xs = lr_batch(ref_model)
    reference = outputs(ref_model, xs)
    runtime.set_precision("bf16")
    model = visionfw.build_model(name, compile=False, **tiny(name))
    assert model.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.weights)
    model.set_weights(ref_model.get_weights())
    got = outputs(model, xs)
    assert got.dtype == np.float32 and got.shape == reference.shape
    # bfloat16 keeps 8 significant bits: the output is within 3% of its own range (of its
    # magnitude for a kernel, whose taps all lie close together)
    span = max(float(np.ptp(reference)), float(np.abs(reference).max())) or 1.0
    assert np.abs(got - reference).max() <= 0.03 * span + 1e-3, (name, span)
    assert np.abs(got - reference).mean() <= 0.005 * span + 1e-4


def test_sft_keeps_its_own_policy_for_its_branches(bf16):
    import keras

    from visionfw.layers import SFT

    keras.mixed_precision.set_global_policy("float32")
    layer = SFT(hidden=4, dtype="mixed_bfloat16")
    x = np.ones((1, 4, 4, 2), np.float32)
    assert layer([x, x]).dtype == "bfloat16"
    assert all(sub.compute_dtype == "bfloat16"
               for sub in (layer.mul_conv1, layer.mul_conv2, layer.add_conv1, layer.add_conv2))


def traced_ops(model, xs):
    """The operations of one traced inference call: ``[(type, name, input dtypes, output
    dtypes)]``."""
    import tensorflow as tf

    fn = tf.function(lambda *a: model(list(a) if len(a) > 1 else a[0], training=False))
    graph = fn.get_concrete_function(*xs).graph
    return [(op.type, op.name, [t.dtype.name for t in op.inputs],
             [t.dtype.name for t in op.outputs]) for op in graph.get_operations()]


def test_nested_blocks_take_bf16_feature_maps_without_casting_them(bf16):
    """A block's inputs take the dtype of what its parent feeds it: under bf16 a block's
    feature map is not cast to float32 on the way in and back in its first layer (before, each
    SFTMD or SRResNet block did both, and their gradients again)."""
    import tensorflow as tf

    for name, hp, xs in [
            ("sftmd", {"nb": 2, "nf": 8}, [tf.random.uniform([1, 8, 8, 3]),
                                           tf.random.uniform([1, 10])]),
            ("srresnet", {"B": 2, "filters": 8}, [tf.random.uniform([1, 8, 8, 3])])]:
        model = visionfw.build_model(name, compile=False, **hp)
        ops = traced_ops(model, xs)
        blocks = [op for op in ops if "/block_" in op[1]]
        assert blocks, name
        # the block's own casts (its layers' casts, e.g. SFT's sigmoid, are theirs)
        widening = [op[1] for op in blocks if op[0] == "Cast"
                    and re.search(r"/block_\d+(_\d+)?/Cast(_\d+)?$", op[1])
                    and op[2] == ["bfloat16"] and op[3] == ["float32"]]
        assert widening == [], (name, widening)


def test_sft_sigmoid_runs_in_float32_under_bf16(bf16):
    """TensorFlow's CPU logistic has no vector code for bfloat16: SFT takes its sigmoid in
    float32 and gives the product's factor back in bfloat16."""
    import tensorflow as tf

    model = visionfw.build_model("sftmd", nb=1, nf=8, compile=False)
    ops = traced_ops(model, [tf.random.uniform([1, 8, 8, 3]), tf.random.uniform([1, 10])])
    sigmoids = [op for op in ops if op[0] == "Sigmoid"]
    assert len(sigmoids) == 3                       # one per SFT layer: two in the block, one after
    assert all(op[2] == ["float32"] for op in sigmoids), sigmoids


def test_visionfw_layers_under_bf16(bf16):
    import keras

    from visionfw.layers import SFT, CodeMap, PixelShuffle, Scale
    from visionfw.resize import BicubicResize

    x = np.random.default_rng(0).random((1, 8, 8, 4), np.float32)
    code = np.random.default_rng(1).random((1, 3), np.float32)
    for layer, args in [(PixelShuffle(2), x), (Scale(0.5), x), (BicubicResize(scale=2), x),
                        (CodeMap(), [x, code]), (SFT(hidden=4), [x, np.ones((1, 8, 8, 3),
                                                                            np.float32)])]:
        out = layer(args)
        # the bicubic resize is an exact image operation: float32 under any policy
        expected = "float32" if isinstance(layer, BicubicResize) else "bfloat16"
        assert out.dtype == expected, type(layer).__name__
        keras.mixed_precision.set_global_policy("float32")
        config = {k: v for k, v in layer.get_config().items() if k != "dtype"}
        fresh = type(layer).from_config(config)
        ref = fresh(args)
        if layer.weights:
            fresh.set_weights(layer.get_weights())
            ref = fresh(args)
        runtime.set_precision("bf16")
        np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(ref), atol=0.03,
                                   rtol=0.02)


def test_bf16_training_step_and_precision_flag(tmp_path):
    from tests.train_utils import make_trainer, tiny_config, write_images

    images = write_images(tmp_path / "imgs", n=2, size=(40, 40))
    try:
        trainer = make_trainer(tiny_config(tmp_path / "run", images, precision="bf16", steps=3))
        assert trainer.recipe.main_network().compute_dtype == "bfloat16"
        before = [np.array(v) for v in trainer.recipe.main_network().trainable_variables]
        result = trainer.fit()
        after = trainer.recipe.main_network().trainable_variables
        assert result["step"] == 3
        assert all(v.dtype == "float32" for v in after)
        assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, after))
    finally:
        import keras

        keras.mixed_precision.set_global_policy("float32")
    from visionfw.errors import HyperparameterError

    with pytest.raises(HyperparameterError, match="--precision 'fp16'"):
        runtime.set_precision("fp16")


def test_global_skip_and_bicubic_stay_float32_under_bf16(bf16):
    """A VDSR whose residual branch gives zero returns its bicubic input exactly under bf16:
    the up-sampling, the first convolution (it reads the picture) and the output merge run in
    float32, the other convolutions in bfloat16."""
    import keras

    from visionfw.resize import imresize

    model = visionfw.build_model("vdsr", compile=False, depth=3, filters=8, scale=2)
    dtypes = {layer.name: layer.compute_dtype for layer in model.layers}
    assert dtypes["merge_0"] == "float32" and dtypes["resize_0"] == "float32"
    assert dtypes["convo_0"] == "float32"
    assert dtypes["convo_1"] == dtypes["convo_2"] == "bfloat16"
    last = model.get_layer("convo_2")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    x = np.random.default_rng(3).random((1, 13, 11, 3)).astype(np.float32)
    got = np.asarray(outputs(model, x))
    keras.mixed_precision.set_global_policy("float32")
    want = np.asarray(imresize(x, scale=2))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)    # bfloat16 would be off by ~2e-3


def test_the_layer_that_reads_the_picture_runs_in_float32(bf16):
    """A 1x1 convolution with weight 1 on the input image returns it exactly under bf16 (cast
    to bfloat16 first, a value such as 0.5 + 1/1024 would lose its last bits); only the links
    that read the picture are float32, and only under a mixed policy."""
    import keras

    d = {"name": "t", "inputs": [{"node": 0, "shape": [None, None, 1]}],
         "convo": [(0, 1), (1, 2)], "convo_par": [{"filters": 1, "kernel_size": 1,
                                                   "use_bias": False}] * 2}
    model = visionfw.build(d)
    assert [layer.compute_dtype for layer in model.layers[1:]] == ["float32", "bfloat16"]
    model.layers[1].set_weights([np.ones((1, 1, 1, 1), np.float32)])
    x = np.full((1, 2, 2, 1), 0.5 + 1 / 1024, np.float32)
    first = keras.Model(model.inputs, model.layers[1].output)
    assert float(np.asarray(first(x)).max()) == 0.5 + 1 / 1024
    keras.mixed_precision.set_global_policy("float32")
    assert {layer.compute_dtype for layer in visionfw.build(d).layers[1:]} == {"float32"}


def test_links_of_vectors_run_in_float32_under_bf16(bf16):
    """USRNet's hyper-parameter network (dense layers on the noise level and the scale) and
    the alpha/beta it hands to the float32 data step are float32 under bf16, so they equal the
    fp32 network's to the last bit; the ResUNet prior keeps the policy."""
    import keras

    hp = {"iterations": 2, "nc": 8, "nb": 1, "levels": 2, "hidden": 8}
    model = visionfw.build_model("usrnet", compile=False, **hp)
    dtypes = {layer.name: layer.compute_dtype for layer in model.layers}
    vector_links = [n for n in dtypes if n.startswith(("dense_", "offset_", "take_"))]
    assert len(vector_links) == 3 + 1 + 4
    assert {dtypes[n] for n in vector_links} == {"float32"}
    assert model.get_layer("prior_0").compute_dtype == "bfloat16"
    sigma = np.array([7.0, 25.0], np.float32)
    scale = np.array([4.0, 4.0], np.float32)
    hyper = keras.Model(model.inputs, model.get_layer("offset_0").output)
    got = np.asarray(hyper([np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 5, 5), np.float32),
                            scale, sigma]))
    weights = model.get_weights()
    keras.mixed_precision.set_global_policy("float32")
    ref_model = visionfw.build_model("usrnet", compile=False, **hp)
    ref_model.set_weights(weights)
    ref = keras.Model(ref_model.inputs, ref_model.get_layer("offset_0").output)
    want = np.asarray(ref([np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 5, 5), np.float32),
                           scale, sigma]))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    rounded = np.asarray(keras.ops.cast(keras.ops.cast(want, "bfloat16"), "float32"))
    assert not np.array_equal(rounded, want)            # what a bfloat16 dense layer gives


def test_a_code_map_is_not_the_picture_under_bf16(bf16):
    """SFTMD stretches its code over the LR image's size (CodeMap reads the picture only for
    its height and width): the SFT layer after the blocks keeps the bf16 policy as the ones
    inside them, while the first convolution, which reads the image, is float32."""
    model = visionfw.build_model("sftmd", compile=False, **tiny("sftmd"))
    sft = [layer for layer in model.layers if layer.__class__.__name__ == "SFT"]
    blocks = [layer for layer in model.layers if layer.name.startswith("block_")]
    assert len(sft) == 1 and blocks
    assert sft[0].compute_dtype == "bfloat16"
    inner = [sub for block in blocks for sub in block.layers if sub.__class__.__name__ == "SFT"]
    assert inner and {sub.compute_dtype for sub in inner} == {"bfloat16"}
    first_conv = next(layer for layer in model.layers if layer.name.startswith("convo_"))
    assert first_conv.compute_dtype == "float32"
