"""visionfw.io.read_torch_state: a torch-free, code-free reader for PyTorch checkpoints.

Small checkpoints are written here opcode by opcode, the way torch.save lays them out (read
from the real files with pickletools), so no torch is needed to make fixtures.
"""
import importlib
import struct
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visionfw.io import PickledObject, TorchReadError, read_torch_object, read_torch_state

MAGIC = 0x1950A86A20F9469CFC6C

# ------------------------------------------------------------------------------------------
# a tiny pickle writer


class G:
    """A pickled global: GLOBAL 'module name'."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class Call:
    """func(*args): REDUCE."""

    def __init__(self, func, args=()):
        self.func, self.args = func, tuple(args)


class Pid:
    """A persistent id: the tuple, then BINPERSID."""

    def __init__(self, value):
        self.value = value


class NewObj:
    def __init__(self, cls, args=()):
        self.cls, self.args = cls, tuple(args)


class Build:
    def __init__(self, obj, state):
        self.obj, self.state = obj, state


class Items:
    """``node`` then MARK key value ... SETITEMS, as torch writes an OrderedDict."""

    def __init__(self, node, pairs):
        self.node, self.pairs = node, list(pairs)


class Put:
    def __init__(self, index, node):
        self.index, self.node = index, node


class Get:
    def __init__(self, index):
        self.index = index


class Raw:
    def __init__(self, data):
        self.data = data


def emit(obj):
    if obj is None:
        return b"N"
    if obj is True or obj is False:
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        if 0 <= obj < 256:
            return b"K" + bytes([obj])
        if 0 <= obj < 65536:
            return b"M" + struct.pack("<H", obj)
        if -2**31 <= obj < 2**31:
            return b"J" + struct.pack("<i", obj)
        data = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(data)]) + data
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    if isinstance(obj, str):
        data = obj.encode()
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(obj, tuple):
        return b"(" + b"".join(map(emit, obj)) + b"t" if obj else b")"
    if isinstance(obj, list):
        return b"](" + b"".join(map(emit, obj)) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(emit(k) + emit(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, G):
        return b"c" + f"{obj.module}\n{obj.name}\n".encode()
    if isinstance(obj, Call):
        return emit(obj.func) + emit(obj.args) + b"R"
    if isinstance(obj, Pid):
        return emit(obj.value) + b"Q"
    if isinstance(obj, NewObj):
        return emit(obj.cls) + emit(obj.args) + b"\x81"
    if isinstance(obj, Build):
        return emit(obj.obj) + emit(obj.state) + b"b"
    if isinstance(obj, Items):
        return emit(obj.node) + b"(" + b"".join(emit(k) + emit(v) for k, v in obj.pairs) + b"u"
    if isinstance(obj, Put):
        return emit(obj.node) + b"r" + struct.pack("<I", obj.index)
    if isinstance(obj, Get):
        return b"j" + struct.pack("<I", obj.index)
    if isinstance(obj, Raw):
        return obj.data
    raise TypeError(obj)


def dumps(obj):
    return b"\x80\x02" + emit(obj) + b"."


ORDERED_DICT = G("collections", "OrderedDict")
STORAGE_NAMES = {
    "float64": "DoubleStorage", "float32": "FloatStorage", "float16": "HalfStorage",
    "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
    "uint8": "ByteStorage", "bool": "BoolStorage",
}


def odict(pairs):
    return Items(Call(ORDERED_DICT), pairs)


def strides(shape):
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= n
    return tuple(reversed(out))


class Checkpoint:
    """Collects storages while tensors are described, then writes either layout."""

    def __init__(self, legacy=False):
        self.legacy = legacy
        self.storages = {}  # key -> (storage name, element count, raw little-endian bytes)

    def storage(self, key, array, storage_name=None, numel=None):
        array = np.ascontiguousarray(array)
        name = storage_name or STORAGE_NAMES[array.dtype.name]
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        self.storages[key] = (name, array.size if numel is None else numel, raw)
        record = ("storage", G("torch", name), key, "cpu", self.storages[key][1])
        return Pid(record + (None,) if self.legacy else record)

    def tensor(self, key, array, shape=None, stride=None, offset=0, version=2):
        pid = self.storage(key, np.asarray(array).ravel())
        shape = np.shape(array) if shape is None else shape
        stride = strides(shape) if stride is None else stride
        if version == 1:
            return Call(G("torch._utils", "_rebuild_tensor"), (pid, offset, tuple(shape), stride))
        return Call(G("torch._utils", "_rebuild_tensor_v2"),
                    (pid, offset, tuple(shape), stride, False, Call(ORDERED_DICT)))

    def state_dict(self, arrays):
        """An OrderedDict of tensors, each on a fresh storage numbered from 0."""
        return odict((name, self.tensor(str(len(self.storages)), a)) for name, a in arrays.items())

    def write(self, path, obj, prefix="archive", byteorder=b"little", little=True,
              skip=(), pickle_bytes=None):
        pickled = dumps(obj) if pickle_bytes is None else pickle_bytes
        if self.legacy:
            order = "little" if little else "big"
            info = {"protocol_version": 1001, "little_endian": little,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}
            out = [dumps(MAGIC), dumps(1001), dumps(info), pickled, dumps(list(self.storages))]
            for name, numel, raw in self.storages.values():
                if not little:
                    raw = swap(raw, name)
                out.append(numel.to_bytes(8, order, signed=True) + raw)
            path.write_bytes(b"".join(out))
            return path
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{prefix}/data.pkl", pickled)
            if byteorder is not None:
                archive.writestr(f"{prefix}/byteorder", byteorder)
            for key, (name, _, raw) in self.storages.items():
                if key not in skip:
                    archive.writestr(f"{prefix}/data/{key}",
                                     swap(raw, name) if byteorder == b"big" else raw)
            archive.writestr(f"{prefix}/version", b"3\n")
        return path


ITEMSIZE = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
            "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
            "ByteStorage": 1, "BoolStorage": 1, "UntypedStorage": 1}


def swap(raw, storage_name):
    size = ITEMSIZE[storage_name]
    return np.frombuffer(raw, dtype=f"u{size}").byteswap().tobytes() if size > 1 else raw


def small_state():
    rng = np.random.default_rng(0)
    return {"conv.weight": rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
            "conv.bias": rng.standard_normal(4).astype(np.float32)}


def write_small(tmp_path, legacy, name="small.pt"):
    ckpt = Checkpoint(legacy=legacy)
    return ckpt.write(tmp_path / name, ckpt.state_dict(small_state()))


def assert_same(got, expected):
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def read_error(path, reader=read_torch_state):
    with pytest.raises(TorchReadError) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


# ------------------------------------------------------------------------------------------
# the real files

REAL = ["srcnn/SRCNN-935.pt", "fsrcnn/FSRCNN-x3.pt", "espcn/ESPCN-x3.pt",
        "ikc/Predictor_latest_G.pth", "ikc/Corrector_latest_G.pth", "ikc/pca_matrix.pth"]


@pytest.mark.parametrize("name", REAL)
def test_real_checkpoints_match_their_npz(shared_weights, name):
    path = shared_weights / name
    with np.load(path.with_suffix(".npz")) as twin:
        expected = {key: twin[key] for key in twin.files}
    assert_same(read_torch_state(path), expected)


def test_vdsr_whole_model_pickle(shared_weights):
    path = shared_weights / "vdsr/model_epoch_50.pth"
    got = read_torch_state(path)
    with np.load(path.with_suffix(".npz")) as twin:
        expected = {key: twin[key] for key in twin.files}
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    # module (registration) order, as nn.Module.state_dict gives it; the npz is in forward order
    assert list(got) == [f"residual_layer.{i}.conv.weight" for i in range(18)] + \
        ["input.weight", "output.weight"]

    tree = read_torch_object(path)
    assert tree["epoch"] == 50
    net = tree["model"]
    assert isinstance(net, PickledObject) and net.global_name == "vdsr.Net"
    conv = net.state["_modules"]["input"]
    assert conv.global_name == "torch.nn.modules.conv.Conv2d"
    assert conv.state["padding"] == (1, 1) and conv.state["_parameters"]["bias"] is None
    np.testing.assert_array_equal(conv.state["_parameters"]["weight"], got["input.weight"])


def test_dan_pca_kernels(shared_data):
    paths = sorted((shared_data / "kernels/PCA_IKC_DAN").glob("*.pth"))
    assert paths
    for path in paths:
        expected = np.load(path.with_suffix(".npy"))
        got = read_torch_state(path)
        assert list(got) == [path.stem]
        assert got[path.stem].dtype == expected.dtype
        np.testing.assert_array_equal(got[path.stem], expected)
        np.testing.assert_array_equal(read_torch_object(path), expected)


# ------------------------------------------------------------------------------------------
# layouts, dtypes, views


@pytest.mark.parametrize("legacy", [False, True])
def test_small_state_dict_round_trip(tmp_path, legacy):
    assert_same(read_torch_state(write_small(tmp_path, legacy)), small_state())


def test_every_storage_dtype(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {name: (rng.standard_normal(6) * 50).astype(name)
              for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8",
                           "uint8")}
    arrays["bool"] = rng.standard_normal(6) > 0
    ckpt = Checkpoint()
    path = ckpt.write(tmp_path / "dtypes.pt", ckpt.state_dict(arrays))
    assert_same(read_torch_state(path), arrays)


def test_bfloat16_becomes_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0, 65280.0], dtype=np.float32)  # exact in bf16
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    ckpt = Checkpoint()
    pid = ckpt.storage("0", bits, storage_name="BFloat16Storage")
    tensor = Call(G("torch._utils", "_rebuild_tensor_v2"),
                  (pid, 0, (5,), (1,), False, Call(ORDERED_DICT)))
    path = ckpt.write(tmp_path / "bf16.pt", odict([("w", tensor)]))
    got = read_torch_state(path)["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, values)


def test_views_offsets_strides_and_shared_storage(tmp_path):
    base = np.arange(24, dtype=np.float32)
    ckpt = Checkpoint()
    pid = ckpt.storage("0", base)
    rebuild = G("torch._utils", "_rebuild_tensor_v2")

    def view(offset, shape, stride):
        return Call(rebuild, (pid, offset, shape, stride, False, Call(ORDERED_DICT)))

    obj = odict([("block", view(4, (2, 3), (3, 1))),
                 ("transposed", view(0, (4, 6), (1, 4))),
                 ("every_other", view(1, (5,), (2,))),
                 ("broadcast", view(7, (3, 2), (0, 1))),
                 ("scalar", view(23, (), ())),
                 ("empty", view(24, (0, 5), (5, 1)))])
    got = read_torch_state(ckpt.write(tmp_path / "views.pt", obj))
    np.testing.assert_array_equal(got["block"], base[4:10].reshape(2, 3))
    np.testing.assert_array_equal(got["transposed"], base.reshape(6, 4).T)
    np.testing.assert_array_equal(got["every_other"], base[1:11:2])
    np.testing.assert_array_equal(got["broadcast"], np.tile(base[7:9], (3, 1)))
    assert got["scalar"].shape == () and got["scalar"] == 23
    assert got["empty"].shape == (0, 5)
    for array in got.values():  # independent, writable, C-ordered copies
        assert array.flags.c_contiguous and array.flags.writeable and array.base is None


def test_any_prefix_and_big_endian_zip(tmp_path):
    arrays = small_state()
    ckpt = Checkpoint()
    path = ckpt.write(tmp_path / "b.pt", ckpt.state_dict(arrays), prefix="my_model-v2",
                      byteorder=b"big")
    got = read_torch_state(path)
    assert_same(got, arrays)
    assert all(a.dtype.isnative for a in got.values())


def test_big_endian_legacy_stream(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.int64).reshape(2, 3) - 3, "b": np.ones(2, np.float64)}
    ckpt = Checkpoint(legacy=True)
    path = ckpt.write(tmp_path / "be.pth", ckpt.state_dict(arrays), little=False)
    assert_same(read_torch_state(path), arrays)


def test_untyped_storage_with_rebuild_v3(tmp_path):
    values = np.array([0.5, -1.0, 2.0, 8.0], dtype=np.float16)
    ckpt = Checkpoint()
    raw = np.frombuffer(values.tobytes(), np.uint8)
    pid = ckpt.storage("0", raw, storage_name="UntypedStorage")
    tensor = Call(G("torch._utils", "_rebuild_tensor_v3"),
                  (pid, 1, (3,), (1,), False, Call(ORDERED_DICT), G("torch", "float16")))
    got = read_torch_state(ckpt.write(tmp_path / "v3.pt", odict([("h", tensor)])))["h"]
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, values[1:])


def test_parameter_forms(tmp_path):
    ckpt = Checkpoint()
    a, b, c = (np.full(3, i, np.float32) for i in (1, 2, 3))
    new = Call(G("torch._utils", "_rebuild_parameter"),
               (ckpt.tensor("0", a), True, Call(ORDERED_DICT)))
    typed = Call(G("torch._tensor", "_rebuild_from_type_v2"),
                 (G("torch._utils", "_rebuild_tensor_v2"), G("torch.nn.parameter", "Parameter"),
                  ckpt.tensor("1", b).args, {}))
    old = Build(Call(G("torch.nn.parameter", "Parameter"), (ckpt.tensor("2", c, version=1),)),
                (True, False, None))
    path = ckpt.write(tmp_path / "p.pt", odict([("a", new), ("b", typed), ("c", old)]))
    got = read_torch_state(path)
    assert_same(got, {"a": a, "b": b, "c": c})


def module(cls_name, parameters=(), buffers=(), children=(), extra=None):
    """A pickled nn.Module as torch < 1.0 wrote it: module record, NEWOBJ, BUILD of __dict__."""
    cls = Pid(("module", G("mynet", cls_name), "mynet.py", f"class {cls_name}: ..."))
    state = {"_parameters": odict(parameters), "_buffers": odict(buffers),
             "_modules": odict(children), "training": True}
    state.update(extra or {})
    return Build(NewObj(cls), state)


def old_param(ckpt, key, array):
    return Build(Call(G("torch.nn.parameter", "Parameter"), (ckpt.tensor(key, array, version=1),)),
                 (True, False, None))


def test_legacy_whole_model_in_module_order(tmp_path):
    rng = np.random.default_rng(2)
    w1, w2, b2, mean = (rng.standard_normal(shape).astype(np.float32)
                        for shape in ((2, 1, 3, 3), (1, 2), (1,), (2,)))
    ckpt = Checkpoint(legacy=True)
    body = module("Block", parameters=[("weight", old_param(ckpt, "10", w1)), ("bias", None)])
    head = module("Head", parameters=[("weight", old_param(ckpt, "11", w2)),
                                            ("bias", old_param(ckpt, "12", b2))],
                  buffers=[("running_mean", ckpt.tensor("13", mean)),
                           ("scratch", ckpt.tensor("14", mean * 2))],
                  extra={"_non_persistent_buffers_set": Call(G("builtins", "set"), (["scratch"],))})
    sequential = Call(G("torch.nn.modules.container", "Sequential"), ())
    features = module("Seq", children=[("0", body), ("1", None)])
    net = module("Net", children=[("head", head), ("body", sequential), ("features", features)])
    path = ckpt.write(tmp_path / "model.pth", {"epoch": 50, "model": net})
    got = read_torch_state(path)
    assert list(got) == ["head.weight", "head.bias", "head.running_mean", "features.0.weight"]
    for key, expected in zip(got, (w2, b2, mean, w1)):
        np.testing.assert_array_equal(got[key], expected)
    tree = read_torch_object(path)
    assert tree["model"].global_name == "mynet.Net"
    body = tree["model"].state["_modules"]["body"]
    assert body.global_name == "torch.nn.modules.container.Sequential" and body.state is None


def test_legacy_storage_views(tmp_path):
    ckpt = Checkpoint(legacy=True)
    base = np.arange(10, dtype=np.float32)
    ckpt.storage("root", base)
    view = Pid(("storage", G("torch", "FloatStorage"), "root", "cpu", 10, ("view", 3, 4)))
    tensor = Call(G("torch._utils", "_rebuild_tensor"), (view, 1, (2,), (2,)))
    got = read_torch_state(ckpt.write(tmp_path / "v.pth", odict([("t", tensor)])))
    np.testing.assert_array_equal(got["t"], [4.0, 6.0])


# ------------------------------------------------------------------------------------------
# which tensors a checkpoint dict yields


def test_nested_checkpoint_dicts(tmp_path):
    arrays = small_state()
    other = {k: v + 1 for k, v in arrays.items()}

    def write(name, make):
        ckpt = Checkpoint()
        return ckpt.write(tmp_path / name, make(ckpt))

    path = write("sd.pt", lambda c: {"epoch": 3, "state_dict": c.state_dict(arrays)})
    assert_same(read_torch_state(path), arrays)
    path = write("bsr.pth", lambda c: {"params": c.state_dict(arrays),
                                       "params_ema": c.state_dict(other)})
    assert_same(read_torch_state(path), arrays)
    assert_same(read_torch_state(path, key="params_ema"), other)
    with pytest.raises(TorchReadError, match="no top-level key 'nope'"):
        read_torch_state(path, key="nope")
    path = write("misc.pt", lambda c: {
        "optimizer": {"state": {0: {"momentum": c.tensor("a", arrays["conv.bias"])}}},
        "history": [c.tensor("b", arrays["conv.weight"])], "lr": 0.1})
    got = read_torch_state(path)
    assert list(got) == ["optimizer.state.0.momentum", "history.0"]
    np.testing.assert_array_equal(got["history.0"], arrays["conv.weight"])
    path = write("bare.pt", lambda c: c.tensor("0", arrays["conv.bias"]))
    assert_same(read_torch_state(path), {"bare": arrays["conv.bias"]})
    path = write("empty.pt", lambda c: {"epoch": 1})
    assert "no tensors" in read_error(path)


def test_shared_and_cyclic_structures(tmp_path):
    ckpt = Checkpoint()
    weight = np.arange(4, dtype=np.float32)
    tensor = Put(2, ckpt.tensor("0", weight))
    sd = Put(1, Items(Call(ORDERED_DICT), [("a", tensor), ("tied", Get(2))]))
    obj = Items(Put(3, Raw(b"}")), [("state_dict", sd), ("again", Get(1)), ("self", Get(3))])
    path = ckpt.write(tmp_path / "cyc.pt", obj)
    got = read_torch_state(path)
    assert list(got) == ["a", "tied"] and got["a"] is got["tied"]
    tree = read_torch_object(path)
    assert tree["self"] is tree and tree["again"] is tree["state_dict"]


# ------------------------------------------------------------------------------------------
# nothing named by the pickle is imported or run

PROBE = "vfw_torch_state_probe"


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A module that leaves a file behind when imported, and another when its run() is called."""
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / f"{PROBE}.py").write_text(
        "import pathlib\n"
        "HERE = pathlib.Path(__file__).parent\n"
        "(HERE / 'imported').write_text('yes')\n"
        "def run(*args):\n"
        "    (HERE / 'called').write_text('yes')\n"
        "class Thing:\n"
        "    def __init__(self, *args):\n"
        "        run()\n"
        "    def __setstate__(self, state):\n"
        "        run()\n")
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(PROBE, None)
    yield folder
    sys.modules.pop(PROBE, None)


def assert_probe_untouched(folder):
    assert PROBE not in sys.modules
    assert not (folder / "imported").exists() and not (folder / "called").exists()
    # the probe is live: importing it for real does leave its mark
    importlib.import_module(PROBE).run()
    assert (folder / "imported").exists() and (folder / "called").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_named_module_is_never_imported(tmp_path, probe, legacy):
    ckpt = Checkpoint(legacy=legacy)
    payload = {"weights": ckpt.state_dict(small_state()),
               "call": Call(G(PROBE, "run"), ("rm -rf /",)),
               "new": Build(NewObj(G(PROBE, "Thing"), (1,)), {"x": 1}),
               "inst": Raw(b"(K\x07i" + f"{PROBE}\nThing\n".encode()),
               "obj": Raw(b"(c" + f"{PROBE}\nThing\n".encode() + b"K\x08o"),
               "stack": Raw(emit(PROBE) + emit("run") + b"\x93" + emit(("x",)) + b"R")}
    path = ckpt.write(tmp_path / "probe.pt", payload)
    tree = read_torch_object(path)
    assert_same(read_torch_state(path, key="weights"), small_state())
    assert tree["call"].global_name == f"{PROBE}.run" and tree["call"].args == ("rm -rf /",)
    assert tree["new"].args == (1,) and tree["new"].state == {"x": 1}
    assert tree["inst"].args == (7,) and tree["obj"].args == (8,)
    assert tree["stack"].args == ("x",)
    assert_probe_untouched(probe)


@pytest.mark.parametrize("module,name", [
    ("os", "system"), ("posix", "system"), ("subprocess", "check_call"), ("builtins", "eval"),
    ("builtins", "exec"), ("__builtin__", "eval"), ("builtins", "getattr"),
    ("builtins", "__import__"), ("importlib", "import_module"), ("sys", "modules"),
])
@pytest.mark.parametrize("legacy", [False, True])
def test_code_running_globals_are_refused(tmp_path, module, name, legacy):
    marker = tmp_path / "ran"
    command = f"open({str(marker)!r}, 'w')" if module.endswith("builtins") or \
        module == "__builtin__" else f"touch {marker}"
    ckpt = Checkpoint(legacy=legacy)
    path = ckpt.write(tmp_path / "evil.pt", {"weights": ckpt.state_dict(small_state()),
                                            "x": Call(G(module, name), (command,))})
    message = read_error(path, read_torch_object)
    assert f"{module}.{name}" in message
    assert not marker.exists()


def test_build_cannot_alter_the_reader(tmp_path):
    # BUILD on the reader's stand-ins for torch functions must not change them for later reads
    ckpt = Checkpoint()
    rebuild = G("torch._utils", "_rebuild_tensor_v2")
    path = ckpt.write(tmp_path / "b.pt", [Build(rebuild, ({}, {"label": "x", "fn": None})),
                                          ckpt.tensor("0", np.ones(2, np.float32))])
    assert "set the state of torch._utils._rebuild_tensor_v2" in read_error(path)
    storage = Pid(("storage", G("torch", "FloatStorage"), "0", "cpu", 2))
    for target, expected in [(G("torch", "FloatStorage"), "set the state"),
                             (G("torch", "float32"), "set the state"),
                             (ckpt.tensor("1", np.ones(1, np.float32)), "set the state"),
                             (storage, "set the state"),
                             (G("some.module", "Class"), "cannot unpickle"),
                             (Call(ORDERED_DICT, ()), "no tensors")]:
        path = ckpt.write(tmp_path / "t.pt", [Build(target, {"__class__": None}), 1])
        assert expected in read_error(path)
    assert_same(read_torch_state(write_small(tmp_path, False)), small_state())


def test_extension_opcodes_are_refused(tmp_path):
    ckpt = Checkpoint()
    path = ckpt.write(tmp_path / "ext.pt", None, pickle_bytes=b"\x80\x02\x82\x01)R.")
    assert "EXT1" in read_error(path)


# ------------------------------------------------------------------------------------------
# malformed, truncated, hostile files


@pytest.mark.parametrize("legacy", [False, True])
def test_truncations_are_read_errors(tmp_path, legacy):
    data = write_small(tmp_path, legacy).read_bytes()
    for cut in range(0, len(data), 7):
        path = tmp_path / "cut.pt"
        path.write_bytes(data[:cut])
        read_error(path)


def test_truncated_real_checkpoint(tmp_path, shared_weights):
    data = (shared_weights / "vdsr/model_epoch_50.pth").read_bytes()
    for cut in list(range(1, 30000, 1999)) + [len(data) // 2, len(data) - 1]:
        path = tmp_path / "vdsr_cut.pth"
        path.write_bytes(data[:cut])
        read_error(path)


def test_random_and_empty_files(tmp_path):
    rng = np.random.default_rng(3)
    for size in (0, 1, 9, 300, 5000):
        path = tmp_path / f"r{size}.pt"
        path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        assert "neither a zip archive nor a legacy" in read_error(path)
    (tmp_path / "pk.pt").write_bytes(b"PK\x03\x04" + bytes(100))
    assert "not a readable zip" in read_error(tmp_path / "pk.pt")


def test_zip_structure_errors(tmp_path):
    with zipfile.ZipFile(tmp_path / "nopkl.pt", "w") as archive:
        archive.writestr("archive/data/0", b"1234")
    assert "data.pkl" in read_error(tmp_path / "nopkl.pt")

    ckpt = Checkpoint()
    path = ckpt.write(tmp_path / "missing.pt", ckpt.state_dict(small_state()), skip=("1",))
    assert "storage '1' has no zip record data/1" in read_error(path)

    ckpt = Checkpoint()
    pid = ckpt.storage("0", np.ones(4, np.float32), numel=5)
    tensor = Call(G("torch._utils", "_rebuild_tensor_v2"), (pid, 0, (4,), (1,), False, None))
    path = ckpt.write(tmp_path / "size.pt", tensor)
    assert "holds 16 bytes, the pickle declares 20" in read_error(path)

    ckpt = Checkpoint()
    assert "byteorder" in read_error(ckpt.write(tmp_path / "bo.pt", ckpt.state_dict(small_state()),
                                                byteorder=b"middle"))

    with zipfile.ZipFile(tmp_path / "ts.pt", "w") as archive:
        archive.writestr("m/data.pkl", dumps(None))
        archive.writestr("m/constants.pkl", dumps(()))
    assert "TorchScript" in read_error(tmp_path / "ts.pt")


def test_legacy_structure_errors(tmp_path):
    good = write_small(tmp_path, True).read_bytes()
    path = tmp_path / "bad.pth"
    path.write_bytes(dumps(12345) + good[len(dumps(MAGIC)):])
    assert "wrong magic number" in read_error(path)
    path.write_bytes(dumps(MAGIC) + dumps(999) + good[len(dumps(MAGIC)) + len(dumps(1001)):])
    assert "protocol version 999" in read_error(path)

    ckpt = Checkpoint(legacy=True)
    obj = ckpt.state_dict(small_state())
    data = bytearray(ckpt.write(path, obj).read_bytes())
    key_list = dumps(["0", "1"])
    count_at = data.index(key_list) + len(key_list)
    data[count_at:count_at + 8] = (71).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    assert "holds 71 elements, the pickle declares 72" in read_error(path)

    ckpt.storages.pop("1")
    assert "not in the storage-key list" in read_error(ckpt.write(path, obj))

    tar = bytearray(600)
    tar[257:262] = b"ustar"
    path.write_bytes(bytes(tar))
    assert "tar checkpoint" in read_error(path)


@pytest.mark.parametrize("legacy", [False, True])
def test_huge_declared_sizes(tmp_path, legacy):
    ckpt = Checkpoint(legacy=legacy)
    pid = ckpt.storage("0", np.ones(4, np.float32), numel=2**60)
    tensor = Call(G("torch._utils", "_rebuild_tensor_v2"), (pid, 0, (4,), (1,), False, None))
    assert "more than the file can hold" in read_error(ckpt.write(tmp_path / "huge.pt", tensor))

    ckpt = Checkpoint(legacy=legacy)
    big = ckpt.tensor("0", np.ones(4, np.float32), shape=(2**20, 2**20, 2**10), stride=(0, 0, 0))
    assert "more than this file can justify" in read_error(ckpt.write(tmp_path / "expand.pt", big))


def test_out_of_bounds_tensors(tmp_path):
    for shape, stride, offset in [((5,), (1,), 0), ((2, 2), (3, 1), 0), ((4,), (1,), 1),
                                  ((2,), (-1,), 1), ((2,), (1,), -1), ((1, 2), (1,), 0)]:
        ckpt = Checkpoint()
        tensor = ckpt.tensor("0", np.ones(4, np.float32), shape=shape, stride=stride, offset=offset)
        message = read_error(ckpt.write(tmp_path / "oob.pt", tensor))
        assert "storage '0'" in message or "_rebuild_tensor_v2" in message


def test_hostile_pickle_opcodes(tmp_path):
    ckpt = Checkpoint()
    cases = {
        b"\x80\x02]r\xff\xff\xff\x7f.": "memo index",                   # LONG_BINPUT 2**31-1
        b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x00.": "not a valid pickle",  # BINBYTES8 2**56
        b"\x80\x04\x95\xff\xff\xff\xff\xff\x00\x00\x00N.": "frame",      # FRAME of 2**40 bytes
        b"\x80\x02" + b"(" * 5000 + b")" + b"t" * 5000 + b".": "nested",  # deep tuples
        b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".": "nested",      # deep lists
        b"\x80\x02N": "not a valid pickle",                               # no STOP
        b"\x80\x02\x81.": "cannot unpickle",                              # NEWOBJ on empty stack
    }
    for data, expected in cases.items():
        path = ckpt.write(tmp_path / "h.pt", None, pickle_bytes=data)
        assert expected in read_error(path, read_torch_object), data[:20]


def test_nesting_limit(tmp_path):
    ckpt = Checkpoint()
    for depth in (150, 250):
        data = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
        path = ckpt.write(tmp_path / "n.pt", None, pickle_bytes=data)
        if depth < 200:
            tree = read_torch_object(path)
            for _ in range(depth - 1):
                tree = tree[0]
            assert tree == []
        else:
            assert "nested more than 200 levels" in read_error(path, read_torch_object)


def test_deeply_nested_records(tmp_path):
    # a.B(a.B(a.B(...(None)))) 3000 deep: every level is an inert record holding the next
    chain = Raw(b"ca\nB\n" * 3000 + b"N" + b"\x85R" * 3000)
    path = Checkpoint().write(tmp_path / "deep.pt", chain)
    assert "nested" in read_error(path, read_torch_object)


def test_uninterpretable_globals(tmp_path):
    def one(payload):
        ckpt = Checkpoint()
        return read_error(ckpt.write(tmp_path / "u.pt", payload(ckpt)))

    assert "unsupported storage type torch.QInt8Storage" in one(lambda c: Pid(
        ("storage", G("torch", "QInt8Storage"), "0", "cpu", 1)))
    assert "not a torch storage type" in one(lambda c: Pid(
        ("storage", G("torch", "float32"), "0", "cpu", 1)))
    assert "unsupported tensor constructor torch._utils._rebuild_qtensor" in one(
        lambda c: Call(G("torch._utils", "_rebuild_qtensor"), ()))
    assert "raw tensor storage" in one(lambda c: Call(G("torch", "Quantized"), (
        c.storage("0", np.ones(2, np.float32)),)))
    assert "unexpected persistent id type 'module'" in one(
        lambda c: Pid(("module", G("a", "B"), "", "")))
    assert "expects 6 to 7 arguments, got 2" in one(lambda c: Call(
        G("torch._utils", "_rebuild_tensor_v2"), (c.storage("0", np.ones(2, np.float32)), 0)))
    assert "unsupported dtype" in one(lambda c: Call(G("torch._utils", "_rebuild_tensor_v3"), (
        c.storage("0", np.ones(2, np.uint8), "UntypedStorage"), 0, (1,), (1,), False, None,
        G("torch", "qint8"))))


def test_error_type():
    assert issubclass(TorchReadError, ValueError)
    from visionfw.errors import VisionfwError
    assert issubclass(TorchReadError, VisionfwError)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_torch_state(tmp_path / "absent.pt")


# ------------------------------------------------------------------------------------------
# fuzzing: any damage gives arrays or TorchReadError, nothing else

FUZZ = settings(max_examples=120, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
EDITS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete"]),
                           st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)


def damage(data, edits):
    data = bytearray(data)
    for kind, where, value in edits:
        where %= max(len(data), 1)
        if kind == "flip" and data:
            data[where] ^= value or 1
        elif kind == "insert":
            data[where:where] = bytes([value])
        elif data:
            del data[where]
    return bytes(data)


def read_outcome(path):
    try:
        result = read_torch_state(path)
    except TorchReadError:
        return None
    assert isinstance(result, dict) and result
    assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in result.items())
    return result


def fuzz_fixture(tmp_path_factory, legacy):
    folder = tmp_path_factory.mktemp("fuzz")
    ckpt = Checkpoint(legacy=legacy)
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, np.int64)}
    if not legacy:
        return ckpt, ckpt.state_dict(arrays), folder
    net = module("Net", parameters=[("w", old_param(ckpt, "0", arrays["w"]))],
                 buffers=[("b", ckpt.tensor("1", arrays["b"]))])
    return ckpt, {"epoch": 5, "model": net}, folder


@FUZZ
@given(edits=EDITS)
def test_fuzz_legacy_stream(tmp_path_factory, edits):
    ckpt, obj, folder = fuzz_fixture(tmp_path_factory, legacy=True)
    data = ckpt.write(folder / "ok.pth", obj).read_bytes()
    path = folder / "fuzz.pth"
    path.write_bytes(damage(data, edits))
    read_outcome(path)


@FUZZ
@given(edits=EDITS)
def test_fuzz_zip_pickle(tmp_path_factory, edits):
    ckpt, obj, folder = fuzz_fixture(tmp_path_factory, legacy=False)
    path = ckpt.write(folder / "fuzz.pt", obj, pickle_bytes=damage(dumps(obj), edits))
    read_outcome(path)


@FUZZ
@given(edits=EDITS)
def test_fuzz_zip_bytes(tmp_path_factory, edits):
    ckpt, obj, folder = fuzz_fixture(tmp_path_factory, legacy=False)
    data = ckpt.write(folder / "ok.pt", obj).read_bytes()
    path = folder / "fuzz.pt"
    path.write_bytes(damage(data, edits))
    read_outcome(path)


def test_fuzz_fixtures_are_valid(tmp_path_factory):
    # the undamaged fuzz inputs read correctly, so the fuzz tests start from working files
    for legacy in (False, True):
        ckpt, obj, folder = fuzz_fixture(tmp_path_factory, legacy)
        got = read_outcome(ckpt.write(folder / "ok.pt", obj))
        np.testing.assert_array_equal(got["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
        np.testing.assert_array_equal(got["b"], np.ones(2, np.int64))


def test_reading_imports_nothing(tmp_path, shared_weights):
    # the VDSR pickle names vdsr.Net, torch.nn.modules.conv.Conv2d, torch._utils, ...
    before = set(sys.modules)
    read_torch_object(shared_weights / "vdsr/model_epoch_50.pth")
    read_torch_state(shared_weights / "srcnn/SRCNN-935.pt")
    assert set(sys.modules) - before == set()
    assert not any(name == "torch" or name.startswith(("torch.", "vdsr")) for name in sys.modules)

