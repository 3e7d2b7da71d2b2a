"""The model registry: named functions of typed hyperparameters that return link dictionaries.

>>> d = model_dict('srresnet', B=8)          # the dictionary
>>> m = build_model('srresnet', scale=2)     # a keras.Model

A model definition names the recipe that trains it (``recipe=``, default ``'sr'``) and, when
its PyTorch weights do not pair with it by order, the torch name map used to convert them
(``torch_names=``). Registering a model also makes it usable as a ``_sub`` block inside other
dictionaries (it is registered into the graph's namespace as a factory).
"""
import copy
import inspect
import os
from dataclasses import dataclass

from visionfw.errors import HyperparameterError, LinkError
from visionfw.graph.registry import register_factory
from visionfw.params import Hyperparameter, params_of, resolve_params  # noqa: F401
from visionfw.registry import Registry

MODELS = Registry("model", error=HyperparameterError, fold_case=True,
                  hint="(or a .json dictionary path)")


@dataclass(frozen=True)
class ModelDef:
    name: str
    fn: object
    hparams: dict
    doc: str
    recipe: str = "sr"
    torch_names: object = None      # fn(**hparams) -> {keras_weight_path: torch_key}

    def make(self, **hp):
        values = self.resolve(**hp)
        d = self.fn(**values)
        if not isinstance(d, dict):
            raise TypeError(f"model definition {self.name} returned {type(d).__name__}, not a dict")
        # Every entry its own object: editing one layer's parameters must not edit another's.
        return unshared(d)

    def resolve(self, **hp):
        """Defaults updated by ``hp``, each checked and coerced to its declared type."""
        return resolve_params(self.hparams, hp, self.name)


def unshared(obj):
    """A copy of nested dicts, lists and tuples in which no two places share an object
    (``copy.deepcopy`` would keep ``[par] * B`` as B references to one dict)."""
    if isinstance(obj, dict):
        return {k: unshared(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unshared(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(unshared(v) for v in obj)
    return copy.copy(obj) if hasattr(obj, "__dict__") else obj


def register_model(name, *, aliases=(), recipe="sr", torch_names=None):
    """Decorator: register ``fn(**hyperparameters) -> dict`` under ``name``.

    Each hyperparameter must have a default, and a type annotation (int, float, bool or str)
    unless its default shows the type.

    Args:
        name: the model's name (case-insensitive).
        aliases: other names for it.
        recipe: the training recipe ``train.py`` uses for it.
        torch_names: ``fn(**hyperparameters) -> {keras_weight_path: torch_key}``, for
            converting PyTorch weights that do not pair with the model by order.
    """

    def wrap(fn):
        key = name.lower()
        mdef = ModelDef(key, fn, params_of(fn, f"model {name}"), inspect.getdoc(fn) or "",
                        recipe, torch_names)
        MODELS.register(key, mdef, aliases)
        register_factory(key, mdef.make)
        for alias in aliases:
            register_factory(alias.lower(), mdef.make)
        return fn

    return wrap


def model_names():
    return MODELS.names()


def has_model(name):
    return name is not None and str(name).lower() in MODELS


def get_model_def(name):
    return MODELS.get(name)


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
           "resolve_model", "has_model", "get_model_def", "MODELS", "LinkError"]
