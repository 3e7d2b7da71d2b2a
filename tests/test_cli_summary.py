"""train.py --summary and python -m visionfw, run as a user runs them."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_summary_prints_the_layer_table_and_writes_json(tmp_path):
    out = tmp_path / "d.json"
    r = run("train.py", "srresnet", "--summary", "--param", "B=2", "--param", "filters=8",
            "--scale", "2", "--save-dict", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Model: SRResNet")
    assert any(l.split()[:4] == ["3", "2", "block[0]", "gen_residual_block"] for l in lines)
    # 1,952 + 8 + 2 * 1,240 + 584 + 32 + 2,344 + 1,947 = 9,347 (one x2 stage)
    assert "Total params: 9,347" in r.stdout
    assert json.loads(out.read_text())["name"] == "SRResNet"
    # the JSON file is accepted where a model name is
    r2 = run("train.py", str(out), "--summary")
    assert r2.returncode == 0 and "Total params: 9,347" in r2.stdout


def test_bad_model_and_parameters_are_one_line_errors():
    for args, pattern in [
        (("srresnt",), "unknown model 'srresnt'"),
        (("srresnet", "--param", "C=3"), "has no hyperparameter C; valid: B (int"),
        (("srresnet", "--param", "B"), "is not of the form NAME=VALUE"),
        (("vdsr", "--param", "depth=x"), "depth='x' is not a valid int"),
        (("missing.json",), "cannot read model dictionary missing.json"),
    ]:
        r = run("train.py", *args, "--summary")
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert pattern in r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_models_lists_typed_hyperparameters():
    r = run("-m", "visionfw", "models")
    assert r.returncode == 0
    assert "srresnet(B: int = 16, filters: int = 64, scale: int = 4, batchnorm: bool = True)" \
        in r.stdout
