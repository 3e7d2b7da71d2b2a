"""Colour conversions of float images on [0, 1], in one place.

- :func:`rgb_to_ycbcr` / :func:`ycbcr_to_rgb`: ITU-R BT.601 studio range, as MATLAB's
  ``rgb2ycbcr`` (the papers' Y channel; Y-only models take it).
- :func:`rgb_to_ycbcr_full` / :func:`ycbcr_full_to_rgb`: full-range JPEG YCbCr, the colour space
  of some published SRCNN/FSRCNN/ESPCN weights.
"""
import numpy as np

_BT601 = np.array([[65.481, 128.553, 24.966],
                   [-37.797, -74.203, 112.0],
                   [112.0, -93.786, -18.214]]) / 255.0
_BT601_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0


def rgb_to_ycbcr(img):
    """Float RGB on [0, 1] -> float YCbCr on [0, 1] (ITU-R BT.601 studio range, as MATLAB)."""
    out = img.astype(np.float64) @ _BT601.T
    out += _BT601_OFFSET
    return out.astype(np.float32)


def ycbcr_to_rgb(img):
    """Inverse of :func:`rgb_to_ycbcr`, clipped to [0, 1]."""
    x = img.astype(np.float64) - _BT601_OFFSET
    return np.clip(x @ np.linalg.inv(_BT601).T, 0, 1).astype(np.float32)


def rgb_to_ycbcr_full(img, source_clip=False):
    """Float RGB on [0, 1] -> full-range (JPEG) YCbCr on [0, 1], the colour space of the
    Nhat-Thanh SRCNN/FSRCNN/ESPCN weights: Y = 0.299 R + 0.587 G + 0.114 B, Cb and Cr centred
    on 128/255.

    Args:
        img: float RGB ``(..., 3)``.
        source_clip: also do what those repositories' ``rgb2ycbcr`` does on the way -- clip Y to
            [16, 235] and Cb, Cr to [16, 240] (of 255) and truncate to integers. ``test.py``
            does not: the clip alone costs about 1 dB on Set5 even for a perfect network.
    """
    m = np.array([[0.299, 0.587, 0.114],
                  [-0.16874, -0.33126, 0.5],
                  [0.5, -0.41869, -0.08131]])
    out = img.astype(np.float64) * 255.0 @ m.T + np.array([0.0, 128.0, 128.0])
    if source_clip:
        out = np.floor(np.clip(out, [16.0, 16.0, 16.0], [235.0, 240.0, 240.0]))
    return (out / 255.0).astype(np.float32)


def ycbcr_full_to_rgb(img):
    """Inverse JPEG YCbCr (offset 128/255) -> RGB on [0, 1], clipped."""
    x = img.astype(np.float64) - np.array([0.0, 128.0, 128.0]) / 255.0
    m = np.array([[1.0, 0.0, 1.402],
                  [1.0, -0.34414, -0.71414],
                  [1.0, 1.772, 0.0]])
    return np.clip(x @ m.T, 0, 1).astype(np.float32)
