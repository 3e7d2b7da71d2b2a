"""DAN's unfolded loop at test time: from the code of a centred delta kernel, ``iterations``
times the Restorer then the Estimator; every iteration's SR image and code are scored."""
import numpy as np

from visionfw.methods.base import Method, MethodError, model_meta, register_method
from visionfw.params import Hyperparameter


@register_method("dan")
class DANMethod(Method):
    """Roles ``restorer`` (``dan-restorer``: LR image and code in, SR out) and ``estimator``
    (``dan-estimator``: LR and SR images in, code out), or a ``train.py dan`` run folder.

    Iteration ``t``: ``SR_t = R(LR, code_{t-1})``, ``code_t = E(LR, SR_t)``, from the code of
    a centred delta kernel; the result is the last iteration's SR. Each iteration's code is
    decoded with the PCA the networks carry (they must carry the same one) and scored against
    the true kernel where it is known; the Restorer fed the true kernel's code gives the upper
    bound. Tiling and the self-ensemble are refused (the code is estimated from the whole
    image, in one orientation).
    """

    roles = ("restorer", "estimator")
    labels = ()
    params = (Hyperparameter("iterations", int, 0, "unfolded iterations (0: as trained, "
                             "DAN's 4 for networks that do not record it)"),)

    def check(self):
        from visionfw.runtime import InferenceFunction

        from visionfw.conditioning import roles_of
        from visionfw.kernel_codes import CodeError, pca_of
        from visionfw.recipes.dan import delta_code

        r, e = self.networks["restorer"], self.networks["estimator"]
        if roles_of(r) != ["image", "kernel_code"] or \
                model_meta(r).get("output", "image") != "image":
            raise MethodError(f"--weights restorer: {r.name} takes {', '.join(roles_of(r))}; "
                              "the restorer takes an LR image and a kernel code (dan-restorer)")
        if roles_of(e) != ["image", "sr"] or model_meta(e).get("output") != "kernel_code":
            raise MethodError(f"--weights estimator: {e.name} takes {', '.join(roles_of(e))}; "
                              "the estimator takes the LR and SR images and gives a kernel "
                              "code (dan-estimator)")
        lengths = {"restorer": int(r.inputs[1].shape[-1]),
                   "estimator": int(e.outputs[0].shape[-1])}
        if lengths["restorer"] != lengths["estimator"]:
            raise MethodError(f"the networks' code lengths differ: {lengths}")
        try:
            pcas = {"restorer": pca_of(r), "estimator": pca_of(e)}
        except CodeError as exc:
            raise MethodError(str(exc)) from None
        if not pcas["restorer"].same_codes(pcas["estimator"]):
            raise MethodError("the restorer and the estimator carry different PCAs: they were "
                              "not trained together (train.py dan trains both)")
        self.pca = pcas["restorer"]
        if self.pca.n_components != lengths["restorer"]:
            raise MethodError(f"the PCA gives {self.pca.n_components}-long codes, the networks "
                              f"take {lengths['restorer']}")
        if int(model_meta(e).get("scale") or self.scale) != self.scale:
            raise MethodError(f"--weights estimator: {e.name} brings x{model_meta(e)['scale']} "
                              f"SR images to LR size, not x{self.scale}")
        if self.tile or self.ensemble:
            raise MethodError("dan: --tile and --self-ensemble are not supported (the kernel "
                              "code is estimated from the whole image)")
        if self.options["iterations"] < 0:
            raise MethodError("--method-param iterations must be 1 or more (0: as trained)")
        self.loops = self.options["iterations"] or int(model_meta(r).get("loops") or 4)
        self.start = delta_code(self.pca)
        self._loop = InferenceFunction(self._run, name="DAN's loop")
        self._upper = InferenceFunction(self._restore, name="DAN's restorer")

    def _run(self, lr):
        from visionfw.recipes.dan import dan_loop

        return dan_loop(self.networks["restorer"], self.networks["estimator"], lr, self.start,
                        self.loops)

    def _restore(self, lr, code):
        import tensorflow as tf

        return tf.cast(self.networks["restorer"]([lr, code], training=False), tf.float32)

    def __call__(self, lr, bicubic, labels):
        x = lr[None].astype(np.float32)
        images, codes = self._loop(x)
        kernel = None
        if labels and "kernel" in labels:
            kernel = np.asarray(labels["kernel"], np.float64)
            if kernel.shape != (self.pca.kernel_size,) * 2:
                raise MethodError(f"the degradation's {kernel.shape[1]}x{kernel.shape[0]} "
                                  f"kernels cannot be coded by the networks' "
                                  f"{self.pca.kernel_size}x{self.pca.kernel_size} PCA")
        true_code = None if kernel is None else self.pca.encode(kernel[None])[0]
        steps = []
        for t, (sr, code) in enumerate(zip(images, codes)):
            code = np.asarray(code)[0].astype(np.float64)
            step = {"label": f"iteration {t + 1}", "image": np.asarray(sr)[0],
                    "kernel": self.pca.decode(code[None])[0]}
            if true_code is not None:
                step["code_error"] = float(np.mean((code - true_code) ** 2))
            steps.append(step)
        last = steps[-1]["image"]
        out = {"sr": (last, last), "steps": steps, "kernel": steps[-1]["kernel"]}
        if true_code is not None:
            upper = np.asarray(self._upper(x, true_code[None].astype(np.float32)))[0]
            out["upper"] = (upper, upper)
        return out

    def protocol(self):
        out = super().protocol()
        out.update(iterations=self.loops, start="code of the centred delta kernel")
        return out
