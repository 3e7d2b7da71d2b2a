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
    params = (Hyperparameter("pca", str, "", "PCA file that decodes a kernel-code output"),
              Hyperparameter("ensemble", bool, False, "average the kernels estimated from the 8 "
                             "flips and turns of the LR image, each turned back"),
              Hyperparameter("temperature", float, 1.0, "the estimate raised to 1/T and "
                             "renormalised (a softmax's temperature; T < 1 narrows it)"))

    def check(self):
        from visionfw.inference import Predictor

        check_temperature(self.options["temperature"], "temperature")
        model = self.networks["model"]
        meta = model_meta(model)
        self.output = meta.get("output", "image")
        if self.output not in ("kernel", "kernel_code"):
            raise MethodError(f"model {model.name!r} predicts {self.output}s, not kernels; "
                              "kernel-estimator scores kernel estimators")
        if len(model.inputs) != 1:
            raise MethodError(f"model {model.name!r} takes {len(model.inputs)} inputs; "
                              "kernel-estimator runs networks from the LR image alone (an IKC "
                              "Corrector, which also takes an SR image, runs in test.py ikc)")
        if self.tile or self.ensemble:
            raise MethodError("kernel-estimator: --tile and --self-ensemble would average "
                              "kernels of different regions or orientations; leave them out")
        self.pca = None
        if self.output == "kernel_code":
            self.pca = code_pca(model, self.options["pca"])
        self.predict = Predictor(model)

    def fixed_scale(self, role):
        return False

    def protocol(self):
        out = super().protocol()
        out["kernel_ensemble"] = bool(self.options["ensemble"])
        out["kernel_temperature"] = float(self.options["temperature"])
        return out

    def estimate(self, lr):
        """The network's kernel for one LR image, decoded when it predicts a code."""
        out = self.predict(lr)
        if self.pca is not None:                      # mean restored, clipped, sum one
            kernel = self.pca.decode(out[None].astype(np.float64))[0]
        else:
            side = int(round(np.sqrt(out.size)))
            kernel = out.reshape(side, side) if out.ndim == 1 else out
        return np.asarray(kernel, np.float64)

    def __call__(self, lr, bicubic, labels):
        if self.options["ensemble"]:
            kernel = dihedral_kernel_mean(self.estimate, lr)
        else:
            kernel = self.estimate(lr)
        return {"kernel": temper(kernel, self.options["temperature"]).astype(np.float32)}


def check_temperature(value, name):
    """A temperature must be a positive number: one line otherwise."""
    if not np.isfinite(value) or value <= 0:
        raise MethodError(f"--method-param {name}={value}: a temperature is a number above 0 "
                          "(1 leaves the kernel as it is, below 1 narrows it)")


def temper(kernel, temperature=1.0):
    """``kernel`` raised to ``1 / temperature`` and renormalised to sum one (float64; at
    temperature 1 the kernel as it is).

    For an estimator ending in a softmax this is the softmax of its logits divided by the
    temperature; for a Gaussian kernel of covariance C it is the Gaussian of covariance
    ``temperature * C``. An estimator trained with an L1 loss on small patches hedges
    between the kernels a patch cannot tell apart, and their average is wider than any of
    them; a temperature below 1, chosen on images outside the test sets, takes part of that
    width back (docs/kenet.md, "Width: patch size and temperature").
    """
    kernel = np.asarray(kernel, np.float64)
    if temperature == 1.0:
        return kernel                                     # as it is
    kernel = np.clip(kernel, 0.0, None)
    peak = kernel.max()
    if peak <= 0:
        raise MethodError("the estimated kernel is zero everywhere; nothing to temper")
    out = (kernel / peak) ** (1.0 / float(temperature))   # scaled first: no underflow of the peak
    return out / out.sum()


def dihedral_kernel_mean(estimate, lr):
    """The mean of ``estimate``'s kernels for the 8 flips and turns of ``lr`` (the
    self-ensemble's :func:`visionfw.inference.orient`), each turned back about its centre tap
    (odd sizes), renormalised to sum one.

    A blur kernel turns with the image it blurs, so an estimator that were exactly equivariant
    would give the same kernel eight times; a real one gives eight estimates whose errors
    partly differ, and their mean is steadier. Left-right and up-down flips move the sampling
    grid of top-left decimation by ``s - 1`` HR pixels, a shift under one LR pixel that an
    estimator of the LR image alone cannot see: it answers with a centred kernel, as trained,
    which is what the unflipped image's kernel is.
    """
    from visionfw.inference import orient, unorient

    kernels = [unorient(np.asarray(estimate(orient(lr, k, flip)), np.float64), k, flip)
               for flip in (False, True) for k in range(4)]
    mean = np.mean(kernels, axis=0)
    return mean / mean.sum()


def code_pca(model, given=""):
    """The PCA that decodes ``model``'s kernel codes: the one it carries, or ``given`` (a file,
    for converted weights that carry none). A file that disagrees with the PCA the network
    carries is refused: the network's codes mean nothing in another basis."""
    from visionfw.kernel_codes import CodeError, pca_of

    try:
        own = pca_of(model)
    except CodeError:
        own = None
    pca = own
    if given:
        from visionfw.degradation import DegradationError, load_pca

        try:
            pca = load_pca(given).without_mean()
        except DegradationError as exc:
            raise MethodError(f"--method-param pca: {exc}") from None
        if own is not None and not own.same_codes(pca):
            raise MethodError(f"--method-param pca={given}: model {model.name!r} carries the PCA "
                              "it was trained with, and this file codes kernels differently "
                              "(other directions or signs); leave --method-param pca out")
    if pca is None:
        raise MethodError(f"model {model.name!r} predicts a kernel code and carries no PCA: "
                          "give the one that decodes it, --method-param pca=FILE")
    code_len = model.outputs[0].shape[-1]
    if code_len != pca.n_components:
        raise MethodError(f"model {model.name!r} predicts {code_len}-long codes but the PCA "
                          f"{given or '(its own)'} has {pca.n_components} components")
    return pca


@register_method("mean-kernel", aliases=("mean",))
class MeanKernelMethod(Method):
    """The baseline kernel estimator: whatever the image, the mean kernel of a training
    degradation (:func:`visionfw.degradation.metrics.mean_training_kernel`, 10000 draws of
    its blur op, seed 0). No network; ``--scale`` is required. ``--method-param
    training=SPEC`` names the degradation (default: KENet's training blurs at the scale,
    :func:`visionfw.recipes.kenet.kernel_degradation`, the ``aniso`` protocol's)."""

    kind = "kernel"
    roles = ()
    labels = ("kernel",)
    params = (Hyperparameter("training", str, "", "the training degradation whose mean kernel "
                             "is the answer (default: KENet's at the scale)"),
              Hyperparameter("samples", int, 10000, "kernels averaged"),
              Hyperparameter("temperature", float, 1.0, "the mean kernel raised to 1/T and "
                             "renormalised"))

    def _scale(self, scale):
        if scale is None:
            raise MethodError("mean-kernel has no network to take the scale from: pass --scale")
        return int(scale)

    def check(self):
        from visionfw.degradation import DegradationError
        from visionfw.degradation.metrics import mean_training_kernel

        if self.tile or self.ensemble:
            raise MethodError("mean-kernel: --tile and --self-ensemble change nothing for a "
                              "fixed answer; leave them out")
        if self.options["samples"] < 1:
            raise MethodError("mean-kernel: --samples must be at least 1")
        check_temperature(self.options["temperature"], "temperature")
        self.training = self.options["training"] or default_training(self.scale)
        try:
            self.kernel = mean_training_kernel(self.training, self.options["samples"])
        except DegradationError as exc:
            raise MethodError(f"mean-kernel --training: {exc}") from None
        self.kernel = temper(self.kernel, self.options["temperature"])

    def __call__(self, lr, bicubic, labels):
        return {"kernel": self.kernel.astype(np.float32)}

    def protocol(self):
        out = super().protocol()
        out.update(training=self.training, samples=self.options["samples"],
                   kernel_temperature=float(self.options["temperature"]))
        return out


def default_training(scale):
    """KENet's training degradation at ``scale`` (the ``aniso`` protocol's blurs)."""
    from visionfw.recipes.kenet import kernel_degradation

    return kernel_degradation(scale)
