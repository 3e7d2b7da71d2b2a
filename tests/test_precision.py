"""--precision bf16: every registered model and visionfw layer builds and runs under Keras'
mixed_bfloat16 policy, and gives its float32 output within bfloat16's precision."""
import numpy as np
import pytest

import visionfw
from tests.test_models import lr_batch, tiny
from visionfw import runtime


@pytest.fixture
def bf16():
    previous = runtime.set_precision("bf16")
    try:
        yield
    finally:
        import keras

        keras.mixed_precision.set_global_policy(previous)


def outputs(model, xs):
    from visionfw.inference import Predictor

    pred = Predictor(model)
    xs = xs if isinstance(xs, list) else [xs]
    return np.asarray(pred._fn(*xs))


@pytest.mark.parametrize("name", visionfw.model_names())
def test_every_model_under_bf16_matches_fp32(name, bf16):
    import keras

    keras.mixed_precision.set_global_policy("float32")
    ref_model = visionfw.build_model(name, compile=False, **tiny(name))
    xs = lr_batch(ref_model)
    reference = outputs(ref_model, xs)
    runtime.set_precision("bf16")
    model = visionfw.build_model(name, compile=False, **tiny(name))
    assert model.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.weights)
    model.set_weights(ref_model.get_weights())
    got = outputs(model, xs)
    assert got.dtype == np.float32 and got.shape == reference.shape
    # bfloat16 keeps 8 significant bits: the output is within 3% of its own range
    span = float(np.ptp(reference)) or 1.0
    assert np.abs(got - reference).max() <= 0.03 * span + 1e-3, (name, span)
    assert np.abs(got - reference).mean() <= 0.005 * span + 1e-4


def test_sft_keeps_its_own_policy_for_its_branches(bf16):
    import keras

    from visionfw.layers import SFT

    keras.mixed_precision.set_global_policy("float32")
    layer = SFT(hidden=4, dtype="mixed_bfloat16")
    x = np.ones((1, 4, 4, 2), np.float32)
    assert layer([x, x]).dtype == "bfloat16"
    assert all(sub.compute_dtype == "bfloat16"
               for sub in (layer.mul_conv1, layer.mul_conv2, layer.add_conv1, layer.add_conv2))


def test_visionfw_layers_under_bf16(bf16):
    import keras

    from visionfw.layers import SFT, CodeMap, PixelShuffle, Scale
    from visionfw.resize import BicubicResize

    x = np.random.default_rng(0).random((1, 8, 8, 4), np.float32)
    code = np.random.default_rng(1).random((1, 3), np.float32)
    for layer, args in [(PixelShuffle(2), x), (Scale(0.5), x), (BicubicResize(scale=2), x),
                        (CodeMap(), [x, code]), (SFT(hidden=4), [x, np.ones((1, 8, 8, 3),
                                                                            np.float32)])]:
        out = layer(args)
        assert out.dtype == "bfloat16", type(layer).__name__
        keras.mixed_precision.set_global_policy("float32")
        config = {k: v for k, v in layer.get_config().items() if k != "dtype"}
        fresh = type(layer).from_config(config)
        ref = fresh(args)
        if layer.weights:
            fresh.set_weights(layer.get_weights())
            ref = fresh(args)
        runtime.set_precision("bf16")
        np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(ref), atol=0.03,
                                   rtol=0.02)


def test_bf16_training_step_and_precision_flag(tmp_path):
    from tests.train_utils import make_trainer, tiny_config, write_images

    images = write_images(tmp_path / "imgs", n=2, size=(40, 40))
    try:
        trainer = make_trainer(tiny_config(tmp_path / "run", images, precision="bf16", steps=3))
        assert trainer.recipe.main_network().compute_dtype == "bfloat16"
        before = [np.array(v) for v in trainer.recipe.main_network().trainable_variables]
        result = trainer.fit()
        after = trainer.recipe.main_network().trainable_variables
        assert result["step"] == 3
        assert all(v.dtype == "float32" for v in after)
        assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, after))
    finally:
        import keras

        keras.mixed_precision.set_global_policy("float32")
    from visionfw.errors import HyperparameterError

    with pytest.raises(HyperparameterError, match="--precision 'fp16'"):
        runtime.set_precision("fp16")
