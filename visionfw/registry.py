"""One registry class for every kind of named thing: layers and blocks, models, recipes,
methods, degradation ops and protocols, torch name maps.

The rules are the same for all of them:

- a name registered twice is a one-line :class:`RegistryError`, unless it is the same object
  again (a module imported a second time);
- a name that is not there is a one-line error of the registry's own error class, with the
  nearest names (``did you mean 'Conv2D'?``) and, for short registries, the valid ones;
- a registry may have *loaders*: functions that register more names, run once, the first time
  a name is missed or the names are listed. That is how plugins load on demand without the
  registry importing them;
- every entry remembers the module whose code registered it (:meth:`Registry.origin`), so a
  checkpoint can name the user plugin that one of its layers or blocks came from.

This module imports nothing of visionfw but the errors module.
"""
import difflib
import sys

from visionfw.errors import VisionfwError

_loaders_running = 0      # what a loader registers is visionfw's own, whoever asked for it


class RegistryError(VisionfwError, ValueError):
    """A name registered twice, or an object that cannot be registered."""


def suggest(name, candidates):
    """``"; did you mean 'Conv2D'?"`` for a near miss (case-insensitive), else ``''``."""
    lowered = {}
    for c in candidates:
        lowered.setdefault(str(c).lower(), c)
    key = str(name).lower()
    close = [key] if key in lowered else difflib.get_close_matches(key, list(lowered), n=3,
                                                                   cutoff=0.75)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"


class Registry:
    """Named objects of one kind.

    Args:
        kind: what the objects are, for messages (``'model'``, ``'recipe'``).
        error: the exception class raised for an unknown name.
        fold_case: look names up case-insensitively (they are stored lower-case).
        list_valid: name every valid entry in the unknown-name message (short registries).
        hint: text appended to the unknown-name message (how to add one).
    """

    def __init__(self, kind, error=RegistryError, fold_case=False, list_valid=True, hint=""):
        self.kind = kind
        self.error = error
        self.fold_case = fold_case
        self.list_valid = list_valid
        self.hint = hint
        self._items = {}
        self._aliases = {}
        self._loaders = []
        self._origins = {}

    # ---- registering

    def key(self, name):
        return str(name).lower() if self.fold_case else str(name)

    def register(self, name, obj, aliases=()):
        """Register ``obj`` under ``name`` (and ``aliases``); returns ``obj``."""
        key = self.key(name)
        if not key:
            raise RegistryError(f"a {self.kind} needs a non-empty name")
        for k in (key, *map(self.key, aliases)):
            existing = self._items.get(k, self._items.get(self._aliases.get(k)))
            if existing is not None and not _same(existing, obj):
                raise RegistryError(f"{self.kind} {k!r} is already registered "
                                    f"({_describe(existing)}); choose another name")
        self._items[key] = obj
        self._origins[key] = _registering_module()
        for alias in aliases:
            self._aliases[self.key(alias)] = key
        return obj

    def replace(self, name, obj):
        """Put ``obj`` in the place of what ``name`` names now (or register it); returns ``obj``.
        For a stand-in that must answer to an existing name, such as a faster subclass of a
        library class; aliases that pointed at ``name`` follow it."""
        key = self._target_key(name)
        if not key:
            raise RegistryError(f"a {self.kind} needs a non-empty name")
        self._items[key] = obj
        self._origins[key] = _registering_module()
        return obj

    def decorator(self, name=None, aliases=()):
        """``@registry.decorator()`` or ``@registry.decorator('name')``."""

        def wrap(obj):
            self.register(name or obj.__name__, obj, aliases)
            return obj

        return wrap

    def class_decorator(self, name, aliases=()):
        """``@registry.class_decorator('name')``: register a class and set its ``name``."""

        def wrap(cls):
            cls.name = self.key(name)
            self.register(name, cls, aliases)
            return cls

        return wrap

    def add_loader(self, fn):
        """Run ``fn()`` (which registers names) the first time a name is missed or listed."""
        self._loaders.append(fn)
        return fn

    def load(self):
        """Run the loaders not run yet."""
        while self._loaders:
            self._run_next_loader()

    def _run_next_loader(self):
        global _loaders_running
        _loaders_running += 1
        try:
            self._loaders.pop(0)()
        finally:
            _loaders_running -= 1

    # ---- looking up

    def find(self, name):
        """The object registered as ``name``, or ``None``; on a miss the loaders not run yet
        run one at a time until the name turns up."""
        obj = self._lookup(name)
        while obj is None and self._loaders:
            self._run_next_loader()
            obj = self._lookup(name)
        return obj

    def registered(self, name):
        """Whether ``name`` is registered already (runs no loader)."""
        return self._lookup(name) is not None

    def _target_key(self, name):
        """The key ``name`` stands for: its own, or an alias's target."""
        key = self.key(name)
        return self._aliases.get(key, key)

    def _lookup(self, name):
        return self._items.get(self._target_key(name))

    def origin(self, name):
        """The module whose code registered ``name`` (a user plugin's, a script's
        ``'__main__'``), or ``None`` for visionfw's own entries and those a loader made."""
        return self._origins.get(self._target_key(name))

    def canonical(self, name):
        """The registered name ``name`` resolves to (an alias's target)."""
        if self.find(name) is None:
            self.get(name)
        return self._target_key(name)

    def get(self, name):
        """The object registered as ``name``; an unknown name raises ``self.error``."""
        obj = self.find(name)
        if obj is None:
            raise self.error(self.unknown_message(name))
        return obj

    def unknown_message(self, name):
        names = self.names()
        text = f"unknown {self.kind} {name!r}{suggest(name, names)}"
        if self.list_valid:
            text += f"; valid {self.kind}s: {', '.join(names) if names else 'none registered'}"
        return text + (f" {self.hint}" if self.hint else "")

    def __contains__(self, name):
        return self.find(name) is not None

    def names(self):
        self.load()
        return sorted(self._items)

    def items(self):
        self.load()
        return sorted(self._items.items())

    def __len__(self):
        self.load()
        return len(self._items)

    def __repr__(self):
        return f"Registry({self.kind!r}, {len(self._items)} entries)"


def _registering_module():
    """The module whose code is registering: the first caller outside visionfw (the module
    that holds the ``@register_...`` line). ``None`` while a loader runs, and for a visionfw
    module registering as it is imported (its caller is the import machinery)."""
    if _loaders_running:
        return None
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module != "visionfw" and not module.startswith("visionfw."):
            return None if module.startswith("importlib") else module
        frame = frame.f_back
    return None


def _same(a, b):
    """The same object, or the same definition imported again (a module loaded twice)."""
    if a is b:
        return True
    ta, tb = getattr(a, "target", a), getattr(b, "target", b)
    if ta is tb:
        return True
    qa = (getattr(ta, "__module__", None), getattr(ta, "__qualname__", None))
    qb = (getattr(tb, "__module__", None), getattr(tb, "__qualname__", None))
    return qa[1] is not None and qa == qb


def _describe(obj):
    target = getattr(obj, "target", obj)
    module = getattr(target, "__module__", None)
    qual = getattr(target, "__qualname__", None)
    return f"{module}.{qual}" if module and qual else type(obj).__name__
