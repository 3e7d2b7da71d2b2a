"""Kernel estimation scored in kernel space: a network from the LR image to a kernel (or a
kernel code decoded with a PCA), against the true kernel."""
import numpy as np

from visionfw.methods.base import Method, MethodError, model_meta, register_method
from visionfw.params import Hyperparameter


@register_method("kernel-estimator")
class KernelEstimatorMethod(Method):
    """A network (role ``model``) from the LR image to the blur kernel that made it.

    Its ``meta['output']`` is ``'kernel'`` (a ``(B, k, k)`` or ``(B, k*k)`` output) or
    ``'kernel_code'`` (a ``(B, t)`` PCA code, decoded with the PCA the network carries, or
    ``--method-param pca=FILE``: a ``.npy``/``.mat``/``.h5`` PCA of
    :func:`visionfw.degradation.load_pca`, for converted weights). Scored by the
    kernel PSNR of :func:`visionfw.degradation.kernel_psnr` (the estimate and the true kernel
    aligned on their centres).
    """

    kind = "kernel"
    labels = ("kernel",)
    params = (Hyperparameter("pca", str, "", "PCA file that decodes a kernel-code output"),)

    def check(self):
        from visionfw.inference import Predictor

        model = self.networks["model"]
        meta = model_meta(model)
        self.output = meta.get("output", "image")
        if self.output not in ("kernel", "kernel_code"):
            raise MethodError(f"model {model.name!r} predicts a {self.output}, not a kernel; "
                              "kernel-estimator scores kernel estimators")
        if self.tile or self.ensemble:
            raise MethodError("kernel-estimator: --tile and --self-ensemble would average "
                              "kernels of different regions or orientations; leave them out")
        self.pca = None
        if self.output == "kernel_code" and not self.options["pca"]:
            from visionfw.kernel_codes import CodeError, pca_of

            try:
                self.pca = pca_of(model)              # trained here: it carries its PCA
            except CodeError:
                pass
        if self.output == "kernel_code" and self.pca is None:
            if not self.options["pca"]:
                raise MethodError(f"model {model.name!r} predicts a kernel code, not an image "
                                  "or a kernel: give the PCA that decodes it, "
                                  "--method-param pca=FILE")
            from visionfw.degradation import load_pca

            self.pca = load_pca(self.options["pca"])
            code_len = model.outputs[0].shape[-1]
            if code_len != self.pca.n_components:
                raise MethodError(f"model {model.name!r} predicts {code_len}-long codes but "
                                  f"{self.options['pca']} has {self.pca.n_components} "
                                  "components")
        self.predict = Predictor(model)

    def fixed_scale(self, role):
        return False

    def __call__(self, lr, bicubic, labels):
        out = self.predict(lr)
        if self.pca is not None:
            kernel = self.pca.decode(out[None].astype(np.float64))[0]
        else:
            side = int(round(np.sqrt(out.size)))
            kernel = out.reshape(side, side) if out.ndim == 1 else out
        return {"kernel": np.asarray(kernel, np.float32)}
