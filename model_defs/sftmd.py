"""SFTMD: Gu et al., "Blind Super-Resolution With Iterative Kernel Correction", CVPR 2019 -- the
SR network of IKC, conditioned on a blur kernel's PCA code through spatial feature transforms.

The code is stretched over the LR image's height and width; every SFT layer
(:class:`visionfw.layers.SFT`) sees it beside the features. Layout and widths follow the
official ``codes/models/modules/sftmd_arch.py``.
"""
from model_defs.srresnet import upsampling_stages
from visionfw.errors import HyperparameterError
from visionfw.models import register_model

LRELU = {"negative_slope": 0.2}    # Keras' LeakyReLU layer defaults to 0.3


def conv(filters, kernel_size=3):
    return {"filters": filters, "kernel_size": kernel_size, "padding": "same"}


def sft_residual_block(nf):
    """SFT, ReLU, conv, SFT, ReLU, conv, plus the identity; the maps are the second input."""
    return {
        "name": "SFTResidualBlock",
        "inputs": ["x", "maps"],
        "sft": [("x", "maps", "t1"), ("c1", "maps", "t2")],
        "sft_sub": "SFT",
        "aactv": [("t1", "r1"), ("t2", "r2")],
        "convo": [("r1", "c1"), ("r2", "c2")],
        "convo_par": conv(nf),
        "merge": [("x", "c2", "y")],
    }


@register_model("sftmd", recipe="sftmd")
def sftmd(nb: int = 16, nf: int = 64, code_len: int = 10, scale: int = 4, channels: int = 3,
          noise: bool = False):
    """SFTMD, the kernel-conditioned SR network of IKC.

    Head: three 3x3 convolutions (LeakyReLU(0.2) after the first two). Body: ``nb`` SFT
    residual blocks, then the long skip from the head, an SFT layer and a 3x3 convolution.
    Up-sampling: per stage a 3x3 convolution, pixel shuffle (PyTorch channel order) and
    LeakyReLU(0.2). Tail: a 9x9 convolution. The official output clamp to [0, 1] is left out.

    Args:
        nb: number of SFT residual blocks.
        nf: width of the features (64 in IKC; the SFT branches stay 32 wide).
        code_len: length of the kernel's PCA code.
        scale: up-sampling factor (2 or 3: one stage; 4: two x2 stages).
        channels: image channels (RGB in [0, 1] for the published weights).
        noise: the code input is ``code_len + 1`` long, the noise level appended (IKC appends
            10 x the noise sigma), as SFTMD trained on noisy images takes it.
    """
    if nb < 1 or nf < 1 or code_len < 1 or channels < 1 or scale not in (2, 3, 4):
        raise HyperparameterError(f"sftmd needs nb, nf, code_len, channels >= 1 and scale 2, 3 "
                                  f"or 4; got nb={nb}, nf={nf}, code_len={code_len}, "
                                  f"channels={channels}, scale={scale}")
    stages = upsampling_stages(scale)
    blocks = [f"b{i}" for i in range(nb + 1)]           # b0 is the head's output
    ups = [f"u{i}" for i in range(len(stages) + 1)]     # u0 is the body's output
    return {
        "name": "SFTMD",
        "meta": {"scale": scale, "color": "rgb", "code_len": code_len, "noise": noise,
                 "inputs": {"image": "lr", "kernel_code": "code"}},
        "inputs": [{"node": "lr", "shape": [None, None, channels]},
                   {"node": "code", "shape": [code_len + int(noise)]}],
        "tile": [("lr", "code", "maps")],               # the code at every LR position
        "tile_sub": "CodeMap",
        "convo": [("lr", "h0"), ("h1", "h2"), ("h3", "b0"), ("mod", "u0")]
                 + [(ups[i], f"p{i}") for i in range(len(stages))] + [(ups[-1], "sr")],
        "convo_par": [conv(nf)] * 4 + [conv(nf * s * s) for s in stages]
                     + [conv(channels, 9)],
        "lrelu": [("h0", "h1"), ("h2", "h3")]
                 + [(f"s{i}", ups[i + 1]) for i in range(len(stages))],
        "lrelu_sub": "LeakyReLU",
        "lrelu_par": LRELU,
        "block": [(blocks[i], "maps", blocks[i + 1]) for i in range(nb)],
        "block_sub": sft_residual_block(nf),
        "merge": [("b0", blocks[-1], "skip")],          # long skip, before the last SFT
        "sft": [("skip", "maps", "mod")],
        "sft_sub": "SFT",
        "shuffle": [(f"p{i}", f"s{i}") for i in range(len(stages))],
        "shuffle_sub": "PixelShuffle",
        "shuffle_par": [{"scale": s, "channel_order": "torch"} for s in stages],
    }
