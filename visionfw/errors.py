"""The framework's error types. Every user-facing failure is one of these, with a one-line message."""


class VisionfwError(Exception):
    """Base class of every error visionfw reports to a user."""


class LinkError(VisionfwError, ValueError):
    """A link dictionary is malformed or cannot be built.

    The message names the family, the link's index in that family and the link's nodes, e.g.
    ``convo[2] (5 -> 6): unknown layer 'Conv2d'; did you mean 'Conv2D'?``.

    Args:
        message: what is wrong and how to fix it.
        family: the family key (``'convo'``), or a top-level key such as ``'inputs'``.
        index: position of the link in its family, when the error concerns one link.
        link: the link itself, a tuple of node ids.
        path: names of the enclosing blocks, for errors inside a nested dictionary.
    """

    def __init__(self, message, family=None, index=None, link=None, path=()):
        self.reason = message
        self.family = family
        self.index = index
        self.link = link
        self.path = tuple(path)
        super().__init__(self._format())

    def _format(self):
        where = ""
        if self.family is not None:
            where = str(self.family)
            if self.index is not None:
                where += f"[{self.index}]"
            if self.link is not None:
                where += f" ({describe_link(self.link)})"
        if self.path:
            where = " > ".join(self.path) + (" > " + where if where else "")
        return f"{where}: {self.reason}" if where else self.reason

    def nested(self, block_label):
        """The same error seen from the dictionary that holds this one as a block."""
        return LinkError(self.reason, self.family, self.index, self.link, (block_label,) + self.path)


class HyperparameterError(VisionfwError, ValueError):
    """An unknown model name, an unknown hyperparameter, or a value of the wrong type."""


class CheckpointError(VisionfwError, ValueError):
    """A weights file that is missing, not a visionfw checkpoint, or does not fit the model."""


class PluginError(VisionfwError):
    """A user plugin (``--plugin``, ``VISIONFW_PLUGINS``) that is missing or fails to import."""


def describe_link(link):
    """``(2, 7, 8)`` -> ``'2, 7 -> 8'``: inputs, then the node(s) produced."""
    try:
        *inputs, out = link
    except (TypeError, ValueError):
        return repr(link)
    return f"{', '.join(map(repr, inputs))} -> {out!r}"
