"""Registered block functions: each takes input tensors and keyword parameters, returns a tensor.

A block becomes one nested model in the built graph, so its layers' names only need to be
unique inside the block.
"""
import keras

from visionfw.graph.registry import register_block
from visionfw.layers import BatchNormalization, Conv2D, PixelShuffle, PReLU


def _prelu(name):
    # PyTorch's PReLU starts at 0.25, a better start than Keras' 0 for these networks.
    return PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=(1, 2),
                 name=name)


@register_block
def gen_residual_block(x, filters=None, kernel_size=3, batchnorm=True):
    """SRResNet's residual block: conv-BN-PReLU-conv-BN plus the identity.

    Args:
        x: input tensor (B, H, W, C).
        filters: convolution width; defaults to C, which the skip connection needs.
        kernel_size: convolution kernel size.
        batchnorm: False drops both BatchNormalization layers.
    """
    filters = filters or x.shape[-1]
    y = Conv2D(filters, kernel_size, padding="same", name="conv1")(x)
    if batchnorm:
        y = BatchNormalization(name="bn1")(y)
    y = _prelu("prelu")(y)
    y = Conv2D(filters, kernel_size, padding="same", name="conv2")(y)
    if batchnorm:
        y = BatchNormalization(name="bn2")(y)
    return keras.layers.Add(name="add")([x, y])


@register_block
def gen_last_block(x, filters=None, scale=2, kernel_size=3):
    """Sub-pixel up-sampling stage: conv to filters*scale^2 channels, pixel shuffle, PReLU.

    Args:
        x: input tensor (B, H, W, C).
        filters: channels after the shuffle; defaults to C.
        scale: up-sampling factor of this stage.
        kernel_size: convolution kernel size.
    """
    filters = filters or x.shape[-1]
    y = Conv2D(filters * scale * scale, kernel_size, padding="same", name="conv")(x)
    y = PixelShuffle(scale, name="shuffle")(y)
    return _prelu("prelu")(y)


@register_block
def conditional_residual_block(x, condition, reduction=16, slope=0.2):
    """DAN's conditional residual block: ``x`` (the path being updated, C channels) and the
    condition concatenated in that order; 3x3 conv (C + t -> C + t), LeakyReLU, 3x3 conv
    (-> C); channel attention (global average, 1x1 conv down to ``C // reduction``, LeakyReLU,
    1x1 conv up, sigmoid, times the features); plus ``x``. The condition passes by: the next
    block takes it again.

    Args:
        x: the basic input (B, H, W, C).
        condition: the conditional input (B, H, W, t).
        reduction: channel attention's squeeze factor (16 in DAN).
        slope: LeakyReLU's negative slope (0.2 in DAN).
    """
    nf = x.shape[-1]
    joint = keras.layers.Concatenate(name="concat")([x, condition])
    y = Conv2D(joint.shape[-1], 3, padding="same", name="conv1")(joint)
    y = keras.layers.LeakyReLU(negative_slope=slope, name="lrelu1")(y)
    y = Conv2D(nf, 3, padding="same", name="conv2")(y)
    w = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(y)
    w = Conv2D(max(nf // reduction, 1), 1, name="squeeze")(w)
    w = keras.layers.LeakyReLU(negative_slope=slope, name="lrelu2")(w)
    w = Conv2D(nf, 1, activation="sigmoid", name="excite")(w)
    y = keras.layers.Multiply(name="attend")([y, w])
    return keras.layers.Add(name="add")([x, y])
