"""Kernel estimators trained in kernel space: KENet (Cao et al.) regresses the blur kernel of an
LR patch directly, with the adaptive attention loss (:func:`visionfw.losses.attention`) or
plain L1 for the ablation, against the ``kernel`` label of the batch.

Validation scores the estimate by kernel PSNR (``kernel_psnr`` in ``val.csv``, the measure
``best.weights.h5`` keeps the best of); the ``psnr`` columns are those of a plain bicubic
up-sampling, since a kernel estimator makes no image.
"""
import numpy as np
import tensorflow as tf

from visionfw.params import Hyperparameter
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.train import TrainError


def kernel_degradation(scale, size=None, model="bicubic"):
    """KENet's training degradation: random anisotropic Gaussians (sigma1, sigma2 in
    [0.2, 4.0], theta in [0, pi]) at KENet's kernel size for the scale, then bicubic (or, with
    ``model='direct'``, circular blur and direct down-sampling, USRNet's model), 8 bits -- the
    ``aniso`` (``aniso-direct``) test protocol's blurs."""
    from visionfw.degradation.protocols import aniso_blur

    padding = "circular" if model == "direct" else "reflect"
    spec = aniso_blur(scale, padding, size)
    return spec + ("+direct(offset=0)+quantize" if model == "direct" else "+bicubic+quantize")


def training_kernel_size(spec):
    """The side of the kernels a training degradation draws, or ``None`` without a blur."""
    from visionfw.degradation import parse_degradation

    op = parse_degradation(spec).blur_op
    size = None if op is None else op.args.get("size")
    return None if size is None else int(size)


def kernel_psnr_tf(estimate, true):
    """Per-image kernel PSNR of same-size ``(B, k, k)`` kernels, peak 1 (as
    :func:`visionfw.degradation.kernel_psnr`, which test.py uses)."""
    mse = tf.reduce_mean(tf.square(estimate - true), axis=[1, 2])
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-30)) / tf.math.log(10.0)


def bicubic_up(lr, scale):
    """The image a kernel estimator's validation row shows: the LR batch up-sampled."""
    shape = tf.shape(lr)[1:3] * scale
    return tf.image.resize(lr, shape, method="bicubic")


class KernelSpaceRecipe(Recipe):
    """Shared by the recipes that train a kernel estimator alone: validation in kernel space."""

    needs = ("kernel",)
    best_by = "kernel_psnr"
    val_metrics = ("kernel_psnr",)

    @classmethod
    def estimated_size(cls, model_dict):
        """The side of the kernels the network estimates (from its ``meta``)."""
        meta = model_dict.get("meta") or {}
        return meta.get("kernel_size")

    @classmethod
    def check_model(cls, config, model_dict):
        side = cls.estimated_size(model_dict)
        if side is not None:
            check_kernel_size(cls.name, config, int(side))


def check_kernel_size(recipe, config, side):
    """A kernel estimator's side must be the training kernels' (one line otherwise)."""
    drawn = training_kernel_size(config.degradation)
    if drawn is None:
        raise TrainError(f"recipe {recipe} learns blur kernels, but the degradation "
                         f"{config.degradation!r} blurs nothing: give --degradation with a "
                         "blur (the default is the recipe's own)")
    if drawn != side:
        raise TrainError(f"the network estimates {side}x{side} kernels but the degradation "
                         f"draws {drawn}x{drawn} ones: give --param size={drawn}, or "
                         f"--degradation with size={side} (e.g. "
                         f"'{kernel_degradation(config.scale, side)}')")


# The kernel-space loss of the recipes that train a kernel estimator (kenet, dan-usrnet).
KERNEL_LOSS_PARAMS = (
    Hyperparameter("loss", str, "attention", "attention (KENet's adaptive attention loss) "
                   "or l1 (plain L1 on the taps, the paper's ablation)"),
    Hyperparameter("lambda1", float, 0.01, "the looser support threshold (of the true "
                   "kernel's maximum)"),
    Hyperparameter("lambda2", float, 0.1, "the tighter support threshold"),
    Hyperparameter("rho0", float, 0.01, "weight of the L1 on all taps"),
    Hyperparameter("rho1", float, 0.1, "weight of the term masked at lambda1"),
    Hyperparameter("rho2", float, 1.0, "weight of the term masked at lambda2"),
    Hyperparameter("target_blur", float, 0.0, "train towards the true kernel softened by a "
                   "Gaussian of this sigma in HR pixels (zero outside the window, "
                   "renormalised); 0: the true kernel itself"),
)


def check_kernel_loss(options):
    """One-line errors for the parameters of :data:`KERNEL_LOSS_PARAMS`."""
    if options["loss"] not in ("attention", "l1"):
        raise TrainError(f"--recipe-param loss={options['loss']!r}: expected attention or l1")
    for name in ("lambda1", "lambda2"):
        if not 0.0 <= options[name] < 1.0:
            raise TrainError(f"--recipe-param {name} is a fraction of the kernel's maximum in "
                             f"[0, 1), got {options[name]}")
    if not 0.0 <= options["target_blur"] <= 10.0:
        raise TrainError(f"--recipe-param target_blur is a Gaussian's sigma in HR pixels in "
                         f"[0, 10], got {options['target_blur']}")


def soften_kernels(kernels, sigma):
    """``(B, k, k)`` kernels convolved with a Gaussian of ``sigma`` taps (truncated at 4 sigma,
    zero outside the window: SciPy's ``gaussian_filter`` with ``mode='constant'``) and
    renormalised to sum to one."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    taps = tf.constant(taps / taps.sum(), kernels.dtype)
    x = kernels[..., None]
    x = tf.nn.conv2d(x, tf.reshape(taps, [-1, 1, 1, 1]), 1, "SAME")
    x = tf.nn.conv2d(x, tf.reshape(taps, [1, -1, 1, 1]), 1, "SAME")[..., 0]
    return x / tf.reduce_sum(x, axis=[1, 2], keepdims=True)


def kernel_loss(options, estimate, true):
    """The kernel-space loss the options of :data:`KERNEL_LOSS_PARAMS` name, on ``(B, k, k)``
    kernels."""
    from visionfw.losses import get_loss

    if options.get("target_blur"):
        true = soften_kernels(true, float(options["target_blur"]))
    if options["loss"] == "l1":
        return get_loss("l1")(estimate, true)
    return get_loss("attention")(estimate, true,
                                 thresholds=(options["lambda1"], options["lambda2"]),
                                 weights=(options["rho0"], options["rho1"], options["rho2"]))


@register_recipe("kenet")
class KENetRecipe(KernelSpaceRecipe):
    """KENet (``model_defs/kenet.py``) on the true kernels of its training patches."""

    params = KERNEL_LOSS_PARAMS
    model = "kenet"

    @classmethod
    def default_degradation(cls, scale):
        return kernel_degradation(scale)

    def build(self):
        from visionfw.graph.builder import attach_spec, build

        meta = self.model_dict.get("meta") or {}
        if meta.get("output") != "kernel":
            raise TrainError(f"recipe kenet trains networks that output a kernel; "
                             f"{self.model_dict.get('name')} outputs "
                             f"{meta.get('output', 'an image')}")
        check_kernel_loss(self.options)
        model = build(self.model_dict)
        attach_spec(model, self.model_dict, self.model_name, self.hparams)
        check_kernel_size(self.name, self.config, int(model.outputs[0].shape[-1]))
        self.networks = {"model": model}
        self.optimizers = {"model": self.adam()}

    def kernel_loss(self, estimate, true):
        return kernel_loss(self.options, estimate, true)

    def train_step(self, batch, opt):
        model, true = self.networks["model"], tf.cast(batch["kernel"], tf.float32)

        def loss():
            return self.kernel_loss(tf.cast(model(batch["lr"], training=True), tf.float32),
                                    true)

        return {"loss": opt.minimize("model", loss)}

    def predict(self, inputs):
        estimate = tf.cast(self.networks["model"](inputs["lr"], training=False), tf.float32)
        true = tf.cast(inputs["kernel"], tf.float32)
        return bicubic_up(inputs["lr"], int(self.config.scale)), {
            "kernel_psnr": kernel_psnr_tf(estimate, true), "kernel": estimate}
