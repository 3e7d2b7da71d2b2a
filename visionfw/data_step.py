"""USRNet's data step: the closed-form solution of a blur-and-decimate least-squares problem.

USRNet (Zhang, Van Gool and Timofte, CVPR 2020) alternates a learned denoiser with a data
step that, given the current estimate ``z``, the low-resolution image ``y``, a blur kernel
``k``, a scale factor ``s`` and a weight ``alpha > 0``, returns the exact minimiser of

    ||y - S(k * x)||^2 + alpha ||x - z||^2

where ``k * x`` is circular convolution and ``S`` keeps the upper-left pixel of every s x s
block (``S(x) = x[::s, ::s]``). Both operators are diagonal (or block diagonal) in the Fourier
domain, so the minimiser costs a few FFTs.

Conventions shared by every function here:
- images are NHWC; ``z`` and ``x`` are ``(B, s*H, s*W, C)`` and ``y`` is ``(B, H, W, C)``;
- ``k`` is ``(B, kh, kw)`` (one kernel per image, the same for every channel) or ``(kh, kw)``
  (one kernel for the whole batch); its element ``[kh // 2, kw // 2]`` is the kernel's origin,
  so ``(k * x)[i, j] = sum_{a, b} k[a, b] x[(i + kh//2 - a) mod sH, (j + kw//2 - b) mod sW]``,
  which for odd sizes is ``scipy.ndimage.convolve(x, k, mode='wrap')``;
- the arithmetic is done in float32 / complex64 whatever the input dtype, and the result has
  the dtype of ``z`` (or ``x``).

Everything is TensorFlow ops only, so it runs on a GPU, inside ``tf.function`` with unknown
batch, height and width, and is differentiable with respect to ``z``, ``y``, ``k`` and
``alpha``.
"""
import keras
import tensorflow as tf

from visionfw.graph.registry import register_layer

__all__ = ["USRNetDataStep", "circular_blur_downsample", "kernel_otf", "usrnet_data_step"]


# ---------------------------------------------------------------- helpers


def _static_scale(scale):
    """The scale as a Python int when it is known without running the graph, else None."""
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        value = scale
    else:
        value = tf.get_static_value(tf.convert_to_tensor(scale))
        if value is None:
            return None
        value = value.reshape(-1)
        if value.size == 0:
            raise ValueError("scale is empty")
        value = value[0]
    if value != round(float(value)) or value < 1:
        raise ValueError(f"scale must be a positive integer, got {value!r}")
    return int(round(float(value)))


def _scale_tensor(scale):
    """The scale as an int32 scalar tensor: the first entry of a tensor, rounded."""
    scale = tf.convert_to_tensor(scale)
    first = tf.reshape(scale, [-1])[0]
    if first.dtype.is_integer:
        return tf.cast(first, tf.int32)
    return tf.cast(tf.round(tf.cast(first, tf.float32)), tf.int32)


def _scale(scale):
    """(Python int or None, int32 tensor or Python int) for the scale argument."""
    static = _static_scale(scale)
    if static is not None:
        return static, static
    return None, _scale_tensor(scale)


def _to_complex(x):
    return tf.complex(x, tf.zeros_like(x))


def _kernels(k):
    """The kernels as a float32 ``(B or 1, 1, kh, kw)`` tensor (a channel axis of size 1)."""
    k = tf.cast(tf.convert_to_tensor(k), tf.float32)
    if k.shape.rank == 2:
        k = k[None]
    elif k.shape.rank != 3:
        raise ValueError(f"k must be (kh, kw) or (B, kh, kw), got shape {k.shape}")
    return k[:, None]


def _check_kernel_fits(k_shape, height, width):
    kh, kw = k_shape[-2], k_shape[-1]
    if (kh is not None and height is not None and kh > height) or \
            (kw is not None and width is not None and kw > width):
        raise ValueError(f"the {kh}x{kw} kernel is larger than the {height}x{width} image")


def kernel_otf(k, height, width):
    """The optical transfer function of kernels ``k`` for ``height x width`` images.

    The kernel is zero-padded to the image size and rolled circularly so that its element
    ``[kh // 2, kw // 2]`` sits at ``[0, 0]``; its 2-D FFT multiplies an image's FFT to give
    the circular convolution of the image with ``k``.

    Args:
        k: ``(B, kh, kw)`` or ``(kh, kw)`` kernels, ``kh <= height`` and ``kw <= width``.
        height: image height (int or int32 scalar tensor).
        width: image width (int or int32 scalar tensor).

    Returns:
        complex64 tensor of shape ``(B or 1, 1, height, width)``.
    """
    k = _kernels(k)
    _check_kernel_fits(k.shape, tf.get_static_value(height), tf.get_static_value(width))
    size = tf.shape(k)
    kh, kw = size[2], size[3]
    padded = tf.pad(k, [[0, 0], [0, 0], [0, height - kh], [0, width - kw]])
    centred = tf.roll(padded, shift=[-(kh // 2), -(kw // 2)], axis=[2, 3])
    return tf.signal.fft2d(_to_complex(centred))


def _block_mean(spectrum, scale, height, width):
    """Average a ``(..., s*H, s*W)`` spectrum over its s x s alias blocks -> ``(..., H, W)``.

    Decimating an image by ``s`` folds its spectrum: the LR spectrum at ``(u, v)`` is the mean
    of the HR spectrum at ``(u + i*H, v + j*W)`` for ``i, j`` in ``0 .. s-1``.
    """
    lead = tf.shape(spectrum)[:-2]
    blocks = tf.reshape(spectrum, tf.concat([lead, [scale, height, scale, width]], 0))
    return tf.reduce_mean(blocks, axis=[-4, -2])


def _nchw(x):
    return tf.transpose(x, [0, 3, 1, 2])


def _nhwc(x):
    return tf.transpose(x, [0, 2, 3, 1])


# ---------------------------------------------------------------- public functions


def circular_blur_downsample(x, k, scale):
    """The forward operator ``y = S(k * x)``: circular blur by ``k``, then keep ``x[::s, ::s]``.

    Args:
        x: ``(B, s*H, s*W, C)`` images.
        k: ``(B, kh, kw)`` kernels (one per image) or one ``(kh, kw)`` kernel.
        scale: the integer factor ``s`` (Python number or tensor; of a ``(B,)`` or ``(B, 1)``
            tensor the first entry is used).

    Returns:
        ``(B, H, W, C)`` tensor with the dtype of ``x``.
    """
    x = tf.convert_to_tensor(x)
    dtype = x.dtype
    _, s = _scale(scale)
    xc = _nchw(tf.cast(x, tf.float32))
    size = tf.shape(xc)
    otf = kernel_otf(k, size[2], size[3])
    blurred = tf.math.real(tf.signal.ifft2d(otf * tf.signal.fft2d(_to_complex(xc))))
    return tf.cast(_nhwc(blurred[:, :, ::s, ::s]), dtype)


def _check_shapes(z, y, k, alpha, s_static):
    """Raise ValueError for shapes that are known now and cannot work together."""
    if z.shape.rank != 4 or y.shape.rank != 4:
        raise ValueError(f"z and y must be (B, H, W, C); got z {z.shape} and y {y.shape}")
    if k.shape.rank not in (2, 3):
        raise ValueError(f"k must be (kh, kw) or (B, kh, kw), got shape {k.shape}")
    zb, zh, zw, zc = z.shape
    yb, yh, yw, yc = y.shape
    if zc is not None and yc is not None and zc != yc:
        raise ValueError(f"z has {zc} channels but y has {yc}: z {z.shape}, y {y.shape}")
    if zb is not None and yb is not None and zb != yb:
        raise ValueError(f"z and y have different batch sizes: z {z.shape}, y {y.shape}")
    if s_static is not None:
        for name, low, high in (("height", yh, zh), ("width", yw, zw)):
            if low is not None and high is not None and low * s_static != high:
                raise ValueError(f"y's {name} {low} times scale {s_static} is not z's {name} "
                                 f"{high}: z {z.shape}, y {y.shape}")
    batch = zb if zb is not None else yb
    if k.shape.rank == 3 and batch is not None and k.shape[0] not in (None, 1, batch):
        raise ValueError(f"k holds {k.shape[0]} kernels for a batch of {batch}: k {k.shape}, "
                         f"z {z.shape}")
    n_alpha = alpha.shape.num_elements()
    if batch is not None and n_alpha is not None and n_alpha not in (1, batch):
        raise ValueError(f"alpha has {n_alpha} values for a batch of {batch}: alpha "
                         f"{alpha.shape}, z {z.shape}")
    _check_kernel_fits(k.shape, zh, zw)


def usrnet_data_step(z, y, k, alpha, scale):
    """USRNet's data step: the minimiser of ``||y - S(k * x)||^2 + alpha ||x - z||^2``.

    The normal equations ``(K^T S^T S K + alpha I) x = K^T S^T y + alpha z`` are solved in the
    Fourier domain. By the Woodbury identity

        x = z + K^T S^T (alpha I + S K K^T S^T)^-1 (y - S K z),

    and ``S K K^T S^T`` is diagonal in the low-resolution Fourier domain with entries the mean,
    over the s x s aliases of each frequency, of ``|FB|^2`` (``FB`` is the kernel's transfer
    function). This is the expression of the USRNet paper and code rearranged so that nothing
    is divided by ``alpha``: the two forms are equal, but subtracting two nearly equal spectra
    and dividing by a small ``alpha`` loses every digit in float32.

    Args:
        z: ``(B, s*H, s*W, C)`` current estimate.
        y: ``(B, H, W, C)`` low-resolution image.
        k: ``(B, kh, kw)`` blur kernels (one per image) or one ``(kh, kw)`` kernel, with
            ``kh <= s*H`` and ``kw <= s*W``; odd and even sizes both work.
        alpha: weight of ``||x - z||^2``, positive: a scalar, or ``(B,)`` / ``(B, 1)`` with one
            value per image.
        scale: the integer factor ``s``: a Python number or a tensor (scalar, or ``(B,)`` /
            ``(B, 1)`` with equal entries, of which the first is used).

    Returns:
        ``(B, s*H, s*W, C)`` tensor, the dtype of ``z``.
    """
    z = tf.convert_to_tensor(z)
    y = tf.convert_to_tensor(y)
    k = tf.convert_to_tensor(k)
    alpha = tf.convert_to_tensor(alpha)
    dtype = z.dtype
    s_static, s = _scale(scale)
    _check_shapes(z, y, k, alpha, s_static)

    zc = _nchw(tf.cast(z, tf.float32))
    yc = _nchw(tf.cast(y, tf.float32))
    hr = tf.shape(zc)
    lr = tf.shape(yc)
    height, width = lr[2], lr[3]
    if s_static is None:
        # A scale given as a tensor may only be known when the graph runs, but the sizes of
        # z and y determine it too, and a compiled (XLA) graph knows those when it is built;
        # so the factor is taken from the sizes and the tensor is checked against it.
        given = s
        s = hr[2] // height
        tf.debugging.assert_equal(given, s, message="usrnet_data_step: z's height is not "
                                  "scale times y's")
        tf.debugging.assert_equal(lr[2:] * s, hr[2:], message="usrnet_data_step: z's height "
                                  "and width must be scale times y's")
    otf = kernel_otf(k, hr[2], hr[3])                          # (B or 1, 1, sH, sW)
    alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1, 1, 1, 1])

    # Spectrum of the residual y - S K z, at low resolution.
    fz = tf.signal.fft2d(_to_complex(zc))
    sk_z = _block_mean(otf * fz, s, height, width)
    residual = tf.signal.fft2d(_to_complex(yc)) - sk_z
    # (alpha I + S K K^T S^T)^-1 is a division by the alias mean of |FB|^2, plus alpha.
    power = _block_mean(tf.math.square(tf.math.real(otf)) + tf.math.square(tf.math.imag(otf)),
                        s, height, width)
    weighted = residual / _to_complex(power + alpha)
    # K^T S^T: zero-insertion up-sampling tiles the LR spectrum s x s times; K^T is conj(FB).
    correction = tf.math.conj(otf) * tf.tile(weighted, [1, 1, s, s])
    x = zc + tf.math.real(tf.signal.ifft2d(correction))
    return tf.cast(_nhwc(x), dtype)


# ---------------------------------------------------------------- layer


@register_layer
class USRNetDataStep(keras.layers.Layer):
    """USRNet's closed-form data step as a layer without weights.

    Called on ``[z, y, k, alpha, scale]``, it returns the minimiser over ``x`` of
    ``||y - S(k * x)||^2 + alpha ||x - z||^2`` (see :func:`usrnet_data_step` for the
    conventions): ``z`` is ``(B, s*H, s*W, C)``, ``y`` is ``(B, H, W, C)``, ``k`` is
    ``(B, kh, kw)``, ``alpha`` is ``(B,)`` or ``(B, 1)`` and ``scale`` is ``(B,)`` or
    ``(B, 1)`` with equal entries. The FFTs run in float32 whatever the layer's policy; the
    output has the layer's compute dtype.

    Args:
        **kwargs: passed to ``keras.layers.Layer``.
    """

    num_inputs = 5

    def call(self, inputs):
        z, y, k, alpha, scale = inputs
        x = usrnet_data_step(z, y, k, alpha, scale)
        return tf.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])

    def get_config(self):
        # The layer has no arguments of its own: name, dtype policy and the like only.
        return super().get_config()
