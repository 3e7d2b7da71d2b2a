"""ReDegNet: Li et al., "From Face to Natural Image: Learning Real Degradation for Blind Image
Super-Resolution", ECCV 2022 -- DegNet (a degradation representation from an LQ/HQ pair),
SynNet (an HQ image degraded as a representation says) and the discriminator that judges
SynNet's LQ images given the HQ image and the representation (``train.py redegnet``).

Layouts follow the official code (``csxmli2016/ReDegNet``, ``redeg/archs/redeg_arch.py``:
``DegNet``, ``SynNetEncoder``, ``SynNetGenerator``, ``NScaleSNDiscriminator``; how they are
called in ``redeg/models/redeg_model.py``; the discriminator keeps the project's own design,
see :func:`redeg_disc`): 3x3 convolutions under spectral normalisation followed by
LeakyReLU(0.2) (none after a residual block's sum); a strided one pads one pixel on every side
(PyTorch's ``padding=1``; Keras' 'same' would pad only after). The official networks see images
in [-1, 1]; ours take [0, 1] images and map them there first (``2x - 1``), and SynNet maps its
tanh output back, ``(y + 1) / 2``. Widths start at ``nf`` at full resolution and double at each
halving up to ``8 * nf``: with ``nf = 64`` at the official 256x256 training size this is the
official table (64, 128, 256, 512, 512, ...); the official table is fixed by resolution
instead, so at another size it starts wider or narrower than ours.
"""
from visionfw.errors import HyperparameterError
from visionfw.graph.chain import Links
from visionfw.models import register_model

LRELU = {"negative_slope": 0.2}
TO_SIGNED = {"scale": 2.0, "offset": -1.0}         # [0, 1] -> [-1, 1]
TO_UNIT = {"scale": 0.5, "offset": 0.5}            # [-1, 1] -> [0, 1]
# the style's bias starts as the official modulation layer's, PyTorch's default for a linear
# layer (uniform within 1 / sqrt(fan in)), not at StyleGAN2's one: a style of one plus a small
# term leaves the output nearly blind to Omega at the start (measured: docs/redegnet.md)
STYLE_BIAS = None


def _width(nf, level):
    """Channels after ``level`` halvings: ``nf`` doubled each time, at most ``8 * nf``."""
    return nf * min(2 ** level, 8)


def _halvings(model, size):
    """How many stride-2 stages take a ``size`` x ``size`` input down to 4x4."""
    stages = (size // 4).bit_length() - 1
    if size < 4 or 4 * 2 ** stages != size:
        raise HyperparameterError(f"{model} needs size = 4 * a power of two (4, 8, 16, 32, 64, "
                                  f"...); got size={size}")
    return stages


def _lrelu(g, x):
    return g("lrelu", x, sub="LeakyReLU", par=LRELU)


def _sn_conv(g, x, filters, kernel=3, stride=1):
    """A spectrally normalised convolution; a strided one pads one pixel on every side."""
    par = {"filters": filters, "kernel_size": kernel, "strides": stride, "padding": "same"}
    if stride > 1:
        x = g("pad", x, sub="ZeroPadding2D", par={"padding": 1})
        par["padding"] = "valid"
    return g("snconv", x, sub="SNConv2D", par=par)


def _down(g, x, nf, stages):
    """conv + LReLU at full resolution, then ``stages`` strided conv + LReLU; returns the
    features at every resolution, finest first."""
    features = [_lrelu(g, _sn_conv(g, x, _width(nf, 0)))]
    for level in range(1, stages + 1):
        features.append(_lrelu(g, _sn_conv(g, features[-1], _width(nf, level), stride=2)))
    return features


def _styled(g, x, w, filters, skip=None, upsample=False):
    """The official ``StyledConv``: a modulated 3x3 convolution (x2 first with ``upsample``),
    plus the encoder's features at that resolution times a learned scalar that starts at
    zero, then a spectrally normalised conv + LReLU."""
    y = g("modconv", x, w, sub="ModulatedConv2D",
          par={"filters": filters, "kernel_size": 3, "upsample": upsample,
               "style_bias": STYLE_BIAS})
    if skip is not None:
        y = g("merge", y, g("gain", skip, sub="LearnedScale"))
    return _lrelu(g, _sn_conv(g, y, filters))


def _to_rgb(g, x, w, previous=None, residual=False):
    """The official ``ToRGB``: tanh(modulated 1x1 convolution without demodulation + bias +
    the previous resolution's RGB resized x2 bilinearly). For a residual SynNet the heads are
    named apart (``resrgb``: weights of a plain SynNet never load into them) and start at
    zero, so that the synthesis starts as the HQ image itself."""
    y = g("resrgb" if residual else "torgb", x, w, sub="ModulatedConv2D",
          par={"filters": 3, "kernel_size": 1, "demodulate": False, "use_bias": True,
               "style_bias": STYLE_BIAS, **({"zero_start": True} if residual else {})})
    if previous is not None:
        y = g("merge", y, g("up", previous, sub="BilinearUp2x"))
    return g("tanh", y, sub="Activation", par={"activation": "tanh"})


@register_model("redeg-degnet", recipe="redegnet")
def redeg_degnet(omega: int = 512, nf: int = 64, size: int = 64):
    """DegNet: the degradation representation Omega of an LQ image and its HQ counterpart.

    Inputs ``lq_up`` (the LQ image brought to the HQ size) then ``hq``, both ``size`` x
    ``size``; the network concatenates them HQ first, as the official code does
    (``net_deg(torch.cat([hq, lq], 1))``). A conv + LReLU to ``nf`` channels, log2(size / 4)
    strided conv + LReLU stages down to 4x4 (all spectrally normalised), flattened; dense
    ``omega``, LReLU, dense ``omega``: Omega, ``(B, omega)``. The official layer flattens
    channel-first, ours channel-last (a converter reorders the first dense layer's rows).

    Args:
        omega: length of the representation (the official ``style_dim``, 512).
        nf: width at full resolution (doubling per stage, at most ``8 * nf``).
        size: the square input's side, 4 times a power of two (the official networks are
            trained at 256; 64 by default here).
    """
    stages = _halvings("redeg-degnet", size)
    if min(omega, nf) < 1:
        raise HyperparameterError(f"redeg-degnet needs omega, nf >= 1; got omega={omega}, "
                                  f"nf={nf}")
    g = Links("ReDegDegNet", meta={"output": "representation", "omega": omega, "size": size})
    lq = g.input("lq_up", shape=(size, size, 3))
    hq = g.input("hq", shape=(size, size, 3))
    x = g("signed", g("concat", hq, lq, sub="Concatenate"), sub="Rescaling", par=TO_SIGNED)
    y = _down(g, x, nf, stages)[-1]
    y = g("flat", y, sub="Flatten")
    y = _lrelu(g, g("dense", y, par={"units": omega}))
    g("dense", y, par={"units": omega}, out="representation")
    return g.dict()


@register_model("redeg-synnet", recipe="redegnet")
def redeg_synnet(omega: int = 512, nf: int = 64, mapping: int = 8, levels: int = 4,
                 w_dim: int = 512, residual: int = 0):
    """SynNet: the HQ image degraded as Omega says (the synthesised LQ image, at the HQ size).

    Inputs ``hq`` (height and width multiples of ``2**levels``) then ``omega``. Encoder (the
    official ``SynNetEncoder``): conv + LReLU, ``levels`` strided conv + LReLU stages, keeping
    the features at every resolution; the coarsest again through conv + LReLU and a residual
    block (conv, LReLU, conv, plus a 1x1 conv of its input). Mapping: PixelNorm, then
    ``mapping`` dense + LReLU layers to ``w`` (``w_dim``); one ``w`` styles every layer.
    Generator (the official ``SynNetGenerator``): conv + LReLU on the encoder's output; at the
    coarsest resolution a styled block (modulated conv, + the encoder's features times a
    learned scalar starting at zero, conv + LReLU); at each finer one a styled block that
    resizes x2 first (with that resolution's features), and one without features. After each
    resolution an RGB head: tanh(modulated 1x1 conv without demodulation + bias + the
    previous RGB resized x2). The last RGB, in [-1, 1], mapped to [0, 1]: ``(B, H, W, 3)``. It
    is the LQ image itself, not a residual added to the HQ one, as in the official code
    (``residual=1`` adds it to the HQ image instead, a choice of ours: see the argument). The
    official ``NoiseInjection`` weights are our zero-start scalars; its x2 is a plain
    bilinear resize before the convolution (its ``blur_kernel`` argument is unused), and its
    mapping layers are plain linear ones (no learning-rate multiplier), as here. The
    modulated kernels are stored with unit variance and scaled by ``1 / sqrt(fan in)`` at run
    time, as there; the affine map to each style keeps the official start, PyTorch's default
    for a linear layer (its bias uniform within ``1 / sqrt(w_dim)``), not StyleGAN2's bias of
    one (``STYLE_BIAS``).

    Args:
        omega: length of the representation (input ``omega``).
        nf: width at full resolution (doubling per halving, at most ``8 * nf``).
        mapping: dense layers of the mapping network (the official ``n_mlp``, 8).
        levels: strided encoder stages (the official encoder goes down to 4x4: 4 stages on
            the 64x64 crops DegNet takes by default, 6 at its 256x256 training size).
        w_dim: width of the mapping network and of ``w`` (the official ``style_dim``, 512).
        residual: 1 to output the HQ image plus half the last RGB (``hq + rgb / 2`` in [0, 1]
            terms, the sum in the signed range), the RGB heads starting at zero, so that the
            synthesis starts as the HQ image and the generator learns only what the
            degradation changes; not in the official code (0, the default, is).
    """
    if residual not in (0, 1):
        raise HyperparameterError(f"redeg-synnet needs residual 0 or 1; got residual={residual}")
    if min(omega, nf, mapping, levels, w_dim) < 1:
        raise HyperparameterError(f"redeg-synnet needs omega, nf, mapping, levels, w_dim >= 1; "
                                  f"got omega={omega}, nf={nf}, mapping={mapping}, "
                                  f"levels={levels}, w_dim={w_dim}")
    step = 2 ** levels
    g = Links("ReDegSynNet", meta={"output": "lq_image", "omega": omega, "multiple": step,
                                   "probe_size": step * -(-48 // step)})
    hq = g.input("hq", shape=(None, None, 3))
    code = g.input("omega", shape=(omega,))
    # encoder: features at every resolution, finest first
    signed = g("signed", hq, sub="Rescaling", par=TO_SIGNED)
    features = _down(g, signed, nf, levels)
    coarse = _width(nf, levels)
    y = _lrelu(g, _sn_conv(g, features[-1], coarse))
    body = _sn_conv(g, _lrelu(g, _sn_conv(g, y, coarse)), coarse)
    y = g("merge", body, _sn_conv(g, y, coarse, kernel=1))
    # mapping network: Omega -> w
    w = g("pnorm", code, sub="PixelNorm")
    for _ in range(mapping):
        w = _lrelu(g, g("dense", w, par={"units": w_dim}))
    # generator, coarsest to finest
    y = _lrelu(g, _sn_conv(g, y, coarse))
    y = _styled(g, y, w, coarse, features[levels])
    rgb = _to_rgb(g, y, w, residual=residual)
    for level in range(levels - 1, -1, -1):
        y = _styled(g, y, w, _width(nf, level), features[level], upsample=True)
        y = _styled(g, y, w, _width(nf, level))
        rgb = _to_rgb(g, y, w, rgb, residual=residual)
    if residual:
        rgb = g("merge", signed, rgb)
    g("unit", rgb, sub="Rescaling", par=TO_UNIT, out="lq")
    return g.dict()


@register_model("redeg-disc", recipe="redegnet")
def redeg_disc(omega: int = 512, nf: int = 64, size: int = 64):
    """ReDegNet's discriminator: one raw score per image for an LQ image given its HQ image
    and the representation Omega (the hinge loss is the recipe's).

    Inputs ``lq_up``, ``hq`` (``size`` x ``size``) then ``omega``; the images concatenated LQ
    first, as the official code does (``torch.cat([x, y])`` with ``x`` the LQ image). A conv
    + LReLU to ``nf``, log2(size / 4) strided conv + LReLU stages down to 4x4 (spectrally
    normalised), global average pooling to ``h``; the score is ``linear(h) + <h, embed(omega)>``
    (projection discrimination, both dense layers spectrally normalised): ``(B, 1)``.

    The official discriminator differs, and we keep the project's design: it is built of
    residual blocks (ReLU, average pooling and 1x1 shortcuts) down to 8x8, average-pooled, and
    it concatenates Omega to the pooled features before two spectrally normalised linear
    layers with no activation between them -- so there Omega only adds a term linear in
    Omega to the score, where the projection lets it weigh the image features.

    Args:
        omega: length of the representation (input ``omega``).
        nf: width at full resolution (doubling per stage, at most ``8 * nf``).
        size: the square input's side, 4 times a power of two.
    """
    stages = _halvings("redeg-disc", size)
    if min(omega, nf) < 1:
        raise HyperparameterError(f"redeg-disc needs omega, nf >= 1; got omega={omega}, nf={nf}")
    g = Links("ReDegDisc", meta={"output": "score", "omega": omega, "size": size})
    lq = g.input("lq_up", shape=(size, size, 3))
    hq = g.input("hq", shape=(size, size, 3))
    code = g.input("omega", shape=(omega,))
    x = g("signed", g("concat", lq, hq, sub="Concatenate"), sub="Rescaling", par=TO_SIGNED)
    # the pooling and the score in float32 under any policy: one number summed from many
    # products that largely cancel, where bfloat16 would lose percents of it (and it is cheap)
    exact = {"dtype": "float32"}
    h = g("pool", _down(g, x, nf, stages)[-1], sub="GlobalAveragePooling2D", par=exact)
    embedded = g("sndense", code, sub="SNDense", par={"units": _width(nf, stages), **exact})
    projection = g("dot", h, embedded, sub="Dot", par={"axes": 1, **exact})
    g("merge", g("sndense", h, sub="SNDense", par={"units": 1, **exact}), projection,
      out="score")
    return g.dict()
