"""DAN (Luo et al., NeurIPS 2020): the Restorer and the Estimator unfolded together for
``loops`` iterations, as the official DANv1 training does.

The loop starts from the code of a centred delta kernel. Each iteration: ``SR = R(LR, code)``
with the code detached, then ``code = E(LR, SR)`` with the SR image detached; the weights are
the same at every iteration. Only the last iteration is supervised -- L1 between its SR and
HR plus L1 between its code and the true kernel's code, one Adam for both networks -- so
with both cross-links detached each network learns from its last call only, and the earlier
iterations run without a gradient tape.
"""
import numpy as np
import tensorflow as tf

from visionfw.kernel_codes import encode, pca_from, with_pca
from visionfw.params import Hyperparameter
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.recipes.kenet import KERNEL_LOSS_PARAMS, check_kernel_loss
from visionfw.recipes.kenet import kernel_loss as kernel_space_loss
from visionfw.runtime import traced
from visionfw.train import TrainError

DAN_TRAINING = "gaussian(sigma=0.2~4.0,size=21,padding=reflect)+bicubic+quantize"


def delta_code(pca):
    """The code of the centred delta kernel (a 1 at tap ``size // 2``), DAN's start: ``(1, t)``
    float32, taken without the mean like every DAN code."""
    return encode(pca, delta_kernel(pca.kernel_size))


def dan_loop(restorer, estimator, lr, start, loops):
    """The unfolded loop at inference: ``loops`` times ``SR = R(LR, code)``, ``code = E(LR,
    SR)``, from ``start`` (``(1, t)`` or ``(B, t)``). Returns the lists of SR images and codes
    (``loops`` each)."""
    code = tf.broadcast_to(tf.cast(start, tf.float32),
                           tf.stack([tf.shape(lr)[0], tf.shape(start)[-1]]))
    images, codes = [], []

    @traced                                          # one trace for every iteration
    def iteration(lr, code):
        sr = tf.cast(restorer([lr, code], training=False), tf.float32)
        return sr, tf.cast(estimator([lr, sr], training=False), tf.float32)

    for _ in range(loops):
        sr, code = iteration(lr, code)
        images.append(sr)
        codes.append(code)
    return images, codes


@register_recipe("dan")
class DANRecipe(Recipe):
    """DAN's Restorer (the trained model, ``dan-restorer``) and Estimator (``dan-estimator``,
    sized by ``estimator_nf``/``estimator_nb``), unfolded for ``loops`` iterations."""

    params = (
        Hyperparameter("loops", int, 4, "unfolded iterations (4 in DANv1)"),
        Hyperparameter("estimator_nf", int, 32, "the Estimator's width (32 in DAN)"),
        Hyperparameter("estimator_nb", int, 5, "the Estimator's blocks (5 in DAN)"),
        Hyperparameter("pca", str, "", "PCA file (.npy, .mat, .h5) of the kernel codes; "
                       "default: fitted here like IKC's and DAN's (30000 isotropic 21x21 "
                       "Gaussians, sigma 0.2-4, seed 0), codes without the mean"),
    )
    model = "dan-restorer"
    main = "restorer"
    ema = ("restorer", "estimator")
    saved = ("estimator",)
    needs = ("kernel",)
    test_weights = {"restorer": "best.weights.h5", "estimator": "best.estimator.weights.h5"}
    val_metrics = ("code_error", "kernel_psnr")

    @classmethod
    def default_degradation(cls, scale):
        return DAN_TRAINING

    @classmethod
    def check_run(cls, config):
        o = config.recipe_params
        for name in ("loops", "estimator_nf", "estimator_nb"):
            if int(o.get(name, 1)) < 1:
                raise TrainError(f"--recipe-param {name} must be at least 1")

    @classmethod
    def check_model(cls, config, model_dict):
        from visionfw.conditioning import roles_of

        if roles_of(model_dict) != ["image", "kernel_code"] or \
                (model_dict.get("meta") or {}).get("output", "image") != "image":
            raise TrainError(f"recipe dan trains a restorer of (LR image, kernel code) with its "
                             f"estimator; {model_dict.get('name')} takes "
                             f"{', '.join(roles_of(model_dict))} (train.py dan-restorer, or "
                             "train.py dan)")

    def build(self):
        from visionfw import models
        from visionfw.graph.builder import attach_spec, build

        meta = self.model_dict.get("meta") or {}
        code_len = int(meta.get("code_len") or self.model_dict["inputs"][1]["shape"][-1])
        self.pca = pca_from(self.options["pca"], code_len)
        restorer_dict = with_pca(self.model_dict, self.pca)
        restorer_dict["meta"]["loops"] = self.options["loops"]      # test.py dan's default
        est_hp = {"nf": self.options["estimator_nf"], "nb": self.options["estimator_nb"],
                  "code_len": code_len, "scale": int(self.config.scale)}
        estimator_dict = with_pca(models.model_dict("dan-estimator", **est_hp), self.pca)
        restorer, estimator = build(restorer_dict), build(estimator_dict)
        attach_spec(restorer, restorer_dict, self.model_name, self.hparams)
        attach_spec(estimator, estimator_dict, "dan-estimator", est_hp)
        self.networks = {"restorer": restorer, "estimator": estimator}
        self.optimizers = {"dan": self.adam()}
        self.optimizer_networks = {"dan": ("restorer", "estimator")}
        self.start = tf.constant(delta_code(self.pca), tf.float32)

    def train_step(self, batch, opt):
        r, e = self.networks["restorer"], self.networks["estimator"]
        lr, hr = batch["lr"], batch["hr"]
        true = encode(self.pca, batch["kernel"])
        loops = self.options["loops"]
        code = tf.broadcast_to(self.start, tf.stack([tf.shape(lr)[0], tf.shape(self.start)[-1]]))

        @traced                          # no gradient reaches these; one trace for all
        def iteration(lr, code):
            sr = tf.stop_gradient(tf.cast(r([lr, code], training=True), tf.float32))
            return tf.stop_gradient(tf.cast(e([lr, sr], training=True), tf.float32))

        for _ in range(loops - 1):
            code = iteration(lr, code)

        def loss(code=code):
            sr_loss, code_loss = self.last_losses(lr, hr, true, code)
            return sr_loss + code_loss, (sr_loss, code_loss)

        total, (sr_loss, code_loss) = opt.minimize("dan", loss)
        return {"loss": total, "sr_loss": sr_loss, "code_loss": code_loss}

    def last_losses(self, lr, hr, true, code):
        """The supervised last iteration from ``code``: ``(L1(SR, HR), L1(code', true))``.
        The Restorer gets the code detached and the Estimator the SR detached, so the first
        loss trains the Restorer alone and the second the Estimator alone."""
        r, e = self.networks["restorer"], self.networks["estimator"]
        sr = tf.cast(r([lr, tf.stop_gradient(code)], training=True), tf.float32)
        new = tf.cast(e([lr, tf.stop_gradient(sr)], training=True), tf.float32)
        return tf.reduce_mean(tf.abs(sr - hr)), tf.reduce_mean(tf.abs(new - true))

    def predict(self, inputs):
        from visionfw.recipes.kenet import kernel_psnr_tf

        r, e = self.networks["restorer"], self.networks["estimator"]
        images, codes = dan_loop(r, e, inputs["lr"], self.start, self.options["loops"])
        true = encode(self.pca, inputs["kernel"])
        kernel = tf.cast(self.pca.decode(codes[-1]), tf.float32)
        return images[-1], {
            "code_error": tf.reduce_mean(tf.square(codes[-1] - true), axis=-1),
            "kernel_psnr": kernel_psnr_tf(kernel, tf.cast(inputs["kernel"], tf.float32)),
            "kernel": kernel}


def delta_kernel(size):
    """The centred delta kernel ``(1, size, size)`` float32: DAN's start, as a kernel."""
    k = np.zeros((1, size, size), np.float32)
    k[0, size // 2, size // 2] = 1.0
    return k


def load_usrnet(path, scale):
    """The USRNet a ``dan-usrnet`` run alternates with: it must exist, take (LR, kernel,
    scale, noise level) and have been trained at the run's scale (one-line errors)."""
    from visionfw.checkpoint import load_model
    from visionfw.conditioning import roles_of
    from visionfw.errors import VisionfwError
    from visionfw.methods.accepts import accepts_of

    if not path:
        raise TrainError("recipe dan-usrnet needs the trained USRNet: --usrnet FILE (e.g. "
                         "zoo/usrnet_k6_nc16_x234_x2ft8.weights.h5)")
    try:
        model = load_model(path, compile=False)
    except VisionfwError as exc:
        raise TrainError(f"--usrnet {exc}") from None
    if roles_of(model) != ["image", "kernel", "scale", "noise_sigma"]:
        raise TrainError(f"--usrnet {path}: {model.name} takes {', '.join(roles_of(model))}, not "
                         "an LR image, a kernel, the scale and the noise level (a USRNet)")
    try:
        accepts_of(model).check(f"--usrnet {path}", scale=scale)
    except VisionfwError as exc:
        raise TrainError(str(exc)) from None
    return model


@register_recipe("dan-usrnet")
class DANUSRNetRecipe(Recipe):
    """DAN's kernel Estimator (``dan-kernel-estimator``, the trained model) unfolded with a
    trained USRNet (``--usrnet FILE``) for ``loops`` iterations: ``SR = U(LR, k, s, sigma)``
    with the kernel detached, ``k = E(LR, SR)`` with SR detached, from the centred delta
    kernel. The last iteration is supervised: a kernel-space loss between its kernel and the
    true one (``loss``: KENet's adaptive attention loss by default, or plain L1); with
    ``lambda_sr``, L1 between HR and USRNet fed that kernel, whose gradient reaches the
    estimator through USRNet; with ``finetune``, L1 between its SR and HR, which also trains
    USRNet (frozen otherwise).
    The default degradation is USRNet's own (Gaussian and motion kernels, circular blur,
    top-left decimation, noise 0-25) at the estimator's kernel size; the noise level fed to
    USRNet is the true one, as in USRNet's non-blind setting."""

    params = (
        Hyperparameter("usrnet", str, "", "the trained USRNet weights (train.py usrnet)"),
        Hyperparameter("loops", int, 4, "unfolded iterations"),
        Hyperparameter("finetune", bool, False, "train USRNet too, on the last SR's L1"),
        Hyperparameter("lambda_sr", float, 0.0, "weight of the L1 between HR and USRNet fed "
                       "the last estimate, back-propagated through USRNet to the estimator"),
        *KERNEL_LOSS_PARAMS,
    )
    model = "dan-kernel-estimator"
    main = "estimator"
    ema = ("estimator",)
    saved = ("usrnet",)
    needs = ("kernel",)
    test_weights = {"estimator": "best.weights.h5", "model": "best.usrnet.weights.h5"}
    val_metrics = ("kernel_psnr",)

    @classmethod
    def default_degradation(cls, scale):
        from visionfw.recipes.usrnet import USRNET_TRAINING

        return USRNET_TRAINING

    @classmethod
    def check_run(cls, config):
        if int(config.recipe_params.get("loops", 1)) < 1:
            raise TrainError("--recipe-param loops must be at least 1")
        if float(config.recipe_params.get("lambda_sr", 0)) < 0:
            raise TrainError("--recipe-param lambda_sr is a loss weight: give 0 or more")
        if not config.recipe_params.get("usrnet"):
            load_usrnet("", config.scale)
        from visionfw.recipes.usrnet import check_usrnet_degradation

        check_usrnet_degradation(config.degradation, config.patch_size)

    @classmethod
    def check_model(cls, config, model_dict):
        from visionfw.recipes.kenet import check_kernel_size

        meta = model_dict.get("meta") or {}
        if meta.get("output") != "kernel" or "sr" not in meta.get("inputs", {}):
            raise TrainError(f"recipe dan-usrnet trains an estimator of (LR, SR) -> kernel "
                             f"(dan-kernel-estimator); {model_dict.get('name')} is not one")
        check_kernel_size(cls.name, config, int(meta["kernel_size"]))

    def build(self):
        from visionfw.graph.builder import attach_spec, build
        from visionfw.runtime import without_remapping

        check_kernel_loss(self.options)
        without_remapping()              # its fusion fails on the estimator's input gradient
        self.usrnet = load_usrnet(self.options["usrnet"], int(self.config.scale))
        self.usrnet.trainable = bool(self.options["finetune"])
        meta = dict(self.model_dict.get("meta") or {}, loops=self.options["loops"])
        self.model_dict = dict(self.model_dict, meta=meta)
        estimator = build(self.model_dict)
        attach_spec(estimator, self.model_dict, self.model_name, self.hparams)
        self.networks = {"estimator": estimator, "usrnet": self.usrnet}
        # PyTorch's epsilon, as DANv2's optimiser: the kernel loss is of order 1e-3, and in
        # the first steps the gradients per weight came near Keras' 1e-7 (about 1e-7 at step
        # 10 of an earlier run, 3e-6 by step 100)
        self.optimizers = {"dan": self.adam(epsilon=1e-8)}
        trained = ("estimator", "usrnet") if self.options["finetune"] else ("estimator",)
        self.optimizer_networks = {"dan": trained}
        self.start = tf.constant(delta_kernel(int(meta["kernel_size"])), tf.float32)

    def _restore(self, batch, lr, kernel, training=False):
        from visionfw.conditioning import feed

        fed = dict(batch, lr=lr, kernel=kernel)
        return tf.cast(self.usrnet(feed(self.usrnet, fed), training=training), tf.float32)

    def _start(self, lr):
        shape = tf.concat([tf.shape(lr)[:1], tf.shape(self.start)[1:]], 0)
        return tf.broadcast_to(self.start, shape)

    def train_step(self, batch, opt):
        e = self.networks["estimator"]
        lr, hr = batch["lr"], batch["hr"]
        true = tf.cast(batch["kernel"], tf.float32)
        k = self._start(lr)

        @traced                          # no gradient reaches these; one trace for all
        def iteration(batch, lr, k):
            sr = tf.stop_gradient(self._restore(batch, lr, k))
            return tf.stop_gradient(tf.cast(e([lr, sr], training=True), tf.float32))

        for _ in range(self.options["loops"] - 1):
            k = iteration(batch, lr, k)
        finetune, weight = self.options["finetune"], self.options["lambda_sr"]

        def loss(k=k):
            sr = self._restore(batch, lr, tf.stop_gradient(k), training=finetune)
            new = tf.cast(e([lr, tf.stop_gradient(sr)], training=True), tf.float32)
            kernel_loss = kernel_space_loss(self.options, new, true)
            sr_loss = tf.reduce_mean(tf.abs(sr - hr))
            total = kernel_loss + sr_loss if finetune else kernel_loss
            result_loss = tf.zeros(())
            if weight:                   # what test.py scores: USRNet fed the new estimate
                result = self._restore(batch, lr, new, training=finetune)
                result_loss = tf.reduce_mean(tf.abs(result - hr))
                total += weight * result_loss
            return total, (kernel_loss, sr_loss, result_loss)

        total, (kernel_loss, sr_loss, result_loss) = opt.minimize("dan", loss)
        return {"loss": total, "kernel_loss": kernel_loss, "sr_loss": sr_loss,
                "result_loss": result_loss}

    def predict(self, inputs):
        from visionfw.recipes.kenet import kernel_psnr_tf

        e = self.networks["estimator"]
        lr = inputs["lr"]
        k = self._start(lr)

        @traced                          # one trace for every iteration
        def iteration(inputs, lr, k):
            sr = self._restore(inputs, lr, k)
            return sr, tf.cast(e([lr, sr], training=False), tf.float32)

        for _ in range(self.options["loops"]):
            _, k = iteration(inputs, lr, k)
        # the result is USRNet fed the last kernel, as test.py dan+usrnet makes it (the SR of
        # the last alternation was made with the kernel before it: with one alternation, the
        # delta kernel, whatever the estimator learnt)
        sr = self._restore(inputs, lr, k)
        return sr, {"kernel_psnr": kernel_psnr_tf(k, tf.cast(inputs["kernel"], tf.float32)),
                    "kernel": k}
