"""Validation during training: PSNR/SSIM of the model and of bicubic on held-out images.

The protocol is ``test.py``'s (:func:`visionfw.evaluate.evaluate`), so the numbers in
``val.csv`` are the numbers ``test.py`` prints for the same weights: the HR image is cropped
to a multiple of the scale, the LR image is made by the run's degradation protocol with the
image's name as its seed (for ``bicubic``: MATLAB's ``imresize``, kept in float), bicubic is
``imresize`` of that LR, and both are scored by :func:`visionfw.metrics.evaluate_pair` (Y,
``scale`` pixels of border cropped). LR images and bicubic scores are computed once.
"""
import numpy as np


def make_lr(hr, scale, degradation="bicubic", seed=0, name="image"):
    """``(hr_cropped, lr)``: the ground truth cropped as the protocol wants and its float LR."""
    from visionfw.degradation import get_protocol, hr_multiple

    multiple = hr_multiple(degradation, scale)
    h, w = hr.shape[:2]
    hr = hr[: h - h % multiple, : w - w % multiple]
    _, deg = get_protocol(degradation, scale, seed=seed)[0]
    lr = np.asarray(deg(hr.astype(np.float32) / 255.0, scale, seed=str(name)), np.float32)
    return hr, lr


class ValidationSet:
    """Held-out images with their LR inputs and bicubic scores, computed once.

    Args:
        images: ``[(name, uint8 HxWx3), ...]``.
        scale: the SR factor.
        degradation: the run's degradation (protocol name or spec).
        seed: the protocol seed (the run's seed).
    """

    def __init__(self, images, scale, degradation="bicubic", seed=0):
        from visionfw.metrics import evaluate_pair
        from visionfw.resize import imresize

        self.scale = int(scale)
        self.items = []
        for name, image in images:
            hr, lr = make_lr(image, scale, degradation, seed, name)
            bicubic = np.clip(np.asarray(imresize(lr, scale=float(scale)), np.float32), 0, 1)
            p, s = evaluate_pair(bicubic, hr, scale)
            self.items.append({"name": name, "hr": hr, "lr": lr, "bicubic_psnr": p,
                               "bicubic_ssim": s})
        self.bicubic_psnr = float(np.mean([i["bicubic_psnr"] for i in self.items]))
        self.bicubic_ssim = float(np.mean([i["bicubic_ssim"] for i in self.items]))

    def __len__(self):
        return len(self.items)

    def evaluate(self, predict):
        """Scores of ``predict`` (float32 NHWC [0, 1] -> same) on every image.

        Returns ``{"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "images": [...]}``.
        """
        from visionfw.metrics import evaluate_pair

        rows = []
        for item in self.items:
            sr = np.asarray(predict(item["lr"][None]))[0]
            p, s = evaluate_pair(np.clip(sr, 0.0, 1.0), item["hr"], self.scale)
            rows.append({"name": item["name"], "psnr": p, "ssim": s,
                         "bicubic_psnr": item["bicubic_psnr"],
                         "bicubic_ssim": item["bicubic_ssim"]})
        return {"psnr": float(np.mean([r["psnr"] for r in rows])),
                "ssim": float(np.mean([r["ssim"] for r in rows])),
                "bicubic_psnr": self.bicubic_psnr, "bicubic_ssim": self.bicubic_ssim,
                "images": rows}
