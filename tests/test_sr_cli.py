"""python -m visionfw sr: super-resolve images without ground truth."""
import os

import numpy as np
import pytest

import visionfw
from tests.train_utils import run_cli, write_images
from visionfw.imageio import read_image


@pytest.fixture(scope="module")
def lr_folder(tmp_path_factory):
    folder = write_images(tmp_path_factory.mktemp("lr"), n=2, size=(20, 26))
    with open(os.path.join(folder, "zz_truncated.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not an image")
    return folder


def test_folder_of_lr_images_rgb_and_y_models(lr_folder, tmp_path):
    rgb = tmp_path / "rgb.weights.h5"
    visionfw.save_model(visionfw.build_model("srresnet", B=1, filters=8, scale=2), rgb)
    out = tmp_path / "out"
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", str(rgb), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "2 image(s) super-resolved x2" in r.stdout and "skipped 1: zz_truncated.png" in r.stdout
    assert sorted(os.listdir(out)) == ["img0_x2.png", "img1_x2.png"]
    assert read_image(out / "img0_x2.png").shape == (40, 52, 3)
    # a Y-only network converts and merges the chroma itself
    y = tmp_path / "y.weights.h5"
    visionfw.save_model(visionfw.build_model("vdsr-y", depth=3, filters=8, scale=3), y)
    r = run_cli("-m visionfw", "sr", os.path.join(lr_folder, "img1.png"), "--weights", str(y),
               "--out", str(tmp_path / "yout"))
    assert r.returncode == 0, r.stderr
    sr = read_image(tmp_path / "yout" / "img1_x3.png")
    assert sr.shape == (60, 78, 3) and np.ptp(sr.astype(int)[..., 0] - sr[..., 2]) > 0


def test_bad_output_folder_and_non_blind_networks_fail_before_any_work(lr_folder, tmp_path):
    rgb = tmp_path / "rgb.weights.h5"
    visionfw.save_model(visionfw.build_model("srresnet", B=1, filters=8, scale=2), rgb)
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder")
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", str(rgb), "--out",
                str(blocked / "sub"))
    assert r.returncode == 2 and "is not writable" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    from tests.test_conditioning import toy_dict

    toy = visionfw.build(toy_dict())
    visionfw.save_model(toy, tmp_path / "toy.weights.h5")
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights",
                str(tmp_path / "toy.weights.h5"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "needs the true kernel" in r.stderr
    assert not (tmp_path / "o").exists() or not os.listdir(tmp_path / "o")


def _forms(folder):
    """Test images of every form: 8- and 16-bit gray, 16-bit colour, colour with transparency
    (20 x 26 crops of one photograph)."""
    from skimage import data

    from visionfw.imageio import write_image

    folder.mkdir()
    rgb = data.astronaut()[100:120, 150:176]
    gray = data.camera()[200:220, 200:226]
    write_image(folder / "gray8.png", gray)
    write_image(folder / "gray_as_rgb.png", np.repeat(gray[..., None], 3, axis=-1))
    write_image(folder / "gray16.png", gray.astype(np.uint16) * 257 + 77)
    write_image(folder / "rgb16.png", rgb.astype(np.uint16) * 257 + 33)
    alpha = np.tile(np.linspace(0, 255, 26).astype(np.uint8), (20, 1))[..., None]
    write_image(folder / "rgba.png", np.concatenate([rgb, alpha], axis=-1))
    return folder


def _png(path):
    """``(bits per sample, array (H, W, C))`` of a PNG as the file stores it (its header's bit
    depth; decoded by TensorFlow, which keeps 16-bit colour)."""
    import tensorflow as tf

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    bits = data[24]
    image = tf.io.decode_png(data, channels=0, dtype=tf.uint16 if bits == 16 else tf.uint8)
    return bits, image.numpy()


def test_gray_and_16_bit_inputs_are_written_in_their_own_form(tmp_path):
    from tests.train_utils import run_cli

    inputs = _forms(tmp_path / "in")
    rgb = tmp_path / "rgb.weights.h5"
    visionfw.save_model(visionfw.build_model("srresnet", B=1, filters=8, scale=2), rgb)
    out = tmp_path / "out"
    r = run_cli("-m visionfw", "sr", inputs, "--weights", rgb, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "5 image(s) super-resolved x2" in r.stdout
    assert "26x20 -> 52x40 (gray)" in r.stderr and "(gray, 16-bit)" in r.stderr
    bits, gray = _png(out / "gray8_x2.png")
    assert (bits, gray.shape) == (8, (40, 52, 1))
    # the network saw three equal channels; gray out is their mean, rounded once
    bits, as_rgb = _png(out / "gray_as_rgb_x2.png")
    assert (bits, as_rgb.shape) == (8, (40, 52, 3))
    assert np.ptp(as_rgb.astype(int), axis=-1).max() > 0
    assert np.abs(gray[..., 0].astype(int) - as_rgb.mean(axis=-1)).max() <= 1
    bits, gray16 = _png(out / "gray16_x2.png")
    assert (bits, gray16.shape) == (16, (40, 52, 1))
    assert np.any(gray16 % 257)                     # 16 bits used, not 8 scaled up
    bits, rgb16 = _png(out / "rgb16_x2.png")
    assert (bits, rgb16.shape) == (16, (40, 52, 3)) and np.any(rgb16 % 257)
    # transparency is kept: the alpha channel resized (bicubic), beside the SR colour
    bits, rgba = _png(out / "rgba_x2.png")
    assert (bits, rgba.shape) == (8, (40, 52, 4))
    ramp = rgba[..., 3].astype(int)
    assert np.all(np.diff(ramp[:, 2:-2], axis=1) >= 0) and ramp[0, 0] < 8 and ramp[0, -1] > 247
    # a Y-only network too
    y = tmp_path / "y.weights.h5"
    visionfw.save_model(visionfw.build_model("vdsr-y", depth=3, filters=8, scale=3), y)
    r = run_cli("-m visionfw", "sr", inputs / "gray8.png", "--weights", y, "--out",
                tmp_path / "yout")
    assert r.returncode == 0, r.stderr
    bits, gray = _png(tmp_path / "yout" / "gray8_x3.png")
    assert (bits, gray.shape) == (8, (60, 78, 1))


def test_blind_ikc_of_a_gray_image_is_gray(tmp_path):
    from tests.conftest import ROOT
    from tests.train_utils import run_cli

    zoo = ROOT / "zoo"
    files = {role: zoo / f"{name}_x4.weights.h5" for role, name in
             (("sftmd", "sftmd_nb8_nf32"), ("predictor", "ikc_predictor_nf32"),
              ("corrector", "ikc_corrector_nf32"))}
    if not all(f.is_file() for f in files.values()):
        pytest.skip("the zoo's IKC weights are not present")
    from skimage import data

    from visionfw.imageio import write_image

    (tmp_path / "in").mkdir()
    gray = data.camera()[200:232, 200:232]
    write_image(tmp_path / "in" / "gray8.png", gray)
    write_image(tmp_path / "in" / "gray16.png", gray.astype(np.uint16) * 257)
    weights = [a for role, f in files.items() for a in ("--weights", f"{role}={f}")]
    out = tmp_path / "out"
    r = run_cli("-m visionfw", "sr", tmp_path / "in", "--method", "ikc", "--iterations", "1",
                *weights, "--out", out)
    assert r.returncode == 0, r.stderr
    bits, gray = _png(out / "gray8_x4.png")
    assert (bits, gray.shape) == (8, (128, 128, 1))
    bits, gray16 = _png(out / "gray16_x4.png")
    assert (bits, gray16.shape) == (16, (128, 128, 1)) and np.any(gray16 % 257)
