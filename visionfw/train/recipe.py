"""Recipes: the networks of a method, their optimisers, and what one training step computes.

A recipe does not apply gradients, clip, average or checkpoint anything: the
:class:`~visionfw.train.trainer.Trainer` does that, the same way for every recipe. A recipe
with several networks (IKC's predictor and corrector, DAN's restorer and estimator) lists
one :class:`Update` per loss it minimises::

    @register_recipe("ikc")
    class IKCRecipe(Recipe):
        def build(self):
            self.networks = {"predictor": ..., "corrector": ..., "sftmd": ...}
            self.optimizers = {"predictor": self.adam(), "corrector": self.adam()}

        def updates(self):
            return [Update("kernel_loss", "predictor", self.networks["predictor"]),
                    Update("correction_loss", "corrector", self.networks["corrector"])]

        def train_step(self, batch):
            ...
            return {"kernel_loss": ..., "correction_loss": ...}
"""
from dataclasses import dataclass

import keras
import tensorflow as tf

from visionfw.train import TrainError

_RECIPES = {}
_MODEL_RECIPES = {}


def register_recipe(name, models=()):
    """Class decorator: register a recipe, optionally as the default for some model names."""

    def wrap(cls):
        _RECIPES[name] = cls
        cls.name = name
        for model in models:
            _MODEL_RECIPES[model.lower()] = name
        return cls

    return wrap


def recipe_for(model_name):
    """The recipe class that trains ``model_name`` (the single-network SR recipe by default)."""
    key = _MODEL_RECIPES.get(str(model_name or "").lower(), "sr")
    return _RECIPES[key]


@dataclass(frozen=True)
class Update:
    """One loss minimised by one optimiser over one network's (or a list's) variables.

    Args:
        loss: the key of ``train_step``'s result to minimise.
        optimizer: the key of ``recipe.optimizers`` that applies the gradients.
        target: a ``keras.Model`` (its trainable variables) or a list of variables.
    """

    loss: str
    optimizer: str
    target: object

    def variables(self):
        if isinstance(self.target, keras.Model):
            return self.target.trainable_variables
        return list(self.target)


class Recipe:
    """Base class. Subclasses set ``networks`` and ``optimizers`` in :meth:`build` (which
    the trainer calls inside its distribution strategy's scope) and implement
    :meth:`updates`, :meth:`train_step` and :meth:`predict`.

    Args:
        config: the run's :class:`~visionfw.train.config.TrainConfig`.
        model_dict: the main network's link dictionary (resolved from ``config.model``).
        model_name, hparams: the registered model name and its resolved hyperparameters.
        schedule: the learning rate or Keras schedule the optimisers use.
    """

    name = None
    main = "model"          # the network saved as best.weights.h5

    def __init__(self, config, model_dict, model_name=None, hparams=None, schedule=1e-4):
        self.config = config
        self.model_dict = model_dict
        self.model_name = model_name
        self.hparams = dict(hparams or {})
        self.schedule = schedule
        self.networks = {}
        self.optimizers = {}
        self.want_gains = False

    def adam(self):
        """Adam with beta2 = 0.99, as the SR papers' training code uses."""
        return keras.optimizers.Adam(learning_rate=self.schedule, beta_1=0.9, beta_2=0.99)

    def build(self):
        raise NotImplementedError

    def updates(self):
        raise NotImplementedError

    def train_step(self, batch):
        """Losses (scalars, means over this replica's batch) and, for the PSNR-gain sampler,
        ``'gain'``: per-patch PSNR gains over bicubic."""
        raise NotImplementedError

    def predict(self, lr):
        """Super-resolve a float32 NHWC batch in [0, 1] (for validation)."""
        raise NotImplementedError

    def main_network(self):
        return self.networks[self.main]

    def synced_variables(self):
        """Non-trainable state averaged over replicas after each step (BatchNorm statistics)."""
        out = []
        for net in self.networks.values():
            out.extend(net.non_trainable_variables)
        return out


def pixel_loss(kind, sr, hr):
    if kind == "l1":
        return tf.reduce_mean(tf.abs(sr - hr))
    if kind == "mse":
        return tf.reduce_mean(tf.square(sr - hr))
    raise TrainError(f"--loss {kind!r}: expected l1 or mse")


def patch_psnr(a, b):
    """PSNR (dB) of each image of two NHWC batches in [0, 1]."""
    mse = tf.reduce_mean(tf.square(tf.clip_by_value(a, 0.0, 1.0) - b), axis=[1, 2, 3])
    return -10.0 * tf.math.log(tf.maximum(mse, 1e-12)) / tf.math.log(10.0)


@register_recipe("sr")
class SRRecipe(Recipe):
    """One network from LR to SR, a pixel loss (L1 or MSE), Adam. The default recipe."""

    def build(self):
        from visionfw.graph.builder import attach_spec, build

        model = build(self.model_dict)
        attach_spec(model, self.model_dict, self.model_name, self.hparams)
        self.networks = {"model": model}
        self.optimizers = {"model": self.adam()}

    def updates(self):
        return [Update("loss", "model", self.networks["model"])]

    def train_step(self, batch):
        lr, hr = batch
        sr = self.networks["model"](lr, training=True)
        out = {"loss": pixel_loss(self.config.loss, sr, hr)}
        if self.want_gains:
            from visionfw.resize import imresize

            bicubic = imresize(lr, scale=self.config.scale)
            out["gain"] = tf.stop_gradient(patch_psnr(sr, hr) - patch_psnr(bicubic, hr))
        return out

    def predict(self, lr):
        return self.networks["model"](lr, training=False)
