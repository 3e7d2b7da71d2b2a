"""Degradation ops against SciPy / NumPy references, and the kernel-centre convention."""
import numpy as np
import pytest
import scipy.ndimage as ndi
import tensorflow as tf

from visionfw.degradation import DegradationError
from visionfw.degradation import ops
from visionfw.degradation.kernels import gaussian_kernel

RNG = np.random.default_rng(0)


def random_image(h=24, w=20, c=3, n=None):
    shape = (h, w, c) if n is None else (n, h, w, c)
    return RNG.random(shape).astype(np.float32)


@pytest.mark.parametrize("padding", ["reflect", "symmetric", "circular", "zero"])
@pytest.mark.parametrize("ksize", [(5, 5), (4, 6), (7, 3)])
def test_blur_is_scipy_convolve(padding, ksize):
    img = random_image()
    kernel = RNG.random(ksize)  # deliberately not symmetric: catches a missing flip
    kernel /= kernel.sum()
    out = ops.blur(img, kernel, padding)
    ref = ndi.convolve(img.astype(np.float64), kernel[..., None], mode=ops.SCIPY_MODES[padding])
    assert isinstance(out, np.ndarray) and out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-6)
    # and not the correlation (which would need the kernel flipped)
    corr = ndi.correlate(img.astype(np.float64), kernel[..., None], mode=ops.SCIPY_MODES[padding])
    assert np.abs(out - corr).max() > 1e-3


def test_blur_padding_wider_than_image():
    img = random_image(4, 5, 1)
    kernel = np.ones((9, 9)) / 81
    for padding in ("reflect", "circular", "symmetric"):
        ref = ndi.convolve(img.astype(np.float64), kernel[..., None], mode=ops.SCIPY_MODES[padding])
        np.testing.assert_allclose(ops.blur(img, kernel, padding), ref, atol=2e-6)


def test_blur_one_kernel_per_image():
    batch = random_image(n=3)
    kernels = RNG.random((3, 5, 5))
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    out = ops.blur(tf.constant(batch), kernels, "circular")
    assert tf.is_tensor(out)
    for i in range(3):
        ref = ndi.convolve(batch[i].astype(np.float64), kernels[i][..., None], mode="wrap")
        np.testing.assert_allclose(out[i].numpy(), ref, atol=2e-6)


@pytest.mark.parametrize("padding", ["reflect", "symmetric", "circular", "zero"])
@pytest.mark.parametrize("shape, ksize", [((24, 20), (5, 5)), ((17, 30), (4, 6)),
                                          ((9, 8), (25, 25)), ((64, 63), (21, 21))])
def test_float64_blur_is_scipy_convolve_to_float64_precision(padding, shape, ksize):
    """float64 images (the protocols that truncate like SciPy) are blurred by FFTs: as exact as
    SciPy's own float64 convolution, shared kernel or one per image, kernels larger than the
    image included."""
    batch = RNG.random((2, *shape, 3))
    kernel = RNG.random(ksize)
    kernel /= kernel.sum()
    kernels = RNG.random((2, *ksize))
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    shared, each = ops.blur(batch, kernel, padding), ops.blur(batch, kernels, padding)
    assert shared.dtype == np.float64 and shared.shape == batch.shape
    mode = ops.SCIPY_MODES[padding]
    for i in range(2):
        np.testing.assert_allclose(shared[i], ndi.convolve(batch[i], kernel[..., None], mode=mode),
                                   rtol=0, atol=1e-13)
        np.testing.assert_allclose(each[i], ndi.convolve(batch[i], kernels[i][..., None],
                                                         mode=mode), rtol=0, atol=1e-13)


def test_delta_lands_where_the_convention_says():
    # blur: the kernel is pasted with its origin (tap size // 2) on the delta
    img = np.zeros((31, 31, 1), np.float32)
    img[12, 17] = 1.0
    kernel = RNG.random((5, 7))
    out = ops.blur(img, kernel / kernel.sum(), "zero")[..., 0]
    np.testing.assert_allclose(out[10:15, 14:21], kernel / kernel.sum(), atol=1e-7)
    # direct: LR pixel i is HR pixel s*i + offset
    ramp = np.arange(12 * 12, dtype=np.float32).reshape(12, 12, 1)
    lr = ops.downsample_direct(ramp, 3)[..., 0]
    np.testing.assert_array_equal(lr, ramp[0::3, 0::3, 0])
    np.testing.assert_array_equal(ops.downsample_direct(ramp, 3, offset=1)[..., 0], ramp[1::3, 1::3, 0])
    # blur + direct: a delta on HR pixel (s*a, s*b) peaks on LR pixel (a, b), and the LR
    # image samples the kernel every s taps around its origin
    s, a, b = 4, 5, 3
    img = np.zeros((48, 48, 1), np.float32)
    img[s * a, s * b] = 1.0
    k = gaussian_kernel(21, 2.0)
    lr = ops.downsample_direct(ops.blur(img, k, "zero"), s)[..., 0]
    assert np.unravel_index(lr.argmax(), lr.shape) == (a, b)
    np.testing.assert_allclose(lr[a - 2:a + 3, b - 2:b + 3], k[10 - 8:10 + 9:4, 10 - 8:10 + 9:4], atol=1e-7)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_grid_is_centred_on_blocks(s):
    # LR pixel i sits on HR position s*i + (s-1)/2: a smooth blob centred on HR position p
    # has its LR centroid at (p - (s-1)/2) / s
    size = 24 * s
    img = np.zeros((size, size, 1), np.float32)
    p = (10 * s + 1, 9 * s + 2)
    img[p] = 1.0
    blob = ops.blur(img, gaussian_kernel(8 * s + 1, 1.5 * s), "zero")
    lr = ops.downsample_bicubic(blob, s)[..., 0].astype(np.float64)
    assert lr.shape == (24, 24)
    rows, cols = np.indices(lr.shape)
    centroid = ((rows * lr).sum() / lr.sum(), (cols * lr).sum() / lr.sum())
    expect = tuple((q - (s - 1) / 2) / s for q in p)
    assert centroid == pytest.approx(expect, abs=0.02)


def test_bicubic_matches_imresize_and_keeps_rank():
    from visionfw.resize import imresize

    img = random_image(24, 36)
    lr = ops.downsample_bicubic(img, 3)
    np.testing.assert_array_equal(lr, imresize(img, scale=1 / 3))
    assert lr.shape == (8, 12, 3)
    assert ops.downsample_bicubic(img[None], 3).shape == (1, 8, 12, 3)


def test_noise_statistics_and_seed():
    img = np.full((2, 64, 64, 3), 0.5, np.float32)
    a = ops.add_gaussian_noise(img, 15.0, seed=3)
    b = ops.add_gaussian_noise(img, 15.0, seed=3)
    c = ops.add_gaussian_noise(img, 15.0, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    noise = (a - 0.5) * 255
    assert noise.std() == pytest.approx(15.0, rel=0.03)
    assert abs(noise.mean()) < 0.3
    # one level per image, on the 0-255 scale
    d = ops.add_gaussian_noise(img, np.array([0.0, 25.0], np.float32), seed=5) - 0.5
    assert np.all(d[0] == 0) and (d[1] * 255).std() == pytest.approx(25.0, rel=0.03)
    # clipping
    dark = np.zeros((32, 32, 1), np.float32)
    assert ops.add_gaussian_noise(dark, 30.0, seed=1).min() == 0.0
    assert ops.add_gaussian_noise(dark, 30.0, seed=1, clip=False).min() < -0.1


def test_quantize_and_to_uint8():
    x = np.array([[[0.0], [0.5 / 255], [1.49 / 255], [200.7 / 255], [1.2], [-0.1]]], np.float32)
    np.testing.assert_array_equal(ops.to_uint8(x).numpy()[0, :, 0], [0, 1, 1, 201, 255, 0])
    np.testing.assert_allclose(ops.quantize(x)[0, :, 0] * 255, [0, 1, 1, 201, 255, 0], atol=1e-4)
    np.testing.assert_allclose(ops.quantize(x, "floor")[0, :, 0] * 255, [0, 0, 1, 200, 255, 0], atol=1e-4)
    with pytest.raises(DegradationError):
        ops.quantize(x, "ceil")


def test_jpeg():
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    img = np.stack([yy, xx, (yy + xx) / 2], -1).astype(np.float32)
    img[8:16, 8:24] = [0.9, 0.1, 0.2]
    hi = ops.jpeg_compress(img, 95)
    lo = ops.jpeg_compress(img, 10)
    assert hi.shape == img.shape and hi.dtype == np.float32
    err_hi, err_lo = np.abs(hi - img).mean(), np.abs(lo - img).mean()
    assert err_hi < 0.02 and err_lo > 2 * err_hi  # colour edges suffer 4:2:0 chroma at any quality
    gray = img[..., :1]
    assert np.abs(ops.jpeg_compress(gray, 90) - gray).mean() < 0.005
    # the per-image (tensor quality) path gives the same bytes as tf.io.encode_jpeg
    batch = np.stack([img, img[::-1]])
    fixed = ops.jpeg_compress(batch, 40)
    per_image = ops.jpeg_compress(batch, tf.constant([40, 40]))
    np.testing.assert_array_equal(fixed, per_image)
    with pytest.raises(DegradationError):
        ops.jpeg_compress(img, 0)


def test_ops_inside_tf_function_and_tf_data():
    k = gaussian_kernel(7, 1.2).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def pipeline(x):
        return ops.downsample_direct(ops.blur(x, k, "reflect"), 2)

    batch = random_image(16, 16, n=2)
    eager = ops.downsample_direct(ops.blur(batch, k, "reflect"), 2)
    np.testing.assert_allclose(pipeline(batch).numpy(), eager, atol=1e-6)

    ds = tf.data.Dataset.from_tensor_slices(batch).map(
        lambda x: ops.add_gaussian_noise(ops.downsample_bicubic(x, 2), 5.0, seed=7))
    out = np.stack(list(ds.as_numpy_iterator()))
    ref = np.stack([ops.add_gaussian_noise(ops.downsample_bicubic(b, 2), 5.0, seed=7) for b in batch])
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_bad_inputs():
    with pytest.raises(DegradationError, match="padding"):
        ops.blur(random_image(), np.ones((3, 3)) / 9, "nearest")
    with pytest.raises(DegradationError, match="offset"):
        ops.downsample_direct(random_image(), 2, offset=2)
    with pytest.raises(DegradationError, match=r"\(H, W, C\)"):
        ops.blur(np.zeros((4, 4)), np.ones((3, 3)))
