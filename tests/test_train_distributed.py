"""Data-parallel training on TensorFlow's engine: mirrored over two logical CPUs, and two
worker processes on localhost. Replicas must end with identical weights."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.train_utils import run_py, write_images

MIRRORED = textwrap.dedent("""
    import sys, json
    import numpy as np
    sys.path.insert(0, {root!r})
    from tests.train_utils import make_trainer, tiny_config
    config = tiny_config({out!r}, {images!r}, strategy="mirrored", cpu_devices=2, steps=4,
                         clip_norm=1.0, ema=0.9)
    trainer = make_trainer(config)
    assert trainer.strategy.num_replicas_in_sync == 2
    result = trainer.fit()
    worst, count = 0.0, 0
    for net in trainer.recipe.networks.values():
        for v in net.variables:            # trainable weights and BatchNorm statistics
            copies = [np.asarray(c) for c in trainer.strategy.experimental_local_results(v.value)]
            assert len(copies) == 2
            worst = max(worst, float(np.max(np.abs(copies[0] - copies[1]))))
            count += 1

    print(json.dumps({{"step": result["step"], "worst": worst, "count": count}}))
""")


def test_mirrored_replicas_end_identical(tmp_path):
    images = write_images(tmp_path / "train")
    script = MIRRORED.format(root=str(ROOT), out=str(tmp_path / "run"), images=images, init=0)
    r = run_py("-c", script)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["step"] == 4 and report["count"] > 10
    assert report["worst"] == 0.0


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _h5_arrays(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def test_two_workers_on_localhost_end_identical(tmp_path):
    images = write_images(tmp_path / "train")
    out = tmp_path / "run"
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    args = ["train.py", "srresnet", "--param", "B=2", "--param", "filters=8", "--scale", "2",
            "--train-dir", images, "--val-dir", images, "--steps", "3", "--batch-size", "4",
            "--patch-size", "32", "--val-every", "3", "--strategy", "multiworker",
            "--out", str(out), "--seed", "1"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", VISIONFW_THREADS="1")
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=dict(env, TF_CONFIG=json.dumps(tf_config))))
    try:
        results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    chief = _h5_arrays(out / "last.weights.h5")
    other = _h5_arrays(out / "worker-1" / "last.weights.h5")
    assert chief.keys() == other.keys() and len(chief) > 10
    for key in chief:
        np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    # only the chief writes the run's records
    assert (out / "val.csv").is_file() and (out / "settings.json").is_file()
    assert not (out / "worker-1" / "val.csv").exists()
    assert not (out / "worker-1" / "checkpoints").exists()
