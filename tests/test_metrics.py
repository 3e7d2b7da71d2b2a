"""visionfw.metrics against hand-computed values, scikit-image, the NumPy reference, and the
published bicubic figures."""
import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from tests import numpy_reference as ref
from visionfw import metrics
from visionfw.metrics import evaluate_pair, psnr, rgb2y, ssim


@pytest.fixture
def rng():
    return np.random.default_rng(1)


def _textured(rng, shape):
    """A smooth image with noise on the 0..255 scale, more like a photo than pure noise."""
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)
    if len(shape) == 3:
        base = base[..., None] + np.arange(shape[2]) * 10
    return np.clip(base + rng.normal(0, 12, shape), 0, 255)


# --- rgb2y: MATLAB rgb2ycbcr, Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on 0..255 --------


@pytest.mark.parametrize("rgb, y", [
    ((255, 255, 255), 235),  # 16 + 219
    ((0, 0, 0), 16),
    ((255, 0, 0), 81),       # 81.481
    ((0, 255, 0), 145),      # 144.553
    ((0, 0, 255), 41),       # 40.966
    ((128, 128, 128), 126),  # 16 + 219 * 128 / 255 = 125.93
    ((10, 200, 30), 122),    # 16 + (654.81 + 25710.6 + 748.98) / 255 = 122.33
])
def test_rgb2y_known_values(rgb, y):
    out = rgb2y(np.array([[rgb]], np.uint8))
    assert out.dtype == np.uint8 and out.shape == (1, 1)
    assert out[0, 0] == y


def test_rgb2y_float_is_unrounded():
    out = rgb2y(np.array([[[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]))
    np.testing.assert_allclose(out[0], [(16 + 65.481) / 255, 235 / 255], atol=1e-12)


# --- PSNR -------------------------------------------------------------------------------------


def test_psnr_hand_computed():
    a = np.zeros((4, 4))
    b = a.copy()
    b[1, 2] = 16  # MSE = 256 / 16 = 16
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 16))  # 36.0896 dB
    assert psnr(a, b) == pytest.approx(36.08960, abs=1e-5)
    assert psnr(a, a) == math.inf


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((3, 3)), np.zeros((3, 4)))


# --- SSIM -------------------------------------------------------------------------------------


def test_ssim_matches_scikit_image(rng):
    a = _textured(rng, (40, 53))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    # scikit-image filters the whole image with reflect padding, then drops a 5-pixel margin
    # of the SSIM map before averaging: that is exactly the map of full windows ('valid').
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
    assert 0.3 < expected < 0.95
    assert ssim(a, b) == pytest.approx(expected, abs=1e-10)


def test_ssim_matches_window_by_window_reference(rng):
    a = _textured(rng, (23, 30))
    b = np.clip(a * 0.9 + rng.normal(0, 15, a.shape), 0, 255)
    assert ssim(a, b) == pytest.approx(ref.ssim(a, b), abs=1e-10)


def test_ssim_properties(rng):
    a = _textured(rng, (20, 20))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 255 - a) < 0  # anticorrelated structure
    colour = _textured(rng, (20, 20, 3))
    noisy = np.clip(colour + rng.normal(0, 10, colour.shape), 0, 255)
    per_channel = [ssim(colour[..., k], noisy[..., k]) for k in range(3)]
    assert ssim(colour, noisy) == pytest.approx(np.mean(per_channel))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 30)), np.zeros((10, 30)))


# --- evaluate_pair ----------------------------------------------------------------------------


def test_border_of_scale_pixels_is_ignored(rng):
    hr = _textured(rng, (30, 36, 3)).astype(np.uint8)
    sr = hr.copy()
    sr[:3] = sr[-3:] = 0
    sr[:, :3] = sr[:, -3:] = 255
    assert evaluate_pair(sr, hr, 3) == (math.inf, 1.0)
    sr[3, 10] = (hr[3, 10].astype(int) + 100) % 256  # first pixel inside the border
    assert math.isfinite(evaluate_pair(sr, hr, 3)[0])


def test_float_sr_is_rounded_to_uint8(rng):
    hr = _textured(rng, (24, 24, 3)).astype(np.uint8)
    assert evaluate_pair((hr + 0.49) / 255, hr, 2)[0] == math.inf
    assert evaluate_pair((hr + 0.51) / 255, hr, 2)[0] < 60


def test_y_channel_value(rng):
    hr = _textured(rng, (26, 22, 3)).astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, 6, hr.shape), 0, 255).astype(np.uint8)
    y_sr, y_hr = rgb2y(sr)[2:-2, 2:-2], rgb2y(hr)[2:-2, 2:-2]
    mse = np.mean((y_sr.astype(float) - y_hr) ** 2)
    p, s = evaluate_pair(sr, hr, 2)
    assert p == pytest.approx(10 * math.log10(255**2 / mse))
    assert s == pytest.approx(ref.ssim(y_sr, y_hr), abs=1e-10)
    # a Y-only output (SRCNN, VDSR) scored against the colour ground truth
    assert evaluate_pair(rgb2y(sr), hr, 2) == pytest.approx((p, s))


def test_rgb_channel(rng):
    hr = _textured(rng, (26, 22, 3)).astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, 6, hr.shape), 0, 255).astype(np.uint8)
    c_sr, c_hr = sr[2:-2, 2:-2].astype(float), hr[2:-2, 2:-2].astype(float)
    p, s = evaluate_pair(sr, hr, 2, channel="rgb")
    assert p == pytest.approx(10 * math.log10(255**2 / np.mean((c_sr - c_hr) ** 2)))
    assert s == pytest.approx(np.mean([ref.ssim(c_sr[..., k], c_hr[..., k]) for k in range(3)]))
    assert p != pytest.approx(evaluate_pair(sr, hr, 2)[0])


def test_gray_ground_truth_is_scored_on_gray_values(rng):
    gray = _textured(rng, (28, 28)).astype(np.uint8)
    hr = np.repeat(gray[..., None], 3, axis=-1)  # as read_image returns it
    noise = rng.normal(0, 5, gray.shape)[..., None]
    sr = np.clip(hr + noise, 0, 255).astype(np.uint8)  # same error in every channel
    err = sr[4:-4, 4:-4, 0].astype(float) - gray[4:-4, 4:-4]
    expected = 10 * math.log10(255**2 / np.mean(err**2))
    p, s = evaluate_pair(sr, hr, 4, hr_is_gray=True)
    assert p == pytest.approx(expected)
    assert s == pytest.approx(ssim(sr[4:-4, 4:-4, 0], gray[4:-4, 4:-4]))
    # Y would shrink the error by 219/255, i.e. report about 1.3 dB more.
    assert evaluate_pair(sr, hr, 4)[0] - p == pytest.approx(20 * math.log10(255 / 219), abs=0.2)
    # a 2-D ground truth is gray without saying so; a 3-channel sr is reduced by its mean
    assert evaluate_pair(sr, gray, 4) == pytest.approx((p, s))
    mixed = sr.astype(float)
    mixed[..., 0] -= 2
    mixed[..., 2] += 2
    assert evaluate_pair(mixed / 255, gray, 4) == pytest.approx((p, s))


def test_evaluate_pair_errors(rng):
    hr = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="20x20"):
        evaluate_pair(np.zeros((20, 22, 3), np.uint8), hr, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_pair(np.full((20, 20, 3), 200.0), hr, 2)
    with pytest.raises(ValueError, match="channel"):
        evaluate_pair(hr, hr, 2, channel="ycbcr")
    with pytest.raises(TypeError, match="uint8"):
        evaluate_pair(hr, hr.astype(np.float32), 2)


def test_protocol_is_stated():
    text = metrics.protocol_description("y", 4)
    for part in ("Y", "BT.601", "16-235", "border crop = 4 px", "11x11", "sigma 1.5",
                 "K1=0.01", "K2=0.03"):
        assert part in text
    assert "RGB" in metrics.protocol_description("rgb")
    assert {"y", "rgb", "gray", "psnr", "ssim", "border", "lr"} <= set(metrics.PROTOCOL)


# --- acceptance: the bicubic rows every SR table starts from ---------------------------------

PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}


def test_bicubic_set5_set14_published(shared_data):
    """Bicubic x2/x3/x4 on Set5 and Set14 within 0.02 dB and 0.002 of the published values.

    As in the code behind those values (SRCNN, VDSR), the rounded Y channel of the HR image,
    cropped to a multiple of the scale, is shrunk and enlarged by MATLAB-bicubic in floating
    point; Set14's grayscale ``bridge`` uses its gray values.
    """
    from visionfw.imageio import list_images, modcrop, read_image
    from visionfw.resize import imresize

    images = {name: [read_image(p, return_gray=True)
                     for p in list_images(shared_data / "benchmark" / name / "HR")]
              for name in ("Set5", "Set14")}
    assert len(images["Set5"]) == 5 and len(images["Set14"]) == 14
    assert sum(gray for _, gray in images["Set14"]) == 1  # bridge
    for (name, scale), (pub_psnr, pub_ssim) in PUBLISHED.items():
        scores = []
        for hr, is_gray in images[name]:
            hr = modcrop(hr, scale)
            plane = hr[..., :1] if is_gray else rgb2y(hr)[..., None]
            sr = imresize(imresize(plane / 255.0, 1 / scale), scale)
            scores.append(evaluate_pair(sr, hr, scale, hr_is_gray=is_gray))
        p, s = np.mean(scores, axis=0)
        assert abs(p - pub_psnr) <= 0.02, (name, scale, p)
        assert abs(s - pub_ssim) <= 0.002, (name, scale, s)


def test_y_float_protocol_is_unrounded_y_of_the_8_bit_images():
    rng = np.random.default_rng(4)
    hr = rng.integers(0, 256, (30, 34, 3), dtype=np.uint8)
    sr = np.clip(hr / 255.0 + rng.normal(0, 0.02, hr.shape), 0, 1)
    p, s = evaluate_pair(sr, hr, 2, channel="y-float")
    w = np.array([65.481, 128.553, 24.966]) / 255.0
    sr8 = np.floor(sr * 255 + 0.5)
    y_sr = (sr8 / 255.0) @ w * 255 + 16
    y_hr = (hr / 255.0) @ w * 255 + 16
    mse = np.mean((y_sr - y_hr)[2:-2, 2:-2] ** 2)
    assert p == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-9)
    rounded, _ = evaluate_pair(sr, hr, 2, channel="y")
    assert rounded != pytest.approx(p, abs=1e-6)
