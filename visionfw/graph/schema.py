"""The shape of a link dictionary, its canonical form and its JSON round trip.

A link dictionary maps *families* to lists of *links*. A link is a sequence of node ids
whose last element is the node it produces (or a list of nodes, for a block with several
outputs) and whose other elements are its inputs. Beside a family ``f`` may stand
``f_sub`` (the layer or block of each link), ``f_par`` (its keyword arguments) and
``f_share`` (labels of links that reuse one layer). The reserved keys are listed in
:data:`RESERVED`. See ``docs/model-dictionary.md``.
"""
import json
import os
import tempfile

from visionfw.errors import LinkError

RESERVED = ("name", "inputs", "outputs", "meta")
SUFFIXES = ("_sub", "_par", "_share")

# Families that may omit their ``_sub`` list, and the layer they then use.
FAMILY_DEFAULTS = {
    "convo": "Conv2D",
    "aactv": "ReLU",
    "btnrm": "BatchNormalization",
    "merge": "Add",
    "dense": "Dense",
}

DEFAULT_INPUT = {"node": 0, "shape": [None, None, 3]}


def is_node_id(value):
    """Node ids are ints or non-empty strings (bools are not ints here)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value != "")


def split_key(key):
    """``'convo_par'`` -> ``('convo', '_par')``; ``'convo'`` -> ``('convo', None)``."""
    for suffix in SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], suffix
    return key, None


def canonical(value):
    """A copy with tuples turned into lists, so that a dictionary compares equal to its JSON twin."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def _check_json_value(value, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_json_value(v, where)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise LinkError(f"key {k!r} is not a string, so it cannot be written to JSON", *where)
            _check_json_value(v, where)
        return
    raise LinkError(
        f"value {value!r} of type {type(value).__name__} cannot be written to JSON; "
        "use plain numbers, strings, lists and dicts (e.g. an initializer as "
        "{'class_name': 'Constant', 'config': {'value': 0.25}})",
        *where,
    )


def dict_to_json(d, indent=1):
    """Serialise a link dictionary to a JSON string (tuples become lists)."""
    if not isinstance(d, dict):
        raise LinkError(f"a link dictionary must be a dict, got {type(d).__name__}")
    for key, value in d.items():
        if not isinstance(key, str):
            raise LinkError(f"top-level key {key!r} is not a string")
        family, suffix = split_key(key)
        if suffix is None or not isinstance(value, (list, tuple)):
            _check_json_value(value, (key,))
        else:
            for i, v in enumerate(value):
                _check_json_value(v, (family, i))
    return json.dumps(canonical(d), indent=indent)


def dict_from_json(text):
    """Parse a JSON string written by :func:`dict_to_json`."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LinkError(f"not valid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise LinkError(f"the JSON holds a {type(d).__name__}, not a link dictionary")
    return d


def save_dict(d, path):
    """Write a dictionary as JSON, atomically (temporary file, then rename)."""
    text = dict_to_json(d)
    atomic_write_text(path, text + "\n")


def load_dict(path):
    """Read a dictionary from a JSON file, with a one-line error for a missing or bad file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise LinkError(f"cannot read model dictionary {path}: {exc.strerror}") from None
    try:
        return dict_from_json(text)
    except LinkError as exc:
        raise LinkError(f"{path}: {exc}") from None


def atomic_write_text(path, text):
    """Write text to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        os.chmod(tmp, default_file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def default_file_mode():
    """The mode a plainly created file gets (0666 less the umask); temporary files start 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
