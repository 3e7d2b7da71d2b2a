"""DAN: Luo et al., "Unfolding the Alternating Optimization for Blind Super Resolution",
NeurIPS 2020 (DANv1) -- the Estimator and the Restorer, which ``train.py dan`` unfolds together.

Both are built of conditional residual blocks (:func:`visionfw.blocks.
conditional_residual_block`). Layouts follow the official DANv1 code
(``codes/config/DANv1/models/modules/dan_arch.py``): the Estimator updates LR features
conditioned on features of the current SR image; the Restorer updates LR features conditioned
on the kernel code stretched over the image. Both code kernels with the PCA carried in
``meta['pca']`` (codes taken without subtracting the mean, as DAN's are).
"""
from model_defs.srresnet import upsampling_stages
from visionfw.errors import HyperparameterError
from visionfw.graph.chain import Links
from visionfw.models import register_model


def _conv(filters, kernel_size=3, **extra):
    return {"filters": filters, "kernel_size": kernel_size, "padding": "same", **extra}


def _estimator_trunk(g, nf, nb, channels, scale):
    """The Estimator's inputs and blocks: LR (1x1 conv to ``nf``) updated by ``nb`` blocks
    conditioned on SR brought to LR size (padded by 4, 9x9 conv of stride ``scale``)."""
    lr = g.input("lr", shape=(None, None, channels))
    sr = g.input("sr", shape=(None, None, channels))
    f = g("convo", lr, par=_conv(nf, 1))
    c = g("pad", sr, sub="ZeroPadding2D", par={"padding": 4})
    c = g("convo", c, par={"filters": nf, "kernel_size": 9, "strides": scale,
                           "padding": "valid"})
    for _ in range(nb):
        f = g("block", f, c, sub="conditional_residual_block")
    return f


@register_model("dan-estimator", recipe="dan")
def dan_estimator(nf: int = 32, nb: int = 5, code_len: int = 10, channels: int = 3,
                  scale: int = 4):
    """DAN's Estimator: the kernel code from the LR image and the current SR image.

    The LR image through a 1x1 convolution to ``nf`` channels; the SR image brought to the LR
    size by a 9x9 convolution of stride ``scale`` (padded by 4 on every side, as PyTorch's
    ``padding=4``: 'same' would pad differently); ``nb`` conditional residual blocks updating
    the LR features with the SR features as the condition; a 3x3 convolution to ``code_len``
    channels and global average pooling to the code. Inputs: ``lr`` then ``sr``.

    Args:
        nf: feature width (32 in DAN).
        nb: conditional residual blocks (5 in DAN).
        code_len: the PCA code's length (10 in DAN).
        channels: image channels.
        scale: the SR factor (the stride that brings SR to LR size).
    """
    if min(nf, nb, code_len, channels, scale) < 1:
        raise HyperparameterError(f"dan-estimator needs nf, nb, code_len, channels, scale >= 1; "
                                  f"got nf={nf}, nb={nb}, code_len={code_len}, "
                                  f"channels={channels}, scale={scale}")
    g = Links("DANEstimator", meta={"scale": scale, "color": "rgb", "output": "kernel_code",
                                    "code_len": code_len,
                                    "inputs": {"image": "lr", "sr": "sr"}})
    f = _estimator_trunk(g, nf, nb, channels, scale)
    f = g("convo", f, par=_conv(code_len))
    g("pool", f, sub="GlobalAveragePooling2D", out="code")
    return g.dict()


@register_model("dan-restorer", recipe="dan")
def dan_restorer(nf: int = 64, nb: int = 40, code_len: int = 10, channels: int = 3,
                 scale: int = 4):
    """DAN's Restorer: SR from the LR image and a kernel code.

    A 3x3 head of ``nf``; ``nb`` conditional residual blocks with the code stretched over the
    LR image as the condition; a 3x3 fusion convolution; up-sampling by 3x3 convolutions and
    pixel shuffles (two x2 stages at x4, one stage at x2 and x3), no activations between them;
    a 3x3 convolution to the image. No long skip and no clamp, as in DANv1. Inputs: ``lr``
    then ``code``.

    Args:
        nf: feature width (64 in DAN).
        nb: conditional residual blocks (40 in DANv1's trained networks).
        code_len: the PCA code's length (10 in DAN).
        channels: image channels.
        scale: up-sampling factor (2, 3 or 4).
    """
    if min(nf, nb, code_len, channels) < 1 or scale not in (2, 3, 4):
        raise HyperparameterError(f"dan-restorer needs nf, nb, code_len, channels >= 1 and scale "
                                  f"2, 3 or 4; got nf={nf}, nb={nb}, code_len={code_len}, "
                                  f"channels={channels}, scale={scale}")
    g = Links("DANRestorer", meta={"scale": scale, "color": "rgb", "code_len": code_len,
                                   "inputs": {"image": "lr", "kernel_code": "code"}})
    lr = g.input("lr", shape=(None, None, channels))
    code = g.input("code", shape=(code_len,))
    f = g("convo", lr, par=_conv(nf))
    maps = g("tile", f, code, sub="CodeMap")
    for _ in range(nb):
        f = g("block", f, maps, sub="conditional_residual_block")
    f = g("convo", f, par=_conv(nf))                          # fusion
    for s in upsampling_stages(scale):
        f = g("convo", f, par=_conv(nf * s * s))
        f = g("shuffle", f, sub="PixelShuffle", par={"scale": s, "channel_order": "torch"})
    g("convo", f, par=_conv(channels), out="sr")
    return g.dict()


def _dual_path_group(g, x, c, nb, width):
    """DANv2's dual-path conditional group on ``x`` (the path being updated) and ``c`` (the
    condition), both of the same width: ``nb`` blocks, each ``c' = c + f2``, ``x' = x + f1 *
    f2`` with ``f1`` two 3x3 convolutions of ``x`` and ``f2`` two of ``c`` (LeakyReLU 0.2
    between), then the group's skip. In the official PyTorch the blocks update the list they
    are given in place, so the skip adds the group's output to itself: the group returns twice
    its last block's ``x``, which is what is computed here (the condition path's output
    feeds nothing and is left out)."""
    def branch(t):
        t = g("convo", t, par=_conv(width))
        t = g("aactv", t, sub="LeakyReLU", par={"negative_slope": 0.2})
        return g("convo", t, par=_conv(width))

    for i in range(nb):
        f1, f2 = branch(x), branch(c)
        x = g("merge", x, g("merge", f1, f2, sub="Multiply"))
        if i < nb - 1:               # the last block's condition feeds nothing
            c = g("merge", c, f2)
    return g("merge", x, x)


@register_model("dan-kernel-estimator", recipe="dan-usrnet")
def dan_kernel_estimator(nf: int = 64, nb: int = 5, size: int = 25, channels: int = 3,
                         scale: int = 4, norm: str = "none"):
    """DANv2's Estimator, which emits the kernel itself, for a restorer that takes kernels
    (USRNet). As the official DANv2 code (``codes/config/DANv2/models/modules/dan_arch.py``):
    the LR image through a 5x5 convolution to ``nf // 2`` channels; the current SR image
    brought to LR size by a ``(4s + 1) x (4s + 1)`` convolution of stride ``s`` (padded by
    ``2s``) to ``nf // 2`` channels -- a footprint of 17 HR pixels at x4, the width of a wide
    blur; a dual-path conditional group of ``nb`` blocks, the LR features updated by a
    product with the SR features'; a 3x3 convolution to ``nf``, global average pooling, a
    dense layer (the official 1x1 convolution) to ``size**2`` taps and a softmax, reshaped to
    a ``(size, size)`` kernel -- non-negative and summing to one, so USRNet's data step gets a
    valid blur. Inputs: ``lr`` then ``sr``.

    Args:
        nf: the width after the group (64 in DANv2); each path has ``nf // 2``.
        nb: dual-path conditional blocks (5 in DANv2).
        size: the kernel's side (odd; 25: the kernels the zoo USRNet trained on).
        channels: image channels.
        scale: the SR factor (the stride that brings SR to LR size).
        norm: ``"none"`` (DANv2's) or ``"layer"``: the global average through a layer
            normalisation before the dense layer (ours, off by default), so that the kernel
            does not follow the images' contrast: the group multiplies LR features by SR
            features, so without it the logits grow nearly with the square of the contrast
            and the softmax sharpens or flattens with it (as KENet's ``norm``; docs/dan.md).
    """
    if norm not in ("none", "layer"):
        raise HyperparameterError(f"dan-kernel-estimator: norm must be 'none' or 'layer'; "
                                  f"got {norm!r}")
    if min(nf // 2, nb, channels, scale, size) < 1 or size % 2 == 0:
        raise HyperparameterError(f"dan-kernel-estimator needs nf >= 2, nb, channels, scale >= 1 "
                                  f"and an odd size; got nf={nf}, nb={nb}, channels={channels}, "
                                  f"scale={scale}, size={size}")
    g = Links("DANKernelEstimator", meta={"scale": scale, "color": "rgb", "output": "kernel",
                                          "kernel_size": size,
                                          "inputs": {"image": "lr", "sr": "sr"}})
    half = nf // 2
    lr = g.input("lr", shape=(None, None, channels))
    sr = g.input("sr", shape=(None, None, channels))
    f = g("convo", lr, par=_conv(half, 5))
    c = g("pad", sr, sub="ZeroPadding2D", par={"padding": 2 * scale})
    c = g("convo", c, par={"filters": half, "kernel_size": 4 * scale + 1, "strides": scale,
                           "padding": "valid"})
    f = _dual_path_group(g, f, c, nb, half)
    f = g("convo", f, par=_conv(nf))
    f = g("pool", f, sub="GlobalAveragePooling2D")
    if norm == "layer":
        f = g("norm", f, sub="LayerNormalization")
    f = g("dense", f, par={"units": size * size})
    f = g("softmax", f, sub="Softmax")
    g("shape", f, sub="Reshape", par={"target_shape": (size, size)}, out="kernel")
    return g.dict()
