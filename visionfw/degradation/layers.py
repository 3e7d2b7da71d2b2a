"""A degradation with learned parts as differentiable Keras layers (PDM, Luo et al., CVPR 2022).

:class:`KernelDegradation` is ``D(x) = (x correlated with k), sampled every s-th pixel from the
top-left, + n`` for a kernel per image or a kernel per LR pixel, so the gradient of a loss on
the LR image reaches the kernel (and the noise) that made it. :class:`StraightThroughQuantize`
rounds to 8 bits in the forward pass and lets the gradient through unchanged.
:class:`CentreOne` is the bias initialiser of PDM's kernel network (a one on the centre tap).

Conventions (``docs/degradations.md``): the kernel is *correlated* with the image, as PDM's
code does (``F.unfold`` times the kernel): ``out[i] = sum_m k[m] x[s*i - c + m]`` with the
origin ``c = size // 2``, so a kernel ``k`` here blurs as the library's *convolution* kernel
``k[::-1, ::-1]`` does. LR pixel ``i`` is centred on HR pixel ``s * i``: the library's
``direct(offset=0)``. The image is padded by reflection by default (PDM's
``nn.ReflectionPad2d``); the output is ``H // s x W // s``.
"""
import math

import keras
import numpy as np

from visionfw.graph.registry import register_layer


@keras.saving.register_keras_serializable(package="visionfw")
class CentreOne(keras.initializers.Initializer):
    """Zeros with a one in the middle element of the flattened shape (index ``n // 2``):
    the bias of a convolution to ``l * l`` kernel taps whose softmax starts near a box, its
    centre tap ``e`` times the others (PDM's ``zero_init``). Named ``"visionfw>CentreOne"`` in
    a link dictionary's ``bias_initializer``."""

    def __call__(self, shape, dtype=None):
        n = int(np.prod(shape))
        value = np.zeros(n, np.float32)
        value[n // 2] = 1.0
        return keras.ops.cast(value.reshape(shape), dtype or "float32")

    def get_config(self):
        return {}


@register_layer
class KernelDegradation(keras.layers.Layer):
    """``(x correlated with k)`` sampled every ``scale``-th pixel from the top-left, plus
    noise when a third input is given.

    Called on ``[x, kernel]`` or ``[x, kernel, noise]``: ``x`` is ``(B, H, W, C)``; ``kernel``
    is ``(B, l, l)`` (one kernel per image) or ``(B, H // s, W // s, l * l)`` (one kernel per
    LR pixel, its taps flattened row by row); ``noise`` is added to the ``(B, H // s, W // s,
    C)`` result as it is (no scaling; a single channel is added to every channel).

    Args:
        scale: the sampling step s.
        padding: how the image is extended beyond its border, as the library's blur op:
            ``'reflect'`` (PDM's), ``'symmetric'``, ``'circular'`` or ``'zero'``.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    num_inputs = (2, 3)

    def __init__(self, scale=4, padding="reflect", **kwargs):
        super().__init__(**kwargs)
        from visionfw.degradation.ops import PADDINGS

        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
        self.scale = int(scale)
        self.padding = padding

    @staticmethod
    def kernel_side(kernel_shape):
        """The side l of ``(B, l, l)`` or ``(B, h, w, l * l)`` kernels."""
        if len(kernel_shape) == 3:
            return int(kernel_shape[-1])
        taps = int(kernel_shape[-1])
        side = math.isqrt(taps)
        if side * side != taps:
            raise ValueError(f"a per-pixel kernel has l*l taps, got {taps}")
        return side

    def call(self, inputs):
        import tensorflow as tf

        from visionfw.degradation.ops import pad

        x, kernel = inputs[0], tf.cast(inputs[1], inputs[0].dtype)
        s, side = self.scale, self.kernel_side(kernel.shape)
        origin = side // 2
        shape = tf.shape(x)
        h, w = shape[1] // s, shape[2] // s
        xp = pad(x, (origin, origin), (side - 1 - origin, side - 1 - origin), self.padding)
        if kernel.shape.rank == 3:
            y = _correlate_per_image(xp, kernel, s, x.shape[-1])
        else:
            patches = tf.image.extract_patches(xp, [1, side, side, 1], [1, s, s, 1],
                                               [1, 1, 1, 1], "VALID")
            p = tf.shape(patches)
            patches = tf.reshape(patches, tf.stack([p[0], p[1], p[2], side * side,
                                                    shape[3]]))
            y = tf.reduce_sum(patches[:, :h, :w] * kernel[..., None], axis=3)
        y = y[:, :h, :w]
        if len(inputs) == 3:
            y = y + tf.cast(inputs[2], y.dtype)
        return y

    def compute_output_shape(self, input_shapes):
        b, h, w, c = input_shapes[0]
        s = self.scale
        return (b, None if h is None else h // s, None if w is None else w // s, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "padding": self.padding}


def _correlate_per_image(xp, kernel, stride, channels):
    """Image n of the padded batch correlated with kernel n (``(B, l, l)``), every
    ``stride``-th output kept: one depthwise convolution over ``B * C`` channels."""
    import tensorflow as tf

    shape = tf.shape(xp)
    n, hp, wp = shape[0], shape[1], shape[2]
    channels = channels if channels is not None else shape[3]
    stacked = tf.reshape(tf.transpose(xp, [1, 2, 0, 3]), tf.stack([1, hp, wp, n * channels]))
    filt = tf.repeat(tf.transpose(kernel, [1, 2, 0]), repeats=channels, axis=2)[..., None]
    y = tf.nn.depthwise_conv2d(stacked, filt, [1, stride, stride, 1], "VALID")
    out = tf.shape(y)
    return tf.transpose(tf.reshape(y, tf.stack([out[1], out[2], n, channels])), [2, 0, 1, 3])


@register_layer
class StraightThroughQuantize(keras.layers.Layer):
    """Rounds to ``levels + 1`` levels on [0, 1] (8 bits by default): clip to [0, 1], then
    ``floor(x * levels + 0.5) / levels`` (halves up, as the library's ``quantize`` and a
    saved PNG). The gradient passes through unchanged everywhere, also where the value was
    clipped, as PDM's ``Quant`` does (a straight-through estimator).

    Args:
        levels: the largest integer level (255 for 8 bits).
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, levels=255, **kwargs):
        super().__init__(**kwargs)
        if int(levels) != levels or levels < 1:
            raise ValueError(f"levels must be a positive integer, got {levels!r}")
        self.levels = int(levels)

    def call(self, x):
        import tensorflow as tf

        levels = float(self.levels)

        @tf.custom_gradient
        def quantize(v):
            q = tf.floor(tf.clip_by_value(v, 0.0, 1.0) * levels + 0.5) / levels
            return q, lambda dy: dy

        return quantize(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}
