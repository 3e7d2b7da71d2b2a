"""VDSR: Kim et al., "Accurate Image Super-Resolution Using Very Deep Convolutional Networks",
CVPR 2016."""
from visionfw.errors import HyperparameterError
from visionfw.models import register_model


@register_model("vdsr")
def vdsr(depth: int = 20, filters: int = 64, channels: int = 3, scale: int = 2,
         bias: bool = True):
    """VDSR: a bicubic up-sampling, ``depth`` 3x3 convolutions with ReLU, and a global residual.

    Args:
        depth: number of convolution layers (the first and last included).
        filters: width of the hidden convolutions.
        channels: image channels (3 for RGB, 1 for a Y-only model).
        scale: up-sampling factor of the bicubic input stage; its weights do not depend on it.
            ``scale=1`` takes an already up-sampled image.
        bias: False drops the convolution biases (as some published weights do).
    """
    if depth < 2 or filters < 1 or channels < 1 or scale < 1:
        raise HyperparameterError(f"vdsr needs depth >= 2, filters, channels, scale >= 1; got "
                                  f"depth={depth}, filters={filters}, channels={channels}, "
                                  f"scale={scale}")
    start = 0 if scale == 1 else 1         # the up-sampled image
    conv = {"kernel_size": (3, 3), "padding": "same", "use_bias": bias}
    d = {
        "name": "VDSR",
        "meta": {"scale": scale, "color": "rgb" if channels == 3 else "y"},
        "inputs": [{"node": 0, "shape": [None, None, channels]}],
        "convo": [(start + 2 * i, start + 2 * i + 1) for i in range(depth)],
        "convo_par": [{**conv, "filters": filters}] * (depth - 1) + [{**conv, "filters": channels}],
        "aactv": [(start + 2 * i + 1, start + 2 * i + 2) for i in range(depth - 1)],
        "merge": [(start, start + 2 * depth - 1, start + 2 * depth)],
    }
    if scale > 1:
        d["resize"] = [(0, 1)]
        d["resize_sub"] = ["BicubicResize"]
        d["resize_par"] = [{"scale": scale}]
    return d


def vdsr_y_torch_names(depth: int = 20, filters: int = 64, scale: int = 2):
    """twtygqyy/pytorch-vdsr's module names. A pickled ``Net`` lists ``residual_layer`` before
    ``input`` and ``output`` (registration order), so the order alone would not pair them."""
    names = {"convo_0/kernel": "input.weight", f"convo_{depth - 1}/kernel": "output.weight"}
    names.update({f"convo_{i}/kernel": f"residual_layer.{i - 1}.conv.weight"
                  for i in range(1, depth - 1)})
    return names


@register_model("vdsr-y", torch_names=vdsr_y_torch_names)
def vdsr_y(depth: int = 20, filters: int = 64, scale: int = 2):
    """VDSR on the Y channel without biases, the layout of the widely used PyTorch weights
    (twtygqyy/pytorch-vdsr): ``vdsr`` with ``channels=1`` and ``bias=False``.

    Args:
        depth: number of convolution layers (the first and last included).
        filters: width of the hidden convolutions.
        scale: up-sampling factor of the bicubic input stage; its weights do not depend on it.
    """
    return vdsr(depth=depth, filters=filters, channels=1, scale=scale, bias=False)
