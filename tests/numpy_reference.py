"""Plain NumPy references, used only by tests to check visionfw's numerical code.

They follow the documented algorithms, not visionfw's code, and are written differently on
purpose: Python loops over output pixels and kernel taps, mirroring by repeated folding,
dense weight matrices, and SSIM from weighted central moments of explicit 11x11 windows.
They are slow and meant for small images.
"""
import math

import numpy as np


def keys_cubic(t, a=-0.5):
    """Keys (1981) cubic convolution kernel, general form, for a scalar ``t``."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def mirror(j, n):
    """Fold an out-of-range index back into 0..n-1, the edge sample repeated."""
    while j < 0 or j >= n:
        j = -1 - j if j < 0 else 2 * n - 1 - j
    return j


def weight_matrix(n_in, n_out, scale, antialias=True):
    """Dense (n_out, n_in) matrix of MATLAB's bicubic imresize along one axis."""
    k = min(scale, 1.0) if antialias else 1.0  # kernel stretch when shrinking
    reach = 2.0 / k
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) / scale - 0.5  # 0-based input coordinate of output pixel i
        for j in range(math.floor(centre - reach), math.ceil(centre + reach) + 1):
            m[i, mirror(j, n_in)] += k * keys_cubic(k * (centre - j))
        m[i] /= m[i].sum()
    return m


def imresize(img, scale=None, output_shape=None, antialias=True):
    """MATLAB ``imresize(img, ..., 'bicubic')`` of an (H, W) or (H, W, C) array.

    uint8 images are rounded (halves up) and clipped after each axis, as MATLAB does.
    """
    img = np.asarray(img)
    is_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    n_in = img.shape[:2]
    if output_shape is None:
        scales = (scale, scale)
        output_shape = tuple(math.ceil(n * scale) for n in n_in)
    else:
        scales = tuple(o / n for o, n in zip(output_shape, n_in))
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for axis in order:
        m = weight_matrix(n_in[axis], output_shape[axis], scales[axis], antialias)
        out = np.moveaxis(np.tensordot(m, np.moveaxis(out, axis, 0), axes=1), 0, axis)
        if is_uint8:
            out = np.trunc(np.clip(out, 0, 255) + 0.5)
    return out.astype(np.uint8) if is_uint8 else out


def gaussian_window_2d(size=11, sigma=1.5):
    """MATLAB ``fspecial('gaussian', size, sigma)``."""
    half = (size - 1) / 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def ssim(a, b, data_range=255.0, k1=0.01, k2=0.03):
    """Wang et al. ``ssim_index``: mean SSIM over every full 11x11 window of two 2-D images."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = gaussian_window_2d()
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    rows, cols = a.shape[0] - 10, a.shape[1] - 10
    values = np.empty((rows, cols))
    for i in range(rows):
        for j in range(cols):
            pa = a[i:i + 11, j:j + 11]
            pb = b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * (pa - ma) ** 2).sum()
            vb = (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values[i, j] = ((2 * ma * mb + c1) * (2 * cov + c2)) / (
                (ma * ma + mb * mb + c1) * (va + vb + c2))
    return values.mean()
