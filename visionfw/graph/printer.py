"""The layer table: one row per link with its nodes, type, parameters, output shape, size and
multiply-accumulates (MACs) for a given LR image size; ``expand`` lists the layers of each
block indented under it.

MACs are counted from the built layers' shapes: each weight of a kernel -- a convolution's
(strided, grouped, depthwise or separable), a dense layer's, or one inside a custom layer such
as SFT -- is one multiply-accumulate per output position (per input position for a transposed
convolution). Biases, normalisation, activations, merges, resizes and pixel shuffles count 0,
so a table's MACs are those of its convolutions and dense layers. FLOPs are 2 x MACs.
"""
import json

from visionfw.graph.builder import Trace, build
from visionfw.graph.schema import canonical

# Side of the LR image the table counts MACs for, unless told otherwise.
INPUT_SIZE = 64

_TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")


def _count(weights):
    total = 0
    for w in weights:
        n = 1
        for dim in w.shape:
            n *= int(dim)
        total += n
    return total


def _shape(tensors):
    shapes = [tuple(t.shape) for t in tensors]
    text = ", ".join(str(s).replace("None", "?") for s in shapes)
    return text


def _params(par, limit=48):
    if not par:
        return ""
    text = json.dumps(canonical(par), separators=(",", ":"))[1:-1].replace('"', "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _positions(shape, channels_first=False):
    """Height x width (x depth) of a batched shape: all but batch and channels; None if one
    is unknown."""
    dims = shape[2:] if channels_first else shape[1:-1]
    n = 1
    for d in dims:
        if d is None:
            return None
        n *= int(d)
    return n


def layer_macs(layer, input_shapes, output_shapes):
    """Multiply-accumulates of one call of ``layer`` on one image (see the module's docstring);
    shapes include the batch axis. None when a size it needs is unknown."""
    kernel = sum(_count([w]) for w in layer.weights if w.name.endswith("kernel"))
    if not kernel:
        return 0
    channels_first = getattr(layer, "data_format", None) == "channels_first"
    transposed = any(k.__name__ in _TRANSPOSED for k in type(layer).__mro__)
    shape = input_shapes[0] if transposed else output_shapes[0]
    positions = _positions(tuple(shape), channels_first)
    return None if positions is None else positions * kernel


def _add(values):
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _inner_rows(model, depth, seen):
    """Rows of the layers inside a block (a nested ``keras.Model``), depth-first."""
    import keras

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        first = id(layer) not in seen
        seen.add(id(layer))
        outputs = _as_list(layer.output)
        if isinstance(layer, keras.Model):
            below = _inner_rows(layer, depth + 1, seen)
            macs = _add(r["macs"] for r in below if r["depth"] == depth + 1)
        else:
            below = []
            macs = layer_macs(layer, [t.shape for t in _as_list(layer.input)],
                              [t.shape for t in outputs])
        rows.append({"node": "", "inputs": "", "family": "  " * depth + layer.name,
                     "type": type(layer).__name__ + ("" if first else " (shared)"),
                     "params": "", "output_shape": _shape(outputs),
                     "count": layer.count_params() if first else 0, "macs": macs,
                     "depth": depth})
        rows.extend(below)
    return rows


def layer_table(d, input_size=INPUT_SIZE, expand=False):
    """Build ``d`` and return ``(rows, totals)``: one dict per link in topological order.

    Each row has ``node``, ``inputs``, ``family``, ``type``, ``params``, ``output_shape``,
    ``count``, ``macs`` and ``depth`` (0 for a link); totals has ``total``, ``trainable``,
    ``non_trainable``, ``macs``, ``macs_unknown`` and ``input_size``. A link that reuses a
    shared layer counts zero parameters, so the links' rows add up to the total; its MACs
    count, as it computes. A row's ``macs`` is None where a size is known only at run time
    (USRNet's HR size follows its scale input); ``macs`` in totals adds the known ones and
    ``macs_unknown`` counts the links left out.

    Args:
        d: the link dictionary.
        input_size: the model is built for LR images of ``input_size`` x ``input_size``
            (:func:`visionfw.graph.builder.sized_inputs`), so output shapes are those of such
            an image and ``macs`` are counted for it; None builds it for any size, without
            MACs.
        expand: also list the layers inside each block, after its row (``depth`` 1 and more;
            a block's MACs and parameters are the sum of its layers').
    """
    import keras

    trace = Trace()
    model = build(d, trace=trace, input_size=input_size)
    rows = []
    seen = set()
    for built in trace.steps:
        step = built.step
        layer = built.layer
        first = id(layer) not in seen
        seen.add(id(layer))
        type_name = step.entry.name if step.entry.kind != "dict" else f"{step.plan.name} (dict)"
        if isinstance(layer, keras.Model):
            inner = _inner_rows(layer, 1, seen)
            macs = _add(r["macs"] for r in inner if r["depth"] == 1)
        else:
            inner = []
            macs = layer_macs(layer, [x.shape for x in built.inputs],
                              [y.shape for y in built.outputs])
        rows.append({
            "node": ", ".join(map(str, step.outputs)),
            "inputs": ", ".join(map(str, step.inputs)),
            "family": step.label,
            "type": type_name + ("" if first else " (shared)"),
            "params": _params(step.par),
            "output_shape": _shape(built.outputs),
            "count": layer.count_params() if first else 0,
            "macs": macs if input_size else None,
            "depth": 0,
        })
        if expand:
            rows.extend(inner)
    trainable = _count(model.trainable_weights)
    total = _count(model.weights)
    links = [r["macs"] for r in rows if r["depth"] == 0]
    macs = sum(m for m in links if m is not None) if input_size else None
    return rows, {"total": total, "trainable": trainable, "non_trainable": total - trainable,
                  "name": model.name, "inputs": [_shape([t]) for t in model.inputs],
                  "macs": macs, "macs_unknown": links.count(None) if input_size else 0,
                  "input_size": input_size}


def _si(n):
    """``6_170_000_000`` -> ``'6.17G'``; None -> ``'?'``."""
    if n is None:
        return "?"
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def format_table(rows, totals):
    """The table as text, ready to print."""
    heads = ["node", "inputs", "link", "type", "parameters", "output shape", "params"]
    keys = ["node", "inputs", "family", "type", "params", "output_shape", "count"]
    size = totals.get("input_size")
    if size:
        heads.append("MACs")
        keys.append("macs")
    body = [[f"{r[k]:,}" if k == "count" else _si(r[k]) if k == "macs" else str(r[k])
             for k in keys] for r in rows]
    right = {len(keys) - 1, keys.index("count")}
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(heads)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(heads))
    out = [f"Model: {totals['name']}    input(s): {', '.join(totals['inputs'])}"]
    if size:
        out.append(f"Shapes and MACs (multiply-accumulates of convolutions and dense layers) "
                   f"for one {size}x{size} LR image; FLOPs = 2 x MACs")
    out += [rule, line(heads), rule]
    out += [line(b) for b in body]
    out += [rule,
            f"Total params: {totals['total']:,}   trainable: {totals['trainable']:,}   "
            f"non-trainable: {totals['non_trainable']:,}"]
    if size:
        macs, unknown = totals["macs"], totals.get("macs_unknown", 0)
        more = (f" + ? ({unknown} link(s) whose sizes are known only at run time)"
                if unknown else "")
        out.append(f"Total MACs: {_si(macs)}   FLOPs: {_si(2 * macs)}   "
                   f"(one {size}x{size} LR image){more}")
    return "\n".join(out)


def print_layer_table(d, file=None, input_size=INPUT_SIZE, expand=False):
    """Print the layer table of dictionary ``d`` (arguments as :func:`layer_table`)."""
    rows, totals = layer_table(d, input_size=input_size, expand=expand)
    print(format_table(rows, totals), file=file)
    return rows, totals
