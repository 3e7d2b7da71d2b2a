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
    assert ("srresnet(B: int = 16, filters: int = 64, scale: int = 4, batchnorm: bool = True, "
            "activation: str = 'prelu')") in r.stdout


def test_summary_expands_blocks_and_counts_macs_for_the_input_size():
    r = run("-m", "visionfw", "summary", "srresnet", "--param", "B=2", "--param", "filters=8",
            "--scale", "2", "--expand", "--input-size", "16")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "for one 16x16 LR image; FLOPs = 2 x MACs" in lines[1]
    block = next(i for i, l in enumerate(lines) if l.split()[2:4] == ["block[0]",
                                                                       "gen_residual_block"])
    assert [l.split()[:2] for l in lines[block + 1:block + 7]] == [
        ["conv1", "Conv2D"], ["bn1", "BatchNormalization"], ["prelu", "PReLU"],
        ["conv2", "Conv2D"], ["bn2", "BatchNormalization"], ["add", "Add"]]
    # by hand, on a 16x16 LR image: head 16*16*9*9*3*8 = 497,664; two residual blocks of two
    # 3x3 8->8 convolutions 4 * 147,456; body conv 147,456; x2 stage 16*16*3*3*8*32 = 589,824;
    # tail 32*32*9*9*8*3 = 1,990,656: 3,815,424 MACs
    assert "Total MACs: 3.82M   FLOPs: 7.63M   (one 16x16 LR image)" in r.stdout
    assert "Total params: 9,347" in r.stdout


def test_table_options_need_summary_and_a_spatial_mismatch_is_one_line(tmp_path):
    r = run("train.py", "srresnet", "--expand")
    assert r.returncode == 2 and "--expand and --input-size draw the layer table" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "name": "mismatch", "inputs": ["lr"], "convo": [["lr", "feat"], ["joint", "sr"]],
        "convo_par": [{"filters": 8, "kernel_size": 3, "padding": "same"},
                      {"filters": 3, "kernel_size": 3, "padding": "same"}],
        "up": [["feat", "feat2x"]], "up_sub": "UpSampling2D",
        "cat": [["feat", "feat2x", "joint"]], "cat_sub": "Concatenate"}))
    r = run("-m", "visionfw", "summary", str(bad), "--input-size", "8")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
    assert ("cat[0] ('feat', 'feat2x' -> 'joint'): Concatenate on axis -1 needs equal shapes "
            "elsewhere, got (None, 8, 8, 8) from node 'feat' and (None, 16, 16, 8) from node "
            "'feat2x'") in r.stderr
