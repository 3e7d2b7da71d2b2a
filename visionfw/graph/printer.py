"""The layer table: one row per link with its nodes, type, parameters, output shape and size."""
import json

from visionfw.graph.builder import Trace, build
from visionfw.graph.schema import canonical


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


def layer_table(d):
    """Build ``d`` and return ``(rows, totals)``: one dict per link in topological order.

    Each row has ``node``, ``inputs``, ``family``, ``type``, ``params``, ``output_shape``,
    ``count``; totals has ``total``, ``trainable`` and ``non_trainable``. A link that reuses a
    shared layer counts zero parameters, so the rows add up to the total.
    """
    trace = Trace()
    model = build(d, trace=trace)
    rows = []
    seen = set()
    for built in trace.steps:
        step = built.step
        layer = built.layer
        first = id(layer) not in seen
        seen.add(id(layer))
        type_name = step.entry.name if step.entry.kind != "dict" else f"{step.plan.name} (dict)"
        rows.append({
            "node": ", ".join(map(str, step.outputs)),
            "inputs": ", ".join(map(str, step.inputs)),
            "family": step.label,
            "type": type_name + ("" if first else " (shared)"),
            "params": _params(step.par),
            "output_shape": _shape(built.outputs),
            "count": layer.count_params() if first else 0,
        })
    trainable = _count(model.trainable_weights)
    total = _count(model.weights)
    return rows, {"total": total, "trainable": trainable, "non_trainable": total - trainable,
                  "name": model.name, "inputs": [_shape([t]) for t in model.inputs]}


def format_table(rows, totals):
    """The table as text, ready to print."""
    heads = ("node", "inputs", "link", "type", "parameters", "output shape", "params")
    keys = ("node", "inputs", "family", "type", "params", "output_shape", "count")
    body = [[f"{r[k]:,}" if k == "count" else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(heads)]

    def line(cells):
        return "  ".join(c.rjust(w) if i == len(cells) - 1 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(heads))
    out = [f"Model: {totals['name']}    input(s): {', '.join(totals['inputs'])}", rule,
           line(heads), rule]
    out += [line(b) for b in body]
    out += [rule,
            f"Total params: {totals['total']:,}   trainable: {totals['trainable']:,}   "
            f"non-trainable: {totals['non_trainable']:,}"]
    return "\n".join(out)


def print_layer_table(d, file=None):
    """Print the layer table of dictionary ``d``."""
    rows, totals = layer_table(d)
    print(format_table(rows, totals), file=file)
    return rows, totals
