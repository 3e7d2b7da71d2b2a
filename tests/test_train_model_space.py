"""Training feeds every registered model what test.py feeds it: a Y-only model its Y channel,
a YCbCr model YCbCr, SRCNN the bicubic up-sampling, and a model whose valid convolutions shrink
its output is scored on the part it covers. So val.csv is test.py's number for the same
weights, and a trained network is tested on the colour space it learned."""
import csv
import json

import numpy as np
import pytest

from tests.train_utils import run_cli, write_images

CASES = {
    "srcnn": ["srcnn", "--param", "n1=8", "--param", "n2=4"],          # ycbcr_full, up, shrink
    "srcnn-y": ["srcnn", "--param", "n1=8", "--param", "n2=4", "--param", "color=y"],
    "fsrcnn": ["fsrcnn", "--param", "d=8", "--param", "s=4", "--param", "m=1"],  # ycbcr_full
    "vdsr-y": ["vdsr-y", "--param", "depth=3", "--param", "filters=8"],  # Y only
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("space"), n=2, size=(40, 48))


@pytest.mark.parametrize("case", sorted(CASES))
def test_validation_during_training_is_what_test_py_scores(tmp_path, images, case):
    run = tmp_path / "run"
    r = run_cli("train.py", *CASES[case], "--scale", "2", "--train-dir", images, "--val-dir",
                images, "--steps", "4", "--val-every", "4", "--batch-size", "2",
                "--patch-size", "24", "--lr", "1e-3", "--out", str(run))
    assert r.returncode == 0, r.stderr
    with open(run / "val.csv") as f:
        row = list(csv.DictReader(f))[-1]
    report = tmp_path / "r.json"
    r = run_cli("test.py", "--weights", str(run / "last.weights.h5"), "--dataset", images,
                "--json", str(report))
    assert r.returncode == 0, r.stderr
    tested = json.loads(report.read_text())["results"][0]
    assert float(row["psnr"]) == pytest.approx(tested["psnr"], abs=2e-3)
    assert float(row["bicubic_psnr"]) == pytest.approx(tested["bicubic_psnr"], abs=2e-3)


def test_a_shrinking_model_is_validated_on_the_part_it_covers(tmp_path, images):
    """SRCNN's bicubic row is scored without the border its output lacks (as test.py does),
    so it differs from the full image's bicubic score."""
    run = tmp_path / "run"
    args = ["--scale", "2", "--train-dir", images, "--val-dir", images, "--steps", "2",
            "--val-every", "2", "--batch-size", "2", "--patch-size", "24", "--out"]
    assert run_cli("train.py", *CASES["srcnn"], *args, str(run)).returncode == 0
    assert run_cli("train.py", *CASES["vdsr-y"], *args, str(tmp_path / "full")).returncode == 0

    def bicubic(folder):
        with open(folder / "val.csv") as f:
            return float(list(csv.DictReader(f))[-1]["bicubic_psnr"])

    assert abs(bicubic(run) - bicubic(tmp_path / "full")) > 0.01


def test_model_space_conversions_match_the_numpy_ones():
    import tensorflow as tf

    from visionfw.color import (from_model_space, rgb_to_ycbcr, rgb_to_ycbcr_full,
                                to_model_space, ycbcr_full_to_rgb)

    rgb = np.random.default_rng(0).uniform(0, 1, (2, 5, 7, 3)).astype(np.float32)
    x = tf.constant(rgb)
    np.testing.assert_allclose(to_model_space(x, "y").numpy(), rgb_to_ycbcr(rgb)[..., :1],
                               atol=1e-6)
    full = to_model_space(x, "ycbcr_full").numpy()
    np.testing.assert_allclose(full, rgb_to_ycbcr_full(rgb), atol=1e-6)
    np.testing.assert_allclose(from_model_space(tf.constant(full), "ycbcr_full").numpy(),
                               ycbcr_full_to_rgb(full), atol=1e-5)
    np.testing.assert_allclose(from_model_space(tf.constant(full), "ycbcr_full").numpy(), rgb,
                               atol=1e-4)
    assert to_model_space(x, "rgb") is x
    with pytest.raises(ValueError, match="unknown colour space"):
        to_model_space(x, "lab")
