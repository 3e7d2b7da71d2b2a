"""Weights files that carry their own dictionary, so a model reloads from the file alone.

A checkpoint is a Keras ``.weights.h5`` file whose root attribute ``visionfw_spec`` holds JSON:
``{"format": 1, "model": name or null, "hparams": {...}, "dict": {...}}``. It is written to a
temporary file beside the target and renamed, so an interrupted save never leaves half a file.
"""
import json
import os
import tempfile
import warnings

from visionfw.errors import CheckpointError
from visionfw.graph.schema import default_file_mode

SPEC_ATTR = "visionfw_spec"


def save_model(model, path):
    """Write ``model``'s weights and its dictionary to ``path`` (ending in ``.weights.h5``)."""
    import h5py

    from visionfw.graph.builder import model_spec

    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise CheckpointError(f"{path}: a checkpoint name must end in .weights.h5")
    spec = model_spec(model)
    if spec is None:
        raise CheckpointError(
            f"{path}: model {model.name!r} was not built by visionfw from a JSON-compatible "
            "dictionary, so the checkpoint could not rebuild it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CheckpointError(f"{path}: folder {folder} does not exist")
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
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such weights file")
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
        raise CheckpointError(f"{path}: weights do not fit model {model.name!r}: "
                              f"{_mismatch(exc)}") from None
    return model


def _mismatch(exc):
    """One line from Keras' loading error: which weight, which shapes, how many objects."""
    import re

    text = str(exc)
    count = re.search(r"A total of (\d+) objects could not be loaded", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    path = re.search(r"Target variable: <Variable path=([^,]+),", text)
    if shapes and path:
        many = f" (and {int(count.group(1)) - 1} more objects)" if count and int(
            count.group(1)) > 1 else ""
        return (f"{path.group(1)} is {shapes.group(1)} in the model but "
                f"{shapes.group(2)} in the file{many}; the file was saved from another "
                "configuration (check --param and --scale, or load it without naming a model)")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def load_model(path, compile=True, **overrides):
    """Rebuild a model from a checkpoint alone and load its weights.

    ``overrides`` change hyperparameters of a registered model (e.g. ``scale`` for a model
    whose weights do not depend on it); the new dictionary must still fit the weights.
    """
    from visionfw.graph.builder import attach_spec, build
    from visionfw.models import build_model

    spec = read_spec(path)
    if overrides:
        if not spec.get("model"):
            raise CheckpointError(f"{path}: holds a plain dictionary, which takes no "
                                  f"hyperparameters ({sorted(overrides)})")
        model = build_model(spec["model"], compile=compile, **{**spec.get("hparams", {}),
                                                               **overrides})
    else:
        model = build(spec["dict"])
        attach_spec(model, spec["dict"], spec.get("model"), spec.get("hparams"))
        if compile:
            import keras

            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mean_absolute_error")
    return load_weights(model, path)
