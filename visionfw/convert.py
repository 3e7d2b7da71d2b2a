"""Load a PyTorch state dict into a model built from a link dictionary.

Tensors are paired with the model's weights **by order**, layer by layer, and checked **by
shape**:

* the model's layers that hold weights are taken in the order the builder made them (the
  dictionary's topological order, declaration order breaking ties; inside a block, the block's
  own order); each layer is one group of variables;
* the state dict's tensors are grouped by module (``map_1.weight`` and ``map_1.bias`` form
  ``map_1``), in the order the modules first appear; ``num_batches_tracked`` is ignored;
* the i-th layer takes the i-th module; inside a pair, each variable takes the tensor of its
  role (``kernel``/``alpha``/``gamma`` <- ``weight``, ``beta``/``bias`` <- ``bias``,
  ``moving_mean`` <- ``running_mean``, ``moving_variance`` <- ``running_var``).

A ``{keras_weight_path: torch_key}`` mapping overrides the order for the weights it names (the
rest are still paired by order); registered models may declare one
(``register_model(..., torch_names=fn)``), e.g. VDSR, whose pickled model lists its modules in
registration order rather than forward order.

Layouts change on the way (PyTorch -> Keras): a convolution kernel (O, I, kh, kw) -> (kh, kw,
I, O); a transposed convolution (I, O, kh, kw) -> (kh, kw, O, I), the same axis permutation and
no spatial flip (both frameworks compute the adjoint of the same correlation); a Linear weight
(out, in) -> (in, out); a PReLU weight (C,) -> the layer's alpha shape, e.g. (1, 1, C) with
``shared_axes=(1, 2)``. Everything else is copied when the shapes agree.

Every problem -- a tensor left over, a weight without a tensor, a shape that does not fit -- is
collected and reported by name in one :class:`ConversionError` line; nothing is assigned then.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from visionfw.errors import VisionfwError


class ConversionError(VisionfwError, ValueError):
    """A state dict that does not fit a model: tensors unmatched or of the wrong shape."""


# Keras variable name -> the PyTorch parameter or buffer name that plays its role.
ROLES = {
    "kernel": "weight",
    "depthwise_kernel": "weight",
    "alpha": "weight",
    "gamma": "weight",
    "embeddings": "weight",
    "bias": "bias",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}

IGNORED = ("num_batches_tracked",)

# How many problems one error line names before it only counts the rest.
MAX_LISTED = 6

def torch_names(model_name, **hparams):
    """The name mapping a registered model declares (``register_model(..., torch_names=fn)``)
    for these hyperparameters ({} if none)."""
    from visionfw.models import get_model_def

    if model_name is None:
        return {}
    mdef = get_model_def(model_name)
    if mdef.torch_names is None:
        return {}
    return dict(mdef.torch_names(**mdef.resolve(**hparams)))


def published_parity():
    """The published checkpoints under ``../shared/weights`` that the tests and the benchmark
    convert: ``[(model, hyperparameters, checkpoint, parity file)]``, read from
    ``visionfw/published_weights.json``."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "published_weights.json")
    with open(path) as f:
        rows = json.load(f)["checkpoints"]
    return [(r["model"], r["hparams"], r["checkpoint"], r["parity"]) for r in rows]


def load_state(path, key=None):
    """The state dict in ``path``: a ``.npz`` (one array per key) or a PyTorch checkpoint.

    PyTorch files are read without torch by :func:`visionfw.io.read_torch_state` (which raises
    :class:`visionfw.io.TorchReadError` for a file it cannot interpret); ``key`` picks the
    top-level entry that holds the state dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such checkpoint file")
    if path.lower().endswith(".npz"):
        if key is not None:
            raise ConversionError(f"{path}: a .npz holds one state dict; --key does not apply")
        try:
            with np.load(path, allow_pickle=False) as z:
                return {name: z[name] for name in z.files}
        except (OSError, ValueError) as exc:
            raise ConversionError(f"{path}: not a readable .npz state dict ({exc})") from None
    from visionfw.io import read_torch_state

    try:
        return read_torch_state(path, key=key)
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read ({exc.strerror or exc})") from None


@dataclass
class Assignment:
    """One weight of the model and the tensor it takes."""

    keras_path: str
    torch_key: str
    value: np.ndarray        # already in Keras layout and dtype


@dataclass
class _Group:
    name: str
    kind: str                # the Keras layer class name
    variables: list          # keras.Variable objects


def weight_groups(model):
    """``[(layer_path, layer_class, [variables])]``: the model's weights in conversion order."""
    return [(g.name, g.kind, list(g.variables)) for g in _keras_groups(model)]


def _keras_groups(model):
    groups = []
    seen = set()

    def visit(layer, prefix):
        import keras

        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.Model):
            for sub in _ordered_layers(layer):
                visit(sub, f"{prefix}{layer.name}/" if layer is not model else prefix)
            return
        if layer.weights:
            groups.append(_Group(prefix + layer.name, type(layer).__name__, list(layer.weights)))

    visit(model, "")
    return groups


def _ordered_layers(model):
    """The layers of a functional model in the order its dictionary built them, when known."""
    from visionfw.graph.builder import model_spec

    layers = list(model.layers)
    spec = model_spec(model)
    if not spec:
        return layers
    try:
        from visionfw.graph.validate import validate

        plan = validate(spec["dict"])
    except Exception:  # a spec the registry cannot resolve here: keep Keras' order
        return layers
    rank = {}
    for i, step in enumerate(plan.steps):
        name = step.par.get("name") if step.entry.kind == "layer" else None
        rank[name or f"{step.family}_{step.index}"] = i
    return sorted(layers, key=lambda layer: rank.get(layer.name, -1))


def _torch_groups(keys):
    groups = {}
    for key in keys:
        module, _, leaf = key.rpartition(".")
        groups.setdefault(module or key, []).append((leaf, key))
    return list(groups.items())


def _leaf(variable):
    return variable.path.rsplit("/", 1)[-1]


def to_keras_layout(kind, role, array, target_shape):
    """``array`` (PyTorch layout) rearranged for a Keras variable of ``target_shape``.

    Args:
        kind: the Keras layer class name (``Conv2D``, ``Conv2DTranspose``, ``Dense``, ...).
        role: the variable's name in the layer (``kernel``, ``bias``, ``alpha``, ...).
        array: the tensor.
        target_shape: the Keras variable's shape.
    Returns:
        The rearranged array, or ``None`` when its shape cannot fit.
    """
    target_shape = tuple(int(n) for n in target_shape)
    a = np.asarray(array)
    if role == "kernel" and kind.startswith("Conv") and a.ndim == len(target_shape) >= 3:
        # Conv: (O, I, *k) -> (*k, I, O); transposed conv: (I, O, *k) -> (*k, O, I).
        a = np.transpose(a, tuple(range(2, a.ndim)) + (1, 0))
    elif role == "kernel" and kind == "Dense" and a.ndim == 2:
        a = a.T
    elif role == "alpha" and kind == "PReLU" and a.size == int(np.prod(target_shape)):
        a = a.reshape(target_shape)
    return a if a.shape == target_shape else None


def torch_shape_for(kind, role, target_shape):
    """The PyTorch tensor shape that would fit a Keras variable (for error messages)."""
    shape = tuple(int(n) for n in target_shape)
    if role == "kernel" and kind.startswith("Conv") and len(shape) >= 3:
        return (shape[-1], shape[-2]) + shape[:-2]
    if role == "kernel" and kind == "Dense" and len(shape) == 2:
        return shape[::-1]
    if role == "alpha" and kind == "PReLU":
        return (int(np.prod(shape)),)
    return shape


def plan_conversion(model, state, names=None, source="state dict"):
    """Pair every weight of ``model`` with a tensor of ``state``; nothing is assigned.

    Args:
        model: a built ``keras.Model``.
        state: ``{torch_key: array}`` in the checkpoint's order.
        names: ``{keras_weight_path: torch_key}`` pairs that override the order.
        source: how to call the state dict in an error (usually its file name).
    Returns:
        A list of :class:`Assignment`, one per model weight, in conversion order.
    Raises:
        ConversionError: one line naming every unmatched or mis-shaped tensor.
    """
    names = dict(names or {})
    groups = _keras_groups(model)
    where = {}                           # keras path -> (group, variable)
    for g in groups:
        for v in g.variables:
            where[v.path] = (g, v)
    keys = [k for k in state if k.rpartition(".")[2] not in IGNORED]
    problems = []
    out = {}

    def pair(g, v, key):
        role = _leaf(v)
        value = to_keras_layout(g.kind, role, state[key], v.shape)
        if value is None:
            want = torch_shape_for(g.kind, role, v.shape)
            problems.append(f"{key} has shape {tuple(np.shape(state[key]))} but {v.path} "
                            f"({g.kind}) needs {want}")
            return
        out[v.path] = Assignment(v.path, key, value.astype(v.dtype, copy=False))

    for path, key in names.items():
        if path not in where:
            problems.append(f"the name mapping gives {path!r}, which the model does not have")
        elif key not in state:
            problems.append(f"the name mapping gives {path} <- {key!r}, which {source} lacks")
        else:
            pair(*where[path], key)
    named_keys = set(names.values())
    keras_left = [(g, [v for v in g.variables if v.path not in names]) for g in groups]
    keras_left = [(g, vs) for g, vs in keras_left if vs]
    torch_left = _torch_groups(k for k in keys if k not in named_keys)

    extra_torch, missing_keras = [], []
    for i in range(max(len(keras_left), len(torch_left))):
        if i >= len(torch_left):
            missing_keras += [v.path for v in keras_left[i][1]]
            continue
        if i >= len(keras_left):
            extra_torch += [k for _, k in torch_left[i][1]]
            continue
        g, variables = keras_left[i]
        module, tensors = torch_left[i]
        by_role = dict(tensors)
        used = set()
        for v in variables:
            role = ROLES.get(_leaf(v), _leaf(v))
            key = by_role.get(role)
            if key is None or key in used:
                missing_keras.append(f"{v.path} (module {module} has "
                                     f"{', '.join(leaf for leaf, _ in tensors)})")
                continue
            used.add(key)
            pair(g, v, key)
        extra_torch += [k for _, k in tensors if k not in used]
    if missing_keras:
        problems.append("model weights without a tensor: " + _listed(missing_keras))
    if extra_torch:
        problems.append("tensors left unmatched: " + _listed(extra_torch))
    if problems:
        raise ConversionError(f"{source} does not fit model {model.name!r}: "
                              + "; ".join(problems[:MAX_LISTED])
                              + (f"; and {len(problems) - MAX_LISTED} more problem(s)"
                                 if len(problems) > MAX_LISTED else "")
                              + " (pairing is by order, layer by layer; a name mapping pairs "
                                "weights whose modules come in another order)")
    return [out[v.path] for g in groups for v in g.variables]


def _listed(items):
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def convert_state(model, state, names=None, source="state dict"):
    """Assign ``state`` to ``model``'s weights (see :func:`plan_conversion`); all or nothing.

    Returns the list of :class:`Assignment` made.
    """
    plan = plan_conversion(model, state, names, source)
    variables = {v.path: v for g in _keras_groups(model) for v in g.variables}
    for a in plan:
        variables[a.keras_path].assign(a.value)
    return plan


def convert_model(model_name, checkpoint, names=None, key=None, **hparams):
    """Build registered model ``model_name`` (or a dictionary / JSON path) and load a PyTorch
    checkpoint (or ``.npz``) into it.

    The model's registered name mapping is used, updated by ``names``. Returns
    ``(model, assignments)``; the model carries its dictionary for
    :func:`visionfw.save_model`.
    """
    from visionfw.models import build_model, resolve_model

    _, registered, values = resolve_model(model_name, **hparams)
    mapping = torch_names(registered, **values) if registered else {}
    mapping.update(names or {})
    state = load_state(checkpoint, key=key)
    model = build_model(model_name, compile=False, **hparams)
    plan = convert_state(model, state, mapping, source=os.path.basename(os.fspath(checkpoint)))
    return model, plan


__all__ = ["ConversionError", "Assignment", "published_parity", "torch_names", "load_state",
           "plan_conversion", "convert_state", "convert_model", "to_keras_layout",
           "weight_groups"]
