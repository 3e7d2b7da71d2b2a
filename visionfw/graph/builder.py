"""Compiles a validated link dictionary into a ``keras.Model``.

Every link becomes one callable: a Keras layer for a layer name, or a nested functional model
for a block (a registered function or a dictionary), so that each link has one name, one
parameter count and one output shape in the layer table, and a block's weights sit under
the link's name.

A built model takes images of any size, so shapes alone cannot tell that a merge joins an LR
map with a 2x one. The builder therefore also traces every link on a *probe*: the model's
inputs at a fixed size (:data:`PROBE_SIZE`, or the dictionary's ``meta['probe_size']``),
propagated symbolically with each layer's ``compute_output_spec`` (nothing computed, no
weights beyond the model's own), and a merge whose inputs differ on the probe fails here,
naming its link.
"""
import json
from dataclasses import dataclass, field

from visionfw.errors import LinkError
from visionfw.graph import registry
from visionfw.graph.schema import DEFAULT_INPUT, dict_to_json
from visionfw.graph.validate import validate

# Merge layers whose inputs must have equal shapes, and the one that joins along an axis.
SPEC_FORMAT = 1

_ELEMENTWISE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}

# Side of the LR image the shape probe traces: a multiple of 2, 3, 4, 8 and 16, so that the
# scales and the poolings of U-Nets divide it. Tracing costs the same at any size.
PROBE_SIZE = 48


@dataclass
class BuiltStep:
    step: object
    layer: object
    outputs: list
    inputs: list = field(default_factory=list)


@dataclass
class Trace:
    """What the builder made for each link, for the layer table."""

    steps: list = field(default_factory=list)


def build(d, name=None, trace=None, probe_size=None, input_size=None):
    """Build dictionary ``d`` into a ``keras.Model`` (validating it first).

    Args:
        d: the link dictionary.
        name: the model's name (default: ``d['name']``).
        trace: a :class:`Trace` to fill with each link's layer, input and output tensors.
        probe_size: side of the LR image of the shape probe (see the module's docstring);
            default: the dictionary's ``meta['probe_size']``, else :data:`PROBE_SIZE`
            (a model that only takes multiples of 32 says 64); 0 skips the probe.
        input_size: build the model for LR images of this side only (the unknown heights
            and widths of its inputs fixed by :func:`sized_inputs`), as the layer table does
            to count operations; the shapes are then checked on that size, not on a probe.
    """
    plan = validate(d)
    if probe_size is None:
        probe_size = plan.meta.get("probe_size", PROBE_SIZE)
        if isinstance(probe_size, bool) or not isinstance(probe_size, int) or probe_size < 0:
            raise LinkError(f"'probe_size' must be a side in pixels (0: no shape probe), got "
                            f"{probe_size!r}", "meta")
    fixed = sized_inputs(plan, d, input_size) if input_size else None
    probe = sized_inputs(plan, d, probe_size) if probe_size and not input_size else None
    note = (f"shape probe: a {probe_size}x{probe_size} LR input; meta['probe_size'] sets "
            "another")
    model = _build_plan(plan, name or plan.name, (), trace, {}, shapes=fixed, probe=probe,
                        probe_note=note)
    attach_spec(model, d)
    return model


def sized_inputs(plan, d, size):
    """The shape (batch excluded) of each input of ``plan`` (made from dictionary ``d``) when
    the LR image is ``size`` x ``size``: an image input's unknown height and width become
    ``size`` (``size * scale + shrink`` for a model that takes the up-sampled image, meta
    ``input: 'upsampled'``), an SR input's (role ``sr``) ``size * scale``, a map of random
    draws' (role ``latent``) ``size``. Other unknown sizes, such as a blur kernel's, stay
    unknown."""
    from visionfw.conditioning import ConditioningError, input_roles

    meta = plan.meta
    try:
        scale = int(meta.get("scale") or 1)
        shrink = int(meta.get("shrink") or 0)
    except (TypeError, ValueError):
        scale, shrink = 1, 0
    try:
        roles = {str(node): role for node, role in input_roles(d)}
    except ConditioningError:
        roles = {}                          # inputs without roles: every image at the LR size
    side = {"image": size * scale + shrink if meta.get("input") == "upsampled" else size,
            "sr": size * scale, "latent": size}
    shapes = []
    for spec in plan.inputs:
        shape = tuple(spec.shape if spec.shape is not None else DEFAULT_INPUT["shape"])
        role = roles.get(str(spec.node), "image")
        if len(shape) == 3 and role in side:
            shape = tuple(side[role] if s is None else s for s in shape[:2]) + shape[2:]
        shapes.append(shape)
    return shapes


def attach_spec(model, d, name=None, hparams=None):
    """Record the dictionary (and model name, hyperparameters) a model was built from.

    Kept as one JSON string, which Keras does not track, for :func:`visionfw.save_model`.
    A dictionary holding live objects (not JSON) is recorded as ``None``.
    """
    try:
        text = dict_to_json(d, indent=None)
    except LinkError:
        model._visionfw_spec = None
        return
    model._visionfw_spec = json.dumps({"format": SPEC_FORMAT, "model": name,
                                       "hparams": hparams or {}, "dict": json.loads(text)})


def model_spec(model):
    """The record :func:`attach_spec` made, as a dict, or None."""
    text = getattr(model, "_visionfw_spec", None)
    return json.loads(text) if text else None


def _layer_name(step):
    return f"{step.family}_{step.index}"


def _build_plan(plan, name, path, trace, shared, shapes, nested=False, probe=None,
                probe_note="", dtypes=None):
    """Build a plan; ``shapes`` overrides the input shapes (a nested block's, or the fixed
    size of :func:`build`), ``probe`` gives the inputs' shapes on the shape probe, ``dtypes``
    a nested block's input dtypes (those of the tensors its parent feeds it)."""
    import keras

    tensors = {}
    model_inputs = []
    for i, spec in enumerate(plan.inputs):
        if shapes is not None:
            shape = shapes[i]
        else:
            shape = spec.shape if spec.shape is not None else DEFAULT_INPUT["shape"]
        in_name = spec.name or (spec.node if isinstance(spec.node, str) else f"input_{spec.node}")
        dtype = (dtypes[i] if dtypes else None) if nested else spec.dtype
        t = keras.Input(shape=tuple(shape), dtype=dtype, name=in_name)
        tensors[spec.node] = t
        model_inputs.append(t)
    # node -> its shape (batch included) on the probe
    probed = None if probe is None else {
        spec.node: (None, *shape) for spec, shape in zip(plan.inputs, probe)}

    # Under a mixed policy (bf16 compute), a model's output merges, the layers that read its
    # input image (and the weightless ones before them, such as a bicubic up-sampling) and the
    # layers of vectors run in float32: see _float32_output_merges, _reads_the_picture and
    # _on_vectors. A nested block's plan is built inside its parent, which has decided this
    # already.
    mixed = not nested and keras.mixed_precision.global_policy().name.startswith("mixed")
    exact = _float32_output_merges(plan) if mixed else set()
    picture = _picture_nodes(plan) if mixed else set()
    for step in plan.steps:
        xs = [tensors[n] for n in step.inputs]
        layer = shared.get(step.share) if step.share else None
        reads = _reads_the_picture(step, picture)
        vectors = mixed and _on_vectors(step, xs)
        probe_xs = None if probed is None else [
            keras.KerasTensor(probed[n], dtype=x.dtype) for n, x in zip(step.inputs, xs)]
        if layer is None:
            with keras.name_scope(_layer_name(step)):
                # Variables of a block's layers get paths such as 'block_3/conv1/kernel'.
                layer = _make(step, xs, path, shared, float32=step in exact or reads or vectors,
                              probe_xs=probe_xs, probe_note=probe_note)
            if step.share:
                shared[step.share] = layer
        _check_merge(step, layer, xs, path)
        try:
            ys = layer(_call_args(step, xs))
        except LinkError:
            raise
        except Exception as exc:  # Keras reports shape and type errors in many classes
            raise step.error(f"{step.entry.name} failed on inputs of shape "
                             f"{[tuple(x.shape) for x in xs]}: {_first_line(exc)}", path) from None
        ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        if len(ys) != len(step.outputs):
            raise step.error(f"{step.entry.name} returned {len(ys)} tensor(s) for "
                             f"{len(step.outputs)} output node(s)", path)
        for node, y in zip(step.outputs, ys):
            tensors[node] = y
        if probed is not None:
            for node, y in zip(step.outputs, _probe(step, layer, probe_xs, path, probe_note)):
                probed[node] = tuple(y.shape)
        if reads and not layer.weights and getattr(layer, "passes_picture", True):
            picture.update(step.outputs)       # still the picture: resized, padded, cropped
        if trace is not None:
            trace.steps.append(BuiltStep(step, layer, ys, xs))

    outs = [tensors[n] for n in plan.outputs]
    ins = model_inputs[0] if len(model_inputs) == 1 else model_inputs
    out = outs[0] if len(outs) == 1 else outs
    return keras.Model(ins, out, name=name)


def _float32_output_merges(plan):
    """Under a mixed policy (bf16 compute), the element-wise merges that make a model output,
    and the merges feeding those: they run in float32. A global skip such as VDSR's adds the
    input (or its bicubic up-sampling) to a small residual; summed in bfloat16, the picture
    itself would be rounded to 8 significant bits. Convolutions keep the policy."""
    made_by = {node: step for step in plan.steps for node in step.outputs}
    exact, todo = set(), [made_by.get(n) for n in plan.outputs]
    while todo:
        step = todo.pop()
        if step is None or step in exact or step.entry.kind != "layer":
            continue
        if getattr(step.entry.target, "__name__", "") not in _ELEMENTWISE:
            continue
        exact.add(step)
        todo.extend(made_by.get(n) for n in step.inputs)
    return exact


def _picture_nodes(plan):
    """The model inputs that are images (batch, H, W, C)."""
    return {spec.node for spec in plan.inputs
            if spec.shape is None or len(spec.shape) == 3}


def _reads_the_picture(step, picture):
    """Whether a link is a layer that reads the input image. bfloat16 keeps 8 significant
    bits, so the picture cast to it loses its finest grey levels before the first convolution
    sees them: measured on the converted VDSR (Set5 x4), all of bf16's 0.10 dB loss came from
    its first layer, and none once that layer ran in float32 (a single, cheap convolution on
    1 or 3 channels)."""
    return (bool(picture) and step.entry.kind == "layer" and not step.share
            and any(n in picture for n in step.inputs))


def _on_vectors(step, xs):
    """Whether a link is a layer whose inputs are all vectors (batch, features) or scalars: a
    dense layer on pooled features, a noise level's hyper-parameter network, a code's offset.
    Such layers cost next to nothing, and their outputs are parameters -- a kernel code, a
    softmax kernel, USRNet's alpha and beta -- that bfloat16's 8 significant bits would round
    before a float32 step uses them."""
    return step.entry.kind == "layer" and bool(xs) and all(
        x.shape is not None and len(x.shape) <= 2 for x in xs)


def _call_args(step, xs):
    """What a link's layer is called on: one tensor, or a list for a merge or a block of
    several inputs."""
    if step.entry.kind == "layer":
        single = registry.layer_arity(step.entry)[0] <= 1
        return xs[0] if len(xs) == 1 and single else xs
    return xs[0] if len(xs) == 1 else xs


def _probe(step, layer, xs, path, note):
    """The outputs of one link on the shape probe (``xs``: its inputs there), after the merge
    checks; a failure is the link's error."""
    _check_merge(step, layer, xs, path, note)
    try:
        ys = layer.compute_output_spec(_call_args(step, xs))
    except LinkError:
        raise
    except Exception as exc:  # noqa: BLE001 -- whatever the layer raises, the link is named
        raise step.error(f"{step.entry.name} fails on inputs of shape "
                         f"{[tuple(x.shape) for x in xs]} ({note}): {_first_line(exc)}",
                         path) from None
    ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
    if len(ys) != len(step.outputs):
        raise step.error(f"{step.entry.name} returned {len(ys)} tensor(s) on the shape probe "
                         f"for {len(step.outputs)} output node(s)", path)
    return ys


def _make(step, xs, path, shared, float32=False, probe_xs=None, probe_note=""):
    """The layer or nested model that computes one link (``float32``: in that dtype whatever
    the global policy, unless the link names its own; ``probe_xs``: the link's inputs on the
    shape probe, which a nested dictionary traces link by link)."""
    import keras

    entry = step.entry
    name = step.par.get("name", _layer_name(step)) if entry.kind == "layer" else _layer_name(step)
    if entry.kind == "layer":
        par = dict(step.par)
        par["name"] = name
        if float32:
            par.setdefault("dtype", "float32")
        try:
            return entry.target(**par)
        except Exception as exc:
            raise step.error(f"cannot make {entry.name} with parameters {step.par}: "
                             f"{_first_line(exc)}", path) from None
    shapes = [tuple(x.shape[1:]) for x in xs]
    if entry.kind == "block":
        sub_inputs = [keras.Input(shape=s, dtype=d, name=f"{name}_in{i}")
                      for i, (s, d) in enumerate(zip(shapes, _input_dtypes(xs)))]
        try:
            out = entry.target(*sub_inputs, **step.par)
        except LinkError:
            raise
        except Exception as exc:
            raise step.error(f"block {entry.name} failed on inputs of shape {shapes}: "
                             f"{_first_line(exc)}", path) from None
        ins = sub_inputs[0] if len(sub_inputs) == 1 else sub_inputs
        return keras.Model(ins, out, name=name)
    # A nested dictionary (inline, registered, or a registered model).
    label = f"{step.label} {step.plan.name}"
    for i, (spec, shape) in enumerate(zip(step.plan.inputs, shapes)):
        if spec.shape is not None and not _compatible(spec.shape, shape):
            raise step.error(f"input {i} of block {step.plan.name} has shape {shape}, but the "
                             f"block declares {spec.shape}", path)
    probe = None if probe_xs is None else [tuple(x.shape[1:]) for x in probe_xs]
    return _build_plan(step.plan, name, path + (label,), None, shared, shapes, nested=True,
                       probe=probe, probe_note=probe_note, dtypes=_input_dtypes(xs))


def _input_dtypes(xs):
    """The dtypes a nested block's inputs take: those of the tensors fed to it. A block's
    input of another float dtype would make Keras cast each call's tensor on the way in (under
    bf16, a bfloat16 feature map to float32 and back to bfloat16 in the block's first layer:
    two copies of it, and two more in the gradient, per block and step)."""
    return [x.dtype if "float" in str(x.dtype) else None for x in xs]


def _compatible(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _check_merge(step, layer, xs, path, note=""):
    """Inputs of an element-wise merge must have one shape, those of a Concatenate one shape
    off its axis (``note`` says where the shapes come from, e.g. the probe)."""
    kind = type(layer).__name__
    if step.entry.kind != "layer" or len(xs) < 2:
        return
    shapes = [tuple(x.shape) for x in xs]
    where = f" ({note})" if note else ""
    if kind in _ELEMENTWISE:
        for node, shape in zip(step.inputs[1:], shapes[1:]):
            if not _compatible(shapes[0], shape):
                raise step.error(f"{kind} needs inputs of equal shape, got {shapes[0]} from node "
                                 f"{step.inputs[0]!r} and {shape} from node {node!r}{where}",
                                 path)
    elif kind == "Concatenate":
        axis = layer.axis % len(shapes[0]) if shapes[0] else 0
        cut = [tuple(s[:axis] + s[axis + 1:]) for s in shapes]
        for node, shape, full in zip(step.inputs[1:], cut[1:], shapes[1:]):
            if len(full) != len(shapes[0]) or not _compatible(cut[0], shape):
                raise step.error(f"Concatenate on axis {layer.axis} needs equal shapes elsewhere, "
                                 f"got {shapes[0]} from node {step.inputs[0]!r} and {full} "
                                 f"from node {node!r}{where}", path)


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["build", "Trace", "attach_spec", "model_spec", "sized_inputs", "PROBE_SIZE"]
