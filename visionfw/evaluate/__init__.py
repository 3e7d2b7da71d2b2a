"""Evaluation as the papers do it: LR made from the ground truth, a method run, PSNR/SSIM by
:mod:`visionfw.metrics`, bicubic beside it, one report per dataset and degradation.

The pieces: :mod:`.datasets` (ground truth and given LR images), the methods that are run
(:mod:`visionfw.methods`: the plain SR network, a kernel-conditioned one fed the true kernel, a
kernel estimator), :mod:`.report` (tables and JSON) and :mod:`.pictures`.

The report is a dict that :func:`write_report` stores as JSON::

    {"protocol": {...},
     "results": [{"dataset", "variant", "degradation", "model", "scale", "psnr", "ssim",
                  "bicubic_psnr", "bicubic_ssim", "seconds", "method_seconds",
                  "images": [{"name", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim",
                              "method_seconds"}]}]}

``seconds`` is the wall time of a dataset and variant; ``method_seconds`` the part spent in the
method's call (its networks and the glue between them), so that the rest -- reading, LR
synthesis, bicubic, scoring, pictures -- is ``seconds - method_seconds``.

A kernel method's results hold ``kernel_psnr`` (dB) instead of the image scores.
"""
import time

import numpy as np

from visionfw.color import rgb_to_ycbcr_full, ycbcr_full_to_rgb  # noqa: F401
from visionfw.evaluate.datasets import (Dataset, EvaluationError, crop_to_multiple,  # noqa: F401
                                        given_lr, resolve_dataset)
from visionfw.evaluate.pictures import comparison_grid, save_outputs  # noqa: F401
from visionfw.evaluate.report import format_report, write_report  # noqa: F401
from visionfw.errors import VisionfwError


def method_for(model, scale=None, tile=None, tile_overlap=16, self_ensemble=False):
    """The method that runs a single network: ``nonblind`` when it takes a kernel, noise level
    or scale beside the image, else ``sr``."""
    from visionfw.conditioning import is_conditioned

    name = "nonblind" if is_conditioned(model) else "sr"
    return make_method(name, {"model": model}, scale, tile, tile_overlap, self_ensemble)


def make_method(name, networks, scale=None, tile=None, tile_overlap=16, self_ensemble=False,
                **options):
    """Method ``name`` on ``networks`` (``{role: model}``); errors become EvaluationError."""
    from visionfw.methods.base import get_method

    try:
        return get_method(name)(networks, scale=scale, tile=tile, tile_overlap=tile_overlap,
                                self_ensemble=self_ensemble, **options)
    except VisionfwError as exc:
        raise EvaluationError(str(exc)) from None


def evaluate(model, datasets, scale=None, degradation="bicubic", seed=0, channel="y",
             tile=None, tile_overlap=16, self_ensemble=False, save_dir=None, grid=False,
             lr_dir=None, model_name=None, log=None, save_steps=None, variants=None):
    """Evaluate ``model`` on ``datasets`` and return the report dict (see the module docstring).

    Args:
        model: a ``keras.Model`` (run by :func:`method_for`) or a method of
            :mod:`visionfw.methods` (its tiling and self-ensemble options are its own).
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
        save_steps: for a method that returns every step (IKC), write each step's SR image and
            a picture of each step's kernel against the true one there.
        variants: glob patterns; only the protocol's variants that match one are run (e.g.
            ``['*noise0.00']`` of ``usrnet12``).
    """
    from visionfw.degradation import get_protocol, hr_multiple
    from visionfw.metrics import PROTOCOL, protocol_description
    from visionfw.methods.base import Method

    if isinstance(model, Method):
        method = model
        name = model_name or method.name
    else:
        method = method_for(model, scale, tile, tile_overlap, self_ensemble)
        name = model_name or model.name
    scale = method.scale
    if lr_dir is not None:
        if method.labels:
            raise EvaluationError(f"method {method.name} needs the true {method.labels[0]} of "
                                  "each LR image; LR images given with --lr-dir carry none")
        variants = [("given", None)]
        multiple = scale
    else:
        patterns, variants = variants, get_protocol(degradation, scale, seed=seed)
        if patterns:
            import fnmatch

            chosen = [v for v in variants if any(fnmatch.fnmatch(str(v[0]), p)
                                                 for p in patterns)]
            if not chosen:
                raise EvaluationError(f"--variant {' '.join(patterns)}: no variant of "
                                      f"{degradation} matches; it has "
                                      f"{', '.join(str(v[0]) for v in variants)}")
            variants = chosen
        multiple = hr_multiple(degradation, scale)
        for _, deg in variants:       # refused before any image runs, as training refuses it
            try:
                method.check_degradation(deg)
            except VisionfwError as exc:
                raise EvaluationError(f"--degradation {degradation}: {exc}") from None
    protocol = dict(PROTOCOL)
    protocol.update({"description": protocol_description(channel, scale), "channel": channel,
                     "degradation": "given LR images" if lr_dir else degradation, "seed": seed,
                     "self_ensemble": bool(method.ensemble), "tile": method.tile,
                     "tile_overlap": method.tile_overlap if method.tile else None})
    if lr_dir:
        protocol["lr"] = "given LR images (--lr-dir), read as they are"
    elif degradation != "bicubic":
        protocol["lr"] = (f"LR made by the degradation '{degradation}' of the HR cropped to a "
                          "multiple of the scale")
    protocol.update(method.protocol())
    if method.shrink:
        margin = method.shrink // 2
        protocol["model_margin"] = margin
        protocol["description"] += (f"; the model's output covers the centre only, so model and "
                                    f"bicubic are scored {margin} px further in")
    if method.kind == "kernel":
        protocol["description"] = ("kernel PSNR (dB, peak 1) of the estimated kernel against "
                                   "the true one, aligned on their centres; sigma: of the "
                                   "isotropic Gaussian nearest to each (least squares)")
    results = []
    report = {"protocol": protocol, "results": results}
    try:
        _run(method, datasets, variants, name, results, lr_dir, multiple, scale, channel,
             save_dir, grid, log, save_steps)
    except BaseException as exc:
        # what is finished is kept: the caller can still print and write it
        exc.partial_report = report
        raise
    return report


class Progress:
    """The count and the time left of a test run, prefixed to its per-image lines:
    ``[12/1200, 3m05s left]`` (the time left from the mean time of the images done)."""

    def __init__(self, total, log=None, clock=time.perf_counter):
        self.total, self.done, self._log, self.clock = int(total), 0, log, clock
        self.start = clock()

    def next(self):
        """An image starts; the one before it is done."""
        self.done += 1

    def prefix(self):
        finished = self.done - 1
        if finished < 1:
            return f"[{self.done}/{self.total}]"
        left = (self.clock() - self.start) / finished * (self.total - finished)
        return f"[{self.done}/{self.total}, {format_duration(left)} left]"

    def log(self, line):
        self._log(f"{self.prefix()} {line}")


def format_duration(seconds):
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _run(method, datasets, variants, name, results, lr_dir, multiple, scale, channel,
         save_dir, grid, log, save_steps):
    """Every dataset and variant, appending one result each to ``results`` as it finishes."""
    from visionfw.imageio import ImageError

    unreadable = {}                 # (dataset, image) -> reason: read once, named per variant
    progress = Progress(sum(len(d.items) for d in datasets) * len(variants), log)
    log = progress.log if log else None
    for dataset in datasets:
        for variant, deg in variants:
            start = time.perf_counter()
            rows, skipped = [], []
            for image_name, load in dataset.items:
                progress.next()
                key = (dataset.name, image_name)
                reason = unreadable.get(key)
                if reason is None:
                    try:
                        rows.append(_one_image(method, dataset, image_name, load, deg, variant,
                                               variants, lr_dir, multiple, scale, channel,
                                               save_dir, grid, log, save_steps))
                    except ImageError as exc:
                        reason = unreadable[key] = exc.reason
                    except TooSmall as exc:
                        reason = str(exc)
                if reason is not None:
                    skipped.append({"name": image_name, "reason": reason})
                    if log:
                        log(f"{dataset.name} [{_lr_label(variant)}] {image_name}: skipped "
                            f"({reason})")
            result = {"dataset": dataset.name, "variant": variant,
                      "degradation": "given LR images" if deg is None else str(deg),
                      "model": name, "scale": scale}
            keys = (("kernel_psnr", "sigma", "true_sigma") if method.kind == "kernel"
                    else ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"))
            result.update({k: _mean(rows, k) for k in keys})
            result["n_images"], result["n_skipped"] = len(rows), len(skipped)
            if skipped:
                result["skipped"] = skipped
            if rows and "steps" in rows[0]:
                result["steps"] = _step_means(rows)
                result["oracle_psnr"] = _mean(rows, "oracle_psnr")
                result["oracle_ssim"] = _mean(rows, "oracle_ssim")
            if rows and "also" in rows[0]:
                result["also"] = {label: {k: float(np.mean([r["also"][label][k] for r in rows]))
                                          for k in ("psnr", "ssim")}
                                  for label in rows[0]["also"]}
            if method.kind != "kernel" and rows and "kernel_psnr" in rows[0]:
                result["kernel_psnr"] = _mean(rows, "kernel_psnr")
            if rows and "true_shape" in rows[0]:
                from visionfw.degradation import orientation_summary

                result["orientation"] = orientation_summary(
                    [(r["shape"], r["true_shape"]) for r in rows])
            if rows and "true_kernel_psnr" in rows[0]:
                result["true_kernel_psnr"] = _mean(rows, "true_kernel_psnr")
                result["true_kernel_ssim"] = _mean(rows, "true_kernel_ssim")
            result.update({"seconds": round(time.perf_counter() - start, 3),
                           "method_seconds": round(sum(r["method_seconds"] for r in rows), 3),
                           "images": rows})
            results.append(result)


def _shapes(estimate, true):
    """The second-moment ellipses of an estimated and a true kernel, for the report
    (``[sigma_major, sigma_minor, theta in degrees]`` each; :func:`kernel_shape`)."""
    from visionfw.degradation import kernel_shape

    return {"shape": [round(v, 4) for v in kernel_shape(estimate)],
            "true_shape": [round(v, 4) for v in kernel_shape(true)]}


def make_lr(hr, deg, scale, name):
    """The LR image the protocol makes of one ground truth, and the degradation's labels.

    Args:
        hr: the ground truth, ``uint8 (H, W, 3)``, already cropped to the protocol's multiple
            (:func:`crop_to_multiple` with :func:`visionfw.degradation.hr_multiple`).
        deg: the degradation of a protocol variant (:func:`visionfw.degradation.get_protocol`).
        scale: the SR factor.
        name: the image's name, the seed of any random part of the degradation.

    Returns:
        ``(lr, labels)``: float32 ``(h, w, 3)`` on [0, 1] (not rounded to 8 bits) and
        ``{label: array}`` (the kernel, the noise level, ...).
    """
    # one float copy of the ground truth, freed as soon as the LR exists
    lr, labels = deg.degrade(np.multiply(hr, 1 / 255.0, dtype=np.float32), scale, seed=name)
    return np.asarray(lr, np.float32), {k: np.asarray(v) for k, v in labels.items()}


def upscale_bicubic(lr, scale):
    """The bicubic baseline of an LR image: MATLAB ``imresize``, clipped to [0, 1]."""
    from visionfw.resize import imresize

    bic = np.array(imresize(lr, scale), np.float32)
    np.clip(bic, 0, 1, out=bic)
    return bic


def score_image(sr, hr, scale, is_gray=False, channel="y", colour=None):
    """PSNR and SSIM of one output against its ground truth, by :mod:`visionfw.metrics`.

    A grayscale ground truth (Set14 ``bridge``) is scored on its gray values. A Y-only output
    (one channel) against it is scored through ``colour``, the colour image made of that Y
    and bicubic's chroma, reduced to gray; a colour output by the mean of its channels.

    Args:
        sr: the output scored, float on [0, 1]: ``(H, W, 3)``, or ``(H, W, 1)`` for Y.
        hr: the ground truth, ``uint8 (H, W, 3)`` (a grayscale one with equal channels).
        scale: the SR factor (the border cropped).
        is_gray: whether the ground truth's file is grayscale (``read_image(...,
            return_gray=True)``, a :class:`Dataset` item's ``load()``).
        channel: ``'y'``, ``'y-float'`` or ``'rgb'`` (:func:`visionfw.metrics.evaluate_pair`).
        colour: for a Y-only ``sr``: the colour image it makes with bicubic's chroma.
    """
    from visionfw.metrics import evaluate_pair

    if is_gray and np.ndim(sr) == 3 and np.shape(sr)[-1] == 1:
        if colour is None:
            raise EvaluationError("a Y-only output against a grayscale ground truth is scored "
                                  "through its colour image; pass colour")
        sr = colour
    return evaluate_pair(sr, hr, scale, hr_is_gray=is_gray, channel=channel)


def _one_image(method, dataset, image_name, load, deg, variant, variants, lr_dir, multiple,
               scale, channel, save_dir, grid, log, save_steps=None):
    """Make the LR of one image, run the method, score it; the report row."""
    hr, is_gray = load()
    if method.kind != "kernel":
        check_scorable(hr.shape, scale)            # named by the size of the file
    hr = crop_to_multiple(hr, multiple)
    if method.kind != "kernel":
        check_scorable(method.crop(hr).shape, scale)
    labels = {}
    if deg is None:
        lr = given_lr(lr_dir, image_name, hr.shape, scale)
    else:
        lr, labels = make_lr(hr, deg, scale, image_name)
    if method.kind == "kernel":
        if "kernel" not in labels:
            raise EvaluationError(f"{dataset.name}/{image_name}: the degradation {deg} has no "
                                  "blur kernel to score an estimate against")
        from visionfw.degradation import kernel_psnr

        from visionfw.degradation import fit_isotropic_sigma

        began = time.perf_counter()
        estimate = method(lr, None, labels)["kernel"]
        spent = time.perf_counter() - began
        kp = kernel_psnr(estimate, labels["kernel"])
        fits = {"sigma": fit_isotropic_sigma(estimate),
                "true_sigma": fit_isotropic_sigma(labels["kernel"]),
                **_shapes(estimate, labels["kernel"])}
        if save_dir is not None:
            from visionfw.evaluate.pictures import save_kernels

            save_kernels(save_dir, dataset.name, variant if len(variants) > 1 else None,
                         image_name, estimate, labels["kernel"])
        if log:
            log(f"{dataset.name} [{_lr_label(variant)}] {image_name}: kernel PSNR {kp:.2f} dB")
        return {"name": image_name, "kernel_psnr": kp, **fits,
                "method_seconds": round(spent, 4)}
    bic = upscale_bicubic(lr, scale)
    if bic.shape[:2] != hr.shape[:2]:
        raise EvaluationError(f"{dataset.name}/{image_name}: LR of {lr.shape[1]}x{lr.shape[0]} "
                              f"does not up-scale to the ground truth's {hr.shape[1]}x"
                              f"{hr.shape[0]}")
    began = time.perf_counter()
    out = method(lr, bic, labels)
    spent = time.perf_counter() - began
    scored, sr_rgb = out["sr"]
    if not scored.flags.writeable:
        scored = np.array(scored)
    np.clip(scored, 0, 1, out=scored)  # as im2uint8 does; untrained nets overshoot
    hr_in, bic_in = method.crop(hr), method.crop(bic)
    if scored.shape[:2] != hr_in.shape[:2]:
        raise EvaluationError(f"{dataset.name}/{image_name}: model output {scored.shape} does "
                              f"not match ground truth {hr_in.shape}")
    p, s = score_image(scored, hr_in, scale, is_gray, channel, colour=method.crop(sr_rgb))
    bp, bs = score_image(bic_in, hr_in, scale, is_gray, channel)
    if save_dir is not None:
        save_outputs(save_dir, dataset.name, variant if len(variants) > 1 else None,
                     image_name, lr, bic, sr_rgb, hr, scale, grid, scores=(p, bp))
    if log:
        log(f"{dataset.name} [{_lr_label(variant)}] {image_name}: {p:.2f} dB "
            f"(bicubic up-scaling {bp:.2f} dB)")
    row = {"name": image_name, "psnr": p, "ssim": s, "bicubic_psnr": bp, "bicubic_ssim": bs,
           "method_seconds": round(spent, 4)}

    def score(image):
        return score_image(np.clip(image, 0, 1), hr_in, scale, is_gray, channel)

    if "steps" in out:
        from visionfw.degradation import kernel_psnr

        row["steps"] = []
        for step in out["steps"]:
            sp, ss = score(step["image"])
            entry = {"label": step["label"], "psnr": sp, "ssim": ss}
            if "code_error" in step:
                entry["code_error"] = step["code_error"]
            if "note" in step:                      # said beside the label in the table
                entry["note"] = step["note"]
            if "kernel" in step and "kernel" in labels:
                entry["kernel_psnr"] = float(kernel_psnr(step["kernel"], labels["kernel"]))
            row["steps"].append(entry)
        if save_steps is not None:
            from visionfw.evaluate.pictures import save_steps as write_steps

            write_steps(save_steps, dataset.name, variant if len(variants) > 1 else None,
                        image_name, out["steps"], labels.get("kernel"))
        best = int(np.argmax([e["psnr"] for e in row["steps"]]))
        row.update(oracle_step=best, oracle_psnr=row["steps"][best]["psnr"],
                   oracle_ssim=row["steps"][best]["ssim"])
    if "kernel" in out and "steps" not in out and "kernel" in labels:
        # a pipeline that estimates one kernel (an estimator + USRNet): the estimate's score
        from visionfw.degradation import kernel_psnr

        row["kernel_psnr"] = float(kernel_psnr(out["kernel"], labels["kernel"]))
        row.update(_shapes(out["kernel"], labels["kernel"]))
    if "kernel" in out and "steps" not in out and save_steps is not None:
        from visionfw.evaluate.pictures import save_steps as write_steps

        write_steps(save_steps, dataset.name, variant if len(variants) > 1 else None,
                    image_name, [{"image": sr_rgb, "kernel": out["kernel"]}],
                    labels.get("kernel"))
    if "upper" in out:
        row["true_kernel_psnr"], row["true_kernel_ssim"] = score(out["upper"][0])
    if "also" in out:            # rows the method computes beside its result (ablations)
        row["also"] = {}
        for label, (other, _) in out["also"].items():
            op, os_ = score(other)
            row["also"][label] = {"psnr": op, "ssim": os_}
    return row


def _lr_label(variant):
    """How a progress line names the LR a variant makes (``bicubic`` alone reads like the
    bicubic score beside it)."""
    return {"bicubic": "LR: bicubic down-scaling", "given": "LR: given"}.get(
        str(variant), f"LR: {variant}")


def _step_means(rows):
    """Per-step means over the images of a result (methods that return every step)."""
    labels = [e["label"] for e in rows[0]["steps"]]
    means = []
    for i, label in enumerate(labels):
        entries = [r["steps"][i] for r in rows]
        means.append({"label": label, **{k: float(np.mean([e[k] for e in entries]))
                                         for k in entries[0] if k not in ("label", "note")}})
        if "note" in entries[0]:
            means[-1]["note"] = entries[0]["note"]
    return means


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows])) if rows else None


class TooSmall(EvaluationError):
    """An image too small to be scored by the protocol (it is skipped and named)."""


def check_scorable(hr_shape, scale):
    """Raise :class:`TooSmall` unless SSIM's window fits inside the border-cropped image."""
    import math

    from visionfw.metrics import SSIM_WINDOW

    border = int(math.ceil(scale))
    side = min(hr_shape[:2]) - 2 * border
    if side < SSIM_WINDOW:
        need = SSIM_WINDOW + 2 * border
        raise TooSmall(f"{hr_shape[1]}x{hr_shape[0]} is too small to score at x{scale}: SSIM "
                       f"needs at least {need}x{need} px")
