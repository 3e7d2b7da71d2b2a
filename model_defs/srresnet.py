"""SRResNet: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017 (the generator, trained with a pixel loss)."""
from visionfw.activations import ACTIVATIONS, activation_link
from visionfw.errors import HyperparameterError
from visionfw.graph.chain import Links
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
def srresnet(B: int = 16, filters: int = 64, scale: int = 4, batchnorm: bool = True,
             activation: str = "prelu"):
    """SRResNet.

    Args:
        B: number of residual blocks (conv-BN-activation-conv-BN with an identity skip).
        filters: width of every convolution.
        scale: up-sampling factor (2, 3, 4 or 8).
        batchnorm: False gives the BatchNorm-free variant (as in EDSR's simplification).
        activation: the activation of the head, of every residual block and of every
            up-sampling stage: 'prelu' (the paper's, one slope per channel), 'leakyrelu'
            (slope 0.2), 'relu', 'gelu' or 'silu'.
    """
    if B < 1 or filters < 1:
        raise HyperparameterError(f"srresnet needs B >= 1 and filters >= 1, got B={B}, "
                                  f"filters={filters}")
    if activation not in ACTIVATIONS:
        raise HyperparameterError(f"srresnet: unknown activation {activation!r}; valid: "
                                  f"{', '.join(sorted(ACTIVATIONS))}")
    conv = {"kernel_size": (3, 3), "padding": "same", "filters": filters}
    act, act_par = activation_link(activation)
    # the blocks' default is PReLU: left out, the dictionary is the one checkpoints hold
    own = {} if activation == "prelu" else {"activation": activation}
    g = Links("SRResNet", meta={"scale": scale, "color": "rgb"})
    x = g.input()
    # head: 9x9 convolution and the activation
    head = g("aactv", g("convo", x, sub="Conv2D",
                        par={"filters": filters, "kernel_size": (9, 9), "padding": "same"}),
             sub=act, par=act_par)
    # body: B residual blocks, a convolution (and BatchNorm), the long skip
    y = head
    for _ in range(B):
        y = g("block", y, sub="gen_residual_block", par={"batchnorm": batchnorm, **own})
    y = g("convo", y, sub="Conv2D", par=conv)
    if batchnorm:
        y = g("btnrm", y)
    y = g("merge", head, y, sub="Add")
    # up-sampling stages, then the 9x9 tail
    for s in upsampling_stages(scale):
        y = g("block", y, sub="gen_last_block", par={"scale": s, **own})
    g("convo", y, sub="Conv2D", par={"filters": 3, "kernel_size": (9, 9), "padding": "same"})
    return g.dict()
