"""Blind test protocols: variants, references, determinism, export."""
import json
import os

import numpy as np
import pytest
import scipy.ndimage as ndi

from visionfw.degradation import DegradationError, gaussian_kernel, get_protocol, hr_multiple, protocol_names
from visionfw.degradation import ops
from visionfw.degradation.__main__ import main as cli_main
from visionfw.degradation.protocols import export_protocol
from visionfw.imageio import write_image

HR8 = (np.random.default_rng(2).random((48, 48, 3)) * 255).astype(np.uint8)
HR = HR8.astype(np.float32) / 255


def test_names_and_simple_protocols():
    assert protocol_names() == ["aniso", "aniso-direct", "bicubic", "gaussian8", "usrnet12"]
    [(name, deg)] = get_protocol("bicubic", 4)
    assert name == "bicubic" and deg.spec == "bicubic"
    lr = deg(HR, 4, seed=0)
    np.testing.assert_array_equal(lr, ops.downsample_bicubic(HR, 4))  # float LR, not rounded
    [(name, deg)] = get_protocol("gaussian(sigma=1.5)+direct", 2)
    assert name == deg.spec and deg.kernel.shape == (21, 21)
    with pytest.raises(DegradationError, match="named protocols: aniso, aniso-direct, bicubic, gaussian8, usrnet12"):
        get_protocol("gaussian9", 4)
    assert hr_multiple("gaussian8", 3) == 3 and hr_multiple("usrnet12", 3) == 24


@pytest.mark.parametrize("scale,lo,hi", [(2, 0.80, 1.60), (3, 1.35, 2.40), (4, 1.80, 3.20)])
def test_gaussian8(scale, lo, hi):
    variants = get_protocol("gaussian8", scale)
    widths = np.linspace(lo, hi, 8)
    assert [name for name, _ in variants] == [f"sigma{w:.2f}" for w in widths]
    for (name, deg), w in zip(variants, widths):
        np.testing.assert_allclose(deg.kernel, gaussian_kernel(21, w), atol=1e-8)
        assert not deg.is_random
    # DAN: reflect-pad by 10, correlate, MATLAB bicubic, round to 8 bits
    name, deg = variants[3]
    k = gaussian_kernel(21, widths[3])
    ref = ndi.correlate(HR.astype(np.float64), k[..., None], mode="mirror").astype(np.float32)
    ref = ops.to_uint8(ops.downsample_bicubic(ref, scale)).numpy()
    got = np.round(deg(HR, scale, seed="x") * 255)
    assert np.abs(got - ref).max() <= 1 and np.mean(got != ref) < 1e-3
    with pytest.raises(DegradationError, match="scales"):
        get_protocol("gaussian8", 5)


def test_aniso_kernels_per_image_from_seed():
    [(name, deg)] = get_protocol("aniso", 4, seed=0)
    deg(HR, 4, seed="img001")
    a = deg.kernel
    deg(HR, 4, seed="img001")
    np.testing.assert_array_equal(deg.kernel, a)
    deg(HR, 4, seed="img002")
    assert not np.allclose(deg.kernel, a)
    [(_, other)] = get_protocol("aniso", 4, seed=1)
    other(HR, 4, seed="img001")
    assert not np.allclose(other.kernel, a)
    # parameters in KENet's ranges: recover them from second moments of many kernels
    sig = []
    for i in range(20):
        k = deg.sample_kernel(seed=i)
        rows, cols = np.mgrid[0:21, 0:21] - 10
        cov = [[(k * cols * cols).sum(), (k * cols * rows).sum()], [(k * cols * rows).sum(), (k * rows * rows).sum()]]
        sig.extend(np.sqrt(np.linalg.eigvalsh(cov)))
    assert 0.15 < min(sig) and max(sig) < 4.0  # truncation to 21x21 shrinks wide ones a little
    assert np.ptp(sig) > 2.0


def test_usrnet12_matches_usrnet_numpy_pipeline(shared_data):
    path = shared_data / "kernels" / "USRNet" / "kernels_12.mat"
    variants = get_protocol("usrnet12", 3, kernels_path=path)
    assert len(variants) == 36
    assert [n for n, _ in variants[:4]] == ["k01_noise0.00", "k01_noise2.55", "k01_noise7.65", "k02_noise0.00"]
    from visionfw.degradation import usrnet_kernels

    kernels = usrnet_kernels(path)
    for index in (0, 6, 11):
        name, deg = variants[3 * index]
        lr = deg(HR, 3, seed=name)
        # USRNet main_test_table1: convolve the uint8 image (SciPy truncates to uint8), wrap
        # padding, keep pixel 0 of every 3x3 block
        ref = ndi.convolve(HR8, kernels[index][..., None], mode="wrap")[0::3, 0::3]
        np.testing.assert_array_equal(np.round(lr * 255).astype(np.uint8), ref)
        np.testing.assert_array_equal(deg.kernel, kernels[index].astype(np.float32))
    # noisy variants: unclipped Gaussian noise of 7.65/255 on top of the same image
    clean = variants[0][1](HR, 3, seed="a")
    noisy = variants[2][1](HR, 3, seed="a")
    assert ((noisy - clean) * 255).std() == pytest.approx(7.65, rel=0.05)
    black = variants[2][1](np.zeros((48, 48, 3), np.float32), 3, seed="a")
    assert black.min() < -0.02  # USRNet does not clip


def test_protocols_are_reproducible_bit_for_bit():
    first = [deg(HR, 4, seed="baby") for _, deg in get_protocol("gaussian8", 4)]
    first += [deg(HR, 4, seed="baby") for _, deg in get_protocol("aniso", 4, seed=3)]
    second = [deg(HR, 4, seed="baby") for _, deg in get_protocol("gaussian8", 4)]
    second += [deg(HR, 4, seed="baby") for _, deg in get_protocol("aniso", 4, seed=3)]
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()


def _dataset(folder):
    from visionfw.imageio import write_image

    folder.mkdir()
    rng = np.random.default_rng(5)
    for name, shape in (("one", (42, 38, 3)), ("two", (33, 41, 3))):
        write_image(folder / f"{name}.png", (rng.random(shape) * 255).astype(np.uint8))
    return folder


def test_export_twice_gives_identical_files(tmp_path):
    data = _dataset(tmp_path / "hr")
    m1 = export_protocol("aniso", 4, data, tmp_path / "a", seed=0)
    m2 = export_protocol("aniso", 4, data, tmp_path / "b", seed=0)
    assert m1["hash"] == m2["hash"] and m1["files"] == m2["files"]
    assert sorted(m1["files"]) == ["aniso/kernels/one.npy", "aniso/kernels/one.png", "aniso/kernels/two.npy",
                                   "aniso/kernels/two.png", "aniso/one.png", "aniso/two.png"]
    m3 = export_protocol("aniso", 4, data, tmp_path / "c", seed=1)
    assert m3["hash"] != m1["hash"]
    # what is on disk is what the degradation returns for that image name
    from visionfw.imageio import modcrop, read_image

    [(_, deg)] = get_protocol("aniso", 4, seed=0)
    hr = modcrop(read_image(data / "one.png"), 4).astype(np.float32) / 255
    lr = deg(hr, 4, seed="one")
    np.testing.assert_array_equal(read_image(tmp_path / "a" / "aniso" / "one.png"), ops.to_uint8(lr).numpy())
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "aniso" / "kernels" / "one.npy"), deg.kernel)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["hash"] == m1["hash"] and manifest["images"] == ["one", "two"]


def test_cli(tmp_path, capsys):
    data = _dataset(tmp_path / "hr")
    assert cli_main(["export", "--protocol", "bicubic", "--scale", "2", "--dataset", str(data),
                     "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["hash"] in out and "2 files" in out
    assert cli_main(["export", "--protocol", "gaussian8", "--scale", "5", "--dataset", str(data),
                     "--out", str(tmp_path / "bad")]) == 2
    assert "gaussian8 is defined for scales" in capsys.readouterr().err
    assert cli_main(["protocols"]) == 0 and "usrnet12" in capsys.readouterr().out


def test_export_command_prints_no_tensorflow_start_up_lines(tmp_path):
    from tests.train_utils import run_py

    data = _dataset(tmp_path / "hr")
    r = run_py("-m", "visionfw.degradation", "export", "--protocol", "bicubic", "--scale", "2",
               "--dataset", str(data), "--out", str(tmp_path / "out"),
               env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert r.returncode == 0, r.stderr
    noise = ("oneDNN", "cuda", "cuInit", "absl", "cpu_feature_guard")
    assert not [line for line in r.stderr.splitlines() if any(n in line for n in noise)], r.stderr


def test_export_skips_unreadable_and_too_small_images_and_writes_nothing_for_none(
        tmp_path, capsys):
    data = _dataset(tmp_path / "hr")
    good = (data / "one.png").read_bytes()
    (data / "cut.png").write_bytes(good[:len(good) // 2])          # truncated PNG
    (data / "empty.png").write_bytes(b"")
    write_image(data / "dot.png", np.zeros((1, 1, 3), np.uint8))    # smaller than x4's 4 px
    assert cli_main(["export", "--protocol", "bicubic", "--scale", "4", "--dataset", str(data),
                     "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    for name in ("cut.png", "empty.png", "dot.png"):
        assert f"skipped {name}:" in err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["images"] == ["one", "two"]
    assert sorted(manifest["skipped"]) == ["cut.png", "dot.png", "empty.png"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cut.png").write_bytes(good[:40])
    assert cli_main(["export", "--protocol", "bicubic", "--scale", "4", "--dataset", str(bad),
                     "--out", str(tmp_path / "none")]) == 2
    assert "no usable images (1 skipped)" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()                        # no empty --out left
    (tmp_path / "file").write_text("")
    assert cli_main(["export", "--protocol", "bicubic", "--scale", "4", "--dataset", str(data),
                     "--out", str(tmp_path / "file" / "out")]) == 2
    assert capsys.readouterr().err.strip().endswith("Not a directory")


def test_library_use_prints_no_tensorflow_start_up_lines(tmp_path):
    import subprocess
    import sys

    # TensorFlow is imported quietly and its runtime not started: threads can still be set
    code = ("import numpy as np, visionfw, tensorflow as tf; "
            "tf.config.threading.set_intra_op_parallelism_threads(1); "
            "m = visionfw.build_model('vdsr', depth=2, filters=4); "
            "m(np.zeros((1, 8, 8, 3), np.float32)); "
            "assert tf.config.threading.get_intra_op_parallelism_threads() == 1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "VISIONFW_TF_LOGS": "1"})
    assert loud.returncode == 0 and "oneDNN" in loud.stderr     # the lines exist to be dropped
