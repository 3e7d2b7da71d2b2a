"""PSNR and SSIM as the super-resolution papers compute them (MATLAB conventions).

The protocol behind the published tables, reproduced here in NumPy float64:

- The super-resolved image is rounded to ``uint8`` (``im2uint8``: clip, round halves up).
- Both images lose ``scale`` pixels on every side (``ceil(scale)`` for a fractional scale).
- Colour images are scored on Y of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio range 16-235),
  which on ``uint8`` input returns ``uint8``, i.e. rounded Y. A grayscale ground truth (Set14
  ``bridge``) is scored on its own gray values, with no Y conversion.
- PSNR = 10 log10(255^2 / MSE).
- SSIM follows Wang et al.'s ``ssim_index.m``: 11x11 Gaussian window with sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering (no padding, no downsampling), and the
  mean of the SSIM map.

Only NumPy is needed, so this module loads without TensorFlow.
"""
import math

import numpy as np

# First row of MATLAB's rgb2ycbcr matrix: Y = 16 + [65.481 128.553 24.966] . [R G B],
# with R, G, B in [0, 1] and Y in [0, 255].
_Y_ROW = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_BAND_PIXELS = 1 << 20   # pixels of the SSIM map computed at once

PROTOCOL = {
    "rounding": "super-resolved output rounded to uint8 (clip to [0, 1], x255, halves up)",
    "border": "scale pixels cropped on every side of both images",
    "y": "Y of ITU-R BT.601 YCbCr as MATLAB rgb2ycbcr (16-235), rounded to integers",
    "rgb": "R, G and B channels; PSNR over all values, SSIM averaged over channels",
    "gray": "a grayscale ground truth is scored on its own gray values (no Y conversion)",
    "psnr": "10 log10(255^2 / MSE), float64",
    "ssim": (f"Wang et al. ssim_index: {SSIM_WINDOW}x{SSIM_WINDOW} Gaussian window "
             f"sigma {SSIM_SIGMA}, K1={SSIM_K1} K2={SSIM_K2}, L=255, 'valid' filtering, "
             "no downsampling, mean of the map"),
    "lr": "LR made by MATLAB-bicubic imresize (antialiased) of the HR cropped to a multiple "
          "of the scale",
}


def protocol_description(channel="y", scale=None):
    """One line for a report header stating how its numbers were computed."""
    _check_channel(channel)
    border = "scale" if scale is None else f"{_border(scale)} px"
    where = {"y": "Y (ITU-R BT.601, 16-235, rounded)",
             "y-float": "Y (ITU-R BT.601, 16-235) of the 8-bit RGB images, not rounded (the "
                        "IKC/DAN test scripts)",
             "rgb": "RGB (PSNR over all channels, SSIM averaged over channels)"}[channel]
    return (f"PSNR/SSIM on {where}; grayscale ground truth on its gray values; uint8; "
            f"border crop = {border}; SSIM {SSIM_WINDOW}x{SSIM_WINDOW} Gaussian sigma "
            f"{SSIM_SIGMA}, K1={SSIM_K1} K2={SSIM_K2}, valid filtering")


def to_uint8(img):
    """MATLAB's ``im2uint8``: float in [0, 1] -> clip, x255, round halves up; uint8 unchanged."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"expected uint8 or float in [0, 1], got {img.dtype}")
    return _round_clip(img.astype(np.float64) * 255.0)


def _round_clip(values):
    return np.floor(np.clip(values, 0.0, 255.0) + 0.5).astype(np.uint8)


def rgb2y(img):
    """Y of MATLAB's ``rgb2ycbcr``, ITU-R BT.601 studio range.

    ``uint8`` input (``..., 3``) gives ``uint8`` Y in 16..235, rounded as MATLAB does, computed
    in MATLAB's order: ``(65.481/255) R + (128.553/255) G + (24.966/255) B + 16``. Float input
    in [0, 1] gives float Y in [16/255, 235/255], unrounded.
    """
    img = np.asarray(img)
    if img.shape[-1] != 3:
        raise ValueError(f"rgb2y: expected (..., 3) RGB, got shape {img.shape}")
    r, g, b = (img[..., k].astype(np.float64) for k in range(3))
    if img.dtype == np.uint8:
        c = [(1.0 / 255.0) * w for w in _Y_ROW]
        return _round_clip(c[0] * r + c[1] * g + c[2] * b + _Y_OFFSET)
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"rgb2y: expected uint8 or float in [0, 1], got {img.dtype}")
    c = [(1.0 / 255.0) * w for w in _Y_ROW]
    return c[0] * r + c[1] * g + c[2] * b + _Y_OFFSET / 255.0


def psnr(a, b, data_range=255.0):
    """Peak signal-to-noise ratio in dB over all values; ``inf`` for identical images."""
    a, b = _pair(a, b)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(a, b, data_range=255.0):
    """Mean SSIM of two ``(H, W)`` images, or the mean over channels of ``(H, W, C)`` images.

    Wang et al.'s ``ssim_index``: 11x11 Gaussian window (sigma 1.5), 'valid' filtering.
    """
    a, b = _pair(a, b)
    if a.ndim == 3:
        return float(np.mean([ssim(a[..., k], b[..., k], data_range) for k in range(a.shape[-1])]))
    if a.ndim != 2:
        raise ValueError(f"ssim: expected (H, W) or (H, W, C) images, got shape {a.shape}")
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, "
                         f"got {a.shape}")
    # Large images go in bands of rows that overlap by the window, so memory stays bounded;
    # the bands' SSIM maps tile the whole map exactly.
    rows = max(1, SSIM_BAND_PIXELS // a.shape[1])
    valid = a.shape[0] - SSIM_WINDOW + 1
    total = 0.0
    for start in range(0, valid, rows):
        stop = min(valid, start + rows) + SSIM_WINDOW - 1
        band = _ssim_map(a[start:stop], b[start:stop], data_range)
        total += float(band.sum())
    return total / (valid * (a.shape[1] - SSIM_WINDOW + 1))


def _ssim_map(a, b, data_range):
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    g = _gaussian(SSIM_WINDOW, SSIM_SIGMA)
    mu_a = _blur_valid(a, g)
    mu_b = _blur_valid(b, g)
    var_a = _blur_valid(a * a, g) - mu_a**2
    var_b = _blur_valid(b * b, g) - mu_b**2
    cov = _blur_valid(a * b, g) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def _gaussian(size, sigma):
    """Normalised 1-D Gaussian; its outer product is MATLAB's ``fspecial('gaussian')``."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def _blur_valid(img, g):
    """Separable correlation with ``g`` on rows and columns, keeping only full windows."""
    windows = np.lib.stride_tricks.sliding_window_view
    rows = windows(img, g.size, axis=0) @ g
    return windows(rows, g.size, axis=1) @ g


def _pair(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def evaluate_pair(sr, hr, scale, hr_is_gray=False, channel="y"):
    """PSNR and SSIM of a super-resolved image against its ground truth, by :data:`PROTOCOL`.

    Args:
        sr: the super-resolved image, ``uint8`` or float in [0, 1], ``(H, W, 3)``,
            ``(H, W, 1)`` or ``(H, W)``. One channel against a colour ``hr`` is taken to be
            Y already (models that predict Y only) and needs ``channel='y'``.
        hr: the ground truth, ``uint8``, same height and width.
        scale: the upscaling factor; ``ceil(scale)`` pixels are cropped on every side.
        hr_is_gray: the ground truth is a grayscale image (implied when ``hr`` has one
            channel). It is then scored on its gray values; a 3-channel ``sr`` is reduced to
            gray by the mean of its channels before rounding.
        channel: 'y' (the papers' protocol), 'y-float' (Y of the 8-bit RGB images computed
            in float and not rounded, as IKC's and DAN's test scripts do) or 'rgb'.

    Returns:
        ``(psnr, ssim)`` as floats.
    """
    _check_channel(channel)
    hr = np.asarray(hr)
    if hr.dtype != np.uint8:
        raise TypeError(f"evaluate_pair: ground truth must be uint8, got {hr.dtype}")
    sr = _as_0_255(sr)
    if sr.shape[:2] != hr.shape[:2]:
        raise ValueError(f"evaluate_pair: sr is {sr.shape[0]}x{sr.shape[1]} but hr is "
                         f"{hr.shape[0]}x{hr.shape[1]}")
    gray = hr_is_gray or hr.ndim == 2 or hr.shape[-1] == 1
    if gray:
        truth = hr if hr.ndim == 2 else hr[..., 0]
        guess = _round_clip(sr if sr.ndim == 2 else sr.mean(axis=-1))
    elif sr.ndim == 2:
        # A Y-only output (SRCNN, VDSR) against a colour ground truth.
        if channel == "rgb":
            raise ValueError("evaluate_pair: a single-channel sr can only be scored on 'y'")
        truth, guess = rgb2y(hr), _round_clip(sr)
        if channel == "y-float":
            truth = rgb2y(hr.astype(np.float64) / 255.0) * 255.0
    else:
        if sr.shape[-1] != 3:
            raise ValueError(f"evaluate_pair: expected sr with 1 or 3 channels, "
                             f"got shape {sr.shape}")
        truth, guess = hr, _round_clip(sr)
        if channel == "y":
            truth, guess = rgb2y(truth), rgb2y(guess)
        elif channel == "y-float":
            # IKC's and DAN's test scripts: Y of the 8-bit RGB images taken as floats, unrounded
            truth = rgb2y(truth.astype(np.float64) / 255.0) * 255.0
            guess = rgb2y(guess / 255.0) * 255.0
    b = _border(scale)
    if b:
        truth, guess = truth[b:-b, b:-b], guess[b:-b, b:-b]
    return psnr(guess, truth), ssim(guess, truth)


def _as_0_255(sr):
    """sr as float64 on the 0..255 scale, unrounded, with a trailing 1-channel axis dropped."""
    sr = np.asarray(sr)
    if sr.ndim == 3 and sr.shape[-1] == 1:
        sr = sr[..., 0]
    if sr.dtype == np.uint8:
        return sr.astype(np.float64)
    if not np.issubdtype(sr.dtype, np.floating):
        raise TypeError(f"evaluate_pair: sr must be uint8 or float in [0, 1], got {sr.dtype}")
    if sr.size and float(np.max(sr)) > 2.0:
        raise ValueError("evaluate_pair: float sr must be in [0, 1]; it looks like 0..255, "
                         "pass it as uint8 or divide by 255")
    return sr.astype(np.float64) * 255.0


def _border(scale):
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return int(math.ceil(scale))


CHANNELS = ("y", "y-float", "rgb")


def _check_channel(channel):
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
