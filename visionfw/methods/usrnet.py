"""USRNet at test time: the network fed the kernel (the true one, or an estimator's), the
scale and the noise level, beside the same unrolled data steps with the prior left out -- what
the learned prior adds over the closed-form solutions alone."""
import numpy as np

from visionfw.conditioning import spec_dict
from visionfw.methods.base import MethodError, register_method
from visionfw.params import Hyperparameter
from visionfw.methods.nonblind import NonBlindMethod


def without_prior(model):
    """The same USRNet with every prior step replaced by the identity (the estimate passes
    through, its beta map dropped): the data steps alone, with the trained alphas."""
    from visionfw.graph.builder import attach_spec, build

    d = dict(spec_dict(model))
    if "prior" not in d:
        raise MethodError(f"model {model.name!r} has no 'prior' links to leave out; the "
                          "data-steps row needs a USRNet dictionary")
    channels = int(model.inputs[0].shape[-1])
    identity = {"name": "NoPrior", "inputs": [{"node": 0, "shape": [None, None, channels + 1]}],
                "take": [(0, 1)], "take_sub": "TakeChannels",
                "take_par": {"start": 0, "size": channels}}
    d["prior_sub"] = [identity] * len(d["prior"])
    d.pop("prior_par", None)
    d["name"] = f"{d.get('name', 'USRNet')}DataSteps"
    bare = build(d)
    attach_spec(bare, d)
    own = {layer.name: layer for layer in model.layers}
    for layer in bare.layers:
        if layer.weights:
            layer.set_weights(own[layer.name].get_weights())
    return bare


def iterations_view(model):
    """A second Keras model over USRNet's graph whose output is every iteration's estimate
    (the output of each prior step, the last being the network's own), concatenated along
    the channels: ``(N, sH, sW, K * C)`` -- one array, so tiles and the self-ensemble treat
    it as an image. The network is rebuilt from its dictionary and given its weights; the
    trained model is left as it is. ``None`` for a network without ``'prior'`` links."""
    import keras

    from visionfw.graph.builder import Trace, build

    d = spec_dict(model)
    if "prior" not in d:
        return None
    trace = Trace()
    twin = build(d, trace=trace)
    own = {layer.name: layer for layer in model.layers}
    for layer in twin.layers:
        if layer.weights:
            layer.set_weights(own[layer.name].get_weights())
    estimates = [b.outputs[0] for b in trace.steps if b.step.family == "prior"]
    joined = (estimates[0] if len(estimates) == 1 else
              keras.layers.Concatenate(axis=-1, name="iterations")(estimates))
    view = keras.Model(twin.inputs, joined, name=f"{twin.name}_iterations")
    view.iterations = len(estimates)
    return view


def split_iterations(stack, count):
    """The ``count`` estimates of :func:`iterations_view`'s output, as a list of images."""
    return [np.ascontiguousarray(x) for x in np.split(np.asarray(stack), count, axis=-1)]


@register_method("usrnet")
class USRNetMethod(NonBlindMethod):
    """USRNet (role ``model``) fed the true kernel, scale and noise level of each LR image,
    with a second row from the data steps alone (the prior replaced by the identity, the
    same alphas).

    The kernel comes from :meth:`kernel_for`: the degradation's true kernel, or with the
    optional role ``estimator`` (a kernel estimator: ``meta['output']`` ``'kernel'`` or
    ``'kernel_code'``) the kernel it estimates from the LR image -- the hook blind pipelines
    (a kernel estimator + USRNet) plug into.

    ``--method-param steps=true`` returns every iteration's estimate as a step (``iteration
    1`` .. ``iteration K``, the last being the result; :func:`iterations_view`): ``test.py``
    scores each, ``sr`` writes them with ``--save-steps`` and on its contact sheet.
    """

    optional_roles = ("estimator",)
    params = (Hyperparameter("steps", bool, False, "return every iteration's estimate as a "
                             "step"),)

    def check(self):
        estimator = self.networks.pop("estimator", None)
        super().check()
        if "kernel" not in self.roles:
            raise MethodError(f"model {self.networks['model'].name!r} takes no kernel; "
                              "test.py usrnet runs kernel-conditioned unfolding networks")
        self.estimator = None
        if estimator is not None:
            self.estimator = self.make_estimator(estimator)
            self.networks["estimator"] = estimator
            self.labels = ()                               # blind: no true kernel needed
        self.data_steps = self.iterations = None
        if "prior" in spec_dict(self.networks["model"]):
            from visionfw.inference import Predictor

            self.data_steps = Predictor(without_prior(self.networks["model"]))
            if self.wants_iterations():
                view = iterations_view(self.networks["model"])
                self.iterations = (Predictor(view), view.iterations)
        elif self.wants_iterations():
            raise MethodError(f"model {self.networks['model'].name!r} has no 'prior' links "
                              "whose estimates would be the steps; leave steps out")

    def wants_iterations(self):
        """Whether the steps are USRNet's iterations (``steps=true``)."""
        return bool(self.options.get("steps"))

    def fixed_scale(self, role):
        return False

    def make_estimator(self, network):
        """What estimates the kernel from the LR image: ``f(lr, bicubic, labels) ->
        {"kernel": ...}`` (a network from the LR image alone, run as ``kernel-estimator``)."""
        from visionfw.methods.kernel import KernelEstimatorMethod

        return KernelEstimatorMethod({"model": network}, scale=self.scale,
                                     ensemble=bool(self.options.get("ensemble", False)),
                                     temperature=float(self.options.get("temperature", 1.0)))

    def check_fits(self, lr, kernel):
        """The data step needs a kernel no larger than the SR image (or tile): one line."""
        kh, kw = kernel.shape
        h, w = lr.shape[0] * self.scale, lr.shape[1] * self.scale
        if self.tile:
            h = w = min(self.tile * self.scale, h, w)
        if kh > h or kw > w:
            raise MethodError(f"the {kw}x{kh} kernel is larger than the {w}x{h} SR image"
                              + (" tile" if self.tile else "") + "; the data step needs a "
                              "kernel no larger than the image")

    def estimate(self, lr, labels):
        """What the estimator finds: ``{"kernel": ...}``, and for a loop that keeps them its
        earlier steps under ``"trail"``."""
        found = dict(self.estimator(lr, None, labels))
        found["kernel"] = np.asarray(found["kernel"], np.float32)
        return found

    def kernel_for(self, lr, labels):
        """The kernel USRNet is given: the estimator's, else the true one."""
        if self.estimator is not None:
            return self.estimate(lr, labels)["kernel"]
        if "kernel" not in labels:
            raise MethodError("usrnet needs the true kernel of each image (or --weights "
                              "estimator=FILE, a kernel estimator)")
        return np.asarray(labels["kernel"], np.float32)

    def run_iterations(self, lr, labels):
        """Every iteration's estimate (tiles and self-ensemble as for the network); the
        steps, the last being the network's output."""
        predict, count = self.iterations
        images = split_iterations(self.run_with(predict, lr, labels), count)
        return [{"label": f"iteration {i + 1}", "image": x} for i, x in enumerate(images)]

    def __call__(self, lr, bicubic, labels):
        labels = dict(labels, kernel=self.kernel_for(lr, labels))
        self.check_fits(lr, labels["kernel"])
        if self.iterations is not None:
            steps = self.run_iterations(lr, labels)
            out = {"sr": (steps[-1]["image"], steps[-1]["image"]), "steps": steps}
        else:
            out = super().__call__(lr, bicubic, labels)
        out["kernel"] = labels["kernel"]
        if self.data_steps is not None:      # fed like the network, tiles and ensemble too
            x = self.run_with(self.data_steps, lr, labels)
            out["also"] = {"data steps alone": (x, x)}
        return out

    def protocol(self):
        out = super().protocol()
        out["kernel"] = "estimated" if self.estimator is not None else "true"
        return out



@register_method("kenet+usrnet", aliases=("estimator+usrnet",))
class EstimatorUSRNetMethod(USRNetMethod):
    """A blind pipeline: a kernel estimator (role ``estimator``: KENet, or any network with
    ``meta['output']`` ``'kernel'``/``'kernel_code'``) reads the kernel off the LR image and
    USRNet (role ``model``) restores with it. Two more rows come from the same USRNet: fed
    the mean training kernel (the estimator that learnt nothing but the training
    distribution) and the true kernel (the upper bound), when the degradation records it
    (``test.py`` on generated LR images; not ``sr`` or ``--lr-dir``).

    The estimate is handed to USRNet as it is when its side is odd: USRNet's data step
    centres a kernel on tap ``size // 2``, as KENet and the degradation library do, so a
    smaller kernel is the same blur as one zero-padded about that tap. An even side has no
    centre tap and is refused. The report records the estimate's size and this convention.

    ``steps=true``: USRNet's iterations on the estimate, as for ``usrnet``.
    """

    roles = ("model", "estimator")
    optional_roles = ()
    params = (Hyperparameter("training", str, "", "the training degradation whose mean kernel "
                             "fills the mean-kernel row (default: KENet's at the scale, the "
                             "estimator's kernel size)"),
              Hyperparameter("ensemble", bool, False, "the estimator's kernel: the mean of its "
                             "estimates from the 8 flips and turns of the LR image, each turned "
                             "back"),
              Hyperparameter("temperature", float, 1.0, "the estimator's kernel raised to 1/T "
                             "and renormalised (T < 1 narrows it; docs/kenet.md)"),
              Hyperparameter("mean_temperature", float, 1.0, "the same for the mean-kernel "
                             "row's kernel"),
              USRNetMethod.params[0])

    def check(self):
        from visionfw.methods.base import model_meta

        restorer, estimator = self.networks["model"], self.networks["estimator"]
        if model_meta(restorer).get("output", "image") != "image":
            raise MethodError(f"--weights model={restorer.name}: that is a kernel estimator; "
                              "the model role is the restorer (USRNet), the estimator role "
                              "the kernel estimator: --weights model=USRNET "
                              "--weights estimator=KENET")
        meta = model_meta(estimator)
        if meta.get("output") not in ("kernel", "kernel_code"):
            raise MethodError(f"--weights estimator={estimator.name}: it predicts "
                              f"{meta.get('output', 'image')}s, not kernels")
        trained = meta.get("scale")
        if trained is not None and int(trained) != self.scale:
            raise MethodError(f"--weights estimator={estimator.name} estimates the kernels of "
                              f"x{trained} LR images, not x{self.scale}: give an estimator "
                              f"trained at x{self.scale}")
        from visionfw.methods.kernel import check_temperature

        for name in ("temperature", "mean_temperature"):
            check_temperature(self.options[name], name)
        super().check()
        self.labels = ()                    # blind; the true-kernel row only where known
        side = self._estimate_side(estimator)
        if side is not None and side % 2 == 0:
            raise MethodError(f"--weights estimator={estimator.name} estimates {side}x{side} "
                              "kernels; USRNet centres a kernel on tap size // 2, which an "
                              "even size does not have: use an odd kernel size")
        self.side = side
        self._mean = None

    @staticmethod
    def _estimate_side(estimator):
        from visionfw.kernel_codes import CodeError, pca_of
        from visionfw.methods.base import model_meta

        meta = model_meta(estimator)
        if meta.get("output") == "kernel_code":
            try:
                return pca_of(meta).kernel_size
            except CodeError:
                return None
        shape = estimator.outputs[0].shape
        return int(shape[-1]) if shape[-1] is not None else None

    def default_training(self, size):
        """The degradation whose mean kernel fills the mean-kernel row when ``--method-param
        training`` is not given: KENet's training blurs at the scale and ``size``."""
        from visionfw.recipes.kenet import kernel_degradation

        return kernel_degradation(self.scale, size)

    def training_spec(self, size):
        """The degradation whose mean kernel fills the mean-kernel row: ``--method-param
        training``, else :meth:`default_training` at ``size`` (None while the size is not
        known)."""
        return self.options["training"] or (self.default_training(size) if size else None)

    def mean_kernel(self, size):
        from visionfw.degradation import DegradationError
        from visionfw.degradation.metrics import mean_training_kernel
        from visionfw.methods.kernel import temper

        if self._mean is None:
            try:
                mean = mean_training_kernel(self.training_spec(size))
            except DegradationError as exc:
                raise MethodError(f"kenet+usrnet --training: {exc}") from None
            self._mean = temper(mean, self.options["mean_temperature"]).astype(np.float32)
        return self._mean

    def restore(self, lr, labels, kernel, iterations=False):
        """USRNet fed ``kernel``: the SR image, or with ``iterations`` every iteration's
        estimate as steps (:meth:`run_iterations`)."""
        kh, kw = kernel.shape
        if kh % 2 == 0 or kw % 2 == 0:
            raise MethodError(f"a {kw}x{kh} kernel has no centre tap; USRNet takes odd sizes")
        self.check_fits(lr, kernel)
        if iterations:
            return self.run_iterations(lr, dict(labels, kernel=kernel))
        return self.run_with(self.predict, lr, dict(labels, kernel=kernel))

    def __call__(self, lr, bicubic, labels):
        found = self.estimate(lr, labels)
        estimate = found["kernel"]
        steps = None
        if self.iterations is not None:
            steps = self.restore(lr, labels, estimate, iterations=True)
            sr = steps[-1]["image"]
        else:
            sr = self.restore(lr, labels, estimate)
        if self.options.get("steps") and "trail" in found:   # a loop's own steps (DAN's)
            steps = found["trail"] + [{"image": sr, "kernel": estimate}]
            steps = [dict(step, label=f"step {t}") for t, step in enumerate(steps)]
        out = {"sr": (sr, sr), "kernel": estimate}
        if steps:
            out["steps"] = steps
        if "kernel" in labels:              # scored against ground truth: the two baselines
            also = {"USRNet + mean kernel": self.restore(lr, labels,
                                                         self.mean_kernel(estimate.shape[0])),
                    "USRNet + true kernel": self.restore(
                        lr, labels, np.asarray(labels["kernel"], np.float32))}
            out["also"] = {k: (v, v) for k, v in also.items()}
        return out

    def protocol(self):
        out = super().protocol()
        out.update(kernel="estimated", estimated_kernel_size=self.side,
                   kernel_ensemble=bool(self.options["ensemble"]),
                   kernel_temperature=float(self.options["temperature"]),
                   mean_kernel_temperature=float(self.options["mean_temperature"]),
                   kernel_centre="tap size // 2 (USRNet's); odd sizes fed as they are",
                   mean_kernel_training=self.training_spec(self.side))
        return out


@register_method("dan+usrnet")
class DANUSRNetMethod(EstimatorUSRNetMethod):
    """DAN's kernel Estimator (role ``estimator``, ``dan-kernel-estimator``: LR and SR in,
    kernel out) alternating with USRNet (role ``model``), or a ``train.py dan-usrnet`` run
    folder: from the centred delta kernel, ``iterations`` times ``SR = USRNet(LR, k)``, ``k =
    E(LR, SR)``; the result is USRNet fed the last kernel. The rows beside it are those of
    ``kenet+usrnet``: USRNet fed the mean training kernel and the true kernel.

    ``steps=true`` returns the alternations as steps: step ``t`` is USRNet fed the kernel of
    alternation ``t`` (step 0: the delta kernel), the last step the result. ``temperature``
    tempers the last kernel only, the one the result is made with; the loop runs as trained."""

    params = (Hyperparameter("training", str, "", "the training degradation whose mean kernel "
                             "fills the mean-kernel row (default: train.py dan-usrnet's, USRNet's "
                             "Gaussian and motion blurs at the estimator's kernel size)"),
              *EstimatorUSRNetMethod.params[1:],
              Hyperparameter("iterations", int, 0, "alternations (0: as trained, 4 otherwise)"))

    def make_estimator(self, network):
        from visionfw.runtime import InferenceFunction

        from visionfw.conditioning import roles_of
        from visionfw.methods.base import model_meta

        if roles_of(network) != ["image", "sr"] or model_meta(network).get("output") != "kernel":
            raise MethodError(f"--weights estimator={network.name}: dan+usrnet alternates an "
                              "estimator of (LR, SR) -> kernel (dan-kernel-estimator) with "
                              "USRNet; a kernel estimator of the LR image alone runs in "
                              "kenet+usrnet")
        if self.options["iterations"] < 0:
            raise MethodError("--method-param iterations must be 1 or more (0: as trained)")
        if self.options["ensemble"]:
            raise MethodError("dan+usrnet: --method-param ensemble averages the kernels of an "
                              "estimator of the LR image alone (kenet+usrnet); DAN's estimator "
                              "also reads the SR image of each alternation: leave it out")
        self.loops = self.options["iterations"] or int(model_meta(network).get("loops") or 4)
        from visionfw.methods.kernel import temper
        from visionfw.recipes.dan import delta_kernel

        self.start = delta_kernel(int(network.outputs[0].shape[-1]))[0]
        estimate = InferenceFunction(lambda lr, sr: network([lr, sr], training=False),
                                     name="the kernel estimator")

        def run(lr, bicubic, labels):
            kernel, trail = self.start, []
            for _ in range(self.loops):
                sr = self.restore(lr, labels or {}, kernel)
                trail.append({"image": sr, "kernel": kernel}
                             | ({} if trail else {"note": " (delta kernel)"}))
                kernel = np.asarray(estimate(lr[None], sr[None].astype(np.float32)))[0]
            # the loop runs as trained; only the last kernel, the one the result is made with,
            # is tempered
            return {"kernel": temper(kernel, self.options["temperature"]).astype(np.float32),
                    "trail": trail}

        return run

    def wants_iterations(self):
        return False                        # its steps are the alternations

    def default_training(self, size):
        """``train.py dan-usrnet``'s blurs (USRNet's: Gaussian and motion kernels) at
        ``size``: the distribution its estimator learnt, whose mean is the baseline."""
        return f"randomblur(size={int(size)},padding=circular)+direct"

    def protocol(self):
        out = super().protocol()
        out.update(iterations=self.loops, start="the centred delta kernel")
        return out
