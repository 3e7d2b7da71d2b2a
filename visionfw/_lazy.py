"""Lazy package attributes: public names that load their submodule on first use."""
import importlib


def lazy_exports(package, api, submodules=()):
    """``(__getattr__, __dir__)`` for a package whose public names live in submodules.

    Args:
        package: the package's ``__name__``.
        api: ``{public name: module}``; a module without dots is taken inside ``package``.
        submodules: names of submodules that are themselves public attributes.
    """
    module_globals = importlib.import_module(package).__dict__

    def __getattr__(name):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = api.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        full = module if "." in module else f"{package}.{module}"
        value = getattr(importlib.import_module(full), name)
        module_globals[name] = value
        return value

    def __dir__():
        return sorted(set(module_globals) | set(api) | set(submodules))

    return __getattr__, __dir__
