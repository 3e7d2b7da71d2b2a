"""visionfw.resize against the NumPy reference and hand-computed MATLAB bicubic values."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import numpy_reference as ref
from visionfw.resize import BicubicResize, imresize

SCALES = [1 / 4, 1 / 3, 1 / 2, 2, 3, 4, 0.37]

# Keys' cubic (a = -0.5) at the four tap distances of a x2 enlargement: 0.25, 0.75, 1.25, 1.75.
K025, K075, K125, K175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("scale", SCALES)
def test_float_matches_numpy_reference(rng, scale):
    img = rng.random((23, 17, 3), dtype=np.float32)
    out = imresize(img, scale)
    expected = ref.imresize(img, scale)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == expected.shape == (int(np.ceil(23 * scale)), int(np.ceil(17 * scale)), 3)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_output_shape_matches_numpy_reference(rng):
    img = rng.random((19, 25, 2))
    out = imresize(img, output_shape=(7, 40))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref.imresize(img, output_shape=(7, 40)), atol=1e-10)


@pytest.mark.parametrize("scale", [1 / 3, 2, 0.37])
def test_uint8_rounds_like_matlab(rng, scale):
    img = rng.integers(0, 256, (29, 21, 3), dtype=np.uint8)
    out = imresize(img, scale)
    expected = ref.imresize(img, scale)
    assert out.dtype == np.uint8
    diff = np.abs(out.astype(int) - expected.astype(int))
    # float32 here vs float64 there may split an exact .5 differently, nothing more.
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.999


def test_uint8_rounds_after_each_axis(rng):
    img = rng.integers(0, 256, (29, 21, 3), dtype=np.uint8)
    once = np.floor(np.clip(ref.imresize(img.astype(np.float64), 0.37), 0, 255) + 0.5)
    out = imresize(img, 0.37)
    assert np.array_equal(out, ref.imresize(img, 0.37))
    assert not np.array_equal(out, once)  # rounding only at the end is not MATLAB's answer


def test_uint8_clips_overshoot():
    img = np.zeros((8, 8, 1), np.uint8)
    img[:, 4:] = 255  # a hard edge makes the cubic over- and undershoot
    out = imresize(img, 3)
    floats = imresize(img.astype(np.float32), 3)
    assert floats.min() < -1 and floats.max() > 256
    assert out.min() == 0 and out.max() == 255


def test_batched_equals_unbatched(rng):
    batch = rng.random((3, 15, 11, 3), dtype=np.float32)
    out = imresize(batch, 3)
    assert out.shape == (3, 45, 33, 3)
    for image, resized in zip(batch, out):
        np.testing.assert_allclose(resized, imresize(image, 3), atol=1e-6)


def test_tensor_in_tensor_out(rng):
    out = imresize(tf.constant(rng.random((6, 6, 1), dtype=np.float32)), 0.5)
    assert isinstance(out, tf.Tensor) and out.shape == (3, 3, 1)


def test_unknown_height_and_width_in_tf_function(rng):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def shrink(x):
        y = imresize(x, 0.37)
        assert y.shape.as_list() == [None, None, None, 3]
        return y

    for h, w in [(13, 9), (20, 31)]:
        img = rng.random((2, h, w, 3), dtype=np.float32)
        out = shrink(img).numpy()
        np.testing.assert_allclose(out[1], ref.imresize(img[1], 0.37), atol=1e-4)
    assert len(shrink._list_all_concrete_functions()) == 1


def test_uint8_axis_order_decided_at_run_time(rng):
    # MATLAB resizes the axis with the smaller scale first; with uint8 the order shows.
    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def to_7x30(x):
        return imresize(x, output_shape=(7, 30))

    for shape in [(20, 10, 3), (5, 40, 3)]:  # rows first, then columns first
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(to_7x30(img).numpy(), ref.imresize(img, output_shape=(7, 30)))


def test_constant_image_stays_constant():
    img = np.full((9, 14, 3), 0.3, np.float32)
    for scale in (0.37, 3):
        np.testing.assert_allclose(imresize(img, scale), 0.3, atol=1e-6)
    assert np.all(imresize(np.full((9, 14, 3), 77, np.uint8), 0.37) == 77)


@pytest.mark.parametrize("scale", [2, 3, 1 / 2])
def test_linear_ramp_stays_linear_in_interior(scale):
    # Output row r samples the input at (r + 0.5) / scale - 0.5, so a ramp i -> i gives that.
    ramp = np.repeat(np.arange(40, dtype=np.float64)[:, None, None], 5, axis=1)
    out = imresize(ramp, scale)[:, 0, 0]
    r = np.arange(out.size)
    expected = (r + 0.5) / scale - 0.5
    interior = (expected > 2 / min(scale, 1)) & (expected < 39 - 2 / min(scale, 1))
    assert interior.sum() > 10
    np.testing.assert_allclose(out[interior], expected[interior], atol=1e-9)


def test_impulse_response_is_keys_kernel():
    img = np.zeros((9, 1, 1))
    img[4] = 1.0
    out = imresize(img, 2)[:, :, 0]
    assert out.shape == (18, 2)
    expected = np.zeros(18)
    expected[5:13] = [K175, K125, K075, K025, K025, K075, K125, K175]
    np.testing.assert_allclose(out[:, 0], expected, atol=1e-12)
    np.testing.assert_allclose(out[:, 1], expected, atol=1e-12)


def test_edges_are_mirrored_not_clamped():
    # First output of a x2 enlargement reads input positions -2..1, i.e. rows 1, 0, 0, 1.
    ramp = np.arange(6, dtype=np.float64)[:, None, None]
    first = imresize(ramp, 2)[0, 0, 0]
    assert first == pytest.approx(K175 * 1 + K075 * 0 + K025 * 0 + K125 * 1)  # -0.09375
    assert first != pytest.approx(K125 * 1)  # what edge clamping would give


def test_bad_arguments():
    img = np.zeros((4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(img)
    with pytest.raises(ValueError, match="positive"):
        imresize(img, -2)
    with pytest.raises(ValueError, match="shape"):
        imresize(np.zeros((4, 4)), 2)
    with pytest.raises(TypeError, match="int32"):
        imresize(np.zeros((4, 4, 1), np.int32), 2)


def test_layer_shapes_and_values(rng):
    layer = BicubicResize(3, name="bicubic_x3")
    assert layer.compute_output_shape((None, None, None, 3)) == (None, None, None, 3)
    assert layer.compute_output_shape((2, 10, 7, 3)) == (2, 30, 21, 3)
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layer(inputs))
    assert tuple(model.output.shape) == (None, None, None, 3)
    img = rng.random((1, 8, 5, 3), dtype=np.float32)
    np.testing.assert_allclose(model.predict(img, verbose=0)[0], ref.imresize(img[0], 3), atol=1e-4)


def test_layer_config_round_trip(tmp_path, rng):
    layer = BicubicResize(0.37, antialias=False, name="shrink")
    config = layer.get_config()
    assert config["scale"] == 0.37 and config["antialias"] is False
    clone = BicubicResize.from_config(config)
    assert (clone.scale, clone.antialias, clone.name) == (0.37, False, "shrink")

    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, BicubicResize) and restored.scale == 0.37

    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, BicubicResize(2)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # safe mode
    img = rng.random((1, 6, 7, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(img, verbose=0), model.predict(img, verbose=0))


def test_layer_rejects_bad_scale():
    with pytest.raises(ValueError, match="positive"):
        BicubicResize(0)
