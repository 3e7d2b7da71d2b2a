"""The default recipe: one network from LR (and whatever labels its inputs take) to SR, a pixel
loss, Adam."""
import tensorflow as tf

from visionfw.conditioning import feed, roles_of
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.train import TrainError


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
    """One network, a pixel loss (``--loss`` l1 or mse) on HR, Adam.

    The network's inputs are fed by role from the batch: the LR image, and for a
    kernel-conditioned network the true kernel, noise level or scale that made the LR (see
    :mod:`visionfw.conditioning`).
    """

    def build(self):
        from visionfw.graph.builder import attach_spec, build

        model = build(self.model_dict)
        attach_spec(model, self.model_dict, self.model_name, self.hparams)
        self.networks = {"model": model}
        self.optimizers = {"model": self.adam()}
        self.roles = roles_of(model)
        other = [r for r in self.roles if r in ("sr", "kernel_code")]
        if other:
            raise TrainError(f"recipe sr feeds images, kernels, noise levels and scales; "
                             f"{model.name} takes {', '.join(other)} (a kernel-code network "
                             "trains with --recipe sftmd)")
        self.needs = tuple(r for r in self.roles if r != "image")

    def train_step(self, batch, opt):
        net, hr = self.networks["model"], batch["hr"]
        out = {}

        def loss():
            sr = tf.cast(net(feed(net, batch, self.roles), training=True), tf.float32)
            return pixel_loss(self.config.loss, sr, hr), sr

        out["loss"], sr = opt.minimize("model", loss)
        if self.want_gains:
            from visionfw.resize import imresize

            bicubic = imresize(batch["lr"], scale=self.config.scale)
            out["gain"] = tf.stop_gradient(patch_psnr(sr, hr) - patch_psnr(bicubic, hr))
        return out

    def predict(self, inputs):
        net = self.networks["model"]
        return tf.cast(net(feed(net, inputs, self.roles), training=False), tf.float32)
