"""Read the tensors of a PyTorch checkpoint without torch and without running the pickle.

A ``torch.save`` file is a pickle whose tensors point at raw storages kept beside it. Two
layouts exist:

* **zip** (torch >= 1.6): ``<prefix>/data.pkl`` holds the pickle, ``<prefix>/data/<key>`` the
  raw bytes of each storage, and an optional ``<prefix>/byteorder`` record says ``little`` or
  ``big``. ``<prefix>`` is any single folder name (``archive`` in current torch).
* **legacy stream** (torch < 1.6): five pickles back to back -- the magic number, the protocol
  version (1001), a sys-info dict (``little_endian``), the object itself, and the list of storage
  keys -- followed by each storage in that key order as an int64 element count and its bytes.

The even older tar layout (torch < 0.1.10) and TorchScript archives are refused.

Safety. The pickle is read by a ``pickle.Unpickler`` subclass whose ``find_class`` never imports
a module and never returns a real callable from one: the torch tensor constructors map to this
module's own functions, storage types and dtypes to markers, ``collections.OrderedDict`` to a
dict, a few harmless builtins to themselves, known code-running names (``os``, ``eval``, ...)
to a refusal, and every other global to a :class:`PickledObject` class that only records the
arguments and state it is given. ``persistent_load`` handles the storage and module records.
Before it is unpickled, every pickle is walked opcode by opcode (without executing anything) to
reject extension-registry opcodes, memo indexes and lengths larger than the data, so no declared
size makes the unpickler allocate more than the file holds. Tensors are checked against their
storage bounds before a strided copy, and the total bytes produced are capped relative to the
file size. Anything that cannot be interpreted raises :class:`TorchReadError`.
"""
import io
import os
import pickle
import pickletools
import zipfile

import numpy as np

try:
    from visionfw.errors import VisionfwError as _ErrorBase
except ImportError:  # the package's error module is optional for this reader
    _ErrorBase = Exception

__all__ = ["TorchReadError", "PickledObject", "read_torch_state", "read_torch_object"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# Containers nested deeper than this are refused, so a caller can walk a result recursively.
MAX_DEPTH = 200
# Upper bound on the objects the flattening walk visits (shared sub-objects count each time).
MAX_VISITS = 2_000_000
# Arrays produced may total at most this many times the file size, plus a fixed allowance.
OUTPUT_RATIO = 4
OUTPUT_ALLOWANCE = 64 << 20
# A deflated zip member may not claim to expand by more than this (deflate's limit is ~1032).
MAX_COMPRESSION_RATIO = 1100
MAX_NDIM = 32
MAX_DIM = 1 << 62

# Dictionary keys under which a checkpoint commonly nests its state dict, in order of preference.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "params", "params_ema", "net",
               "network", "generator")


class TorchReadError(_ErrorBase, ValueError):
    """A file that is not a PyTorch checkpoint this reader can interpret safely.

    The message is one line: the file name, then what is wrong (naming the pickle global or the
    storage key where one is involved).
    """


class _Problem(Exception):
    """Internal: what went wrong, before the file name is added."""


def _short(value, limit=80):
    """A one-line, bounded rendering of text taken from a file or an exception."""
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(value):
    """A short name for an object the pickle produced, for error messages."""
    if isinstance(value, type) and issubclass(value, PickledObject):
        return f"global {_short(value.global_name)}"
    if isinstance(value, (_Marker, _Function, PickledObject)):
        return repr(value)
    if type(value) is int and value.bit_length() > 64:
        return "a very large int"
    return _short(repr(value)) if type(value) in (str, bytes, int, bool) else type(value).__name__


# ----------------------------------------------------------------------------------------------
# dtypes

# element kind -> (numpy dtype of the raw data, bytes per element)
_KINDS = {
    "float64": ("f8", 8), "float32": ("f4", 4), "float16": ("f2", 2), "bfloat16": ("u2", 2),
    "int64": ("i8", 8), "int32": ("i4", 4), "int16": ("i2", 2), "int8": ("i1", 1),
    "uint8": ("u1", 1), "bool": ("u1", 1), "complex64": ("c8", 8), "complex128": ("c16", 16),
}

_STORAGE_KINDS = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}

_DTYPE_KINDS = {
    "float64": "float64", "double": "float64", "float32": "float32", "float": "float32",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "complex64": "complex64",
    "cfloat": "complex64", "complex128": "complex128", "cdouble": "complex128",
}


class _Marker:
    """A storage type or dtype named by the pickle; inert, and BUILD cannot change it."""

    __slots__ = ("label", "kind")

    def __init__(self, label, kind):
        self.label = label
        self.kind = kind

    def __setstate__(self, state):
        raise _Problem(f"the pickle tries to set the state of {self.label}")

    def __repr__(self):
        return self.label


_STORAGE_MARKERS = {name: _Marker(f"torch.{name}", kind) for name, kind in _STORAGE_KINDS.items()}
_DTYPE_MARKERS = {name: _Marker(f"torch.{name}", kind) for name, kind in _DTYPE_KINDS.items()}


# ----------------------------------------------------------------------------------------------
# objects the unpickler produces


class PickledObject:
    """Stand-in for an instance of a class the reader will not import.

    Calling the class (pickle REDUCE/OBJ/INST) or ``__new__`` (NEWOBJ) only records the
    arguments; BUILD only records the state; APPEND and SETITEM only record the items. Nothing
    the pickle names is ever run. Each pickled global gets its own subclass, whose
    ``global_name`` is the dotted name, e.g. ``'torch.nn.modules.conv.Conv2d'``.

    Attributes:
        args: positional arguments given by the pickle.
        kwargs: keyword arguments (NEWOBJ_EX only).
        state: the BUILD state, often the instance ``__dict__`` (``None`` if none).
        listitems: items appended by the pickle.
        dictitems: items set by the pickle.
    """

    __slots__ = ("args", "kwargs", "state", "listitems", "dictitems")
    global_name = "?"

    def __new__(cls, *args, **kwargs):
        for arg in args:
            inner = arg if isinstance(arg, (tuple, list)) else (arg,)
            if any(type(item) is _Storage for item in inner):
                raise _Problem(f"global {_short(cls.global_name)} is given a raw tensor storage; "
                               "cannot interpret it without running it")
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state = None
        self.listitems = []
        self.dictitems = {}
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def append(self, item):
        self.listitems.append(item)

    def extend(self, items):
        for item in items:
            self.listitems.append(item)

    def __setitem__(self, key, value):
        self.dictitems[key] = value

    def __repr__(self):
        return f"<pickled {_short(self.global_name)}>"


class _Storage:
    """A storage declared by a persistent id; its bytes arrive after unpickling."""

    __slots__ = ("key", "kind", "numel", "raw", "root", "start", "arrays")

    def __init__(self, key, kind, numel, root=None, start=0):
        self.key = key
        self.kind = kind
        self.numel = numel
        self.raw = None
        self.root = root
        self.start = start
        self.arrays = {}

    @property
    def nbytes(self):
        return self.numel * _KINDS[self.kind][1]

    def data(self):
        if self.root is None:
            return self.raw
        size = _KINDS[self.kind][1]
        return memoryview(self.root.data())[self.start * size:(self.start + self.numel) * size]

    def __setstate__(self, state):
        raise _Problem(f"the pickle tries to set the state of storage {_short(self.key)!r}")


class _TensorRef:
    """A tensor as (storage, offset, size, stride, element kind); materialised after loading."""

    __slots__ = ("storage", "offset", "size", "stride", "kind")

    def __init__(self, storage, offset, size, stride, kind):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride
        self.kind = kind

    def __setstate__(self, state):
        raise _Problem("the pickle tries to set the state of a tensor")


class _ParamBox:
    """``torch.nn.Parameter(tensor)`` from old pickles, which BUILD (requires_grad, ...) next."""

    __slots__ = ("data", "state")

    def __init__(self, data):
        self.data = data
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _OrderedDict(dict):
    """``collections.OrderedDict`` as pickled by torch: a dict whose BUILD state (torch's
    ``_metadata`` version table) is accepted and dropped. Becomes a plain dict in results."""

    __slots__ = ()

    def __setstate__(self, state):
        pass


class _Function:
    """One of the reader's own functions standing in for a pickled global."""

    __slots__ = ("label", "fn")

    def __init__(self, label, fn):
        self.label = label
        self.fn = fn

    def __call__(self, *args):
        return self.fn(self.label, *args)

    def __setstate__(self, state):
        raise _Problem(f"the pickle tries to set the state of {self.label}")

    def __repr__(self):
        return self.label


def _check_int(label, what, value, low=0, high=MAX_DIM):
    if type(value) is not int or not low <= value <= high:
        raise _Problem(f"{label}: {what} must be an int in [{low}, {high}], got {_describe(value)}")
    return value


def _check_shape(label, what, value):
    if type(value) not in (tuple, list) or len(value) > MAX_NDIM:
        raise _Problem(f"{label}: {what} must be a tuple of at most {MAX_NDIM} ints")
    return tuple(_check_int(label, what, v) for v in value)


def _make_tensor(label, storage, offset, size, stride, kind=None):
    if type(storage) is not _Storage:
        raise _Problem(f"{label}: first argument is not a storage record")
    offset = _check_int(label, "storage offset", offset)
    size = _check_shape(label, "size", size)
    stride = _check_shape(label, "stride", stride)
    if len(size) != len(stride):
        raise _Problem(f"{label}: size {size} and stride {stride} differ in length")
    return _TensorRef(storage, offset, size, stride, kind or storage.kind)


def _arity(label, args, low, high):
    if not low <= len(args) <= high:
        expected = str(low) if low == high else f"{low} to {high}"
        raise _Problem(f"{label} expects {expected} arguments, got {len(args)}")


def _rebuild_tensor(label, *args):
    # (storage, storage_offset, size, stride)
    _arity(label, args, 4, 4)
    return _make_tensor(label, *args)


def _rebuild_tensor_v2(label, *args):
    # (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    _arity(label, args, 6, 7)
    return _make_tensor(label, *args[:4])


def _rebuild_tensor_v3(label, *args):
    # (storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype[, metadata])
    _arity(label, args, 7, 8)
    dtype = args[6]
    if type(dtype) is not _Marker or dtype not in _DTYPE_MARKERS.values():
        raise _Problem(f"{label}: unsupported dtype {_describe(dtype)}")
    return _make_tensor(label, *args[:4], kind=dtype.kind)


def _rebuild_parameter(label, *args):
    # (data, requires_grad, backward_hooks[, state])
    _arity(label, args, 3, 4)
    if type(args[0]) is not _TensorRef:
        raise _Problem(f"{label}: data is not a tensor")
    return args[0]


def _rebuild_from_type(label, *args):
    # (func, new_type, args, state): a tensor subclass rebuilt by func(*args)
    _arity(label, args, 4, 4)
    func, _, func_args, _ = args
    if type(func) is not _Function or func.fn not in _TENSOR_BUILDERS \
            or type(func_args) is not tuple:
        raise _Problem(f"{label}: the tensor is not rebuilt by a known torch function")
    return func(*func_args)


def _parameter(label, *args):
    # torch.nn.Parameter(data[, requires_grad]) as pickled by torch < 1.0, followed by BUILD
    _arity(label, args, 1, 2)
    if type(args[0]) is not _TensorRef:
        raise _Problem(f"{label}: data is not a tensor")
    return _ParamBox(args[0])


def _torch_size(label, *args):
    _arity(label, args, 0, 1)
    return _check_shape(label, "size", args[0] if args else ())


def _codecs_encode(label, *args):
    # how protocol-2 pickles written by Python 3 store bytes: _codecs.encode(text, 'latin1')
    if (len(args) == 2 and type(args[0]) is str and args[1] in ("latin1", "latin-1")):
        try:
            return args[0].encode("latin-1")
        except UnicodeEncodeError:
            pass
    raise _Problem(f"{label}: only (str, 'latin1') arguments are accepted")


_TENSOR_BUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)

_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type"): _rebuild_from_type,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch.nn.parameter", "Parameter"): _parameter,
    ("torch", "Size"): _torch_size,
    ("_codecs", "encode"): _codecs_encode,
}
_FUNCTION_OBJECTS = {key: _Function(".".join(key), fn) for key, fn in _FUNCTIONS.items()}

# Harmless data constructors; every other builtin is refused.
_SAFE_BUILTINS = {"set": set, "frozenset": frozenset, "slice": slice}

# Top-level modules whose globals exist to run code, touch files or processes: refused outright
# (they would be inert anyway; refusing says clearly that the file is hostile or not a checkpoint).
_REFUSED_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "shutil", "socket",
    "importlib", "imp", "zipimport", "runpy", "pty", "ctypes", "pickle", "_pickle", "marshal",
    "code", "codeop", "webbrowser", "commands", "popen2", "multiprocessing", "asyncio",
    "signal", "io", "_io", "tempfile", "pathlib", "glob", "pdb", "bdb", "timeit", "platform",
    "builtins", "__builtin__",
})


# ----------------------------------------------------------------------------------------------
# unpickling


class _Context:
    """What one read learns: declared storages, byte order, pickled classes, output budget."""

    def __init__(self, file_size):
        self.file_size = file_size
        self.storages = {}
        self.views = {}
        self.byteorder = "little"
        self.legacy = False
        self.classes = {}
        self.budget = OUTPUT_RATIO * file_size + OUTPUT_ALLOWANCE

    def spend(self, nbytes, what):
        if nbytes > self.budget:
            raise _Problem(f"{what} would need {nbytes} bytes, more than this file can justify")
        self.budget -= nbytes

    def find_global(self, module, name):
        if type(module) is not str or type(name) is not str:
            raise _Problem("a pickle global has a non-text name")
        label = _short(f"{module}.{name}")
        if module == "collections" and name == "OrderedDict":
            return _OrderedDict
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if (module, name) in _FUNCTION_OBJECTS:
            return _FUNCTION_OBJECTS[(module, name)]
        if module.split(".")[0] in _REFUSED_MODULES:
            raise _Problem(f"refusing global {label}: it can run code or touch the system")
        if module in ("torch", "torch.cuda") and name.endswith("Storage"):
            if name not in _STORAGE_MARKERS:
                raise _Problem(f"unsupported storage type {label}")
            return _STORAGE_MARKERS[name]
        if module == "torch" and name in _DTYPE_MARKERS:
            return _DTYPE_MARKERS[name]
        if (module.split(".")[0] == "torch" and name.startswith("_rebuild")) or \
                (module == "torch.storage" and name == "_load_from_bytes"):
            raise _Problem(f"unsupported tensor constructor {label}")
        key = (module, name)
        if key not in self.classes:
            self.classes[key] = type("PickledObject", (PickledObject,),
                                     {"__slots__": (), "global_name": f"{module}.{name}"})
        return self.classes[key]

    def persistent(self, pid):
        if type(pid) is not tuple or not pid:
            raise _Problem("unexpected persistent id (not a tuple)")
        tag = pid[0].decode("ascii", "replace") if type(pid[0]) is bytes else pid[0]
        if tag == "storage":
            return self._storage_record(pid[1:])
        if tag == "module" and self.legacy:
            # ('module', class, source file, source text): torch checks the source, then
            # hands back the class; here the class is already an inert PickledObject subclass.
            return pid[1] if len(pid) > 1 else None
        raise _Problem(f"unexpected persistent id type {_describe(tag)}")

    def _storage_record(self, data):
        expected = 5 if self.legacy else 4
        if len(data) != expected:
            raise _Problem(f"a storage record has {len(data)} fields, expected {expected}")
        marker, key, _location, numel = data[:4]
        if type(marker) is not _Marker or marker not in _STORAGE_MARKERS.values():
            raise _Problem(f"storage record names {_describe(marker)}, not a torch storage type")
        if type(key) is bytes:
            key = key.decode("ascii", "replace")
        if type(key) is not str:
            raise _Problem("a storage key is not text")
        label = f"storage {_short(key)!r}"
        numel = _check_int(label, "element count", numel)
        storage = self.storages.get(key)
        if storage is None:
            if numel * _KINDS[marker.kind][1] > MAX_COMPRESSION_RATIO * self.file_size:
                raise _Problem(f"{label} declares {numel} elements, more than the file can hold")
            storage = self.storages[key] = _Storage(key, marker.kind, numel)
        elif storage.kind != marker.kind or storage.numel != numel:
            raise _Problem(f"{label} is declared twice with different type or size")
        view = data[4] if self.legacy else None
        if view is None:
            return storage
        if type(view) is not tuple or len(view) != 3:
            raise _Problem(f"{label}: malformed view record")
        view_key, start, size = view
        if type(view_key) is bytes:
            view_key = view_key.decode("ascii", "replace")
        start = _check_int(label, "view offset", start)
        size = _check_int(label, "view size", size)
        if start + size > numel:
            raise _Problem(f"{label}: view [{start}, {start + size}) is outside its "
                           f"{numel} elements")
        known = self.views.get(view_key)
        if known is None:
            known = self.views[view_key] = _Storage(view_key, marker.kind, size, storage, start)
        elif known.root is not storage or known.start != start or known.numel != size:
            raise _Problem(f"{label}: view {_describe(view_key)} is declared inconsistently")
        return known


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, context, persistent):
        super().__init__(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
        self._context = context
        self._allow_persistent = persistent

    def find_class(self, module, name):
        return self._context.find_global(module, name)

    def persistent_load(self, pid):
        if not self._allow_persistent:
            raise _Problem("unexpected persistent id")
        return self._context.persistent(pid)


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_EXTENSIONS = frozenset({"EXT1", "EXT2", "EXT4"})


def _pickle_end(data, start, what):
    """Offset just past the STOP of the pickle at ``start``, found without executing it.

    Also refuses what the unpickler would let a file abuse: extension-registry opcodes, memo
    indexes (which size the memo table) and frames larger than the pickle itself. Every
    length-prefixed argument is read in full here, so a declared length past the end fails.
    """
    stream = io.BytesIO(data)
    stream.seek(start)
    limit = len(data) - start
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            name = opcode.name
            if name in _MEMO_PUTS and arg > limit:
                raise _Problem(f"{what}: memo index {arg} is larger than the pickle")
            if name in _EXTENSIONS:
                raise _Problem(f"{what}: extension-registry opcode {name} is refused")
            if name == "FRAME" and arg > limit:
                raise _Problem(f"{what}: frame of {arg} bytes is larger than the pickle")
            if name == "STOP":
                return stream.tell()
    except _Problem:
        raise
    except Exception as error:
        raise _Problem(f"{what} is not a valid pickle ({_short(error)})") from None
    raise _Problem(f"{what} ends before its STOP opcode")


def _unpickle(data, start, context, what, persistent=False):
    """(object, end offset) of the pickle at ``start``, through the restricted unpickler."""
    end = _pickle_end(data, start, what)
    try:
        value = _Unpickler(bytes(data[start:end]), context, persistent).load()
    except _Problem:
        raise
    except Exception as error:
        raise _Problem(f"cannot unpickle {what} "
                       f"({type(error).__name__}: {_short(error)})") from None
    return value, end


# ----------------------------------------------------------------------------------------------
# the two layouts


def _read_member(archive, info, archive_size, expected=None):
    name = _short(info.filename)
    if info.flag_bits & 0x1:
        raise _Problem(f"zip record {name} is encrypted")
    if info.compress_size > archive_size:
        raise _Problem(f"zip record {name} claims more bytes than the file holds")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise _Problem(f"zip record {name} has inconsistent sizes")
    elif info.file_size > MAX_COMPRESSION_RATIO * info.compress_size + 65536:
        raise _Problem(f"zip record {name} claims an implausible compression ratio")
    if expected is not None and info.file_size != expected:
        raise _Problem(f"zip record {name} holds {info.file_size} bytes, "
                       f"the pickle declares {expected}")
    try:
        return archive.read(info)
    except Exception as error:
        raise _Problem(f"zip record {name} is damaged ({type(error).__name__}: {_short(error)})") \
            from None


def _load_zip(data, context):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = {info.filename: info for info in archive.infolist()}
    except Exception as error:
        raise _Problem(f"not a readable zip archive ({_short(error)})") from None
    with archive:
        prefixes = sorted({name[:-len("data.pkl")] for name in infos
                           if name == "data.pkl" or
                           (name.endswith("/data.pkl") and name.count("/") == 1)})
        if any(name.endswith("constants.pkl") for name in infos):
            raise _Problem("this is a TorchScript archive (torch.jit.save), not a torch.save "
                           "checkpoint; it is not supported")
        if len(prefixes) != 1:
            raise _Problem("zip archive has no single <prefix>/data.pkl record; "
                           "not a torch.save checkpoint")
        prefix = prefixes[0]
        if prefix + "byteorder" in infos:
            order = _read_member(archive, infos[prefix + "byteorder"], len(data))
            if order not in (b"little", b"big"):
                raise _Problem(f"unknown byteorder record {_short(repr(order))}")
            context.byteorder = order.decode()
        pickled = _read_member(archive, infos[prefix + "data.pkl"], len(data))
        tree, _ = _unpickle(pickled, 0, context, "data.pkl", persistent=True)
        for key, storage in context.storages.items():
            info = infos.get(f"{prefix}data/{key}")
            if info is None:
                raise _Problem(f"storage {_short(key)!r} has no zip record data/{_short(key)}")
            storage.raw = _read_member(archive, info, len(data), expected=storage.nbytes)
    return tree


def _load_legacy(data, context):
    try:
        magic, pos = _unpickle(data, 0, context, "the first pickle")
    except _Problem as error:
        raise _Problem(f"neither a zip archive nor a legacy torch.save stream ({error})") from None
    if type(magic) is not int or magic != LEGACY_MAGIC:
        raise _Problem("wrong magic number: not a torch.save checkpoint")
    version, pos = _unpickle(data, pos, context, "the protocol version")
    if type(version) is not int or version != LEGACY_PROTOCOL:
        raise _Problem(f"unsupported legacy protocol version {_describe(version)}")
    info, pos = _unpickle(data, pos, context, "the sys-info pickle")
    if type(info) is not dict or type(info.get("little_endian", True)) is not bool:
        raise _Problem("malformed sys-info record")
    context.byteorder = "little" if info.get("little_endian", True) else "big"
    context.legacy = True
    tree, pos = _unpickle(data, pos, context, "the object pickle", persistent=True)
    context.legacy = False
    keys, pos = _unpickle(data, pos, context, "the storage-key list")
    if type(keys) is not list or any(type(key) is not str for key in keys):
        raise _Problem("the storage-key list is not a list of text keys")
    if len(set(keys)) != len(keys):
        raise _Problem("the storage-key list repeats a key")
    for key in keys:
        storage = context.storages.get(key)
        if storage is None:
            raise _Problem(f"storage {_short(key)!r} is listed but never declared by the pickle")
        if pos + 8 > len(data):
            raise _Problem(f"file ends before storage {_short(key)!r}")
        count = int.from_bytes(data[pos:pos + 8], context.byteorder, signed=True)
        if count != storage.numel:
            raise _Problem(f"storage {_short(key)!r} holds {count} elements, "
                           f"the pickle declares {storage.numel}")
        pos += 8
        if pos + storage.nbytes > len(data):
            raise _Problem(f"file ends inside storage {_short(key)!r}")
        storage.raw = memoryview(data)[pos:pos + storage.nbytes]
        pos += storage.nbytes
    missing = [key for key, storage in context.storages.items() if storage.raw is None]
    if missing:
        raise _Problem(f"storage {_short(missing[0])!r} is used but not in the storage-key list")
    return tree


# ----------------------------------------------------------------------------------------------
# from references to arrays


def _values(storage, kind, context):
    """The storage's bytes as a 1-D native array of ``kind`` (bfloat16 widened to float32)."""
    if kind in storage.arrays:
        return storage.arrays[kind]
    code, size = _KINDS[kind]
    raw = storage.data()
    order = "<" if context.byteorder == "little" else ">"
    values = np.frombuffer(raw, dtype=np.dtype(order + code), count=len(raw) // size)
    if kind == "bfloat16":
        context.spend(values.size * 4, f"storage {_short(storage.key)!r}")
        values = (values.astype(np.uint32) << 16).view(np.float32)
    elif kind == "bool":
        context.spend(values.size, f"storage {_short(storage.key)!r}")
        values = values != 0
    elif not values.dtype.isnative:
        context.spend(values.nbytes, f"storage {_short(storage.key)!r}")
        values = values.astype(values.dtype.newbyteorder("="))
    storage.arrays[kind] = values
    return values


def _tensor_array(ref, context):
    label = f"tensor on storage {_short(ref.storage.key)!r}"
    base = _values(ref.storage, ref.kind, context)
    count = 1
    for n in ref.size:
        count *= n
    if count == 0:
        if ref.offset > base.size:
            raise _Problem(f"{label}: offset {ref.offset} is past the storage end")
        return np.empty(ref.size, dtype=base.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= base.size:
        raise _Problem(f"{label}: size {ref.size}, stride {ref.stride} and offset {ref.offset} "
                       f"reach element {last}, past the storage's {base.size}")
    context.spend(count * base.itemsize, label)
    view = np.lib.stride_tricks.as_strided(
        base[ref.offset:], shape=ref.size,
        strides=tuple(s * base.itemsize for s in ref.stride), writeable=False)
    return view.copy()


_ATOMS = (type(None), bool, int, float, complex, str, bytes, bytearray)
_BUSY = object()


def _resolve(tree, context):
    """A copy of the unpickled tree with tensors as numpy arrays (sharing is kept)."""
    memo = {}

    def walk(obj, depth):
        kind = type(obj)
        if kind in _ATOMS:
            return obj
        if depth > MAX_DEPTH:
            raise _Problem(f"objects are nested more than {MAX_DEPTH} levels deep")
        done = memo.get(id(obj))
        if done is _BUSY:
            raise _Problem("a tuple or set contains itself")
        if done is not None:
            return done
        if kind is _TensorRef:
            result = _tensor_array(obj, context)
        elif kind is _ParamBox:
            result = walk(obj.data, depth + 1)
        elif kind is _Storage:
            values = _values(obj, obj.kind, context)
            context.spend(values.nbytes, f"storage {_short(obj.key)!r}")
            result = values.copy()
        elif kind is dict or kind is _OrderedDict:
            result = memo[id(obj)] = {}
            for key, value in obj.items():
                if type(key) in (_TensorRef, _ParamBox, _Storage):
                    raise _Problem("a tensor is used as a dictionary key")
                result[key] = walk(value, depth + 1)
        elif kind is list:
            result = memo[id(obj)] = []
            for value in obj:
                result.append(walk(value, depth + 1))
        elif kind in (tuple, set, frozenset):
            memo[id(obj)] = _BUSY
            items = []
            for value in obj:
                items.append(walk(value, depth + 1))
            result = kind(items)
        elif isinstance(obj, PickledObject):
            result = memo[id(obj)] = object.__new__(kind)
            result.args = walk(obj.args, depth + 1)
            result.kwargs = walk(obj.kwargs, depth + 1)
            result.state = walk(obj.state, depth + 1)
            result.listitems = walk(obj.listitems, depth + 1)
            result.dictitems = walk(obj.dictitems, depth + 1)
        else:  # classes, markers, slices: kept as they are
            result = obj
        memo[id(obj)] = result
        return result

    try:
        return walk(tree, 0)
    except RecursionError:
        raise _Problem("objects are nested too deeply") from None


# ----------------------------------------------------------------------------------------------
# flattening to a state dict


def _module_items(obj):
    """(name, value) pairs a torch module contributes to its state dict, or None if no module.

    Order as ``nn.Module.state_dict``: own parameters, own persistent buffers, then children.
    """
    state = obj.state
    if type(state) is not dict or type(state.get("_parameters")) is not dict \
            or type(state.get("_modules")) is not dict:
        return None
    buffers = state.get("_buffers")
    buffers = buffers if type(buffers) is dict else {}
    skipped = state.get("_non_persistent_buffers_set")
    skipped = skipped if type(skipped) in (set, frozenset) else set()
    items = list(state["_parameters"].items())
    items += [(key, value) for key, value in buffers.items() if key not in skipped]
    return items + list(state["_modules"].items())


def _collect(obj, out):
    """Fill ``out`` with dotted-path -> array for every tensor reachable from ``obj``."""
    visits = [MAX_VISITS]
    active = set()

    def walk(value, path):
        visits[0] -= 1
        if visits[0] < 0:
            raise _Problem(f"more than {MAX_VISITS} objects to visit; refusing")
        if isinstance(value, np.ndarray):
            name = ".".join(path)
            if name in out:
                raise _Problem(f"two tensors map to the key {_short(name)!r}")
            out[name] = value
            return
        if len(path) > MAX_DEPTH or id(value) in active:
            return
        if type(value) is dict:
            items = value.items()
        elif type(value) in (list, tuple):
            items = enumerate(value)
        elif isinstance(value, PickledObject):
            items = _module_items(value)
            if items is None:
                items = list(value.dictitems.items())
                if type(value.state) is dict:
                    items += list(value.state.items())
        else:
            return
        active.add(id(value))
        for key, item in items:
            if item is not None:
                walk(item, path + [key if type(key) is str else str(key)])
        active.discard(id(value))

    walk(obj, [])
    return out


def _state(tree, key, default_name):
    if key is not None:
        if type(tree) is not dict or key not in tree:
            raise _Problem(f"the checkpoint has no top-level key {_short(repr(key))}")
        tree, default_name = tree[key], str(key)
    elif type(tree) is dict and not any(isinstance(v, np.ndarray) for v in tree.values()):
        for nested in NESTED_KEYS:
            if isinstance(tree.get(nested), np.ndarray):
                return {nested: tree[nested]}
            found = _collect(tree.get(nested), {})
            if found:
                return found
    if isinstance(tree, np.ndarray):
        return {default_name: tree}
    found = _collect(tree, {})
    if not found:
        raise _Problem("no tensors found")
    return found


# ----------------------------------------------------------------------------------------------
# public API


def _parse(data):
    context = _Context(len(data))
    if data[:2] == b"PK":
        tree = _load_zip(data, context)
    elif data[257:262] == b"ustar":
        raise _Problem("legacy tar checkpoint (PyTorch < 0.1.10) is not supported; "
                       "re-save it with a newer torch")
    else:
        tree = _load_legacy(data, context)
    return _resolve(tree, context)


def _guarded(name, action):
    try:
        return action()
    except _Problem as error:
        raise TorchReadError(f"{name}: {error}") from None
    except Exception as error:  # anything else a hostile file provokes is still a read error
        raise TorchReadError(f"{name}: cannot read ({type(error).__name__}: {_short(error)})") \
            from None


def _file_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def read_torch_object(path):
    """The object a PyTorch checkpoint holds, rebuilt without torch and without running code.

    Tensors (and parameters) become numpy arrays with the tensor's dtype (bfloat16 becomes
    float32) in native byte order; tensors that were the same object stay the same array.
    ``OrderedDict`` becomes ``dict`` (order kept); lists, tuples, sets, strings and numbers stay
    as they are; every other pickled class becomes a :class:`PickledObject` subclass instance
    holding its pickled arguments and state, e.g. a whole ``nn.Module`` whose ``state`` has
    ``_parameters``, ``_buffers`` and ``_modules``.

    Args:
        path: a ``torch.save`` file, zip or legacy layout.

    Raises:
        TorchReadError: the file cannot be interpreted safely (the message says why).
        OSError: the file cannot be opened.
    """
    data = _file_bytes(path)
    return _guarded(os.fspath(path), lambda: _parse(data))


def read_torch_state(path, key=None):
    """The tensors of a PyTorch checkpoint as ``{name: numpy array}``, torch-free and safe.

    Names and order:

    * a state dict: its own keys, in its order;
    * a pickled ``nn.Module``: module paths (``residual_layer.0.conv.weight``) in
      ``nn.Module.state_dict`` order -- each module's parameters, its persistent buffers, then
      its children in registration order (not necessarily the order ``forward`` uses them);
    * a checkpoint dict without tensors at its top level: the first of ``NESTED_KEYS``
      (``state_dict``, ``model_state_dict``, ``model``, ``params``, ``params_ema``, ...) that
      holds tensors, flattened as above without the key as prefix; when none does, every tensor
      in the dict, by dotted path (list items by index);
    * a bare tensor: one entry named after the file stem (``pca_matrix.pth`` -> ``pca_matrix``).

    Args:
        path: a ``torch.save`` file, zip or legacy layout.
        key: take the tensors under this top-level dictionary key instead of guessing.

    Returns:
        A dict (insertion-ordered) of numpy arrays; see :func:`read_torch_object` for dtypes.

    Raises:
        TorchReadError: the file cannot be interpreted safely, or holds no tensors.
        OSError: the file cannot be opened.
    """
    name = os.fspath(path)
    stem = os.path.splitext(os.path.basename(name))[0]
    data = _file_bytes(path)
    return _guarded(name, lambda: _state(_parse(data), key, stem))
