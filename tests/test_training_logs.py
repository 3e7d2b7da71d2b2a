"""What a run logs besides val.csv: train.csv (the loss every logged step, gradient norm,
steps/s, data wait), curves.png drawn from it, and TensorBoard's scalars, hparams and
several validation pictures."""
import csv

import numpy as np
import pytest

from tests.train_utils import make_trainer, tiny_config, write_images
from visionfw.train.curves import loss_limits, smoothed


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("logs"))


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tensorboard_events(folder):
    """``{tag: [(step, value or None)]}`` and the plugin names of every summary in the run's
    event files."""
    import tensorflow as tf

    tags, plugins = {}, set()
    for path in sorted((folder / "logs").glob("events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for value in event.summary.value:
                plugins.add(value.metadata.plugin_data.plugin_name)
                number = None
                if value.HasField("tensor") and value.tensor.dtype == tf.float32.as_datatype_enum:
                    array = tf.make_ndarray(value.tensor)
                    number = float(array) if array.ndim == 0 else None
                tags.setdefault(value.tag, []).append((event.step, number))
    return tags, plugins


def test_train_csv_tensorboard_and_curves(tmp_path, images):
    config = tiny_config(tmp_path / "run", images, steps=6, val_every=3, val_dirs=[images])
    trainer = make_trainer(config, validation=True)
    trainer.log_every = 2
    trainer.fit()
    logged = rows(tmp_path / "run" / "train.csv")
    assert [int(r["step"]) for r in logged] == [2, 4, 6]
    for r in logged:
        assert float(r["loss"]) > 0 and float(r["grad_norm"]) > 0
        assert float(r["steps_per_s"]) > 0 and float(r["data_wait_ms"]) >= 0
        assert float(r["lr"]) > 0
    # val.csv's loss is the mean of the latest step losses: the logged ones average to it
    val = rows(tmp_path / "run" / "val.csv")
    assert [r["step"] for r in val] == ["3", "6"]
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0

    tags, plugins = tensorboard_events(tmp_path / "run")
    for tag in ("train/loss", "train/grad_norm", "train/steps_per_s", "train/data_wait_ms"):
        assert [s for s, _ in tags[tag]] == [2, 4, 6], tag
    np.testing.assert_allclose([v for _, v in tags["train/grad_norm"]],
                               [float(r["grad_norm"]) for r in logged], rtol=1e-5)
    assert "hparams" in plugins
    pictures = {t for t in tags if t.startswith("val/comparison/")}
    assert len(pictures) == 3                   # three validation images, three pictures


def test_a_resume_rewrites_train_csv_from_its_step(tmp_path, images):
    first = make_trainer(tiny_config(tmp_path / "run", images, steps=6))
    first.log_every = 2
    stopped = first.fit(stop_at=3)             # rows 2 and 3; checkpoint at 3
    assert stopped["stopped"] == "stop_at" and stopped["step"] == 3
    path = tmp_path / "run" / "train.csv"
    with open(path, "a") as f:                 # a row a kill left after the checkpoint
        f.write("5,0.5,0.001,1.0,2")
    second = make_trainer(tiny_config(tmp_path / "run", images, steps=6), resume=True)
    assert int(second.step.numpy()) == 0       # restored by fit(resume=True), not before
    second.log_every = 2
    second.fit(resume=True)
    assert [int(r["step"]) for r in rows(path)] == [2, 3, 4, 6]


def test_smoothing_matches_a_numpy_reference():
    values = np.random.default_rng(0).random(40)
    weight = 0.8
    expected = [np.sum(weight ** np.arange(i, -1, -1) * values[:i + 1]) * (1 - weight)
                / (1 - weight ** (i + 1)) for i in range(len(values))]
    np.testing.assert_allclose(smoothed(values, weight), expected, rtol=1e-10)
    assert smoothed([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])


def test_the_loss_axis_follows_the_bulk_not_the_first_spike():
    values = [50.0] + list(np.linspace(0.05, 0.02, 300))
    low, high, log = loss_limits(values)
    assert log and high < 0.1 and low < 0.02            # the spike is off the axis
    low, high, log = loss_limits([-1.0, 0.0, 1.0])
    assert not log and low < -0.9 and high > 0.9
    assert loss_limits([float("nan")]) is None
