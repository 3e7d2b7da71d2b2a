"""One namespace for everything a ``_sub`` entry can name.

A name resolves to
- a layer class: every class of ``keras.layers`` and the layers registered with
  :func:`register_layer`;
- a block: a Python function of input tensors and keyword parameters, or a link dictionary
  (:func:`register_block`);
- a model factory: ``fn(**hyperparameters) -> dict`` registered here by the model registry
  (:func:`register_factory`), used as a nested dictionary block whose ``_par`` are its
  hyperparameters.

This package imports only Keras and the errors module. Plugins (visionfw's own layers and
blocks, the model definitions) are not imported from here: :mod:`visionfw.plugins` adds
loaders to :data:`NAMESPACE` that import them the first time a name is missed.
"""
import inspect
from dataclasses import dataclass

from visionfw.errors import LinkError
from visionfw.registry import Registry, RegistryError, suggest  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Entry:
    """What a name resolves to: ``kind`` is 'layer', 'block', 'dict' or 'model'."""

    name: str
    kind: str
    target: object


NAMESPACE = Registry("layer or block", list_valid=False)


@NAMESPACE.add_loader
def _keras_layers():
    import keras

    # visionfw's stand-ins (Conv2D, BatchNormalization, PReLU) take those names first
    import visionfw.layers  # noqa: F401

    for attr in dir(keras.layers):
        obj = getattr(keras.layers, attr)
        if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer) and attr != "InputLayer":
            if not NAMESPACE.registered(attr):
                NAMESPACE.register(attr, Entry(attr, "layer", obj))


def register_layer(cls=None, *, name=None):
    """Class decorator: make a Keras layer usable by name in dictionaries and serialisable.

    Used bare (``@register_layer``) or with a name (``@register_layer('Shuffle')``,
    ``@register_layer(name='Shuffle')``).
    """
    if isinstance(cls, str):
        cls, name = None, cls

    def wrap(klass):
        import keras

        key = name or klass.__name__
        NAMESPACE.register(key, Entry(key, "layer", klass))
        keras.saving.register_keras_serializable(package="visionfw", name=key)(klass)
        return klass

    return wrap(cls) if cls is not None else wrap


def register_block(target=None, *, name=None):
    """Register a block: a function ``fn(*inputs, **params)`` or a link dictionary.

    As a decorator: ``@register_block``, ``@register_block('res_block')`` or
    ``@register_block(name='res_block')``. For a dictionary: ``register_block(d,
    name='my_block')`` (``name`` defaults to ``d['name']``).
    """
    if isinstance(target, str):
        target, name = None, target

    def wrap(obj):
        if isinstance(obj, dict):
            key = name or obj.get("name")
            if not key:
                raise RegistryError("a dictionary block needs a name: register_block(d, name=...)")
            kind = "dict"
        elif callable(obj):
            key = name or obj.__name__
            kind = "block"
        else:
            raise RegistryError(f"a block is a function or a link dictionary, not "
                                f"{type(obj).__name__}")
        NAMESPACE.register(key, Entry(key, kind, obj))
        return obj

    return wrap(target) if target is not None else wrap


def register_factory(name, factory):
    """Make ``factory(**hyperparameters) -> dict`` usable as a ``_sub`` name (registered models)."""
    NAMESPACE.register(name, Entry(name, "model", factory))


def resolve(name, family=None, index=None, link=None, path=()):
    """Look a ``_sub`` name up; an unknown name is a :class:`LinkError` with suggestions."""
    entry = NAMESPACE.find(name)
    if entry is None:
        raise LinkError(
            f"unknown layer or block {name!r}{suggest(name, known_names())} (new ones are "
            "added with visionfw.register_layer or visionfw.register_block, in a plugin the "
            "command lines load with --plugin FILE or VISIONFW_PLUGINS)",
            family, index, link, path,
        )
    return entry


def known_names():
    return NAMESPACE.names()


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
