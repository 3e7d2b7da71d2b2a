"""The one place that knows where visionfw's plugins are: its own layers and blocks, the model
definitions in ``model_defs/``, the training recipes and the test methods.

Nothing is imported here at start-up. :func:`install` (called by ``import visionfw``) gives
each registry a loader that imports its plugins the first time a name is missed or the names
are listed, so validating ``{'convo': [(0, 1)]}`` loads no model definition, and a model file
that fails to import costs its own models only (with a warning naming it), not every build.
"""
import importlib
import pkgutil
import warnings

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
