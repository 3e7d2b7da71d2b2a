"""Every registered model, at tiny hyperparameters: builds, runs, scales, trains a step, round-trips."""
import os

import numpy as np
import pytest

import visionfw
from visionfw.errors import CheckpointError, HyperparameterError
from visionfw.graph.builder import model_spec

# The smallest settings of each model that still exercise every link.
TINY = {
    "srresnet": {"B": 2, "filters": 8, "scale": 2},
    "vdsr": {"depth": 3, "filters": 8, "scale": 2},
    "bicubic": {"scale": 3},
    "vdsr-y": {"depth": 3, "filters": 8, "scale": 3},
    "srcnn": {"k": 3, "n1": 8, "n2": 4, "scale": 2},
    "fsrcnn": {"d": 8, "s": 4, "m": 2, "scale": 3},
    "espcn": {"n1": 8, "n2": 4, "scale": 2},
    "ikc-predictor": {"nf": 8, "code_len": 4, "scale": 4},
    "ikc-corrector": {"nf": 8, "code_len": 4, "scale": 4},
    "sftmd": {"nb": 2, "nf": 8, "scale": 2},
    "resunet": {"nc": 8, "nb": 1, "levels": 3},
    "usrnet": {"iterations": 2, "nc": 8, "nb": 1, "levels": 3, "hidden": 8, "scale": 2},
    "kenet": {"nf": 4, "fc": 8, "size": 5, "scale": 2},
    "dan-estimator": {"nf": 8, "nb": 1, "code_len": 4, "scale": 2},
    "dan-kernel-estimator": {"nf": 8, "nb": 1, "size": 5, "scale": 2},
    "dan-restorer": {"nf": 8, "nb": 1, "code_len": 4, "scale": 2},
    "pdm-kernel": {"latent": 2, "nf": 8, "nb": 1, "size": 5, "scale": 2},
    "pdm-noise": {"latent": 2, "nf": 8, "nb": 1},
    "patchgan": {"nf": 8, "nb": 2, "stride": 2},
    "redeg-degnet": {"omega": 8, "nf": 4, "size": 16},
    "redeg-synnet": {"omega": 8, "nf": 4, "mapping": 1, "levels": 2, "w_dim": 8},
    "redeg-disc": {"omega": 8, "nf": 4, "size": 16},
}


def tiny(name):
    if name not in TINY:
        pytest.fail(f"add tiny hyperparameters for model {name!r} to TINY")
    return TINY[name]


@pytest.fixture(params=visionfw.model_names())
def name(request):
    return request.param


def lr_batch(model, n=2, size=12):
    """Random inputs for every model input: LR images of ``size`` pixels (for a model that takes
    the up-sampled image, the size that makes a ``size * scale`` output), vectors for the rest."""
    meta = model_spec(model)["dict"].get("meta", {})
    if meta.get("input") == "upsampled":
        size = size * meta["scale"] + meta.get("shrink", 0)
    from visionfw.conditioning import ConditioningError, roles_of

    rng = np.random.default_rng(0)
    xs = [rng.random((n, *[size if d is None else d for d in t.shape[1:]]), dtype=np.float32)
          for t in model.inputs]
    try:
        roles = roles_of(model)
    except ConditioningError:                   # inputs without roles (ReDegNet): as drawn
        roles = []
    for i, role in enumerate(roles):
        if role == "scale":                     # a network that takes the scale as an input
            xs[i] = np.full(xs[i].shape, meta["scale"], np.float32)
        elif role == "sr":                      # DAN's estimators: the current SR image
            xs[i] = rng.random((n, size * meta["scale"], size * meta["scale"],
                                xs[i].shape[-1]), dtype=np.float32)
        elif role == "kernel":                  # a 5x5 blur, normalised
            xs[i] = rng.random((n, 5, 5), dtype=np.float32)
            xs[i] /= xs[i].sum(axis=(1, 2), keepdims=True)
    return xs[0] if len(xs) == 1 else xs


def test_builds_runs_and_scales(name):
    hp = tiny(name)
    model = visionfw.build_model(name, **hp)
    x = lr_batch(model)
    y = np.asarray(model(x, training=False))
    meta = visionfw.model_dict(name, **hp)["meta"]
    if meta.get("output") == "noise":             # PDM's noise: the LR image's size
        assert y.shape == (2, 12, 12, 3)
    elif meta.get("output") == "score":           # a discriminator's map of patch scores,
        assert y.shape == ((2, 1) if y.ndim == 2 else (2, 6, 6, 8))     # or one per image
    elif meta.get("output") == "representation":  # ReDegNet's DegNet: Omega
        assert y.shape == (2, meta["omega"])
    elif meta.get("output") == "lq_image":        # ReDegNet's SynNet: an LQ image at HQ size
        assert y.shape == (2, 12, 12, 3)
    elif meta.get("output") == "kernel_code":     # IKC's Predictor and Corrector, DAN's
        assert y.shape == (2, meta["code_len"])
    elif meta.get("output") == "kernel":          # KENet, DAN's kernel estimator, PDM's
        side = meta["kernel_size"]
        assert y.shape == (2, side, side)
        np.testing.assert_allclose(y.sum(axis=(1, 2)), 1, rtol=1e-5)
        assert y.min() >= 0
    else:
        s = meta["scale"]
        assert y.shape == (2, 12 * s, 12 * s, model.inputs[0].shape[-1])
    assert np.all(np.isfinite(y))


def test_trains_one_step(name):
    """One eager Adam step on an L1 loss changes the weights of every trainable model (the
    gradient reaches them through every link); a model without weights has none to change."""
    import keras
    import tensorflow as tf

    model = visionfw.build_model(name, compile=False, **tiny(name))
    x = lr_batch(model)
    y = np.asarray(model(x, training=False))
    before = [w.copy() for w in model.get_weights()]
    # a target off the output in both directions (under L1, a shift of one sign everywhere
    # gives a softmax kernel no gradient)
    target = np.clip(y + np.random.default_rng(2).normal(0, 0.1, y.shape), 0, 1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(model(x, training=True) - target.astype("float32")))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)
    if model.trainable_weights:
        keras.optimizers.Adam(1e-4).apply_gradients(zip(grads, model.trainable_weights))
    after = model.get_weights()
    if model.trainable_weights:
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    else:
        assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_a_built_model_is_compiled_for_fit():
    """build_model compiles (Adam, L1) unless told not to, so Keras' fit trains it as it is."""
    model = visionfw.build_model("srcnn", **TINY["srcnn"])
    x = lr_batch(model)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, np.zeros_like(model.predict(x, verbose=0)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_save_load_round_trip_from_file_alone(name, tmp_path):
    model = visionfw.build_model(name, **tiny(name))
    for w in model.weights:  # weights away from their initial values
        w.assign(np.random.default_rng(1).normal(size=w.shape).astype("float32") * 0.1
                 + w.numpy())
    path = visionfw.save_model(model, tmp_path / "m.weights.h5")
    again = visionfw.load_model(path)
    x = lr_batch(model)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)),
                                  np.asarray(again(x, training=False)))
    spec = visionfw.read_spec(path)
    assert spec["model"] == name
    assert spec["hparams"].get("scale", 1) == tiny(name).get("scale", 1)   # resunet: scale 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.weights.h5"]  # no temporary left
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.weights.h5").stat().st_mode & 0o777 == 0o666 & ~mask


def test_every_model_has_a_docstring_naming_its_hyperparameters(name):
    mdef = visionfw.models.get_model_def(name)
    for hp in mdef.hparams:
        assert hp in mdef.doc, f"{name}: docstring does not describe {hp}"


def test_unknown_model_and_hyperparameter_list_the_valid_ones():
    with pytest.raises(HyperparameterError, match="did you mean 'srresnet'.*valid models: "
                                                  "bicubic, .*srresnet, usrnet, vdsr"):
        visionfw.model_dict("SRResNt")
    with pytest.raises(HyperparameterError, match=r"no hyperparameter blocks; valid: B \(int"):
        visionfw.model_dict("srresnet", blocks=3)
    with pytest.raises(HyperparameterError, match=r"B='eight' is not a valid int"):
        visionfw.model_dict("srresnet", B="eight")
    assert visionfw.model_dict("srresnet", B="3", batchnorm="false") == \
        visionfw.model_dict("srresnet", B=3, batchnorm=False)


def test_load_model_with_hyperparameter_override(tmp_path):
    # VDSR's weights do not depend on the scale of its bicubic stage
    model = visionfw.build_model("vdsr", **TINY["vdsr"])
    path = visionfw.save_model(model, tmp_path / "v.weights.h5")
    x4 = visionfw.load_model(path, scale=4)
    assert x4.predict(np.zeros((1, 5, 5, 3), "float32"), verbose=0).shape == (1, 20, 20, 3)


def test_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="no such weights file"):
        visionfw.load_model(tmp_path / "missing.weights.h5")
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(CheckpointError, match="not a readable HDF5"):
        visionfw.load_model(bad)
    with pytest.raises(CheckpointError, match="must end in .weights.h5"):
        visionfw.save_model(visionfw.build_model("bicubic"), tmp_path / "x.h5")
    small = visionfw.build_model("srresnet", B=1, filters=8, scale=2)
    path = visionfw.save_model(small, tmp_path / "s.weights.h5")
    other = visionfw.build_model("srresnet", B=1, filters=16, scale=2)
    with pytest.raises(CheckpointError, match="weights do not fit model 'SRResNet': "
                                              "filters=8 in the file, 16 here"):
        visionfw.checkpoint.load_weights(other, path)
    x4 = visionfw.build_model("srresnet", B=1, filters=8, scale=4)
    with pytest.raises(CheckpointError, match="the checkpoint is x2, the model x4"):
        visionfw.checkpoint.load_weights(x4, path)
    with pytest.raises(CheckpointError, match="the file holds srresnet, the model is vdsr"):
        visionfw.checkpoint.load_weights(visionfw.build_model("vdsr", depth=2), path)
    with pytest.raises(CheckpointError, match="not a weights file .no HDF5 signature"):
        visionfw.checkpoint.load_weights(other, bad)       # garbage named with a model
    # a Keras file without our dictionary: Keras' own message, whole (no dangling colon)
    import re

    plain_x4 = tmp_path / "plain_x4.weights.h5"
    small.save_weights(plain_x4)
    with pytest.raises(CheckpointError) as info:
        visionfw.checkpoint.load_weights(x4, plain_x4)
    assert not str(info.value).endswith(":") and "\n" not in str(info.value)
    assert re.search(r"layer \S+ has \d+ weights in the model but \d+ in the file|is \(",
                     str(info.value)), str(info.value)
    plain = tmp_path / "plain.weights.h5"
    small.save_weights(plain)
    with pytest.raises(CheckpointError, match="holds no visionfw dictionary"):
        visionfw.load_model(plain)


def test_loading_a_checkpoint_warns_nothing(tmp_path):
    import warnings

    model = visionfw.build_model("srresnet", B=1, filters=8, scale=2)
    model.fit(np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 16, 16, 3), np.float32),
              epochs=1, verbose=0)                       # an optimiser with state
    visionfw.save_model(model, tmp_path / "m.weights.h5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        visionfw.load_model(tmp_path / "m.weights.h5")
        visionfw.load_model(tmp_path / "m.weights.h5", compile=False)
    assert [str(w.message) for w in caught] == []


def test_weights_of_another_configuration_name_the_weight_and_both_shapes(tmp_path):
    from visionfw.checkpoint import load_weights
    from visionfw.errors import CheckpointError

    small = visionfw.build_model("srresnet", B=1, filters=8, scale=2, compile=False)
    visionfw.save_model(small, tmp_path / "s.weights.h5")
    wide = visionfw.build_model("srresnet", B=1, filters=16, scale=2, compile=False)
    with pytest.raises(CheckpointError) as err:
        load_weights(wide, tmp_path / "s.weights.h5")
    message = str(err.value)
    assert "convo_0/kernel is (9, 9, 3, 16) in the model but (9, 9, 3, 8) in the file" in message
    assert "\n" not in message and not message.rstrip().endswith(":")
