"""Validation during training: PSNR/SSIM of the model and of bicubic on held-out images.

The protocol is ``test.py``'s (:func:`visionfw.evaluate.evaluate`), so the numbers in
``val.csv`` are the numbers ``test.py`` prints for the same weights: the HR image is cropped
to a multiple of the scale, the LR image is made by the run's degradation protocol with the
image's name as its seed (for ``bicubic``: MATLAB's ``imresize``, kept in float), bicubic is
``imresize`` of that LR, and both are scored by :func:`visionfw.metrics.evaluate_pair` (Y,
``scale`` pixels of border cropped). LR images and bicubic scores are computed once.
"""
import numpy as np


def make_lr(hr, scale, degradation="bicubic", seed=0, name="image", with_labels=False):
    """``(hr_cropped, lr)``: the ground truth cropped as the protocol wants and its float LR;
    with ``with_labels``, ``(hr_cropped, lr, labels)`` with the degradation's labels (the
    kernel, the noise level on the 0-255 scale, ...)."""
    from visionfw.degradation import get_protocol, hr_multiple

    multiple = hr_multiple(degradation, scale)
    h, w = hr.shape[:2]
    hr = hr[: h - h % multiple, : w - w % multiple]
    _, deg = get_protocol(degradation, scale, seed=seed)[0]
    lr, labels = deg.degrade(hr.astype(np.float32) / 255.0, scale, seed=str(name))
    lr = np.asarray(lr, np.float32)
    if not with_labels:
        return hr, lr
    return hr, lr, batch_labels(labels, scale)


def batch_labels(labels, scale):
    """The labels a training batch carries for one image: float32 arrays, ``noise_sigma`` 0
    without a noise op, and the scale."""
    out = {k: np.asarray(v, np.float32) for k, v in labels.items()}
    out.setdefault("noise_sigma", np.float32(0.0))
    out["scale"] = np.float32(scale)
    return out


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

        from visionfw.data.images import warn
        from visionfw.evaluate import TooSmall, check_scorable

        self.scale = int(scale)
        self.items = []
        for name, image in images:
            try:
                check_scorable(image.shape, scale)            # before any work on it
                hr, lr, labels = make_lr(image, scale, degradation, seed, name,
                                         with_labels=True)
                check_scorable(hr.shape, scale)               # cropped to the protocol
            except TooSmall as exc:
                warn(f"validation image {name}: {exc}; left out")
                continue
            bicubic = np.clip(np.asarray(imresize(lr, scale=float(scale)), np.float32), 0, 1)
            p, s = evaluate_pair(bicubic, hr, scale)
            self.items.append({"name": name, "hr": hr, "lr": lr, "labels": labels,
                               "bicubic": bicubic, "bicubic_psnr": p, "bicubic_ssim": s})
        self.bicubic_psnr = (float(np.mean([i["bicubic_psnr"] for i in self.items]))
                             if self.items else None)
        self.bicubic_ssim = (float(np.mean([i["bicubic_ssim"] for i in self.items]))
                             if self.items else None)

    def __len__(self):
        return len(self.items)

    def _bicubic_scores(self, item, crop):
        """Bicubic's PSNR and SSIM on the part of the image a shrinking model covers."""
        if not crop:
            return item["bicubic_psnr"], item["bicubic_ssim"]
        if crop not in item.setdefault("cropped", {}):
            from visionfw.metrics import evaluate_pair

            item["cropped"][crop] = evaluate_pair(_crop(item["bicubic"], crop),
                                                  _crop(item["hr"], crop), self.scale)
        return item["cropped"][crop]

    def evaluate(self, predict, crop=0):
        """Scores of ``predict`` on every image. ``predict`` takes a dict of batches of one
        (``lr`` float32 NHWC in [0, 1], and the labels) and returns the SR batch, or
        ``(sr, {name: per-image values})`` when the recipe measures more than the image (IKC's
        code error); those are averaged beside PSNR and SSIM.

        Returns ``{"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "images": [...]}`` and
        any extra measure by its name. An extra of more than one value per image (the
        estimated kernel, ``(1, k, k)``) is not averaged: it is kept, with the first image's
        LR, SR and HR, in ``self.preview`` for the run's pictures.

        ``crop``: the output of a model that shrinks (SRCNN's valid convolutions) is smaller
        than HR by this many pixels; HR and bicubic are cropped to it as test.py crops them.
        A one-channel SR is a Y-only model's Y and is scored on Y, as test.py scores it.
        """
        from visionfw.metrics import evaluate_pair

        rows = []
        self.preview = None
        for item in self.items:
            inputs = {"lr": item["lr"][None]}
            inputs.update({k: np.asarray(v)[None] for k, v in item["labels"].items()})
            out = predict(inputs)
            sr, extra = out if isinstance(out, tuple) else (out, {})
            sr = np.clip(np.asarray(sr)[0], 0.0, 1.0)
            p, s = evaluate_pair(sr, _crop(item["hr"], crop), self.scale)
            bp, bs = self._bicubic_scores(item, crop)
            row = {"name": item["name"], "psnr": p, "ssim": s,
                   "bicubic_psnr": bp, "bicubic_ssim": bs}
            # per-image numbers are averaged; arrays (an estimated kernel) are pictures
            pictures = {k: np.asarray(v)[0] for k, v in extra.items() if np.ndim(v) > 1}
            row.update({k: float(np.asarray(v).reshape(-1)[0]) for k, v in extra.items()
                        if k not in pictures})
            rows.append(row)
            if self.preview is None:         # the first image, for TensorBoard's pictures
                self.preview = {"name": item["name"], "lr": item["lr"],
                                "sr": _as_picture(sr, item["bicubic"], crop),
                                "hr": item["hr"], "psnr": p,
                                "bicubic_psnr": bp, "pictures": pictures,
                                "true_kernel": item["labels"].get("kernel")}
        scores = {"psnr": float(np.mean([r["psnr"] for r in rows])),
                  "ssim": float(np.mean([r["ssim"] for r in rows])),
                  "bicubic_psnr": float(np.mean([r["bicubic_psnr"] for r in rows])),
                  "bicubic_ssim": float(np.mean([r["bicubic_ssim"] for r in rows])),
                  "images": rows}
        # the bicubic scores of the region scored last (all of the image unless it shrinks)
        self.bicubic_psnr, self.bicubic_ssim = scores["bicubic_psnr"], scores["bicubic_ssim"]
        for key in sorted(rows[0].keys() - {"name", "psnr", "ssim", "bicubic_psnr",
                                            "bicubic_ssim"}):
            scores[key] = float(np.mean([r[key] for r in rows]))
        return scores


def _crop(img, crop):
    """``img`` without the ``crop // 2`` first and ``crop - crop // 2`` last rows and columns."""
    if not crop:
        return img
    top = crop // 2
    return img[top:img.shape[0] - (crop - top), top:img.shape[1] - (crop - top)]


def _as_picture(sr, bicubic, crop):
    """The SR of a validation image as a full RGB picture: a Y-only output merged with
    bicubic's chroma, a shrunk output pasted into bicubic (as test.py's saved images)."""
    from visionfw.color import rgb_to_ycbcr, ycbcr_to_rgb

    full = bicubic.copy()
    if sr.ndim == 3 and sr.shape[-1] == 1:
        ycc = rgb_to_ycbcr(bicubic)
        _crop(ycc, crop)[..., :1] = sr
        return ycbcr_to_rgb(ycc)
    _crop(full, crop)[...] = sr
    return full
