"""configs/: every paper configuration names its source, holds only settings train.py reads,
and dry-runs (``train.py --config FILE --summary``) without its data, printing the network
at the size the paper trained."""
import json

import pytest

from tests.conftest import ROOT
from tests.train_utils import run_cli

CONFIGS = sorted((ROOT / "configs").glob("*.json"))


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def sftmd_count(nf=64, nb=16, t=10):
    sft = 2 * (conv(3, nf + t, 32) + conv(3, 32, nf))           # scale and shift branches
    block = 2 * sft + 2 * conv(3, nf, nf)
    head = conv(3, 3, nf) + 2 * conv(3, nf, nf)
    return head + nb * block + sft + conv(3, nf, nf) + 2 * conv(3, nf, 4 * nf) + conv(9, nf, 3)


def predictor_count(nf=64, t=10):
    return conv(5, 3, nf) + 4 * conv(5, nf, nf) + conv(5, nf, t)


def kenet_count(nf=64, fc=1024, size=21):
    n = conv(3, 3, nf) + 2 * conv(3, nf, nf)
    for width_in, width in ((nf, nf), (nf, 2 * nf), (2 * nf, 3 * nf)):
        n += conv(3, width_in, width) + 2 * conv(3, width, width)
    return n + (3 * nf * fc + fc) + (fc * fc + fc) + (fc * size * size + size * size)


# The network each file trains, at the paper's size: official counts where a figure is
# published (USRNet's paper: 17.02M; DANv1's restorer: the official code's count), else
# counted by hand from the layout (SFTMD and the Predictor follow the official modules).
EXPECTED = {
    "sftmd_x4.json": ("sftmd", sftmd_count()),
    "ikc_x4.json": ("ikc-predictor", predictor_count()),
    "usrnet.json": ("usrnet", 17_016_016),
    "dan_x4.json": ("dan-restorer", 4_040_915),
    "kenet_x4.json": ("kenet", kenet_count()),
}


def test_every_config_is_listed_and_counted():
    assert sorted(p.name for p in CONFIGS) == sorted(EXPECTED)
    assert sftmd_count() == 4_234_691 and predictor_count() == 430_730
    listed = (ROOT / "configs" / "README.md").read_text()
    assert all(p.name in listed for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_names_its_source_and_only_settings_train_py_reads(path):
    from visionfw.cli.train import CONFIG_KEYS

    data = json.loads(path.read_text())
    assert set(data) == {"source", "settings"}
    source = data["source"]
    assert source["paper"].strip() and source["code"].strip()
    assert all(isinstance(n, str) and n.strip() for n in source.get("notes", []))
    settings = data["settings"]
    unknown = set(settings) - set(CONFIG_KEYS) - {"model", "hparams", "scale"}
    assert not unknown, f"{path.name}: train.py would ignore {sorted(unknown)}"
    assert settings["model"] == EXPECTED[path.name][0]
    assert settings["train_dirs"] and all(d.startswith("data/") for d in settings["train_dirs"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_dry_runs_without_its_data(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                   # no data/ here: the folders do not exist
    r = run_cli("train.py", "--config", path, "--summary")
    assert r.returncode == 0, r.stderr
    total = next(line for line in r.stdout.splitlines() if line.startswith("Total params:"))
    assert int(total.split()[2].replace(",", "")) == EXPECTED[path.name][1]
    assert "\nrun: recipe " in r.stdout
    assert "not found yet" in r.stdout and "data/DIV2K/DIV2K_train_HR" in r.stdout
    assert not (tmp_path / "runs").exists()      # a dry run makes no run folder


def test_a_dry_run_still_refuses_bad_settings_in_one_line(tmp_path):
    data = json.loads((ROOT / "configs" / "sftmd_x4.json").read_text())
    data["settings"]["recipe_params"] = {"pcaa": ""}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    r = run_cli("train.py", "--config", bad, "--summary")
    assert r.returncode == 2 and "pcaa" in r.stderr and r.stderr.count("\n") == 1
    data["settings"]["recipe_params"] = {}
    data["settings"]["patch_size"] = 250                   # not a multiple of 4
    bad.write_text(json.dumps(data))
    r = run_cli("train.py", "--config", bad, "--summary")
    assert r.returncode == 2 and "--patch-size 250" in r.stderr


def test_training_from_a_config_without_its_data_is_one_line(tmp_path):
    """As a user runs it: the missing folder is named before TensorFlow or a run folder."""
    out = tmp_path / "run"
    r = run_cli("train.py", "--config", str(ROOT / "configs" / "dan_x4.json"), "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --train-dir data/DIV2K/DIV2K_train_HR: no such folder"
    assert not out.exists()
