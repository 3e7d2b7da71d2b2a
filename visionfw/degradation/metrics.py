"""Kernel-estimation metrics and pictures of kernels for reports.

Kernel PSNR. We could not find KENet's evaluation code, so we follow the definition of the
public kernel-estimation code we could read (FKP/MANet's ``calculate_psnr(..., is_kernel=True)``):
``PSNR = 10 log10(1 / MSE)`` between the two kernels as they are, each summing to one, i.e.
a peak value of 1. Because kernel taps are small (a 21x21 Gaussian of sigma 2.6 peaks at
0.024), these PSNRs are large, typically 40-70 dB. ``normalize='max'`` instead divides both
kernels by the true kernel's maximum, so the true kernel peaks at 1 like an image on [0, 1];
that number reads like an image PSNR and depends less on the kernel's width. Reports must say
which one they use; :func:`kernel_psnr` defaults to the first.

Kernels of different sizes are compared after centring both on a common grid: the smaller
one is zero-padded so that the two origins (tap ``size // 2``) coincide.
"""
import functools

import numpy as np

from visionfw.degradation import DegradationError


def _as_stack(kernels, name):
    k = np.asarray(kernels, dtype=np.float64)
    if k.ndim == 2:
        k = k[np.newaxis]
    if k.ndim != 3:
        raise DegradationError(f"{name} must be (k, k) or (N, k, k), got shape {np.shape(kernels)}")
    return k


def _pad_to(k, shape):
    """Zero-pad a stack ``(N, h, w)`` to ``shape`` keeping the origin ``size // 2`` aligned."""
    out = np.zeros((k.shape[0],) + tuple(shape))
    top = shape[0] // 2 - k.shape[1] // 2
    left = shape[1] // 2 - k.shape[2] // 2
    out[:, top:top + k.shape[1], left:left + k.shape[2]] = k
    return out


def _aligned(estimated, true):
    est, ref = _as_stack(estimated, "estimated"), _as_stack(true, "true")
    if len(est) != len(ref):
        if len(est) == 1:
            est = np.repeat(est, len(ref), axis=0)
        elif len(ref) == 1:
            ref = np.repeat(ref, len(est), axis=0)
        else:
            raise DegradationError(f"{len(est)} estimated kernels for {len(ref)} true ones")
    shape = (max(est.shape[1], ref.shape[1]), max(est.shape[2], ref.shape[2]))
    return _pad_to(est, shape), _pad_to(ref, shape)


def kernel_mse(estimated, true):
    """Mean squared error per kernel pair: float for one pair, ``(N,)`` array for stacks."""
    est, ref = _aligned(estimated, true)
    mse = ((est - ref) ** 2).mean(axis=(1, 2))
    return float(mse[0]) if np.ndim(estimated) == 2 and np.ndim(true) == 2 else mse


def kernel_psnr(estimated, true, normalize=None):
    """Kernel PSNR in dB (``inf`` for identical kernels); see the module docstring.

    Args:
        estimated, true: ``(k, k)`` or ``(N, k, k)`` kernels (sizes may differ).
        normalize: ``None`` (peak 1 on the sum-one kernels, FKP/MANet) or ``'max'`` (both
            divided by the true kernel's maximum).

    Returns:
        float for one pair, ``(N,)`` array for stacks.
    """
    est, ref = _aligned(estimated, true)
    if normalize == "max":
        peak = ref.max(axis=(1, 2), keepdims=True)
        est, ref = est / peak, ref / peak
    elif normalize is not None:
        raise DegradationError(f"normalize must be None or 'max', got {normalize!r}")
    mse = ((est - ref) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        psnr = np.where(mse > 0, 10.0 * np.log10(1.0 / np.maximum(mse, 1e-300)), np.inf)
    return float(psnr[0]) if np.ndim(estimated) == 2 and np.ndim(true) == 2 else psnr


def kernel_picture(kernel, zoom=8, peak=None):
    """A ``uint8`` grayscale picture ``(k*zoom, k*zoom)`` of a kernel: ``kernel / peak``
    (default: its own maximum) mapped to 0..255, each tap a ``zoom x zoom`` block."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2:
        raise DegradationError(f"kernel_picture needs a 2-D kernel, got shape {k.shape}")
    peak = k.max() if peak is None else float(peak)
    scaled = np.clip(k / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(k)
    picture = np.floor(scaled * 255.0 + 0.5).astype(np.uint8)
    return np.kron(picture, np.ones((int(zoom), int(zoom)), dtype=np.uint8))


def _as_list(kernels):
    """A list of 2-D kernels from one kernel, a stack or a list."""
    if isinstance(kernels, np.ndarray) and kernels.ndim == 2:
        return [kernels]
    return list(kernels)


def kernel_grid(estimated, true=None, zoom=6, columns=4, gap=4, shared_scale=True):
    """A picture of many kernels: pairs ``true | estimated`` side by side, in a grid.

    Args:
        estimated: ``(N, k, k)`` kernels (or a list of 2-D kernels of any sizes).
        true: the matching true kernels, or ``None`` to show only ``estimated``.
        zoom: pixels per tap.
        columns: cells (pairs) per row.
        gap: pixels between cells; the background is mid-gray (128).
        shared_scale: scale each pair by the true kernel's maximum, so intensities compare.

    Returns:
        ``uint8`` array ``(H, W, 3)``, ready for ``visionfw.imageio.write_image``; the true
        kernel is drawn in green, the estimate in white.
    """
    est = _as_list(estimated)
    ref = None if true is None else _as_list(true)
    if ref is not None and len(ref) != len(est):
        raise DegradationError(f"{len(est)} estimated kernels but {len(ref)} true ones")
    cells = []
    for i, e in enumerate(est):
        e = np.asarray(e, dtype=np.float64)
        if ref is None:
            cells.append(np.repeat(kernel_picture(e, zoom)[..., np.newaxis], 3, axis=-1))
            continue
        t = np.asarray(ref[i], dtype=np.float64)
        peak = t.max() if shared_scale else None
        pic_t = kernel_picture(t, zoom)
        pic_e = kernel_picture(e, zoom, peak)
        h = max(pic_t.shape[0], pic_e.shape[0])
        green = np.zeros((h, pic_t.shape[1], 3), np.uint8)
        green[:pic_t.shape[0], :, 1] = pic_t
        white = np.zeros((h, pic_e.shape[1], 3), np.uint8)
        white[:pic_e.shape[0]] = pic_e[..., np.newaxis]
        spacer = np.full((h, max(gap // 2, 1), 3), 128, np.uint8)
        cells.append(np.concatenate([green, spacer, white], axis=1))
    if not cells:
        raise DegradationError("kernel_grid needs at least one kernel")
    ch = max(c.shape[0] for c in cells)
    cw = max(c.shape[1] for c in cells)
    columns = max(1, min(int(columns), len(cells)))
    rows = -(-len(cells) // columns)
    grid = np.full((rows * (ch + gap) + gap, columns * (cw + gap) + gap, 3), 128, np.uint8)
    for i, c in enumerate(cells):
        r, col = divmod(i, columns)
        y, x = gap + r * (ch + gap), gap + col * (cw + gap)
        grid[y:y + c.shape[0], x:x + c.shape[1]] = c
    return grid


def fit_isotropic_sigma(kernel, low=0.1, high=6.0, step=0.005):
    """The sigma of the isotropic Gaussian (same size, sum one) nearest to ``kernel`` in the
    least-squares sense, searched on a grid of ``step`` from ``low`` to ``high``.

    For an estimated kernel (a decoded PCA code, say) this says how wide the estimate is in
    the units of the blur that made the image; for a true isotropic Gaussian it returns its
    sigma to within ``step``.
    """
    from visionfw.degradation.kernels import gaussian_kernel_stack

    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise DegradationError(f"fit_isotropic_sigma needs a square 2-D kernel, got {k.shape}")
    sigmas = np.arange(low, high + step / 2, step)
    bank = gaussian_kernel_stack(k.shape[0], sigmas, sigmas, np.zeros_like(sigmas))
    errors = ((bank - k[None]) ** 2).sum(axis=(1, 2))
    return float(sigmas[int(np.argmin(errors))])


def kernel_shape(kernel):
    """The ellipse of a kernel's second moments: ``(sigma_major, sigma_minor, theta)``.

    The moments are taken about the kernel's centroid, with ``x`` along columns and ``y``
    down the rows, as :func:`~visionfw.degradation.kernels.gaussian_kernel` lays them out;
    ``theta`` is the major axis's angle from ``x`` towards ``y`` in degrees, in ``[0, 180)``,
    the convention of the library's ``theta`` (a Gaussian of ``sigma1 > sigma2`` gives back
    ``theta`` in degrees). Negative taps count as zero. A kernel cut off by its window gives
    smaller sigmas than the Gaussian that made it, the estimate and the truth alike, so the
    two compare; for an isotropic kernel the angle means nothing (the report of
    :func:`orientation_summary` leaves such kernels out).
    """
    k = np.clip(np.asarray(kernel, dtype=np.float64), 0.0, None)
    if k.ndim != 2 or k.sum() <= 0:
        raise DegradationError(f"kernel_shape needs a 2-D kernel with positive mass, got "
                               f"shape {k.shape}")
    k = k / k.sum()
    y, x = np.mgrid[:k.shape[0], :k.shape[1]].astype(np.float64)
    x -= (k * x).sum()
    y -= (k * y).sum()
    cov = np.array([[(k * x * x).sum(), (k * x * y).sum()],
                    [(k * x * y).sum(), (k * y * y).sum()]])
    values, vectors = np.linalg.eigh(cov)                    # ascending
    axis = vectors[:, 1]                                     # the major axis, (x, y)
    theta = float(np.degrees(np.arctan2(axis[1], axis[0])) % 180.0)
    minor, major = np.sqrt(np.clip(values, 0.0, None))
    return float(major), float(minor), theta


def orientation_summary(pairs, min_ratio=1.5):
    """How well estimates follow the true kernels' direction and elongation.

    ``pairs``: ``(estimate, true)`` shapes of :func:`kernel_shape`. Only true kernels at least
    ``min_ratio`` times longer than wide have a direction worth scoring. Returns a dict:
    ``n`` (such kernels), ``angle_error`` (median absolute difference of the major axes'
    angles, degrees, 0-90; 45 is what a direction drawn at random scores),
    ``true_ratio`` and ``estimate_ratio`` (mean major/minor of those true kernels and of
    their estimates; 1 is round), and the median angle error apart for the true kernels
    nearer the pixel grid's axes (``angle_error_axes``, within 22.5 degrees of 0 or 90) and
    nearer its diagonals (``angle_error_diagonals``; ``None`` where there are none), with
    their numbers ``n_axes`` and ``n_diagonals``. Without elongated true kernels:
    ``{"n": 0, "min_ratio": min_ratio}``.
    """
    def error(e, t):
        return abs((e[2] - t[2] + 90.0) % 180.0 - 90.0)

    def median(values):
        return float(np.median(values)) if values else None

    chosen = [(e, t) for e, t in pairs if t[1] > 0 and t[0] / t[1] >= min_ratio]
    if not chosen:
        return {"n": 0, "min_ratio": min_ratio}
    errors = [error(e, t) for e, t in chosen]
    near_axis = [abs((t[2] + 22.5) % 90.0 - 22.5) <= 22.5 for _, t in chosen]
    axes = [err for err, a in zip(errors, near_axis) if a]
    diagonals = [err for err, a in zip(errors, near_axis) if not a]
    return {"n": len(chosen), "min_ratio": min_ratio,
            "n_axes": len(axes), "n_diagonals": len(diagonals),
            "angle_error": median(errors),
            "angle_error_axes": median(axes),
            "angle_error_diagonals": median(diagonals),
            "true_ratio": float(np.mean([t[0] / t[1] for _, t in chosen])),
            "estimate_ratio": float(np.mean([e[0] / max(e[1], 1e-12) for e, _ in chosen]))}


def mean_training_kernel(spec, n=10000, seed=0):
    """The mean kernel of a degradation spec's blur: the average of ``n`` kernels its blur op
    draws from ``seed`` -- the estimate of a kernel estimator that has learnt nothing but the
    training distribution (the baseline KENet and the IKC Predictor are ranked against).
    A fixed blur gives its own kernel; a spec that blurs nothing is a one-line error."""
    return _mean_training_kernel(str(spec), int(n), int(seed)).copy()


@functools.lru_cache(maxsize=16)
def _mean_training_kernel(spec, n, seed):
    total = None
    for k in training_kernels(spec, n, seed):
        total = k.sum(axis=0) if total is None else total + k.sum(axis=0)
    mean = total / n
    return mean / mean.sum()


def training_kernels(spec, n, seed=0, chunk=1000):
    """``n`` kernels a spec's blur op draws from ``seed``, in float64 chunks of ``chunk``
    (a generator); a spec that blurs nothing is a one-line error."""
    import tensorflow as tf

    from visionfw.degradation.spec import parse_degradation

    op = parse_degradation(spec).blur_op
    if op is None:
        raise DegradationError(f"{spec!r} blurs nothing: it draws no kernels")
    drawn = 0
    while drawn < n:
        size = min(chunk, n - drawn)
        s = tf.constant([seed, drawn], tf.int64)
        yield np.asarray(op.kernels(tf.constant(size), s), np.float64)
        drawn += size
