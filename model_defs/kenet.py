"""KENet: Cao et al., "Kernel Estimation Network for Blind Super-Resolution" -- the blur kernel
regressed from the LR image in one pass.

No public code of KENet is known; the network below follows the paper's figure as the
project's KENet issue states it. Where the figure leaves a choice open we chose (and say so in
``docs/kenet.md``): 3x3 convolutions with 'same' padding, residual blocks of two 3x3
convolutions with a ReLU between them and no normalisation, 2x2 max-pooling of stride 2.
"""
from visionfw.errors import HyperparameterError
from visionfw.graph.chain import Links
from visionfw.models import register_model

def kernel_size_for(scale, size=0):
    """The estimated kernel's side: ``size`` when given, else KENet's default for ``scale``,
    the ``aniso`` protocol's (11 at x2, 21 otherwise), which the recipe trains on."""
    from visionfw.degradation.protocols import aniso_kernel_size

    return int(size) if size else aniso_kernel_size(scale)


def _residual(g, x, conv):
    """x + conv(relu(conv(x))), every layer a link of its own (the layer table shows them)."""
    y = g("convo", x, par=conv)
    y = g("relu", y, sub="ReLU")
    y = g("convo", y, par=conv)
    return g("merge", x, y, sub="Add")


@register_model("kenet", recipe="kenet")
def kenet(nf: int = 64, fc: int = 1024, size: int = 0, channels: int = 3, scale: int = 4,
          pool: str = "last", norm: str = "none"):
    """KENet, in the forward order of the paper's figure.

    conv + ReLU + residual block at the LR size; three stages of 2x2 max-pooling, a conv of
    ``nf * s`` channels (stage ``s`` = 1, 2, 3) + ReLU and a residual block; global average
    pooling; dense ``fc`` + ReLU, dense ``fc`` + ReLU, dense ``size**2``, softmax over the taps,
    reshaped to a ``(size, size)`` kernel -- non-negative and summing to one by construction.

    Args:
        nf: width of the first stage (64 in the paper).
        fc: width of the two hidden dense layers (1024 in the paper).
        size: the kernel's side (0: 11 at x2, 21 otherwise).
        channels: image channels.
        scale: the SR factor the estimator is trained for (it sets the default size; the
            network itself works on any LR image of at least 8x8 pixels).
        pool: ``"last"`` (the paper's figure): the dense layers read the global average of
            the last stage; ``"stages"``: the global averages of stages 1, 2 and 3,
            concatenated (ours: the middle stages hold the direction of a blur along a
            diagonal, which the last one drops; docs/kenet.md, "Direction and elongation").
        norm: ``"none"`` (the paper's) or ``"layer"``: each global average through a layer
            normalisation before the dense layers, so they read it independent of the image's
            contrast (ours, as ``pool``).
    """
    side = kernel_size_for(scale, size)
    if nf < 1 or fc < 1 or channels < 1 or side < 1 or side % 2 == 0:
        raise HyperparameterError(f"kenet needs nf, fc, channels >= 1 and an odd size; got "
                                  f"nf={nf}, fc={fc}, channels={channels}, size={side}")
    if pool not in ("last", "stages") or norm not in ("none", "layer"):
        raise HyperparameterError(f"kenet: pool must be 'last' or 'stages' and norm 'none' or "
                                  f"'layer'; got pool={pool!r}, norm={norm!r}")
    g = Links("KENet", meta={"scale": scale, "color": "rgb", "output": "kernel",
                             "kernel_size": side})
    x = g.input("lr", shape=(None, None, channels))
    conv = {"filters": nf, "kernel_size": 3, "padding": "same"}
    y = g("relu", g("convo", x, par=conv), sub="ReLU")
    y = _residual(g, y, conv)
    stages = []
    for stage in (1, 2, 3):
        width = {"filters": nf * stage, "kernel_size": 3, "padding": "same"}
        y = g("pool", y, sub="MaxPooling2D", par={"pool_size": 2, "strides": 2})
        y = g("relu", g("convo", y, par=width), sub="ReLU")
        y = _residual(g, y, width)
        stages.append(y)
    read = stages[-1:] if pool == "last" else stages         # the paper's, or stages 1-3
    pooled = [g("gpool", t, sub="GlobalAveragePooling2D") for t in read]
    if norm == "layer":
        pooled = [g("norm", t, sub="LayerNormalization") for t in pooled]
    y = pooled[0] if len(pooled) == 1 else g("concat", *pooled, sub="Concatenate")
    y = g("dense", y, sub="Dense", par={"units": fc, "activation": "relu"})
    y = g("dense", y, sub="Dense", par={"units": fc, "activation": "relu"})
    y = g("dense", y, sub="Dense", par={"units": side * side})
    y = g("softmax", y, sub="Softmax")
    g("shape", y, sub="Reshape", par={"target_shape": (side, side)}, out="kernel")
    return g.dict()
