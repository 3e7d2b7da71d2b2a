"""PCA kernel codes (SFTMD / IKC convention)."""
import numpy as np
import pytest
import tensorflow as tf

from visionfw.degradation import DegradationError, KernelPCA, code_to_map, fit_pca, load_pca
from visionfw.degradation.kernels import gaussian_kernel_stack


def training_kernels(n, seed, isotropic=True):
    rng = np.random.default_rng(seed)
    s1 = rng.uniform(0.2, 4.0, n)
    s2 = s1 if isotropic else rng.uniform(0.2, 4.0, n)
    theta = np.zeros(n) if isotropic else rng.uniform(0, np.pi, n)
    return gaussian_kernel_stack(21, s1, s2, theta)


@pytest.fixture(scope="module")
def pca():
    return fit_pca(n_kernels=2000, seed=0)


def relative_errors(pca, kernels):
    rec = pca.decode(pca.encode(kernels))
    return np.linalg.norm((rec - kernels).reshape(len(kernels), -1), axis=1) / \
        np.linalg.norm(kernels.reshape(len(kernels), -1), axis=1)


def test_round_trip_on_the_training_range(pca):
    kernels = training_kernels(300, seed=42)  # fresh kernels, not the fitting ones
    assert pca.matrix.shape == (441, 10) and pca.kernel_size == 21
    np.testing.assert_allclose(pca.matrix.T @ pca.matrix, np.eye(10), atol=1e-10)
    err = relative_errors(pca, kernels)
    assert err.max() < 0.05
    # IKC's way (no mean when encoding): the centred directions sum to zero, so the codes
    # carry nothing of the kernel's sum; the raw back-projection loses it ...
    assert np.abs(pca.matrix.sum(axis=0)).max() < 1e-6
    ikc = pca.without_mean()
    raw = ikc.matrix @ ikc.encode(kernels).T
    assert np.abs(raw.sum(axis=0)).max() < 1e-6
    # ... and decoding restores it from the mean kernel: as good as the centred codes
    assert relative_errors(ikc, kernels).max() < 0.05


def independent_decode(matrix, mean, code):
    """Kernel from an IKC-style code, written out: the mean's part outside the directions
    plus the back-projection, negatives to zero, sum one."""
    k = mean.copy()
    for j in range(matrix.shape[1]):
        k -= (mean @ matrix[:, j]) * matrix[:, j]
        k += code[j] * matrix[:, j]
    k = np.where(k > 0, k, 0.0)
    return k / k.sum()


@pytest.mark.parametrize("sigma", [0.3, 1.8, 2.6, 3.9])
def test_decoded_true_gaussian_code_is_that_kernel(sigma):
    from visionfw.degradation import kernel_psnr
    from visionfw.kernel_codes import default_pca

    pca = default_pca()                     # what SFTMD / IKC here carry: codes = kernel @ P
    k = gaussian_kernel_stack(21, np.array([sigma]), np.array([sigma]), np.zeros(1))[0]
    code = pca.encode(k)[0]
    d = pca.decode(code)[0]
    assert abs(d.sum() - 1) < 1e-9 and d.min() >= 0
    assert kernel_psnr(d, k) > 60
    np.testing.assert_allclose(d.reshape(-1), independent_decode(pca.matrix, pca.mean, code),
                               atol=1e-12)
    # the tensor path gives the same kernel
    np.testing.assert_allclose(pca.decode(tf.constant(code[None], tf.float32)).numpy()[0], d,
                               atol=1e-6)


@pytest.mark.parametrize("name", ["IKC_pca_matrix.npy", "DAN_IKC_pca_matrix.npy"])
def test_published_matrix_decodes_to_kernels(shared_data, name):
    from visionfw.degradation import kernel_psnr

    pca = load_pca(shared_data / "kernels" / "PCA_IKC_DAN" / name)
    assert pca.mean is None and not pca.centred
    kernels = training_kernels(20, seed=5)
    decoded = pca.decode(pca.encode(kernels))
    np.testing.assert_allclose(decoded.sum(axis=(1, 2)), 1.0, atol=1e-9)
    assert decoded.min() >= 0
    assert kernel_psnr(decoded, kernels).min() > 60


def test_a_code_far_off_still_decodes_to_a_kernel(pca):
    d = pca.without_mean().decode(np.full((1, 10), -5.0))[0]
    assert np.isfinite(d).all() and d.min() >= 0 and abs(d.sum() - 1) < 1e-9


def test_codes_follow_ikc_convention(pca):
    kernels = training_kernels(5, seed=3)
    flat = kernels.reshape(5, -1)  # row by row
    np.testing.assert_allclose(pca.encode(kernels), (flat - pca.mean) @ pca.matrix, atol=1e-12)
    np.testing.assert_allclose(pca.without_mean().encode(kernels), flat @ pca.matrix, atol=1e-12)
    np.testing.assert_allclose(pca.encode(kernels[0]), pca.encode(kernels)[:1])
    np.testing.assert_allclose(pca.encode(flat), pca.encode(kernels))


def test_tensorflow_encode_decode_match_numpy(pca):
    kernels = training_kernels(4, seed=8)
    codes = pca.encode(tf.constant(kernels, tf.float32))
    assert codes.dtype == tf.float32
    np.testing.assert_allclose(codes.numpy(), pca.encode(kernels), atol=1e-6)
    np.testing.assert_allclose(pca.decode(codes).numpy(), pca.decode(pca.encode(kernels)), atol=1e-6)


def test_fit_is_deterministic_and_recovers_ikc_matrix(pca, shared_data):
    again = fit_pca(n_kernels=2000, seed=0)
    np.testing.assert_array_equal(again.matrix, pca.matrix)
    # IKC's published matrix comes from the same recipe (isotropic 21x21, sigma 0.2-4,
    # centred SVD): both span the same 10-d subspace
    ikc = load_pca(shared_data / "kernels" / "PCA_IKC_DAN" / "IKC_pca_matrix.npy")
    cosines = np.linalg.svd(pca.matrix.T @ ikc.matrix, compute_uv=False)
    assert cosines.min() > 0.999


@pytest.mark.parametrize("name,shape", [
    ("IKC_pca_matrix.npy", (441, 10)),
    ("DAN_IKC_pca_matrix.npy", (441, 10)),
    ("DANv1_pca_aniso_matrix_x2.npy", (121, 10)),
    ("DANv2_pca_aniso_matrix_x4.npy", (961, 15)),
])
def test_published_matrices_are_orthonormal(shared_data, name, shape):
    p = load_pca(shared_data / "kernels" / "PCA_IKC_DAN" / name)
    assert p.matrix.shape == shape and p.mean is None and p.order == "C" and not p.centred
    np.testing.assert_allclose(p.matrix.T @ p.matrix, np.eye(shape[1]), atol=1e-5)


def test_srmd_matlab_matrix(shared_data):
    p = load_pca(shared_data / "kernels" / "SRMD" / "PCA_P.mat")
    assert p.matrix.shape == (225, 15) and p.order == "F" and p.kernel_size == 15
    np.testing.assert_allclose(p.matrix.T @ p.matrix, np.eye(15), atol=1e-5)
    k = np.random.default_rng(0).random((15, 15))
    np.testing.assert_allclose(p.encode(k), k.reshape(1, -1, order="F") @ p.matrix)
    np.testing.assert_allclose(p.encode(tf.constant(k, tf.float32)).numpy(), p.encode(k), atol=1e-5)


def test_save_and_load_h5(pca, tmp_path):
    path = pca.save(tmp_path / "pca.h5")
    back = load_pca(path)
    np.testing.assert_array_equal(back.matrix, pca.matrix)
    np.testing.assert_array_equal(back.mean, pca.mean)
    assert back.order == "C"
    assert back.centred
    bare = load_pca(pca.without_mean().save(tmp_path / "bare.h5"))
    assert not bare.centred
    np.testing.assert_array_equal(bare.mean, pca.mean)       # kept for decoding


def test_code_to_map():
    codes = np.arange(6, dtype=np.float32).reshape(2, 3)
    maps = code_to_map(codes, 4, 5)
    assert maps.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(maps.numpy()[1, 3, 4], codes[1])
    np.testing.assert_array_equal(maps.numpy()[0, 0, 0], codes[0])


def test_errors(tmp_path):
    with pytest.raises(DegradationError, match="square"):
        KernelPCA(np.zeros((440, 10)))
    with pytest.raises(DegradationError, match="no such PCA file"):
        load_pca(tmp_path / "none.h5")
    with pytest.raises(DegradationError, match="takes 21x21"):
        fit_pca(n_kernels=50, n_components=3).encode(np.zeros((2, 15, 15)))
