"""Recipes own their step: several networks, several optimisers, updates on their own schedules,
exact resume, EMA of the networks a recipe names; typed recipe parameters on train.py."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tests.train_utils import (assert_same_state, make_trainer, resume_from_copy, run_cli,
                               run_py, tiny_config, train_tiny_run, write_images)
from visionfw.params import Hyperparameter
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.recipes.sr import pixel_loss
from visionfw.train import TrainError


@register_recipe("test-two-networks")
class TwoNetworks(Recipe):
    """A generator stepped three times per batch, a discriminator every second step, the
    discriminator's input jittered with the run's checkpointed RNG."""

    params = (Hyperparameter("generator_steps", int, 3), Hyperparameter("adv", float, 0.01),
              Hyperparameter("traced", bool, False))
    period = 2
    traces = 0          # how many times the generator's loss was traced
    main = "generator"
    ema = ("generator",)

    def build(self):
        import keras

        from visionfw.graph.builder import build

        self.networks = {"generator": build(self.model_dict)}
        self.networks["discriminator"] = build({
            "name": "D",
            "convo": [(0, 1)],
            "convo_par": {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
            "aactv": [(1, 2)], "aactv_sub": "LeakyReLU",
            "pool": [(2, 3)], "pool_sub": "GlobalAveragePooling2D",
            "dense": [(3, 4)], "dense_par": {"units": 1},
        })
        self.optimizers = {"generator": self.adam(),
                           "discriminator": keras.optimizers.Adam(1e-3)}

    def train_step(self, batch, opt):
        g, d = self.networks["generator"], self.networks["discriminator"]
        lr, hr = batch["lr"], batch["hr"]
        bce = tf.nn.sigmoid_cross_entropy_with_logits

        def g_loss(lr=lr, hr=hr):
            TwoNetworks.traces += 1
            sr = g(lr, training=True)
            fake = d(sr, training=False)
            adv = tf.reduce_mean(bce(tf.ones_like(fake), fake))
            return pixel_loss("l1", sr, hr) + self.options["adv"] * adv

        if self.options["traced"]:
            update = opt.minimizer("generator", g_loss)
            for _ in range(self.options["generator_steps"]):
                loss = update(lr, hr)
        else:
            for _ in range(self.options["generator_steps"]):
                loss = opt.minimize("generator", g_loss)
        out = {"loss": loss}
        if opt.every(2):
            sr = tf.stop_gradient(g(lr, training=False))

            def d_loss():
                jitter = opt.rng.normal(tf.shape(hr), stddev=0.01)
                real, fake = d(hr + jitter, training=True), d(sr + jitter, training=True)
                return tf.reduce_mean(bce(tf.ones_like(real), real)
                                      + bce(tf.zeros_like(fake), fake))

            out["d_loss"] = opt.minimize("discriminator", d_loss)
        return out

    def predict(self, inputs):
        return self.networks["generator"](inputs["lr"], training=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("train"))


def config(out, images, **extra):
    extra.setdefault("steps", 4)
    extra.setdefault("hparams", {"B": "1", "filters": "4", "batchnorm": "false"})
    return tiny_config(out, images, recipe="test-two-networks", ema=0.9, **extra)


def test_two_networks_on_two_schedules_resume_bit_exactly(tmp_path, images):
    straight = make_trainer(config(tmp_path / "a", images, save_every=2))
    g = straight.recipe.networks["generator"].trainable_variables
    d = straight.recipe.networks["discriminator"].trainable_variables
    # the EMA covers the generator only
    targets = {id(v) for v in straight.ema_targets}
    assert targets == {id(v) for v in g} and not targets & {id(v) for v in d}
    assert straight.fit()["step"] == 4
    opts = straight.recipe.optimizers
    assert int(opts["generator"].iterations.numpy()) == 12        # 3 updates x 4 steps
    assert int(opts["discriminator"].iterations.numpy()) == 2     # steps 0 and 2
    assert len(straight.ema_vars) == len(g)
    assert any(not np.allclose(np.asarray(e), np.asarray(v))
               for e, v in zip(straight.ema_vars, g))

    second = resume_from_copy(tmp_path / "a", config(tmp_path / "b", images), 2)
    assert int(second.recipe.optimizers["generator"].iterations.numpy()) == 6
    assert second.fit(resume=True)["step"] == 4
    assert_same_state(straight, second)
    for x, y in zip(straight.ema_vars, second.ema_vars):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(straight.rng.state.numpy(), second.rng.state.numpy())


def test_an_update_repeated_in_a_step_is_traced_once_and_changes_nothing(tmp_path, images):
    """opt.minimizer: the generator's three updates per step run one traced function; the
    run ends bit-identical to the same updates traced in line (weights, Adam slots, EMA)."""
    inline = make_trainer(config(tmp_path / "inline", images))
    TwoNetworks.traces = 0
    inline.fit()
    inline_traces, TwoNetworks.traces = TwoNetworks.traces, 0
    once = make_trainer(config(tmp_path / "once", images, recipe_params={"traced": "true"}))
    once.fit()
    # two phases (period 2), so two step functions; in line each traces the loss 3 times
    assert inline_traces == 6 and TwoNetworks.traces == 2
    assert int(once.recipe.optimizers["generator"].iterations.numpy()) == 12
    assert_same_state(inline, once)
    for x, y in zip(inline.ema_vars, once.ema_vars):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_recipe_parameters_are_typed_and_checked(tmp_path, images):
    trainer = make_trainer(config(tmp_path / "p", images,
                                  recipe_params={"generator_steps": "1"}))
    assert trainer.recipe.options == {"generator_steps": 1, "adv": 0.01, "traced": False}
    trainer.fit()
    assert int(trainer.recipe.optimizers["generator"].iterations.numpy()) == 4
    with pytest.raises(TrainError, match=r"recipe test-two-networks has no parameter "
                                         r"\(--recipe-param\) steps; valid: generator_steps"):
        make_trainer(config(tmp_path / "q", images, recipe_params={"steps": "2"}))
    with pytest.raises(TrainError, match="'generator_steps=x' is not a valid int|"
                                         "generator_steps='x' is not a valid int"):
        make_trainer(config(tmp_path / "r", images, recipe_params={"generator_steps": "x"}))


def test_a_schedule_the_period_does_not_fit_is_refused(tmp_path, images):
    class Bad(TwoNetworks):
        period = 3

    register_recipe("test-bad-period")(Bad)
    trainer = make_trainer(tiny_config(tmp_path / "bad", images, recipe="test-bad-period"))
    with pytest.raises(TrainError, match=r"opt.every\(2\) needs a period that 2 divides"):
        trainer.fit()


def test_train_py_recipe_options_and_unknown_recipe(tmp_path, images):
    out = tmp_path / "run"
    r = train_tiny_run(out, images)
    assert r.returncode == 0, r.stderr
    saved = json.loads((out / "settings.json").read_text())
    assert saved["recipe"] == {"name": "sr", "params": {}}
    assert saved["settings"]["recipe"] == "sr"
    r = run_cli("train.py", "srresnet", "--recipe", "srr", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "unknown recipe 'srr'; did you mean 'sr'?" in r.stderr
    r = run_cli("train.py", "srresnet", "--recipe-param", "foo=1", "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "recipe sr has no parameter (--recipe-param) foo" in r.stderr
