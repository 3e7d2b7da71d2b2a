"""USRNet at test time: the network fed the kernel (the true one, or an estimator's), the
scale and the noise level, beside the same unrolled data steps with the prior left out -- what
the learned prior adds over the closed-form solutions alone."""
import numpy as np

from visionfw.conditioning import spec_dict
from visionfw.methods.base import MethodError, register_method
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


@register_method("usrnet")
class USRNetMethod(NonBlindMethod):
    """USRNet (role ``model``) fed the true kernel, scale and noise level of each LR image,
    with a second row from the data steps alone (the prior replaced by the identity, the
    same alphas).

    The kernel comes from :meth:`kernel_for`: the degradation's true kernel, or with the
    optional role ``estimator`` (a kernel estimator: ``meta['output']`` ``'kernel'`` or
    ``'kernel_code'``) the kernel it estimates from the LR image -- the hook blind pipelines
    (a kernel estimator + USRNet) plug into.
    """

    optional_roles = ("estimator",)

    def check(self):
        estimator = self.networks.pop("estimator", None)
        super().check()
        if "kernel" not in self.roles:
            raise MethodError(f"model {self.networks['model'].name!r} takes no kernel; "
                              "test.py usrnet runs kernel-conditioned unfolding networks")
        self.estimator = None
        if estimator is not None:
            from visionfw.methods.kernel import KernelEstimatorMethod

            self.estimator = KernelEstimatorMethod({"model": estimator}, scale=self.scale)
            self.networks["estimator"] = estimator
            self.labels = ()                               # blind: no true kernel needed
        self.data_steps = None
        if "prior" in spec_dict(self.networks["model"]):
            from visionfw.inference import Predictor

            self.data_steps = Predictor(without_prior(self.networks["model"]))

    def fixed_scale(self, role):
        return False

    def kernel_for(self, lr, labels):
        """The kernel USRNet is given: the estimator's, else the true one."""
        if self.estimator is not None:
            return np.asarray(self.estimator(lr, None, labels)["kernel"], np.float32)
        if "kernel" not in labels:
            raise MethodError("usrnet needs the true kernel of each image (or --weights "
                              "estimator=FILE, a kernel estimator)")
        return np.asarray(labels["kernel"], np.float32)

    def __call__(self, lr, bicubic, labels):
        labels = dict(labels, kernel=self.kernel_for(lr, labels))
        kh, kw = labels["kernel"].shape
        h, w = lr.shape[0] * self.scale, lr.shape[1] * self.scale
        if self.tile:
            h = w = min(self.tile * self.scale, h, w)
        if kh > h or kw > w:
            raise MethodError(f"the {kw}x{kh} kernel is larger than the {w}x{h} SR image"
                              + (" tile" if self.tile else "") + "; the data step needs a "
                              "kernel no larger than the image")
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

