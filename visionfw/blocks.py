"""Registered block functions: each takes input tensors and keyword parameters, returns a tensor.

A block becomes one nested model in the built graph, so its layers' names only need to be
unique inside the block.
"""
import keras

from visionfw.activations import activation_link
from visionfw.graph.registry import register_block, resolve
from visionfw.layers import BatchNormalization, Conv2D, PixelShuffle


def activation_layer(activation):
    """The layer of activation ``activation`` (a name of :data:`visionfw.activations.ACTIVATIONS`),
    made as a dictionary's ``_sub``/``_par`` would make it and named after the activation
    (``prelu``: the weight paths of SRResNet checkpoints)."""
    sub, par = activation_link(activation)
    return resolve(sub).target(name=activation, **par)


@register_block
def gen_residual_block(x, filters=None, kernel_size=3, batchnorm=True, activation="prelu"):
    """SRResNet's residual block: conv-BN-activation-conv-BN plus the identity.

    Args:
        x: input tensor (B, H, W, C).
        filters: convolution width; defaults to C, which the skip connection needs.
        kernel_size: convolution kernel size.
        batchnorm: False drops both BatchNormalization layers.
        activation: 'prelu' (SRResNet's, one slope per channel), 'leakyrelu', 'relu', 'gelu'
            or 'silu' (:data:`visionfw.activations.ACTIVATIONS`).
    """
    filters = filters or x.shape[-1]
    y = Conv2D(filters, kernel_size, padding="same", name="conv1")(x)
    if batchnorm:
        y = BatchNormalization(name="bn1")(y)
    y = activation_layer(activation)(y)
    y = Conv2D(filters, kernel_size, padding="same", name="conv2")(y)
    if batchnorm:
        y = BatchNormalization(name="bn2")(y)
    return keras.layers.Add(name="add")([x, y])


@register_block
def gen_last_block(x, filters=None, scale=2, kernel_size=3, activation="prelu"):
    """Sub-pixel up-sampling stage: conv to filters*scale^2 channels, pixel shuffle, activation.

    Args:
        x: input tensor (B, H, W, C).
        filters: channels after the shuffle; defaults to C.
        scale: up-sampling factor of this stage.
        kernel_size: convolution kernel size.
        activation: as in :func:`gen_residual_block` (default 'prelu').
    """
    filters = filters or x.shape[-1]
    y = Conv2D(filters * scale * scale, kernel_size, padding="same", name="conv")(x)
    y = PixelShuffle(scale, name="shuffle")(y)
    return activation_layer(activation)(y)


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
