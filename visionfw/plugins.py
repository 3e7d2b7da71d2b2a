"""The one place that knows where visionfw's plugins are: its own layers and blocks, the model
definitions in ``model_defs/``, the training recipes and the test methods; and the user's
own plugins.

Nothing is imported here at start-up. :func:`install` (called by ``import visionfw``) gives
each registry a loader that imports its plugins the first time a name is missed or the names
are listed, so validating ``{'convo': [(0, 1)]}`` loads no model definition, and a model file
that fails to import costs its own models only (with a warning naming it), not every build.

A *user plugin* is a ``.py`` file or an importable module whose import registers layers,
blocks, models, recipes, methods or losses with the usual decorators. The command lines load
them with ``--plugin FILE_OR_MODULE`` and from ``VISIONFW_PLUGINS``
(:func:`load_user_plugins`); a checkpoint records the ones its dictionary needs
(:func:`plugins_needed`) and names them when they are missing (:func:`check_plugins`).
"""
import hashlib
import importlib
import importlib.util
import os
import pkgutil
import re
import shlex
import sys
import traceback
import warnings

from visionfw.errors import PluginError

# registry -> the modules or packages whose import registers its entries
CORE_LAYERS = ("visionfw.layers", "visionfw.blocks")
MODEL_PACKAGE = "model_defs"
RECIPE_PACKAGE = "visionfw.recipes"
METHOD_PACKAGE = "visionfw.methods"

_installed = False
_failed = {}


def import_package(package, skip=()):
    """Import every module of ``package``; one that fails is reported and left out."""
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name != package:
            raise
        warnings.warn(f"{package} is not importable: run from the project folder or "
                      "'pip install -e .'", stacklevel=2)
        return []
    loaded = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        name = f"{package}.{info.name}"
        if info.name.startswith("_") or name in skip:
            continue
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # noqa: BLE001 -- one broken plugin must not break the rest
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _failed[name] = f"{type(exc).__name__}: {reason}"
            warnings.warn(f"{name} failed to load ({_failed[name]}); its entries are "
                          "unavailable", stacklevel=2)
    return loaded


def failed_plugins():
    """``{module: reason}`` of plugins that failed to import."""
    return dict(_failed)


def load_core_layers():
    for module in CORE_LAYERS:
        importlib.import_module(module)


def load_models():
    import_package(MODEL_PACKAGE)


def load_recipes():
    import_package(RECIPE_PACKAGE, skip={f"{RECIPE_PACKAGE}.base"})


def load_methods():
    import_package(METHOD_PACKAGE, skip={f"{METHOD_PACKAGE}.base"})


def install():
    """Give every registry the loader of its plugins (once)."""
    global _installed
    if _installed:
        return
    _installed = True
    from visionfw.graph.registry import NAMESPACE
    from visionfw.models import MODELS

    NAMESPACE.add_loader(load_core_layers)
    NAMESPACE.add_loader(load_models)
    MODELS.add_loader(load_models)


def load_all():
    """Import every plugin now (for listings and registry-wide tests)."""
    load_core_layers()
    load_models()
    load_recipes()
    load_methods()


# ---- the user's plugins

ENV_VAR = "VISIONFW_PLUGINS"

_user = {}      # module name -> the plugin as recorded: a file's absolute path, or a module name

# how a checkpoint names what a namespace entry is
_KINDS = {"layer": "layer", "block": "block", "dict": "block", "model": "model"}


def env_plugins():
    """The plugins listed in ``VISIONFW_PLUGINS`` (separated by ``os.pathsep``)."""
    return [s.strip() for s in os.environ.get(ENV_VAR, "").split(os.pathsep) if s.strip()]


def load_user_plugins(specs=(), env=True, source=None):
    """Import the user plugins ``specs`` (and, with ``env``, those of ``VISIONFW_PLUGINS``
    first); each is imported once per process. Returns :func:`loaded_plugins`.

    A plugin is a path to a ``.py`` file (imported under a module name of its own) or a
    dotted module name importable from ``sys.path`` or the current folder. A missing file,
    a module that cannot be found and a plugin that raises while it is imported are each a
    one-line :class:`PluginError`; ``source`` says where the list came from (``'settings.json
    of runs/x'``), for that line.
    """
    for spec in [*(env_plugins() if env else ()), *specs]:
        load_user_plugin(spec, source)
    return loaded_plugins()


def load_user_plugin(spec, source=None):
    """Import one user plugin (see :func:`load_user_plugins`); returns its module name."""
    text = os.fspath(spec).strip()
    where = f" (from {source})" if source else ""
    if not text:
        raise PluginError(f"an empty plugin name{where}: give a .py file or a module name")
    if _is_file(text):
        path = os.path.abspath(os.path.expanduser(text))
        if os.path.isdir(path):
            raise PluginError(f"plugin {text!r}{where} is a folder: give a .py file, or the "
                              "package as a module name")
        if not os.path.isfile(path):
            raise PluginError(f"plugin {text!r}{where}: no such file")
        module = _file_module_name(path)
        if module not in _user:
            _import_file(module, path, text, where)
            _user[module] = path
        return module
    if text not in _user:
        _import_module(text, where)
        _user[text] = text
    return text


def loaded_plugins():
    """The user plugins imported in this process, as recorded (files by absolute path)."""
    return list(_user.values())


def _is_file(text):
    return (text.endswith(".py") or "/" in text or os.sep in text
            or not all(part.isidentifier() for part in text.split(".")))


def _file_module_name(path):
    """A module name of its own for a plugin file: its stem and a digest of its path."""
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    digest = hashlib.sha1(path.encode()).hexdigest()[:8]
    return f"visionfw_plugin_{stem}_{digest}"


def _import_file(module, path, text, where):
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {text!r}{where}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # noqa: BLE001 -- any error of the user's code, in one line
        del sys.modules[module]
        raise PluginError(f"plugin {text!r}{where} failed while importing: "
                          f"{_one_line(exc)}{_where_in(exc, path)}") from None


def _import_module(name, where):
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())            # a module of the current folder
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise PluginError(f"plugin {name!r}{where}: no module named {exc.name!r} on the "
                              "import path (give the path of a .py file, or a module "
                              "importable from the current folder)") from None
        raise PluginError(f"plugin {name!r}{where} failed while importing: "
                          f"{_one_line(exc)}{_where_in(exc)}") from None
    except Exception as exc:  # noqa: BLE001 -- any error of the user's code, in one line
        raise PluginError(f"plugin {name!r}{where} failed while importing: "
                          f"{_one_line(exc)}{_where_in(exc)}") from None


def _one_line(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _where_in(exc, path=None):
    """`` (at FILE line N)``: the innermost line of the plugin (of ``path``, when given) that
    the error passed through; ``''`` when none did (a syntax error says it itself)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        frames = [f for f in frames if os.path.abspath(f.filename) == path]
    else:
        here = os.path.abspath(__file__)
        frames = [f for f in frames
                  if "importlib" not in f.filename and os.path.abspath(f.filename) != here]
    if not frames:
        return ""
    return f" (at {os.path.basename(frames[-1].filename)} line {frames[-1].lineno})"


def _plugin_of(module):
    """The user plugin that ``module`` belongs to, or ``None``."""
    if not module:
        return None
    for name, plugin in _user.items():
        if module == name or module.startswith(name + "."):
            return plugin
    return None


def plugins_needed(spec):
    """The user plugins a checkpoint record (``{"model", "dict", ...}``) needs:
    ``[{"plugin": "/abs/my_blocks.py", "names": {"my_ca": "block"}}]`` -- each plugin loaded
    in this process that registered the model or a layer, block or model the dictionary
    names (nested dictionaries included)."""
    if not _user:
        return []
    from visionfw.graph.registry import NAMESPACE
    from visionfw.graph.validate import validate
    from visionfw.models import MODELS

    found = {}

    def note(registry, name, kind):
        plugin = _plugin_of(registry.origin(name))
        if plugin:
            found.setdefault(plugin, {})[name] = kind

    def walk(plan):
        for step in plan.steps:
            if isinstance(step.sub, str):
                note(NAMESPACE, step.sub, _KINDS.get(step.entry.kind, "block"))
            if step.plan is not None:
                walk(step.plan)

    if spec.get("model"):
        note(MODELS, spec["model"], "model")
    walk(validate(spec["dict"]))
    return [{"plugin": plugin, "names": dict(sorted(names.items()))}
            for plugin, names in sorted(found.items())]


def check_plugins(spec, path):
    """Before a checkpoint is rebuilt: every name it records from a user plugin is known,
    else a one-line :class:`~visionfw.errors.CheckpointError` naming the name and the plugin
    (``best.weights.h5 needs block 'my_ca' from plugin 'my_blocks.py': pass --plugin ...``)."""
    from visionfw.errors import CheckpointError
    from visionfw.graph.registry import NAMESPACE
    from visionfw.models import MODELS

    for record in spec.get("plugins") or ():
        plugin = record.get("plugin")
        for name, kind in (record.get("names") or {}).items():
            registry = MODELS if kind == "model" else NAMESPACE
            if registry.find(name) is not None:
                continue
            if plugin in _user.values():
                raise CheckpointError(f"{path} needs {kind} {name!r}, which its plugin "
                                      f"{plugin!r} no longer registers")
            raise CheckpointError(f"{path} needs {kind} {name!r} from plugin {plugin!r}: pass "
                                  f"--plugin {shlex.quote(plugin)} or set {ENV_VAR}")
