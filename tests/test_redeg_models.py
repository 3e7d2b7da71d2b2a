"""ReDegNet's networks at tiny sizes: the modulated convolution, PixelNorm and the spectral
norm against NumPy, the zero-start encoder skips, the order the images are concatenated in,
the projection score, shapes at two sizes, one-line errors and save/load."""
import math

import numpy as np
import pytest

import visionfw
from visionfw.errors import HyperparameterError

TINY_DEG = {"omega": 16, "nf": 8, "size": 32}
TINY_SYN = {"omega": 16, "nf": 8, "mapping": 2, "levels": 2, "w_dim": 16}
TINY_DISC = {"omega": 16, "nf": 8, "size": 32}


# ---------------------------------------------------------------- NumPy references

def bilinear_up2(x):
    """x2 bilinear resize with half-pixel centres, by loops: output pixel o samples input
    position (o + 0.5) / 2 - 0.5, clamped to the image (the edge sample repeated)."""
    n, h, w, c = x.shape

    def taps(o, size):
        src = min(max((o + 0.5) / 2 - 0.5, 0.0), size - 1.0)
        i0 = int(math.floor(src))
        return i0, min(i0 + 1, size - 1), src - i0

    out = np.zeros((n, 2 * h, 2 * w, c))
    for r in range(2 * h):
        r0, r1, tr = taps(r, h)
        for q in range(2 * w):
            q0, q1, tq = taps(q, w)
            top = (1 - tq) * x[:, r0, q0] + tq * x[:, r0, q1]
            bottom = (1 - tq) * x[:, r1, q0] + tq * x[:, r1, q1]
            out[:, r, q] = (1 - tr) * top + tr * bottom
    return out


def modulated_conv(x, w, kernel, style_a, style_b, bias=None, demodulate=True,
                   upsample=False):
    """One modulated kernel per image, built explicitly (the grouped-convolution form), and
    a 'same' correlation by loops over output pixels."""
    if upsample:
        x = bilinear_up2(x)
    n, h, wd, cin = x.shape
    k = kernel.shape[0]
    p = k // 2
    out = np.zeros((n, h, wd, kernel.shape[-1]))
    for i in range(n):
        s = w[i] @ style_a + style_b
        k_i = kernel / math.sqrt(cin * k * k) * s[None, None, :, None]
        if demodulate:
            k_i = k_i / np.sqrt((k_i ** 2).sum(axis=(0, 1, 2)) + 1e-8)
        xp = np.pad(x[i], ((p, p), (p, p), (0, 0)))
        for r in range(h):
            for c in range(wd):
                out[i, r, c] = np.einsum("abi,abio->o", xp[r:r + k, c:c + k], k_i)
    return out if bias is None else out + bias


# ---------------------------------------------------------------- the layers

def test_bilinear_x2_against_numpy_and_a_hand_computed_row():
    from visionfw.style_layers import BilinearUp2x

    row = np.array([0.0, 1.0, 5.0]).reshape(1, 1, 3, 1)
    np.testing.assert_allclose(bilinear_up2(row)[0, 0, :, 0], [0, 0.25, 0.75, 2, 4, 5])
    x = np.random.default_rng(9).normal(size=(2, 3, 5, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(BilinearUp2x()(x)), bilinear_up2(x), atol=1e-6)


@pytest.mark.parametrize("demodulate,upsample,use_bias,k",
                         [(True, False, False, 3), (False, False, True, 1),
                          (True, True, False, 3), (False, True, True, 3)])
def test_modulated_conv_against_numpy(demodulate, upsample, use_bias, k):
    from visionfw.style_layers import ModulatedConv2D

    rng = np.random.default_rng(k + 2 * demodulate + 4 * upsample)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    w = rng.normal(size=(2, 4)).astype(np.float32)
    layer = ModulatedConv2D(4, k, demodulate=demodulate, upsample=upsample, use_bias=use_bias)
    layer([x, w])
    kernel = rng.normal(size=(k, k, 3, 4))
    a, b = rng.normal(size=(4, 3)) * 0.5, 1 + 0.3 * rng.normal(size=3)
    weights = [kernel, a, b] + ([rng.normal(size=4)] if use_bias else [])
    layer.set_weights([v.astype(np.float32) for v in weights])
    got = np.asarray(layer([x, w]))
    want = modulated_conv(x, w, kernel, a, b, weights[3] if use_bias else None, demodulate,
                          upsample)
    assert got.shape == ((2, 10, 12, 4) if upsample else (2, 5, 6, 4))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if demodulate:        # demodulated: a style scaled by a constant changes nothing
        layer.set_weights([v.astype(np.float32) for v in (kernel, 3 * a, 3 * b)])
        np.testing.assert_allclose(np.asarray(layer([x, w])), got, rtol=1e-4, atol=1e-5)
    assert ModulatedConv2D.from_config(layer.get_config()).get_config() == layer.get_config()


def test_modulated_conv_starts_with_style_bias_one():
    from visionfw.style_layers import ModulatedConv2D

    layer = ModulatedConv2D(2, 3)
    layer([np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 5), np.float32)])
    np.testing.assert_array_equal(layer.style_bias_weight.numpy(), np.ones(3))
    assert layer.style_kernel.shape == (5, 3) and layer.kernel.shape == (3, 3, 3, 2)


def test_synnet_styles_start_with_the_official_small_uniform_bias():
    """SynNet's modulated convolutions start their style bias as PyTorch's linear layer does
    (uniform within 1 / sqrt(w_dim)), not at one: every bias inside that bound, spread over it,
    and the layer's config says None so a rebuilt SynNet draws it the same way."""
    import keras

    from visionfw.style_layers import ModulatedConv2D

    keras.utils.set_random_seed(4)
    net = visionfw.build_model("redeg-synnet", omega=8, nf=8, mapping=2, levels=2, w_dim=16)
    layers = [layer for layer in net.layers if isinstance(layer, ModulatedConv2D)]
    assert len(layers) == 2 + 3 * 2        # coarsest block + RGB, then two blocks + RGB per level
    biases = np.concatenate([layer.style_bias_weight.numpy() for layer in layers])
    bound = 1 / math.sqrt(16)
    assert np.all(np.abs(biases) <= bound) and biases.std() > bound / 3
    assert all(layer.get_config()["style_bias"] is None for layer in layers)


def test_pixel_norm_against_numpy():
    from visionfw.style_layers import PixelNorm

    x = np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32) * [[1], [10], [0.01]]
    want = x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(np.asarray(PixelNorm()(x)), want, rtol=1e-5)
    # unit root mean square, but for a vector small enough for the epsilon to show
    rms = np.sqrt((np.asarray(PixelNorm()(x)) ** 2).mean(axis=1))
    np.testing.assert_allclose(rms[:2], 1, rtol=1e-5)
    assert rms[2] < 1 - 5e-5


def test_spectral_conv_is_normalised_in_training_and_round_trips_its_config():
    from visionfw.style_layers import SNConv2D, SNDense

    x = np.random.default_rng(1).normal(size=(1, 6, 6, 3)).astype(np.float32)
    layer = SNConv2D(5, 3, strides=2, padding="valid")
    assert layer(x).shape == (1, 2, 2, 5)
    # a seeded kernel whose two largest singular values are apart (ratio 0.74; the
    # initialiser's own draw left the power method short of 1e-3 in about one run of twenty),
    # and enough power-method steps for that gap
    kernel = np.random.default_rng(10).normal(size=layer.kernel.shape).astype(np.float32)
    layer.kernel.assign(kernel * 7)
    for _ in range(50):
        layer(x, training=True)
    sigma = np.linalg.svd(layer.kernel.numpy().reshape(-1, 5), compute_uv=False)[0]
    assert sigma == pytest.approx(1.0, rel=1e-3)
    config = layer.get_config()
    assert "layer" not in config and config["strides"] == 2
    assert SNConv2D.from_config(config).get_config() == config
    dense = SNDense(3)
    dense(np.ones((2, 4), np.float32))
    assert SNDense.from_config(dense.get_config()).get_config() == dense.get_config()


def _kernel_datasets(path):
    import h5py

    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                     and len(obj.shape) == 4 else None)
    return names


def test_spectral_layers_save_each_kernel_once_and_read_files_that_held_it_twice(
        tmp_path, monkeypatch):
    import keras

    from visionfw.style_layers import SNConv2D, SNDense, _Spectral

    def model():
        x = keras.Input((8, 8, 3))
        y = SNConv2D(4, 3)(x)
        y = SNDense(2)(keras.layers.Flatten()(y))
        return keras.Model(x, y)

    rng = np.random.default_rng(3)
    src = model()
    for v in src.weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    want = [v.numpy() for v in src.weights]
    path = str(tmp_path / "new.weights.h5")
    src.save_weights(path)
    assert len(_kernel_datasets(path)) == 1          # the conv kernel, once
    dst = model()
    dst.load_weights(path)
    for a, b in zip(want, (v.numpy() for v in dst.weights)):
        np.testing.assert_array_equal(a, b)
    # the layout written before: the wrapper saved (kernel, vector_u) of its own as well
    monkeypatch.setattr(_Spectral, "save_own_variables",
                        keras.layers.Layer.save_own_variables)
    old = str(tmp_path / "old.weights.h5")
    src.save_weights(old)
    monkeypatch.undo()
    assert len(_kernel_datasets(old)) == 2
    dst = model()
    dst.load_weights(old)
    for a, b in zip(want, (v.numpy() for v in dst.weights)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- the networks

def n_trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_degnet_shapes_widths_and_parameter_count():
    for size in (16, 32):
        model = visionfw.build_model("redeg-degnet", **{**TINY_DEG, "size": size})
        x = np.random.default_rng(0).random((2, size, size, 3), np.float32)
        assert model.predict([x, x], verbose=0).shape == (2, 16)
    # nf 4, omega 8, 16x16: convs 6->4, 4->8 (stride 2), 8->16 (stride 2), dense 256->8, 8->8
    model = visionfw.build_model("redeg-degnet", omega=8, nf=4, size=16)
    want = (9 * 6 * 4 + 4) + (9 * 4 * 8 + 8) + (9 * 8 * 16 + 16) + (256 * 8 + 8) + (8 * 8 + 8)
    assert n_trainable(model) == want
    # widths double per halving and stop at 8 * nf: 64 -> 4 takes four halvings
    wide = visionfw.build_model("redeg-degnet", omega=8, nf=2, size=64)
    widths = [layer.kernel.shape[-1] for layer in wide.layers if type(layer).__name__ ==
              "SNConv2D"]
    assert widths == [2, 4, 8, 16, 16]


@pytest.mark.parametrize("name", ["redeg-degnet", "redeg-disc"])
@pytest.mark.parametrize("size", [48, 2, 0, 20])
def test_bad_size_is_a_one_line_error(name, size):
    with pytest.raises(HyperparameterError, match=rf"{name} needs size = 4 \* a power of two.*"
                                                  rf"got size={size}$") as info:
        visionfw.model_dict(name, size=size)
    assert "\n" not in str(info.value)


def test_degnet_takes_the_hq_image_first_in_its_concatenation():
    """As the official code: the first conv's input channels 0-2 see the HQ image."""
    model = visionfw.build_model("redeg-degnet", **TINY_DEG)
    first = model.get_layer("snconv_0")
    kernel = first.kernel.numpy()
    kernel[:, :, 3:] = 0                           # only the first three channels are seen
    first.kernel.assign(kernel)
    rng = np.random.default_rng(3)
    lq, hq, other = (rng.random((2, 32, 32, 3), np.float32) for _ in range(3))
    out = model.predict([lq, hq], verbose=0)
    np.testing.assert_allclose(model.predict([other, hq], verbose=0), out, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.predict([lq, other], verbose=0), out, atol=1e-4)


def test_discriminator_projection_score_against_numpy():
    """score = linear(h) + <h, embed(omega)>, h the pooled features; LQ first in its
    concatenation, as the official code."""
    import keras

    model = visionfw.build_model("redeg-disc", **TINY_DISC)
    for v in model.weights:                       # away from zero biases
        v.assign(v.numpy() + np.random.default_rng(4).normal(size=v.shape) * 0.05)
    rng = np.random.default_rng(5)
    lq, hq = rng.random((3, 32, 32, 3), np.float32), rng.random((3, 32, 32, 3), np.float32)
    code = rng.normal(size=(3, 16)).astype(np.float32)
    score = model.predict([lq, hq, code], verbose=0)
    assert score.shape == (3, 1)
    h = keras.Model(model.inputs, model.get_layer("pool_0").output)([lq, hq, code]).numpy()
    assert h.shape == (3, 64)                     # nf 8 doubled three times: 32 -> 4
    embed, linear = model.get_layer("sndense_0"), model.get_layer("sndense_1")
    e = code @ embed.layer.kernel.numpy() + embed.layer.bias.numpy()
    linear_part = h @ linear.layer.kernel.numpy() + linear.layer.bias.numpy()
    want = linear_part + (h * e).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(score, want, rtol=1e-4, atol=1e-5)
    # omega weighs the image features: another omega, another score
    assert not np.allclose(model.predict([lq, hq, -code], verbose=0), score, atol=1e-4)
    first = model.get_layer("snconv_0")
    kernel = first.kernel.numpy()
    kernel[:, :, 3:] = 0
    first.kernel.assign(kernel)
    np.testing.assert_allclose(model.predict([lq, rng.random(hq.shape, np.float32), code],
                                             verbose=0),
                               model.predict([lq, hq, code], verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(32, 32), (16, 24)])
def test_synnet_shapes_range_and_style(size):
    model = visionfw.build_model("redeg-synnet", **TINY_SYN)
    rng = np.random.default_rng(6)
    hq = rng.random((2, *size, 3), np.float32)
    code = rng.normal(size=(2, 16)).astype(np.float32)
    y = model.predict([hq, code], verbose=0)
    assert y.shape == (2, *size, 3)
    assert 0 <= y.min() and y.max() <= 1
    # the style is used: another Omega, another image
    assert np.abs(model.predict([hq, 3 * rng.normal(size=(2, 16)).astype(np.float32)],
                                verbose=0) - y).max() > 1e-3
    disc = visionfw.build_model("redeg-disc", **{**TINY_DISC, "size": size[0]})
    if size[0] == size[1]:
        assert disc.predict([y, hq, code], verbose=0).shape == (2, 1)


def test_synnet_encoder_skips_start_shut():
    """Every encoder map enters the generator through a learned scalar that starts at zero:
    fed from inputs of its own instead, those maps change nothing at the start, and change
    the output once their scalar opens."""
    import keras

    d = visionfw.model_dict("redeg-synnet", **TINY_SYN)
    model = visionfw.build(d)
    gains = [layer for layer in model.layers if type(layer).__name__ == "LearnedScale"]
    assert len(gains) == TINY_SYN["levels"] + 1
    assert all(float(layer.scale.numpy()) == 0.0 for layer in gains)
    # the same network with each scalar's input taken from an input of its own
    cut = {k: (list(v) if isinstance(v, list) else v) for k, v in d.items()}
    cut["inputs"] = list(d["inputs"])
    cut["meta"] = {**d["meta"], "probe_size": 0}     # the skips' sizes are not the image's
    for i, (_, out) in enumerate(d["gain"]):
        channels = model.get_layer(f"gain_{i}").input.shape[-1]
        cut["inputs"].append({"node": f"skip{i}", "shape": [None, None, channels]})
        cut["gain"][i] = (f"skip{i}", out)
    surgical = visionfw.build(cut)
    for layer in model.layers:
        if layer.weights:
            surgical.get_layer(layer.name).set_weights(layer.get_weights())
    rng = np.random.default_rng(7)
    hq = rng.random((1, 16, 16, 3), np.float32)
    code = rng.normal(size=(1, 16)).astype(np.float32)
    own = keras.Model(model.inputs, [g.input for g in gains])([hq, code])
    own = [np.asarray(f) for f in own]
    others = [rng.normal(size=f.shape).astype(np.float32) * 3 for f in own]
    y = model.predict([hq, code], verbose=0)
    np.testing.assert_allclose(surgical.predict([hq, code, *own], verbose=0), y, atol=1e-6)
    np.testing.assert_array_equal(surgical.predict([hq, code, *others], verbose=0),
                                  surgical.predict([hq, code, *own], verbose=0))
    for i, layer in enumerate(gains):
        surgical.get_layer(layer.name).scale.assign(0.5)
        assert not np.allclose(surgical.predict([hq, code, *others], verbose=0),
                               surgical.predict([hq, code, *own], verbose=0), atol=1e-4), i
        surgical.get_layer(layer.name).scale.assign(0.0)


def test_networks_round_trip_through_save_and_load(tmp_path):
    rng = np.random.default_rng(8)
    img = rng.random((2, 32, 32, 3), np.float32)
    code = rng.normal(size=(2, 16)).astype(np.float32)
    for name, hp, xs in [("redeg-degnet", TINY_DEG, [img, img[::-1]]),
                         ("redeg-synnet", TINY_SYN, [img, code]),
                         ("redeg-disc", TINY_DISC, [img, img[::-1], code])]:
        model = visionfw.build_model(name, **hp)
        model(xs, training=True)                  # the spectral norms' update runs
        for v in model.weights:
            v.assign(v.numpy() + rng.normal(size=v.shape).astype(np.float32) * 0.05)
        path = visionfw.save_model(model, tmp_path / f"{name}.weights.h5")
        again = visionfw.load_model(path)
        assert visionfw.read_spec(path)["model"] == name
        np.testing.assert_array_equal(model.predict(xs, verbose=0), again.predict(xs, verbose=0))


def test_residual_synnet_starts_as_the_hq_image_and_adds_half_the_rgb():
    """``residual=1``: the RGB heads start at zero, so the synthesis is the HQ image whatever
    Omega; with the plain SynNet's weights in them, it is the HQ image plus the plain
    synthesis minus a half ((2 hq - 1 + rgb + 1) / 2 = hq + (rgb + 1) / 2 - 1/2)."""
    rng = np.random.default_rng(9)
    hq = rng.random((2, 16, 24, 3), np.float32)
    code = 3 * rng.normal(size=(2, 16)).astype(np.float32)
    residual = visionfw.build_model("redeg-synnet", **TINY_SYN, residual=1)
    heads = [layer for layer in residual.layers if layer.name.startswith("resrgb")]
    assert len(heads) == TINY_SYN["levels"] + 1
    assert all(not np.any(layer.kernel.numpy()) for layer in heads)
    np.testing.assert_allclose(residual.predict([hq, code], verbose=0), hq, atol=1e-6)
    plain = visionfw.build_model("redeg-synnet", **TINY_SYN)
    for layer in plain.layers:
        if layer.weights:
            twin = layer.name.replace("torgb", "resrgb")
            residual.get_layer(twin).set_weights(layer.get_weights())
    np.testing.assert_allclose(residual.predict([hq, code], verbose=0),
                               hq + plain.predict([hq, code], verbose=0) - 0.5, atol=1e-5)


def test_residual_synnet_started_from_a_plain_one_keeps_its_heads_at_zero(tmp_path):
    """Fine-tuning a plain SynNet into a residual one (``--init-weights``): every layer but
    the RGB heads loads, and the synthesis still starts as the HQ image."""
    from visionfw.checkpoint import transfer_weights

    plain = visionfw.build_model("redeg-synnet", **TINY_SYN)
    path = visionfw.save_model(plain, tmp_path / "plain.weights.h5")
    residual = visionfw.build_model("redeg-synnet", **TINY_SYN, residual=1)
    report = transfer_weights(residual, path)
    assert sorted(report["not_in_file"]) == ["resrgb_0", "resrgb_1", "resrgb_2"]
    assert sorted(report["unused"]) == ["torgb_0", "torgb_1", "torgb_2"]
    assert not report["mismatched"]
    np.testing.assert_array_equal(residual.get_layer("modconv_0").kernel.numpy(),
                                  plain.get_layer("modconv_0").kernel.numpy())
    hq = np.random.default_rng(10).random((1, 16, 16, 3), np.float32)
    code = np.ones((1, 16), np.float32)
    np.testing.assert_allclose(residual.predict([hq, code], verbose=0), hq, atol=1e-6)


def test_residual_synnet_round_trips_and_refuses_other_values(tmp_path):
    model = visionfw.build_model("redeg-synnet", **TINY_SYN, residual=1)
    rng = np.random.default_rng(11)
    for v in model.weights:
        v.assign(v.numpy() + rng.normal(size=v.shape).astype(np.float32) * 0.05)
    path = visionfw.save_model(model, tmp_path / "res.weights.h5")
    again = visionfw.load_model(path)
    xs = [rng.random((1, 16, 16, 3), np.float32), rng.normal(size=(1, 16)).astype(np.float32)]
    np.testing.assert_array_equal(model.predict(xs, verbose=0), again.predict(xs, verbose=0))
    assert again.get_layer("resrgb_0").get_config()["zero_start"] is True
    with pytest.raises(HyperparameterError, match="residual 0 or 1"):
        visionfw.build_model("redeg-synnet", **TINY_SYN, residual=2)
