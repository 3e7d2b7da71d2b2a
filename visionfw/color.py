"""Colour conversions of float images on [0, 1], in one place.

- :func:`rgb_to_ycbcr` / :func:`ycbcr_to_rgb`: ITU-R BT.601 studio range, as MATLAB's
  ``rgb2ycbcr`` (the papers' Y channel; Y-only models take it).
- :func:`rgb_to_ycbcr_full` / :func:`ycbcr_full_to_rgb`: full-range JPEG YCbCr, the colour space
  of some published SRCNN/FSRCNN/ESPCN weights.
- :func:`to_model_space` / :func:`from_model_space`: the same conversions on TensorFlow
  tensors, named by a model's ``meta['color']`` (what training feeds a network).
"""
import numpy as np

_BT601 = np.array([[65.481, 128.553, 24.966],
                   [-37.797, -74.203, 112.0],
                   [112.0, -93.786, -18.214]]) / 255.0
_BT601_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_JPEG = np.array([[0.299, 0.587, 0.114],
                  [-0.16874, -0.33126, 0.5],
                  [0.5, -0.41869, -0.08131]])
_JPEG_INVERSE = np.array([[1.0, 0.0, 1.402],
                          [1.0, -0.34414, -0.71414],
                          [1.0, 1.772, 0.0]])
_JPEG_OFFSET = np.array([0.0, 128.0, 128.0]) / 255.0
COLORS = ("rgb", "y", "ycbcr_full")


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
    out = img.astype(np.float64) * 255.0 @ _JPEG.T + np.array([0.0, 128.0, 128.0])
    if source_clip:
        out = np.floor(np.clip(out, [16.0, 16.0, 16.0], [235.0, 240.0, 240.0]))
    return (out / 255.0).astype(np.float32)


def ycbcr_full_to_rgb(img):
    """Inverse JPEG YCbCr (offset 128/255) -> RGB on [0, 1], clipped."""
    x = img.astype(np.float64) - np.array([0.0, 128.0, 128.0]) / 255.0
    return np.clip(x @ _JPEG_INVERSE.T, 0, 1).astype(np.float32)


def _affine(img, matrix, offset):
    import tensorflow as tf

    img = tf.convert_to_tensor(img)
    m = tf.constant(matrix.T, img.dtype)
    return tf.tensordot(img, m, axes=[[-1], [0]]) + tf.constant(offset, img.dtype)


def to_model_space(img, color):
    """Float RGB tensors on [0, 1] (``..., 3``) in the colour space of a model's
    ``meta['color']``: unchanged for ``'rgb'``, the Y channel (``..., 1``) for ``'y'``,
    full-range YCbCr for ``'ycbcr_full'`` -- what :mod:`visionfw.methods.sr` feeds at test time."""
    if color == "rgb":
        return img
    if color == "y":
        return _affine(img, _BT601[:1], _BT601_OFFSET[:1])
    if color == "ycbcr_full":
        return _affine(img, _JPEG, _JPEG_OFFSET)
    raise ValueError(f"unknown colour space {color!r}; expected one of {', '.join(COLORS)}")


def from_model_space(img, color):
    """A model's output back to what test.py scores: RGB clipped to [0, 1], or the Y channel
    itself (a Y-only model is scored on Y)."""
    import tensorflow as tf

    if color in ("rgb", "y"):
        return img
    if color == "ycbcr_full":
        rgb = _affine(img - tf.constant(_JPEG_OFFSET, img.dtype), _JPEG_INVERSE, np.zeros(3))
        return tf.clip_by_value(rgb, 0.0, 1.0)
    raise ValueError(f"unknown colour space {color!r}; expected one of {', '.join(COLORS)}")
