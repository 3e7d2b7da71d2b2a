"""python -m visionfw sr: super-resolve images without ground truth."""
import os

import numpy as np
import pytest

import visionfw
from tests.train_utils import run_cli, run_py, write_images
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
    r = run_py("-m", "visionfw", "sr", lr_folder, "--weights", str(rgb), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "2 image(s) super-resolved x2" in r.stdout and "skipped 1: zz_truncated.png" in r.stdout
    assert sorted(os.listdir(out)) == ["img0_x2.png", "img1_x2.png"]
    assert read_image(out / "img0_x2.png").shape == (40, 52, 3)
    # a Y-only network converts and merges the chroma itself
    y = tmp_path / "y.weights.h5"
    visionfw.save_model(visionfw.build_model("vdsr-y", depth=3, filters=8, scale=3), y)
    r = run_py("-m", "visionfw", "sr", os.path.join(lr_folder, "img1.png"), "--weights", str(y),
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
