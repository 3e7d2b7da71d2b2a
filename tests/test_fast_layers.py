"""The faster stand-ins for Keras' Conv2D, BatchNormalization and PReLU that the names give in
a link dictionary: the blocked convolution against a numpy convolution, every layer against the
Keras layer it replaces (outputs, gradients, moving statistics), and the registry wiring."""
import numpy as np
import pytest

import visionfw
from visionfw import layers as L


def numpy_conv(x, k, padding):
    """Cross-correlation as tf.nn.conv2d computes it, stride 1, 'same' ((k-1)//2 before)."""
    n, h, w, _ = x.shape
    kh, kw, _, cout = k.shape
    if padding == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        xp = np.pad(x, [(0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)])
        ho, wo = h, w
    else:
        xp, ho, wo = x, h - kh + 1, w - kw + 1
    out = np.zeros((n, ho, wo, cout), np.float64)
    for u in range(kh):
        for v in range(kw):
            out += np.einsum("nhwc,cd->nhwd", xp[:, u:u + ho, v:v + wo, :], k[u, v])
    return out


@pytest.mark.parametrize("h,w,kh,kw,block,padding", [
    (13, 11, 9, 9, 2, "same"), (13, 11, 9, 9, 4, "same"), (5, 6, 9, 9, 4, "same"),
    (8, 9, 3, 3, 2, "valid"), (10, 7, 4, 2, 3, "same"), (12, 12, 5, 3, 2, "valid"),
    (7, 7, 6, 6, 3, "same"), (16, 9, 5, 5, 4, "valid")])
def test_blocked_conv_equals_numpy_convolution(h, w, kh, kw, block, padding):
    rng = np.random.default_rng(h * 100 + kh)
    x = rng.standard_normal((2, h, w, 5)).astype(np.float32)
    k = rng.standard_normal((kh, kw, 5, 3)).astype(np.float32)
    got = np.asarray(L.blocked_conv2d(x, k, block, padding))
    want = numpy_conv(x.astype(np.float64), k.astype(np.float64), padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)


def test_blocked_conv_gradients_and_unknown_sizes():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((2, 11, 14, 4)).astype(np.float32))
    k = tf.constant(rng.standard_normal((9, 9, 4, 3)).astype(np.float32))
    fn = tf.function(lambda x, k: L.blocked_conv2d(x, k, 4, "same"),
                     input_signature=[tf.TensorSpec([None, None, None, 4]),
                                      tf.TensorSpec([9, 9, 4, 3])])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, k])
        a, b = fn(x, k), tf.nn.conv2d(x, k, 1, "SAME")
        weight = tf.reshape(tf.range(tf.size(a), dtype=tf.float32) % 7.0, tf.shape(a))
        la, lb = tf.reduce_sum(a * weight), tf.reduce_sum(b * weight)
    for ga, gb in zip(tape.gradient(la, [x, k]), tape.gradient(lb, [x, k])):
        np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), atol=2e-3, rtol=1e-4)


def test_block_size_rule():
    assert L._block_size((9, 9), 3) == 4          # SRResNet's RGB tail
    assert L._block_size((5, 5), 8) == 2
    assert L._block_size((3, 3), 3) == 1          # measured: no gain at 3x3
    assert L._block_size((9, 9), 64) == 1
    assert L._block_size((9, 9), 1) == 4


@pytest.mark.parametrize("kernel,filters,padding", [(9, 3, "same"), (5, 2, "valid"),
                                                    (3, 3, "same")])
def test_conv2d_equals_keras_conv2d(kernel, filters, padding):
    import keras

    x = np.random.default_rng(2).random((2, 19, 17, 6)).astype(np.float32)
    ours = L.Conv2D(filters, kernel, padding=padding, activation="relu")
    ref = keras.layers.Conv2D(filters, kernel, padding=padding, activation="relu")
    ours.build(x.shape)
    ref.build(x.shape)
    weights = [np.random.default_rng(3).standard_normal(w.shape).astype(np.float32)
               for w in ref.get_weights()]
    ours.set_weights(weights)
    ref.set_weights(weights)
    assert [w.path.split("/")[-1] for w in ours.weights] == ["kernel", "bias"]
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-4, rtol=1e-5)


def test_conv2d_strided_and_dilated_keep_the_direct_form():
    for kw in ({"strides": 2}, {"dilation_rate": 2}):
        layer = L.Conv2D(3, 9, padding="same", **kw)
        assert layer._block() == 1


def _keras_pair(momentum=0.9):
    import keras

    return keras.layers.BatchNormalization(momentum=momentum), L.BatchNormalization(
        momentum=momentum)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_equals_keras(training):
    import tensorflow as tf

    rng = np.random.default_rng(4)
    x = (rng.random((4, 6, 5, 8)) * 3 + 1).astype(np.float32)
    ref, ours = _keras_pair()
    for layer in (ref, ours):
        layer.build(x.shape)
    weights = [rng.random(8).astype(np.float32) + 0.5 for _ in range(4)]
    ref.set_weights(weights)
    ours.set_weights(weights)
    out = {}
    for key, layer in (("ref", ref), ("ours", ours)):
        xx = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xx)
            y = layer(xx, training=training)
            loss = tf.reduce_sum(y * y[::-1])
        out[key] = (y, tape.gradient(loss, [xx] + layer.trainable_weights), layer.get_weights())
    np.testing.assert_allclose(out["ours"][0], out["ref"][0], atol=1e-5)
    for a, b in zip(out["ours"][1], out["ref"][1]):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    for a, b in zip(out["ours"][2], out["ref"][2]):     # moving mean and variance
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)
    if training:
        assert not np.allclose(out["ours"][2][2], weights[2])    # the moving mean moved


def test_batchnorm_falls_back_to_keras_where_it_cannot_fuse():
    x = np.random.default_rng(5).random((3, 7)).astype(np.float32)    # 2-D input
    ref, ours = _keras_pair()
    np.testing.assert_allclose(np.asarray(ours(x, training=True)),
                               np.asarray(ref(x, training=True)), atol=1e-5)


def test_prelu_equals_keras():
    import keras
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(6).standard_normal((2, 5, 5, 4)).astype(np.float32))
    ref, ours = keras.layers.PReLU(shared_axes=(1, 2)), L.PReLU(shared_axes=(1, 2))
    for layer in (ref, ours):
        layer.build(x.shape)
        layer.set_weights([np.array([[[0.25, -0.5, 1.5, 0.0]]], np.float32)])
    grads = []
    for layer in (ref, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.range(4, dtype=tf.float32))
        grads.append((y, *tape.gradient(loss, [x, layer.alpha])))
    for a, b in zip(*grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_dictionary_names_give_the_fast_layers(tmp_path):
    d = {"name": "t", "inputs": [{"node": 0, "shape": [None, None, 3]}],
         "convo": [(0, 1), (2, 3)], "convo_par": [{"filters": 8, "kernel_size": 3,
                                                   "padding": "same"},
                                                  {"filters": 3, "kernel_size": 9,
                                                   "padding": "same"}],
         "btnrm": [(1, 2)]}
    model = visionfw.build(d)
    kinds = {type(layer) for layer in model.layers}
    assert L.Conv2D in kinds and L.BatchNormalization in kinds
    srresnet = visionfw.build_model("srresnet", compile=False, B=1, filters=8, scale=2)
    inner = {type(layer) for block in srresnet.layers for layer in getattr(block, "layers", [])}
    assert {L.Conv2D, L.BatchNormalization, L.PReLU} <= inner | {type(x) for x in srresnet.layers}
    x = np.random.default_rng(7).random((1, 12, 12, 3)).astype(np.float32)
    path = tmp_path / "t.weights.h5"
    visionfw.save_model(model, path)
    again = visionfw.load_model(path, compile=False)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6)


def test_names_resolve_to_the_fast_layers_whatever_is_imported_first():
    """In a fresh process that imports only visionfw (the Keras layer loader runs before
    visionfw.layers is imported), the dictionary names still give visionfw's layers."""
    import subprocess
    import sys

    code = ("import visionfw\n"
            "m = visionfw.build_model('srresnet', compile=False, B=1, filters=8)\n"
            "names = {type(l).__module__ + '.' + type(l).__name__ for b in m.layers\n"
            "         for l in [b] + list(getattr(b, 'layers', []))}\n"
            "print(sorted(n for n in names if n.startswith('visionfw.layers')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    last = out.stdout.strip().splitlines()[-1]
    for name in ("Conv2D", "BatchNormalization", "PReLU"):
        assert f"visionfw.layers.{name}" in last, last
