"""SRCNN: Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 2016
(ECCV 2014), in the 9-k-5 form with unpadded convolutions."""
from visionfw.errors import HyperparameterError
from visionfw.models import register_model

COLORS = ("ycbcr_full", "rgb", "y")


def check_color(model, color):
    """Channels of a model working in ``color`` (a one-line error for an unknown one)."""
    if color not in COLORS:
        raise HyperparameterError(f"{model}: color must be one of {', '.join(COLORS)}, "
                                  f"got {color!r}")
    return 1 if color == "y" else 3


@register_model("srcnn")
def srcnn(k: int = 3, n1: int = 64, n2: int = 32, scale: int = 2, color: str = "ycbcr_full"):
    """SRCNN 9-k-5: patch extraction, non-linear mapping and reconstruction, then a clip to [0, 1].

    The input is the image already up-sampled bicubically to the output size (``meta.input``
    is ``'upsampled'``). The convolutions are unpadded, as in the paper and the published
    weights, so the output is ``8 + (k - 1) + 4`` pixels smaller than the input in each
    dimension (``meta.shrink``); ``test.py`` scores the centre of the ground truth it covers.

    Args:
        k: kernel size of the mapping layer (1, 3 or 5 in the published 9-1-5, 9-3-5, 9-5-5).
        n1: filters of the 9x9 patch-extraction layer.
        n2: filters of the k x k mapping layer.
        scale: the factor the input was up-sampled by; the weights do not depend on it.
        color: ``'ycbcr_full'`` (3-channel JPEG-range YCbCr, the published weights), ``'rgb'``
            or ``'y'`` (one channel).
    """
    channels = check_color("srcnn", color)
    if k < 1 or k % 2 == 0 or n1 < 1 or n2 < 1 or scale < 1:
        raise HyperparameterError(f"srcnn needs an odd k >= 1 and n1, n2, scale >= 1; got k={k}, "
                                  f"n1={n1}, n2={n2}, scale={scale}")
    conv = {"padding": "valid"}
    return {
        "name": "SRCNN",
        "meta": {"scale": scale, "color": color, "input": "upsampled", "shrink": 8 + (k - 1) + 4},
        "inputs": [{"node": 0, "shape": [None, None, channels]}],
        "convo": [(0, 1), (2, 3), (4, 5)],
        "convo_par": [{**conv, "filters": n1, "kernel_size": 9},
                      {**conv, "filters": n2, "kernel_size": k},
                      {**conv, "filters": channels, "kernel_size": 5}],
        "aactv": [(1, 2), (3, 4), (5, 6)],
        "aactv_par": [None, None, {"max_value": 1.0}],     # the last ReLU clips to [0, 1]
    }
