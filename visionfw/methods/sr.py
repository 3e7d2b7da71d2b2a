"""The plain SR method: one network from the LR image to SR, in the colour space it declares."""
from visionfw.conditioning import is_conditioned, roles_of
from visionfw.methods.base import Method, MethodError, model_meta, register_method


@register_method("sr")
class SRMethod(Method):
    """One image-to-image network (role ``model``).

    What the network's ``meta`` declares is honoured:

    - ``color``: ``'rgb'``; ``'y'`` (Y of BT.601 YCbCr in, Y out; Cb and Cr up-sampled
      bicubically); ``'ycbcr_full'`` (3-channel full-range JPEG YCbCr in and out, converted
      back to RGB before scoring).
    - ``input: 'upsampled'``: the network takes the bicubic image instead of the LR.
    - ``shrink``: the output is that many pixels smaller than its (up-sampled) input; it
      covers the centre, ``shrink // 2`` pixels in from the top and left. Only that region is
      scored (:meth:`crop`), and the saved colour image is the bicubic one with the output
      pasted over its centre.
    """

    def check(self):
        from visionfw.inference import Predictor

        model = self.networks["model"]
        meta = model_meta(model)
        if meta.get("output", "image") != "image":
            what = str(meta["output"]).replace("_", " ")
            raise MethodError(f"model {model.name!r} predicts a {what}, not an image; score it "
                              "in kernel space with test.py kernel-estimator")
        if is_conditioned(model) or len(model.inputs) != 1:
            raise MethodError(f"model {model.name!r} takes {', '.join(roles_of(model))}; "
                              "test.py nonblind feeds it the true kernel")
        color = meta.get("color", "rgb" if model.inputs[0].shape[-1] == 3 else "y")
        if color not in ("rgb", "y", "ycbcr_full"):
            raise MethodError(f"model {model.name!r} declares color {color!r}; test.py knows "
                              "'rgb', 'y' and 'ycbcr_full'")
        self.color = color
        self.upsampled = meta.get("input") == "upsampled"
        self.shrink = int(meta.get("shrink", 0))
        if self.tile and self.shrink:
            raise MethodError(f"model {model.name!r} returns a smaller image than it takes "
                              f"(shrink {self.shrink}); --tile cannot assemble its output")
        self.predict = Predictor(model)

    def _net(self, x):
        from visionfw.inference import run_tiled, self_ensemble

        fn = self.predict
        if self.tile:
            factor = 1 if self.upsampled else self.scale

            def fn(img, base=self.predict):  # noqa: E306
                return run_tiled(base, img, factor, self.tile, self.tile_overlap)
        return self_ensemble(fn, x) if self.ensemble else fn(x)

    def _paste(self, sr, bicubic):
        if not self.shrink:
            return sr
        out = bicubic.copy()
        self.crop(out)[...] = sr
        return out

    def __call__(self, lr, bicubic, labels=None):
        from visionfw.color import (rgb_to_ycbcr, rgb_to_ycbcr_full, ycbcr_full_to_rgb,
                                    ycbcr_to_rgb)

        x = bicubic if self.upsampled else lr
        if self.color == "rgb":
            sr = self._net(x)
            return {"sr": (sr, self._paste(sr, bicubic))}
        if self.color == "ycbcr_full":
            sr = ycbcr_full_to_rgb(self._net(rgb_to_ycbcr_full(x)))
            return {"sr": (sr, self._paste(sr, bicubic))}
        y = self._net(rgb_to_ycbcr(x)[..., :1])
        ycc = rgb_to_ycbcr(bicubic)
        self.crop(ycc)[..., :1] = y
        return {"sr": (y, ycbcr_to_rgb(ycc))}
