"""The bicubic baseline: MATLAB-exact bicubic up-sampling, no weights."""
from visionfw.models import register_model


@register_model("bicubic")
def bicubic(scale: int = 4, channels: int = 3):
    """Bicubic interpolation (MATLAB ``imresize``), the reference every SR table starts from.

    Args:
        scale: up-sampling factor.
        channels: image channels.
    """
    return {
        "name": "Bicubic",
        "meta": {"scale": scale, "color": "rgb" if channels == 3 else "y"},
        "inputs": [{"node": 0, "shape": [None, None, channels]}],
        "resize": [(0, 1)],
        "resize_sub": ["BicubicResize"],
        "resize_par": [{"scale": scale}],
    }
