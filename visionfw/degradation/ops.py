"""Degradation ops in TensorFlow: blur, down-sampling, noise, JPEG, 8-bit quantisation.

Every op takes a float image batch ``(N, H, W, C)`` or a single image ``(H, W, C)`` (NumPy or
tensor), returns the same rank and float type (float32, or float64 for float64 input; uint8
input is divided by 255 and computed in float32), and is built from TensorFlow ops only, so
it runs eagerly, inside ``tf.function`` and inside ``tf.data`` maps. Values are on [0, 1].

Geometry (``docs/degradations.md``):

- :func:`blur` is a true convolution whose kernel origin is tap ``size // 2``:
  ``out[i, j] = sum_{m, n} k[m, n] * x[i + size_h // 2 - m, j + size_w // 2 - n]``.
  This equals ``scipy.ndimage.convolve`` and, for the point-symmetric Gaussians, the
  cross-correlation that IKC/DAN use. A delta at pixel p becomes the kernel centred on p.
- :func:`downsample_direct` keeps HR pixel ``s * i + offset`` as LR pixel ``i``, with
  ``offset = 0`` (the first pixel of each s x s block) by default, as SRMD, USRNet and KAIR do.
- :func:`downsample_bicubic` is MATLAB's ``imresize(x, 1/s, 'bicubic')``: LR pixel ``i`` is
  centred on HR position ``s * i + (s - 1) / 2``.
"""
import numpy as np
import tensorflow as tf

from visionfw.degradation import DegradationError
from visionfw.degradation.kernels import kernel_origin, seed_pair

# our name -> (what it repeats, SciPy ndimage mode of the same padding)
PADDINGS = {
    "reflect": "mirror the image about its edge pixel, which is not repeated (d c b | a b c d)",
    "symmetric": "mirror with the edge pixel repeated (b a | a b c d), MATLAB's 'symmetric'",
    "circular": "wrap around (c d | a b c d), MATLAB's 'circular', the FFT's periodic model",
    "zero": "zeros outside the image",
}
SCIPY_MODES = {"reflect": "mirror", "symmetric": "reflect", "circular": "wrap", "zero": "constant"}


def _as_batch(images, dtype=None):
    """(NHWC float tensor, was_single_image, was_numpy).

    ``uint8`` is divided by 255. float64 stays float64 (for reference-precision pipelines),
    other types become float32, unless ``dtype`` is given.
    """
    as_numpy = isinstance(images, np.ndarray) and tf.executing_eagerly()
    x = tf.convert_to_tensor(images)
    if dtype is None:
        dtype = tf.float64 if x.dtype == tf.float64 else tf.float32
    if x.dtype == tf.uint8:
        x = tf.cast(x, dtype) / 255.0
    elif x.dtype != dtype:
        x = tf.cast(x, dtype)
    rank = x.shape.rank
    if rank not in (3, 4):
        raise DegradationError(f"expected an (H, W, C) or (N, H, W, C) image, got shape {x.shape}")
    if rank == 3:
        x = x[tf.newaxis]
    return x, rank == 3, as_numpy


def _restore(x, single, as_numpy):
    if single:
        x = x[0]
    return x.numpy() if as_numpy else x


def _pad_indices(n, before, after, mode):
    """Source index of every padded position along an axis of length ``n`` (a tensor)."""
    idx = tf.range(-before, n + after)
    if mode == "circular":
        return tf.math.floormod(idx, n)
    if mode == "reflect":
        period = tf.maximum(2 * n - 2, 1)
        folded = tf.math.floormod(idx, period)
        return tf.where(folded < n, folded, period - folded)
    # symmetric
    period = 2 * n
    folded = tf.math.floormod(idx, period)
    return tf.where(folded < n, folded, period - 1 - folded)


def pad(images, before, after, mode="reflect"):
    """Pad an NHWC batch by ``before = (top, left)`` and ``after = (bottom, right)`` pixels.

    Any pad width works, also wider than the image (the pattern repeats).
    """
    if mode not in PADDINGS:
        raise DegradationError(f"unknown padding {mode!r}; valid: {', '.join(PADDINGS)}")
    if mode == "zero":
        return tf.pad(images, [[0, 0], [before[0], after[0]], [before[1], after[1]], [0, 0]])
    shape = tf.shape(images)
    x = tf.gather(images, _pad_indices(shape[1], before[0], after[0], mode), axis=1)
    return tf.gather(x, _pad_indices(shape[2], before[1], after[1], mode), axis=2)


def blur(images, kernels, padding="reflect"):
    """Convolve images with a kernel (shared) or with one kernel per image.

    Args:
        images: ``(N, H, W, C)`` or ``(H, W, C)``.
        kernels: ``(kh, kw)`` for every image and channel, or ``(N, kh, kw)``: kernel ``n``
            blurs image ``n``. Kernel sizes must be known when the graph is built.
        padding: ``'reflect'``, ``'symmetric'``, ``'circular'`` or ``'zero'``; see
            :data:`PADDINGS`.

    Returns:
        The blurred images, same shape. Each output pixel is
        ``sum k[m, n] x[i + kh // 2 - m, j + kw // 2 - n]`` (a convolution, kernel flipped,
        origin at tap ``size // 2``), the same as ``scipy.ndimage.convolve`` with
        ``mode=SCIPY_MODES[padding]``.
    """
    x, single, as_numpy = _as_batch(images)
    k = tf.cast(tf.convert_to_tensor(kernels), x.dtype)
    if k.shape.rank not in (2, 3) or k.shape[-1] is None or k.shape[-2] is None:
        raise DegradationError("kernels must be (kh, kw) or (N, kh, kw) with known sizes, "
                               f"got {k.shape}")
    kh, kw = int(k.shape[-2]), int(k.shape[-1])
    before = (kh - 1 - kernel_origin(kh), kw - 1 - kernel_origin(kw))
    after = (kernel_origin(kh), kernel_origin(kw))
    xp = pad(x, before, after, padding)
    # convolution = correlation with the flipped kernel; its origin moves to size-1-size//2
    flipped = tf.reverse(k, axis=[-2, -1])
    channels = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    if x.dtype == tf.float64:
        y = _blur_fft(xp, k)
    elif k.shape.rank == 2:
        filt = tf.tile(flipped[:, :, tf.newaxis, tf.newaxis], [1, 1, channels, 1])
        y = tf.nn.depthwise_conv2d(xp, filt, [1, 1, 1, 1], "VALID")
    else:
        y = _blur_per_image(xp, flipped, channels)
    y.set_shape(x.shape)
    return _restore(y, single, as_numpy)


def _blur_fft(xp, k):
    """The valid part of padded images convolved with ``k`` (``(kh, kw)`` or one per image,
    ``(N, kh, kw)``), by float64 FFTs of the padded size.

    The float64 pipelines (the test protocols that truncate like SciPy) take this path:
    TensorFlow has no vectorised float64 convolution on the CPU, where a 25x25 kernel on a
    512x512 image took 120 ms, and the FFT's rounding error (about 1e-13 of an 8-bit level)
    stays far inside the 1e-9 tolerance of :func:`quantize`. Positions whose window lies
    inside the padded image are untouched by the FFT's wrap-around, and those are the ones kept.
    """
    shape = tf.shape(xp)
    hp, wp = shape[1], shape[2]
    kh, kw = int(k.shape[-2]), int(k.shape[-1])
    kernels = k if k.shape.rank == 3 else k[tf.newaxis]
    placed = tf.pad(kernels, [[0, 0], [0, hp - kh], [0, wp - kw]])   # origin at (0, 0)
    planes = tf.transpose(xp, [0, 3, 1, 2])                          # (N, C, Hp, Wp)
    spectrum = tf.signal.rfft2d(planes) * tf.signal.rfft2d(placed)[:, tf.newaxis]
    full = tf.signal.irfft2d(spectrum, fft_length=[hp, wp])
    return tf.transpose(full[:, :, kh - 1:, kw - 1:], [0, 2, 3, 1])


def _blur_per_image(xp, k, channels):
    """Depthwise convolution of padded image n with kernel n, all images in one call."""
    shape = tf.shape(xp)
    n, hp, wp = shape[0], shape[1], shape[2]
    kh, kw = int(k.shape[-2]), int(k.shape[-1])
    tf.debugging.assert_equal(tf.shape(k)[0], n, message="blur: need one kernel per image")
    # (N, Hp, Wp, C) -> (1, Hp, Wp, N*C); channel n*C + c is image n, channel c
    stacked = tf.reshape(tf.transpose(xp, [1, 2, 0, 3]), [1, hp, wp, n * channels])
    filt = tf.repeat(tf.transpose(k, [1, 2, 0]), repeats=channels, axis=2)  # (kh, kw, N*C)
    filt = filt[:, :, :, tf.newaxis]
    y = tf.nn.depthwise_conv2d(stacked, filt, [1, 1, 1, 1], "VALID")
    h, w = hp - kh + 1, wp - kw + 1
    return tf.transpose(tf.reshape(y, [h, w, n, channels]), [2, 0, 1, 3])


def downsample_direct(images, scale, offset=0):
    """Keep every ``scale``-th pixel: LR pixel ``i`` is HR pixel ``scale * i + offset``.

    The output has ``H // scale`` rows and ``W // scale`` columns. ``offset = 0`` (default)
    keeps the top-left pixel of each block, as SRMD's MATLAB code, USRNet and KAIR do;
    ``offset = (scale - 1) // 2`` keeps the middle one (KAIR's ``center=True``).
    """
    scale, offset = int(scale), int(offset)
    if scale < 1:
        raise DegradationError(f"scale must be a positive integer, got {scale}")
    if not 0 <= offset < scale:
        raise DegradationError(f"direct: offset must be in 0..{scale - 1} at scale {scale}, "
                               f"got {offset}")
    x, single, as_numpy = _as_batch(images)
    shape = tf.shape(x)
    h, w = shape[1] // scale, shape[2] // scale
    y = x[:, offset:offset + scale * h:scale, offset:offset + scale * w:scale, :]
    return _restore(y, single, as_numpy)


def downsample_bicubic(images, scale):
    """MATLAB ``imresize(x, 1/scale, 'bicubic')`` (with antialiasing), via visionfw.resize.

    The output has ``ceil(H / scale) x ceil(W / scale)`` pixels; values are not clipped.
    """
    from visionfw.resize import imresize

    scale = int(scale)
    if scale < 1:
        raise DegradationError(f"scale must be a positive integer, got {scale}")
    x, single, as_numpy = _as_batch(images)
    y = x if scale == 1 else imresize(x, scale=1.0 / scale)
    return _restore(y, single, as_numpy)


def add_gaussian_noise(images, sigma, seed, clip=True):
    """Add white Gaussian noise of standard deviation ``sigma`` on the 0-255 scale.

    Args:
        images: ``(N, H, W, C)`` or ``(H, W, C)`` on the [0, 1] scale.
        sigma: a number or a ``(N,)`` tensor (one level per image), 0-255 scale.
        seed: int or shape-``[2]`` integer tensor; the same seed gives the same noise.
        clip: clip the result to [0, 1] (DAN, BSRGAN); USRNet's test does not clip.
    """
    x, single, as_numpy = _as_batch(images)
    sigma = tf.cast(tf.convert_to_tensor(sigma), x.dtype) / 255.0
    if sigma.shape.rank == 1:
        sigma = sigma[:, tf.newaxis, tf.newaxis, tf.newaxis]
    noise = tf.random.stateless_normal(tf.shape(x), seed=seed_pair(seed), dtype=x.dtype)
    y = x + sigma * noise
    if clip:
        y = tf.clip_by_value(y, 0.0, 1.0)
    return _restore(y, single, as_numpy)


def to_uint8(images):
    """[0, 1] floats -> uint8 as MATLAB's ``im2uint8``: clip, scale by 255, round halves up."""
    x = tf.convert_to_tensor(images)
    if x.dtype == tf.uint8:
        return x
    if x.dtype != tf.float64:
        x = tf.cast(x, tf.float32)
    return tf.cast(tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255.0 + 0.5), tf.uint8)


def quantize(images, mode="round"):
    """Snap values to the 8-bit levels ``v / 255``, clipped to [0, 1].

    ``mode='round'`` rounds halves up (``im2uint8``, what saving a PNG does). ``'floor'``
    truncates, which is what ``scipy.ndimage.convolve`` does when it writes a blurred uint8
    image (USRNet's test). Truncation is sensitive to rounding error: values are first raised
    by a tolerance of 1e-5 of a level in float32 (about the float32 error of a blur) or 1e-9
    in float64, where a blur computed in float64 truncates exactly as SciPy's does.
    """
    if mode not in ("round", "floor"):
        raise DegradationError(f"quantize: mode must be 'round' or 'floor', got {mode!r}")
    x, single, as_numpy = _as_batch(images)
    v = tf.clip_by_value(x, 0.0, 1.0) * 255.0
    tol = 1e-9 if x.dtype == tf.float64 else 1e-5
    v = tf.floor(v + 0.5) if mode == "round" else tf.floor(v + tol)
    return _restore(tf.minimum(v, 255.0) / 255.0, single, as_numpy)


def jpeg_compress(images, quality):
    """JPEG-encode and decode each image (libjpeg via TensorFlow), returning [0, 1] floats.

    Images are first rounded to 8 bits. ``quality`` (1-100) is a Python int, encoded with
    ``tf.io.encode_jpeg``, or an int tensor ``(N,)`` with one quality per image. Images need 1
    or 3 channels. Chroma is sub-sampled 4:2:0 (libjpeg's default, as OpenCV and PIL do).
    """
    x, single, as_numpy = _as_batch(images)
    u8 = to_uint8(x)
    if isinstance(quality, (int, np.integer)) and not isinstance(quality, bool):
        quality = int(quality)
        if not 1 <= quality <= 100:
            raise DegradationError(f"jpeg: quality must be in 1..100, got {quality}")

        def code(img):
            return tf.io.decode_jpeg(tf.io.encode_jpeg(img, quality=quality),
                                     channels=int(x.shape[-1] or 0))

        y = tf.map_fn(code, u8, fn_output_signature=tf.uint8)
    else:
        q = tf.cast(tf.convert_to_tensor(quality), tf.int32)
        q = tf.broadcast_to(q, tf.shape(u8)[:1])
        y = tf.map_fn(lambda args: tf.image.adjust_jpeg_quality(args[0], args[1]), (u8, q),
                      fn_output_signature=tf.uint8)
    y = tf.cast(y, x.dtype) / 255.0
    y.set_shape(x.shape)
    return _restore(y, single, as_numpy)
