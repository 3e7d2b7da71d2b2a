"""Non-blind SR: a kernel-conditioned network fed the true kernel (and noise level, scale) of
the degradation that made each LR image -- the upper bound of a blind method."""
import numpy as np

from visionfw.conditioning import BATCH_KEYS, roles_of
from visionfw.methods.base import Method, MethodError, model_meta, register_method

FED = ("kernel", "kernel_code", "noise_sigma", "scale")


@register_method("nonblind", aliases=("true-kernel",))
class NonBlindMethod(Method):
    """A network (role ``model``) whose inputs are the LR image and any of the kernel (or its
    code, with the PCA the network carries in ``meta['pca']``), the noise level (0-255 scale)
    and the scale, fed the true values. RGB networks only.

    Tiles each get the same kernel; the self-ensemble turns and flips the kernel with the
    image (about its centre), so each orientation is fed the blur that made it.
    """

    labels = ("kernel",)

    def check(self):
        from visionfw.inference import Predictor

        model = self.networks["model"]
        meta = model_meta(model)
        self.roles = roles_of(model)
        if meta.get("output", "image") != "image":
            raise MethodError(f"model {model.name!r} does not predict an image; test.py "
                              "nonblind scores SR networks")
        if self.roles[0] != "image" or any(r not in FED for r in self.roles[1:]):
            raise MethodError(f"model {model.name!r} takes {', '.join(self.roles)}; nonblind "
                              f"feeds an image first, then any of {', '.join(FED)}")
        if meta.get("color", "rgb") != "rgb":
            raise MethodError(f"model {model.name!r} is a {meta['color']} model; nonblind runs "
                              "RGB networks")
        self.labels = ("kernel",) if {"kernel", "kernel_code"} & set(self.roles) else ()
        self.kernel_shape = None
        if "kernel" in self.roles:
            shape = tuple(model.inputs[self.roles.index("kernel")].shape[1:])
            self.kernel_shape = shape if None not in shape else None
        self.pca = None
        if "kernel_code" in self.roles:
            from visionfw.kernel_codes import pca_of

            self.pca = pca_of(meta)
            self.kernel_shape = (self.pca.kernel_size,) * 2
            self.noise = bool(meta.get("noise"))
        # whether a noise level given to it (labels['noise_sigma']) reaches the network
        self.feeds_noise = "noise_sigma" in self.roles or (self.pca is not None and self.noise)
        self.predict = Predictor(model)

    def fixed_scale(self, role):
        return "scale" not in roles_of(self.networks[role])

    def _fit_kernel(self, kernel):
        """The kernel at the size the network takes: centred, zero-padded or an error."""
        if self.kernel_shape is None or kernel.shape == self.kernel_shape:
            return kernel
        h, w = kernel.shape
        H, W = self.kernel_shape
        if h > H or w > W:
            raise MethodError(f"the degradation's {w}x{h} kernel is larger than the {W}x{H} "
                              f"kernel model {self.networks['model'].name!r} takes")
        out = np.zeros((H, W), np.float32)
        top, left = H // 2 - h // 2, W // 2 - w // 2
        out[top:top + h, left:left + w] = kernel
        return out

    def _code(self, kernel, noise_sigma):
        from visionfw.kernel_codes import encode

        sigma = np.float32([noise_sigma or 0.0]) if self.noise else None
        return encode(self.pca, np.asarray(kernel, np.float32)[None], sigma)[0]

    def __call__(self, lr, bicubic, labels):
        sr = self.run_with(self.predict, lr, labels)
        return {"sr": (sr, sr)}

    def run_with(self, predict, lr, labels):
        """``predict`` (the network, or a network of the same inputs) on ``lr`` fed the
        labels by role, with the method's tiling and self-ensemble; the SR array."""
        from visionfw.inference import run_tiled, self_ensemble

        values = {}
        for role in self.roles[1:]:
            key = BATCH_KEYS.get(role, "kernel")
            if role == "scale":
                values[role] = np.float32(self.scale)
            elif key in labels:
                values[role] = np.asarray(labels[key], np.float32)
            elif role == "noise_sigma":
                values[role] = np.float32(0.0)
            else:
                raise MethodError(f"model {self.networks['model'].name!r} needs the true "
                                  f"{role.replace('_', ' ')}, which this degradation does not "
                                  "record (give --degradation with a blur)")

        if "kernel_code" in values:
            values["kernel"] = values.pop("kernel_code")

        def net(img, kernel=None):
            args = []
            for role in self.roles[1:]:
                if role == "kernel":
                    v = self._fit_kernel(kernel)
                elif role == "kernel_code":
                    v = self._code(self._fit_kernel(kernel), labels.get("noise_sigma", 0.0))
                else:
                    v = values[role]
                args.append(v)
            if self.tile:
                return run_tiled(lambda piece: predict(piece, *args), img, self.scale,
                                 self.tile, self.tile_overlap)
            return predict(img, *args)

        kernel = values.get("kernel")
        if self.ensemble:
            return self_ensemble(net, lr) if kernel is None else self_ensemble(net, lr, kernel)
        return net(lr, kernel)
