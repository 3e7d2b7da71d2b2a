"""Large images are resized and scored in bands; the results equal the whole-image ones."""
import numpy as np
import pytest

from visionfw import metrics
from visionfw import resize
from visionfw.resize import imresize, imresize_banded


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.37, 2, 3, 4])
def test_banded_resize_equals_whole_image(scale):
    x = np.random.default_rng(0).random((61, 47, 3), dtype=np.float32)
    whole = np.asarray(imresize(x, scale))
    banded = imresize_banded(x, scale, band_pixels=300)   # many thin bands
    assert banded.shape == whole.shape
    np.testing.assert_allclose(banded, whole, atol=1e-6)


def test_imresize_switches_to_bands_above_the_threshold(monkeypatch):
    x = np.random.default_rng(1).random((40, 30, 3), dtype=np.float32)
    whole = np.asarray(imresize(x, 0.25))
    calls = []
    original = resize.imresize_banded
    monkeypatch.setattr(resize, "imresize_banded",
                        lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    monkeypatch.setattr(resize, "BAND_PIXELS", 100)
    np.testing.assert_allclose(np.asarray(imresize(x, 0.25)), whole, atol=1e-6)
    assert calls == [0.25]


def test_banded_ssim_equals_whole_map(monkeypatch):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (90, 70)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255)
    whole = metrics.ssim(a, b)
    monkeypatch.setattr(metrics, "SSIM_BAND_PIXELS", 150)   # bands of 2 rows of the map
    assert metrics.ssim(a, b) == pytest.approx(whole, abs=1e-12)
    assert 0.3 < whole < 1.0
