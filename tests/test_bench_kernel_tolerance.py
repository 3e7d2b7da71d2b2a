"""bench/kernel_tolerance.py: the altered kernels against numpy references, and the method it
runs fed the altered kernel in place of the true one."""
import importlib.util
import pathlib

import numpy as np
import pytest

import visionfw

PATH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "kernel_tolerance.py"
spec = importlib.util.spec_from_file_location("kernel_tolerance", PATH)
kt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kt)


def gaussian(size, cx, cy, cov):
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    d = np.stack([cols - cx, rows - cy], -1)
    g = np.exp(-0.5 * np.einsum("hwi,ij,hwj->hw", d, np.linalg.inv(cov), d))
    return g / g.sum()


def test_moment_gaussian_returns_a_gaussian_it_is_given_and_matches_moments():
    cov = np.array([[4.0, 1.5], [1.5, 2.0]])
    g = gaussian(25, 12.0, 11.0, cov)
    assert np.abs(kt.moment_gaussian(g) - g).max() < 1e-6
    # a soft bent stroke well inside the window: the fit keeps its centroid and covariance
    from scipy.ndimage import gaussian_filter

    k = np.zeros((25, 25))
    k[11, 8:15] = 1.0
    k[12:15, 15] = 0.7
    k = gaussian_filter(k, 1.0)
    fit = kt.moment_gaussian(k)
    rows, cols = np.mgrid[0:25, 0:25].astype(np.float64)

    def moments(w):
        w = w / w.sum()
        c = np.array([(w * cols).sum(), (w * rows).sum()])
        d = np.stack([cols - c[0], rows - c[1]], -1)
        return c, np.einsum("hw,hwi,hwj->ij", w, d, d)

    (c_fit, v_fit), (c_k, v_k) = moments(fit), moments(k)
    np.testing.assert_allclose(c_fit, c_k, atol=0.02)
    np.testing.assert_allclose(v_fit, v_k, rtol=0.03, atol=0.02)


def test_blur_is_a_zero_padded_gaussian_convolution_renormalised():
    rng = np.random.default_rng(0)
    k = rng.random((15, 15)) ** 8
    sigma = 1.3
    r = int(4 * sigma + 0.5)                          # scipy's default truncation, 4 sigma
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(k, r)
    rows = sum(taps[i] * padded[i:i + 15, :] for i in range(2 * r + 1))
    both = sum(taps[j] * rows[:, j:j + 15] for j in range(2 * r + 1))
    want = both / both.sum()
    got = kt.blurred(k, sigma)
    assert got.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("text", ["blur", "blur:0", "blur:x", "gaussian:2", "wide", "mean"])
def test_bad_rows_are_refused(text):
    import click

    with pytest.raises(click.BadParameter):
        kt.parse_row(text)


def test_the_method_restores_with_the_altered_kernel():
    net = visionfw.build_model("usrnet", iterations=2, nc=8, nb=1, levels=2, hidden=8,
                               scale=4)
    rng = np.random.default_rng(1)
    lr = rng.random((12, 12, 3)).astype(np.float32)
    true = gaussian(9, 4.0, 4.0, np.eye(2) * 2.0)
    labels = {"kernel": true.astype(np.float32), "noise_sigma": 0.0}
    method = kt.altered_usrnet(net, lambda k: kt.blurred(k, 1.0))
    out = method(lr, None, labels)
    want_kernel = kt.blurred(true, 1.0).astype(np.float32)
    np.testing.assert_allclose(out["kernel"], want_kernel, atol=1e-7)
    plain = kt.altered_usrnet(net, lambda k: k)
    fed = plain(lr, None, dict(labels, kernel=want_kernel))
    np.testing.assert_allclose(out["sr"][0], fed["sr"][0], atol=1e-6)
    other = plain(lr, None, labels)
    assert np.abs(other["sr"][0] - out["sr"][0]).max() > 1e-4
