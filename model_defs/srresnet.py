"""SRResNet: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017 (the generator, trained with a pixel loss)."""
from visionfw.errors import HyperparameterError
from visionfw.models import register_model


def upsampling_stages(scale):
    """Pixel-shuffle factors that make ``scale``: x2 stages for powers of two, one x3 stage for 3."""
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * (scale.bit_length() - 1)
    raise HyperparameterError(f"scale must be 2, 3, 4 or 8 for pixel-shuffle up-sampling, "
                              f"got {scale}")


@register_model("srresnet")
def srresnet(B: int = 16, filters: int = 64, scale: int = 4, batchnorm: bool = True):
    """SRResNet.

    Args:
        B: number of residual blocks (conv-BN-PReLU-conv-BN with an identity skip).
        filters: width of every convolution.
        scale: up-sampling factor (2, 3, 4 or 8).
        batchnorm: False gives the BatchNorm-free variant (as in EDSR's simplification).
    """
    if B < 1 or filters < 1:
        raise HyperparameterError(f"srresnet needs B >= 1 and filters >= 1, got B={B}, "
                                  f"filters={filters}")
    stages = upsampling_stages(scale)
    U = len(stages)
    # Nodes: 0 input, 1 head conv, 2 PReLU, 3..B+2 residual blocks, then body conv (B+3),
    # body BN (B+4 when present), long skip, U up-sampling stages, tail conv.
    conv = {"kernel_size": (3, 3), "padding": "same", "filters": filters}
    body = B + 3 + int(batchnorm)          # the node the long skip adds to node 2
    skip = body + 1
    d = {
        "name": "SRResNet",
        "meta": {"scale": scale, "color": "rgb"},
        "convo": [(0, 1), (B + 2, B + 3), (skip + U, skip + U + 1)],
        "convo_sub": ["Conv2D"] * 3,
        "convo_par": [{"filters": filters, "kernel_size": (9, 9), "padding": "same"},
                      conv,
                      {"filters": 3, "kernel_size": (9, 9), "padding": "same"}],
        "aactv": [(1, 2)],
        "aactv_sub": ["PReLU"],
        "aactv_par": [{"shared_axes": (1, 2),
                       "alpha_initializer": {"class_name": "Constant", "config": {"value": 0.25}}}],
        "block": [(2 + i, 3 + i) for i in range(B)]
                 + [(skip + i, skip + i + 1) for i in range(U)],
        "block_sub": ["gen_residual_block"] * B + ["gen_last_block"] * U,
        "block_par": [{"batchnorm": batchnorm}] * B + [{"scale": s} for s in stages],
        "merge": [(2, body, skip)],
        "merge_sub": ["Add"],
    }
    if batchnorm:
        d["btnrm"] = [(B + 3, B + 4)]
    return d
