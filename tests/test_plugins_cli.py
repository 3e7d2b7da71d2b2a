"""User plugins: a block registered in the user's own file reaches train.py, test.py and
``python -m visionfw`` through ``--plugin FILE`` or ``VISIONFW_PLUGINS``; checkpoints and run
folders record the plugins they need; a plugin that cannot be loaded is a one-line error."""
import json
import os
import shutil

import pytest

from tests.train_utils import run_py, write_images
from visionfw.registry import Registry

CHANNEL_ATTENTION = '''\
"""Channel attention (squeeze and excitation) as a visionfw block."""
import keras

import visionfw


@visionfw.register_block("my_ca")
def channel_attention(x, reduction=4):
    """Global average, 1x1 conv down, ReLU, 1x1 conv up, sigmoid, times the features.

    Args:
        x: input tensor (B, H, W, C).
        reduction: squeeze factor of the channels.
    """
    channels = x.shape[-1]
    w = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    w = keras.layers.Conv2D(max(channels // reduction, 1), 1, name="down")(w)
    w = keras.layers.ReLU(name="relu")(w)
    w = keras.layers.Conv2D(channels, 1, activation="sigmoid", name="up")(w)
    return keras.layers.Multiply(name="attend")([x, w])
'''

# head conv (8 filters), channel attention, conv to 3 * 2 * 2, pixel shuffle: x2
DICTIONARY = {
    "name": "ca_net", "meta": {"scale": 2},
    "convo": [[0, 1], [2, 3]],
    "convo_par": [{"filters": 8, "kernel_size": 3, "padding": "same"},
                  {"filters": 12, "kernel_size": 3, "padding": "same"}],
    "atten": [[1, 2]], "atten_sub": "my_ca", "atten_par": {"reduction": 2},
    "shuffle": [[3, 4]], "shuffle_sub": "PixelShuffle", "shuffle_par": {"scale": 2},
}

TINY = ["--steps", "2", "--batch-size", "2", "--patch-size", "32", "--val-every", "2"]


def one_line_error(r, *patterns):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    for pattern in patterns:
        assert pattern in r.stderr, r.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A plugin file, a dictionary that uses its block, and a two-step run of it."""
    root = tmp_path_factory.mktemp("plugins")
    plugin = root / "my_blocks.py"
    plugin.write_text(CHANNEL_ATTENTION)
    model = root / "my.json"
    model.write_text(json.dumps(DICTIONARY))
    images = write_images(root / "images", n=2, size=(48, 64))
    run = root / "run"
    r = run_py("train.py", str(model), "--plugin", str(plugin), "--train-dir", images,
               "--val-dir", images, *TINY, "--out", str(run))
    return dict(plugin=plugin, model=model, images=images, run=run, result=r, root=root)


def test_train_with_a_plugin_block_writes_a_checkpoint_that_records_the_plugin(trained):
    r = trained["result"]
    assert r.returncode == 0, r.stderr[-2000:]
    from visionfw.checkpoint import read_spec

    spec = read_spec(trained["run"] / "best.weights.h5")
    assert spec["dict"]["atten_sub"] == "my_ca"
    assert spec["plugins"] == [{"plugin": str(trained["plugin"]), "names": {"my_ca": "block"}}]
    settings = json.loads((trained["run"] / "settings.json").read_text())
    assert settings["settings"]["plugins"] == [str(trained["plugin"])]


def test_train_without_the_plugin_names_the_unknown_block_in_one_line(trained, tmp_path):
    out = tmp_path / "run"
    r = run_py("train.py", str(trained["model"]), "--train-dir", trained["images"], *TINY,
               "--out", str(out))
    one_line_error(r, "unknown layer or block 'my_ca'", "--plugin")
    assert not out.exists()


def test_test_py_rebuilds_the_checkpoint_with_the_plugin_from_the_option_or_the_variable(
        trained, tmp_path):
    weights = str(trained["run"] / "best.weights.h5")
    reports = []
    for how, extra, env in (("option", ["--plugin", str(trained["plugin"])], None),
                            ("variable", [], {"VISIONFW_PLUGINS": str(trained["plugin"])})):
        report = tmp_path / f"{how}.json"
        r = run_py("test.py", "--weights", weights, "--dataset", trained["images"], "--json",
                   str(report), "--quiet", *extra, env=env)
        assert r.returncode == 0, (how, r.stderr[-2000:])
        reports.append(json.loads(report.read_text())["results"][0])
    assert len(reports[0]["images"]) == 2
    assert reports[0]["psnr"] == reports[1]["psnr"] > 0


def test_test_py_without_the_plugin_names_the_plugin_the_checkpoint_recorded(trained):
    weights = str(trained["run"] / "best.weights.h5")
    r = run_py("test.py", "--weights", weights, "--dataset", trained["images"])
    one_line_error(r, f"needs block 'my_ca' from plugin '{trained['plugin']}'",
                   f"pass --plugin {trained['plugin']} or set VISIONFW_PLUGINS")


def test_resume_loads_the_plugins_the_run_recorded(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    r = run_py("train.py", str(trained["model"]), "--out", str(run), "--resume", "--steps", "3",
               "--val-every", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    settings = json.loads((run / "settings.json").read_text())
    assert settings["settings"]["steps"] == 3 and len(settings["resumed"]) == 1
    assert settings["settings"]["plugins"] == [str(trained["plugin"])]


@pytest.mark.parametrize("command", [["train.py", "srresnet"],
                                     ["test.py", "bicubic", "--dataset", "Set5"],
                                     ["-m", "visionfw", "models"]])
def test_a_missing_plugin_file_is_a_one_line_error(tmp_path, command):
    missing = tmp_path / "nope.py"
    one_line_error(run_py(*command, "--plugin", str(missing)),
                   f"plugin '{missing}': no such file")
    one_line_error(run_py(*command, env={"VISIONFW_PLUGINS": str(missing)}),
                   f"plugin '{missing}': no such file")


def test_a_plugin_that_raises_or_cannot_be_found_is_a_one_line_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import visionfw\n\nraise RuntimeError('half-written file')\n")
    one_line_error(run_py("-m", "visionfw", "summary", "srresnet", "--plugin", str(broken)),
                   f"plugin '{broken}' failed while importing: RuntimeError: half-written file "
                   "(at broken.py line 3)")
    one_line_error(run_py("-m", "visionfw", "methods", "--plugin", "no_such_plugin_module"),
                   "plugin 'no_such_plugin_module': no module named 'no_such_plugin_module'")


def test_a_module_plugin_from_the_current_folder_registers_a_model_the_listing_shows(
        tmp_path):
    (tmp_path / "tiny_models.py").write_text(
        "from visionfw import register_model\n\n"
        "@register_model('tiny-plugin-net')\n"
        "def tiny(filters: int = 4, scale: int = 2):\n"
        "    return {'meta': {'scale': scale}, 'convo': [(0, 1)],\n"
        "            'convo_par': {'filters': 3, 'kernel_size': 3, 'padding': 'same'}}\n")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "visionfw", "models", "--plugin", "tiny_models"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "tiny-plugin-net(filters: int = 4, scale: int = 2)" in r.stdout.splitlines()


def test_the_registry_remembers_which_module_registered_each_name():
    reg = Registry("widget")
    reg.register("mine", object())
    reg.add_loader(lambda: reg.register("loaded", object()))
    assert reg.origin("mine") == __name__
    assert reg.find("loaded") is not None and reg.origin("loaded") is None
    from visionfw.graph.registry import NAMESPACE

    assert NAMESPACE.find("gen_residual_block") is not None
    assert NAMESPACE.origin("gen_residual_block") is None       # visionfw's own
