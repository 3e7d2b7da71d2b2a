"""The inference path: XLA or one graph function, chosen per CPU (VISIONFW_INFERENCE), the two
giving the same outputs, and XLA's refusal falling back to the graph path."""
import numpy as np
import pytest

import visionfw
from visionfw import runtime
from visionfw.errors import VisionfwError
from visionfw.inference import Predictor


@pytest.mark.parametrize("value, flags, expected", [
    ("xla", {"avx512f"}, True), ("graph", set(), False), (" XLA ", set(), True),
    ("auto", {"avx2", "fma"}, True), ("auto", {"avx2", "avx512f"}, False),
    (None, {"avx2"}, True), (None, {"avx512f", "avx512_bf16"}, False)])
def test_the_path_follows_the_variable_else_the_cpu(monkeypatch, value, flags, expected):
    if value is None:
        monkeypatch.delenv("VISIONFW_INFERENCE", raising=False)
    else:
        monkeypatch.setenv("VISIONFW_INFERENCE", value)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: set(flags))
    assert runtime.inference_jit() is expected


def test_an_unknown_path_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("VISIONFW_INFERENCE", "fast")
    with pytest.raises(VisionfwError) as info:
        runtime.inference_jit()
    message = str(info.value)
    assert "\n" not in message and "'fast'" in message and "auto, xla, graph" in message


def test_cpu_flags_reads_this_machine():
    flags = runtime.cpu_flags()
    assert isinstance(flags, set)
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        assert flags == set()
        return
    line = next((x for x in text.splitlines() if x.startswith("flags")), None)
    assert flags == (set(line.split(":", 1)[1].split()) if line else set())


@pytest.mark.parametrize("name, hp, extras", [
    ("srresnet", {"B": 2, "filters": 8, "scale": 2}, ()),
    ("usrnet", {"iterations": 2, "nc": 8, "nb": 1, "scale": 2}, ("kernel", "scale", "sigma")),
])
def test_xla_and_graph_paths_agree_on_two_sizes(name, hp, extras):
    model = visionfw.build_model(name, compile=False, **hp)
    xla, graph = Predictor(model, jit=True), Predictor(model, jit=False)
    assert xla._fn.jit and not graph._fn.jit
    rng = np.random.default_rng(0)
    kernel = rng.random((7, 7)).astype(np.float32)
    given = {"kernel": kernel / kernel.sum(), "scale": np.float32(2), "sigma": np.float32(5)}
    for size in ((16, 20), (24, 16)):
        x = rng.random((*size, 3), dtype=np.float32)
        args = [given[e] for e in extras]
        a, b = xla(x, *args), graph(x, *args)
        assert a.shape == b.shape == (2 * size[0], 2 * size[1], 3)
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_what_xla_cannot_compile_falls_back_to_the_graph_once(capfd):
    import tensorflow as tf

    def host_side(x):
        # numpy_function runs Python on the host: XLA has no kernel for it
        return tf.numpy_function(lambda a: (a * 2).astype(np.float32), [x], tf.float32)

    fn = runtime.InferenceFunction(host_side, jit=True, name="the doubler")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(np.asarray(fn(x)), x * 2)
    err = capfd.readouterr().err
    assert "XLA could not compile the doubler" in err and err.count("\n") == 1
    assert fn.jit is False
    np.testing.assert_array_equal(np.asarray(fn(x + 1)), (x + 1) * 2)
    assert "XLA" not in capfd.readouterr().err                      # said once


def test_errors_that_are_not_xla_s_are_raised_as_they_are():
    import tensorflow as tf

    def checked(x):
        tf.debugging.assert_non_negative(x, message="negative input")
        return x

    fn = runtime.InferenceFunction(checked, jit=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="negative input"):
        fn(np.array([-1.0], np.float32))


def test_an_error_of_the_computation_under_xla_is_not_taken_for_a_refusal(capfd):
    import tensorflow as tf

    fn = runtime.InferenceFunction(lambda x: x * 3, jit=True, name="the tripler")

    def failing(message):
        def call(*args):
            raise tf.errors.InvalidArgumentError(None, None, message)
        return call

    # what XLA's own run of a computation reports: raised as it is, XLA kept
    fn._xla = failing("indices[0] = 7 is not in [0, 3) [[{{node cluster_1_1/xla_run}}]]")
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in"):
        fn(np.ones(2, np.float32))
    assert fn.jit is True and "could not compile" not in capfd.readouterr().err
    # a refusal to compile: the graph path from then on
    fn._xla = failing("Detected unsupported operations when trying to compile graph f on "
                      "XLA_CPU_JIT: PyFunc")
    np.testing.assert_array_equal(np.asarray(fn(np.ones(2, np.float32))), [3.0, 3.0])
    assert fn.jit is False and "XLA could not compile the tripler" in capfd.readouterr().err
