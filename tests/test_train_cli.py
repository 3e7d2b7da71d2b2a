"""train.py as a user runs it: errors are one line; a tiny run trains, validates, saves;
SIGTERM saves a checkpoint that --resume continues."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.train_utils import run_cli, run_py, subprocess_threads, write_images

TINY = ["srresnet", "--param", "B=2", "--param", "filters=8", "--scale", "2",
        "--batch-size", "4", "--patch-size", "32"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("cli"), n=3, size=(64, 80))


def one_line_error(r, pattern):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert pattern in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_run_folder_is_an_error_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_cli("train.py", *TINY, "--out", str(blocker / "run"))
    one_line_error(r, f"run folder {blocker / 'run'} is not writable")


def test_bad_options_and_models_are_one_line_errors(tmp_path):
    out = str(tmp_path / "x")
    for args, pattern in [
        ((*TINY, "--stepz", "3"), "no such option: --stepz (did you mean --steps?)"),
        (("ikc", "--steps-per-bach", "3"), "no such option: --steps-per-bach (did you mean "
                                           "--steps-per-batch?); recipe ikc takes"),
        (("ikc", "--steps-per-batch"), "--steps-per-batch needs a value"),
        (("ikc", "--steps-per-batch", "2", "--recipe-param", "steps_per_batch=3"),
         "both given; give it once"),
        ((*TINY, "--loss", "l3"), "'l3' is not one of 'l1', 'mse'"),
        (("srresnt", "--out", out), "unknown model 'srresnt'"),
        ((*TINY, "--patch-size", "33", "--out", out), "--patch-size 33 must be a multiple"),
        ((*TINY, "--ema", "2", "--out", out), "--ema must be a decay in (0, 1)"),
        ((*TINY, "--train-dir", str(tmp_path / "none"), "--out", out), "no such folder"),
        ((*TINY, "--resume", "--out", out), "holds no checkpoint to resume from"),
        (("rank-datasets", "--eval-dataset", "x"), "Missing option '--dataset'"),
    ]:
        one_line_error(run_cli("train.py", *args), pattern)
    # and once as a user runs it, in its own process
    one_line_error(run_py("train.py", *TINY, "--stepz", "3"), "no such option: --stepz")


BLOCK_TENSORFLOW = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError("imported " + name)

sys.meta_path.insert(0, Block())
from visionfw.cli.train import main
main(sys.argv[1:], prog_name="train.py")
"""


@pytest.mark.parametrize("model", ["srresnet", "ikc"])
def test_a_missing_data_folder_is_reported_before_tensorflow_is_imported(tmp_path, model):
    """A mistyped --train-dir costs no TensorFlow start-up, also for a recipe named in the
    model's place (whose default degradation is read from the recipe class)."""
    missing = tmp_path / "none"
    r = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, model, "--train-dir",
                        str(tmp_path), "--val-dir", str(missing)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == f"error: --val-dir {missing}: no such folder"


def test_tiny_run_improves_and_writes_its_run_folder(tmp_path, images):
    out = tmp_path / "run"
    r = run_py("train.py", *TINY, "--train-dir", images, "--val-dir", images, "--steps", "60",
               "--val-every", "20", "--lr", "2e-3", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "val.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [20, 40, 60]
    psnr = [float(r["psnr"]) for r in rows]
    assert max(psnr[1:]) > psnr[0] + 0.5, psnr
    assert float(rows[0]["bicubic_psnr"]) > 20
    settings = json.loads((out / "settings.json").read_text())
    assert settings["settings"]["steps"] == 60 and "--val-every" in settings["argv"]
    assert settings["model"]["hparams"]["B"] == 2
    import visionfw

    model = visionfw.load_model(str(out / "best.weights.h5"), compile=False)
    assert model.name == "SRResNet"
    assert os.listdir(out / "logs")
    from tests.train_utils import event_tags

    tags = event_tags(out)
    assert tags["val/psnr"] == "scalars" and tags["train/loss"] == "scalars"
    assert [t for t, kind in tags.items() if t.startswith("val/comparison/") and kind == "images"]
    # the training curves, redrawn at each validation
    from PIL import Image

    with Image.open(out / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 600
    assert "best validation PSNR" in r.stderr
    # running it again into the same folder is refused, --resume of a finished run is a no-op
    one_line_error(run_py("train.py", *TINY, "--out", str(out)), "already holds a run")


def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path, images):
    out = tmp_path / "run"
    args = ["train.py", *TINY, "--train-dir", images, "--val-dir", images, "--steps", "150",
            "--val-every", "150", "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", VISIONFW_THREADS=subprocess_threads())
    p = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not (out / "train.csv").is_file():
        time.sleep(0.05)                     # train.csv gets its first row at step 10
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err[-2000:]
    assert "SIGTERM" in err and "continue with --resume" in err
    state = (out / "checkpoints" / "checkpoint").read_text()
    step = int(state.splitlines()[0].split("ckpt-")[1].rstrip('"'))
    assert 10 <= step < 150
    assert not (out / "last.weights.h5").exists()
    # a changed setting is refused; the same run resumed finishes where it was going
    one_line_error(run_py("train.py", "srresnet", "--out", str(out), "--resume", "--lr", "1e-3"),
                   "--resume keeps the run's settings; these differ: --lr")
    r = run_py("train.py", "srresnet", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    with open(out / "val.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [150]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["settings"]["steps"] == 150 and len(settings["resumed"]) == 1
    assert (out / "last.weights.h5").is_file()


def test_a_log_that_is_not_a_terminal_gets_plain_progress_lines(tmp_path):
    from tests.train_utils import train_tiny_run, write_images

    images = write_images(tmp_path / "imgs", n=2, size=(40, 40))
    r = train_tiny_run(tmp_path / "run", images)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout and "\x08" not in r.stdout
    assert "step 2/2 - loss: " in r.stdout


def test_tensorboard_and_the_curve_plotter_are_installed_with_the_project():
    import importlib.util

    requirements = (ROOT / "requirements.txt").read_text().split()
    for package in ("tensorboard", "matplotlib"):
        assert any(r.startswith(package) for r in requirements), package
        assert importlib.util.find_spec(package) is not None, package
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert EventAccumulator is not None          # what `tensorboard --logdir` reads with
