"""SFTMD trained non-blind: the true kernel of each LR patch, as its PCA code, conditions the
network; L1 loss on HR (Gu et al., CVPR 2019, the first stage of IKC)."""
import tensorflow as tf

from visionfw.conditioning import feed, roles_of
from visionfw.kernel_codes import encode, pca_from, with_pca
from visionfw.params import Hyperparameter
from visionfw.recipes.base import register_recipe
from visionfw.recipes.sr import SRRecipe, pixel_loss
from visionfw.train import TrainError


def ikc_degradation(scale):
    """IKC's training blurs: isotropic 21x21 Gaussians, sigma uniform in [0.2, 2.0] at x2,
    [0.2, 3.0] at x3 and [0.2, 4.0] at x4 (and above), then MATLAB bicubic."""
    top = {1: 2.0, 2: 2.0, 3: 3.0}.get(int(scale), 4.0)
    return f"gaussian(sigma=0.2~{top:g},size=21)+bicubic"


@register_recipe("sftmd")
class SFTMDRecipe(SRRecipe):
    """A code-conditioned SR network (inputs: the LR image and a kernel code) trained with the
    true code of the kernel that blurred each patch.

    The PCA is recorded in the network's ``meta['pca']`` and saved with its weights, so
    ``test.py`` (and IKC's Predictor and Corrector, trained on the same codes) use the same one.
    With the network's ``noise`` option the code has the noise level appended (IKC's
    ``10 * sigma / 255``).
    """

    params = (Hyperparameter("pca", str, "", "PCA file (.npy, .mat, .h5) of the kernel codes; "
                             "default: IKC's recipe fitted here (30000 isotropic 21x21 "
                             "Gaussians, sigma 0.2-4, seed 0), applied without the mean"),)
    needs = ("kernel",)

    @classmethod
    def default_degradation(cls, scale):
        return ikc_degradation(scale)

    def build(self):
        from visionfw.graph.builder import attach_spec, build

        meta = self.model_dict.get("meta") or {}
        roles = roles_of(self.model_dict)
        if "kernel_code" not in roles:
            raise TrainError(f"recipe sftmd trains code-conditioned networks; "
                             f"{self.model_dict.get('name')} takes {', '.join(roles)}")
        code_len = int(meta.get("code_len") or 10)
        self.pca = pca_from(self.options["pca"], code_len)
        self.noise = bool(meta.get("noise"))
        self.model_dict = with_pca(self.model_dict, self.pca)
        model = build(self.model_dict)
        attach_spec(model, self.model_dict, self.model_name, self.hparams)
        self.networks = {"model": model}
        self.optimizers = {"model": self.adam()}
        self.roles = roles

    def inputs(self, batch):
        code = encode(self.pca, batch["kernel"], batch["noise_sigma"] if self.noise else None)
        return feed(self.networks["model"], {**batch, "kernel_code": code}, self.roles)

    def train_step(self, batch, opt):
        net = self.networks["model"]

        def loss():
            sr = tf.cast(net(self.inputs(batch), training=True), tf.float32)
            return pixel_loss(self.config.loss, sr, batch["hr"])

        return {"loss": opt.minimize("model", loss)}

    def predict(self, inputs):
        return tf.cast(self.networks["model"](self.inputs(inputs), training=False), tf.float32)
