"""Everyday training: start from other weights (--init-weights), extend a finished run
(--resume with a larger --steps), replay a run from its settings.json (--config)."""
import csv
import json

import numpy as np
import pytest

import visionfw
from tests.train_utils import run_cli, write_images

VDSR = ["vdsr", "--param", "filters=8", "--scale", "2", "--batch-size", "2", "--patch-size",
        "24", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("workflow"), n=2, size=(40, 48))


def train(*args):
    r = run_cli("train.py", *args)
    assert r.returncode == 0, r.stderr
    return r


def steps_of(run):
    with open(run / "val.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def layer_weights(path):
    model = visionfw.load_model(path, compile=False)
    return {layer.name: [np.asarray(w) for w in layer.weights] for layer in model.layers
            if layer.weights}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, images):
    run = tmp_path_factory.mktemp("base") / "run"
    train(*VDSR, "--param", "depth=3", "--train-dir", images, "--val-dir", images,
          "--steps", "2", "--val-every", "2", "--out", str(run))
    return run


def test_init_weights_loads_matching_layers_by_name_and_reports_the_rest(tmp_path, images,
                                                                        base_run):
    run = tmp_path / "deeper"
    r = train(*VDSR, "--param", "depth=4", "--train-dir", images, "--val-dir", images,
              "--steps", "1", "--val-every", "1", "--out", str(run),
              "--init-weights", str(base_run / "last.weights.h5"))
    # depth 3 -> 4: convo_0, convo_1 fit; convo_2 is the 3-channel output there, a hidden
    # layer here; convo_3 is new
    line = next(x for x in r.stderr.splitlines() if x.startswith("--init-weights"))
    assert "2 of 4 layers with weights loaded" in line
    assert "other shapes: convo_2 (3x3x8x3 3 in the file, 3x3x8x8 8 here)" in line
    assert "not in the file: convo_3" in line
    old = layer_weights(base_run / "last.weights.h5")
    settings = json.loads((run / "settings.json").read_text())["settings"]
    assert settings["init_weights"] == str(base_run / "last.weights.h5")
    # the trainer starts from them (its step-0 checkpoint and EMA copy are taken after)
    from tests.train_utils import make_trainer
    from visionfw.train.config import TrainConfig

    config = TrainConfig.from_dict({**settings, "out": str(tmp_path / "again"), "ema": 0.9})
    net = make_trainer(config).recipe.main_network()
    for name in ("convo_0", "convo_1"):
        for a, b in zip(net.get_layer(name).weights, old[name]):
            np.testing.assert_array_equal(np.asarray(a), b)
    assert tuple(net.get_layer("convo_2").weights[0].shape) != old["convo_2"][0].shape
    # nothing in common: a one-line error before training
    r = run_cli("train.py", "srresnet", "--param", "B=1", "--param", "filters=4", "--scale",
                "2", "--steps", "1", "--patch-size", "24", "--out", str(tmp_path / "none"),
                "--train-dir", images, "--init-weights", str(base_run / "last.weights.h5"))
    assert r.returncode == 2 and "nothing to start from" in r.stderr, r.stderr
    r = run_cli("train.py", *VDSR, "--out", str(tmp_path / "x"), "--init-weights",
                str(tmp_path / "missing.weights.h5"))
    assert r.returncode == 2 and "--init-weights" in r.stderr and "no such file" in r.stderr
    (tmp_path / "plain.weights.h5").write_bytes(b"garbage")
    r = run_cli("train.py", *VDSR, "--out", str(tmp_path / "y"), "--init-weights",
                str(tmp_path / "plain.weights.h5"))
    assert r.returncode == 2 and "not a readable HDF5" in r.stderr
    assert not (tmp_path / "y").exists()                     # checked before the run folder


def test_a_finished_run_is_extended_by_a_larger_steps_and_never_shortened(tmp_path, images,
                                                                        base_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    short = run_cli("train.py", "vdsr", "--out", str(run), "--resume", "--steps", "1")
    assert short.returncode == 2 and "only --steps may grow" in short.stderr
    r = train("vdsr", "--out", str(run), "--resume", "--steps", "4")
    assert "extending the run from 2 steps" in r.stderr
    assert steps_of(run) == [2, 4]
    settings = json.loads((run / "settings.json").read_text())
    assert settings["settings"]["steps"] == 4
    before, after = layer_weights(base_run / "last.weights.h5"), layer_weights(
        run / "last.weights.h5")
    assert any(not np.array_equal(a, b) for k in before for a, b in zip(before[k], after[k]))


def test_config_replays_a_run_exactly_and_options_override_it(tmp_path, base_run):
    replay = tmp_path / "replay"
    train("--config", str(base_run / "settings.json"), "--out", str(replay))
    a, b = layer_weights(base_run / "last.weights.h5"), layer_weights(replay / "last.weights.h5")
    assert a.keys() == b.keys()
    for k in a:
        for x, y in zip(a[k], b[k]):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    longer = tmp_path / "longer"
    train("--config", str(base_run / "settings.json"), "--out", str(longer), "--steps", "3",
          "--val-every", "3")
    assert steps_of(longer) == [3]
    assert json.loads((longer / "settings.json").read_text())["settings"]["steps"] == 3
    (tmp_path / "bad.json").write_text("{}")
    r = run_cli("train.py", "--config", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "holds no run settings" in r.stderr


def test_bare_train_py_prints_its_help_and_the_help_has_no_doubled_percent():
    r = run_cli("train.py")
    assert r.returncode == 0 and r.stdout.startswith("Usage: train.py")
    assert "\n  Train a super-resolution model" in r.stdout          # not squashed in a line
    r = run_cli("train.py", "srresnet", "--help")
    assert "50% and 75%" in r.stdout.replace("\n", " ").replace("  ", " ") or \
        "50%" in r.stdout
    assert "%%" not in r.stdout
    r = run_cli("python -m visionfw", "-h")
    assert r.returncode == 0 and "sr" in r.stdout and "convert" in r.stdout


def test_a_run_of_a_json_dictionary_keeps_its_scale_and_where_it_came_from(tmp_path, images):
    d = json.loads(visionfw.dict_to_json(visionfw.model_dict("srresnet", B=1, filters=4,
                                                             scale=2)))
    del d["meta"]["scale"]                     # a hand-written dictionary names no scale
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(d))
    run = tmp_path / "run"
    train(str(path), "--scale", "2", "--train-dir", images, "--val-dir", images, "--steps", "1",
          "--val-every", "1", "--batch-size", "2", "--patch-size", "24", "--out", str(run))
    record = json.loads((run / "settings.json").read_text())["model"]
    assert record["name"] is None and record["scale"] == 2
    assert record["dict_file"] == str(path)
    spec = visionfw.read_spec(run / "last.weights.h5")
    assert spec["dict"]["meta"]["scale"] == 2
    r = run_cli("test.py", "--weights", str(run / "last.weights.h5"), "--dataset", images,
                "--quiet")                      # no --scale needed
    assert r.returncode == 0 and " x2 " in r.stdout, r.stderr
    # --summary --scale on a dictionary with another scale is refused, not ignored
    x2 = tmp_path / "x2.json"
    x2.write_text(json.dumps(dict(d, meta={**d["meta"], "scale": 2})))
    r = run_cli("train.py", str(x2), "--summary", "--scale", "4")
    assert r.returncode == 2 and "up-samples x2 (its meta.scale)" in r.stderr
