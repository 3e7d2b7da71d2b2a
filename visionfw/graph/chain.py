"""Write a link dictionary in forward order, the way a paper's figure reads.

:class:`Links` hands out node ids in the order links are added and appends each link to its
family, so a model definition says *what follows what* instead of computing node numbers::

    g = Links("SRResNet", meta={"scale": 4})
    x = g.input()                                   # node 0
    head = g("aactv", g("convo", x, par=conv9), sub="PReLU", par=prelu)
    y = head
    for _ in range(B):
        y = g("block", y, sub="gen_residual_block")
    y = g("merge", head, g("convo", y, par=conv3))  # the long skip
    d = g.dict()

The result is the ordinary dictionary format -- the same families, links, ``_sub`` and
``_par`` lists, hence the same layer names (``convo_0``, ``block_3``) -- so it prints, saves,
converts and edits like a hand-written one. Integer node ids count up from the first input;
``out=`` names a node instead.
"""
from visionfw.errors import LinkError
from visionfw.graph.schema import FAMILY_DEFAULTS


class Links:
    """A link dictionary under construction.

    Args:
        name: the dictionary's ``name``.
        meta: its ``meta`` dict.
    """

    def __init__(self, name, meta=None):
        self.name = name
        self.meta = dict(meta or {})
        self._inputs = []
        self._families = {}          # family -> {"links": [], "sub": [], "par": [], "share": []}
        self._next = 0

    def input(self, node=None, shape=None, dtype=None):
        """Declare an input (node ``node``, or the next integer id); returns its node."""
        node = self._take(node)
        spec = {"node": node}
        if shape is not None:
            spec["shape"] = list(shape)
        if dtype is not None:
            spec["dtype"] = dtype
        self._inputs.append(spec)
        return node

    def __call__(self, family, *inputs, sub=None, par=None, share=None, out=None):
        """Append the link ``(*inputs, out)`` to ``family``; returns the node it produces
        (``out``, else the next integer id)."""
        out = self._take(out)
        f = self._families.setdefault(family, {"links": [], "sub": [], "par": [], "share": []})
        f["links"].append((*inputs, out))
        f["sub"].append(sub)
        f["par"].append(dict(par) if par else {})
        f["share"].append(share)
        return out

    def _take(self, node):
        if node is None:
            node = self._next
        if isinstance(node, int) and not isinstance(node, bool):
            self._next = max(self._next, node + 1)
        return node

    def dict(self):
        """The link dictionary. ``_sub`` is written when some link names one (``None`` keeps a
        family's default); ``_par`` when some link has parameters; ``_share`` when used."""
        d = {"name": self.name}
        if self.meta:
            d["meta"] = dict(self.meta)
        if self._inputs and self._inputs != [{"node": 0}]:
            d["inputs"] = [dict(i) for i in self._inputs]
        for family, f in self._families.items():
            d[family] = list(f["links"])
            if any(s is not None for s in f["sub"]):
                subs = [FAMILY_DEFAULTS.get(family) if s is None else s for s in f["sub"]]
                if None in subs:
                    raise LinkError(f"family {family!r} has no default layer: give sub= for "
                                    "every link of it", family)
                d[f"{family}_sub"] = subs
            if any(f["par"]):
                d[f"{family}_par"] = [dict(p) for p in f["par"]]
            if any(s is not None for s in f["share"]):
                d[f"{family}_share"] = list(f["share"])
        return d
