"""Kernel PSNR / MSE and kernel pictures."""
import math

import numpy as np
import pytest

from visionfw.degradation import DegradationError, gaussian_kernel, kernel_grid, kernel_mse, kernel_picture, kernel_psnr


def test_psnr_by_hand():
    true = gaussian_kernel(21, 2.0)
    est = true + 0.001
    assert kernel_mse(est, true) == pytest.approx(1e-6)
    assert kernel_psnr(est, true) == pytest.approx(60.0)  # 10 log10(1 / 1e-6), peak 1
    peak = true.max()
    assert kernel_psnr(est, true, normalize="max") == pytest.approx(10 * math.log10(peak ** 2 / 1e-6))
    assert kernel_psnr(true, true) == math.inf
    with pytest.raises(DegradationError):
        kernel_psnr(est, true, normalize="sum")


def test_stacks_and_sizes_are_aligned_on_the_origin():
    true = np.stack([gaussian_kernel(25, 1.0), gaussian_kernel(25, 2.0)])
    est = np.stack([gaussian_kernel(21, 1.0), gaussian_kernel(21, 2.5)])
    psnr = kernel_psnr(est, true)
    assert psnr.shape == (2,)
    # the 21x21 estimate is zero-padded by 2 on each side: same origin, tap 12 of 25
    padded = np.pad(est, ((0, 0), (2, 2), (2, 2)))
    np.testing.assert_allclose(psnr, kernel_psnr(padded, true))
    assert psnr[0] > 80 and psnr[1] < psnr[0]
    np.testing.assert_allclose(kernel_mse(est, true), ((padded - true) ** 2).mean(axis=(1, 2)))


def test_pictures(tmp_path):
    k = gaussian_kernel(9, 1.0)
    pic = kernel_picture(k, zoom=3)
    assert pic.shape == (27, 27) and pic.dtype == np.uint8 and pic.max() == 255
    assert pic[12:15, 12:15].min() == 255 and pic[0, 0] == 0
    grid = kernel_grid(np.stack([k, k]), np.stack([k, k]), zoom=2, columns=1, gap=4)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    cell_w = 2 * 18 + 2
    assert grid.shape == (2 * (18 + 4) + 4, cell_w + 8, 3)
    # true kernel in green, estimate in white, gray background
    assert grid[0, 0].tolist() == [128, 128, 128]
    assert grid[4 + 9, 4 + 9].tolist() == [0, 255, 0]
    assert grid[4 + 9, 4 + 18 + 2 + 9].tolist() == [255, 255, 255]
    from visionfw.imageio import read_image, write_image

    write_image(tmp_path / "grid.png", grid)
    np.testing.assert_array_equal(read_image(tmp_path / "grid.png"), grid)


def test_fit_isotropic_sigma_recovers_the_sigma_of_a_gaussian():
    from visionfw.degradation import fit_isotropic_sigma

    for sigma in (0.6, 1.8, 2.6, 3.9):
        assert abs(fit_isotropic_sigma(gaussian_kernel(21, sigma)) - sigma) <= 0.005
    # a wider anisotropic kernel sits between its two sigmas
    fitted = fit_isotropic_sigma(gaussian_kernel(21, 1.0, 3.0, 0.3))
    assert 1.0 < fitted < 3.0


def test_kernel_shape_gives_back_the_gaussian_that_made_the_kernel():
    from visionfw.degradation import kernel_shape

    # 41 taps: the window cuts nothing off a sigma of 3, so the moments are the Gaussian's
    for s1, s2, degrees in ((3.0, 1.0, 0), (3.0, 1.0, 30), (2.5, 0.8, 135), (1.2, 2.4, 10)):
        major, minor, theta = kernel_shape(gaussian_kernel(41, s1, s2, math.radians(degrees)))
        assert major == pytest.approx(max(s1, s2), abs=1e-3)
        assert minor == pytest.approx(min(s1, s2), abs=1e-3)
        # the major axis: theta itself when sigma1 is the larger, theta + 90 otherwise
        want = degrees if s1 > s2 else (degrees + 90) % 180
        assert theta == pytest.approx(want, abs=1e-3)
    # a moved kernel has the same shape (moments about the centroid); x along columns
    k = np.zeros((21, 21))
    k[4, 2:9] = 1.0                                   # a horizontal line off the centre
    major, minor, theta = kernel_shape(k)
    assert (major, minor) == pytest.approx((2.0, 0.0), abs=1e-9)   # sqrt(mean of 0,1,4,9 x2)
    assert min(theta, 180 - theta) == pytest.approx(0.0, abs=1e-9)
    k = np.zeros((21, 21))
    k[2:9, 4] = 1.0                                   # vertical: 90 degrees
    assert kernel_shape(k)[2] == pytest.approx(90.0, abs=1e-9)
    with pytest.raises(DegradationError, match="positive mass"):
        kernel_shape(np.zeros((5, 5)))


def test_orientation_summary_by_hand():
    from visionfw.degradation import orientation_summary

    pairs = [((2.0, 1.0, 170.0), (3.0, 1.0, 10.0)),    # 20 degrees off, across 0/180
             ((2.0, 2.0, 90.0), (4.0, 1.0, 0.0)),      # 90 off: a round estimate
             ((3.0, 1.5, 40.0), (2.0, 1.0, 45.0)),     # 5 off
             ((1.0, 1.0, 0.0), (1.2, 1.0, 77.0))]      # too round to have a direction
    o = orientation_summary(pairs)
    assert o["n"] == 3
    assert o["angle_error"] == pytest.approx(20.0)     # median of 20, 90, 5
    assert o["true_ratio"] == pytest.approx((3 + 4 + 2) / 3)
    assert o["estimate_ratio"] == pytest.approx((2 + 1 + 2) / 3)
    # true angles 10 and 0 are near the axes (errors 20, 90), 45 near a diagonal (error 5)
    assert o["angle_error_axes"] == pytest.approx(55.0)
    assert o["angle_error_diagonals"] == pytest.approx(5.0)
    assert (o["n_axes"], o["n_diagonals"]) == (2, 1)
    only_axes = orientation_summary(pairs[:2])
    assert only_axes["angle_error_diagonals"] is None and only_axes["n"] == 2
    # 22 degrees from 90 is near an axis, 23 from 0 is nearer the diagonal at 45
    assert orientation_summary([((2, 1, 68.0), (2, 1, 68.0))])["angle_error_axes"] == 0.0
    assert orientation_summary([((2, 1, 23.0), (2, 1, 23.0))])["angle_error_diagonals"] == 0.0
    assert orientation_summary(pairs[3:]) == {"n": 0, "min_ratio": 1.5}
