"""One registry class; the graph package imports no model, model definition, converter or
trainer; plugins load on demand and a broken one costs only itself."""
import ast
import pathlib
import subprocess
import sys

import pytest

import visionfw
from tests.conftest import ROOT
from visionfw.errors import HyperparameterError
from visionfw.registry import Registry, RegistryError


def test_duplicate_is_an_error_and_a_miss_suggests_the_nearest():
    reg = Registry("widget", error=HyperparameterError)
    reg.register("Conv2D", object())
    with pytest.raises(RegistryError, match="widget 'Conv2D' is already registered"):
        reg.register("Conv2D", object())
    with pytest.raises(HyperparameterError) as err:
        reg.get("conv2d_")
    assert "did you mean 'Conv2D'?" in str(err.value)
    assert "valid widgets: Conv2D" in str(err.value)
    assert "\n" not in str(err.value)


def test_the_same_definition_registered_again_is_no_error():
    reg = Registry("widget")

    def make():
        return 1

    reg.register("make", make)
    reg.register("make", make)
    assert reg.get("make") is make


def test_replace_puts_a_stand_in_under_an_existing_name_and_its_aliases():
    reg = Registry("widget", fold_case=True)
    first, second = object(), object()
    reg.register("Conv", first, aliases=("convolution",))
    with pytest.raises(RegistryError):
        reg.register("conv", second)
    assert reg.replace("CONV", second) is second
    assert reg.get("conv") is second
    assert reg.get("Convolution") is second
    assert reg.replace("new", first) is first and reg.get("new") is first


def test_loaders_run_one_at_a_time_until_the_name_turns_up():
    reg = Registry("widget", fold_case=True)
    calls = []
    reg.add_loader(lambda: (calls.append("a"), reg.register("alpha", 1)))
    reg.add_loader(lambda: (calls.append("b"), reg.register("beta", 2)))
    assert reg.get("ALPHA") == 1 and calls == ["a"]
    assert reg.find("gamma") is None and calls == ["a", "b"]
    assert reg.names() == ["alpha", "beta"]


@pytest.mark.parametrize("registry, name", [
    ("visionfw.models:MODELS", "srresnet"),
    ("visionfw.recipes.base:RECIPES", "sr"),
    ("visionfw.methods.base:METHODS", "nonblind"),
    ("visionfw.graph.registry:NAMESPACE", "PixelShuffle"),
    ("visionfw.degradation.spec:_OPS", "gaussian"),
    ("visionfw.degradation.protocols:_PROTOCOLS", "gaussian8"),
])
def test_every_registry_refuses_a_duplicate(registry, name):
    import importlib

    from visionfw import plugins

    plugins.load_all()
    module, attr = registry.split(":")
    reg = getattr(importlib.import_module(module), attr)
    assert reg.find(name) is not None
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(name, object())


def test_validating_a_one_link_dictionary_imports_no_model_definition():
    code = ("import sys, visionfw; visionfw.validate({'convo': [(0, 1)]}); "
            "print(sorted(m for m in sys.modules if m.startswith(('model_defs', "
            "'visionfw.convert', 'visionfw.train', 'visionfw.recipes', 'visionfw.methods'))))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


FORBIDDEN = ("visionfw.models", "model_defs", "visionfw.convert", "visionfw.train",
             "visionfw.recipes", "visionfw.methods", "visionfw.plugins")


def test_the_graph_package_imports_only_keras_and_the_errors_module():
    for path in sorted((ROOT / "visionfw" / "graph").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                names += [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


def test_a_broken_model_file_costs_only_its_own_models(tmp_path):
    pkg = tmp_path / "model_defs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        "from visionfw.models import register_model\n\n"
        "@register_model('tiny-good')\n"
        "def tiny_good(filters: int = 4):\n"
        "    return {'convo': [(0, 1)], 'convo_par': {'filters': 3, 'kernel_size': 3, "
        "'padding': 'same'}}\n")
    (pkg / "broken.py").write_text("raise RuntimeError('half-written file')\n")
    code = ("import sys, warnings; sys.path.insert(0, sys.argv[1]); import visionfw\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    names = visionfw.model_names()\n"
            "print(names); print([str(x.message) for x in w])\n"
            "print(visionfw.build({'convo': [(0, 1)], 'convo_sub': ['tiny-good']}).count_params())")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "['tiny-good']"
    assert "model_defs.broken failed to load (RuntimeError: half-written file)" in out[1]
    assert int(out[2]) == 3 * 3 * 3 * 3 + 3


def test_model_dict_hands_out_its_own_objects_for_every_model():
    for name in visionfw.model_names():
        a = visionfw.model_dict(name)
        ids = {}
        for key, value in a.items():
            if key.endswith("_par") and isinstance(value, list):
                for i, par in enumerate(value):
                    if isinstance(par, dict):
                        assert id(par) not in ids, (name, key, i, ids.get(id(par)))
                        ids[id(par)] = (key, i)
        b = visionfw.model_dict(name)
        for key, value in a.items():
            if isinstance(value, (list, dict)):
                assert value is not b[key] or not value, (name, key)
    d = visionfw.model_dict("vdsr", depth=5)
    d["convo_par"][1]["filters"] = 32
    assert [p["filters"] for p in d["convo_par"]] == [64, 32, 64, 64, 3]


def test_torch_name_maps_are_declared_with_the_model():
    from visionfw.convert import published_parity, torch_names

    names = torch_names("vdsr-y", depth=4)
    assert names["convo_0/kernel"] == "input.weight"
    assert names["convo_3/kernel"] == "output.weight"
    assert torch_names("srresnet") == {}
    rows = published_parity()
    assert ("vdsr-y", {"scale": 1}, "vdsr/model_epoch_50.pth", "vdsr") in rows
    assert not any("convert" in line for line in
                   pathlib.Path(ROOT / "model_defs" / "vdsr.py").read_text().splitlines()
                   if line.startswith(("import", "from")))
