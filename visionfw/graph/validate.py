"""Checks a link dictionary and turns it into a plan: inputs, links in topological order, outputs.

Everything that can be known without building tensors is checked here, so a malformed
dictionary fails before any layer is made. Shape checks at merges happen in the builder,
where shapes are known: on the built tensors and on a shape probe at a fixed input size
(:data:`visionfw.graph.builder.PROBE_SIZE`), which catches an LR map merged with a 2x one.
"""
import heapq
from dataclasses import dataclass, field

from visionfw.errors import LinkError, VisionfwError
from visionfw.graph import registry
from visionfw.graph.schema import (
    DEFAULT_INPUT, FAMILY_DEFAULTS, RESERVED, SUFFIXES, is_node_id, split_key,
)

_INPUT_KEYS = ("node", "shape", "dtype", "name")


@dataclass
class InputSpec:
    """A model input; ``shape`` (batch excluded) is None when the dictionary does not declare it."""

    node: object
    shape: tuple
    dtype: str = "float32"
    name: str = None


@dataclass(eq=False)
class Step:
    """One link, resolved: what it reads, what it produces and what makes it."""

    family: str
    index: int
    link: tuple
    inputs: tuple
    outputs: tuple
    sub: object            # the ``_sub`` entry: a name or a nested dictionary
    par: dict
    entry: registry.Entry  # what the name resolved to (kind 'dict' for an inline dictionary)
    share: object = None   # label of a layer shared with other links
    plan: object = None    # the nested plan of a dictionary block
    order: int = 0

    @property
    def label(self):
        return f"{self.family}[{self.index}]"

    def error(self, message, path=()):
        return LinkError(message, self.family, self.index, self.link, path)


@dataclass
class Plan:
    name: str
    inputs: list
    outputs: list
    steps: list
    meta: dict = field(default_factory=dict)
    explicit_outputs: bool = False


def validate(d, path=()):
    """Return the :class:`Plan` of dictionary ``d`` or raise :class:`LinkError`."""
    path = tuple(path)

    def fail(message, family=None, index=None, link=None):
        return LinkError(message, family, index, link, path)

    if not isinstance(d, dict):
        raise fail(f"a link dictionary must be a dict, got {type(d).__name__}")
    for key in d:
        if not isinstance(key, str):
            raise fail(f"top-level key {key!r} is not a string")
    name = d.get("name", "model")
    if not isinstance(name, str) or not name:
        raise fail(f"'name' must be a non-empty string, got {name!r}", "name")
    meta = d.get("meta", {})
    if not isinstance(meta, dict):
        raise fail(f"'meta' must be a dict, got {type(meta).__name__}", "meta")

    inputs = _parse_inputs(d.get("inputs"), fail)
    input_nodes = [spec.node for spec in inputs]

    # Families and their companion lists.
    family_names = []
    for key in d:
        if key in RESERVED:
            continue
        family, suffix = split_key(key)
        if suffix is not None:
            if family not in d:
                raise fail(f"'{key}' has no family '{family}' beside it", key)
            continue
        if not isinstance(d[key], (list, tuple)):
            raise fail(f"a family holds a list of links, got {type(d[key]).__name__}", key)
        family_names.append(family)
    if not family_names:
        raise fail("the dictionary has no links; add a family such as 'convo': [(0, 1)]")

    steps = []
    for family in family_names:
        steps.extend(_family_steps(d, family, path, fail))

    # Who produces what.
    producer = {}
    for node in input_nodes:
        producer[node] = None
    for step in steps:
        for node in step.outputs:
            if node in producer:
                other = producer[node]
                first = "the inputs" if other is None else other.label
                raise step.error(f"node {node!r} is produced twice (also by {first})", path)
            producer[node] = step
    used = set()
    for step in steps:
        for node in step.inputs:
            if node not in producer:
                raise step.error(
                    f"node {node!r} is used but never produced; add a link that makes it "
                    f"or list it in 'inputs'", path)
            used.add(node)

    ordered = _topological(steps, producer, path)
    outputs, explicit = _outputs(d.get("outputs"), producer, used, input_nodes, ordered, fail,
                                 path)
    plan = Plan(name, inputs, outputs, ordered, dict(meta), explicit)
    return plan


def _parse_inputs(raw, fail):
    if raw is None:
        return [InputSpec(DEFAULT_INPUT["node"], None)]
    if is_node_id(raw) or isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise fail("'inputs' must be a non-empty list of node ids or {'node': ..., 'shape': ...}",
                   "inputs")
    specs = []
    seen = set()
    for i, item in enumerate(raw):
        if is_node_id(item):
            item = {"node": item}
        if not isinstance(item, dict):
            raise fail(f"an input is a node id or a dict, got {item!r}", "inputs", i)
        unknown = sorted(set(item) - set(_INPUT_KEYS))
        if unknown:
            raise fail(f"unknown input key(s) {unknown}; valid: {list(_INPUT_KEYS)}", "inputs", i)
        node = item.get("node")
        if not is_node_id(node):
            raise fail(f"input node must be an int or a string, got {node!r}", "inputs", i)
        if node in seen:
            raise fail(f"input node {node!r} is listed twice", "inputs", i)
        seen.add(node)
        shape = item.get("shape")
        if shape is not None and not _is_shape(shape):
            raise fail(f"input shape must be a list of positive ints or None (batch excluded), "
                       f"got {shape!r}", "inputs", i)
        dtype = item.get("dtype", "float32")
        if not isinstance(dtype, str):
            raise fail(f"input dtype must be a string such as 'float32', got {dtype!r}",
                       "inputs", i)
        in_name = item.get("name")
        if in_name is not None and not isinstance(in_name, str):
            raise fail(f"input name must be a string, got {in_name!r}", "inputs", i)
        specs.append(InputSpec(node, None if shape is None else tuple(shape), dtype, in_name))
    return specs


def _is_shape(shape):
    return isinstance(shape, (list, tuple)) and all(
        s is None or (isinstance(s, int) and not isinstance(s, bool) and s > 0) for s in shape)


def _companion(d, family, suffix, n, default, fail):
    """The ``_sub``/``_par``/``_share`` list of a family, broadcast and length-checked."""
    key = family + suffix
    if key not in d:
        return [default] * n
    value = d[key]
    if suffix == "_sub" and isinstance(value, (str, dict)):
        return [value] * n
    if suffix == "_par" and isinstance(value, dict):
        return [value] * n
    if not isinstance(value, (list, tuple)):
        raise fail(f"'{key}' must be a list with one entry per link, got {type(value).__name__}",
                   key)
    if len(value) != n:
        raise fail(f"'{key}' has {len(value)} entries but '{family}' has {n} links; "
                   "give one entry per link", key)
    return list(value)


def _family_steps(d, family, path, fail):
    links = d[family]
    n = len(links)
    default_sub = FAMILY_DEFAULTS.get(family)
    if f"{family}_sub" not in d and default_sub is None:
        raise fail(f"family '{family}' has no '{family}_sub' list and no default layer; "
                   f"name a layer or block for each link", family)
    subs = _companion(d, family, "_sub", n, default_sub, fail)
    pars = _companion(d, family, "_par", n, {}, fail)
    shares = _companion(d, family, "_share", n, None, fail)

    steps = []
    for i, link in enumerate(links):
        if not isinstance(link, (list, tuple)):
            raise fail(f"a link is a tuple (inputs..., output), got {link!r}", family, i)
        link = tuple(link)
        if len(link) < 2:
            raise fail("a link needs at least one input node and an output node", family, i, link)
        *ins, out = link
        for node in ins:
            if not is_node_id(node):
                raise fail(f"input {node!r} is not a node id (an int or a string)", family, i, link)
        outs = tuple(out) if isinstance(out, (list, tuple)) else (out,)
        if not outs or not all(is_node_id(o) for o in outs):
            raise fail(f"output {out!r} is not a node id or a list of node ids", family, i, link)
        if len(set(outs)) != len(outs):
            raise fail(f"output list {list(outs)} names a node twice", family, i, link)
        link = tuple(ins) + ((tuple(outs),) if isinstance(out, (list, tuple)) else (out,))

        par = pars[i]
        if par is None:
            par = {}
        if not isinstance(par, dict) or not all(isinstance(k, str) for k in par):
            raise fail(f"'{family}_par' entry must be a dict of keyword arguments, got {par!r}",
                       family, i, link)
        share = shares[i]
        if share is not None and not isinstance(share, str):
            raise fail(f"'{family}_share' entry must be a string label or None, got {share!r}",
                       family, i, link)

        sub = subs[i]
        step_kw = dict(family=family, index=i, link=link, inputs=tuple(ins), outputs=outs,
                       sub=sub, par=dict(par), share=share)
        if isinstance(sub, dict):
            entry = registry.Entry(sub.get("name", "block"), "dict", sub)
        elif isinstance(sub, str):
            entry = registry.resolve(sub, family, i, link, path)
        else:
            raise fail(f"'{family}_sub' entry must be a layer/block name or a link dictionary, "
                       f"got {sub!r}", family, i, link)
        step = Step(entry=entry, **step_kw)
        _check_arity(step, path)
        steps.append(step)
    return steps


def _check_arity(step, path):
    entry = step.entry
    n_in, n_out = len(step.inputs), len(step.outputs)
    if entry.kind == "layer":
        lo, hi = registry.layer_arity(entry)
        if n_out != 1:
            raise step.error(f"layer {entry.name} produces one node, not {n_out}", path)
    elif entry.kind == "block":
        lo, hi = registry.block_arity(entry.target)
        allowed = registry.block_keywords(entry.target)
        if allowed is not None:
            unknown = sorted(set(step.par) - set(allowed))
            if unknown:
                raise step.error(f"block {entry.name} has no parameter(s) {unknown}; "
                                 f"valid: {allowed}", path)
    else:
        if entry.kind == "model":
            try:
                nested = entry.target(**step.par)
            except VisionfwError as exc:
                raise step.error(str(exc), path) from None
        else:
            nested = entry.target
            if step.par:
                raise step.error("a dictionary block takes no parameters; put them in the "
                                 "nested dictionary's own '_par' lists", path)
        label = f"{step.label} {nested.get('name', entry.name) if isinstance(nested, dict) else ''}"
        try:
            step.plan = validate(nested, path + (label.strip(),))
        except LinkError as exc:
            raise exc from None
        lo = hi = len(step.plan.inputs)
        if n_out != len(step.plan.outputs):
            raise step.error(f"block {entry.name} produces {len(step.plan.outputs)} node(s) but "
                             f"the link names {n_out}", path)
    if n_in < lo or (hi is not None and n_in > hi):
        want = str(lo) if hi == lo else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
        raise step.error(f"{entry.name} takes {want} input(s), the link gives {n_in}", path)


def _topological(steps, producer, path):
    """Order links so each comes after the links that make its inputs (declaration order on ties)."""
    for order, step in enumerate(steps):
        step.order = order
    waiting = {}
    missing = {}
    ready = []
    for step in steps:
        deps = {producer[n] for n in step.inputs if producer[n] is not None}
        missing[step.order] = len(deps)
        for dep in deps:
            waiting.setdefault(dep.order, []).append(step)
        if not deps:
            heapq.heappush(ready, step.order)
    ordered = []
    while ready:
        step = steps[heapq.heappop(ready)]
        ordered.append(step)
        for nxt in waiting.get(step.order, []):
            missing[nxt.order] -= 1
            if missing[nxt.order] == 0:
                heapq.heappush(ready, nxt.order)
    if len(ordered) < len(steps):
        done = {s.order for s in ordered}
        stuck = [s for s in steps if s.order not in done]
        raise _cycle_error(stuck, producer, path)
    return ordered


def _cycle_error(stuck, producer, path):
    stuck_set = {s.order for s in stuck}
    step = stuck[0]
    trail = []
    seen = {}
    while step.order not in seen:
        seen[step.order] = len(trail)
        trail.append(step)
        step = next(producer[n] for n in step.inputs
                    if producer[n] is not None and producer[n].order in stuck_set)
    cycle = trail[seen[step.order]:]
    nodes = " -> ".join(repr(s.outputs[0]) for s in reversed(cycle))
    links = ", ".join(s.label for s in reversed(cycle))
    first = cycle[-1]
    return first.error(f"the links form a cycle through nodes {nodes} -> {cycle[-1].outputs[0]!r} "
                       f"({links}); a node cannot depend on itself", path)


def _outputs(raw, producer, used, input_nodes, ordered, fail, path):
    for node in input_nodes:
        if node not in used and (raw is None or node not in _as_list(raw)):
            raise fail(f"input node {node!r} is never used", "inputs")
    made = [(node, step) for step in ordered for node in step.outputs]
    if raw is None:
        sinks = [(node, step) for node, step in made if node not in used]
        if len(sinks) > 1:
            raise _candidates_error(sinks, producer, path)
        return [sinks[0][0]], False
    outputs = _as_list(raw)
    if not outputs:
        raise fail("'outputs' must name at least one node", "outputs")
    for i, node in enumerate(outputs):
        if not is_node_id(node):
            raise fail(f"output {node!r} is not a node id", "outputs", i)
        if node not in producer:
            raise fail(f"output node {node!r} is never produced", "outputs", i)
    if len(set(outputs)) != len(outputs):
        raise fail(f"'outputs' lists a node twice: {outputs}", "outputs")
    for node, step in made:
        if node not in used and node not in outputs:
            raise step.error(f"node {node!r} is produced but never used and is not an output; "
                             "use it or add it to 'outputs'", path)
    return outputs, True


def _candidates_error(sinks, producer, path):
    """Without 'outputs', the output is the one node nothing uses; here there are several.
    The one most links lead to is taken for the intended output (the later one on a tie) and
    the error is reported at the link of a node that looks forgotten."""
    upstream = {node: _links_upstream(step, producer) for node, step in sinks}
    output = sinks[max(range(len(sinks)), key=lambda i: (upstream[sinks[i][0]], i))][0]
    node, step = next((n, s) for n, s in sinks if n != output)
    names = [repr(n) for n, _ in sinks]
    count = "two" if len(sinks) == 2 else str(len(sinks))
    listed = f"{', '.join(names[:-1])} and {names[-1]}"
    return step.error(
        f"node {node!r} is produced but never used, so the model has {count} candidate "
        f"outputs: {listed}. Node {output!r} looks like the output ({upstream[output]} links "
        f"lead to it, {upstream[node]} to node {node!r}): use node {node!r} in a link or drop "
        f"this link, or name the output(s), e.g. 'outputs': [{output!r}]", path)


def _links_upstream(step, producer):
    """How many links a link depends on, itself included."""
    seen, todo = set(), [step]
    while todo:
        s = todo.pop()
        if s.order in seen:
            continue
        seen.add(s.order)
        todo.extend(producer[n] for n in s.inputs if producer[n] is not None)
    return len(seen)


def _as_list(raw):
    if isinstance(raw, (list, tuple)):
        return list(raw)
    return [raw]
