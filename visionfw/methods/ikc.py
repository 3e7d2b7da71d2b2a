"""IKC's correction loop at test time: the Predictor's code, then ``iterations`` Corrector
steps, each followed by SFTMD; every step is returned and scored."""
import numpy as np

from visionfw.kernel_codes import CodeError, bridge, pca_of
from visionfw.methods.base import Method, MethodError, register_method
from visionfw.params import Hyperparameter


@register_method("ikc")
class IKCMethod(Method):
    """Roles ``sftmd``, ``predictor``, ``corrector`` (or a ``train.py ikc`` run folder).

    The loop: ``h0 = P(LR)``, ``SR0 = F(LR, h0)``; ``iterations`` times ``h = C(SR, h)``,
    ``SR = F(LR, h)``. The result is the last step's SR; every step's SR and code are kept, the
    codes decoded with the PCA the networks carry, and SFTMD fed the true kernel's code gives the
    upper bound. Tiling and the self-ensemble are refused: a code estimated per tile or per
    orientation is another method.

    Each network codes kernels with the PCA it carries (``meta['pca']``); a Predictor or
    Corrector without one (converted from the published weights) takes ``--method-param
    pca=FILE``. Where two networks' PCAs differ, codes are carried from one basis to the other
    through kernel space, so published and locally trained networks can share the loop; each
    step's code error and decoded kernel are in the basis of the network that made it.
    """

    roles = ("sftmd", "predictor", "corrector")
    labels = ()          # blind: the true kernel only scores the estimates and the upper bound
    params = (Hyperparameter("iterations", int, 7, "Corrector steps"),
              Hyperparameter("pca", str, "", "PCA of a Predictor and Corrector that carry "
                             "none (the published weights: IKC's pca_matrix)"))

    def fixed_scale(self, role):
        return role == "sftmd"

    def check(self):
        from visionfw.runtime import InferenceFunction

        from visionfw.conditioning import roles_of
        from visionfw.methods.base import model_meta

        f, p, c = (self.networks[r] for r in self.roles)
        if roles_of(f) != ["image", "kernel_code"]:
            raise MethodError(f"--weights sftmd: {f.name} takes {', '.join(roles_of(f))}, not an "
                              "LR image and a kernel code")
        if model_meta(p).get("output") != "kernel_code" or len(p.inputs) != 1:
            raise MethodError(f"--weights predictor: {p.name} is not a kernel-code predictor "
                              "(one LR input, a code out)")
        if roles_of(c) != ["sr", "kernel_code"]:
            raise MethodError(f"--weights corrector: {c.name} takes {', '.join(roles_of(c))}, "
                              "not an SR image and a code")
        lengths = {r: int(n.outputs[0].shape[-1]) for r, n in (("predictor", p),
                                                                ("corrector", c))}
        lengths["sftmd"] = int(f.inputs[1].shape[-1])
        if len(set(lengths.values())) != 1:
            raise MethodError(f"the networks' code lengths differ: {lengths}")
        self.pca = pca_of(f)
        if self.pca.n_components != lengths["sftmd"]:
            raise MethodError(f"SFTMD's PCA gives {self.pca.n_components}-long codes, the "
                              f"networks take {lengths['sftmd']}")
        self.pcas = {"sftmd": self.pca, **self._estimator_pcas(p, c)}
        for role, pca in self.pcas.items():
            if pca.n_components != lengths["sftmd"]:
                raise MethodError(f"the {role}'s PCA gives {pca.n_components}-long codes, the "
                                  f"networks take {lengths['sftmd']}")
        try:
            self.bridges = {f"{a}>{b}": bridge(self.pcas[a], self.pcas[b])
                            for a, b in (("predictor", "corrector"), ("predictor", "sftmd"),
                                         ("corrector", "sftmd"))}
        except CodeError as exc:
            raise MethodError(str(exc)) from None
        if self.tile or self.ensemble:
            raise MethodError("ikc: --tile and --self-ensemble are not supported (the kernel "
                              "code is estimated from the whole image)")
        if self.options["iterations"] < 0:
            raise MethodError("--method-param iterations must be 0 or more")
        self._loop = InferenceFunction(self._run, name="IKC's loop")
        self._upper = InferenceFunction(self._sftmd, name="SFTMD")

    def _estimator_pcas(self, predictor, corrector):
        """Each network's PCA: its own, else --method-param pca (converted weights)."""
        from visionfw.degradation import load_pca

        from visionfw.degradation import DegradationError

        given = None
        if self.options["pca"]:
            try:
                given = load_pca(self.options["pca"]).without_mean()
            except DegradationError as exc:
                raise MethodError(f"--method-param pca: {exc}") from None
        out, bare = {}, []
        for role, net in (("predictor", predictor), ("corrector", corrector)):
            try:
                out[role] = pca_of(net)
            except CodeError:
                bare.append(role)
                out[role] = given
        if bare and given is None:
            raise MethodError(f"the {' and '.join(bare)} carr{'y' if len(bare) > 1 else 'ies'} "
                              "no PCA (converted weights?): give the one they were trained "
                              "with, --method-param pca=FILE")
        if given is not None and not bare:
            differ = [r for r in ("predictor", "corrector") if not out[r].same_codes(given)]
            if differ:
                raise MethodError(f"--method-param pca={self.options['pca']}: the "
                                  f"{' and '.join(differ)} carr{'y' if len(differ) > 1 else 'ies'}"
                                  " the PCA {} trained with, which codes kernels differently; "
                                  "the file is for networks that carry none (converted "
                                  "weights): leave it out".format(
                                      "they were" if len(differ) > 1 else "it was"))
        return out

    def _run(self, lr):
        from visionfw.recipes.ikc import ikc_loop

        f, p, c = (self.networks[r] for r in self.roles)
        return ikc_loop(p, c, f, lr, self.options["iterations"], bridges=self.bridges)

    def _sftmd(self, lr, code):
        import tensorflow as tf

        out = tf.cast(self.networks["sftmd"]([lr, code], training=False), tf.float32)
        return tf.clip_by_value(out, 0.0, 1.0)

    def __call__(self, lr, bicubic, labels):
        x = lr[None].astype(np.float32)
        codes, images = self._loop(x)
        kernel = None
        if labels and "kernel" in labels:
            kernel = np.asarray(labels["kernel"], np.float64)
        steps = []
        for t, (code, sr) in enumerate(zip(codes, images)):
            pca = self.pcas["predictor" if t == 0 else "corrector"]   # who made this code
            code = np.asarray(code)[0].astype(np.float64)
            step = {"label": f"step {t}", "image": np.asarray(sr)[0],
                    "kernel": pca.decode(code[None])[0]}
            if t == 0:
                step["note"] = " (predictor only)"
            if kernel is not None:
                true_code = pca.encode(kernel[None])[0]
                step["code_error"] = float(np.mean((code - true_code) ** 2))
            steps.append(step)
        last = steps[-1]["image"]
        out = {"sr": (last, last), "steps": steps, "kernel": steps[-1]["kernel"]}
        if kernel is not None:
            sftmd_code = self.pca.encode(kernel[None]).astype(np.float32)
            upper = np.asarray(self._upper(x, sftmd_code))[0]
            out["upper"] = (upper, upper)
        return out
