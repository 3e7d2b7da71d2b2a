"""A trained network for inference without visionfw: a TensorFlow SavedModel, a TFLite
flatbuffer or an ONNX graph, each checked against the Keras model on a probe.

The probe feeds every input by its role (:mod:`visionfw.conditioning`): a random LR image, a
normalised Gaussian kernel, a kernel code (the network's own PCA code of that kernel when it
carries one), a noise level, the scale. The export is run on it and compared with the Keras
model, output by output; a difference above the tolerance is an error. Everything is written
in a temporary folder beside the output, which is renamed into place only when the check
passes, so a failed export leaves nothing behind.

TFLite holds only its builtin ops unless asked (``select_ops``) to embed TensorFlow ops, which
the app then runs through the Flex delegate; a network that needs others (USRNet's FFT) is
refused in one line naming them. ONNX needs the optional extra ``pip install .[export]``
(tf2onnx, onnxruntime), imported only when asked for.
"""
import contextlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import warnings

import numpy as np

from visionfw.errors import VisionfwError

FORMATS = ("savedmodel", "tflite", "onnx")
TOLERANCE = 1e-4            # float32 outputs of images in [0, 1]
PROBE_SIZE = (32, 32)
ONNX_HINT = "onnx export needs tf2onnx and onnxruntime: pip install .[export]"
FILES = {"tflite": "model.tflite", "onnx": "model.onnx"}
# what a probe holds per role, for the manifest
PROBE_NOTES = {"image": "LR image, RGB in [0, 1]", "sr": "SR image, RGB in [0, 1]",
               "kernel": "blur kernel summing to 1", "kernel_code": "kernel code",
               "noise_sigma": "noise level on the 0-255 scale", "scale": "SR factor"}


class ExportError(VisionfwError):
    """A format the network cannot be written in, a missing exporter, or an export whose
    outputs differ from the Keras model's."""


def parse_size(text):
    """``'64x48'`` -> ``(64, 48)`` (height, width); ``'64'`` -> ``(64, 64)``."""
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ExportError(f"--size {text!r}: expected HxW in LR pixels, e.g. 64x64")
    return size


def _gaussian(size, sigma=1.6):
    from visionfw.degradation.kernels import gaussian_kernel

    return gaussian_kernel(size, sigma).astype(np.float32)


def _meta(model):
    from visionfw.conditioning import spec_dict

    return spec_dict(model).get("meta") or {}


def _code(model, length, rng):
    """A ``(1, length)`` kernel code: the network's PCA code of a Gaussian (with IKC's noise
    entry when the code is one longer), else small random numbers."""
    from visionfw.kernel_codes import CodeError, encode, pca_of

    try:
        pca = pca_of(_meta(model))
    except CodeError:
        pca = None
    if pca is not None and length in (pca.n_components, pca.n_components + 1):
        sigma = np.array([5.0], np.float32) if length > pca.n_components else None
        return encode(pca, _gaussian(pca.kernel_size)[None], noise_sigma=sigma)
    return (0.1 * rng.standard_normal((1, length))).astype(np.float32)


def probe_inputs(model, size=PROBE_SIZE, seed=0):
    """One batch-1 array per input of ``model``, in input order, made for its role."""
    from visionfw.conditioning import input_roles

    rng = np.random.default_rng(seed)
    scale = int(_meta(model).get("scale") or 1)
    h, w = size
    out = []
    for (_, role), tensor in zip(input_roles(model), model.inputs):
        shape = list(tensor.shape[1:])
        if role in ("image", "sr"):
            s = scale if role == "sr" else 1
            dims = [d if d is not None else v for d, v in zip(shape, (h * s, w * s, 3))]
            value = rng.random([1, *dims], dtype=np.float32)
        elif role == "kernel":
            side = shape[0] if shape and shape[0] is not None else 13
            value = _gaussian(side)[None]
        elif role == "kernel_code":
            value = _code(model, shape[-1], rng)
        elif role == "noise_sigma":
            value = np.full([1, *shape], 5.0, np.float32)
        else:                                   # scale
            value = np.full([1, *shape], float(scale), np.float32)
        out.append(np.asarray(value, np.dtype(tensor.dtype)))
    return out


def _as_list(outputs):
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs, key=_output_index)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def _output_index(name):
    found = re.search(r"(\d+)$", str(name))
    return int(found.group(1)) if found else 0


def _call(fn, probe):
    return [np.asarray(o) for o in _as_list(fn(probe if len(probe) > 1 else probe[0]))]


def _signature(model, probe, fixed):
    """Keras' ``input_signature``: per input its name and dtype, with the model's own (free)
    shape, or the probe's when the size is fixed."""
    import tensorflow as tf

    specs = [tf.TensorSpec(p.shape if fixed else (None, *t.shape[1:]), t.dtype, name=t.name)
             for p, t in zip(probe, model.inputs)]
    return [specs] if len(specs) > 1 else specs


def _save_tf(model, path, probe, fixed):
    model.export(path, format="tf_saved_model", verbose=False,
                 input_signature=_signature(model, probe, fixed))


def _unsupported_ops(message):
    """The TensorFlow ops a TFLite conversion error names, in order, each once."""
    listed = re.search(r"TF Select ops: ([^\n]*)", message)
    names = listed.group(1).split(",") if listed else \
        re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


@contextlib.contextmanager
def _quiet_stderr():
    """Standard error closed at the descriptor for a block: the TFLite converter prints
    every op it refuses there (the exception holds them too), the interpreter its delegate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _convert_tflite(saved, select_ops):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if select_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                               tf.lite.OpsSet.SELECT_TF_OPS]
    try:
        with _quiet_stderr():
            return converter.convert(), []
    except Exception as exc:        # ConverterError, or the MLIR pass's own error types
        ops = _unsupported_ops(str(exc))
        if not ops:
            lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
            raise ExportError(f"tflite: the converter failed: {lines[0] if lines else exc}") \
                from None
        return None, ops


def _write_tflite(model, folder, probe, fixed, select_ops):
    """``folder/model.tflite``; returns the TensorFlow (Select) ops it embeds."""
    scratch = os.path.join(folder, ".savedmodel")
    _save_tf(model, scratch, probe, fixed)
    data, ops = _convert_tflite(scratch, select_ops=False)
    embedded = []
    if data is None and select_ops:
        embedded = ops
        data, ops = _convert_tflite(scratch, select_ops=True)
    shutil.rmtree(scratch)
    if data is None:
        listed = ", ".join(ops)
        if not fixed and _folds_at_fixed_size(model, folder, probe):
            h, w = probe[0].shape[1:3]
            raise ExportError(f"tflite: at a free input size the network needs ops TFLite's "
                              f"builtins lack ({listed}: computed from the image size, e.g. "
                              f"a bicubic resize's weights); at a fixed size they fold away: "
                              f"add --size {h}x{w} (the LR size the app feeds)")
        raise ExportError(f"tflite: the network needs ops TFLite's builtins lack: {listed}; "
                          "--tflite-select-ops embeds them as TensorFlow ops (the app then "
                          "needs the Flex delegate)")
    with open(os.path.join(folder, FILES["tflite"]), "wb") as f:
        f.write(data)
    return embedded


def _folds_at_fixed_size(model, folder, probe):
    scratch = os.path.join(folder, ".savedmodel-fixed")
    try:
        _save_tf(model, scratch, probe, fixed=True)
        data, _ = _convert_tflite(scratch, select_ops=False)
        return data is not None
    except ExportError:
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_tflite(path, model, probe):
    import tensorflow as tf

    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")     # tf.lite.Interpreter announces its successor
        interpreter = tf.lite.Interpreter(model_path=path)
        runner = interpreter.get_signature_runner("serving_default")
        names = [t.name for t in model.inputs]
        feeds = {}
        for name in runner.get_input_details():
            feeds[name] = probe[names.index(name) if name in names else 0]
        return _as_list(runner(**feeds))


def _require_onnx():
    missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(ONNX_HINT)


def _write_onnx(model, folder, probe, fixed):
    """``folder/model.onnx`` through Keras' ONNX export (tf2onnx on TensorFlow); a graph with
    ops ONNX does not define (tf2onnx leaves USRNet's FFT as it is) is refused."""
    import logging

    _require_onnx()
    path = os.path.join(folder, FILES["onnx"])
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)       # it logs every op it cannot convert
    try:
        with warnings.catch_warnings(), _quiet_stderr():
            warnings.simplefilter("ignore")
            model.export(path, format="onnx", verbose=False,
                         input_signature=_signature(model, probe, fixed))
    except Exception as exc:
        lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
        raise ExportError(f"onnx: tf2onnx could not convert the network: "
                          f"{lines[-1] if lines else type(exc).__name__}") from None
    finally:
        logger.setLevel(level)
    import onnx

    graph = onnx.load(path).graph
    missing = sorted({n.op_type for n in graph.node
                      if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if missing:
        raise ExportError(f"onnx: the network needs ops ONNX does not define: "
                          f"{', '.join(missing)}; export it as savedmodel instead")


def _run_onnx(path, model, probe):
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnx: onnxruntime cannot load the export: "
                          f"{' '.join(str(exc).split())[:300]}") from None
    names = [t.name for t in model.inputs]
    feeds = {i.name: probe[names.index(i.name) if i.name in names else k]
             for k, i in enumerate(session.get_inputs())}
    return session.run(None, feeds)


def _run_saved(folder, probe):
    import tensorflow as tf

    loaded = tf.saved_model.load(folder)       # holds the variables while serve() runs
    return _call(loaded.serve, probe)


def _manifest(model, fmt, probe, fixed, diffs, embedded, source):
    from visionfw.conditioning import input_roles

    inputs = []
    for (_, role), tensor, value in zip(input_roles(model), model.inputs, probe):
        shape = list(value.shape) if fixed else [None, *tensor.shape[1:]]
        inputs.append({"name": tensor.name, "role": role, "shape": shape,
                       "dtype": str(np.dtype(tensor.dtype)), "holds": PROBE_NOTES[role]})
    meta = _meta(model)
    return {"format": fmt, "weights": source, "network": model.name,
            "scale": meta.get("scale"), "inputs": inputs,
            "outputs": [{"name": f"output_{i}", "shape": [None, *o.shape[1:]]}
                        for i, o in enumerate(model.outputs)],
            "tf_select_ops": embedded,
            "probe": {"shapes": [list(p.shape) for p in probe],
                      "max_abs_difference": diffs}}


def _write(model, fmt, folder, probe, fixed, select_ops):
    """The export written in ``folder`` and run on the probe: ``(outputs, embedded TensorFlow
    ops)``; the outputs are ``None`` when this TensorFlow cannot run what it wrote (TFLite
    with Select ops, and no Flex delegate in its interpreter)."""
    if fmt == "savedmodel":
        _save_tf(model, folder, probe, fixed)
        return _run_saved(folder, probe), []
    if fmt == "onnx":
        _write_onnx(model, folder, probe, fixed)
        return _run_onnx(os.path.join(folder, FILES["onnx"]), model, probe), []
    embedded = _write_tflite(model, folder, probe, fixed, select_ops)
    try:
        return _run_tflite(os.path.join(folder, FILES["tflite"]), model, probe), embedded
    except RuntimeError as exc:
        if not embedded or "Select TensorFlow op" not in str(exc):
            raise
        return None, embedded


def _prepare_out(out):
    from visionfw.fsutil import unwritable_reason

    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ExportError(f"--out {out} exists and is not an empty folder; remove it or choose "
                          "another")
    parent = os.path.dirname(out)
    reason = unwritable_reason(parent)                  # creates a missing parent
    if reason:
        raise ExportError(f"--out {out}: folder {parent} is not writable: {reason}")
    return out


def export_model(model, fmt, out, size=None, select_ops=False, tolerance=TOLERANCE,
                 echo=None, source=None):
    """Write ``model`` to the folder ``out`` in ``fmt`` and check it on a probe.

    Args:
        model: a visionfw-built ``keras.Model`` (its dictionary gives the input roles).
        fmt: ``'savedmodel'`` (``out`` is the SavedModel), ``'tflite'`` (``out/model.tflite``)
            or ``'onnx'`` (``out/model.onnx``); ``out/export.json`` describes the inputs.
        size: ``(h, w)``: export for this LR size only (batch 1, every input at the probe's
            shape); ``None`` keeps the network's free sizes.
        select_ops: TFLite may embed TensorFlow ops its builtins lack.
        tolerance: the largest ``max |export - keras|`` accepted, per output.
        echo: called with each line of the report.
        source: the weights file, recorded in the manifest.

    Returns the manifest (a dict). Raises :class:`ExportError` with one line.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()
    echo = echo or (lambda line: None)
    out = _prepare_out(out)
    fixed = size is not None
    probe = probe_inputs(model, size or PROBE_SIZE)
    expected = _call(lambda x: model(x, training=False), probe)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=os.path.dirname(out))
    try:
        got, embedded = _write(model, fmt, tmp, probe, fixed, select_ops)
        diffs = None
        if got is not None:
            diffs = [float(np.max(np.abs(np.asarray(g, np.float64) - e)))
                     for g, e in zip(got, expected)]
            for i, d in enumerate(diffs):
                echo(f"{fmt}: max |export - keras| = {d:.3g} (output {i}, probe "
                     f"{'x'.join(map(str, probe[0].shape))})")
            worst = max(diffs)
            if len(got) != len(expected) or not worst <= tolerance:
                hint = "" if fixed else (" (at a fixed input size, --size HxW, the "
                                         "converter may fold the size-dependent parts)")
                raise ExportError(f"{fmt}: max |export - keras| = {worst:.3g} exceeds the "
                                  f"tolerance {tolerance:g}; nothing written{hint}")
        with open(os.path.join(tmp, "export.json"), "w") as f:
            json.dump(_manifest(model, fmt, probe, fixed, diffs, embedded, source), f,
                      indent=1)
        if embedded:
            checked = "" if got is not None else ("; this TensorFlow's interpreter has no Flex "
                                                  "delegate, so the probe check was not made")
            echo(f"tflite: embeds TensorFlow (Select) ops {', '.join(embedded)}: the app "
                 f"needs the Flex delegate{checked}")
        os.chmod(tmp, 0o777 & ~_umask())
        if os.path.isdir(out):
            os.rmdir(out)                       # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target = out if fmt == "savedmodel" else os.path.join(out, FILES[fmt])
    shape = f", fixed LR size {size[0]}x{size[1]}" if fixed else ""
    echo(f"{model.name} -> {target} ({fmt}{shape}; inputs and outputs in "
         f"{os.path.join(out, 'export.json')})")
    with open(os.path.join(out, "export.json")) as f:
        return json.load(f)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_weights(weights, fmt, out, **options):
    """:func:`export_model` of the network a visionfw checkpoint rebuilds."""
    from visionfw.checkpoint import load_model

    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()
    model = load_model(weights, compile=False)
    return export_model(model, fmt, out, source=os.fspath(weights), **options)
