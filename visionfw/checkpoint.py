"""Weights files that carry their own dictionary, so a model reloads from the file alone.

A checkpoint is a Keras ``.weights.h5`` file whose root attribute ``visionfw_spec`` holds JSON:
``{"format": 1, "model": name or null, "hparams": {...}, "dict": {...}}``, and ``"plugins":
[{"plugin": FILE_OR_MODULE, "names": {name: kind}}]`` when the dictionary names layers, blocks
or models of user plugins (:mod:`visionfw.plugins`). It is written to a temporary file beside
the target and renamed, so an interrupted save never leaves half a file.
"""
import json
import os
import tempfile
import warnings

from visionfw.errors import CheckpointError
from visionfw.graph.schema import default_file_mode

SPEC_ATTR = "visionfw_spec"


def save_model(model, path):
    """Write ``model``'s weights and its dictionary to ``path`` (ending in ``.weights.h5``),
    with the user plugins the dictionary needs. A missing folder is made."""
    import h5py

    from visionfw.graph.builder import model_spec
    from visionfw.plugins import plugins_needed

    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise CheckpointError(f"{path}: a checkpoint name must end in .weights.h5")
    spec = model_spec(model)
    if spec is None:
        raise CheckpointError(
            f"{path}: model {model.name!r} was not built by visionfw from a JSON-compatible "
            "dictionary, so the checkpoint could not rebuild it")
    plugins = plugins_needed(spec)
    if plugins:
        spec["plugins"] = plugins
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            reason = ("a file of that name is in the way" if os.path.exists(folder)
                      else exc.strerror or type(exc).__name__)
            raise CheckpointError(f"{path}: cannot make folder {folder}: {reason}") from None
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=folder)
    os.close(fd)
    os.chmod(tmp, default_file_mode())
    try:
        model.save_weights(tmp, overwrite=True)
        with h5py.File(tmp, "a") as f:
            f.attrs[SPEC_ATTR] = json.dumps(spec)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_spec(path):
    """The ``{"model", "hparams", "dict"}`` record stored in a checkpoint."""
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get(SPEC_ATTR)
    except OSError as exc:
        raise CheckpointError(f"{path}: not a readable HDF5 weights file ({exc})") from None
    if text is None:
        raise CheckpointError(f"{path}: holds no visionfw dictionary; name the model as well, "
                              "e.g. test.py srresnet --weights FILE")
    try:
        spec = json.loads(text)
        spec["dict"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path}: its visionfw dictionary attribute is damaged") from None
    return spec


def load_weights(model, path):
    """Load ``path`` into ``model``, with a one-line error when they do not fit."""
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such weights file")
    if not h5py.is_hdf5(path):
        raise CheckpointError(f"{path}: not a weights file (no HDF5 signature; a .weights.h5 "
                              "file from train.py, convert or save_model is expected)")
    try:
        with warnings.catch_warnings():
            # Keras walks bookkeeping containers of nested functional models that hold no
            # weights and warns for each; the weights themselves load (tests compare outputs).
            warnings.filterwarnings("ignore", message="Skipping nested container")
            # The optimiser state of a checkpoint is not restored (training resumes from its
            # own checkpoints), so a fresh optimiser of another size is no news.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(path)
    except Exception as exc:  # Keras raises ValueError, KeyError or OSError here
        why = "; ".join(w for w in (_settings_differ(model, path), _mismatch(exc)) if w)
        raise CheckpointError(f"{path}: weights do not fit model {model.name!r}: {why}") from None
    return model


def _settings_differ(model, path):
    """How the file's settings differ from the model's, from the dictionaries both carry:
    ``the checkpoint is x2, the model x4; filters=8 in the file, 16 here``; None when
    neither tells."""
    from visionfw.graph.builder import model_spec

    try:
        spec = read_spec(path)
    except CheckpointError:
        return None
    mine = model_spec(model) or {}
    said = []
    scales = [((d.get("dict") or {}).get("meta") or {}).get("scale") for d in (spec, mine)]
    if None not in scales and scales[0] != scales[1]:
        said.append(f"the checkpoint is x{scales[0]}, the model x{scales[1]}")
    if spec.get("model") and spec.get("model") == mine.get("model"):
        a, b = spec.get("hparams") or {}, mine.get("hparams") or {}
        for key in sorted(set(a) | set(b)):
            if key != "scale" and str(a.get(key)) != str(b.get(key)):
                said.append(f"{key}={a.get(key)} in the file, {b.get(key)} here")
    elif spec.get("model") != mine.get("model"):
        said.append(f"the file holds {spec.get('model') or 'a plain dictionary'!s}, the model "
                    f"is {mine.get('model') or 'a plain dictionary'}")
    if not said:
        return None
    return "; ".join(said) + " (load the file without naming a model to rebuild its own)"


def _mismatch(exc):
    """One line from Keras' loading error: which weight, which shapes, how many objects."""
    import re

    text = str(exc)
    count = re.search(r"A total of (\d+) objects could not be loaded", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    path = re.search(r"Target variable: <Variable path=([^,]+),", text)
    many = (f" (and {int(count.group(1)) - 1} more)" if count and int(count.group(1)) > 1
            else "")
    if shapes and path:
        return (f"{path.group(1)} is {shapes.group(1)} in the model but "
                f"{shapes.group(2)} in the file{many}; the file was saved from another "
                "configuration (check --param and --scale, or load it without naming a model)")
    layer = re.search(r"Layer '([^']+)' expected (\d+) variables, but received (\d+)", text)
    if layer:
        return (f"layer {layer.group(1)} has {layer.group(2)} weights in the model but "
                f"{layer.group(3)} in the file{many}; the file was saved from another "
                "architecture")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:3]).rstrip(":") if lines else type(exc).__name__


def differences(stored, given, path="", limit=3):
    """Where two JSON-like values differ: up to ``limit`` lines ``where: A in the file, B
    here``, and the count of all differences."""
    found = []

    def walk(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                here = f"{where}.{key}" if where else str(key)
                if key not in b:
                    found.append(f"{here} is {_short(a[key])} in the file and absent here")
                elif key not in a:
                    found.append(f"{here} is absent in the file and {_short(b[key])} here")
                else:
                    walk(a[key], b[key], here)
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{i}]")
        elif a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
                             and list(a) == list(b)):
            found.append(f"{where or 'the dictionary'} is {_short(a)} in the file but "
                         f"{_short(b)} here")

    walk(stored, given, path)
    return found[:limit], len(found)


def _short(value, width=40):
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def dict_mismatch(path, model, name=None, hparams=None):
    """``None`` when the checkpoint at ``path`` was saved from the dictionary ``model`` was
    built from, else one line saying how they differ.

    For a registered model named as in the file, the reference is the file's hyperparameters
    with the ones given now (``hparams``) on top: an explicit ``--param``/``--scale`` is the
    user's choice, a setting the file holds and the command omits is not. A checkpoint
    without a dictionary, or a model without one, is not compared."""
    from visionfw.graph.builder import model_spec

    try:
        spec = read_spec(path)
    except CheckpointError:
        return None
    mine = model_spec(model)
    if mine is None:
        return None
    stored = spec["dict"]
    if name is not None and spec.get("model") == name:
        from visionfw.graph.schema import dict_to_json
        from visionfw.models import model_dict

        try:    # the JSON form attach_spec records, so both sides compare alike
            stored = json.loads(dict_to_json(model_dict(name, **{**spec.get("hparams", {}),
                                                                **(hparams or {})}),
                                             indent=None))
        except Exception:  # the file's hyperparameters no longer resolve: compare as saved
            pass
    given = mine["dict"]
    stored = {k: v for k, v in stored.items() if k != "name"}
    given = {k: v for k, v in given.items() if k != "name"}
    lines, count = differences(stored, given)
    if not count:
        return None
    saved_as = f"model {spec['model']!r}" if spec.get("model") else "a dictionary"
    more = f" (and {count - len(lines)} more)" if count > len(lines) else ""
    return (f"{path} was saved from {saved_as} that differs from the one given: "
            f"{'; '.join(lines)}{more}")


def load_model(path, compile=True, **overrides):
    """Rebuild a model from a checkpoint alone and load its weights.

    ``overrides`` change hyperparameters of a registered model (e.g. ``scale`` for a model
    whose weights do not depend on it); the new dictionary must still fit the weights.
    A layer, block or model of a user plugin that is not loaded is a one-line error naming
    the plugin the checkpoint recorded.
    """
    from visionfw.graph.builder import attach_spec, build
    from visionfw.plugins import check_plugins

    spec = read_spec(path)
    check_plugins(spec, path)
    d, hparams = spec["dict"], spec.get("hparams")
    if overrides:
        if not spec.get("model"):
            raise CheckpointError(f"{path}: holds a plain dictionary, which takes no "
                                  f"hyperparameters ({sorted(overrides)})")
        from visionfw.models import resolve_model

        d, _, hparams = resolve_model(spec["model"], **{**(hparams or {}), **overrides})
        # what training recorded beside the hyperparameters (the PCA, the trained scales)
        # stays with the weights
        recorded = {k: v for k, v in (spec["dict"].get("meta") or {}).items()
                    if k not in (d.get("meta") or {})}
        if recorded:
            d = dict(d, meta={**(d.get("meta") or {}), **recorded})
    model = build(d)
    attach_spec(model, d, spec.get("model"), hparams)
    if compile:
        import keras

        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mean_absolute_error")
    return load_weights(model, path)


def transfer_weights(model, path):
    """Start ``model`` from a checkpoint of another configuration: every layer whose name
    and weight shapes match a layer of the file's model takes its weights (fine-tuning from
    converted or earlier weights). Returns ``{"loaded": [...], "mismatched": {name: why},
    "not_in_file": [...], "unused": [...]}`` (layer names); a one-line error when nothing
    matches."""
    source = load_model(path, compile=False)
    theirs = {layer.name: layer for layer in source.layers if layer.weights}
    report = {"loaded": [], "mismatched": {}, "not_in_file": [], "unused": []}
    for layer in model.layers:
        if not layer.weights:
            continue
        other = theirs.pop(layer.name, None)
        if other is None:
            report["not_in_file"].append(layer.name)
            continue
        mine = [tuple(w.shape) for w in layer.weights]
        found = [tuple(w.shape) for w in other.weights]
        if mine != found:
            report["mismatched"][layer.name] = (f"{_shapes(found)} in the file, "
                                                f"{_shapes(mine)} here")
            continue
        layer.set_weights(other.get_weights())
        report["loaded"].append(layer.name)
    report["unused"] = sorted(theirs)
    if not report["loaded"]:
        raise CheckpointError(f"{path}: no layer of {source.name!r} matches a layer of "
                              f"{model.name!r} by name and weight shapes; nothing to start from")
    return report


def _shapes(shapes):
    return " ".join("x".join(str(d) for d in s) for s in shapes[:2]) + (
        " ..." if len(shapes) > 2 else "")


def describe_transfer(path, report):
    """One line for the training log about :func:`transfer_weights`."""
    n = len(report["loaded"])
    total = n + len(report["mismatched"]) + len(report["not_in_file"])
    parts = [f"--init-weights {path}: {n} of {total} layers with weights loaded"]
    if report["mismatched"]:
        shown = "; ".join(f"{k} ({v})" for k, v in list(report["mismatched"].items())[:3])
        more = len(report["mismatched"]) - 3
        parts.append(f"other shapes: {shown}" + (f" and {more} more" if more > 0 else ""))
    if report["not_in_file"]:
        parts.append(f"not in the file: {_listed(report['not_in_file'])}")
    if report["unused"]:
        parts.append(f"unused from the file: {_listed(report['unused'])}")
    return "; ".join(parts)


def _listed(names, shown=4):
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more"
                                       if len(names) > shown else "")
