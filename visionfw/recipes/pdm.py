"""PDM (Luo et al., "Learning the Degradation Distribution for Blind Image Super-Resolution",
CVPR 2022): the degradation of a set of LR images learned from those images alone, as the
official code trains it (``greatlog/UnpairedSR``, ``codes/config/PDM-SR/models/
deg_sr_model.py``).

The degradation is ``D(x) = (x correlated with k), sampled every s-th pixel from the top-left,
+ n`` with ``k = K(z_k)`` and ``n = N(blurred, z_n)`` (:class:`LearnedDegradation`; networks
``pdm-kernel`` and ``pdm-noise``, layer :class:`~visionfw.degradation.layers.
KernelDegradation`). Each step, in the official order:

1. the degradation (both networks, one Adam) on LSGAN's generator loss of the PatchGAN on the
   synthesised LR of the HR batch, plus ``lambda_n * mean(n**2)``;
2. the discriminator on LSGAN's loss: real LR patches (``real_lr``, from ``--unpaired-dir``)
   against that synthesised LR, detached;
3. (``pdm-sr``) the SR network on L1 between its SR of that LR -- rounded to 8 bits,
   detached -- and the HR batch.

Adam (2e-4, PyTorch's betas 0.9 and 0.999) for every network and gradients clipped to a norm
of 50 per network, as the official configs.
"""
import os

import numpy as np
import tensorflow as tf

from visionfw.params import Hyperparameter
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.train import TrainError

VAL_SAMPLES = 64            # kernels drawn for the mean kernel at each validation
SHOWN = 8                   # of which drawn in TensorBoard
SAMPLE_SEED = (2022, 6)     # the draws of validation and of the report: the same every time


def lsgan(scores, target):
    """LSGAN's loss: the mean squared distance of the scores from ``target`` (1 real, 0 fake)."""
    return tf.reduce_mean(tf.square(tf.cast(scores, tf.float32) - target))


def noise_levels(noise):
    """The standard deviation of each image's noise (over pixels and channels), on the
    0-255 scale: ``(B,)``."""
    noise = tf.cast(noise, tf.float32)
    centred = noise - tf.reduce_mean(noise, axis=[1, 2, 3], keepdims=True)
    return 255.0 * tf.sqrt(tf.reduce_mean(tf.square(centred), axis=[1, 2, 3]))


class LearnedDegradation:
    """PDM's degradation from its kernel and noise networks.

    ``D(x) = (x correlated with k) sampled every s-th pixel + n``, ``k = kernel_net(z_k)``
    and ``n = noise_net(blurred, z_n)`` with the blurred image detached, as the official
    ``DegModel`` feeds its noise model; a noise network built with ``zero_mean`` has its
    noise's mean over each image and channel removed. The random draws are arguments: the
    training step takes them from the run's checkpointed generator, validation and reports
    from a fixed seed.

    Args:
        kernel_net: a ``pdm-kernel`` network (one kernel per image, or per LR pixel).
        noise_net: a ``pdm-noise`` network.
        scale: the sampling step s.
    """

    def __init__(self, kernel_net, noise_net, scale):
        from visionfw.degradation.layers import KernelDegradation
        from visionfw.methods.base import model_meta

        self.kernel_net, self.noise_net, self.scale = kernel_net, noise_net, int(scale)
        self.zero_mean = bool(model_meta(noise_net).get("zero_mean", False))
        z = kernel_net.inputs[0].shape
        self.per_pixel = z[1] is None
        self.kernel_latent = int(z[-1])
        self.noise_latent = int(noise_net.inputs[1].shape[-1])
        self.side = KernelDegradation.kernel_side(kernel_net.outputs[0].shape)
        self.layer = KernelDegradation(self.scale, dtype="float32", name="degradation")

    def latent_shapes(self, hr):
        """The shapes of ``z_k`` and ``z_n`` for an HR batch."""
        shape = tf.shape(hr)
        b, h, w = shape[0], shape[1] // self.scale, shape[2] // self.scale
        zk = tf.stack([b, h, w, self.kernel_latent] if self.per_pixel
                      else [b, 1, 1, self.kernel_latent])
        return zk, tf.stack([b, h, w, self.noise_latent])

    def fixed_draws(self, hr, seed=SAMPLE_SEED):
        """``(z_k, z_n)`` for an HR batch from a fixed seed (validation, reports)."""
        zk, zn = self.latent_shapes(hr)
        return (tf.random.stateless_normal(zk, seed),
                tf.random.stateless_normal(zn, (seed[0], seed[1] + 1)))

    def __call__(self, hr, zk, zn, training=False):
        """``(lr, kernel, noise)`` of an HR batch: the synthesised LR (not rounded), the
        kernels (correlation taps) and the noise added."""
        kernel = tf.cast(self.kernel_net(zk, training=training), tf.float32)
        blurred = self.layer([tf.cast(hr, tf.float32), kernel])
        noise = tf.cast(self.noise_net([tf.stop_gradient(blurred), zn], training=training),
                        tf.float32)
        if self.zero_mean:
            noise -= tf.reduce_mean(noise, axis=[1, 2], keepdims=True)
        return blurred + noise, kernel, noise

    def kernels(self, n, seed=SAMPLE_SEED):
        """``n`` kernels of the learned distribution (inference mode), ``(n, l, l)``, as the
        library's convolution kernels: the correlation taps turned by 180 degrees."""
        z = tf.random.stateless_normal([n, 1, 1, self.kernel_latent], seed)
        k = tf.cast(self.kernel_net(z, training=False), tf.float32)
        return tf.reverse(tf.reshape(k, [n, self.side, self.side]), axis=[1, 2])


def true_kernel(value, where="--true-kernel"):
    """The known kernel of a synthetic experiment: a kernel file (``.npy``, ``.mat``,
    ``.png``) or a spec whose blur is one fixed kernel (``gaussian(sigma1=2.6,sigma2=1.2,
    theta=0.7,size=21)``); float64 ``(k, k)``. One-line :class:`TrainError` otherwise."""
    from visionfw.degradation import DegradationError

    try:
        if os.path.isfile(value):
            from visionfw.degradation import load_kernel

            return np.asarray(load_kernel(value), np.float64)
        from visionfw.degradation import parse_degradation

        deg = parse_degradation(value)
        op = deg.blur_op
        if op is None:
            raise TrainError(f"{where} {value!r}: neither a kernel file nor a spec with a blur")
        first, again = (np.asarray(deg.sample_kernel(s), np.float64) for s in (0, 1))
        if not np.array_equal(first, again):
            raise TrainError(f"{where} {value!r} draws a new kernel per image; the true kernel "
                             "of the experiment is one fixed kernel")
        return first
    except DegradationError as exc:
        raise TrainError(f"{where}: {exc}") from None


def kernel_psnr_padded(estimate, true):
    """Kernel PSNR (peak 1) of one ``(l, l)`` tensor against a float64 ``(t, t)`` array, on a
    common grid with their origins aligned (:func:`visionfw.degradation.kernel_psnr`)."""
    side, t = int(estimate.shape[-1]), true.shape[-1]
    m = max(side, t)
    ref = np.zeros((m, m))
    off = m // 2 - t // 2
    ref[off:off + t, off:off + t] = true
    before = m // 2 - side // 2
    est = tf.pad(estimate, [[before, m - side - before]] * 2)
    mse = tf.reduce_mean(tf.square(est - tf.constant(ref, tf.float32)))
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-30)) / tf.math.log(10.0)


def run_files(run, which=None):
    """``{'kernel': path, 'noise': path}`` of a ``train.py pdm`` or ``pdm-sr`` run folder:
    ``which='last'`` (the end of training), ``'best'``, or ``None``: last if the run has
    finished, else its state when it was stopped early, else best. One-line
    :class:`TrainError` when the folder holds no such run."""
    from visionfw.recipes.base import saved_networks

    return saved_networks(run, ("kernel", "noise"), "holds_pdm",
                          "train.py pdm or pdm-sr", which)


def load_run(run, which=None):
    """``(LearnedDegradation, settings)`` of a pdm or pdm-sr run folder."""
    from visionfw.checkpoint import load_model
    from visionfw.train.config import read_settings

    files = run_files(run, which)
    settings = read_settings(run)["settings"]
    nets = {role: load_model(path, compile=False) for role, path in files.items()}
    return LearnedDegradation(nets["kernel"], nets["noise"], settings["scale"]), settings


def torch_adam(schedule):
    """Adam as PyTorch's defaults, which the official code uses: betas 0.9 and 0.999,
    epsilon 1e-8."""
    import keras

    return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.999,
                                 epsilon=1e-8)


def _squares(kernels, side):
    """Kernels as ``(..., side, side)`` float32, from that shape or flattened on the last axis
    (``(B, h, w, side * side)``, one per LR pixel)."""
    k = tf.cast(kernels, tf.float32)
    if k.shape[-1] == side * side and side > 1:
        k = tf.reshape(k, tf.concat([tf.shape(k)[:-1], [side, side]], 0))
    return k


def centre_offsets(kernels, side):
    """Squared distance, in pixels, of each kernel's centre of mass from the kernel's origin
    ``(side // 2, side // 2)``, for kernels summing to one as the kernel network gives them:
    ``(B, side, side)`` (one per image) or flattened on the last axis, ``(B, h, w, side *
    side)`` (one per LR pixel). The result has the leading shape (``(B,)``, ``(B, h, w)``).
    Turning a kernel by 180 degrees leaves it unchanged."""
    k = _squares(kernels, side)
    at = tf.range(side, dtype=tf.float32) - float(side // 2)
    rows = tf.reduce_sum(tf.reduce_sum(k, axis=-1) * at, axis=-1)
    cols = tf.reduce_sum(tf.reduce_sum(k, axis=-2) * at, axis=-1)
    return tf.square(rows) + tf.square(cols)


def border_mask(side):
    """The boundary penalty's weight on each tap of a ``side x side`` kernel: zero within a
    Chebyshev distance ``round(0.6 * (side // 2))`` of the origin (6 at side 21, 3 at 11),
    beyond it the squared distance from the origin over ``(side // 2) ** 2`` (1 at the middle
    of an edge, 2 in a corner)."""
    half = side // 2
    at = np.arange(side) - half
    dy, dx = np.meshgrid(at, at, indexing="ij")
    inner = np.maximum(np.abs(dy), np.abs(dx)) <= round(0.6 * half)
    return np.where(inner, 0.0, (dy ** 2 + dx ** 2) / max(half, 1) ** 2).astype(np.float32)


def border_masses(kernels, side):
    """Each kernel's boundary penalty: the sum of its taps weighted by ``border_mask(side)``,
    for kernels shaped as ``centre_offsets`` takes them. The result has the leading shape."""
    k = _squares(kernels, side)
    return tf.reduce_sum(k * tf.constant(border_mask(side)), axis=[-2, -1])


def roughness(kernels, side):
    """Each kernel's roughness: the sum of the squared differences of neighbouring taps, down
    and across, for kernels shaped as ``centre_offsets`` takes them. A delta scores 4, a
    Gaussian of standard deviation ``s`` pixels about ``1 / (4 pi s^4)``."""
    k = _squares(kernels, side)
    down = tf.reduce_sum(tf.square(k[..., 1:, :] - k[..., :-1, :]), axis=[-2, -1])
    across = tf.reduce_sum(tf.square(k[..., :, 1:] - k[..., :, :-1]), axis=[-2, -1])
    return down + across


COMMON = (
    Hyperparameter("lambda_n", float, 1.0, "weight of the noise penalty lambda_n * mean(n^2) "
                   "(the official configs: 1, 10 or 100)"),
    Hyperparameter("lambda_c", float, 0.0, "weight of the kernel-centre penalty lambda_c * "
                   "mean(squared offset of each kernel's centre of mass, in pixels) (ours, "
                   "off as in the official code; a shift of the blur is invisible to the "
                   "discriminator)"),
    Hyperparameter("lambda_b", float, 0.0, "weight of the kernel-boundary penalty lambda_b * "
                   "mean(sum of the taps weighted by zero near the origin, the squared "
                   "distance over (side // 2)^2 beyond 0.6 of the half side) (ours, off as in "
                   "the official code; KernelGAN's boundary loss in spirit)"),
    Hyperparameter("lambda_s", float, 0.0, "weight of the kernel-smoothness penalty lambda_s * "
                   "mean(sum of the squared differences of neighbouring taps) (ours, off as in "
                   "the official code)"),
    Hyperparameter("true_kernel", str, "", "the kernel that really made the LR images, when "
                   "known (a synthetic experiment): a kernel file or a fixed blur spec; "
                   "validation then logs the learned mean kernel's kernel PSNR"),
    Hyperparameter("noise_latent", int, 3, "pdm-noise: channels of z_n"),
    Hyperparameter("noise_nf", int, 64, "pdm-noise: width"),
    Hyperparameter("noise_nb", int, 8, "pdm-noise: residual blocks"),
    Hyperparameter("noise_dim", int, 3, "pdm-noise: noise channels (3, or 1 for the same "
                   "noise on every channel)"),
    Hyperparameter("noise_zero_mean", bool, False, "pdm-noise: remove the noise's mean over "
                   "each image and channel, so that it cannot shift the brightness (ours, off "
                   "as in the official code)"),
    Hyperparameter("d_nf", int, 64, "patchgan: width and score channels"),
    Hyperparameter("d_nb", int, 3, "patchgan: nb (nb - 1 strided stages)"),
)


class PDMRecipeBase(Recipe):
    """What ``pdm`` and ``pdm-sr`` share: the learned degradation, its discriminator, the
    degradation and discriminator updates, validation by the kernel and noise statistics."""

    needs = ("real_lr",)
    default_clip_norm = 50.0
    learns_degradation = True      # the training LR is synthesised, not --degradation's
    holds_pdm = True               # its run folders hold PDM's kernel and noise networks

    # ---- checks before the run folder is made

    @classmethod
    def check_run(cls, config):
        from visionfw.imageio import list_images
        from visionfw.train.run import image_folder

        o = cls.resolve_options(config.recipe_params)
        if not config.unpaired_dirs and cls.learns(o):
            raise TrainError(f"recipe {cls.name} learns the degradation of LR images without "
                             "HR: give them with --unpaired-dir FOLDER")
        for folder in config.unpaired_dirs:
            if not list_images(image_folder(folder)):
                raise TrainError(f"--unpaired-dir {folder}: no images (png, bmp, jpg, tif) in "
                                 "it; the LR images whose degradation is learned go there")
        if config.sampler != "uniform":
            raise TrainError(f"--sampler {config.sampler}: recipe {cls.name} draws patches "
                             "uniformly (the gain sampler ranks an SR network's gains on "
                             "given pairs)")
        for name in [p.name for p in cls.params if p.type is int and p.name != "kernel_size"]:
            if o[name] < 1:
                raise TrainError(f"--recipe-param {name} must be at least 1, got {o[name]}")
        for name in ("lambda_n", "lambda_c", "lambda_b", "lambda_s"):
            if o[name] < 0:
                raise TrainError(f"--recipe-param {name} must be >= 0, got {o[name]}")
        if o["noise_dim"] not in (1, 3):
            raise TrainError(f"--recipe-param noise_dim must be 1 or 3, got {o['noise_dim']}")
        if o["true_kernel"]:
            true_kernel(o["true_kernel"])

    @classmethod
    def learns(cls, options):
        """Whether the run trains the degradation (and so reads ``real_lr``)."""
        return options.get("train_degradation", True)

    # ---- networks

    def degradation_networks(self, kernel):
        """The noise network and the discriminator beside ``kernel``; ``self.degradation``."""
        from visionfw import models
        from visionfw.graph.builder import attach_spec, build

        o = self.options
        noise_hp = {"latent": o["noise_latent"], "nf": o["noise_nf"], "nb": o["noise_nb"],
                    "dim": o["noise_dim"], "zero_mean": o["noise_zero_mean"]}
        noise_dict = models.model_dict("pdm-noise", **noise_hp)
        noise = build(noise_dict)
        attach_spec(noise, noise_dict, "pdm-noise", noise_hp)
        self.degradation = LearnedDegradation(kernel, noise, self.config.scale)
        return noise, self.discriminator()

    def discriminator(self):
        from visionfw import models
        from visionfw.graph.builder import attach_spec, build
        from visionfw.runtime import without_remapping

        without_remapping()         # its fusion fails on the discriminator's input gradient
        o = self.options
        hp = {"nf": o["d_nf"], "nb": o["d_nb"], "stride": o["d_stride"]}
        d = models.model_dict("patchgan", **hp)
        net = build(d)
        attach_spec(net, d, "patchgan", hp)
        return net

    def set_validation(self):
        """The validation measures: the noise level and, with a known kernel, kernel PSNR."""
        self.true = true_kernel(self.options["true_kernel"]) if self.options["true_kernel"] \
            else None
        self.val_metrics = ("noise_sigma",) + (("kernel_psnr",) if self.true is not None
                                               else ())

    # ---- the step

    def draws(self, hr, opt):
        zk, zn = self.degradation.latent_shapes(hr)
        return opt.rng.normal(zk), opt.rng.normal(zn)

    def degradation_step(self, hr, real, zk, zn, opt):
        """The degradation's update, then the discriminator's on the same synthesised LR.
        Returns ``(that LR, losses)``."""
        d, lam = self.networks["discriminator"], self.options["lambda_n"]
        lam_c, lam_b = self.options["lambda_c"], self.options["lambda_b"]
        lam_s = self.options["lambda_s"]

        def generator_loss():
            fake, kernel, noise = self.degradation(hr, zk, zn, training=True)
            adversarial = lsgan(d(fake, training=True), 1.0)
            penalty = tf.reduce_mean(tf.square(noise))
            offset = tf.reduce_mean(centre_offsets(kernel, self.degradation.side))
            border = tf.reduce_mean(border_masses(kernel, self.degradation.side))
            rough = tf.reduce_mean(roughness(kernel, self.degradation.side))
            total = adversarial + lam * penalty + (lam_c * offset if lam_c else 0.0) \
                + (lam_b * border if lam_b else 0.0) + (lam_s * rough if lam_s else 0.0)
            return total, (fake, adversarial, penalty, tf.reduce_mean(noise_levels(noise)),
                           offset, border, rough)

        loss, (fake, adversarial, penalty, sigma, offset, border, rough) = opt.minimize(
            "degradation", generator_loss)
        fake = tf.stop_gradient(fake)

        def discriminator_loss():
            return 0.5 * (lsgan(d(real, training=True), 1.0) + lsgan(d(fake, training=True), 0.0))

        d_loss = opt.minimize("discriminator", discriminator_loss)
        return fake, {"degradation_loss": loss, "adversarial": adversarial,
                      "noise_penalty": penalty, "discriminator_loss": d_loss,
                      "noise_sigma": sigma, "kernel_offset": tf.sqrt(offset),
                      "kernel_border": border, "kernel_roughness": rough}

    # ---- validation

    def degradation_measures(self, lr):
        """What validation learns of the degradation from one LR batch: the noise level the
        noise network adds to the learned blur of the LR image's bicubic up-sampling (a clean
        image of the right size), the mean of ``VAL_SAMPLES`` kernels and ``SHOWN`` of them
        (pictures), and the mean kernel's kernel PSNR when the true kernel is known."""
        from visionfw.recipes.kenet import bicubic_up

        b = tf.shape(lr)[0]
        kernels = self.degradation.kernels(VAL_SAMPLES)
        mean = tf.reduce_mean(kernels, axis=0)
        clean = tf.clip_by_value(bicubic_up(lr, self.degradation.scale), 0.0, 1.0)
        zk, zn = self.degradation.fixed_draws(clean)
        _, _, noise = self.degradation(clean, zk, zn, training=False)
        out = {"noise_sigma": noise_levels(noise),
               "kernel": tf.tile(mean[None], [b, 1, 1]),
               "kernel_samples": tf.tile(kernels[None, :SHOWN], [b, 1, 1, 1])}
        if self.true is not None:
            out["kernel_psnr"] = tf.fill([b], kernel_psnr_padded(mean, self.true))
        return out


@register_recipe("pdm")
class PDMRecipe(PDMRecipeBase):
    """PDM's degradation alone: the kernel network (the trained model, ``pdm-kernel``), the
    noise network (``pdm-noise``, sized by ``noise_*``) and the PatchGAN (``d_*``), from the
    HR patches of ``--train-dir`` and the LR patches of ``--unpaired-dir``. ``--param
    per_pixel=true`` draws one kernel per LR pixel."""

    params = COMMON + (Hyperparameter("d_stride", int, 2, "patchgan: stride of its strided "
                                      "stages (2 in the official degradation configs)"),)
    model = "pdm-kernel"
    main = "kernel"
    ema = ("kernel", "noise")
    saved = ("noise", "discriminator")
    test_weights = {"kernel": "best.weights.h5", "noise": "best.noise.weights.h5"}
    best_by = None

    @classmethod
    def check_model(cls, config, model_dict):
        check_kernel_network(cls.name, model_dict)

    def build(self):
        from visionfw.graph.builder import attach_spec, build

        check_kernel_network(self.name, self.model_dict)
        kernel = build(self.model_dict)
        attach_spec(kernel, self.model_dict, self.model_name, self.hparams)
        noise, disc = self.degradation_networks(kernel)
        self.networks = {"kernel": kernel, "noise": noise, "discriminator": disc}
        self.optimizers = {"degradation": torch_adam(self.schedule),
                           "discriminator": torch_adam(self.schedule)}
        self.optimizer_networks = {"degradation": ("kernel", "noise")}
        self.set_validation()
        self.best_by = "kernel_psnr" if self.true is not None else None

    def train_step(self, batch, opt):
        zk, zn = self.draws(batch["hr"], opt)
        _, out = self.degradation_step(batch["hr"], batch["real_lr"], zk, zn, opt)
        out["loss"] = out["degradation_loss"]
        return out

    def predict(self, inputs):
        from visionfw.recipes.kenet import bicubic_up

        return bicubic_up(inputs["lr"], self.degradation.scale), \
            self.degradation_measures(inputs["lr"])


def check_kernel_network(recipe, model_dict):
    from visionfw.conditioning import ConditioningError, roles_of

    try:
        roles = roles_of(model_dict)
    except ConditioningError:
        roles = None
    if roles != ["latent"] or (model_dict.get("meta") or {}).get("output") != "kernel":
        raise TrainError(f"recipe {recipe} trains PDM's kernel network (pdm-kernel) with its "
                         f"noise network and discriminator; {model_dict.get('name')} is not "
                         "one (train.py pdm, or train.py pdm-sr for an SR network)")


@register_recipe("pdm-sr")
class PDMSRRecipe(PDMRecipeBase):
    """PDM-SR: an SR network (the trained model, any of the LR image alone; SRResNet by
    default) on LR its learned degradation synthesises from the HR batch, the degradation
    learned jointly from step 0 -- or started from a ``train.py pdm`` run (``--pdm RUN``), and
    with ``--train-degradation false`` kept as it is (the official ``optim_deg: false``)."""

    params = COMMON + (
        Hyperparameter("d_stride", int, 1, "patchgan: stride of its strided stages (1 in the "
                       "official joint configs)"),
        Hyperparameter("kernel_latent", int, 3, "pdm-kernel: channels of z_k"),
        Hyperparameter("kernel_nf", int, 64, "pdm-kernel: width"),
        Hyperparameter("kernel_nb", int, 8, "pdm-kernel: residual blocks"),
        Hyperparameter("kernel_size", int, 0, "pdm-kernel: side (0: 11 at x2, 21 otherwise)"),
        Hyperparameter("per_pixel", bool, False, "pdm-kernel: one kernel per LR pixel"),
        Hyperparameter("pdm", str, "", "start the degradation from this train.py pdm run "
                       "folder (its kernel and noise networks, last weights if it finished)"),
        Hyperparameter("train_degradation", bool, True, "false: keep the degradation as it "
                       "starts (give --pdm RUN) and train the SR network alone"),
    )
    model = "srresnet"
    main = "sr"
    ema = ("sr",)

    @classmethod
    def check_run(cls, config):
        super().check_run(config)
        o = cls.resolve_options(config.recipe_params)
        if o["kernel_size"] < 0 or (o["kernel_size"] and o["kernel_size"] % 2 == 0):
            raise TrainError(f"--recipe-param kernel_size must be odd (0: the default), got "
                             f"{o['kernel_size']}")
        if o["pdm"]:
            run_files(o["pdm"])
            from visionfw.train.config import read_settings

            trained = int(read_settings(o["pdm"])["settings"]["scale"])
            if trained != int(config.scale):
                raise TrainError(f"--pdm {o['pdm']} learned an x{trained} degradation but this "
                                 f"run trains x{config.scale}")
            config.recipe_params.update(cls.pdm_network_params(config.recipe_params, o["pdm"]))
        elif not o["train_degradation"]:
            raise TrainError("--train-degradation false keeps the degradation as it starts: "
                             "give the learned one, --pdm RUN (a train.py pdm run folder)")

    # the options that size the degradation networks, and their names in the networks' specs
    NETWORK_PARAMS = {"kernel": {"kernel_latent": "latent", "kernel_nf": "nf",
                                 "kernel_nb": "nb", "kernel_size": "size",
                                 "per_pixel": "per_pixel"},
                      "noise": {"noise_latent": "latent", "noise_nf": "nf", "noise_nb": "nb",
                                "noise_dim": "dim", "noise_zero_mean": "zero_mean"}}

    @classmethod
    def pdm_network_params(cls, given, run):
        """The network options of a run started from ``--pdm RUN``: its kernel and noise
        networks keep the sizes they were trained with, so those are what the run records; an
        option given with another value than both its default and the network's is a one-line
        error rather than ignored."""
        from visionfw.checkpoint import read_spec

        defaults = cls.resolve_options({})
        taken = {}
        for role, path in run_files(run).items():
            spec = read_spec(path).get("hparams") or {}
            for option, name in cls.NETWORK_PARAMS[role].items():
                if name not in spec:
                    continue
                value = type(defaults[option])(spec[name])
                if given.get(option, defaults[option]) not in (defaults[option], value):
                    raise TrainError(f"--recipe-param {option}={given[option]}: the {role} "
                                     f"network of --pdm {run} has {name} {value}, and its "
                                     "networks are used as they were trained; leave "
                                     f"{option} out, or learn a new degradation without --pdm")
                taken[option] = value
        return taken

    @classmethod
    def check_model(cls, config, model_dict):
        from visionfw.conditioning import ConditioningError, roles_of

        try:
            roles = roles_of(model_dict)
        except ConditioningError:
            roles = None
        if roles != ["image"] or (model_dict.get("meta") or {}).get("output", "image") != "image":
            raise TrainError(f"recipe pdm-sr trains an SR network of the LR image alone "
                             f"(srresnet, vdsr, ...); {model_dict.get('name')} takes "
                             f"{', '.join(roles or ['inputs without roles'])}")

    def build(self):
        from visionfw.degradation.layers import StraightThroughQuantize

        o = self.options
        sr = self.view_model(self.make_model())
        if o["pdm"]:                        # the learned networks, with their own sizes
            self.degradation, _ = load_run(o["pdm"])
            kernel, noise = self.degradation.kernel_net, self.degradation.noise_net
            disc = self.discriminator()
        else:
            kernel = self.kernel_network()
            noise, disc = self.degradation_networks(kernel)
        self.networks = {"sr": sr, "kernel": kernel, "noise": noise}
        self.optimizers = {"sr": torch_adam(self.schedule)}
        if o["train_degradation"]:
            self.networks["discriminator"] = disc
            self.optimizers["degradation"] = torch_adam(self.schedule)
            self.optimizers["discriminator"] = torch_adam(self.schedule)
            self.optimizer_networks = {"degradation": ("kernel", "noise")}
            self.saved = ("kernel", "noise", "discriminator")
        else:
            kernel.trainable = noise.trainable = False
            self.saved = ("kernel", "noise")
            self.needs = ()                     # no discriminator: no real LR patches
        self.quantize = StraightThroughQuantize(dtype="float32", name="quantize")
        self.set_validation()

    def kernel_network(self):
        from visionfw import models
        from visionfw.graph.builder import attach_spec, build

        o = self.options
        hp = {"latent": o["kernel_latent"], "nf": o["kernel_nf"], "nb": o["kernel_nb"],
              "size": o["kernel_size"], "per_pixel": o["per_pixel"],
              "scale": int(self.config.scale)}
        d = models.model_dict("pdm-kernel", **hp)
        net = build(d)
        attach_spec(net, d, "pdm-kernel", hp)
        return net

    def train_step(self, batch, opt):
        from visionfw.recipes.sr import pixel_loss

        hr, sr_net = batch["hr"], self.networks["sr"]
        zk, zn = self.draws(hr, opt)
        if self.options["train_degradation"]:
            fake, out = self.degradation_step(hr, batch["real_lr"], zk, zn, opt)
        else:
            fake, _, noise = self.degradation(hr, zk, zn, training=False)
            out = {"noise_sigma": tf.reduce_mean(noise_levels(noise))}
        lr = tf.stop_gradient(self.quantize(fake))
        fed = self.view.input(lr, tf.shape(hr)[1:3])
        target = self.view.target(hr)

        def sr_loss():
            return pixel_loss(self.config.loss, tf.cast(sr_net(fed, training=True), tf.float32),
                              target)

        out["sr_loss"] = opt.minimize("sr", sr_loss)
        out["loss"] = out["sr_loss"]
        return out

    def predict(self, inputs):
        from visionfw.color import from_model_space

        lr, net = inputs["lr"], self.networks["sr"]
        hr_shape = tf.shape(lr)[1:3] * int(self.config.scale)
        sr = from_model_space(tf.cast(net(self.view.input(lr, hr_shape), training=False),
                                      tf.float32), self.view.color)
        return sr, self.degradation_measures(lr)
