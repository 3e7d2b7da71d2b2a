"""ESPCN: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016."""
from visionfw.errors import HyperparameterError
from visionfw.models import register_model
from model_defs.srcnn import check_color


@register_model("espcn")
def espcn(n1: int = 64, n2: int = 32, scale: int = 2, color: str = "ycbcr_full"):
    """ESPCN: two tanh convolutions on the LR image, a convolution to ``C * scale^2`` channels,
    a pixel shuffle and a clip to [0, 1].

    The shuffle reads channels in PyTorch's order (``channel_order='torch'``: output channel c
    at offset (i, j) comes from channel ``c * scale^2 + i * scale + j``), so converted PyTorch
    weights are used unchanged.

    Args:
        n1: filters of the 5x5 first layer.
        n2: filters of the 3x3 second layer.
        scale: up-sampling factor (the last layer's width and the weights depend on it).
        color: ``'ycbcr_full'`` (3-channel JPEG-range YCbCr, the published weights), ``'rgb'``
            or ``'y'``.
    """
    channels = check_color("espcn", color)
    if n1 < 1 or n2 < 1 or scale < 1:
        raise HyperparameterError(f"espcn needs n1, n2, scale >= 1; got n1={n1}, n2={n2}, "
                                  f"scale={scale}")
    tanh = {"padding": "same", "activation": "tanh"}
    return {
        "name": "ESPCN",
        "meta": {"scale": scale, "color": color},
        "inputs": [{"node": 0, "shape": [None, None, channels]}],
        "convo": [(0, 1), (1, 2), (2, 3)],
        "convo_par": [{**tanh, "filters": n1, "kernel_size": 5},
                      {**tanh, "filters": n2, "kernel_size": 3},
                      {"padding": "same", "filters": channels * scale * scale,
                       "kernel_size": 3}],
        "shuffle": [(3, 4)],
        "shuffle_sub": "PixelShuffle",
        "shuffle_par": [{"scale": scale, "channel_order": "torch"}],
        "clip": [(4, 5)],
        "clip_sub": "ReLU",
        "clip_par": [{"max_value": 1.0}],
    }
