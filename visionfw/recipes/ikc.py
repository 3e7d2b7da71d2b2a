"""IKC (Gu et al., CVPR 2019): the kernel Predictor and Corrector trained together on a
frozen SFTMD, the Corrector stepped once per correction step, as the official
``train_IKC.py`` does.

Per batch: the Predictor takes one step on the MSE between its code and the true code; its
(pre-update) estimate starts the loop. Then ``steps_per_batch`` times: SFTMD makes SR from the
LR and the current code (no gradient), the Corrector takes one step on the MSE between its
corrected code and the true one, and its (pre-update) output becomes the current code. Nothing
back-propagates across steps, into the Predictor from the Corrector, or into SFTMD.
"""
import numpy as np
import tensorflow as tf

from visionfw.kernel_codes import encode, pca_of, with_pca
from visionfw.params import Hyperparameter
from visionfw.runtime import traced
from visionfw.recipes.base import Recipe, register_recipe
from visionfw.train import TrainError
from visionfw.train.config import check_room, writing


def ikc_loop(predictor, corrector, sftmd, lr, iterations, to_sftmd=None, bridges=None):
    """The correction loop: ``h0 = P(lr)``, ``sr0 = F(lr, h0)``; then ``iterations`` times
    ``h = C(sr, h)``, ``sr = F(lr, h)``. Returns the lists of codes and SR images (t + 1 each).

    Networks trained with different PCAs share the loop through ``(t, t)`` matrices that carry
    codes from one basis to another (:func:`visionfw.kernel_codes.bridge`): ``bridges`` may
    hold ``'predictor>corrector'``, ``'predictor>sftmd'`` and ``'corrector>sftmd'``;
    ``to_sftmd`` is the one matrix for a Predictor and Corrector that share a basis. Codes are
    returned in the basis of the network that made them."""
    links = dict(bridges or {})
    if to_sftmd is not None:
        links.setdefault("predictor>sftmd", to_sftmd)
        links.setdefault("corrector>sftmd", to_sftmd)
    links = {k: tf.constant(v, tf.float32) for k, v in links.items() if v is not None}

    def carry(code, link):
        return tf.linalg.matmul(code, links[link]) if link in links else code

    # each network traced once, however many iterations call it
    sr_of = traced(lambda lr, code: tf.clip_by_value(
        tf.cast(sftmd([lr, code], training=False), tf.float32), 0.0, 1.0))
    corrected = traced(lambda sr, code: tf.cast(corrector([sr, code], training=False),
                                                tf.float32))

    def restore(code, source):
        return sr_of(lr, carry(code, f"{source}>sftmd"))

    code = tf.cast(predictor(lr, training=False), tf.float32)
    codes, images = [code], [restore(code, "predictor")]
    code = carry(code, "predictor>corrector")
    for _ in range(iterations):
        code = corrected(images[-1], code)
        codes.append(code)
        images.append(restore(code, "corrector"))
    return codes, images


def check_sftmd(path, scale):
    """The SFTMD file a run names, read without building it: it must exist and up-sample by
    the run's scale (its images are scored against HR at that scale)."""
    from visionfw.checkpoint import read_spec
    from visionfw.errors import CheckpointError

    if not path:
        raise TrainError("recipe ikc needs the trained SFTMD: --sftmd FILE "
                         "(a train.py sftmd run's best.weights.h5)")
    try:
        spec = read_spec(path)
    except CheckpointError as exc:
        raise TrainError(f"--sftmd {exc}") from None
    trained = (spec["dict"].get("meta") or {}).get("scale") or \
        (spec.get("hparams") or {}).get("scale")
    if scale is not None and trained and int(trained) != int(scale):
        raise TrainError(f"--sftmd {path} up-samples x{trained} but this run trains at "
                         f"x{scale}: give --scale {trained}, or an SFTMD trained at x{scale} "
                         f"(train.py sftmd --scale {scale})")


def load_sftmd(path, code_len, scale=None):
    """The trained SFTMD a run corrects codes for, and its PCA; one-line errors otherwise."""
    from visionfw.checkpoint import load_model
    from visionfw.conditioning import roles_of

    check_sftmd(path, scale)
    model = load_model(path, compile=False)
    if roles_of(model) != ["image", "kernel_code"]:
        raise TrainError(f"--sftmd {path}: {model.name} takes "
                         f"{', '.join(roles_of(model))}, not an LR image and a kernel code")
    pca = pca_of(model)
    if pca.n_components != code_len:
        raise TrainError(f"--sftmd {path}: its PCA gives {pca.n_components}-long "
                         f"codes but the predictor has code_len={code_len}; use --param "
                         f"code_len={pca.n_components}")
    if model.inputs[1].shape[-1] != code_len:
        raise TrainError(f"--sftmd {path}: SFTMD with the noise level in its code "
                         "is not supported by recipe ikc")
    model.trainable = False
    return model, pca


def start_from(network, path, pca, role="predictor"):
    """Copy trained weights into ``network`` (the run's ``role``: predictor or corrector); they
    must have the same layout and code kernels with the same PCA (one-line errors otherwise)."""
    from visionfw.checkpoint import load_model
    from visionfw.kernel_codes import CodeError, bridge

    trained = load_model(path, compile=False)
    shapes = [tuple(w.shape) for w in trained.weights]
    if shapes != [tuple(w.shape) for w in network.weights]:
        width = "--param nf" if role == "predictor" else "--corrector-nf"
        raise TrainError(f"--{role} {path}: {trained.name} has another layout than this "
                         f"run's {role.capitalize()} (check {width} and code_len)")
    try:
        same = bridge(pca_of(trained), pca) is None
    except CodeError:
        same = False
    if not same:
        raise TrainError(f"--{role} {path}: it was trained with another PCA than the "
                         "SFTMD's (train it for the same SFTMD)")
    network.set_weights(trained.get_weights())


@register_recipe("ikc")
class IKCRecipe(Recipe):
    """IKC's Predictor and Corrector on a frozen SFTMD (the trained model is
    ``ikc-predictor``; the Corrector is ``ikc-corrector`` with the same ``nf`` and
    ``code_len``)."""

    params = (
        Hyperparameter("sftmd", str, "", "the trained SFTMD weights (train.py sftmd)"),
        Hyperparameter("steps_per_batch", int, 7, "correction steps (Corrector updates) per "
                       "batch"),
        Hyperparameter("corrector_nf", int, 0, "Corrector width (0: the Predictor's nf)"),
        Hyperparameter("predictor", str, "", "start the Predictor from these weights (a "
                       "train.py ikc-predictor run's best.weights.h5, same SFTMD)"),
        Hyperparameter("corrector", str, "", "start the Corrector from these weights (a "
                       "train.py ikc run's best.weights.h5, same SFTMD)"),
        Hyperparameter("train_predictor", bool, True, "false: keep the Predictor as it starts "
                       "(a Predictor trained on larger patches), train the Corrector only"),
    )
    model = "ikc-predictor"          # train.py ikc ... trains this model with this recipe
    main = "corrector"
    ema = ("predictor", "corrector")
    saved = ("predictor", "corrector")
    needs = ("kernel",)
    test_weights = {"sftmd": "sftmd.weights.h5", "predictor": "best.predictor.weights.h5",
                    "corrector": "best.weights.h5"}
    val_metrics = ("code_error", "predictor_code_error")

    @classmethod
    def default_degradation(cls, scale):
        from visionfw.recipes.sftmd import ikc_degradation

        return ikc_degradation(scale)

    @classmethod
    def check_run(cls, config):
        check_sftmd(config.recipe_params.get("sftmd"), config.scale)

    def build(self):
        from visionfw import models
        from visionfw.checkpoint import save_model
        from visionfw.graph.builder import attach_spec, build

        from visionfw.conditioning import roles_of

        meta = self.model_dict.get("meta") or {}
        if "sr" in roles_of(self.model_dict):
            raise TrainError("IKC's Corrector trains together with the Predictor: train.py ikc "
                             "--sftmd FILE (the Corrector's nf follows --param nf, or "
                             "--corrector-nf)")
        if meta.get("output") != "kernel_code":
            raise TrainError("recipe ikc trains ikc-predictor (train.py ikc-predictor --recipe "
                             "ikc ...)")
        code_len = int(meta["code_len"])
        if self.options["steps_per_batch"] < 1:
            raise TrainError("--steps-per-batch must be at least 1")
        sftmd, self.pca = load_sftmd(self.options["sftmd"], code_len, self.config.scale)
        nf = self.options["corrector_nf"] or int(self.hparams.get("nf", 64))
        corrector_hp = {"nf": nf, "code_len": code_len, "scale": int(self.config.scale)}
        predictor_dict = with_pca(self.model_dict, self.pca)
        corrector_dict = with_pca(models.model_dict("ikc-corrector", **corrector_hp), self.pca)
        predictor, corrector = build(predictor_dict), build(corrector_dict)
        attach_spec(predictor, predictor_dict, self.model_name, self.hparams)
        if self.options["predictor"]:
            start_from(predictor, self.options["predictor"], self.pca)
        attach_spec(corrector, corrector_dict, "ikc-corrector", corrector_hp)
        if self.options["corrector"]:
            start_from(corrector, self.options["corrector"], self.pca, role="corrector")
        self.networks = {"predictor": predictor, "corrector": corrector, "sftmd": sftmd}
        self.optimizers = {"corrector": self.adam(
            updates_per_step=self.options["steps_per_batch"])}
        if self.options["train_predictor"]:
            self.optimizers["predictor"] = self.adam()
        else:
            if not self.options["predictor"]:
                raise TrainError("--train-predictor false keeps the Predictor as it "
                                 "starts: give the trained one, --predictor FILE")
            predictor.trainable = False
        if self.config.out:                                            # the run names all three
            with writing(self.config.out, "sftmd.weights.h5"):
                check_room(self.config.out, sftmd)
                save_model(sftmd, f"{self.config.out}/sftmd.weights.h5")

    def train_step(self, batch, opt):
        p, c, f = (self.networks.get(k) for k in ("predictor", "corrector", "sftmd"))
        lr = batch["lr"]
        true = encode(self.pca, batch["kernel"])

        def mse(code):
            return tf.reduce_mean(tf.square(tf.cast(code, tf.float32) - true))

        def predictor_loss():
            est = tf.cast(p(lr, training=True), tf.float32)
            return mse(est), est

        if self.options["train_predictor"]:
            p_loss, code = opt.minimize("predictor", predictor_loss)
        else:
            code = tf.cast(p(lr, training=False), tf.float32)
            p_loss = mse(code)
        code = tf.stop_gradient(code)
        out = {"predictor_loss": p_loss}
        # SFTMD's pass and the Corrector's update, each traced once for all the steps
        sr_of = traced(lambda lr, code: tf.stop_gradient(tf.clip_by_value(
            tf.cast(f([lr, code], training=False), tf.float32), 0.0, 1.0)))

        def corrector_loss(sr, code, true):
            new = tf.cast(c([sr, code], training=True), tf.float32)
            return tf.reduce_mean(tf.square(new - true)), new

        update = opt.minimizer("corrector", corrector_loss)
        for step in range(self.options["steps_per_batch"]):
            c_loss, code = update(sr_of(lr, code), code, true)
            code = tf.stop_gradient(code)
            out[f"corrector_loss_{step + 1}"] = c_loss
        out["loss"] = c_loss
        return out

    def predict(self, inputs):
        p, c, f = (self.networks.get(k) for k in ("predictor", "corrector", "sftmd"))
        codes, images = ikc_loop(p, c, f, inputs["lr"], self.options["steps_per_batch"])
        true = encode(self.pca, inputs["kernel"])

        def error(code):                    # per image: the mean squared code error
            return tf.reduce_mean(tf.square(code - true), axis=-1)

        return images[-1], {"code_error": error(codes[-1]),
                            "predictor_code_error": error(codes[0]),
                            "kernel": self.pca.decode(codes[-1])}


@register_recipe("ikc-predictor")
class PredictorRecipe(IKCRecipe):
    """IKC's Predictor alone: MSE between its code and the true kernel's code.

    With ``--sftmd FILE`` the codes are in the PCA of the SFTMD the Predictor will serve, and
    validation scores SFTMD on the Predictor's code (the loop's step 0). Without an SFTMD,
    ``--pca fit`` fits the PCA on 30000 kernels of the run's own degradation (codes taken
    without the mean, as IKC's; the mean kept for decoding) or ``--pca FILE`` reads one, and
    validation is in kernel space: the decoded estimate's kernel PSNR, the measure
    ``best.weights.h5`` keeps the best of (a kernel estimator ranked beside KENet)."""

    params = (Hyperparameter("sftmd", str, "", "the trained SFTMD weights (train.py sftmd)"),
              Hyperparameter("pca", str, "", "without --sftmd: 'fit' (fitted on the run's "
                             "training kernels) or a PCA file"))
    main = "predictor"
    ema = ("predictor",)
    saved = ()
    test_weights = {"model": "best.weights.h5"}     # test.py kernel-estimator --weights RUN
    val_metrics = ("code_error",)

    @classmethod
    def check_run(cls, config):
        o = config.recipe_params
        if o.get("sftmd") and o.get("pca"):
            raise TrainError("--sftmd and --pca: the Predictor codes kernels in the SFTMD's "
                             "PCA; give one of them")
        if o.get("sftmd") or not o.get("pca"):
            check_sftmd(o.get("sftmd"), config.scale)
        elif o["pca"] != "fit":
            from visionfw.degradation import DegradationError, load_pca

            try:
                pca = load_pca(o["pca"])
            except DegradationError as exc:
                raise TrainError(f"--pca {exc}") from None
            from visionfw.recipes.kenet import training_kernel_size

            drawn = training_kernel_size(config.degradation)
            if drawn != pca.kernel_size:
                raise TrainError(f"--pca {o['pca']} codes {pca.kernel_size}x"
                                 f"{pca.kernel_size} kernels but the degradation draws "
                                 f"{drawn}x{drawn} ones: give --degradation with "
                                 f"size={pca.kernel_size}, or --pca fit")

    def build(self):
        from visionfw.checkpoint import save_model
        from visionfw.graph.builder import attach_spec, build

        meta = self.model_dict.get("meta") or {}
        if meta.get("output") != "kernel_code":
            raise TrainError(f"recipe ikc-predictor trains kernel-code predictors; "
                             f"{self.model_dict.get('name')} outputs {meta.get('output', 'an image')}")
        code_len = int(meta["code_len"])
        sftmd = None
        if self.options["sftmd"]:
            sftmd, self.pca = load_sftmd(self.options["sftmd"], code_len, self.config.scale)
        else:
            self.pca = self.fitted_pca(code_len)
            self.val_metrics = ("code_error", "kernel_psnr")
            self.best_by = "kernel_psnr"
        d = with_pca(self.model_dict, self.pca)
        predictor = build(d)
        attach_spec(predictor, d, self.model_name, self.hparams)
        self.networks = {"predictor": predictor}
        self.optimizers = {"predictor": self.adam()}
        if sftmd is not None:
            self.networks["sftmd"] = sftmd
            if self.config.out:
                with writing(self.config.out, "sftmd.weights.h5"):
                    check_room(self.config.out, sftmd)
                    save_model(sftmd, f"{self.config.out}/sftmd.weights.h5")

    def fitted_pca(self, code_len):
        """The PCA of a run without SFTMD: fitted on 30000 of its own training kernels (seed
        0), IKC-style codes; or read from ``--pca FILE``."""
        from visionfw.degradation import DegradationError, KernelPCA, load_pca

        if self.options["pca"] != "fit":
            pca = load_pca(self.options["pca"]).without_mean()
        else:
            from visionfw.degradation.metrics import training_kernels

            kernels = np.concatenate(list(training_kernels(self.config.degradation, 30000)))
            try:
                pca = KernelPCA.fit(kernels, code_len, keep_mean=False)
            except DegradationError as exc:
                raise TrainError(f"--pca fit: {exc}") from None
        if pca.n_components != code_len:
            raise TrainError(f"--pca {self.options['pca']} gives {pca.n_components}-long codes; "
                             f"the Predictor has code_len={code_len}")
        return pca

    def train_step(self, batch, opt):
        p, true = self.networks["predictor"], encode(self.pca, batch["kernel"])

        def loss():
            return tf.reduce_mean(tf.square(tf.cast(p(batch["lr"], training=True), tf.float32)
                                            - true))

        return {"loss": opt.minimize("predictor", loss)}

    def predict(self, inputs):
        p, f = self.networks["predictor"], self.networks.get("sftmd")
        true = encode(self.pca, inputs["kernel"])
        if f is None:
            from visionfw.recipes.kenet import bicubic_up, kernel_psnr_tf

            code = tf.cast(p(inputs["lr"], training=False), tf.float32)
            kernel = tf.cast(self.pca.decode(code), tf.float32)
            truth = tf.cast(inputs["kernel"], tf.float32)
            return bicubic_up(inputs["lr"], int(self.config.scale)), {
                "code_error": tf.reduce_mean(tf.square(code - true), axis=-1),
                "kernel_psnr": kernel_psnr_tf(kernel, truth), "kernel": kernel}
        codes, images = ikc_loop(p, None, f, inputs["lr"], 0)
        return images[0], {"code_error": tf.reduce_mean(tf.square(codes[0] - true), axis=-1),
                           "kernel": self.pca.decode(codes[0])}
