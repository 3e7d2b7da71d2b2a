"""train.py refuses what cannot work before it trains, and protects its run folder: an SFTMD
of another scale, --scales on a network of fixed scale, a full disk, a second writer, and a
failed start that would leave a folder behind."""
import errno
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests.conftest import ROOT
from tests.train_utils import run_cli, write_images

TINY = ["srresnet", "--param", "B=1", "--param", "filters=4", "--scale", "2",
        "--steps", "4", "--batch-size", "2", "--patch-size", "24"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs"), n=2, size=(48, 48))


def tiny(images, out, *extra):
    return (*TINY, "--train-dir", images, "--val-dir", images, "--out", str(out), *extra)


def one_line_error(r, pattern):
    """The command failed with exit status 2 and one ``error:`` line (after any log lines)."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("error: ") and pattern in last, r.stderr
    return last


@pytest.fixture(scope="module")
def sftmd_x4(tmp_path_factory):
    """A tiny SFTMD x4 checkpoint with its PCA, as train.py sftmd writes one."""
    from visionfw import models
    from visionfw.checkpoint import save_model
    from visionfw.graph.builder import attach_spec, build
    from visionfw.kernel_codes import pca_from, with_pca

    d, name, hparams = models.resolve_model("sftmd", nb=1, nf=8, code_len=4, scale=4)
    d = with_pca(d, pca_from("", 4))
    model = build(d)
    attach_spec(model, d, name, hparams)
    return save_model(model, tmp_path_factory.mktemp("sftmd") / "sftmd_x4.weights.h5")


def test_ikc_refuses_an_sftmd_of_another_scale_before_training(tmp_path, images, sftmd_x4):
    common = ["--param", "nf=8", "--param", "code_len=4", "--scale", "2",
              "--train-dir", images, "--val-dir", images, "--steps", "2", "--batch-size", "2",
              "--patch-size", "32", "--val-every", "2"]
    for recipe, given in (("ikc", ["--recipe-param", f"sftmd={sftmd_x4}"]),
                          ("ikc-predictor", ["--sftmd", sftmd_x4])):
        out = tmp_path / recipe
        r = run_cli("train.py", recipe, *given, *common, "--out", out)
        line = one_line_error(r, f"--sftmd {sftmd_x4} up-samples x4 but this run trains at x2")
        assert "give --scale 4" in line
        assert not out.exists()


def test_scales_are_refused_for_a_network_of_fixed_scale(tmp_path):
    from visionfw.train.config import TrainConfig
    from visionfw.train.run import resolve_model_and_scale

    out = tmp_path / "run"
    r = run_cli("train.py", "sftmd", "--param", "nb=1", "--param", "nf=8", "--param",
                "code_len=4", "--scales", "2,5", "--patch-size", "40", "--batch-size", "2",
                "--steps", "2", "--out", out)
    line = one_line_error(r, "--scales 2,5: SFTMD up-samples x4 only")
    assert "give --scale N" in line
    assert not out.exists()
    # the network's own scale alone is fine; a network that takes the scale accepts several
    resolve_model_and_scale(TrainConfig(model="sftmd", hparams={"nb": "1", "nf": "8"},
                                        scales=[4]))
    usrnet = TrainConfig(model="usrnet", scales=[2, 3, 4],
                         hparams={"iterations": "1", "nc": "8", "nb": "1", "levels": "2"})
    d, _, _ = resolve_model_and_scale(usrnet)
    assert d["meta"]["scales"] == "input" and usrnet.scale == 4


@pytest.mark.parametrize("failure", ["checkpoint-resource-exhausted", "weights-oserror"])
def test_a_full_disk_is_one_line_naming_the_last_checkpoint_kept(tmp_path, images, monkeypatch,
                                                                 failure):
    import visionfw.checkpoint

    out = tmp_path / "run"
    if failure == "weights-oserror":             # best.weights.h5 at the validation of step 2
        def full(model, path):
            (out / ".tmp-half.weights.h5").write_bytes(b"x" * 64)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(visionfw.checkpoint, "save_model", full)
        what = "best.weights.h5"
    else:                                        # TensorFlow's checkpoint of step 2
        save = tf.train.CheckpointManager.save

        def full(self, checkpoint_number=None, **kwargs):
            if checkpoint_number == 2:
                (out / "checkpoints" / "ckpt-2_temp").mkdir()
                raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
            return save(self, checkpoint_number=checkpoint_number, **kwargs)

        monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
        what = "checkpoint ckpt-2"
    val_every = "2" if what.endswith(".h5") else "4"
    r = run_cli("train.py", *tiny(images, out, "--val-every", val_every, "--save-every", "1"))
    kept = out / "checkpoints" / "ckpt-1"
    one_line_error(r, f"cannot write {what} in run folder {out}: No space left on device; "
                      f"the last checkpoint kept is {kept} (step 1)")
    assert not list(out.glob(".tmp-*")) and not list(out.glob("checkpoints/*_temp*"))
    assert not (out / "train.lock").exists()
    assert tf.train.latest_checkpoint(str(out / "checkpoints")) == str(kept)  # --resume's start
    if failure == "weights-oserror":        # HDF5 is not started on a disk without room
        import shutil
        import types

        import visionfw
        from visionfw.train.config import check_room

        model = visionfw.build_model("srresnet", B=1, filters=4, scale=2, compile=False)
        check_room(tmp_path, model)
        monkeypatch.setattr(shutil, "disk_usage", lambda p: types.SimpleNamespace(free=2 ** 16))
        with pytest.raises(OSError) as info:
            check_room(tmp_path, model)
        assert info.value.errno == errno.ENOSPC


def test_a_second_writer_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, images,
                                                                    monkeypatch):
    out = tmp_path / "run"
    assert run_cli("train.py", *tiny(images, out)).returncode == 0
    assert not (out / "train.lock").exists()              # removed at the end of a run
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from visionfw.train.config import RunLock\n"
         "RunLock.acquire(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(120)",
         str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (tiny(images, out), ("srresnet", "--out", out, "--resume")):
            r = run_cli("train.py", *args)
            one_line_error(r, f"run folder {out} is in use by PID {holder.pid}")
            assert r.stderr.count("\n") == 1, r.stderr
    finally:
        holder.kill()
        holder.wait()
    assert (out / "train.lock").read_text().split()[0] == str(holder.pid)   # a stale lock
    r = run_cli("train.py", "srresnet", "--out", out, "--resume", "--steps", "5")
    assert r.returncode == 0, r.stderr
    assert f"took over the lock of PID {holder.pid}, which is no longer running" in r.stderr
    assert not (out / "train.lock").exists()
    # Ctrl-C: the lock is held while training, and removed
    from visionfw.train.trainer import Trainer

    seen = []

    def interrupted(self, *args):
        seen.append((out / "train.lock").read_text().split()[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_loop", interrupted)
    r = run_cli("train.py", "srresnet", "--out", out, "--resume", "--steps", "6")
    assert r.returncode == 130 and seen == [str(os.getpid())], r.stderr
    assert not (out / "train.lock").exists()


def test_a_failed_start_leaves_no_run_folder(tmp_path, images):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, pattern in [
        (tiny(images, tmp_path / "a" / "b" / "run", "--train-dir", empty), "no images"),
        (("ikc", "--param", "nf=8", "--scale", "2", "--out", tmp_path / "ikc"),
         "needs the trained SFTMD"),
        (tiny(images, tmp_path / "c", "--train-dir", tmp_path / "none"), "no such folder"),
        (tiny(images, tmp_path / "d", "--lr", "-1"), "--lr must be positive"),
    ]:
        one_line_error(run_cli("train.py", *args), pattern)
    assert sorted(os.listdir(tmp_path)) == ["empty"]
