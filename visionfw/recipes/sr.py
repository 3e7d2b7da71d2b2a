"""The default recipe: one network from LR (and whatever labels its inputs take) to SR, a pixel
loss, Adam."""
import tensorflow as tf

from visionfw.conditioning import feed, roles_of
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.train import TrainError


def pixel_loss(kind, sr, hr):
    from visionfw.losses import get_loss

    if kind not in ("l1", "mse"):
        raise TrainError(f"--loss {kind!r}: expected l1 or mse")
    return get_loss(kind)(sr, hr)


class ModelView:
    """How a network sees images, read from its ``meta`` as test.py reads it
    (:class:`visionfw.methods.sr.SRMethod`): its colour space (``rgb``, ``y``, ``ycbcr_full``),
    whether it takes the bicubic up-sampling instead of the LR image (``input: upsampled``),
    and by how many pixels its output is smaller than HR (``shrink``). Training feeds and scores
    it the same way, so val.csv and test.py agree and a model trained here is fed at test time
    what it saw in training."""

    def __init__(self, model):
        from visionfw.color import COLORS
        from visionfw.methods.base import model_meta

        meta = model_meta(model)
        self.color = meta.get("color", "rgb" if model.inputs[0].shape[-1] == 3 else "y")
        if self.color not in COLORS:
            raise TrainError(f"model {model.name!r} declares color {self.color!r}; training "
                             f"knows {', '.join(COLORS)}")
        self.upsampled = meta.get("input") == "upsampled"
        self.shrink = int(meta.get("shrink", 0))

    def input(self, lr, hr_shape):
        """The network's image input from the LR batch (bicubic to ``hr_shape``, clipped to
        [0, 1], if it takes the up-sampled image)."""
        from visionfw.color import to_model_space
        from visionfw.resize import imresize

        x = lr
        if self.upsampled:                          # clipped, as test.py's bicubic image is
            x = tf.clip_by_value(imresize(lr, output_shape=(hr_shape[0], hr_shape[1])), 0, 1)
        return to_model_space(x, self.color)

    def crop(self, img):
        """The part of an HR-sized batch the output covers (test.py's ``Method.crop``)."""
        if not self.shrink:
            return img
        top = self.shrink // 2
        bottom = self.shrink - top
        return img[:, top:tf.shape(img)[1] - bottom, top:tf.shape(img)[2] - bottom]

    def target(self, hr):
        """HR in the network's colour space, cropped to its output."""
        from visionfw.color import to_model_space

        return self.crop(to_model_space(hr, self.color))


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
        model = self.make_model()
        self.networks = {"model": model}
        self.optimizers = {"model": self.adam()}
        self.roles = roles_of(model)
        other = [r for r in self.roles if r in ("sr", "kernel_code")]
        if other:
            raise TrainError(f"recipe sr feeds images, kernels, noise levels and scales; "
                             f"{model.name} takes {', '.join(other)} (a kernel-code network "
                             "trains with --recipe sftmd)")
        self.needs = tuple(r for r in self.roles if r != "image")
        self.view_model(model)

    def _fed(self, batch, hr_shape):
        return dict(batch, lr=self.view.input(batch["lr"], hr_shape))

    def train_step(self, batch, opt):
        net = self.networks["model"]
        hr_shape = tf.shape(batch["hr"])[1:3]
        hr = self.view.target(batch["hr"])
        fed = self._fed(batch, hr_shape)
        out = {}

        def loss():
            sr = tf.cast(net(feed(net, fed, self.roles), training=True), tf.float32)
            return pixel_loss(self.config.loss, sr, hr), sr

        out["loss"], sr = opt.minimize("model", loss)
        if self.want_gains:
            from visionfw.resize import imresize

            bicubic = self.view.target(imresize(batch["lr"], output_shape=(hr_shape[0],
                                                                           hr_shape[1])))
            out["gain"] = tf.stop_gradient(patch_psnr(sr, hr) - patch_psnr(bicubic, hr))
        return out

    def predict(self, inputs):
        """What test.py scores: RGB, the Y channel of a Y-only model, or the smaller output
        of a model that shrinks (``score_crop`` tells validation how to crop HR to it)."""
        from visionfw.color import from_model_space

        net, lr = self.networks["model"], inputs["lr"]
        hr_shape = tf.shape(lr)[1:3] * tf.cast(self.config.scale, tf.int32)
        sr = net(feed(net, self._fed(inputs, hr_shape), self.roles), training=False)
        return from_model_space(tf.cast(sr, tf.float32), self.view.color)
