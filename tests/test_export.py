"""python -m visionfw export: tiny networks written as SavedModel, TFLite and ONNX, each
checked against the Keras model on a probe of every input; the refusals are one line and
leave nothing behind."""
import json
import sys
import warnings

import numpy as np
import pytest

import visionfw
from tests.train_utils import run_cli
from visionfw.export import ExportError, export_model, parse_size, probe_inputs

TINY = {
    "srresnet": {"B": 2, "filters": 8, "scale": 2},
    "vdsr": {"depth": 3, "filters": 8, "scale": 2},
    "sftmd": {"nb": 2, "nf": 8, "scale": 2},
    "usrnet": {"iterations": 3, "nc": 8, "nb": 1, "levels": 3, "hidden": 8, "scale": 2},
}
HINT = "error: onnx export needs tf2onnx and onnxruntime: pip install .[export]\n"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A checkpoint of each tiny network (random weights)."""
    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for name, hp in TINY.items():
        out[name] = folder / f"{name}.weights.h5"
        visionfw.save_model(visionfw.build_model(name, compile=False, **hp), out[name])
    return out


def export(weights, fmt, out, *extra):
    return run_cli("-m visionfw", "export", weights, "--format", fmt, "--out", out, *extra)


def differences(stdout):
    """The max |export - keras| figures the command printed, one per output."""
    return [float(line.split("= ")[1].split()[0]) for line in stdout.splitlines()
            if "max |export - keras| =" in line]


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".tmp-export-")]


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
@pytest.mark.parametrize("name", ["srresnet", "vdsr", "sftmd"])
def test_tiny_networks_export_within_tolerance(weights, tmp_path, name, fmt):
    out = tmp_path / f"{name}_{fmt}"
    extra = ("--size", "32x32") if (name, fmt) == ("vdsr", "tflite") else ()
    r = export(weights[name], fmt, out, *extra)
    assert r.returncode == 0, r.stderr
    diffs = differences(r.stdout)
    assert len(diffs) == 1 and diffs[0] < 1e-4, r.stdout
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["probe"]["max_abs_difference"] == pytest.approx(diffs, rel=1e-2, abs=1e-12)
    assert manifest["format"] == fmt and manifest["tf_select_ops"] == []
    roles = [i["role"] for i in manifest["inputs"]]
    assert roles == (["image", "kernel_code"] if name == "sftmd" else ["image"])
    assert (out / ("saved_model.pb" if fmt == "savedmodel" else "model.tflite")).is_file()
    assert not leftovers(tmp_path)


def test_free_size_exports_run_at_other_sizes(weights, tmp_path):
    """Without --size the exports take any LR size: run them at one the probe did not use."""
    import tensorflow as tf

    model = visionfw.load_model(weights["srresnet"], compile=False)
    export_model(model, "savedmodel", tmp_path / "sm")
    export_model(model, "tflite", tmp_path / "lite")
    x = np.random.default_rng(1).random((1, 20, 28, 3), dtype=np.float32)
    expected = np.asarray(model(x, training=False))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(np.asarray(loaded.serve(x)), expected, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # it names its successor, LiteRT
        interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "lite" / "model.tflite"))
    got = interpreter.get_signature_runner("serving_default")(input_0=x)["output_0"]
    assert got.shape == (1, 40, 56, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_vdsr_tflite_at_a_free_size_asks_for_a_fixed_one(weights, tmp_path):
    """VDSR's bicubic up-sampling computes its float64 weights from the image size: TFLite's
    builtins cannot, and at a fixed size the converter folds them (the test above)."""
    out = tmp_path / "vdsr"
    r = export(weights["vdsr"], "tflite", out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: tflite: at a free input size") and "--size 32x32" in r.stderr
    assert not out.exists() and not leftovers(tmp_path)


def test_usrnet_fft_is_refused_by_tflite_unless_select_ops_are_asked_for(weights, tmp_path):
    out = tmp_path / "usrnet"
    r = export(weights["usrnet"], "tflite", out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "needs ops TFLite's builtins lack" in r.stderr and "FFT2D" in r.stderr
    assert "--tflite-select-ops" in r.stderr
    assert not out.exists() and not leftovers(tmp_path)
    r = export(weights["usrnet"], "tflite", out, "--tflite-select-ops")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "export.json").read_text())
    assert "FFT2D" in manifest["tf_select_ops"] and (out / "model.tflite").is_file()
    said = [line for line in r.stdout.splitlines() if "Select" in line]
    assert len(said) == 1 and "Flex delegate" in said[0]
    # this TensorFlow's Python interpreter has no Flex delegate: the check is said not made
    if manifest["probe"]["max_abs_difference"] is None:
        assert "probe check was not made" in said[0]
    else:
        assert max(manifest["probe"]["max_abs_difference"]) < 1e-4


def test_usrnet_savedmodel_keeps_its_four_inputs(weights, tmp_path):
    r = export(weights["usrnet"], "savedmodel", tmp_path / "u")
    assert r.returncode == 0, r.stderr
    assert differences(r.stdout)[0] < 1e-4
    inputs = json.loads((tmp_path / "u" / "export.json").read_text())["inputs"]
    assert [(i["name"], i["role"]) for i in inputs] == [
        ("lr", "image"), ("kernel", "kernel"), ("scale", "scale"), ("noise_sigma", "noise_sigma")]


def test_probes_follow_the_input_roles():
    from visionfw.degradation.kernels import gaussian_kernel
    from visionfw.kernel_codes import default_pca, encode, with_pca

    usrnet = visionfw.build_model("usrnet", compile=False, **TINY["usrnet"])
    lr, kernel, scale, sigma = probe_inputs(usrnet, (24, 16))
    assert lr.shape == (1, 24, 16, 3) and 0 <= lr.min() and lr.max() < 1
    assert kernel.shape == (1, 13, 13) and kernel.sum() == pytest.approx(1, abs=1e-5)
    assert scale.tolist() == [2.0] and sigma.tolist() == [5.0]
    d = with_pca(visionfw.model_dict("sftmd", **TINY["sftmd"]), default_pca(10))
    sftmd = visionfw.build(d)
    from visionfw.graph.builder import attach_spec

    attach_spec(sftmd, d, "sftmd", TINY["sftmd"])
    _, code = probe_inputs(sftmd)
    pca = default_pca(10)
    expected = encode(pca, gaussian_kernel(pca.kernel_size, 1.6)[None].astype(np.float32))
    np.testing.assert_allclose(code, expected, atol=1e-6)


def test_a_difference_above_the_tolerance_writes_nothing(weights, tmp_path):
    out = tmp_path / "strict"
    r = export(weights["srresnet"], "tflite", out, "--tolerance", "1e-12")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "exceeds the tolerance 1e-12; nothing written" in r.stderr
    assert not out.exists() and not leftovers(tmp_path)


def test_onnx_exports_within_tolerance(weights, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    for name in ("srresnet", "sftmd"):
        r = export(weights[name], "onnx", tmp_path / name)
        assert r.returncode == 0, r.stderr
        assert differences(r.stdout)[0] < 1e-4
        assert (tmp_path / name / "model.onnx").is_file()


def test_onnx_without_its_extra_is_the_install_hint(weights, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)        # as if not installed
    r = export(weights["srresnet"], "onnx", tmp_path / "x")
    assert r.returncode == 2 and r.stderr == HINT
    assert not (tmp_path / "x").exists()


def test_the_exporters_are_imported_only_for_onnx():
    import subprocess

    code = ("import sys, visionfw, visionfw.export, visionfw.__main__; "
            "print(sorted(m for m in ('tf2onnx', 'onnxruntime', 'onnx') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_bad_requests_are_one_line_errors(weights, tmp_path):
    r = export(weights["srresnet"], "coreml", tmp_path / "x")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'coreml'" in r.stderr
    r = export(tmp_path / "missing.weights.h5", "savedmodel", tmp_path / "x")
    assert r.returncode == 2 and r.stderr == \
        f"error: {tmp_path / 'missing.weights.h5'}: no such weights file\n"
    r = export(weights["srresnet"], "savedmodel", tmp_path / "x", "--tflite-select-ops")
    assert r.returncode == 2 and "applies to --format tflite" in r.stderr
    r = export(weights["srresnet"], "tflite", tmp_path / "x", "--size", "big")
    assert r.returncode == 2 and "--size 'big': expected HxW" in r.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    r = export(weights["srresnet"], "savedmodel", full)
    assert r.returncode == 2 and "exists and is not an empty folder" in r.stderr
    assert (full / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "x").exists()
    with pytest.raises(ExportError, match="expected one of savedmodel, tflite, onnx"):
        export_model(None, "coreml", tmp_path / "y")
    assert parse_size("64") == (64, 64) and parse_size("48x64") == (48, 64)
