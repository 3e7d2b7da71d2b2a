"""USRNet: Zhang, Van Gool, Timofte, "Deep Unfolding Network for Image Super-Resolution",
CVPR 2020 -- half-quadratic splitting of ``1/(2 sigma^2) ||y - (x conv k) down_s||^2 +
lambda Phi(x)`` unfolded into K iterations of a closed-form data step
(:func:`visionfw.layers.usrnet_data_step`, no weights) and a prior step (a ResUNet, shared by
every iteration), with a small network giving each iteration's weights alpha_k and beta_k.

Layout and conventions follow the official ``models/network_usrnet.py`` (cszn/USRNet, also in
cszn/KAIR): convolutions without biases in the ResUNet, 2x2 strided convolutions down and 2x2
transposed convolutions up, additive skips; the hyper-parameter network takes the noise level
on the [0, 1] scale and the raw scale factor, in that order, and returns the K alphas first,
then the K betas; the prior sees the estimate first and the beta map second; the first
estimate is the nearest-neighbour up-sampling of the LR image.
"""
from visionfw.errors import HyperparameterError
from visionfw.graph.chain import Links
from visionfw.models import register_model


def _conv(filters, kernel_size=3, strides=1):
    return {"filters": filters, "kernel_size": kernel_size, "strides": strides,
            "padding": "same", "use_bias": False}


def residual_block(filters):
    """conv, ReLU, conv (3x3, no biases) plus the identity."""
    g = Links("ResBlock")
    x = g.input(shape=(None, None, filters))
    y = g("convo", g("aactv", g("convo", x, par=_conv(filters))), par=_conv(filters))
    g("merge", x, y)
    return g.dict()


def resunet_body(nc=64, nb=2, in_channels=4, out_channels=3, levels=4):
    """The ResUNet itself: one input of ``in_channels`` (the image and its noise map), padded
    to a multiple of ``2**(levels-1)`` and cropped back.

    Head conv; per level down: ``nb`` residual blocks, then a 2x2 stride-2 conv that doubles
    the width; ``nb`` blocks at the bottom; per level up: the skip added, a 2x2 transposed conv
    that halves the width, ``nb`` blocks; the last skip added, tail conv.
    """
    widths = [nc * 2 ** i for i in range(levels)]
    g = Links("ResUNet")
    x = g.input(shape=(None, None, in_channels))
    padded = g("pad", x, sub="PadToMultiple", par={"multiple": 2 ** (levels - 1)})
    y = g("convo", padded, par=_conv(widths[0]))
    skips = [y]
    for level in range(levels - 1):                       # down
        for _ in range(nb):
            y = g("block", y, sub=residual_block(widths[level]))
        y = g("convo", y, par=_conv(widths[level + 1], kernel_size=2, strides=2))
        skips.append(y)
    for _ in range(nb):                                   # bottom
        y = g("block", y, sub=residual_block(widths[-1]))
    for level in reversed(range(levels - 1)):             # up
        y = g("merge", y, skips[level + 1])
        y = g("upconv", y, sub="Conv2DTranspose",
              par={"filters": widths[level], "kernel_size": 2, "strides": 2,
                   "use_bias": False})
        for _ in range(nb):
            y = g("block", y, sub=residual_block(widths[level]))
    y = g("merge", y, skips[0])
    y = g("convo", y, par=_conv(out_channels))
    g("crop", y, x, sub="CropLike")
    return g.dict()


def _check(nc, nb, levels, channels):
    if nc < 1 or nb < 0 or levels < 1 or channels < 1:
        raise HyperparameterError(f"ResUNet needs nc >= 1, nb >= 0, levels >= 1 and channels "
                                  f">= 1; got nc={nc}, nb={nb}, levels={levels}, "
                                  f"channels={channels}")


@register_model("resunet")
def resunet(nc: int = 64, nb: int = 2, levels: int = 4, channels: int = 3):
    """ResUNet as a non-blind denoiser: the image and its noise level (0-255 scale, stretched
    over the image as ``sigma / 255``, concatenated after the image). USRNet's prior is this
    network with the noise map replaced by the iteration's beta.

    Args:
        nc: width of the first level (each level below doubles it: 64/128/256/512).
        nb: residual blocks per level.
        levels: number of scales (the image is padded to a multiple of ``2**(levels-1)``).
        channels: image channels.
    """
    _check(nc, nb, levels, channels)
    g = Links("ResUNetDenoiser", meta={"scale": 1, "color": "rgb",
                                       "inputs": {"image": "lr", "noise_sigma": "noise_sigma"}})
    lr = g.input("lr", shape=(None, None, channels))
    sigma = g.input("noise_sigma", shape=())
    level = g("rescale", g("column", sigma, sub="Reshape", par={"target_shape": (1,)}),
              sub="Rescaling", par={"scale": 1 / 255})
    noise_map = g("tile", lr, level, sub="CodeMap")
    joint = g("concat", lr, noise_map, sub="Concatenate")
    g("prior", joint, sub=resunet_body(nc, nb, channels + 1, channels, levels))
    return g.dict()


@register_model("usrnet", recipe="usrnet")
def usrnet(iterations: int = 8, nc: int = 64, nb: int = 2, levels: int = 4, hidden: int = 64,
           channels: int = 3, scale: int = 4):
    """USRNet.

    Inputs: the LR image, its blur kernel ``(kh, kw)`` (any size up to the SR image's), the
    scale factor and the noise level (0-255 scale), one per image. Each iteration: the data
    step from the current estimate, then the ResUNet prior on the estimate and the beta map.

    Args:
        iterations: K, the unfolded iterations (8 in USRNet).
        nc, nb, levels: the ResUNet prior's width, blocks per level and number of scales.
        hidden: width of the hyper-parameter network's two hidden layers.
        channels: image channels.
        scale: the factor test.py and train.py use when none is given (the network takes
            any integer scale as an input).
    """
    _check(nc, nb, levels, channels)
    if iterations < 1 or hidden < 1 or scale < 1:
        raise HyperparameterError(f"usrnet needs iterations, hidden and scale >= 1; got "
                                  f"iterations={iterations}, hidden={hidden}, scale={scale}")
    from visionfw.methods.accepts import USRNET_ACCEPTS

    g = Links("USRNet", meta={"scale": scale, "color": "rgb", "scales": "input",
                              "inputs": {"image": "lr", "kernel": "kernel", "scale": "scale",
                                         "noise_sigma": "noise_sigma"},
                              "accepts": USRNET_ACCEPTS})
    lr = g.input("lr", shape=(None, None, channels))
    kernel = g.input("kernel", shape=(None, None))
    factor = g.input("scale", shape=())
    sigma = g.input("noise_sigma", shape=())
    # hyper-parameters: (sigma / 255, s) -> alphas then betas, softplus + 1e-6
    column = {"target_shape": (1,)}
    s = g("column", factor, sub="Reshape", par=column)
    level = g("rescale", g("column", sigma, sub="Reshape", par=column), sub="Rescaling",
              par={"scale": 1 / 255})
    h = g("concat", level, s, sub="Concatenate")
    h = g("dense", h, par={"units": hidden, "activation": "relu"})
    h = g("dense", h, par={"units": hidden, "activation": "relu"})
    h = g("dense", h, par={"units": 2 * iterations, "activation": "softplus"})
    weights = g("offset", h, sub="Offset", par={"value": 1e-6})
    # unfolding
    prior = resunet_body(nc, nb, channels + 1, channels, levels)
    x = g("init", lr, s, sub="NearestUpsample")
    for i in range(iterations):
        alpha = g("take", weights, sub="TakeChannels", par={"start": i})
        beta = g("take", weights, sub="TakeChannels", par={"start": iterations + i})
        z = g("data", x, lr, kernel, alpha, s, sub="USRNetDataStep")
        joint = g("concat", z, g("tile", z, beta, sub="CodeMap"), sub="Concatenate")
        x = g("prior", joint, sub=prior, share="prior")
    return g.dict()
