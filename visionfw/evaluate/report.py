"""Evaluation reports: the text tables and the JSON file."""
import json
import os

import numpy as np


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
        scored = [r for r in results if r["images"]]
        if not scored:
            lines += ["", f"{dataset} x{scale} — {results[0]['model']}: no image could be "
                          "scored"]
        elif "kernel_psnr" in scored[0] and scored[0].get("psnr") is None:
            lines += _kernel_table(dataset, scale, scored, per_image)
        elif "steps" in scored[0]:
            lines += _steps_table(dataset, scale, scored)
        elif protocol.get("degradation") == "usrnet12":
            lines += _kernel_columns_table(dataset, scale, scored) + _orientation_lines(scored)
        else:
            lines += _image_table(dataset, scale, scored, per_image)
        lines += _time_line(results)
        lines += _skipped_lines(results)
    if report.get("incomplete"):
        lines += ["", f"incomplete: {report['incomplete']}"]
    return "\n".join(lines)


def _time_line(results):
    """Wall time of a dataset's results and the share spent in the method's calls (the rest is
    reading, LR synthesis, bicubic, scoring and pictures); nothing for an older report."""
    if not results or any("method_seconds" not in r for r in results):
        return []
    wall = sum(r["seconds"] for r in results)
    inside = sum(r["method_seconds"] for r in results)
    share = f" ({100 * inside / wall:.0f} %)" if wall > 0 else ""
    return [f"time: {wall:.1f} s, {inside:.1f} s of it in the method{share}"]


def _skipped_lines(results):
    """One line per image left out of a result, with why; the same image left out of every
    variant is named once."""
    several = len(results) > 1
    reasons = {}
    for r in results:
        for skip in r.get("skipped", []):
            reasons.setdefault((skip["name"], skip["reason"]), []).append(r["variant"])
    lines = []
    for (name, reason), variants in reasons.items():
        where = ("" if not several or len(variants) == len(results)
                 else f"{', '.join(str(v) for v in variants)}/")
        lines.append(f"skipped {where}{name}: {reason}")
    return lines


def _image_table(dataset, scale, results, per_image):
    """PSNR/SSIM beside bicubic's: one row per variant (or per image), then the mean."""
    several = len(results) > 1
    label = "kernel / degradation" if several else "image"
    head = f"{label:<24} {'PSNR':>7} {'SSIM':>7}   {'bicubic':>7} {'SSIM':>7}"
    lines = ["", f"{dataset} x{scale} — {results[0]['model']}", head, "-" * len(head)]
    for r in results:
        if per_image or not several:
            for img in (r["images"] if per_image else []):
                name = img["name"] if not several else f"{r['variant']}/{img['name']}"
                lines.append(_row_text(name, img))
        if several:
            lines.append(_row_text(r["variant"], r))
    if several:
        scored = [r for r in results if r.get("psnr") is not None]
        mean = {k: float(np.mean([r[k] for r in scored])) if scored else None
                for k in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")}
        lines += ["-" * len(head), _row_text("mean", mean)]
    else:
        if per_image:
            lines.append("-" * len(head))
        lines.append(_row_text("mean", results[0]))
    for label in results[0].get("also", {}):     # the method's other rows (data steps alone)
        values = [r["also"][label] for r in results if label in r.get("also", {})]
        lines.append(f"{label[:24]:<24} {np.mean([v['psnr'] for v in values]):7.2f} "
                     f"{np.mean([v['ssim'] for v in values]):7.4f}")
    kernel = [r["kernel_psnr"] for r in results if r.get("kernel_psnr") is not None]
    if kernel and results[0].get("psnr") is not None:     # a pipeline's estimated kernel
        lines.append(f"estimated kernel: mean kernel PSNR {np.mean(kernel):.2f} dB")
        lines += _orientation_lines(results)
    return lines


def _orientation_lines(results):
    """One line on the estimates' direction and elongation (:func:`orientation_summary`),
    over every image of ``results`` whose row has the kernels' shapes."""
    from visionfw.degradation import orientation_summary

    pairs = [(img["shape"], img["true_shape"]) for r in results for img in r.get("images", ())
             if "true_shape" in img]
    if not pairs:
        return []
    o = orientation_summary(pairs)
    if not o["n"]:
        return [f"direction: no true kernel is {o['min_ratio']}x longer than wide"]
    axes, diagonals = (("-" if v is None else f"{v:.1f}")
                       for v in (o["angle_error_axes"], o["angle_error_diagonals"]))
    return [f"direction, over the {o['n']} true kernels at least {o['min_ratio']}x longer than "
            f"wide: median angle error {o['angle_error']:.1f} deg (45 by chance; {axes} over "
            f"the {o['n_axes']} near the pixel axes, {diagonals} over the {o['n_diagonals']} "
            f"near the diagonals); elongation {o['true_ratio']:.2f} true, "
            f"{o['estimate_ratio']:.2f} estimated"]


def _steps_table(dataset, scale, results):
    """A loop's rows: bicubic, every step, the last step, the ground-truth oracle, the
    SR network fed the true kernel's code (an upper bound for IKC, whose SR network is trained
    on true codes; not for DAN, whose restorer only ever sees estimated ones) -- means over the
    images and degradations of the dataset."""
    def mean(key, source=results):
        values = [r[key] for r in source if key in r]
        return float(np.mean(values)) if values else float("nan")

    head = (f"{'row':<44} {'PSNR':>7} {'SSIM':>7} {'code MSE':>10} {'kernel PSNR':>11}")
    lines = ["", f"{dataset} x{scale} — {results[0]['model']} "
                 f"({len(results)} degradation{'s' if len(results) > 1 else ''}, every step)",
             head, "-" * len(head)]
    lines.append(f"{'bicubic':<44} {mean('bicubic_psnr'):7.2f} {mean('bicubic_ssim'):7.4f}")
    for i, step in enumerate(results[0]["steps"]):
        entries = [r["steps"][i] for r in results]
        label = step["label"] + entries[0].get("note", "")
        code, kp = mean("code_error", entries), mean("kernel_psnr", entries)
        lines.append(f"{label:<44} {mean('psnr', entries):7.2f} {mean('ssim', entries):7.4f} "
                     + (f"{code:10.2e}" if np.isfinite(code) else f"{'-':>10}") + " "
                     + (f"{kp:11.2f}" if np.isfinite(kp) else f"{'-':>11}"))
    lines.append(f"{'last step':<44} {mean('psnr'):7.2f} {mean('ssim'):7.4f}")
    lines.append(f"{'oracle: best step per image, by ground truth':<44} "
                 f"{mean('oracle_psnr'):7.2f} {mean('oracle_ssim'):7.4f}")
    if "true_kernel_psnr" in results[0]:
        label = "SR network fed the true kernel's code"
        lines.append(f"{label:<44} "
                     f"{mean('true_kernel_psnr'):7.2f} "
                     f"{mean('true_kernel_ssim'):7.4f}")
    return lines


def _kernel_columns_table(dataset, scale, results):
    """USRNet's Table 1 layout: one block per noise level, the kernels as columns, rows for
    bicubic, the method's other rows (the data steps alone) and the method; PSNR."""
    import re

    blocks = {}
    for r in results:
        m = re.fullmatch(r"(k\d+)_noise([\d.]+)", str(r["variant"]))
        kernel, noise = (m.group(1), m.group(2)) if m else (str(r["variant"]), "?")
        blocks.setdefault(noise, {})[kernel] = r
    lines = []
    for noise, by_kernel in blocks.items():
        kernels = list(by_kernel)
        head = f"{'PSNR (dB)':<22}" + "".join(f"{k:>7}" for k in kernels) + f"{'mean':>8}"
        lines += ["", f"{dataset} x{scale}, noise {noise} — {results[0]['model']}", head,
                  "-" * len(head)]
        first = next(iter(by_kernel.values()))
        rows = [("bicubic", lambda r: r.get("bicubic_psnr"))]
        rows += [(label, lambda r, label=label: r.get("also", {}).get(label, {}).get("psnr"))
                 for label in first.get("also", {})]
        rows += [(results[0]["model"], lambda r: r.get("psnr"))]
        for label, get in rows:
            values = [get(by_kernel[k]) for k in kernels]
            shown = [v for v in values if v is not None]
            cells = "".join(f"{v:7.2f}" if v is not None else f"{'-':>7}" for v in values)
            mean = f"{np.mean(shown):8.2f}" if shown else f"{'-':>8}"
            lines.append(f"{label[:22]:<22}{cells}{mean}")
    return lines


def _kernel_table(dataset, scale, results, per_image):
    """Rows of kernel PSNR and the fitted sigma of the estimate beside the true one."""
    head = f"{'kernel / image':<32} {'kernel PSNR':>11} {'sigma':>7} {'true':>7}"
    lines = ["", f"{dataset} x{scale} — {results[0]['model']} (kernel estimate)", head,
             "-" * len(head)]

    def row(name, r):
        return (f"{name[:32]:<32} {r['kernel_psnr']:11.2f} {r.get('sigma', float('nan')):7.2f} "
                f"{r.get('true_sigma', float('nan')):7.2f}")

    several = len(results) > 1
    for r in results:
        if per_image or not several:
            for img in r["images"]:
                lines.append(row(img["name"] if not several else f"{r['variant']}/{img['name']}",
                                 img))
        if several:
            lines.append(row(str(r["variant"]), r))
    mean = {k: float(np.mean([r[k] for r in results if k in r]))
            for k in ("kernel_psnr", "sigma", "true_sigma")}
    return lines + ["-" * len(head), row("mean", mean)] + _orientation_lines(results)


def _describe_lr(degradation):
    known = {"bicubic": "MATLAB-bicubic imresize of the ground truth (antialiased), kept in float",
             "gaussian8": "Gaussian8: 8 isotropic 21x21 Gaussian blurs, then MATLAB-bicubic "
                          "down-sampling, 8-bit",
             "aniso": "random anisotropic 21x21 Gaussian blur per image, then MATLAB-bicubic "
                      "down-sampling, 8-bit",
             "usrnet12": "USRNet's 12 kernels (Table 1): circular blur of the 8-bit image, "
                         "truncated to 8 bits, upper-left s-fold decimation, noise 0/2.55/7.65 "
                         "(0-255) unclipped; HR cropped to a multiple of lcm(s, 8)"}
    return known.get(degradation, degradation)


def _row_text(name, r):
    if r.get("psnr") is None:
        return f"{name[:24]:<24} no image could be scored"
    return (f"{name[:24]:<24} {r['psnr']:7.2f} {r['ssim']:7.4f}   "
            f"{r['bicubic_psnr']:7.2f} {r['bicubic_ssim']:7.4f}")


def write_report(report, path):
    """Write the report as JSON through a temporary file and a rename."""
    from visionfw.graph.schema import atomic_write_text

    atomic_write_text(os.fspath(path), json.dumps(report, indent=1) + "\n")
