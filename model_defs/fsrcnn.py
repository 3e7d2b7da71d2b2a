"""FSRCNN: Dong et al., "Accelerating the Super-Resolution Convolutional Neural Network",
ECCV 2016."""
from visionfw.errors import HyperparameterError
from visionfw.models import register_model
from model_defs.srcnn import check_color


@register_model("fsrcnn")
def fsrcnn(d: int = 56, s: int = 12, m: int = 4, scale: int = 2, color: str = "ycbcr_full"):
    """FSRCNN(d, s, m): feature extraction, shrinking, m mapping convolutions, expanding and a
    9x9 transposed convolution that up-samples the LR image, then a clip to [0, 1].

    As in the published weights, the m mapping convolutions follow each other with no
    activation between them and one PReLU after the last. The transposed convolution matches
    PyTorch's ``ConvTranspose2d(k=9, stride=scale, padding=4, output_padding=scale-1)``:
    'valid' (output ``(H-1)*scale + 9``) then cropped by 4 at the top/left and ``5 - scale``
    at the bottom/right, giving exactly ``scale * H``.

    Args:
        d: filters of the feature extraction and expanding layers.
        s: filters of the shrinking and mapping layers.
        m: number of 3x3 mapping layers.
        scale: up-sampling factor, 1 to 5 (the weights of each factor differ).
        color: ``'ycbcr_full'`` (3-channel JPEG-range YCbCr, the published weights), ``'rgb'``
            or ``'y'``.
    """
    channels = check_color("fsrcnn", color)
    if d < 1 or s < 1 or m < 1 or not 1 <= scale <= 5:
        raise HyperparameterError(f"fsrcnn needs d, s, m >= 1 and 1 <= scale <= 5; got d={d}, "
                                  f"s={s}, m={m}, scale={scale}")
    prelu = {"shared_axes": (1, 2),
             "alpha_initializer": {"class_name": "Constant", "config": {"value": 0.25}}}
    same = {"padding": "same"}
    # Nodes: 0 input, 1-2 extraction, 3-4 shrinking, 5..4+m mapping, then expanding, up-sampling.
    e = 4 + m                                       # output of the last mapping conv
    return {
        "name": "FSRCNN",
        "meta": {"scale": scale, "color": color},
        "inputs": [{"node": 0, "shape": [None, None, channels]}],
        "convo": [(0, 1), (2, 3)] + [(4 + i, 5 + i) for i in range(m)] + [(e + 1, e + 2)],
        "convo_par": [{**same, "filters": d, "kernel_size": 5},
                      {**same, "filters": s, "kernel_size": 1}]
                     + [{**same, "filters": s, "kernel_size": 3}] * m
                     + [{**same, "filters": d, "kernel_size": 1}],
        "aactv": [(1, 2), (3, 4), (e, e + 1), (e + 2, e + 3)],
        "aactv_sub": "PReLU",
        "aactv_par": prelu,
        "deconv": [(e + 3, e + 4)],
        "deconv_sub": "Conv2DTranspose",
        "deconv_par": [{"filters": channels, "kernel_size": 9, "strides": scale,
                        "padding": "valid"}],
        "crop": [(e + 4, e + 5)],
        "crop_sub": "Cropping2D",
        "crop_par": [{"cropping": ((4, 5 - scale), (4, 5 - scale))}],
        "clip": [(e + 5, e + 6)],
        "clip_sub": "ReLU",
        "clip_par": [{"max_value": 1.0}],
    }
