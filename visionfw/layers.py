"""visionfw's own serialisable layers, usable by name in link dictionaries."""
import keras
from keras import ops

from visionfw.graph.registry import NAMESPACE, Entry, register_layer


@register_layer
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel up-sampling: (H, W, C*r*r) -> (H*r, W*r, C).

    Args:
        scale: the factor r.
        channel_order: ``'tf'`` reads the input channels as TensorFlow's ``depth_to_space``
            does (channel (i*r + j)*C + c goes to output channel c at offset (i, j));
            ``'torch'`` as PyTorch's ``PixelShuffle`` (channel c*r*r + i*r + j), so converted
            weights work unchanged.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, scale=2, channel_order="tf", **kwargs):
        super().__init__(**kwargs)
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if channel_order not in ("tf", "torch"):
            raise ValueError(f"channel_order must be 'tf' or 'torch', got {channel_order!r}")
        self.scale = int(scale)
        self.channel_order = channel_order

    def call(self, x):
        import tensorflow as tf

        r = self.scale
        if self.channel_order == "tf":
            return tf.nn.depth_to_space(x, r)
        shape = tf.shape(x)
        b, h, w = shape[0], shape[1], shape[2]
        c = x.shape[-1] // (r * r)
        y = tf.reshape(x, (b, h, w, c, r, r))
        y = tf.transpose(y, (0, 1, 4, 2, 5, 3))
        return tf.reshape(y, (b, h * r, w * r, c))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.scale
        if c is not None and c % (r * r):
            raise ValueError(f"PixelShuffle({r}) needs channels divisible by {r * r}, got {c}")
        return (b, None if h is None else h * r, None if w is None else w * r,
                None if c is None else c // (r * r))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "channel_order": self.channel_order}


@register_layer
class Scale(keras.layers.Layer):
    """Multiplies by a constant (residual scaling, as in EDSR).

    Args:
        factor: the constant.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, x):
        return x * ops.cast(self.factor, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register_layer
class CodeMap(keras.layers.Layer):
    """Stretches a per-image vector over a feature map's height and width.

    Called on ``[features, code]`` with features ``(B, H, W, C)`` and code ``(B, t)``, it
    returns ``(B, H, W, t)``: the code repeated at every position (the kernel maps of SRMD,
    SFTMD and IKC's Corrector).

    Args:
        **kwargs: passed to ``keras.layers.Layer``.
    """

    num_inputs = 2
    # Under bf16 the builder keeps in float32 the layers that read the input image; this
    # layer's output is the code, not the image, so what reads it keeps the policy.
    passes_picture = False

    def call(self, inputs):
        features, code = inputs
        ones = ops.ones_like(features[..., :1], dtype=code.dtype)
        return ones * code[:, None, None, :]

    def compute_output_shape(self, input_shapes):
        (b, h, w, _), code = input_shapes
        return (b, h, w, code[-1])


@register_layer
class SFT(keras.layers.Layer):
    """Spatial feature transform: ``features * sigmoid(mul(z)) + add(z)``, ``z = [features, maps]``.

    Called on ``[features, maps]`` (``(B, H, W, C)`` and ``(B, H, W, t)``). Each branch is
    conv(C + t -> hidden), LeakyReLU, conv(hidden -> C); the features come first in the
    concatenation and only the multiplicative branch ends in a sigmoid, as in IKC.

    Args:
        hidden: width of each branch's first convolution (32 in IKC, whatever C is).
        kernel_size: kernel size of the four convolutions ('same' padding).
        negative_slope: slope of the LeakyReLU inside each branch.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    num_inputs = 2

    def __init__(self, hidden=32, kernel_size=3, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.kernel_size = kernel_size
        self.negative_slope = negative_slope

    def build(self, input_shapes):
        features, maps = input_shapes
        joint = (*features[:-1], features[-1] + maps[-1])
        hidden = (*features[:-1], self.hidden)

        def conv(filters, name, shape):
            layer = keras.layers.Conv2D(filters, self.kernel_size, padding="same", name=name,
                                        dtype=self.dtype_policy)
            layer.build(shape)
            return layer

        self.mul_conv1 = conv(self.hidden, "mul_conv1", joint)
        self.mul_conv2 = conv(features[-1], "mul_conv2", hidden)
        self.add_conv1 = conv(self.hidden, "add_conv1", joint)
        self.add_conv2 = conv(features[-1], "add_conv2", hidden)

    def call(self, inputs):
        features, maps = inputs
        z = ops.concatenate([features, maps], axis=-1)
        slope = self.negative_slope
        m = self.mul_conv2(ops.leaky_relu(self.mul_conv1(z), slope))
        # The sigmoid in float32 whatever the compute dtype: TensorFlow's CPU logistic has no
        # vector code for bfloat16, and in float32 it runs, with the casts there and back, in
        # less than half the time (SFTMD x4 inference under bf16: 6 % faster end to end).
        mul = ops.cast(ops.sigmoid(ops.cast(m, "float32")), m.dtype)
        add = self.add_conv2(ops.leaky_relu(self.add_conv1(z), slope))
        return features * mul + add

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "kernel_size": self.kernel_size,
                "negative_slope": self.negative_slope}


@register_layer
class Offset(keras.layers.Layer):
    """Adds a constant (keeps a softplus output away from zero, as USRNet's weights).

    Args:
        value: the constant.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, x):
        return x + ops.cast(self.value, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value": self.value}


@register_layer
class PadToMultiple(keras.layers.Layer):
    """Pads the bottom and right edges so height and width become multiples of ``multiple``,
    repeating the last row and column (a U-Net that halves the size three times needs 8).

    Args:
        multiple: the size both sides are rounded up to.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, multiple=8, **kwargs):
        super().__init__(**kwargs)
        if int(multiple) != multiple or multiple < 1:
            raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
        self.multiple = int(multiple)

    def call(self, x):
        import tensorflow as tf

        m = self.multiple
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        x = tf.concat([x, tf.repeat(x[:, -1:], (-h) % m, axis=1)], axis=1)
        return tf.concat([x, tf.repeat(x[:, :, -1:], (-w) % m, axis=2)], axis=2)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        m = self.multiple
        return (b, None if h is None else -(-h // m) * m, None if w is None else -(-w // m) * m,
                c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@register_layer
class CropLike(keras.layers.Layer):
    """Crops ``x`` to the height and width of ``reference`` (its top-left part); called on
    ``[x, reference]``. Undoes :class:`PadToMultiple`.

    Args:
        **kwargs: passed to ``keras.layers.Layer``.
    """

    num_inputs = 2

    def call(self, inputs):
        import tensorflow as tf

        x, reference = inputs
        return x[:, : tf.shape(reference)[1], : tf.shape(reference)[2]]

    def compute_output_shape(self, input_shapes):
        x, reference = input_shapes
        return (x[0], reference[1], reference[2], x[3])


@register_layer
class TakeChannels(keras.layers.Layer):
    """Channels ``start .. start + size - 1`` of the last axis (e.g. one iteration's weight
    out of a hyper-parameter vector).

    Args:
        start: first channel.
        size: how many.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, start=0, size=1, **kwargs):
        super().__init__(**kwargs)
        if start < 0 or size < 1:
            raise ValueError(f"TakeChannels needs start >= 0 and size >= 1, got {start}, {size}")
        self.start = int(start)
        self.size = int(size)

    def call(self, x):
        return x[..., self.start: self.start + self.size]

    def compute_output_shape(self, input_shape):
        c = input_shape[-1]
        if c is not None and self.start + self.size > c:
            raise ValueError(f"TakeChannels({self.start}, {self.size}) needs at least "
                             f"{self.start + self.size} channels, got {c}")
        return (*input_shape[:-1], self.size)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "size": self.size}


@register_layer
class NearestUpsample(keras.layers.Layer):
    """Nearest-neighbour up-sampling by a factor given as a second input: called on
    ``[image, scale]`` with ``scale`` of shape ``(B,)`` or ``(B, 1)`` (one factor for the
    batch; the first is used), so one network serves every scale.

    Args:
        **kwargs: passed to ``keras.layers.Layer``.
    """

    num_inputs = 2

    def call(self, inputs):
        import tensorflow as tf

        x, scale = inputs
        s = tf.cast(tf.round(tf.reshape(scale, [-1])[0]), tf.int32)
        return tf.repeat(tf.repeat(x, s, axis=1), s, axis=2)

    def compute_output_shape(self, input_shapes):
        b, _, _, c = input_shapes[0]
        return (b, None, None, c)


def _add_resize_layer():
    # The bicubic layer is defined (and made serialisable) next to the resize it uses.
    try:
        from visionfw.resize import BicubicResize
    except ImportError:
        return
    if not NAMESPACE.registered("BicubicResize"):
        NAMESPACE.register("BicubicResize", Entry("BicubicResize", "layer", BicubicResize))


_add_resize_layer()

from visionfw.data_step import USRNetDataStep, usrnet_data_step  # noqa: E402,F401


def _block_size(kernel, filters):
    """The block b of :func:`blocked_conv2d` for a stride-1 convolution: 1 (the direct form)
    for 16 filters or more or a kernel under 5x5, where the direct form is as fast; otherwise
    the smallest b up to 4 that gives at least 32 output channels. Measured here (2-core
    AVX-512 CPU, 512x512 9x9 64 -> 3): fp32 228 -> 76 ms, bf16 101 -> 38 ms with b = 4; a 3x3
    64 -> 3 convolution gained nothing."""
    if filters >= 16 or max(kernel) < 5:
        return 1
    return next((b for b in (2, 3) if filters * b * b >= 32), 4)


def blocked_conv2d(x, kernel, block, padding):
    """A stride-1 2-D convolution computed on s x s blocks: the input is padded and folded
    (``space_to_depth``), convolved "valid" with the kernel rearranged to act on blocks, and
    the output unfolded (``depth_to_space``). The same sums as ``tf.nn.conv2d(x, kernel, 1,
    padding)`` in another order: each output position becomes ``block**2`` output channels,
    so a convolution with few filters (an RGB tail) fills the CPU's vector lanes.

    Args:
        x: (B, H, W, Cin); H and W may be unknown.
        kernel: (kh, kw, Cin, Cout).
        block: the block size s (at least 2).
        padding: ``'same'`` (TensorFlow's split: (k - 1) // 2 before) or ``'valid'``.
    """
    import tensorflow as tf

    b = block
    kh, kw, cin, cout = kernel.shape
    k2h, k2w = -(-(b - 1 + kh) // b), -(-(b - 1 + kw) // b)
    shape = tf.shape(x)
    h, w = shape[1], shape[2]
    if padding == "same":
        top, left, ho, wo = (kh - 1) // 2, (kw - 1) // 2, h, w
    else:
        top, left, ho, wo = 0, 0, h - kh + 1, w - kw + 1
    hb, wb = (ho + b - 1) // b, (wo + b - 1) // b
    bottom = b * (hb + k2h - 1) - h - top
    right = b * (wb + k2w - 1) - w - left
    xp = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    # a pad by computed amounts loses the channel count in the graph; the reshape restates
    # it, so a converter (TFLite) sees a convolution of known input depth
    xp = tf.reshape(xp, tf.stack([shape[0], h + top + bottom, w + left + right, cin]))
    folded = tf.nn.space_to_depth(xp, b)
    # blocked kernel: taps (T_row, T_col), input (r_row, r_col, cin), output (a_row, a_col, c)
    # holds kernel[b*T_row + r_row - a_row, b*T_col + r_col - a_col] (zero outside it)
    parts = []
    for a_row in range(b):
        for a_col in range(b):
            kp = tf.pad(kernel, [[a_row, b * k2h - kh - a_row], [a_col, b * k2w - kw - a_col],
                                 [0, 0], [0, 0]])
            kp = tf.reshape(kp, (k2h, b, k2w, b, cin, cout))
            kp = tf.transpose(kp, (0, 2, 1, 3, 4, 5))
            parts.append(tf.reshape(kp, (k2h, k2w, b * b * cin, cout)))
    y = tf.nn.conv2d(folded, tf.concat(parts, axis=-1), 1, "VALID")
    return tf.nn.depth_to_space(y, b)[:, :ho, :wo, :]


class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with the same arguments, weights and results, which computes a
    stride-1 convolution with few filters and a kernel of 5 or more (an RGB tail such as
    SRResNet's 9x9 one) on blocks of pixels (:func:`blocked_conv2d`); oneDNN runs the direct
    form of such a convolution at a small fraction of its speed on wide ones. This is the layer
    the name ``Conv2D`` gives in a link dictionary."""

    def _block(self):
        plain = (self.rank == 2 and tuple(self.strides) == (1, 1) and self.groups == 1
                 and tuple(self.dilation_rate) == (1, 1) and self.data_format == "channels_last"
                 and self.padding in ("same", "valid") and keras.backend.backend() == "tensorflow")
        return _block_size(tuple(self.kernel_size), self.filters) if plain else 1

    def convolution_op(self, inputs, kernel):
        block = self._block()
        if block == 1:
            return super().convolution_op(inputs, kernel)
        return blocked_conv2d(inputs, kernel, block, self.padding)


class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with the same arguments, weights and results, which
    runs as TensorFlow's fused batch-norm kernel (one oneDNN primitive, fused into the
    convolution before it at inference) where it can: 4-D channels-last input, no mask,
    renorm or synchronisation. Keras' own layer spends a dozen element-wise passes on it (and
    casts a bfloat16 input to float32 first). Statistics and moving averages are Keras': the
    biased batch variance, ``momentum``, ``epsilon``. This is the layer the name
    ``BatchNormalization`` gives in a link dictionary."""

    def __init__(self, **kwargs):
        # the fused kernel takes bfloat16 data with float32 parameters: no variable autocast
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)

    def _fused(self, inputs, mask):
        return (mask is None and not self.renorm and not self.synchronized
                and len(inputs.shape) == 4 and self.axis in (3, -1) and self.epsilon >= 1.001e-5
                and keras.backend.backend() == "tensorflow")

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16) else tf.cast(inputs, tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            # the kernel returns the unbiased variance; Keras keeps the biased one
            n = tf.cast(tf.size(x, out_type=tf.int64) // channels, tf.float32)
            variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, data_format="NHWC", is_training=False)
        return tf.cast(y, self.compute_dtype)


class PReLU(keras.layers.PReLU):
    """``keras.layers.PReLU`` with the same arguments, weights and results, computed as one
    multiplication by ``where(x > 0, 1, alpha)``: two passes over the tensor, and three in
    the backward pass, where Keras' ``relu(x) - alpha * relu(-x)`` makes five and more (about
    1.2x faster in float32, 2x in bfloat16 here, forward and backward). This is the layer
    the name ``PReLU`` gives in a link dictionary."""

    def call(self, inputs):
        if keras.backend.backend() != "tensorflow":
            return super().call(inputs)
        import tensorflow as tf

        alpha = tf.cast(self.alpha, inputs.dtype)
        return inputs * tf.where(inputs > 0, tf.ones_like(alpha), alpha)


def _replace_keras_layer(cls):
    # The name in a dictionary means this subclass; the Keras loader leaves the name to it.
    name = cls.__name__
    NAMESPACE.replace(name, Entry(name, "layer", cls))
    keras.saving.register_keras_serializable(package="visionfw", name=name)(cls)


_replace_keras_layer(Conv2D)
_replace_keras_layer(BatchNormalization)
_replace_keras_layer(PReLU)

# PDM's learned degradation and the straight-through 8-bit rounding live beside the other
# degradation code; importing them here registers them with the layers above.
from visionfw.degradation.layers import (CentreOne, KernelDegradation,  # noqa: E402,F401
                                         StraightThroughQuantize)

# The style-based generator's and the spectrally normalised discriminators' layers (ReDegNet)
from visionfw.style_layers import (BilinearUp2x, LearnedScale,  # noqa: E402,F401
                                   ModulatedConv2D, PixelNorm, SNConv2D, SNDense)
