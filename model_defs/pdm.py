"""PDM: Luo et al., "Learning the Degradation Distribution for Blind Image Super-Resolution",
CVPR 2022 -- the kernel and noise generators of the learned degradation, and the PatchGAN
discriminator that judges their LR images against real ones (``train.py pdm``, ``pdm-sr``).

Layouts follow the official code (``greatlog/UnpairedSR``, ``codes/config/PDM-SR/archs/
deg_arch.py`` and ``discriminator.py``): residual blocks are conv - BatchNorm - ReLU - conv
plus the input (no normalisation after the second convolution); BatchNorm's momentum is
PyTorch's (0.1 there, 0.9 in Keras' terms). The degradation itself, ``D(x) = (x correlated
with k) sampled every s-th pixel + n``, is the layer
:class:`visionfw.degradation.layers.KernelDegradation`; the recipe composes the three.
"""
from visionfw.errors import HyperparameterError
from visionfw.graph.chain import Links
from visionfw.models import register_model

BATCHNORM = {"momentum": 0.9}


def _conv(filters, kernel_size, **extra):
    return {"filters": filters, "kernel_size": kernel_size, "padding": "same", **extra}


def _residual(g, x, conv):
    """x + conv(ReLU(BN(conv(x)))), every layer a link of its own."""
    y = g("convo", x, par=conv)
    y = g("aactv", g("btnrm", y, par=BATCHNORM))
    y = g("convo", y, par=conv)
    return g("merge", x, y)


def _trunk(g, x, nf, nb, conv_side):
    """Head (conv, BN, ReLU) and ``nb`` residual blocks, convolutions ``conv_side`` square."""
    y = g("aactv", g("btnrm", g("convo", x, par=_conv(nf, conv_side)), par=BATCHNORM))
    for _ in range(nb):
        y = _residual(g, y, _conv(nf, conv_side))
    return y


@register_model("pdm-kernel", recipe="pdm")
def pdm_kernel(latent: int = 3, nf: int = 64, nb: int = 8, size: int = 0,
               per_pixel: bool = False, scale: int = 4):
    """PDM's kernel generator: random draws ``z`` to blur kernels.

    ``z`` (``latent`` channels of N(0, 1)) through 1x1 convolutions: a head (conv, BatchNorm,
    ReLU), ``nb`` residual blocks, a convolution to ``size**2`` taps and a softmax over them.
    That last convolution starts with zero weights and a bias of one on the centre tap (the
    official ``zero_init``), so every kernel starts near a box (the centre tap ``e`` times the
    others), not a delta. Spatially invariant by default: ``z`` is ``1 x 1`` and the output one
    ``(size, size)`` kernel per image; with ``per_pixel`` ``z`` is a map at the LR size and the
    output one kernel per LR pixel, ``(h, w, size**2)``. The taps are correlation taps (see
    :mod:`visionfw.degradation.layers`). Input: ``z``.

    Args:
        latent: channels of ``z`` (the official ``nc``; 3 in the 2020 configs, 64 in others).
        nf: width of the 1x1 convolutions (64 in every official config).
        nb: residual blocks (8 in the 2020 configs, 16 in the 2017 and 2018 ones).
        size: the kernel's side (0: 11 at x2, 21 otherwise).
        per_pixel: one kernel per LR pixel instead of one per image.
        scale: the SR factor (it sets the default size; the decimation is the recipe's).
    """
    from visionfw.degradation.protocols import aniso_kernel_size

    side = int(size) if size else aniso_kernel_size(scale)
    if min(latent, nf, nb, scale) < 1 or side < 1 or side % 2 == 0:
        raise HyperparameterError(f"pdm-kernel needs latent, nf, nb, scale >= 1 and an odd "
                                  f"size; got latent={latent}, nf={nf}, nb={nb}, "
                                  f"scale={scale}, size={side}")
    g = Links("PDMKernel", meta={"scale": scale, "output": "kernel", "kernel_size": side,
                                 "per_pixel": bool(per_pixel), "inputs": {"latent": "z"}})
    z = g.input("z", shape=(None, None, latent) if per_pixel else (1, 1, latent))
    y = _trunk(g, z, nf, nb, 1)
    y = g("convo", y, par=_conv(side * side, 1, kernel_initializer="zeros",
                                 bias_initializer="visionfw>CentreOne"))
    if per_pixel:
        g("softmax", y, sub="Softmax", out="kernel")
    else:
        y = g("softmax", y, sub="Softmax")
        g("shape", y, sub="Reshape", par={"target_shape": (side, side)}, out="kernel")
    return g.dict()


@register_model("pdm-noise", recipe="pdm")
def pdm_noise(latent: int = 3, nf: int = 64, nb: int = 8, conv: int = 3, dim: int = 3,
              channels: int = 3, zero_mean: bool = False):
    """PDM's noise generator: the noise of a blurred LR image, from the image and random
    draws (signal-dependent, the official ``mix``).

    The LR image and ``z`` (a map of ``latent`` channels of N(0, 1), one draw per pixel: the
    official ``spatial``) concatenated in that order; a head (``conv`` x ``conv`` convolution,
    BatchNorm, ReLU), ``nb`` residual blocks of ``conv`` x ``conv`` convolutions, a 1x1
    convolution to ``dim`` channels that starts at zero (the official ``zero_init``), so the
    noise starts at 0. The recipe adds it to the image unscaled. Inputs: ``lr`` then ``z``.

    Args:
        latent: channels of ``z`` (the official ``nc``, 3).
        nf: width (64; 32 in two of the official configs).
        nb: residual blocks (8 in the 2020 configs, 16 in the 2018 ones).
        conv: side of the head's and blocks' convolutions (the official ``head_k``,
            ``body_k``: 3).
        dim: noise channels: 3 (one noise per colour channel) or 1 (the same on each).
        channels: image channels.
        zero_mean: ours (off in the official code): the degradation removes the noise's mean
            over each image, channel by channel, so the noise cannot shift the brightness
            (recorded in ``meta``; :class:`visionfw.recipes.pdm.LearnedDegradation` applies
            it).
    """
    if min(latent, nf, nb, conv, channels) < 1 or dim not in (1, channels) or conv % 2 == 0:
        raise HyperparameterError(f"pdm-noise needs latent, nf, nb, channels >= 1, an odd conv "
                                  f"and dim 1 or {channels}; got latent={latent}, nf={nf}, "
                                  f"nb={nb}, conv={conv}, dim={dim}, channels={channels}")
    g = Links("PDMNoise", meta={"output": "noise", "inputs": {"image": "lr", "latent": "z"},
                                "zero_mean": bool(zero_mean)})
    lr = g.input("lr", shape=(None, None, channels))
    z = g.input("z", shape=(None, None, latent))
    x = g("concat", lr, z, sub="Concatenate")
    y = _trunk(g, x, nf, nb, conv)
    g("convo", y, par=_conv(dim, 1, kernel_initializer="zeros"), out="noise")
    return g.dict()


@register_model("patchgan", recipe="pdm")
def patchgan(nf: int = 64, nb: int = 3, stride: int = 1, channels: int = 3):
    """The PatchGAN discriminator of PDM's official code: a map of scores per patch.

    A 3x3 convolution to ``nf`` and LeakyReLU(0.2); ``nb - 1`` stages of a 3x3 convolution of
    stride ``stride`` to ``nf * min(2**n, 8)`` channels, InstanceNorm (no affine parameters)
    and LeakyReLU; a 3x3 convolution to ``nf * min(2**nb, 8)``, InstanceNorm, LeakyReLU; a
    3x3 convolution to ``nf`` channels: the scores are ``nf`` channels (64), not one, as in
    the official code. A strided convolution pads one pixel on every side (PyTorch's
    ``padding=1``; Keras' 'same' would pad only after). Input: ``lr``.

    Args:
        nf: width of the first convolution and channels of the score map (64).
        nb: the official ``nb`` (3): ``nb - 1`` strided stages.
        stride: their stride (2 in the official degradation-only configs, 1 in the joint ones).
        channels: image channels.
    """
    if min(nf, nb, stride, channels) < 1:
        raise HyperparameterError(f"patchgan needs nf, nb, stride, channels >= 1; got nf={nf}, "
                                  f"nb={nb}, stride={stride}, channels={channels}")
    norm = {"groups": -1, "center": False, "scale": False, "epsilon": 1e-5}
    lrelu = {"negative_slope": 0.2}
    g = Links("PatchGAN", meta={"output": "score"})
    x = g.input("lr", shape=(None, None, channels))
    y = g("lrelu", g("convo", x, par=_conv(nf, 3)), sub="LeakyReLU", par=lrelu)
    widths = [nf * min(2 ** n, 8) for n in range(1, nb)]
    for width in widths:
        if stride > 1:
            y = g("pad", y, sub="ZeroPadding2D", par={"padding": 1})
            y = g("convo", y, par={"filters": width, "kernel_size": 3, "strides": stride,
                                   "padding": "valid"})
        else:
            y = g("convo", y, par=_conv(width, 3))
        y = g("lrelu", g("norm", y, sub="GroupNormalization", par=norm), sub="LeakyReLU",
              par=lrelu)
    y = g("convo", y, par=_conv(nf * min(2 ** nb, 8), 3))
    y = g("lrelu", g("norm", y, sub="GroupNormalization", par=norm), sub="LeakyReLU", par=lrelu)
    g("convo", y, par=_conv(nf, 3), out="score")
    return g.dict()
