"""USRNet trained end to end (Zhang, Van Gool, Timofte, CVPR 2020): HR patches degraded by the
model the data step assumes -- circular blur with a kernel drawn per image, upper-left
decimation, white noise -- with the kernel, scale and noise level fed to the network as
labels; L1 loss on HR. Scales are mixed across batches with ``--scales``."""
from visionfw.recipes.base import register_recipe
from visionfw.recipes.sr import SRRecipe
from visionfw.train import TrainError

USRNET_TRAINING = "randomblur(size=25,padding=circular)+direct+noise(0~25,clip=false)"


def check_usrnet_degradation(spec, patch_size=None):
    """USRNet's data step solves for circular blur and upper-left decimation exactly; a run
    that degrades otherwise trains it against another model. One line on what differs."""
    from visionfw.degradation import parse_degradation

    deg = parse_degradation(spec)
    blur = deg.blur_op
    size = getattr(blur, "args", {}).get("size")
    if patch_size and size and int(size) > int(patch_size):
        raise TrainError(f"recipe usrnet: --patch-size {patch_size} is smaller than the "
                         f"{size}x{size} kernels of {spec!r}; the data step needs the kernel "
                         "to fit inside the patch")
    down = [op for op in deg.ops if op.stage == "down"]
    wrong = []
    if blur is None:
        wrong.append("no blur op (the kernel is an input)")
    elif blur.args.get("padding") != "circular":
        wrong.append(f"{blur.op_name} pads with {blur.args.get('padding')}, not circular")
    if not down or down[0].op_name != "direct" or down[0].args.get("offset", 0) != 0:
        wrong.append("down-sampling is not direct(offset=0)")
    if wrong:
        raise TrainError(f"recipe usrnet: --degradation {spec!r}: {'; '.join(wrong)}; USRNet's "
                         f"data step assumes circular blur then upper-left decimation, e.g. "
                         f"{USRNET_TRAINING!r}")


@register_recipe("usrnet")
class USRNetRecipe(SRRecipe):
    """USRNet's training: the ``sr`` recipe's L1 step with the kernel, scale and noise level of
    each batch fed by role, on a degradation the data step models exactly (checked)."""

    @classmethod
    def default_degradation(cls, scale):
        return USRNET_TRAINING

    def build(self):
        check_usrnet_degradation(self.config.degradation, self.config.patch_size)
        super().build()
