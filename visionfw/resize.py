"""MATLAB's ``imresize(A, scale, 'bicubic')`` in TensorFlow, plus a Keras layer around it.

The published super-resolution numbers were made with MATLAB's bicubic resize: it makes the
low-resolution inputs and it is the "bicubic" baseline. To reproduce them we follow MATLAB's
``contributions`` step by step, per axis:

- Keys' cubic kernel with a = -0.5, support [-2, 2].
- Output pixel x (1-based) samples the input at u = x / s + 0.5 * (1 - 1 / s).
- When shrinking (s < 1) the kernel is stretched to h(t) = s * cubic(s * t), 4 / s pixels wide,
  which low-pass filters the image (MATLAB's default antialiasing).
- The taps are the ceil(width) + 2 integer positions from floor(u - width / 2); their weights
  are normalised to sum to one for every output pixel.
- Taps outside the image are mirrored with the edge pixel repeated (MATLAB indexes into
  [1..n, n..1] periodically), so a column left of the first reads the first, the next the
  second, and so on.
- Output size is ceil(s * n). Given an output size instead, s = out / n for each axis.
- Axes are resized one after the other, the one with the smaller scale first (rows on a tie).
  For ``uint8`` input MATLAB stores the intermediate image as ``uint8`` too, so we round and
  clip after each axis, not only at the end. Rounding is half away from zero, as MATLAB's.
  We compute uint8 in float32 where MATLAB uses double, so a value within ~1e-5 of an exact
  half may round the other way: a rare difference of one grey level.

Everything is built from TensorFlow ops on the run-time image size, so :func:`imresize` works
in eager code, in ``tf.data`` and inside ``tf.function`` or Keras graphs whose height and width
are ``None``. Each axis is a gather of the few taps followed by a weighted sum, so the cost
grows with the number of taps, not with the image size squared.
"""
import math

import keras
import numpy as np
import tensorflow as tf

_F64 = tf.float64


def imresize(image, scale=None, output_shape=None, antialias=True):
    """Resize like MATLAB's ``imresize(image, scale, 'bicubic')``.

    Args:
        image: ``(H, W, C)`` or ``(N, H, W, C)``; a NumPy array or a tensor of dtype ``uint8``
            or float. Float values are not clipped; ``uint8`` is computed in float32, rounded
            and clipped to 0..255 after each axis, and returned as ``uint8``.
        scale: a positive number; the output is ``ceil(H * scale) x ceil(W * scale)``.
        output_shape: ``(out_h, out_w)`` instead of ``scale``: two ints or scalar int tensors.
        antialias: widen the kernel when shrinking, as MATLAB does by default.

    Returns:
        The resized image with the input's rank and dtype: a NumPy array if a NumPy array was
        given in eager mode, else a tensor.
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale or output_shape")
    as_numpy = isinstance(image, np.ndarray) and tf.executing_eagerly()
    x = tf.convert_to_tensor(image)
    rank = x.shape.rank
    if rank not in (3, 4):
        raise ValueError(f"imresize: expected an (H, W, C) or (N, H, W, C) image, "
                         f"got shape {x.shape}")
    if rank == 3:
        x = x[tf.newaxis]
    in_dtype = x.dtype
    if (scale is not None and tf.executing_eagerly() and in_dtype == tf.float32
            and x.shape[0] == 1 and _pixels(x.shape, scale) > BAND_PIXELS):
        # One large image: resize it in bands, so memory does not grow with the kernel taps.
        y = imresize_banded(x[0].numpy(), scale, BAND_PIXELS, antialias)
        y = y if rank == 3 else y[np.newaxis]
        return y if as_numpy else tf.convert_to_tensor(y)
    if in_dtype == tf.uint8 or in_dtype in (tf.float16, tf.bfloat16, tf.float32):
        compute = tf.float32
    elif in_dtype == tf.float64:
        compute = tf.float64
    else:
        raise TypeError(f"imresize: expected uint8 or float input, got {in_dtype.name}")
    quantize = in_dtype == tf.uint8

    sizes_in, sizes_out, scales, static_out = _plan(x, scale, output_shape)
    # MATLAB resizes the axis with the smaller scale first, rows on a tie. In float the order
    # only moves rounding noise, so it matters (and is decided) for uint8 only.
    rows_first = True
    if quantize and output_shape is not None:
        static = (*static_out, x.shape[1], x.shape[2])
        if all(v is not None for v in static):
            rows_first = bool(static[0] / static[2] <= static[1] / static[3])
        else:
            rows_first = scales[0] <= scales[1]  # a tensor: decided at run time

    y = tf.cast(x, compute)

    def along(img, axis):
        i = axis - 1
        img = _resize_axis(img, axis, sizes_in[i], sizes_out[i], scales[i], antialias)
        return _round_clip(img) if quantize else img

    if isinstance(rows_first, bool):
        first, second = (1, 2) if rows_first else (2, 1)
        y = along(along(y, first), second)
    else:
        # Only uint8 output depends on the order; both branches give the same shape.
        y = tf.cond(rows_first, lambda: along(along(y, 1), 2), lambda: along(along(y, 2), 1))
    y.set_shape((x.shape[0], static_out[0], static_out[1], x.shape[3]))

    y = tf.cast(y, in_dtype)
    if rank == 3:
        y = y[0]
    return y.numpy() if as_numpy else y


def _plan(x, scale, output_shape):
    """Sizes and scales of both axes of NHWC ``x``: run-time sizes in and out, float64 scales,
    and the static output sizes (``None`` where unknown until run time)."""
    dynamic = tf.shape(x)
    sizes_in = (dynamic[1], dynamic[2])
    if scale is not None:
        scale = float(scale)
        if not scale > 0 or math.isinf(scale):
            raise ValueError(f"imresize: scale must be a positive number, got {scale}")
        sizes_out = tuple(tf.cast(tf.math.ceil(tf.cast(n, _F64) * scale), tf.int32)
                          for n in sizes_in)
        scales = (tf.constant(scale, _F64),) * 2
        static_out = (output_size(x.shape[1], scale), output_size(x.shape[2], scale))
    else:
        if len(output_shape) != 2:
            raise ValueError(f"imresize: output_shape must be (height, width), got {output_shape}")
        sizes_out = tuple(tf.cast(o, tf.int32) for o in output_shape)
        scales = tuple(tf.cast(o, _F64) / tf.cast(n, _F64) for o, n in zip(sizes_out, sizes_in))
        static_out = tuple(int(o) if isinstance(o, (int, np.integer)) else None
                           for o in output_shape)
    return sizes_in, sizes_out, scales, static_out


BAND_PIXELS = 1 << 21   # above this many pixels, eager float images are resized in bands


def _pixels(shape, scale):
    h, w = shape[1], shape[2]
    return max(h, output_size(h, scale)) * max(w, output_size(w, scale))


def imresize_banded(image, scale, band_pixels=1 << 21, antialias=True):
    """:func:`imresize` of a large ``(H, W, C)`` float NumPy image with bounded memory.

    The rows are resized first, in bands of columns, then the columns in bands of rows (each
    axis's resize treats the other axis's pixels independently), so only about
    ``band_pixels`` pixels' worth of kernel taps is held at once. Equal to :func:`imresize`
    up to float rounding; small images go to it directly.
    """
    image = np.asarray(image, np.float32)
    h, w, c = image.shape
    oh, ow = output_size(h, scale), output_size(w, scale)
    if max(h, oh) * max(w, ow) <= band_pixels:
        return np.asarray(imresize(image, scale, antialias=antialias))
    s = tf.constant(float(scale), _F64)

    def along(part, axis, n_in, n_out):
        y = _resize_axis(tf.convert_to_tensor(part)[tf.newaxis], axis, tf.constant(n_in),
                         tf.constant(n_out), s, antialias)
        return y[0].numpy()

    tall = np.empty((oh, w, c), np.float32)
    cols = max(1, band_pixels // max(h, oh))
    for k in range(0, w, cols):
        tall[:, k:k + cols] = along(image[:, k:k + cols], 1, h, oh)
    out = np.empty((oh, ow, c), np.float32)
    rows = max(1, band_pixels // max(w, ow))
    for r in range(0, oh, rows):
        out[r:r + rows] = along(tall[r:r + rows], 2, w, ow)
    return out


def output_size(length, scale):
    """MATLAB's output length ``ceil(length * scale)``; ``None`` stays ``None``."""
    if length is None:
        return None
    return int(math.ceil(length * scale))


def _cubic(t):
    """Keys' cubic convolution kernel with a = -0.5."""
    a = tf.abs(t)
    a2 = a * a
    a3 = a2 * a
    near = 1.5 * a3 - 2.5 * a2 + 1.0
    far = -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    return tf.where(a <= 1.0, near, tf.where(a <= 2.0, far, tf.zeros_like(a)))


def _contributions(in_len, out_len, scale, antialias):
    """Taps of every output pixel along one axis.

    Returns ``(index, weight)``, both ``(out_len, taps)``: 0-based input rows (already
    mirrored into range) and their float64 weights, each row summing to one.
    """
    one = tf.constant(1.0, _F64)
    stretch = tf.minimum(scale, one) if antialias else one
    width = 4.0 / stretch
    x = tf.cast(tf.range(1, out_len + 1), _F64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = tf.floor(u - width / 2.0)
    taps = tf.cast(tf.math.ceil(width), tf.int32) + 2
    pos = left[:, tf.newaxis] + tf.cast(tf.range(taps), _F64)[tf.newaxis, :]
    weight = stretch * _cubic(stretch * (u[:, tf.newaxis] - pos))
    weight = weight / tf.reduce_sum(weight, axis=1, keepdims=True)

    # 1-based pos -> 0-based index in the mirrored sequence 0..n-1, n-1..0, repeated.
    period = 2 * in_len
    folded = tf.math.floormod(tf.cast(pos, tf.int32) - 1, period)
    index = tf.where(folded < in_len, folded, period - 1 - folded)
    return index, weight


def _resize_axis(img, axis, in_len, out_len, scale, antialias):
    """Resize an NHWC float tensor along axis 1 (rows) or 2 (columns)."""
    index, weight = _contributions(in_len, out_len, scale, antialias)
    weight = tf.cast(weight, img.dtype)
    taps = tf.gather(img, index, axis=axis)
    if axis == 1:
        return tf.einsum("ot,notwc->nowc", weight, taps)
    return tf.einsum("ot,nhotc->nhoc", weight, taps)


def _round_clip(img):
    """MATLAB's conversion to uint8, kept in float: clip to 0..255, round halves up."""
    return tf.floor(tf.clip_by_value(img, 0.0, 255.0) + 0.5)


@keras.saving.register_keras_serializable(package="visionfw")
class BicubicResize(keras.layers.Layer):
    """MATLAB-compatible bicubic resize of an NHWC float batch by a fixed factor.

    Used where a model takes a bicubic-upsampled input (VDSR) and as the bicubic baseline.
    The output is not rounded or clipped. Height and width may be unknown (``None``).

    Args:
        scale: resize factor, a positive float; output size is ``ceil(size * scale)``.
        antialias: widen the kernel when shrinking (``scale < 1``), as MATLAB does.
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...). The
            dtype is float32 unless given, also under a mixed (bf16) policy: the resize is an
            exact image operation, cheap next to a network, and a model's global skip carries
            its output to the result unchanged.
    """

    def __init__(self, scale, antialias=True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        scale = float(scale)
        if not scale > 0 or math.isinf(scale):
            raise ValueError(f"BicubicResize: scale must be a positive number, got {scale}")
        self.scale = scale
        self.antialias = bool(antialias)

    def call(self, inputs):
        return imresize(inputs, scale=self.scale, antialias=self.antialias)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, output_size(height, self.scale), output_size(width, self.scale), channels)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "antialias": self.antialias})
        return config
