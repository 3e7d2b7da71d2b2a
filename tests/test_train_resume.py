"""Resuming a run reaches the weights of the run that never stopped; NaN stops a run."""
import numpy as np
import pytest
import tensorflow as tf

from tests.train_utils import (make_trainer, resume_from_copy, tiny_config, weights,
                               write_images)
from visionfw.train.trainer import NonFiniteLoss


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("train"))


@pytest.mark.parametrize("extra", [
    {},
    {"sampler": "psnr-gain", "ema": 0.9, "clip_norm": 0.5, "schedule": "multistep",
     "milestones": [2, 4]},
], ids=["uniform", "psnr-gain-ema-clip"])
def test_resumed_run_matches_uninterrupted_run(tmp_path, images, extra):
    straight = make_trainer(tiny_config(tmp_path / "a", images, save_every=3, **extra))
    result = straight.fit()
    assert result["step"] == 6 and result["stopped"] is None

    second = resume_from_copy(tmp_path / "a", tiny_config(tmp_path / "b", images, **extra), 3)
    before = weights(second)
    assert second.fit(resume=True)["step"] == 6

    a, b = weights(straight), weights(second)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # the run did move between step 3 and step 6
    assert any(not np.allclose(x, y) for x, y in zip(before, b))
    if extra.get("ema"):
        for x, y in zip(straight.ema_vars, second.ema_vars):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    if extra.get("sampler"):
        p1, p2 = straight.sampler.probs.numpy(), second.sampler.probs.numpy()
        np.testing.assert_allclose(p1, p2, rtol=1e-6)
        assert not np.allclose(p1, p1[0])          # the sampler did change probabilities
        assert abs(p1.sum() - 1.0) < 1e-9


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, images):
    config = tiny_config(tmp_path / "nan", images, save_every=1)
    trainer = make_trainer(config)
    recipe = trainer.recipe
    original = recipe.train_step

    def poisoned(batch, opt):
        out = original(batch, opt)
        third = trainer.step >= 2
        out["loss"] = tf.where(third, tf.constant(float("nan")), out["loss"])
        return out

    recipe.train_step = poisoned
    trainer._train_step = trainer._make_train_step()
    with pytest.raises(NonFiniteLoss, match=r"at step 3 .*last good checkpoint is .*ckpt-2"):
        trainer.fit()
    assert trainer.manager.latest_checkpoint.endswith("ckpt-2")
    # that checkpoint holds finite weights
    check = make_trainer(config, resume=True)
    assert check.restore() == 2
    assert all(np.all(np.isfinite(w)) for w in weights(check))


def test_val_csv_loss_and_seconds_continue_across_a_resume(tmp_path, images):
    import csv

    def rows(folder):
        with open(folder / "val.csv") as f:
            return list(csv.DictReader(f))

    extra = dict(val_every=2, val_dirs=[images])
    straight = make_trainer(tiny_config(tmp_path / "a", images, save_every=3, **extra),
                            validation=True)
    straight.fit()
    # the copy is rolled back to the checkpoint of step 3, with val.csv's rows of steps 4 and
    # 6 still in it, as a kill after step 4 leaves the folder
    second = resume_from_copy(tmp_path / "a", tiny_config(tmp_path / "b", images, **extra), 3,
                              validation=True)
    stale = rows(tmp_path / "b")               # marked, so that only rewritten rows match
    with open(tmp_path / "b" / "val.csv", "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(stale[0]))
        out.writeheader()
        out.writerows(dict(r, loss="9.99") if int(r["step"]) > 3 else r for r in stale)
    second.fit(resume=True)
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert [r["step"] for r in a] == [r["step"] for r in b] == ["2", "4", "6"]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]     # same losses averaged
    seconds = [float(r["seconds"]) for r in b]
    assert seconds == sorted(seconds) and seconds[1] >= seconds[0]


def test_resume_cleans_what_a_kill_left_and_starts_a_run_killed_before_its_first_checkpoint(
        tmp_path, images):
    import json
    import shutil

    from tests.train_utils import run_cli

    out = tmp_path / "run"
    args = ("srresnet", "--param", "B=1", "--param", "filters=4", "--scale", "2",
            "--train-dir", images, "--val-dir", images, "--steps", "2", "--val-every", "2",
            "--batch-size", "2", "--patch-size", "24", "--out", str(out))
    r = run_cli("train.py", *args)
    assert r.returncode == 0, r.stderr
    # what kills during writes leave behind
    (out / "checkpoints" / "ckpt-7_temp").mkdir()
    (out / "checkpoints" / "ckpt-7_temp" / "part").write_bytes(b"x" * 10)
    (out / ".tmp-abc123.weights.h5").write_bytes(b"x" * 96)
    (out / "val.csv.tmp-4242").write_bytes(b"")
    (out / "curves.png.tmp-4242.png").write_bytes(b"")
    r = run_cli("train.py", "srresnet", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "removed what an interrupted write left" in r.stderr
    assert not (out / "checkpoints" / "ckpt-7_temp").exists()
    assert not list(out.glob(".tmp-*")) and not list(out.glob("val.csv.tmp-*"))
    assert not list(out.glob("curves.png.tmp-*"))
    assert (out / "best.weights.h5").is_file() and (out / "val.csv").is_file()  # kept
    # killed while its very first checkpoint was written: settings, no checkpoint index
    shutil.rmtree(out / "checkpoints")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "ckpt-0_temp").mkdir()
    r = run_cli("train.py", "srresnet", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "starting the run from step 0" in r.stderr
    assert (out / "checkpoints" / "checkpoint").is_file()
    assert json.loads((out / "settings.json").read_text())["settings"]["steps"] == 2


def test_stop_at_keeps_the_weights_where_it_stopped_and_resume_finishes_the_run(tmp_path,
                                                                                 images):
    import os

    from visionfw.checkpoint import load_model
    from visionfw.train import TrainError
    from visionfw.train.run import train

    out = tmp_path / "staged"
    quiet = {"log": lambda m: None, "progress": False}
    with pytest.raises(TrainError, match=r"--stop-at 4 must be below --steps \(4\)"):
        train(tiny_config(out, images, steps=4), stop_at=4, **quiet)
    result = train(tiny_config(out, images, steps=4), stop_at=2, **quiet)
    assert result["stopped"] == "stop_at" and result["step"] == 2
    assert not (out / "last.weights.h5").exists()
    stopped = load_model(str(out / "stopped.weights.h5"), compile=False)

    at_two = make_trainer(tiny_config(out, images, steps=4), resume=True)
    start = [np.asarray(v) for v in at_two.recipe.main_network().weights]
    assert at_two.restore() == 2
    restored = [np.asarray(v) for v in at_two.recipe.main_network().weights]
    saved = [np.asarray(v) for v in stopped.weights]
    assert len(saved) == len(restored) > 0
    for x, y in zip(saved, restored):
        np.testing.assert_array_equal(x, y)            # the step-2 network, not another
    assert any(not np.array_equal(x, y) for x, y in zip(start, restored))

    with pytest.raises(TrainError, match="already at step 2"):
        train(tiny_config(out, images, steps=4), resume=True, stop_at=1, **quiet)
    finished = train(tiny_config(out, images, steps=4), resume=True, **quiet)
    assert finished["stopped"] is None and finished["step"] == 4
    assert (out / "last.weights.h5").exists()
    assert "stopped.weights.h5" not in os.listdir(out)   # superseded by the last weights
