"""Validation during training: PSNR/SSIM of the model and of bicubic on held-out images.

The images, LR inputs and scores are ``test.py``'s own (:mod:`visionfw.evaluate`), so the
numbers in ``val.csv`` are the numbers ``test.py`` prints for the same weights: folders are
read as :class:`~visionfw.evaluate.Dataset` objects (a grayscale file, Set14's ``bridge``, is
known to be one), the HR image is cropped to a multiple of the scale, the LR image is made by
the run's degradation protocol (its first variant) with the image's name as its seed
(:func:`~visionfw.evaluate.make_lr`; for ``bicubic``: MATLAB's ``imresize``, kept in float),
bicubic is :func:`~visionfw.evaluate.upscale_bicubic` of that LR, and both are scored by
:func:`~visionfw.evaluate.score_image` (Y, ``scale`` pixels of border cropped, a grayscale
ground truth on its gray values). LR images and bicubic scores are computed once.
"""
import numpy as np

PREVIEWS = 3            # validation images drawn in TensorBoard at each validation


def validation_images(folders):
    """The validation images of image folders as test.py reads them: one
    :class:`~visionfw.evaluate.Dataset` per folder (for :class:`ValidationSet`)."""
    from visionfw.data import DataError
    from visionfw.evaluate import Dataset, EvaluationError

    try:
        return [Dataset.from_folder(folder) for folder in folders]
    except EvaluationError as exc:
        raise DataError(str(exc)) from None


def batch_labels(labels, scale):
    """The labels a training batch carries for one image: float32 arrays, ``noise_sigma`` 0
    without a noise op, and the scale."""
    out = {k: np.asarray(v, np.float32) for k, v in labels.items()}
    out.setdefault("noise_sigma", np.float32(0.0))
    out["scale"] = np.float32(scale)
    return out


def _items(images):
    """``(name, load)`` pairs, ``load() -> (uint8 HxWx3, is_gray)``, of what ValidationSet
    is given: :class:`~visionfw.evaluate.Dataset` objects, or ``(name, array)`` colour images."""
    from visionfw.evaluate import Dataset

    if isinstance(images, Dataset):
        images = [images]
    images = list(images)
    if images and all(isinstance(d, Dataset) for d in images):
        return [item for d in images for item in d.items]
    return Dataset.from_arrays("validation", images).items


class ValidationSet:
    """Held-out images with their LR inputs and bicubic scores, computed once.

    Args:
        images: :class:`~visionfw.evaluate.Dataset` objects (:func:`validation_images` of
            folders: a grayscale file is scored as test.py scores it), or ``[(name, uint8
            HxWx3), ...]`` colour images.
        scale: the SR factor.
        degradation: the run's degradation (protocol name or spec).
        seed: the protocol seed (the run's ``--val-seed``, the same whatever its ``--seed``).
    """

    @property
    def preview(self):
        """The first of ``previews`` (``None`` before a validation)."""
        return self.previews[0] if self.previews else None

    def __init__(self, images, scale, degradation="bicubic", seed=0):
        from visionfw.data import DataError
        from visionfw.data.images import warn
        from visionfw.degradation import get_protocol, hr_multiple
        from visionfw.evaluate import (TooSmall, check_scorable, crop_to_multiple, make_lr,
                                       score_image, upscale_bicubic)
        from visionfw.imageio import ImageError

        self.scale = int(scale)
        self.previews = []
        multiple = hr_multiple(degradation, scale)
        _, deg = get_protocol(degradation, scale, seed=seed)[0]
        items = _items(images)
        self.items = []
        unreadable = 0
        for name, load in items:
            try:
                image, is_gray = load()
                check_scorable(image.shape, scale)            # before any work on it
                hr = crop_to_multiple(image, multiple)
                check_scorable(hr.shape, scale)               # cropped to the protocol
            except ImageError as exc:
                warn(f"skipping {exc}")
                unreadable += 1
                continue
            except TooSmall as exc:
                warn(f"validation image {name}: {exc}; left out")
                continue
            lr, labels = make_lr(hr, deg, scale, str(name))
            bicubic = upscale_bicubic(lr, scale)
            p, s = score_image(bicubic, hr, scale, is_gray)
            self.items.append({"name": name, "hr": hr, "is_gray": is_gray, "lr": lr,
                               "labels": batch_labels(labels, scale), "bicubic": bicubic,
                               "bicubic_psnr": p, "bicubic_ssim": s})
        if items and unreadable == len(items):
            raise DataError("no readable validation image")
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
            from visionfw.evaluate import score_image

            item["cropped"][crop] = score_image(_crop(item["bicubic"], crop),
                                                _crop(item["hr"], crop), self.scale,
                                                item["is_gray"])
        return item["cropped"][crop]

    def evaluate(self, predict, crop=0, with_hr=False):
        """Scores of ``predict`` on every image. ``predict`` takes a dict of batches of one
        (``lr`` float32 NHWC in [0, 1], and the labels) and returns the SR batch, or
        ``(sr, {name: per-image values})`` when the recipe measures more than the image (IKC's
        code error); those are averaged beside PSNR and SSIM.

        Returns ``{"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "images": [...]}`` and
        any extra measure by its name. An extra of more than one value per image (the
        estimated kernel, ``(1, k, k)``) is not averaged: it is kept, with the first image's
        LR, SR and HR, in ``self.preview`` for the run's pictures (the first
        ``PREVIEWS`` images in ``self.previews``).

        ``with_hr``: the inputs also hold ``hr``, the ground truth as float32 NHWC in [0, 1],
        for a recipe whose measure needs it (ReDegNet's synthesis of the validation pair).

        ``crop``: the output of a model that shrinks (SRCNN's valid convolutions) is smaller
        than HR by this many pixels; HR and bicubic are cropped to it as test.py crops them.
        A one-channel SR is a Y-only model's Y and is scored on Y, as test.py scores it (and
        against a grayscale image through its colour image with bicubic's chroma).
        """
        from visionfw.evaluate import score_image

        rows = []
        self.previews = []
        for item in self.items:
            inputs = {"lr": item["lr"][None]}
            if with_hr:
                inputs["hr"] = item["hr"][None].astype(np.float32) / 255.0
            inputs.update({k: np.asarray(v)[None] for k, v in item["labels"].items()})
            out = predict(inputs)
            sr, extra = out if isinstance(out, tuple) else (out, {})
            raw = np.asarray(sr, np.float32)[0]
            sr = np.clip(raw, 0.0, 1.0)
            # a Y-only output against a gray image: its colour image (made before the clip,
            # as test.py's is)
            colour = (_crop(_as_picture(raw, item["bicubic"], crop), crop)
                      if item["is_gray"] and sr.shape[-1] == 1 else None)
            p, s = score_image(sr, _crop(item["hr"], crop), self.scale, item["is_gray"],
                               colour=colour)
            bp, bs = self._bicubic_scores(item, crop)
            row = {"name": item["name"], "psnr": p, "ssim": s,
                   "bicubic_psnr": bp, "bicubic_ssim": bs}
            # per-image numbers are averaged; arrays (an estimated kernel) are pictures
            pictures = {k: np.asarray(v)[0] for k, v in extra.items() if np.ndim(v) > 1}
            row.update({k: float(np.asarray(v).reshape(-1)[0]) for k, v in extra.items()
                        if k not in pictures})
            rows.append(row)
            if len(self.previews) < PREVIEWS:    # the first images, for TensorBoard
                self.previews.append({"name": item["name"], "lr": item["lr"],
                                      "sr": _as_picture(sr, item["bicubic"], crop),
                                      "hr": item["hr"], "psnr": p,
                                      "bicubic_psnr": bp, "pictures": pictures,
                                      "true_kernel": item["labels"].get("kernel")})
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
