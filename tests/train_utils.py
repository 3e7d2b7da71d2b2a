"""Helpers for the training tests: tiny images on disk, tiny configs, subprocess runs."""
import os
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT

TINY = {"B": "2", "filters": "8"}


def write_images(folder, n=3, size=(48, 64), seed=0):
    """``n`` small natural-looking PNGs (crops of a scikit-image photograph)."""
    from skimage import data

    from visionfw.imageio import write_image

    os.makedirs(folder, exist_ok=True)
    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    for i in range(n):
        top = int(rng.integers(0, photo.shape[0] - size[0]))
        left = int(rng.integers(0, photo.shape[1] - size[1]))
        write_image(os.path.join(folder, f"img{i}.png"),
                    photo[top:top + size[0], left:left + size[1]])
    return str(folder)


def write_pairs(folder, n=2, size=(64, 64), seed=5):
    """A ``--pair-dir`` folder: ``HQ/imgK.png`` (:func:`write_images`) and ``LQ/imgK.png``,
    the HQ image MATLAB-bicubic down-sampled by 2."""
    from visionfw.imageio import read_image, write_image
    from visionfw.resize import imresize

    write_images(os.path.join(folder, "HQ"), n=n, size=size, seed=seed)
    os.makedirs(os.path.join(folder, "LQ"), exist_ok=True)
    for i in range(n):
        x = read_image(os.path.join(folder, "HQ", f"img{i}.png"))
        write_image(os.path.join(folder, "LQ", f"img{i}.png"),
                    np.asarray(imresize(x, scale=0.5)))
    return str(folder)


def tiny_config(out, train_dir, **overrides):
    from visionfw.train.config import TrainConfig

    values = dict(model="srresnet", hparams=dict(TINY), scale=2, train_dirs=[str(train_dir)],
                  out=str(out), steps=6, batch_size=4, patch_size=32, val_every=100,
                  lr=1e-3, seed=3)
    values.update(overrides)
    return TrainConfig(**values)


def make_trainer(config, resume=False, validation=False):
    from visionfw.train.config import prepare_run_folder
    from visionfw.train.run import build_trainer, resolve_model_and_scale

    model = resolve_model_and_scale(config)
    prepare_run_folder(config.out, resume)
    return build_trainer(config, model, log=lambda m: None, progress=False,
                         validation=validation)


def resume_from_copy(straight_dir, config, step, validation=False):
    """A trainer resumed at ``step`` in a copy of the run folder ``straight_dir``: the copy is
    rolled back to the checkpoint that run saved at ``step`` (its later checkpoints removed), as
    a run killed just after that checkpoint leaves its folder. With the uninterrupted run itself
    as the reference, a resume test builds two trainers instead of three (the run stopped at
    ``step`` being the same as the uninterrupted one up to there). ``config.out`` names the
    copy; the caller calls ``fit(resume=True)``."""
    import shutil

    import tensorflow as tf

    shutil.copytree(straight_dir, config.out)
    folder = os.path.join(config.out, "checkpoints")
    saved = tf.train.get_checkpoint_state(folder).all_model_checkpoint_paths
    kept = [p for p in saved if int(p.rsplit("-", 1)[1]) <= step]
    assert kept and kept[-1].endswith(f"-{step}"), f"no checkpoint of step {step} in {saved}"
    for path in saved[len(kept):]:
        for name in os.listdir(folder):
            if name.startswith(os.path.basename(path) + "."):
                os.remove(os.path.join(folder, name))
    tf.compat.v1.train.update_checkpoint_state(folder, os.path.basename(kept[-1]),
                                               [os.path.basename(p) for p in kept])
    trainer = make_trainer(config, resume=True, validation=validation)
    assert trainer.restore() == step
    return trainer


def zero_conv_biases(model):
    """Set every Conv2D bias of ``model`` to zero: a trunk of convolutions, positively
    homogeneous activations and products then scales with its input's brightness."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            w, b = layer.get_weights()
            layer.set_weights([w, np.zeros_like(b)])


def weights(trainer):
    """Every variable of the networks and optimisers, as NumPy arrays."""
    out = []
    for net in trainer.recipe.networks.values():
        out += [np.asarray(v) for v in net.variables]
    for opt in trainer.recipe.optimizers.values():
        out += [np.asarray(v) for v in opt.variables]
    return out


def assert_same_state(a, b):
    """Two trainers hold bit-identical networks and optimisers (a resumed run against an
    uninterrupted one)."""
    x, y = weights(a), weights(b)
    assert len(x) == len(y) > 0
    for u, v in zip(x, y):
        np.testing.assert_array_equal(u, v)


def subprocess_threads():
    """TensorFlow threads for a command the tests start: one under two pytest workers (the
    other worker has the second core), else two."""
    return "1" if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else "2"


def run_py(*args, env=None, timeout=180):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", VISIONFW_THREADS=subprocess_threads())
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def train_tiny_run(out, folder, *extra):
    """``train.py`` of a one-block SRResNet x2 for two steps on ``folder`` (validated on it)."""
    return run_py("train.py", "srresnet", "--param", "B=1", "--param", "filters=8", "--scale",
                  "2", "--train-dir", str(folder), "--val-dir", str(folder), "--steps", "2",
                  "--batch-size", "2", "--patch-size", "32", "--val-every", "2", "--out",
                  str(out), *extra)


def run_cli(script, *args):
    """Run ``train.py``/``test.py``/``-m visionfw`` in this process (no interpreter and
    TensorFlow start-up per call, about 5 s each): a ``CompletedProcess``-like result with
    ``returncode``, ``stdout`` and ``stderr``. ``sys.argv`` is the command's while it runs (a
    run folder records it) and Keras' global precision policy is put back afterwards.
    :func:`run_py` is for what needs a process of its own: plugins, signals, start-up output."""
    import types

    import keras
    from click.testing import CliRunner

    if script == "train.py":
        from visionfw.cli.train import main
    elif script == "test.py":
        from visionfw.cli.evaluate import main
    else:
        from visionfw.__main__ import main
    args = [str(a) for a in args]
    argv, policy = sys.argv, keras.mixed_precision.global_policy()
    sys.argv = [script, *args]
    try:
        result = CliRunner().invoke(main, args, prog_name=script)
    finally:
        sys.argv = argv
        keras.mixed_precision.set_global_policy(policy)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return types.SimpleNamespace(returncode=result.exit_code, stdout=result.stdout,
                                 stderr=result.stderr)


def event_tags(run_dir):
    """The summary tags written to a run's TensorBoard logs, with their kind
    (``{"val/psnr": "scalar", "val/comparison/img0": "image", ...}``)."""
    import glob

    import tensorflow as tf

    tags = {}
    for path in glob.glob(os.path.join(str(run_dir), "logs", "**", "events.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                kind = value.metadata.plugin_data.plugin_name or value.WhichOneof("value")
                tags[value.tag] = kind
    return tags


def assert_same_steps_on_both_paths(monkeypatch, make_method, lr):
    """A loop method (``make_method()``, built after VISIONFW_INFERENCE is set) gives the same
    steps through XLA and through the graph; returns the XLA steps."""
    steps = {}
    for path in ("xla", "graph"):
        monkeypatch.setenv("VISIONFW_INFERENCE", path)
        method = make_method()
        assert method._loop.jit is (path == "xla")
        steps[path] = method(lr, None, {})["steps"]
    assert len(steps["xla"]) == len(steps["graph"])
    for a, b in zip(steps["xla"], steps["graph"]):
        np.testing.assert_allclose(a["image"], b["image"], atol=5e-5)
        np.testing.assert_allclose(a["kernel"], b["kernel"], atol=1e-5)
    return steps["xla"]
