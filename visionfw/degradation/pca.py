"""PCA codes of blur kernels, the kernel input of SFTMD, IKC and DAN.

IKC's convention, followed here: a ``k x k`` kernel is flattened row by row (C order) and
projected by a matrix ``P`` of shape ``(k*k, t)`` with orthonormal columns::

    code = kernel.reshape(1, -1) @ P          # (1, t)
    kernel ~= (code @ P.T).reshape(k, k)      # back-projection

````P`` holds the ``t`` leading principal directions of many random training kernels. IKC
(``codes/utils/util.py``: ``PCA``, ``PCAEncoder``) subtracts the mean kernel before the SVD
that finds those directions, but not when it encodes: its codes are plain projections of the
kernels, and the published IKC/DAN matrices are used that way (``centred=False`` here). Every
principal direction of centred data sums to zero, so such a code says nothing about the part
of the kernel outside the directions -- in particular about its sum. Decoding therefore needs
the mean kernel ``m`` of the family the directions were fitted on, whichever way the codes
were taken::

    centred codes  (code = (k - m) @ P):   k ~= m + code @ P.T
    IKC-style codes (code = k @ P):         k ~= m - (m @ P) @ P.T + code @ P.T

after which negative taps are set to zero and the kernel is rescaled to sum to one
(:meth:`KernelPCA.decode`; ``raw=True`` skips that last step). A matrix stored without its
mean (the published ``.npy`` files, networks trained before the mean was recorded) is given
:func:`family_mean`, the mean of the isotropic Gaussians of IKC's setting 1 that the IKC and
DAN matrices and this project's default PCA are fitted on.

SRMD's MATLAB matrices are stored the other way round, ``(t, k*k)``, and flatten kernels
column by column; :func:`load_pca` transposes them and records ``order='F'``.
"""
import functools
import pathlib

import numpy as np

from visionfw.degradation import DegradationError


class KernelPCA:
    """A kernel projection: encode kernels to codes and decode codes to kernels.

    Args:
        matrix: ``(k*k, t)`` projection with orthonormal columns.
        mean: ``(k*k,)`` (or ``(k, k)``) mean kernel of the family the matrix was fitted on;
            ``None`` takes :func:`family_mean` when decoding.
        order: ``'C'`` (row by row, IKC/DAN) or ``'F'`` (column by column, SRMD MATLAB).
        centred: whether codes are taken of ``kernel - mean`` (standard PCA scores) or of the
            kernel itself (IKC's codes). Default: centred when a mean is given.
    """

    def __init__(self, matrix, mean=None, order="C", centred=None):
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise DegradationError(f"a PCA matrix must be 2-D (k*k, t), got shape {matrix.shape}")
        size = int(round(np.sqrt(matrix.shape[0])))
        if size * size != matrix.shape[0]:
            raise DegradationError(f"PCA matrix has {matrix.shape[0]} rows, "
                                   "not a square kernel size")
        if order not in ("C", "F"):
            raise DegradationError(f"order must be 'C' or 'F', got {order!r}")
        self.matrix = matrix
        self.order = order
        self.kernel_size = size
        self.n_components = matrix.shape[1]
        self.mean = None
        if mean is not None:
            mean = np.asarray(mean, dtype=np.float64)
            if mean.size != matrix.shape[0] or not np.all(np.isfinite(mean)):
                raise DegradationError(f"a PCA mean must be {matrix.shape[0]} finite values, got "
                                       f"shape {mean.shape}")
            self.mean = mean.reshape(-1, order=order) if mean.ndim == 2 else mean.reshape(-1)
        self.centred = (self.mean is not None) if centred is None else bool(centred)
        if self.centred and self.mean is None:
            raise DegradationError("centred codes need the mean kernel")

    def __repr__(self):
        return (f"KernelPCA(kernel_size={self.kernel_size}, n_components={self.n_components}, "
                f"order={self.order!r}, mean={'yes' if self.mean is not None else 'no'}, "
                f"centred={self.centred})")

    def decoding_mean(self):
        """The mean kernel decoding adds back, flattened in this PCA's order: the stored one,
        else :func:`family_mean` of the kernel size."""
        if self.mean is not None:
            return self.mean
        return family_mean(self.kernel_size).reshape(-1, order=self.order)

    def offset(self):
        """What decoding adds to ``code @ P.T`` (flattened): the mean for centred codes, the
        mean's part outside the directions for IKC-style ones."""
        mean = self.decoding_mean()
        return mean if self.centred else mean - (mean @ self.matrix) @ self.matrix.T

    # -- encoding --------------------------------------------------------------------------

    def _flatten(self, kernels):
        k = np.asarray(kernels, dtype=np.float64)
        if k.ndim == 2 and k.shape == (self.kernel_size,) * 2:
            k = k[np.newaxis]
        if k.ndim == 3:
            if k.shape[1:] != (self.kernel_size,) * 2:
                raise DegradationError(f"kernels are {k.shape[1:]}, this PCA takes "
                                       f"{self.kernel_size}x{self.kernel_size}")
            k = k.reshape(len(k), -1, order=self.order)
        if k.ndim != 2 or k.shape[1] != self.matrix.shape[0]:
            raise DegradationError(f"cannot encode kernels of shape {np.shape(kernels)} with a "
                                   f"{self.kernel_size}x{self.kernel_size} PCA")
        return k

    def encode(self, kernels):
        """Codes ``(N, t)`` of kernels ``(k, k)``, ``(N, k, k)`` or ``(N, k*k)``.

        NumPy in, float64 NumPy out; a TensorFlow tensor in, a float32 tensor out (usable in
        graphs, ``(..., k, k)`` with any leading shape).
        """
        if _is_tensor(kernels):
            import tensorflow as tf

            k = tf.cast(kernels, tf.float32)
            if k.shape.rank == 2:  # one kernel -> a batch of one, as in NumPy
                k = k[tf.newaxis]
            if self.order == "F":
                k = tf.linalg.matrix_transpose(k)
            flat = tf.reshape(k, tf.concat([tf.shape(k)[:-2], [-1]], 0))
            if self.centred:
                flat = flat - tf.constant(self.mean, tf.float32)
            return tf.linalg.matmul(flat, tf.constant(self.matrix, tf.float32))
        flat = self._flatten(kernels)
        if self.centred:
            flat = flat - self.mean
        return flat @ self.matrix

    def decode(self, codes, raw=False):
        """Kernels ``(N, k, k)`` from codes ``(N, t)`` (NumPy or tensor): the back-projection
        plus :meth:`offset`, then negative taps set to zero and the kernel rescaled to sum to
        one (a kernel whose taps all come out negative decodes to the mean kernel). ``raw``
        keeps the linear reconstruction (it may have negative taps)."""
        offset = self.offset()
        if _is_tensor(codes):
            import tensorflow as tf

            codes = tf.cast(codes, tf.float32)
            if codes.shape.rank == 1:
                codes = codes[tf.newaxis]
            flat = tf.linalg.matmul(codes, tf.constant(self.matrix.T, tf.float32))
            flat = flat + tf.constant(offset, tf.float32)
            if not raw:
                flat = tf.nn.relu(flat)
                total = tf.reduce_sum(flat, axis=-1, keepdims=True)
                mean = tf.constant(self.decoding_mean(), tf.float32)
                flat = tf.where(total > 0, flat / tf.maximum(total, 1e-12), mean)
            shape = tf.concat([tf.shape(flat)[:-1], [self.kernel_size, self.kernel_size]], 0)
            k = tf.reshape(flat, shape)
            return tf.linalg.matrix_transpose(k) if self.order == "F" else k
        codes = np.asarray(codes, dtype=np.float64)
        codes = codes[np.newaxis] if codes.ndim == 1 else codes
        flat = codes @ self.matrix.T + offset
        if not raw:
            flat = np.maximum(flat, 0.0)
            total = flat.sum(axis=-1, keepdims=True)
            mean = self.decoding_mean()
            flat = np.where(total > 0, flat / np.where(total > 0, total, 1.0), mean)
        return flat.reshape(len(flat), self.kernel_size, self.kernel_size, order=self.order)

    def same_codes(self, other, tolerance=1e-6):
        """Whether ``other`` gives the same codes for every kernel (same directions, order and
        centring, same mean where codes are centred)."""
        if (self.matrix.shape != other.matrix.shape or self.order != other.order
                or self.centred != other.centred
                or not np.allclose(self.matrix, other.matrix, atol=tolerance)):
            return False
        return not self.centred or np.allclose(self.mean, other.mean, atol=tolerance)

    # -- fitting and files -----------------------------------------------------------------

    def without_mean(self):
        """IKC-style codes ``kernel @ P`` of the same directions (the mean is kept for
        decoding)."""
        return KernelPCA(self.matrix, self.mean, self.order, centred=False)

    @classmethod
    def fit(cls, kernels, n_components=10, keep_mean=True):
        """Principal directions of ``kernels`` ``(N, k, k)``, found on mean-centred data.

        Each direction's sign is fixed so that its largest-magnitude entry is positive, so the
        same kernels always give the same matrix. The mean is kept for decoding either way;
        ``keep_mean=False`` gives IKC-style codes (``kernel @ P``).
        """
        k = np.asarray(kernels, dtype=np.float64)
        if k.ndim != 3 or k.shape[1] != k.shape[2]:
            raise DegradationError(f"fit needs kernels of shape (N, k, k), got {k.shape}")
        flat = k.reshape(len(k), -1)
        if not 1 <= n_components <= min(flat.shape):
            raise DegradationError(f"n_components must be in 1..{min(flat.shape)}, "
                                   f"got {n_components}")
        mean = flat.mean(axis=0)
        centred = flat - mean
        # eigenvectors of the scatter matrix = right singular vectors of the centred data;
        # the (k*k)^2 eigenproblem is much cheaper than an SVD of N x k*k
        values, vectors = np.linalg.eigh(centred.T @ centred)
        matrix = vectors[:, np.argsort(values)[::-1][:n_components]]
        signs = np.sign(matrix[np.abs(matrix).argmax(axis=0), np.arange(n_components)])
        matrix = matrix * signs
        return cls(matrix, mean, centred=keep_mean)

    def save(self, path):
        """Write an HDF5 file: dataset ``P`` ``(k*k, t)``, optional ``mean``, attributes."""
        import h5py

        path = pathlib.Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("P", data=self.matrix)
            if self.mean is not None:
                f.create_dataset("mean", data=self.mean)
            f.attrs["kernel_size"] = self.kernel_size
            f.attrs["n_components"] = self.n_components
            f.attrs["order"] = self.order
            f.attrs["centred"] = self.centred
            f.attrs["convention"] = ("code = (kernel - mean if centred else kernel)"
                                     ".reshape(-1) @ P")
        tmp.replace(path)
        return path


def family_mean(size, sigma_range=(0.2, 4.0)):
    """The mean ``(size, size)`` kernel of IKC's setting 1: isotropic Gaussians with sigma
    uniform in ``sigma_range``, as the 30000 kernels (seed 0) :func:`fit_pca` draws by default,
    which fit the IKC/DAN matrices and this project's default PCA. Decoding uses it for a PCA
    stored without its mean."""
    return _family_mean(int(size), tuple(float(v) for v in sigma_range)).copy()


@functools.lru_cache(maxsize=8)
def _family_mean(size, sigma_range):
    from visionfw.degradation.kernels import as_rng, gaussian_kernel_stack

    sigma = as_rng(0).uniform(*sigma_range, size=30000)
    return gaussian_kernel_stack(size, sigma, sigma, np.zeros(len(sigma))).mean(axis=0)


def fit_pca(kernels=None, n_components=10, keep_mean=True, n_kernels=30000, size=21,
            sigma_range=(0.2, 4.0), isotropic=True, seed=0):
    """Fit a :class:`KernelPCA`, on given kernels or on random Gaussian ones.

    Without ``kernels``, draws ``n_kernels`` Gaussians of ``size x size`` from ``seed``:
    isotropic with ``sigma`` uniform in ``sigma_range`` by default (IKC's setting 1; IKC and
    DAN fit on 30000 kernels), or with ``isotropic=False`` both sigmas uniform in that range
    and ``theta`` uniform in [0, pi].
    """
    if kernels is None:
        from visionfw.degradation.kernels import as_rng, gaussian_kernel_stack

        rng = as_rng(seed)
        sigma1 = rng.uniform(*sigma_range, size=n_kernels)
        if isotropic:
            sigma2, theta = sigma1, np.zeros(n_kernels)
        else:
            sigma2 = rng.uniform(*sigma_range, size=n_kernels)
            theta = rng.uniform(0.0, np.pi, size=n_kernels)
        kernels = gaussian_kernel_stack(size, sigma1, sigma2, theta)
    return KernelPCA.fit(kernels, n_components, keep_mean)


def load_pca(path, order=None):
    """A :class:`KernelPCA` from a file.

    ``.h5``/``.hdf5``: written by :meth:`KernelPCA.save`. ``.npy``: a ``(k*k, t)`` matrix (the
    published IKC/DAN matrices). ``.mat``: variable ``P`` or ``p``; SRMD's ``(t, k*k)`` layout
    is transposed and read with ``order='F'`` unless ``order`` says otherwise. A ``.npy`` or
    ``.mat`` matrix carries no mean: its codes are taken IKC's way (``kernel @ P``) and decoded
    with :func:`family_mean`.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DegradationError(f"{path}: no such PCA file")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            if "P" not in f:
                raise DegradationError(f"{path}: no dataset 'P'")
            mean = f["mean"][()] if "mean" in f else None
            file_order = f.attrs.get("order", "C")
            file_order = file_order.decode() if isinstance(file_order, bytes) else str(file_order)
            centred = bool(f.attrs["centred"]) if "centred" in f.attrs else None
            return KernelPCA(f["P"][()], mean, order or file_order, centred=centred)
    if suffix == ".npy":
        try:
            matrix = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DegradationError(f"{path}: not a NumPy matrix ({exc})") from None
        return KernelPCA(matrix, order=order or "C", centred=False)
    if suffix == ".mat":
        import scipy.io

        data = scipy.io.loadmat(path)
        name = next((n for n in ("P", "p") if n in data), None)
        if name is None:
            raise DegradationError(f"{path}: no variable 'P' or 'p'")
        matrix = np.asarray(data[name], dtype=np.float64)
        if int(round(np.sqrt(matrix.shape[0]))) ** 2 != matrix.shape[0]:
            matrix = matrix.T
        return KernelPCA(matrix, order=order or "F", centred=False)
    raise DegradationError(f"{path}: unknown PCA file type {suffix!r}; use .h5, .npy or .mat")


def code_to_map(codes, height, width):
    """Stretch codes ``(B, t)`` over the image: a ``(B, height, width, t)`` float32 tensor.

    This is how SFTMD/IKC feed the kernel code to every spatial position. ``height`` and
    ``width`` may be ints or scalar tensors.
    """
    import tensorflow as tf

    codes = tf.cast(tf.convert_to_tensor(codes), tf.float32)
    if codes.shape.rank != 2:
        raise DegradationError(f"codes must be (B, t), got shape {codes.shape}")
    shape = tf.stack([tf.shape(codes)[0], tf.cast(height, tf.int32), tf.cast(width, tf.int32),
                      tf.shape(codes)[1]])
    return tf.broadcast_to(codes[:, tf.newaxis, tf.newaxis, :], shape)


def _is_tensor(x):
    if isinstance(x, np.ndarray) or "tensorflow" not in type(x).__module__:
        return False
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return tf.is_tensor(x)
