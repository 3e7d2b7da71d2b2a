"""Blur kernels: Gaussian (isotropic, anisotropic), random motion, and kernels stored in files.

Conventions shared by every kernel here and every op in :mod:`visionfw.degradation.ops`
(see ``docs/degradations.md``):

- A kernel is a 2-D array indexed ``[row, column]``; rows go down, columns go right.
- Its *origin* (the tap that multiplies the pixel being computed) is index ``size // 2`` on
  each axis: ``(size - 1) / 2`` for odd sizes, the lower/right of the two middle taps for
  even sizes. A kernel whose centre of mass sits on its origin does not move the image.
- Kernels sum to one. NumPy functions return float64 arrays; TensorFlow ones float32 tensors.

Gaussian kernels are the bivariate normal density sampled at the integer offsets from the
origin and normalised to sum one (as IKC, DAN and KAIR sample them), not pixel-integrated.
"""
import functools
import math
import os
import pathlib

import numpy as np

from visionfw.degradation import DegradationError

# Training defaults of IKC / DAN setting 1 and of KENet's anisotropic setting.
DEFAULT_SIZE = 21
DEFAULT_SIGMA_RANGE = (0.2, 4.0)
DEFAULT_THETA_RANGE = (0.0, math.pi)


def kernel_origin(size):
    """Index of a kernel's origin along an axis of ``size`` taps: ``size // 2``."""
    return int(size) // 2


def as_rng(seed=None):
    """A NumPy Generator from ``None``, an int, a sequence of ints or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_size(size, name="size"):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DegradationError(f"kernel {name} must be a positive integer, got {size!r}")
    return int(size)


def _check_sigma(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DegradationError(f"{name} must be a positive number, got {value!r}") from None
    if not value > 0 or math.isinf(value):
        raise DegradationError(f"{name} must be a positive number, got {value!r}")
    return value


def _inverse_covariance(sigma1, sigma2, theta):
    """Entries (a, b, d) of Sigma^-1 = [[a, b], [b, d]] in (x = column, y = row) coordinates."""
    c, s = np.cos(theta), np.sin(theta)
    p1, p2 = 1.0 / sigma1 ** 2, 1.0 / sigma2 ** 2
    return c * c * p1 + s * s * p2, c * s * (p1 - p2), s * s * p1 + c * c * p2


def gaussian_kernel(size, sigma1, sigma2=None, theta=0.0):
    """A Gaussian blur kernel of ``size x size`` taps that sums to one.

    The covariance is ``R diag(sigma1^2, sigma2^2) R^T`` with ``R = [[cos t, -sin t],
    [sin t, cos t]]`` acting on ``(x, y) = (column offset, row offset)``. So ``sigma1`` is the
    spread along the direction ``(cos t, sin t)``: ``theta = 0`` stretches the kernel along the
    rows (left-right), and a positive ``theta`` turns that axis from "right" towards "down",
    i.e. clockwise as the kernel is displayed (row 0 at the top). IKC and DAN use the same
    matrices on the same grid.

    Args:
        size: number of taps per side.
        sigma1: standard deviation along the first principal axis, in pixels.
        sigma2: along the second axis; ``None`` gives an isotropic kernel (``sigma1``).
        theta: rotation of the first axis, radians.

    Returns:
        ``(size, size)`` float64 array centred on index ``size // 2`` on both axes: at
        ``(size - 1) / 2`` for odd sizes; for even sizes the peak is on the lower/right of the
        two middle taps (offsets run from ``-size / 2`` to ``size / 2 - 1``).
    """
    size = _check_size(size)
    sigma1 = _check_sigma(sigma1, "sigma1")
    sigma2 = sigma1 if sigma2 is None else _check_sigma(sigma2, "sigma2")
    a, b, d = _inverse_covariance(sigma1, sigma2, float(theta))
    offsets = np.arange(size, dtype=np.float64) - kernel_origin(size)
    x = offsets[np.newaxis, :]
    y = offsets[:, np.newaxis]
    kernel = np.exp(-0.5 * (a * x * x + 2.0 * b * x * y + d * y * y))
    return kernel / kernel.sum()


def gaussian_kernel_stack(size, sigma1, sigma2, theta):
    """Gaussian kernels for arrays of parameters: float64 ``(n, size, size)``, vectorised."""
    size = _check_size(size)
    sigma1, sigma2, theta = (np.asarray(v, dtype=np.float64).reshape(-1, 1, 1)
                             for v in (sigma1, sigma2, theta))
    if not (np.all(sigma1 > 0) and np.all(sigma2 > 0)):
        raise DegradationError("sigmas must be positive")
    a, b, d = _inverse_covariance(sigma1, sigma2, theta)
    offsets = np.arange(size, dtype=np.float64) - kernel_origin(size)
    x = offsets[np.newaxis, np.newaxis, :]
    y = offsets[np.newaxis, :, np.newaxis]
    kernel = np.exp(-0.5 * (a * x * x + 2.0 * b * x * y + d * y * y))
    return kernel / kernel.sum(axis=(1, 2), keepdims=True)


def sample_gaussian_params(rng=None, sigma_range=DEFAULT_SIGMA_RANGE,
                           theta_range=DEFAULT_THETA_RANGE, isotropic=False, sigma2_range=None):
    """Draw ``(sigma1, sigma2, theta)`` uniformly from the given ranges.

    Args:
        rng: seed or NumPy Generator.
        sigma_range: ``(low, high)`` of ``sigma1`` (and of ``sigma2`` unless given).
        theta_range: ``(low, high)`` of the rotation, radians.
        isotropic: draw one sigma and use it for both axes, with ``theta = 0``.
        sigma2_range: a separate range for ``sigma2``.
    """
    rng = as_rng(rng)
    sigma1 = float(rng.uniform(*sigma_range))
    if isotropic:
        return sigma1, sigma1, 0.0
    sigma2 = float(rng.uniform(*(sigma2_range or sigma_range)))
    theta = float(rng.uniform(*theta_range))
    return sigma1, sigma2, theta


def random_gaussian_kernel(rng=None, size=DEFAULT_SIZE, sigma_range=DEFAULT_SIGMA_RANGE,
                           theta_range=DEFAULT_THETA_RANGE, isotropic=False, sigma2_range=None):
    """A Gaussian kernel with parameters from :func:`sample_gaussian_params`; float64 array."""
    params = sample_gaussian_params(rng, sigma_range, theta_range, isotropic, sigma2_range)
    return gaussian_kernel(size, *params)


# --------------------------------------------------------------------------- TensorFlow

def gaussian_kernels_tf(sigma1, sigma2, theta, size):
    """A batch of Gaussian kernels from parameter tensors, for ``tf.data`` and graphs.

    Same definition as :func:`gaussian_kernel`, evaluated in float64 and returned as float32.

    Args:
        sigma1, sigma2, theta: tensors (or numbers) of one common shape ``S``.
        size: taps per side, a Python int.

    Returns:
        float32 tensor of shape ``S + (size, size)``.
    """
    import tensorflow as tf

    size = _check_size(size)
    f64 = tf.float64
    s1 = tf.cast(sigma1, f64)[..., tf.newaxis, tf.newaxis]
    s2 = tf.cast(sigma2, f64)[..., tf.newaxis, tf.newaxis]
    t = tf.cast(theta, f64)[..., tf.newaxis, tf.newaxis]
    c, s = tf.cos(t), tf.sin(t)
    p1, p2 = 1.0 / (s1 * s1), 1.0 / (s2 * s2)
    a = c * c * p1 + s * s * p2
    b = c * s * (p1 - p2)
    d = s * s * p1 + c * c * p2
    offsets = tf.range(size, dtype=f64) - float(kernel_origin(size))
    x = offsets[tf.newaxis, :]
    y = offsets[:, tf.newaxis]
    kernel = tf.exp(-0.5 * (a * x * x + 2.0 * b * x * y + d * y * y))
    kernel = kernel / tf.reduce_sum(kernel, axis=(-2, -1), keepdims=True)
    return tf.cast(kernel, tf.float32)


def random_gaussian_kernels_tf(batch, seed, size=DEFAULT_SIZE, sigma_range=DEFAULT_SIGMA_RANGE,
                               theta_range=DEFAULT_THETA_RANGE, isotropic=False, sigma2_range=None):
    """``batch`` random Gaussian kernels drawn with stateless TensorFlow ops.

    The same ``seed`` (a shape-``[2]`` integer tensor or a Python int) always gives the same
    kernels, so it can be used inside ``tf.data`` pipelines.

    Returns:
        ``(kernels, params)``: float32 ``(batch, size, size)`` and a dict of float32
        ``(batch,)`` tensors ``sigma1``, ``sigma2``, ``theta``.
    """
    import tensorflow as tf

    seed = seed_pair(seed)

    def uniform(stream, bounds):
        s = tf.random.experimental.stateless_fold_in(seed, tf.constant(stream, tf.int64))
        return tf.random.stateless_uniform([batch], seed=s, minval=float(bounds[0]),
                                           maxval=float(bounds[1]), dtype=tf.float64)

    sigma1 = uniform(1, sigma_range)
    if isotropic:
        sigma2, theta = sigma1, tf.zeros_like(sigma1)
    else:
        sigma2 = uniform(2, sigma2_range or sigma_range)
        theta = uniform(3, theta_range)
    kernels = gaussian_kernels_tf(sigma1, sigma2, theta, size)
    params = {k: tf.cast(v, tf.float32) for k, v in
              (("sigma1", sigma1), ("sigma2", sigma2), ("theta", theta))}
    return kernels, params


def seed_pair(seed):
    """A shape-``[2]`` int64 seed for ``tf.random.stateless_*`` from an int or a seed tensor."""
    import tensorflow as tf

    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        # wrap any Python int into the int64 range
        seed = tf.constant((int(seed) + 2 ** 63) % 2 ** 64 - 2 ** 63, tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise DegradationError(f"a seed must be an integer, got dtype {seed.dtype.name}")
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0x5EED, tf.int64)])
    return seed


# --------------------------------------------------------------------------- motion blur

def _camera_shake(rng, steps, length):
    """A random 2-D camera-shake path of ``steps`` points and total length ``length`` pixels.

    Points are equally spaced in time. The heading drifts (a random walk plus a steady turn,
    so the path bends smoothly) and now and then jerks into a new direction, which makes the
    corners of real shake kernels; the speed drifts smoothly as well.
    """
    n = int(steps)
    wander = rng.uniform(0.5, 3.0)             # std of the total heading random walk, radians
    turn = rng.uniform(-2.0, 2.0)              # total steady turn, radians
    jerks = rng.poisson(rng.uniform(0.0, 1.5))  # number of sudden turns
    dheading = rng.normal(0.0, wander / np.sqrt(n), n) + turn / n
    for at in rng.integers(1, n, size=jerks):
        dheading[at] += rng.choice([-1.0, 1.0]) * rng.uniform(np.pi / 3, np.pi)
    heading = rng.uniform(0.0, 2.0 * np.pi) + np.cumsum(dheading)
    # the speed varies smoothly too: slow stretches collect more exposure and look brighter
    speed = np.exp(np.cumsum(rng.normal(0.0, rng.uniform(0.0, 1.5) / np.sqrt(n), n)))
    speed[0] = 0.0
    step = speed * (length / speed.sum())
    moves = step[:, np.newaxis] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return np.cumsum(moves, axis=0)


def _splat(points, size):
    """Accumulate points (x, y) into a ``size x size`` grid with bilinear weights.

    Bilinear weights keep each point's mass and its centre of mass, so the grid's centre of
    mass equals the mean of the points.
    """
    grid = np.zeros((size, size))
    x0 = np.floor(points[:, 0]).astype(int)
    y0 = np.floor(points[:, 1]).astype(int)
    fx = points[:, 0] - x0
    fy = points[:, 1] - y0
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            np.add.at(grid, (y0 + dy, x0 + dx), wy * wx)
    return grid


def motion_kernel(rng=None, size=25, length=None, steps=400, smooth=0.5):
    """A random motion-blur kernel from a simulated camera-shake trajectory.

    In the spirit of the trajectories KAIR/USRNet train with (random camera-shake paths),
    written independently: a 2-D path whose heading wanders and turns, with occasional
    sudden jerks and a varying speed, rasterised with bilinear weights,
    lightly smoothed by a Gaussian of ``smooth`` pixels, and normalised. The path is moved so
    that the kernel's centre of mass is exactly on its origin ``size // 2`` (it does not shift
    the image), and shrunk if needed so that it fits inside the kernel.

    Args:
        rng: seed or NumPy Generator.
        size: taps per side.
        length: path length in pixels, a number or a ``(low, high)`` range; default
            ``(0.25 * size, size)``.
        steps: points along the path.
        smooth: standard deviation of the final smoothing, pixels (0 for none).

    Returns:
        ``(size, size)`` float64 array summing to one.
    """
    rng = as_rng(rng)
    size = _check_size(size)
    if size < 7:
        raise DegradationError(f"motion kernels need size >= 7, got {size}")
    if length is None:
        length = (0.25 * size, float(size))
    if isinstance(length, (tuple, list)):
        length = float(rng.uniform(*length))
    length = max(float(length), 1e-3)
    pts = _camera_shake(rng, int(steps), length)
    pts -= pts.mean(axis=0)
    origin = kernel_origin(size)
    # room on each side: bilinear needs one tap, the smoothing's 3-sigma support the rest
    pad = 1 + int(math.ceil(3 * smooth))
    room = min(origin, size - 1 - origin) - pad
    extent = np.abs(pts).max()
    if extent > room:
        pts *= room / extent
    grid = _splat(pts + origin, size)
    if smooth > 0:
        radius = int(math.ceil(3 * smooth))
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / smooth) ** 2)
        taps /= taps.sum()
        grid = np.apply_along_axis(np.convolve, 0, grid, taps, mode="same")
        grid = np.apply_along_axis(np.convolve, 1, grid, taps, mode="same")
    return grid / grid.sum()


def centre_of_mass(kernel):
    """``(row, column)`` centre of mass of a 2-D kernel."""
    kernel = np.asarray(kernel, dtype=np.float64)
    rows, cols = np.indices(kernel.shape)
    total = kernel.sum()
    return float((rows * kernel).sum() / total), float((cols * kernel).sum() / total)


# --------------------------------------------------------------------------- stored kernels

def _mat_arrays(path, variable):
    """Arrays stored under ``variable`` in a MATLAB file (v5 via SciPy, v7.3 via h5py)."""
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        return _mat73_arrays(path, variable)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on bad files
        raise DegradationError(f"{path}: cannot read MATLAB file ({exc})") from None
    variable = _choose_variable(path, [k for k in data if not k.startswith("__")], variable)
    value = data[variable]
    if value.dtype == object:  # a MATLAB cell array
        return [np.asarray(v, dtype=np.float64) for v in value.ravel(order="F")]
    return _split_stack(path, np.asarray(value, dtype=np.float64))


def _split_stack(path, value):
    """Kernels of a MATLAB array: one matrix, or an ``h x w x n`` stack; singleton axes beyond
    the first two (a ``1 x h x w`` array saved from Python, say) are dropped first."""
    if value.ndim > 2:
        squeezed = np.squeeze(value)
        value = squeezed if squeezed.ndim >= 2 else value
    if value.ndim == 3:  # h x w x n stack
        return [value[..., i] for i in range(value.shape[-1])]
    if value.ndim != 2:
        raise DegradationError(f"{path}: a kernel array of shape {value.shape}; expected "
                               "h x w or an h x w x n stack")
    return [value]


def _choose_variable(path, names, variable):
    """The MATLAB variable to read: the one asked for, or the file's only one."""
    if variable is None:
        if len(names) != 1:
            raise DegradationError(f"{path}: holds {names}; say which variable to use")
        return names[0]
    if variable not in names:
        raise DegradationError(f"{path}: no variable {variable!r}; it holds {names}")
    return variable


def _mat73_arrays(path, variable):
    import h5py

    with h5py.File(path, "r") as f:
        variable = _choose_variable(path, [k for k in f if not k.startswith("#")], variable)
        item = f[variable]
        if item.dtype == h5py.ref_dtype:
            # cell array of references; HDF5 stores MATLAB arrays transposed
            return [np.asarray(f[ref], dtype=np.float64).T for ref in item[()].ravel(order="F")]
        return _split_stack(path, np.asarray(item, dtype=np.float64).T)


@functools.lru_cache(maxsize=16)
def _load_cached(path, mtime, variable):
    suffix = pathlib.Path(path).suffix.lower()
    if suffix == ".mat":
        kernels = _mat_arrays(path, variable)
    elif suffix == ".npy":
        try:
            value = np.load(path, allow_pickle=False).astype(np.float64)
        except (ValueError, OSError) as exc:
            raise DegradationError(f"{path}: not a NumPy array of kernels ({exc})") from None
        if value.ndim not in (2, 3):
            raise DegradationError(f"{path}: an array of shape {value.shape}; expected one "
                                   "(h, w) kernel or an (n, h, w) stack")
        kernels = [value] if value.ndim == 2 else list(value)
    elif suffix in (".png", ".bmp", ".tif", ".tiff"):
        from PIL import Image

        try:
            with Image.open(path) as im:
                value = np.asarray(im.convert("L"), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad files
            raise DegradationError(f"{path}: cannot read the kernel picture ({exc})") from None
        if value.sum() <= 0:
            raise DegradationError(f"{path}: the kernel picture is all black; a kernel needs "
                                   "some positive taps")
        kernels = [value / value.sum()]  # pictures of kernels are scaled: normalise
    else:
        raise DegradationError(f"{path}: unknown kernel file type {suffix!r}; "
                               "use .mat, .npy or a grayscale picture (.png)")
    for i, k in enumerate(kernels):
        check_kernel(k, f"{path}: kernel {i}" if len(kernels) > 1 else str(path))
    return tuple(kernels)


def check_kernel(kernel, where="kernel", tolerance=1e-3):
    """A one-line :class:`DegradationError` unless ``kernel`` is a blur kernel: 2-D, finite,
    no negative taps, summing to one within ``tolerance`` (a blur that keeps the image's mean
    brightness). Returns it as float64."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or min(k.shape) < 1:
        raise DegradationError(f"{where} has shape {k.shape}; a kernel is a 2-D (h, w) array")
    if not np.all(np.isfinite(k)):
        raise DegradationError(f"{where} has NaN or infinite taps")
    if k.min() < -1e-7 * max(float(np.abs(k).max()), 1e-300):
        raise DegradationError(f"{where} has negative taps (min {k.min():.3g}); a blur kernel "
                               "is non-negative")
    total = float(k.sum())
    if abs(total - 1.0) > tolerance:
        raise DegradationError(f"{where} sums to {total:.6g}, not 1 (within {tolerance:g}); "
                               "divide it by its sum if it is a blur of the right shape")
    return k


def load_kernels(path, variable="kernels"):
    """All kernels in a file, as a list of float64 arrays, in file order.

    ``.mat`` (MATLAB v5 or v7.3): the variable ``variable`` (a cell array, an ``h x w x n``
    stack or one matrix; ``None`` takes the file's only variable). ``.npy``: a 2-D kernel or an
    ``(n, h, w)`` stack. ``.png``: a picture of one kernel, normalised to sum one. Values from
    ``.mat`` and ``.npy`` files are kept as stored (USRNet's kernels sum to one in float32).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DegradationError(f"{path}: no such kernel file")
    var = variable if path.suffix.lower() == ".mat" else None
    return [k.copy() for k in _load_cached(str(path.resolve()), path.stat().st_mtime, var)]


def load_kernel(path, index=0, variable="kernels"):
    """One kernel of a file by its 0-based ``index``; see :func:`load_kernels`."""
    kernels = load_kernels(path, variable)
    if not 0 <= int(index) < len(kernels):
        raise DegradationError(f"{path}: kernel index {index} out of range 0..{len(kernels) - 1}")
    return kernels[int(index)]


def default_usrnet_path():
    """Where the 12 USRNet test kernels are looked for.

    ``$VISIONFW_USRNET_KERNELS`` if set, else ``kernels/USRNet/kernels_12.mat`` under
    ``$VISIONFW_DATA``, else under the shared data folder next to the repository.
    """
    explicit = os.environ.get("VISIONFW_USRNET_KERNELS")
    if explicit:
        return pathlib.Path(explicit)
    data = os.environ.get("VISIONFW_DATA")
    if data:
        root = pathlib.Path(data)
    else:  # <repo>/../shared/data
        root = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
    return root / "kernels" / "USRNet" / "kernels_12.mat"


def usrnet_kernels(path=None):
    """The 12 USRNet test kernels (``kernels_12.mat``, variable ``kernels``, 1x12 cell).

    Kernels 1-4 are isotropic Gaussians, 5-8 anisotropic Gaussians, 9-12 motion blur; each is
    25x25. Returned as float64 arrays in file order (index 0 is the paper's kernel 1).
    """
    path = pathlib.Path(path) if path is not None else default_usrnet_path()
    if not path.is_file():
        raise DegradationError(f"USRNet kernels not found at {path}; pass path= or set "
                               "VISIONFW_USRNET_KERNELS")
    kernels = load_kernels(path, "kernels")
    if len(kernels) != 12:
        raise DegradationError(f"{path}: expected 12 kernels, found {len(kernels)}")
    return kernels
