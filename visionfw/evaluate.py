"""Evaluation as the papers do it: LR made from the ground truth, the model run, PSNR/SSIM by
:mod:`visionfw.metrics`, bicubic beside the model, one report per dataset and degradation.

The report is a dict that :func:`write_report` stores as JSON::

    {"protocol": {...},
     "results": [{"dataset", "variant", "degradation", "model", "scale", "psnr", "ssim",
                  "bicubic_psnr", "bicubic_ssim", "seconds",
                  "images": [{"name", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim"}]}]}
"""
import json
import os
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

from visionfw.errors import VisionfwError


class EvaluationError(VisionfwError, ValueError):
    """A dataset that is missing or empty, LR images that do not fit, a bad option."""


@dataclass
class Dataset:
    """A named list of ground-truth images, each loaded on demand.

    ``items`` holds ``(image_name, load)`` pairs; ``load()`` returns ``(uint8 (H, W, 3),
    is_gray)``.
    """

    name: str
    items: list = field(default_factory=list)
    folder: str = None

    @classmethod
    def from_folder(cls, folder, name=None):
        """Images directly in ``folder`` or in its ``HR/`` subfolder; named after ``folder``."""
        from visionfw.imageio import list_images, read_image

        folder = pathlib.Path(folder)
        if not folder.is_dir():
            raise EvaluationError(f"dataset folder {folder} does not exist")
        source = folder / "HR" if (folder / "HR").is_dir() else folder
        paths = list_images(source)
        if not paths:
            raise EvaluationError(f"dataset folder {source} holds no PNG, BMP, JPEG or TIFF "
                                  "images")
        items = [(pathlib.Path(p).stem,
                  (lambda p=p: read_image(p, return_gray=True))) for p in paths]
        return cls(name or folder.name, items, str(source))

    @classmethod
    def from_arrays(cls, name, pairs):
        """From in-memory ``(image_name, uint8 (H, W, 3))`` pairs (colour images)."""
        items = []
        for image_name, array in pairs:
            array = np.asarray(array)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
                raise EvaluationError(f"{name}/{image_name}: expected uint8 (H, W, 3), got "
                                      f"{array.dtype} {array.shape}")
            items.append((image_name, (lambda a=array: (a, False))))
        return cls(name, items)


def resolve_dataset(spec, data_root=None):
    """A folder path, or a dataset name (``Set5``) looked up under ``data_root``."""
    path = pathlib.Path(spec)
    if path.is_dir():
        return Dataset.from_folder(path)
    if data_root is not None:
        candidate = pathlib.Path(data_root) / spec
        if candidate.is_dir():
            return Dataset.from_folder(candidate)
        raise EvaluationError(f"dataset {spec!r}: no folder {spec} and no {candidate}")
    raise EvaluationError(f"dataset {spec!r}: no such folder (give a path, or a name with "
                          "--data-root)")


def _model_scale_and_color(model, scale):
    from visionfw.graph.builder import model_spec

    spec = model_spec(model) or {}
    meta = spec.get("dict", {}).get("meta", {})
    color = meta.get("color", "rgb" if model.inputs[0].shape[-1] == 3 else "y")
    model_scale = meta.get("scale")
    if scale is None:
        if model_scale is None:
            raise EvaluationError(f"model {model.name!r} does not state its scale; pass --scale")
        scale = int(model_scale)
    elif model_scale is not None and int(model_scale) != int(scale):
        raise EvaluationError(f"model {model.name!r} up-scales by {model_scale}, not {scale}; "
                              "rebuild it with the scale you test")
    return int(scale), color


def rgb_to_ycbcr_full(img, source_clip=False):
    """Float RGB on [0, 1] -> full-range (JPEG) YCbCr on [0, 1], the colour space of the
    Nhat-Thanh SRCNN/FSRCNN/ESPCN weights: Y = 0.299 R + 0.587 G + 0.114 B, Cb and Cr centred
    on 128/255.

    Args:
        img: float RGB ``(..., 3)``.
        source_clip: also do what those repositories' ``rgb2ycbcr`` does on the way -- clip Y to
            [16, 235] and Cb, Cr to [16, 240] (of 255) and truncate to integers. ``test.py``
            does not: the clip alone costs about 1 dB on Set5 even for a perfect network.
    """
    m = np.array([[0.299, 0.587, 0.114],
                  [-0.16874, -0.33126, 0.5],
                  [0.5, -0.41869, -0.08131]])
    out = img.astype(np.float64) * 255.0 @ m.T + np.array([0.0, 128.0, 128.0])
    if source_clip:
        out = np.floor(np.clip(out, [16.0, 16.0, 16.0], [235.0, 240.0, 240.0]))
    return (out / 255.0).astype(np.float32)


def ycbcr_full_to_rgb(img):
    """Inverse JPEG YCbCr (offset 128/255) -> RGB on [0, 1], clipped."""
    x = img.astype(np.float64) - np.array([0.0, 128.0, 128.0]) / 255.0
    m = np.array([[1.0, 0.0, 1.402],
                  [1.0, -0.34414, -0.71414],
                  [1.0, 1.772, 0.0]])
    return np.clip(x @ m.T, 0, 1).astype(np.float32)


class _Runner:
    """LR float RGB -> SR; Y models get Y and have Cb, Cr up-sampled bicubically.

    What the model's ``meta`` declares is honoured:

    - ``color``: ``'rgb'``; ``'y'`` (Y of BT.601 YCbCr in, Y out); ``'ycbcr_full'`` (3-channel
      full-range JPEG YCbCr in and out, see :func:`rgb_to_ycbcr_full`; converted back to RGB
      before scoring).
    - ``input: 'upsampled'``: the model takes the bicubic image instead of the LR.
    - ``shrink``: the model's output is that many pixels smaller than its (up-sampled) input;
      it covers the centre, ``shrink // 2`` pixels in from the top and left. Only that region
      is scored (:meth:`crop` cuts the ground truth and bicubic to it), and the saved colour
      image is the bicubic one with the model's output pasted over its centre.
    """

    def __init__(self, model, scale, color, tile=None, overlap=16, ensemble=False):
        from visionfw.graph.builder import model_spec
        from visionfw.inference import Predictor

        meta = (model_spec(model) or {}).get("dict", {}).get("meta", {})
        if meta.get("output", "image") != "image":
            what = str(meta["output"]).replace("_", " ")
            raise EvaluationError(f"model {model.name!r} predicts a {what}, not an "
                                  "image; test.py evaluates super-resolution models")
        if len(model.inputs) != 1:
            raise EvaluationError(f"model {model.name!r} takes {len(model.inputs)} inputs; "
                                  "test.py needs a model with one image input")
        if color not in ("rgb", "y", "ycbcr_full"):
            raise EvaluationError(f"model {model.name!r} declares color {color!r}; test.py "
                                  "knows 'rgb', 'y' and 'ycbcr_full'")
        self.upsampled = meta.get("input") == "upsampled"
        self.shrink = int(meta.get("shrink", 0))
        if tile and self.shrink:
            raise EvaluationError(f"model {model.name!r} returns a smaller image than it takes "
                                  f"(shrink {self.shrink}); --tile cannot assemble its output")
        self.predict = Predictor(model)
        self.scale, self.color = scale, color
        self.tile, self.overlap, self.ensemble = tile, overlap, ensemble

    def _net(self, x):
        from visionfw.inference import run_tiled, self_ensemble

        fn = self.predict
        if self.tile:
            factor = 1 if self.upsampled else self.scale

            def fn(img, base=self.predict):  # noqa: E306
                return run_tiled(base, img, factor, self.tile, self.overlap)
        return self_ensemble(fn, x) if self.ensemble else fn(x)

    def crop(self, img):
        """The part of an HR-sized image the model's output covers (all of it without shrink)."""
        if not self.shrink:
            return img
        top = self.shrink // 2
        bottom = self.shrink - top
        return img[top:img.shape[0] - bottom, top:img.shape[1] - bottom]

    def _paste(self, sr, bicubic):
        if not self.shrink:
            return sr
        out = bicubic.copy()
        self.crop(out)[...] = sr
        return out

    def __call__(self, lr, bicubic):
        """``(sr_for_metrics, sr_rgb)``: what is scored, and the colour image to save."""
        from visionfw.inference import rgb_to_ycbcr, ycbcr_to_rgb

        x = bicubic if self.upsampled else lr
        if self.color == "rgb":
            sr = self._net(x)
            return sr, self._paste(sr, bicubic)
        if self.color == "ycbcr_full":
            sr = ycbcr_full_to_rgb(self._net(rgb_to_ycbcr_full(x)))
            return sr, self._paste(sr, bicubic)
        y = self._net(rgb_to_ycbcr(x)[..., :1])
        ycc = rgb_to_ycbcr(bicubic)
        self.crop(ycc)[..., :1] = y
        return y, ycbcr_to_rgb(ycc)


def evaluate(model, datasets, scale=None, degradation="bicubic", seed=0, channel="y",
             tile=None, tile_overlap=16, self_ensemble=False, save_dir=None, grid=False,
             lr_dir=None, model_name=None, log=None):
    """Evaluate ``model`` on ``datasets`` and return the report dict (see the module docstring).

    Args:
        model: a single-input ``keras.Model`` (LR RGB, or Y when its dictionary says so).
        datasets: :class:`Dataset` objects.
        scale: the factor (default: the model's own).
        degradation: a protocol name (``bicubic``, ``gaussian8``, ...) or a degradation spec.
        seed: protocol seed; with the image name it fixes every random degradation.
        channel: ``'y'`` (the papers) or ``'rgb'``.
        tile, tile_overlap: run the model tile by tile (input pixels).
        self_ensemble: average over the 8 flips and turns.
        save_dir: write SR images (and with ``grid`` a comparison picture) there.
        lr_dir: take LR images from this folder (same names as the ground truth) instead of
            making them.
        model_name: the name in the report (default: the model's).
        log: a function that receives one line per image, for progress.
    """
    from visionfw.degradation import get_protocol, hr_multiple
    from visionfw.metrics import PROTOCOL, evaluate_pair, protocol_description
    from visionfw.resize import imresize

    scale, color = _model_scale_and_color(model, scale)
    if lr_dir is not None:
        variants = [("given", None)]
        multiple = scale
    else:
        variants = get_protocol(degradation, scale, seed=seed)
        multiple = hr_multiple(degradation, scale)
    runner = _Runner(model, scale, color, tile, tile_overlap, self_ensemble)
    name = model_name or model.name
    protocol = dict(PROTOCOL)
    protocol.update({"description": protocol_description(channel, scale), "channel": channel,
                     "degradation": "given LR images" if lr_dir else degradation, "seed": seed,
                     "self_ensemble": bool(self_ensemble), "tile": tile,
                     "tile_overlap": tile_overlap if tile else None, "model_color": color})
    if runner.shrink:
        margin = runner.shrink // 2
        protocol["model_margin"] = margin
        protocol["description"] += (f"; the model's output covers the centre only, so model and "
                                    f"bicubic are scored {margin} px further in")
    results = []
    for dataset in datasets:
        for variant, deg in variants:
            start = time.perf_counter()
            rows = []
            for image_name, load in dataset.items:
                hr, is_gray = load()
                hr = _crop(hr, multiple)
                if deg is None:
                    lr = _given_lr(lr_dir, image_name, hr.shape, scale)
                else:
                    # one float copy of the ground truth, freed as soon as the LR exists
                    lr = np.asarray(deg(np.multiply(hr, 1 / 255.0, dtype=np.float32), scale,
                                        seed=image_name), np.float32)
                bic = np.array(imresize(lr, scale), np.float32)
                np.clip(bic, 0, 1, out=bic)
                if bic.shape[:2] != hr.shape[:2]:
                    raise EvaluationError(f"{dataset.name}/{image_name}: LR of "
                                          f"{lr.shape[1]}x{lr.shape[0]} does not up-scale to the "
                                          f"ground truth's {hr.shape[1]}x{hr.shape[0]}")
                scored, sr_rgb = runner(lr, bic)
                if not scored.flags.writeable:
                    scored = np.array(scored)
                np.clip(scored, 0, 1, out=scored)  # as im2uint8 does; untrained nets overshoot
                hr_in, bic_in = runner.crop(hr), runner.crop(bic)
                if scored.shape[:2] != hr_in.shape[:2]:
                    raise EvaluationError(f"{dataset.name}/{image_name}: model output "
                                          f"{scored.shape} does not match ground truth "
                                          f"{hr_in.shape}")
                sr_for_metric = runner.crop(sr_rgb) if (is_gray and color == "y") else scored
                p, s = evaluate_pair(sr_for_metric, hr_in, scale, hr_is_gray=is_gray,
                                     channel=channel)
                bp, bs = evaluate_pair(bic_in, hr_in, scale, hr_is_gray=is_gray, channel=channel)
                rows.append({"name": image_name, "psnr": p, "ssim": s,
                             "bicubic_psnr": bp, "bicubic_ssim": bs})
                if save_dir is not None:
                    _save(save_dir, dataset.name, variant if len(variants) > 1 else None,
                          image_name, lr, bic, sr_rgb, hr, scale, grid)
                if log:
                    log(f"{dataset.name} {variant} {image_name}: {p:.2f} dB (bicubic {bp:.2f})")
            results.append({
                "dataset": dataset.name, "variant": variant,
                "degradation": "given LR images" if deg is None else str(deg),
                "model": name, "scale": scale,
                "psnr": _mean(rows, "psnr"), "ssim": _mean(rows, "ssim"),
                "bicubic_psnr": _mean(rows, "bicubic_psnr"),
                "bicubic_ssim": _mean(rows, "bicubic_ssim"),
                "seconds": round(time.perf_counter() - start, 3), "images": rows})
    return {"protocol": protocol, "results": results}


def _crop(img, multiple):
    h, w = img.shape[:2]
    return img[: h - h % multiple, : w - w % multiple]


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows]))


def _given_lr(lr_dir, image_name, hr_shape, scale):
    from visionfw.imageio import IMAGE_EXTENSIONS, read_image

    folder = pathlib.Path(lr_dir)
    if not folder.is_dir():
        raise EvaluationError(f"LR folder {folder} does not exist")
    stems = [image_name, f"{image_name}x{scale}", f"{image_name}_x{scale}", f"{image_name}_LR",
             f"{image_name}_lr"]
    for stem in stems:
        for ext in IMAGE_EXTENSIONS:
            for candidate in (folder / (stem + ext), folder / (stem + ext.upper())):
                if candidate.is_file():
                    lr = read_image(candidate).astype(np.float32) / 255.0
                    want = (hr_shape[0] // scale, hr_shape[1] // scale)
                    if lr.shape[:2] != want:
                        raise EvaluationError(f"{candidate}: LR is {lr.shape[1]}x{lr.shape[0]}, "
                                              f"expected {want[1]}x{want[0]} for x{scale}")
                    return lr
    raise EvaluationError(f"no LR image for {image_name} in {folder} (tried {', '.join(stems)} "
                          "with an image extension)")


# ---- saving images and comparison pictures ------------------------------------------------

def _save(save_dir, dataset, variant, image_name, lr, bic, sr, hr, scale, grid):
    from visionfw.imageio import write_image
    from visionfw.metrics import to_uint8

    folder = pathlib.Path(save_dir) / dataset
    if variant:
        folder = folder / variant
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / f"{image_name}.png", to_uint8(np.clip(sr, 0, 1)))
    if grid:
        picture = comparison_grid(to_uint8(lr), to_uint8(bic), to_uint8(np.clip(sr, 0, 1)), hr,
                                  scale)
        write_image(folder / f"{image_name}_grid.png", picture)


def comparison_grid(lr, bicubic, sr, hr, scale, gap=4):
    """LR (pixel-repeated), bicubic, SR and HR side by side, with a zoomed crop row beneath.

    The crop is the square of a third of the shorter side where the ground truth has the most
    detail; a red frame marks it on the HR panel.
    """
    h, w = hr.shape[:2]
    lr_big = np.repeat(np.repeat(lr, scale, 0), scale, 1)[:h, :w]
    panels = [lr_big, bicubic, sr, hr.copy()]
    c = max(8, min(h, w) // 3)
    y0, x0 = _busiest_square(hr, c)
    zoom = max(1, min(h, w) // c)
    crops = [np.repeat(np.repeat(p[y0:y0 + c, x0:x0 + c], zoom, 0), zoom, 1) for p in panels]
    _frame(panels[3], y0, x0, c)
    top = _row(panels, gap)
    bottom = _row(crops, gap)
    width = max(top.shape[1], bottom.shape[1])
    canvas = np.full((top.shape[0] + gap + bottom.shape[0], width, 3), 255, np.uint8)
    canvas[: top.shape[0], : top.shape[1]] = top
    canvas[top.shape[0] + gap:, : bottom.shape[1]] = bottom
    return canvas


def _row(images, gap):
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + gap * (len(images) - 1)
    row = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for img in images:
        row[: img.shape[0], x:x + img.shape[1]] = img
        x += img.shape[1] + gap
    return row


def _busiest_square(img, c):
    g = img.astype(np.float32).mean(axis=-1)
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    best, where = -1.0, (0, 0)
    step = max(1, c // 4)
    for y in range(0, max(1, energy.shape[0] - c + 1), step):
        for x in range(0, max(1, energy.shape[1] - c + 1), step):
            e = float(energy[y:y + c, x:x + c].sum())
            if e > best:
                best, where = e, (y, x)
    return where


def _frame(img, y0, x0, c, color=(255, 0, 0)):
    y1, x1 = min(y0 + c, img.shape[0]) - 1, min(x0 + c, img.shape[1]) - 1
    img[y0, x0:x1 + 1] = color
    img[y1, x0:x1 + 1] = color
    img[y0:y1 + 1, x0] = color
    img[y0:y1 + 1, x1] = color


# ---- reports ------------------------------------------------------------------------------

def format_report(report, per_image=False):
    """The report as text: the protocol, then one table per dataset and degradation."""
    protocol = report["protocol"]
    lines = [f"Protocol: {protocol['description']}",
             f"LR: {_describe_lr(protocol['degradation'])}"
             + (" | self-ensemble x8" if protocol.get("self_ensemble") else "")
             + (f" | tiles {protocol['tile']} (overlap {protocol['tile_overlap']})"
                if protocol.get("tile") else "")]
    groups = {}
    for r in report["results"]:
        groups.setdefault((r["dataset"], r["scale"]), []).append(r)
    for (dataset, scale), results in groups.items():
        several = len(results) > 1
        label = "kernel / degradation" if several else "image"
        head = f"{label:<24} {'PSNR':>7} {'SSIM':>7}   {'bicubic':>7} {'SSIM':>7}"
        lines += ["", f"{dataset} x{scale} — {results[0]['model']}", head, "-" * len(head)]
        for r in results:
            if per_image or not several:
                for img in (r["images"] if per_image else []):
                    name = img["name"] if not several else f"{r['variant']}/{img['name']}"
                    lines.append(_row_text(name, img))
            if several:
                lines.append(_row_text(r["variant"], r))
        if several:
            mean = {k: float(np.mean([r[k] for r in results]))
                    for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")}
            lines += ["-" * len(head), _row_text("mean", mean)]
        else:
            if per_image:
                lines.append("-" * len(head))
            lines.append(_row_text("mean", results[0]))
    return "\n".join(lines)


def _describe_lr(degradation):
    known = {"bicubic": "MATLAB-bicubic imresize of the ground truth (antialiased), kept in float",
             "gaussian8": "Gaussian8: 8 isotropic 21x21 Gaussian blurs, then MATLAB-bicubic "
                          "down-sampling, 8-bit",
             "aniso": "random anisotropic 21x21 Gaussian blur per image, then MATLAB-bicubic "
                      "down-sampling, 8-bit",
             "usrnet12": "USRNet's 12 kernels (circular blur) x noise 0/2.55/7.65, direct "
                         "s-fold down-sampling"}
    return known.get(degradation, degradation)


def _row_text(name, r):
    return (f"{name[:24]:<24} {r['psnr']:7.2f} {r['ssim']:7.4f}   "
            f"{r['bicubic_psnr']:7.2f} {r['bicubic_ssim']:7.4f}")


def write_report(report, path):
    """Write the report as JSON through a temporary file and a rename."""
    from visionfw.graph.schema import atomic_write_text

    atomic_write_text(os.fspath(path), json.dumps(report, indent=1) + "\n")
