"""visionfw.data_step (USRNet's closed-form data step) against dense NumPy linear algebra.

The reference builds the circular convolution K and the decimation S as explicit matrices,
straight from their definitions, and solves the normal equations with np.linalg.solve.
"""
import keras
import numpy as np
import pytest
import scipy.ndimage
import scipy.optimize
import tensorflow as tf

import visionfw.layers
from visionfw.data_step import USRNetDataStep, circular_blur_downsample, usrnet_data_step
from visionfw.graph.registry import NAMESPACE

# ---------------------------------------------------------------- NumPy reference


def conv_matrix(k, height, width):
    """K with (K x)[i, j] = sum_{a, b} k[a, b] x[(i + kh//2 - a) mod H, (j + kw//2 - b) mod W]
    on row-major flattened images."""
    kh, kw = k.shape
    n = height * width
    K = np.zeros((n, n))
    for i in range(height):
        for j in range(width):
            for a in range(kh):
                for b in range(kw):
                    src = ((i + kh // 2 - a) % height) * width + (j + kw // 2 - b) % width
                    K[i * width + j, src] += k[a, b]
    return K


def decimation_matrix(height, width, s):
    """S picking pixel (s*i, s*j) of a height x width image for every LR pixel (i, j)."""
    h, w = height // s, width // s
    S = np.zeros((h * w, height * width))
    for i in range(h):
        for j in range(w):
            S[i * w + j, (s * i) * width + s * j] = 1.0
    return S


def dense_solve(z, y, k, alpha, s):
    """Minimiser of ||y - S K x||^2 + alpha ||x - z||^2 for one (sH, sW, C) image."""
    height, width, channels = z.shape
    K = conv_matrix(k, height, width)
    S = decimation_matrix(height, width, s)
    A = K.T @ S.T @ S @ K + alpha * np.eye(height * width)
    rhs = K.T @ S.T @ y.reshape(-1, channels) + alpha * z.reshape(-1, channels)
    return np.linalg.solve(A, rhs).reshape(height, width, channels)


def dense_forward(x, k, s):
    height, width, channels = x.shape
    K = conv_matrix(k, height, width)
    S = decimation_matrix(height, width, s)
    return (S @ K @ x.reshape(-1, channels)).reshape(height // s, width // s, channels)


def rel_err(got, expected):
    return np.linalg.norm(np.asarray(got, np.float64) - expected) / np.linalg.norm(expected)


def random_kernels(rng, batch, kh, kw):
    k = rng.random((batch, kh, kw)) + 0.1
    return k / k.sum(axis=(1, 2), keepdims=True)


def random_problem(rng, batch, height, width, s, kh, kw, channels=3):
    z = rng.random((batch, height, width, channels))
    y = rng.random((batch, height // s, width // s, channels))
    k = random_kernels(rng, batch, kh, kw)
    alpha = rng.uniform(0.01, 1.0, batch)
    return z, y, k, alpha


def f32(*arrays):
    return [np.asarray(a, np.float32) for a in arrays]


def reference_batch(z, y, k, alpha, s):
    return np.stack([dense_solve(z[b], y[b], k[b], alpha[b], s) for b in range(len(z))])


# ---------------------------------------------------------------- the reference itself


@pytest.mark.parametrize("ksize", [(3, 3), (5, 3), (4, 4), (3, 4)])
def test_reference_conv_matrix_is_scipy_wrap_convolve(ksize):
    rng = np.random.default_rng(1)
    x = rng.random((6, 9))
    k = rng.random(ksize)
    got = (conv_matrix(k, 6, 9) @ x.ravel()).reshape(6, 9)
    np.testing.assert_allclose(got, scipy.ndimage.convolve(x, k, mode="wrap"), atol=1e-12)
    # A true convolution: the flipped kernel (correlation) gives something else.
    assert not np.allclose(got, scipy.ndimage.correlate(x, k, mode="wrap"))


# ---------------------------------------------------------------- against np.linalg.solve


CASES = [  # (sH, sW, s, kh, kw)
    (6, 6, 1, 3, 3),
    (8, 8, 2, 4, 4),
    (8, 8, 2, 5, 3),
    (6, 9, 3, 5, 4),
    (6, 9, 3, 6, 9),     # kernel as large as the image
    (12, 12, 4, 5, 5),
    (12, 12, 2, 12, 12),  # kernel as large as the image, even size
    (8, 8, 4, 3, 4),
]


@pytest.mark.parametrize("height, width, s, kh, kw", CASES)
def test_matches_dense_solve(height, width, s, kh, kw):
    rng = np.random.default_rng(height * 100 + width * 10 + s + kh + kw)
    z, y, k, alpha = random_problem(rng, 3, height, width, s, kh, kw)
    expected = reference_batch(z, y, k, alpha, s)
    zf, yf, kf, af = f32(z, y, k, alpha)
    got = usrnet_data_step(zf, yf, kf, af, s).numpy()
    assert got.shape == z.shape and got.dtype == np.float32
    for b in range(3):
        assert rel_err(got[b], expected[b]) < 1e-4, b
    # The images differ, so a mix-up of kernels or alphas within the batch would show.
    other = dense_solve(z[0], y[0], k[1], alpha[2], s)
    assert rel_err(other, expected[0]) > 1e-3


@pytest.mark.parametrize("form", ["scalar", "(B,)", "(B, 1)", "tensor scalar"])
def test_alpha_forms_and_one_kernel_for_the_batch(form):
    rng = np.random.default_rng(7)
    z, y, _, _ = random_problem(rng, 2, 8, 8, 2, 3, 3)
    k = random_kernels(rng, 1, 4, 3)[0]
    a = 0.2
    alpha = {"scalar": a, "(B,)": np.full(2, a, np.float32),
             "(B, 1)": np.full((2, 1), a, np.float32), "tensor scalar": tf.constant(a)}[form]
    got = usrnet_data_step(*f32(z, y, k), alpha, 2).numpy()
    for b in range(2):
        assert rel_err(got[b], dense_solve(z[b], y[b], k, a, 2)) < 1e-4


@pytest.mark.parametrize("scale", [3, 3.0, np.int64(3), tf.constant(3), tf.constant([3.0, 3.0]),
                                   tf.constant([[3], [3]])])
def test_scale_forms(scale):
    rng = np.random.default_rng(8)
    z, y, k, alpha = random_problem(rng, 2, 6, 9, 3, 3, 3)
    got = usrnet_data_step(*f32(z, y, k, alpha), scale).numpy()
    np.testing.assert_allclose(got, reference_batch(z, y, k, alpha, 3), atol=1e-4)


def test_bfloat16_inputs_give_bfloat16_output():
    rng = np.random.default_rng(9)
    z, y, k, alpha = random_problem(rng, 2, 8, 8, 2, 3, 3)
    got = usrnet_data_step(*(tf.constant(a, tf.bfloat16) for a in (z, y, k, alpha)), 2)
    assert got.dtype == tf.bfloat16
    expected = reference_batch(z, y, k, alpha, 2)
    assert rel_err(tf.cast(got, tf.float32).numpy(), expected) < 2e-2


# ---------------------------------------------------------------- other independent checks


def test_matches_direct_minimisation_of_the_objective():
    # L-BFGS on the objective, with the blur and its adjoint from scipy (no dense matrices).
    rng = np.random.default_rng(11)
    s, height, width, channels = 2, 10, 10, 3
    k = random_kernels(rng, 1, 5, 5)[0]
    z = rng.random((height, width, channels))
    y = rng.random((height // s, width // s, channels))
    alpha = 0.05
    blur = [lambda x: scipy.ndimage.convolve(x, k, mode="wrap"),
            lambda x: scipy.ndimage.correlate(x, k, mode="wrap")]  # K and K^T (odd kernel)

    def objective(v):
        x = v.reshape(height, width, channels)
        value, grad = 0.0, np.zeros_like(x)
        for c in range(channels):
            r = blur[0](x[..., c])[::s, ::s] - y[..., c]
            d = x[..., c] - z[..., c]
            value += np.sum(r ** 2) + alpha * np.sum(d ** 2)
            up = np.zeros((height, width))
            up[::s, ::s] = r
            grad[..., c] = 2 * blur[1](up) + 2 * alpha * d
        return value, grad.ravel()

    result = scipy.optimize.minimize(objective, z.ravel(), jac=True, method="L-BFGS-B",
                                     options={"maxiter": 5000, "gtol": 1e-12, "ftol": 1e-15})
    x_opt = result.x.reshape(height, width, channels)
    assert np.abs(objective(result.x)[1]).max() < 1e-6
    got = usrnet_data_step(*f32(z[None], y[None], k), alpha, s).numpy()[0]
    assert rel_err(got, x_opt) < 1e-4
    assert rel_err(z, x_opt) > 1e-2  # the step does move z


def test_vanishing_alpha_deconvolves_exactly():
    rng = np.random.default_rng(12)
    g = np.exp(-0.5 * (np.arange(5) - 2.0) ** 2)
    gauss = np.outer(g, g) / np.outer(g, g).sum()
    k = 0.3 * gauss
    k[2, 2] += 0.7  # |FB| >= 0.7 - 0.3 > 0 everywhere: the blur is invertible
    x = rng.random((2, 12, 10, 3))
    blurred = np.stack([np.stack([scipy.ndimage.convolve(x[b, ..., c], k, mode="wrap")
                                  for c in range(3)], -1) for b in range(2)])
    assert rel_err(blurred, x) > 1e-2
    z = rng.random(x.shape)
    got = usrnet_data_step(*f32(z, blurred, k), 1e-8, 1).numpy()
    assert rel_err(got, x) < 1e-4


@pytest.mark.parametrize("height, width, s, kh, kw", [(8, 8, 1, 3, 3), (8, 8, 2, 4, 4),
                                                      (6, 9, 3, 5, 6), (12, 12, 4, 12, 12)])
def test_circular_blur_downsample_matches_dense(height, width, s, kh, kw):
    rng = np.random.default_rng(13)
    x = rng.random((2, height, width, 3))
    k = random_kernels(rng, 2, kh, kw)
    got = circular_blur_downsample(*f32(x, k), s).numpy()
    assert got.shape == (2, height // s, width // s, 3)
    for b in range(2):
        assert rel_err(got[b], dense_forward(x[b], k[b], s)) < 1e-5
    # One kernel for the whole batch, and a dynamic scale.
    got = circular_blur_downsample(*f32(x, k[0]), tf.constant(s)).numpy()
    assert rel_err(got[1], dense_forward(x[1], k[0], s)) < 1e-5


def test_data_step_fits_the_observation_when_alpha_is_small():
    # For s > 1 the solution with a tiny alpha reproduces y through the forward operator.
    rng = np.random.default_rng(14)
    z, y, k, _ = random_problem(rng, 2, 12, 12, 3, 5, 5)
    x = usrnet_data_step(*f32(z, y, k), 1e-6, 3)
    residual = circular_blur_downsample(x, k.astype(np.float32), 3).numpy() - y
    assert np.linalg.norm(residual) / np.linalg.norm(y) < 1e-3


# ---------------------------------------------------------------- gradients


def test_gradients_exist_and_match_dense_and_finite_differences():
    rng = np.random.default_rng(15)
    s, height, width = 2, 8, 8
    z, y, k, alpha = random_problem(rng, 2, height, width, s, 3, 4)
    weights = rng.standard_normal(z.shape)
    zt, yt, kt, at = (tf.constant(a) for a in f32(z, y, k, alpha))
    w = tf.constant(weights, tf.float32)

    def loss_fn(zt, yt, kt, at):
        return tf.reduce_sum(tf.sin(3.0 * usrnet_data_step(zt, yt, kt, at, s)) * w)

    with tf.GradientTape() as tape:
        tape.watch([zt, yt, kt, at])
        loss = loss_fn(zt, yt, kt, at)
    grads = tape.gradient(loss, [zt, yt, kt, at])
    for name, g in zip("z y k alpha".split(), grads):
        assert g is not None, name
        assert np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).max() > 0, name

    # x = A^-1 (K^T S^T y + alpha z): dL/dz = alpha A^-1 dL/dx and dL/dy = S K A^-1 dL/dx.
    x = reference_batch(z, y, k, alpha, s)
    dl_dx = 3.0 * np.cos(3.0 * x) * weights
    for b in range(2):
        K = conv_matrix(k[b], height, width)
        S = decimation_matrix(height, width, s)
        A = K.T @ S.T @ S @ K + alpha[b] * np.eye(height * width)
        v = np.linalg.solve(A, dl_dx[b].reshape(-1, 3))
        assert rel_err(grads[0].numpy()[b], alpha[b] * v.reshape(height, width, 3)) < 1e-3
        assert rel_err(grads[1].numpy()[b], (S @ K @ v).reshape(height // s, width // s, 3)) \
            < 1e-3

    # Central differences along random directions for the kernel and for alpha.
    for index, direction in [(2, rng.standard_normal(k.shape)), (3, rng.standard_normal(2))]:
        args = [zt, yt, kt, at]
        eps = 1e-2 if index == 2 else 1e-3
        step = tf.constant(eps * direction, tf.float32)
        plus = list(args)
        plus[index] = args[index] + step
        minus = list(args)
        minus[index] = args[index] - step
        numeric = (loss_fn(*plus) - loss_fn(*minus)).numpy() / (2 * eps)
        analytic = float(np.sum(grads[index].numpy() * direction))
        assert abs(numeric - analytic) <= 2e-2 * abs(analytic) + 1e-3, (index, numeric, analytic)


# ---------------------------------------------------------------- graphs


def test_tf_function_with_unknown_sizes_matches_eager():
    fn = tf.function(usrnet_data_step, input_signature=[
        tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, None, 3]),
        tf.TensorSpec([None, None, None]), tf.TensorSpec([None]), tf.TensorSpec([], tf.int32)])
    rng = np.random.default_rng(16)
    for batch, height, width, s, kh, kw in [(2, 8, 8, 2, 3, 3), (3, 6, 9, 3, 4, 5)]:
        z, y, k, alpha = f32(*random_problem(rng, batch, height, width, s, kh, kw))
        graph = fn(z, y, k, alpha, tf.constant(s)).numpy()
        eager = usrnet_data_step(z, y, k, alpha, s).numpy()
        assert graph.shape == z.shape
        np.testing.assert_allclose(graph, eager, atol=1e-5)
        assert rel_err(graph[-1], dense_solve(z[-1], y[-1], k[-1], alpha[-1], s)) < 1e-4
    assert fn.experimental_get_tracing_count() == 1
    # The sizes are only checked when the graph runs.
    with pytest.raises(tf.errors.InvalidArgumentError, match="scale times"):
        fn(z, y[:, :1], k, alpha, tf.constant(3))


def test_xla_compiled_step_and_gradient_with_a_scale_tensor():
    # The trainer compiles forward and backward with XLA; the scale arrives as a (B, 1) input.
    rng = np.random.default_rng(21)
    z, y, k, alpha = (tf.constant(a) for a in f32(*random_problem(rng, 2, 12, 9, 3, 4, 5)))
    scale = tf.constant([[3.0], [3.0]])

    def step_and_grads(z, y, k, alpha, scale):
        with tf.GradientTape() as tape:
            tape.watch([z, k, alpha])
            x = usrnet_data_step(z, y, k, alpha, scale)
            loss = tf.reduce_sum(tf.sin(x))
        return x, tape.gradient(loss, [z, k, alpha])

    x_xla, g_xla = tf.function(step_and_grads, jit_compile=True)(z, y, k, alpha, scale)
    x_eager, g_eager = step_and_grads(z, y, k, alpha, 3)
    np.testing.assert_allclose(x_xla.numpy(), x_eager.numpy(), atol=1e-5)
    for a, b in zip(g_xla, g_eager):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_circular_blur_downsample_in_tf_function():
    fn = tf.function(circular_blur_downsample, input_signature=[
        tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, None]),
        tf.TensorSpec([None])])
    rng = np.random.default_rng(17)
    x = rng.random((2, 9, 6, 3))
    k = random_kernels(rng, 2, 4, 3)
    got = fn(*f32(x, k), tf.constant([3.0, 3.0])).numpy()
    assert rel_err(got[0], dense_forward(x[0], k[0], 3)) < 1e-5


# ---------------------------------------------------------------- the layer


def build_model(**layer_kwargs):
    inputs = [keras.Input((None, None, 3)), keras.Input((None, None, 3)),
              keras.Input((None, None)), keras.Input((1,)), keras.Input((1,))]
    layer = USRNetDataStep(name="data_step", **layer_kwargs)
    return keras.Model(inputs, layer(inputs)), layer


def layer_inputs(rng, s=2, batch=2, height=8, width=8):
    z, y, k, alpha = f32(*random_problem(rng, batch, height, width, s, 3, 4))
    return [z, y, k, alpha[:, None], np.full((batch, 1), s, np.float32)]


def test_layer_in_functional_model_matches_function():
    model, layer = build_model()
    assert model.output.shape == (None, None, None, 3)
    assert layer.compute_output_shape([(2, 8, 8, 3), (2, 4, 4, 3), (2, 3, 3), (2, 1), (2, 1)]) \
        == (2, 8, 8, 3)
    assert not layer.weights
    rng = np.random.default_rng(18)
    for s, height, width in [(2, 8, 8), (3, 6, 9)]:
        args = layer_inputs(rng, s, height=height, width=width)
        expected = usrnet_data_step(args[0], args[1], args[2], args[3], s).numpy()
        np.testing.assert_allclose(model(args).numpy(), expected, atol=1e-5)
        np.testing.assert_allclose(model.predict(args, verbose=0), expected, atol=1e-5)
        assert rel_err(expected[0], dense_solve(args[0][0], args[1][0], args[2][0],
                                                args[3][0, 0], s)) < 1e-4


def test_layer_config_round_trip_and_registration():
    model, layer = build_model()
    config = layer.get_config()
    fresh = USRNetDataStep.from_config(config)
    assert fresh.get_config() == config and fresh.name == "data_step"
    assert visionfw.layers.usrnet_data_step is usrnet_data_step
    assert visionfw.layers.USRNetDataStep is USRNetDataStep
    assert NAMESPACE.get("USRNetDataStep").target is USRNetDataStep
    assert keras.saving.get_registered_object("visionfw>USRNetDataStep") is USRNetDataStep
    rebuilt = keras.Model.from_config(model.get_config())
    assert isinstance(rebuilt.get_layer("data_step"), USRNetDataStep)
    args = layer_inputs(np.random.default_rng(19))
    np.testing.assert_allclose(rebuilt(args).numpy(), model(args).numpy(), atol=1e-6)


def test_layer_under_mixed_bfloat16():
    rng = np.random.default_rng(20)
    args = layer_inputs(rng, 2)
    reference = build_model()[0](args).numpy()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model, layer = build_model()
        assert layer.compute_dtype == "bfloat16"
        out = model(args)
        assert out.dtype == "bfloat16"
        got = tf.cast(out, tf.float32).numpy()
        graph = tf.cast(model.predict(args, verbose=0), tf.float32).numpy()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.mixed_precision.global_policy().name == "float32"
    span = float(np.ptp(reference))
    for result in (got, graph):
        assert np.all(np.isfinite(result))
        assert np.abs(result - reference).max() <= 0.03 * span
        assert rel_err(result, reference) < 1e-2


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("shapes, scale, message", [
    ([(1, 8, 8, 3), (1, 5, 4, 3), (3, 3)], 2, r"height 5 times scale 2 is not z's height 8"),
    ([(1, 8, 8, 3), (1, 4, 3, 3), (3, 3)], 2, r"width 3 times scale 2 is not z's width 8"),
    ([(1, 8, 8, 3), (1, 4, 4, 1), (3, 3)], 2, r"z has 3 channels but y has 1"),
    ([(2, 8, 8, 3), (3, 4, 4, 3), (3, 3)], 2, r"different batch sizes"),
    ([(2, 8, 8, 3), (2, 4, 4, 3), (3, 3, 3)], 2, r"3 kernels for a batch of 2"),
    ([(1, 8, 8, 3), (1, 4, 4, 3), (9, 3)], 2, r"9x3 kernel is larger than the 8x8 image"),
    ([(1, 8, 8, 3), (1, 4, 4, 3), (1, 1, 3, 3)], 2, r"k must be"),
    ([(1, 8, 8, 3), (1, 4, 4, 3), (3, 3)], 1.5, r"scale must be a positive integer"),
    ([(1, 8, 8, 3), (1, 4, 4, 3), (3, 3)], 0, r"scale must be a positive integer"),
])
def test_bad_shapes_raise_clear_errors(shapes, scale, message):
    z, y, k = (np.zeros(shape, np.float32) for shape in shapes)
    with pytest.raises(ValueError, match=message):
        usrnet_data_step(z, y, k, 0.1, scale)


def test_bad_alpha_count_and_bad_forward_input():
    z = np.zeros((2, 8, 8, 3), np.float32)
    y = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="alpha has 3 values for a batch of 2"):
        usrnet_data_step(z, y, np.ones((3, 3), np.float32), np.ones(3, np.float32), 2)
    with pytest.raises(ValueError, match="kernel is larger than"):
        circular_blur_downsample(z, np.ones((9, 9), np.float32), 2)
