"""Blur kernels against independent NumPy/SciPy references."""
import math

import numpy as np
import pytest
import scipy.stats

from visionfw.degradation import DegradationError
from visionfw.degradation import kernels as K


def reference_gaussian(size, s1, s2, theta):
    """Bivariate normal density (scipy) on the integer grid around tap size // 2, normalised.

    Coordinates are (x, y) = (column offset, row offset); the covariance is built from an
    explicit rotation matrix, not from the closed-form inverse used by the code under test.
    """
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([s1 ** 2, s2 ** 2]) @ rot.T
    c = size // 2
    rows, cols = np.mgrid[0:size, 0:size]
    pts = np.stack([cols - c, rows - c], axis=-1).reshape(-1, 2)
    pdf = scipy.stats.multivariate_normal(mean=[0, 0], cov=cov).pdf(pts).reshape(size, size)
    return pdf / pdf.sum()


@pytest.mark.parametrize("size,s1,s2,theta", [
    (21, 2.6, None, 0.0), (21, 4.0, 0.7, 0.3), (25, 1.3, 3.1, 2.2), (15, 0.5, 0.9, -1.0),
    (20, 2.0, 1.0, 0.8), (8, 1.5, 0.6, 1.9),
])
def test_gaussian_matches_scipy_density(size, s1, s2, theta):
    k = K.gaussian_kernel(size, s1, s2, theta)
    ref = reference_gaussian(size, s1, s1 if s2 is None else s2, theta)
    assert k.shape == (size, size) and k.dtype == np.float64
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, ref, rtol=1e-9, atol=1e-15)


def test_isotropic_is_separable_outer_product():
    # IKC's isogkern route: outer product of two normalised 1-D Gaussians
    g = np.exp(-0.5 * (np.arange(21) - 10.0) ** 2 / 2.6 ** 2)
    np.testing.assert_allclose(K.gaussian_kernel(21, 2.6), np.outer(g, g) / np.outer(g, g).sum(), rtol=1e-12)
    np.testing.assert_array_equal(K.gaussian_kernel(21, 2.6), K.gaussian_kernel(21, 2.6, 2.6, 1.234))


def test_rotation_direction():
    c = 10
    horizontal = K.gaussian_kernel(21, 4.0, 0.7, 0.0)
    assert horizontal[c, c + 4] > 50 * horizontal[c + 4, c]          # theta = 0: along rows
    vertical = K.gaussian_kernel(21, 4.0, 0.7, math.pi / 2)
    assert vertical[c + 4, c] > 50 * vertical[c, c + 4]              # pi/2: along columns
    diag = K.gaussian_kernel(21, 4.0, 0.7, math.pi / 4)
    # +theta turns "right" towards "down": the long axis runs top-left to bottom-right
    assert diag[c + 3, c + 3] > 50 * diag[c + 3, c - 3]
    assert diag[c - 3, c - 3] == pytest.approx(diag[c + 3, c + 3])
    # principal axis from second moments is (cos t, sin t) in (column, row) coordinates
    t = 0.6
    k = K.gaussian_kernel(41, 5.0, 1.0, t)
    rows, cols = np.mgrid[0:41, 0:41] - 20
    cov = np.array([[(k * cols * cols).sum(), (k * cols * rows).sum()],
                    [(k * cols * rows).sum(), (k * rows * rows).sum()]])
    w, v = np.linalg.eigh(cov)
    axis = v[:, np.argmax(w)]
    assert abs(abs(axis @ [math.cos(t), math.sin(t)]) - 1) < 1e-4


def test_centre_convention():
    for size in (21, 25, 7):
        k = K.gaussian_kernel(size, 1.7, 0.9, 0.4)
        centre = (size - 1) / 2
        assert K.centre_of_mass(k) == pytest.approx((centre, centre), abs=1e-12)
        assert K.kernel_origin(size) == centre
    k = K.gaussian_kernel(20, 1.2)  # even: peak on the lower/right middle tap
    assert np.unravel_index(k.argmax(), k.shape) == (10, 10)
    assert k[10, 9] == pytest.approx(k[10, 11]) and k[9, 10] == pytest.approx(k[11, 10])


def test_sampling_is_seeded_and_in_range():
    a = K.sample_gaussian_params(np.random.default_rng(3))
    assert a == K.sample_gaussian_params(3)
    assert a != K.sample_gaussian_params(4)
    rng = np.random.default_rng(0)
    for _ in range(200):
        s1, s2, t = K.sample_gaussian_params(rng)
        assert 0.2 <= s1 <= 4.0 and 0.2 <= s2 <= 4.0 and 0.0 <= t <= math.pi
    s1, s2, t = K.sample_gaussian_params(1, isotropic=True)
    assert s1 == s2 and t == 0.0
    np.testing.assert_array_equal(K.random_gaussian_kernel(5), K.random_gaussian_kernel(5))
    stack = K.gaussian_kernel_stack(21, [1.0, 2.0], [3.0, 0.5], [0.2, 2.0])
    np.testing.assert_allclose(stack[1], K.gaussian_kernel(21, 2.0, 0.5, 2.0), rtol=1e-12)


def test_tensorflow_kernels_match_numpy():
    s1, s2, t = np.array([0.3, 2.5, 4.0]), np.array([1.0, 2.5, 0.6]), np.array([0.0, 1.0, 2.9])
    tfk = K.gaussian_kernels_tf(s1, s2, t, 21).numpy()
    assert tfk.shape == (3, 21, 21) and tfk.dtype == np.float32
    for i in range(3):
        np.testing.assert_allclose(tfk[i], K.gaussian_kernel(21, s1[i], s2[i], t[i]), atol=2e-8)


def test_batched_tf_sampler_is_deterministic_and_consistent():
    k1, p1 = K.random_gaussian_kernels_tf(6, seed=11)
    k2, _ = K.random_gaussian_kernels_tf(6, seed=11)
    k3, _ = K.random_gaussian_kernels_tf(6, seed=12)
    np.testing.assert_array_equal(k1.numpy(), k2.numpy())
    assert not np.allclose(k1.numpy(), k3.numpy())
    p = {k: v.numpy() for k, v in p1.items()}
    assert np.all((p["sigma1"] >= 0.2) & (p["sigma1"] <= 4.0) & (p["theta"] >= 0) & (p["theta"] <= math.pi))
    for i in range(6):
        ref = K.gaussian_kernel(21, p["sigma1"][i], p["sigma2"][i], p["theta"][i])
        np.testing.assert_allclose(k1.numpy()[i], ref, atol=1e-6)
    iso, piso = K.random_gaussian_kernels_tf(4, seed=1, isotropic=True, size=15)
    np.testing.assert_array_equal(piso["sigma1"].numpy(), piso["sigma2"].numpy())
    assert iso.shape == (4, 15, 15)


def test_motion_kernel():
    k = K.motion_kernel(7, size=25)
    assert k.shape == (25, 25) and k.min() >= 0 and k.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(k, K.motion_kernel(7, size=25))
    assert not np.allclose(k, K.motion_kernel(8, size=25))
    # centred on the origin: blurring with it does not shift the image
    assert K.centre_of_mass(k) == pytest.approx((12.0, 12.0), abs=1e-9)
    assert K.centre_of_mass(K.motion_kernel(2, size=24)) == pytest.approx((12.0, 12.0), abs=1e-9)
    # a stroke, not a blob: elongated second moments for most kernels
    ratios = []
    for seed in range(10):
        m = K.motion_kernel(seed, size=25, length=20.0)
        rows, cols = np.mgrid[0:25, 0:25] - 12
        cov = np.cov(np.stack([cols.ravel(), rows.ravel()]), aweights=m.ravel())
        w = np.linalg.eigvalsh(cov)
        ratios.append(w[1] / w[0])
        assert (m > 1e-3).sum() > 15
    assert np.median(ratios) > 2.0
    with pytest.raises(DegradationError):
        K.motion_kernel(0, size=5)


def test_bad_arguments_raise_one_line_errors():
    for args in [(0, 1.0), (21, -1.0), (21, 1.0, 0.0), (2.5, 1.0), (21, "x")]:
        with pytest.raises(DegradationError) as info:
            K.gaussian_kernel(*args)
        assert "\n" not in str(info.value)


def test_usrnet_kernels(shared_data):
    kernels = K.usrnet_kernels(shared_data / "kernels" / "USRNet" / "kernels_12.mat")
    assert len(kernels) == 12 and all(k.shape == (25, 25) for k in kernels)
    assert all(abs(k.sum() - 1) < 1e-6 for k in kernels)
    # kernel 1 is an isotropic Gaussian of sigma about 0.7 (data README), centred on tap 12
    k = kernels[0]
    rows, cols = np.mgrid[0:25, 0:25] - 12
    assert K.centre_of_mass(k) == pytest.approx((12, 12), abs=0.05)
    assert math.sqrt((k * cols ** 2).sum()) == pytest.approx(0.7, abs=0.05)
    np.testing.assert_array_equal(K.load_kernel(shared_data / "kernels/USRNet/kernels_12.mat", 11), kernels[11])
    with pytest.raises(DegradationError, match="out of range"):
        K.load_kernel(shared_data / "kernels/USRNet/kernels_12.mat", 12)


def test_load_kernels_other_formats(tmp_path, shared_data):
    stack = np.stack([K.gaussian_kernel(9, s) for s in (1.0, 2.0)])
    np.save(tmp_path / "k.npy", stack)
    np.testing.assert_array_equal(K.load_kernels(tmp_path / "k.npy")[1], stack[1])
    levin = K.load_kernels(shared_data / "kernels" / "KAIR" / "Levin09.mat")  # MATLAB v7.3
    assert [k.shape[0] for k in levin] == [19, 17, 15, 27, 13, 21, 23, 23]
    assert all(abs(k.sum() - 1) < 1e-4 for k in levin)
    with pytest.raises(DegradationError, match="no such kernel file"):
        K.load_kernels(tmp_path / "missing.mat")
