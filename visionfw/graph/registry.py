"""One namespace for everything a ``_sub`` entry can name.

A name resolves, in this order, to
- a layer class: every class of ``keras.layers`` and visionfw's own layers
  (:func:`register_layer`);
- a block: a Python function of input tensors and keyword parameters, or a link dictionary
  (:func:`register_block`);
- a registered model, used as a nested dictionary block whose ``_par`` are its hyperparameters.
"""
import difflib
import importlib
import inspect
from dataclasses import dataclass

from visionfw.errors import LinkError

_LAYERS = {}
_BLOCKS = {}
_loaded = False

# Modules whose import registers visionfw's own layers and blocks.
_BUILTIN_MODULES = ("visionfw.layers", "visionfw.blocks")


@dataclass(frozen=True)
class Entry:
    """What a name resolves to: ``kind`` is 'layer', 'block', 'dict' or 'model'."""

    name: str
    kind: str
    target: object


def _ensure_loaded():
    global _loaded
    if _loaded:
        return
    _loaded = True
    import keras

    for attr in dir(keras.layers):
        obj = getattr(keras.layers, attr)
        if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer) and attr != "InputLayer":
            _LAYERS.setdefault(attr, obj)
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    # Model definitions may register layers and blocks of their own.
    from visionfw import models

    models.model_names()


def register_layer(cls=None, *, name=None):
    """Class decorator: make a Keras layer usable by name in dictionaries and serialisable.

    Used bare (``@register_layer``) or with a name (``@register_layer(name='Shuffle')``).
    """

    def wrap(klass):
        import keras

        key = name or klass.__name__
        if key in _BLOCKS:
            raise ValueError(f"{key!r} is already registered as a block")
        keras.saving.register_keras_serializable(package="visionfw", name=key)(klass)
        _LAYERS[key] = klass
        return klass

    return wrap(cls) if cls is not None else wrap


def register_block(target=None, *, name=None):
    """Register a block: a function ``fn(*inputs, **params)`` or a link dictionary.

    As a decorator: ``@register_block`` or ``@register_block(name='res_block')``.
    For a dictionary: ``register_block(d, name='my_block')`` (``name`` defaults to ``d['name']``).
    """

    def wrap(obj):
        if isinstance(obj, dict):
            key = name or obj.get("name")
            if not key:
                raise ValueError("a dictionary block needs a name: register_block(d, name=...)")
        elif callable(obj):
            key = name or obj.__name__
        else:
            raise TypeError(f"a block is a function or a link dictionary, not {type(obj).__name__}")
        if key in _LAYERS:
            raise ValueError(f"{key!r} is already registered as a layer")
        _BLOCKS[key] = obj
        return obj

    return wrap(target) if target is not None else wrap


def _model_entry(name):
    from visionfw import models

    if models.has_model(name):
        return Entry(name, "model", name)
    return None


def resolve(name, family=None, index=None, link=None, path=()):
    """Look a ``_sub`` name up; an unknown name is a :class:`LinkError` with suggestions."""
    _ensure_loaded()
    if name in _LAYERS:
        return Entry(name, "layer", _LAYERS[name])
    if name in _BLOCKS:
        target = _BLOCKS[name]
        return Entry(name, "dict" if isinstance(target, dict) else "block", target)
    entry = _model_entry(name)
    if entry is not None:
        return entry
    hint = suggest(name, known_names())
    raise LinkError(
        f"unknown layer or block {name!r}{hint} (new ones are added with "
        "visionfw.register_layer or visionfw.register_block)",
        family, index, link, path,
    )


def known_names():
    from visionfw import models

    _ensure_loaded()
    return sorted(set(_LAYERS) | set(_BLOCKS) | set(models.model_names()))


def suggest(name, candidates):
    """``"; did you mean 'Conv2D'?"`` for a near miss (case-insensitive), else ``''``."""
    lowered = {c.lower(): c for c in candidates}
    key = str(name).lower()
    close = [key] if key in lowered else difflib.get_close_matches(key, list(lowered), n=3,
                                                                   cutoff=0.75)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"


# Keras layers that take a list of tensors, with the number they accept (None: two or more).
MERGE_LAYERS = {
    "Add": None, "Subtract": 2, "Multiply": None, "Average": None, "Maximum": None,
    "Minimum": None, "Concatenate": None, "Dot": 2,
}


def layer_arity(entry):
    """(minimum, maximum) number of inputs a layer takes; maximum None means unbounded."""
    cls = entry.target
    for klass in cls.__mro__:
        if klass.__name__ in MERGE_LAYERS and klass.__module__.startswith("keras"):
            n = MERGE_LAYERS[klass.__name__]
            return (2, n) if n else (2, None)
    n = getattr(cls, "num_inputs", 1)
    if isinstance(n, tuple):
        return n
    return (n, n)


def block_arity(fn):
    """(minimum, maximum) inputs of a block function: its positional parameters without defaults."""
    sig = inspect.signature(fn)
    required = 0
    maximum = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            maximum = None
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.default is p.empty:
                required += 1
                if maximum is not None:
                    maximum += 1
    return required, maximum


def block_keywords(fn):
    """Keyword parameters a block function accepts (None when it takes ``**kwargs``)."""
    sig = inspect.signature(fn)
    names = []
    for p in sig.parameters.values():
        if p.kind == p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty:
            names.append(p.name)
    return names
