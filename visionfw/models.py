"""The model registry: named functions of typed hyperparameters that return link dictionaries.

>>> d = model_dict('srresnet', B=8)          # the dictionary
>>> m = build_model('srresnet', scale=2)     # a keras.Model
"""
import importlib
import inspect
import os
import sys
from dataclasses import dataclass

from visionfw.errors import HyperparameterError, LinkError

_MODELS = {}
_ALIASES = {}
_defs_loaded = False


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: type
    default: object
    help: str = ""

    def coerce(self, value, model):
        """Turn a command-line string (or a number of the wrong kind) into this type."""
        t = self.type
        if isinstance(value, str) and t is not str:
            text = value.strip()
            try:
                if t is bool:
                    low = text.lower()
                    if low in ("1", "true", "yes", "on"):
                        return True
                    if low in ("0", "false", "no", "off"):
                        return False
                    raise ValueError
                if t is int:
                    return int(text)
                if t is float:
                    return float(text)
            except ValueError:
                raise HyperparameterError(
                    f"{model}: {self.name}={value!r} is not a valid {t.__name__}") from None
        if t is bool and not isinstance(value, bool):
            raise HyperparameterError(f"{model}: {self.name} must be true or false, got {value!r}")
        if t is int and (isinstance(value, bool) or not isinstance(value, int)):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise HyperparameterError(f"{model}: {self.name} must be an integer, got {value!r}")
        if t is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise HyperparameterError(f"{model}: {self.name} must be a number, got {value!r}")
        if t is float:
            return float(value)
        if t is str and not isinstance(value, str):
            raise HyperparameterError(f"{model}: {self.name} must be a string, got {value!r}")
        return value


@dataclass(frozen=True)
class ModelDef:
    name: str
    fn: object
    hparams: dict
    doc: str

    def make(self, **hp):
        values = self.resolve(**hp)
        d = self.fn(**values)
        if not isinstance(d, dict):
            raise TypeError(f"model definition {self.name} returned {type(d).__name__}, not a dict")
        return d

    def resolve(self, **hp):
        """Defaults updated by ``hp``, each checked and coerced to its declared type."""
        unknown = sorted(set(hp) - set(self.hparams))
        if unknown:
            valid = ", ".join(f"{h.name} ({h.type.__name__}, default {h.default!r})"
                              for h in self.hparams.values()) or "none"
            raise HyperparameterError(
                f"{self.name} has no hyperparameter {', '.join(unknown)}; valid: {valid}")
        values = {k: h.default for k, h in self.hparams.items()}
        for key, value in hp.items():
            values[key] = self.hparams[key].coerce(value, self.name)
        return values


def register_model(name, *, aliases=()):
    """Decorator: register ``fn(**hyperparameters) -> dict`` under ``name``.

    Each hyperparameter must have a default, and a type annotation (int, float, bool or str)
    unless its default shows the type.
    """

    def wrap(fn):
        hparams = {}
        for p in inspect.signature(fn).parameters.values():
            if p.default is p.empty:
                raise TypeError(f"hyperparameter {p.name} of model {name} needs a default")
            t = p.annotation if p.annotation is not p.empty else type(p.default)
            if t not in (int, float, bool, str):
                raise TypeError(f"hyperparameter {p.name} of model {name}: type {t} is not "
                                "int, float, bool or str")
            hparams[p.name] = Hyperparameter(p.name, t, p.default)
        key = name.lower()
        if key in _MODELS or key in _ALIASES:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[key] = ModelDef(key, fn, hparams, inspect.getdoc(fn) or "")
        for alias in aliases:
            _ALIASES[alias.lower()] = key
        return fn

    return wrap


def _load_defs():
    """Import ``model_defs`` (beside the package) so that its models register themselves."""
    global _defs_loaded
    if _defs_loaded:
        return
    _defs_loaded = True
    try:
        importlib.import_module("model_defs")
    except ModuleNotFoundError as exc:
        if exc.name != "model_defs":
            raise
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.append(root)
        importlib.import_module("model_defs")


def model_names():
    _load_defs()
    return sorted(_MODELS)


def has_model(name):
    _load_defs()
    key = str(name).lower()
    return key in _MODELS or key in _ALIASES


def get_model_def(name):
    _load_defs()
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in _MODELS:
        from visionfw.graph.registry import suggest

        hint = suggest(name, _MODELS)
        raise HyperparameterError(f"unknown model {name!r}{hint}; valid models: "
                                  f"{', '.join(sorted(_MODELS))} (or a .json dictionary path)")
    return _MODELS[key]


def model_hparams(name):
    """``{name: Hyperparameter}`` of a registered model."""
    return dict(get_model_def(name).hparams)


def model_dict(name, **hp):
    """The link dictionary of registered model ``name`` with hyperparameters ``hp``."""
    return get_model_def(name).make(**hp)


def resolve_model(name_or_dict, **hp):
    """(dictionary, model name or None, resolved hyperparameters) for a name, a JSON path or a dict."""
    from visionfw.graph.schema import load_dict

    if isinstance(name_or_dict, dict):
        if hp:
            raise HyperparameterError(
                f"hyperparameters {sorted(hp)} apply to a registered model, not to a dictionary; "
                "edit the dictionary instead")
        return name_or_dict, None, {}
    if not isinstance(name_or_dict, (str, os.PathLike)):
        raise HyperparameterError(f"a model is a name, a .json path or a dict, got {name_or_dict!r}")
    text = os.fspath(name_or_dict)
    if text.lower().endswith(".json") or (os.sep in text and not has_model(text)):
        if hp:
            raise HyperparameterError(
                f"hyperparameters {sorted(hp)} apply to a registered model, not to {text}")
        return load_dict(text), None, {}
    mdef = get_model_def(text)
    values = mdef.resolve(**hp)
    return mdef.make(**values), mdef.name, values


def build_model(name_or_dict, compile=True, **hp):
    """Build a registered model (by name), a JSON dictionary (by path) or a dictionary.

    The model is compiled with Adam and an L1 loss unless ``compile=False``, so ``fit`` works
    at once; it carries its dictionary and hyperparameters for :func:`visionfw.save_model`.
    """
    from visionfw.graph.builder import attach_spec, build

    d, name, values = resolve_model(name_or_dict, **hp)
    model = build(d)
    attach_spec(model, d, name, values)
    if compile:
        import keras

        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mean_absolute_error")
    return model


__all__ = ["register_model", "model_names", "model_hparams", "model_dict", "build_model",
           "resolve_model", "has_model", "LinkError"]
