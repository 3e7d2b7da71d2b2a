"""USRNet trained end to end (Zhang, Van Gool, Timofte, CVPR 2020): HR patches degraded by the
model the data step assumes -- circular blur with a kernel drawn per image, upper-left
decimation, white noise -- with the kernel, scale and noise level fed to the network as
labels; L1 loss on HR. Scales are mixed across batches with ``--scales``."""
import tensorflow as tf

from visionfw.conditioning import feed
from visionfw.recipes.base import Hyperparameter, register_recipe
from visionfw.recipes.sr import SRRecipe, pixel_loss
from visionfw.train import TrainError

USRNET_TRAINING = "randomblur(size=25,padding=circular)+direct+noise(0~25,clip=false,zero=0.125)"


def check_usrnet_degradation(spec, patch_size=None, model_dict=None):
    """USRNet's data step solves for circular blur and upper-left decimation exactly; a run
    that degrades otherwise trains it against another model. The rule is the network's own
    declaration (:mod:`visionfw.methods.accepts`), the one test.py checks; one line on what
    differs."""
    from visionfw.degradation import parse_degradation
    from visionfw.methods.accepts import USRNET_ACCEPTS, Accepts, accepts_of

    deg = parse_degradation(spec)
    blur = deg.blur_op
    size = getattr(blur, "args", {}).get("size")
    if patch_size and size and int(size) > int(patch_size):
        raise TrainError(f"recipe usrnet: --patch-size {patch_size} is smaller than the "
                         f"{size}x{size} kernels of {spec!r}; the data step needs the kernel "
                         "to fit inside the patch")
    accepts = accepts_of(model_dict) if model_dict is not None else \
        Accepts.from_meta(USRNET_ACCEPTS)
    wrong = accepts.problems(deg)
    if wrong:
        raise TrainError(f"recipe usrnet: --degradation {spec!r}: cannot train on "
                         f"{'; '.join(wrong)} ({accepts.why}); e.g. {USRNET_TRAINING!r}")


@register_recipe("usrnet")
class USRNetRecipe(SRRecipe):
    """USRNet's training: the ``sr`` recipe's L1 step with the kernel, scale and noise level of
    each batch fed by role, on a degradation the data step models exactly (checked).

    ``every_iteration`` > 0 adds the pixel loss of every earlier iteration's estimate (their
    mean, times that weight) to the last one's. Trained on the last output alone, a small
    prior learns to pass a hidden state between iterations instead of an image, which loses
    detail where the data steps alone already recover most of the image (mild blurs at x2);
    supervising every estimate keeps each one an image."""

    params = (
        Hyperparameter("every_iteration", float, 0.0, "weight of the mean pixel loss of the "
                       "estimates before the last (0: the last output only, as USRNet trains)"),
    )

    @classmethod
    def default_degradation(cls, scale):
        return USRNET_TRAINING

    def build(self):
        check_usrnet_degradation(self.config.degradation, self.config.patch_size,
                                 self.model_dict)
        # the factors it learns, which test.py and sr then hold it to
        scales = sorted({int(s) for s in (self.config.scales or [self.config.scale])})
        meta = dict(self.model_dict.get("meta") or {}, trained_scales=scales)
        self.model_dict = dict(self.model_dict, meta=meta)
        if self.options["every_iteration"] < 0:
            raise TrainError(f"recipe usrnet: every_iteration="
                             f"{self.options['every_iteration']} must be >= 0")
        self.estimates = None
        super().build()

    def make_model(self, trace=None):
        """The network; with ``every_iteration`` also a view of it (the same layers) whose
        outputs are the estimates after each prior step, the last being the network's own."""
        import keras

        from visionfw.graph.builder import Trace

        if not self.options["every_iteration"]:
            return super().make_model(trace)
        trace = trace if trace is not None else Trace()
        model = super().make_model(trace)
        outs = [b.outputs[0] for b in trace.steps if b.step.family == "prior"]
        if len(outs) < 2:
            raise TrainError(f"recipe usrnet: every_iteration needs a network of at least two "
                             f"iterations with 'prior' links; {model.name} has {len(outs)}")
        self.estimates = keras.Model(model.inputs, outs, name=f"{model.name}_estimates")
        return model

    def train_step(self, batch, opt):
        if self.estimates is None:
            return super().train_step(batch, opt)
        hr = self.view.target(batch["hr"])
        fed = self._fed(batch, tf.shape(batch["hr"])[1:3])
        weight = self.options["every_iteration"]
        net = self.estimates

        def loss():
            outs = [tf.cast(x, tf.float32) for x in net(feed(self.networks["model"], fed,
                                                             self.roles), training=True)]
            last = pixel_loss(self.config.loss, outs[-1], hr)
            earlier = tf.add_n([pixel_loss(self.config.loss, x, hr) for x in outs[:-1]])
            return last + weight * earlier / (len(outs) - 1), last

        total, last = opt.minimize("model", loss)
        return {"loss": total, "last_loss": last}
