"""Several test.py reports and train.py runs side by side (``python -m visionfw compare``).

Reports: one row per dataset, scale and degradation variant, one column per report (and per
extra row a report carries, such as USRNet's "data steps alone"), a bicubic column, and a
mean row per dataset over its variants. Runs: one row per run folder from its ``val.csv``:
steps, training time, the last and the best validation figures.
"""
import csv
import json
import math
import os

from visionfw.errors import VisionfwError


class CompareError(VisionfwError):
    """A report or run folder that cannot be read."""


def load_report(path):
    """A test.py JSON report, checked to have results."""
    try:
        with open(path) as f:
            report = json.load(f)
    except FileNotFoundError:
        raise CompareError(f"{path}: no such report") from None
    except (OSError, ValueError) as exc:
        raise CompareError(f"{path}: not a test.py JSON report ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise CompareError(f"{path}: not a test.py JSON report (no 'results' list)")
    return report


def load_run(folder):
    """``{"name", "rows"}`` of a train.py run folder (its ``val.csv``)."""
    path = os.path.join(folder, "val.csv")
    if not os.path.isfile(path):
        raise CompareError(f"{folder}: no val.csv (not a train.py run folder, or no "
                           "validation yet)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {"name": os.path.basename(os.path.normpath(folder)), "rows": rows}


def _metric_of(report, metric):
    if metric:
        return metric
    first = next((r for r in report["results"]), {})
    return "psnr" if "psnr" in first else "kernel_psnr"


def distinct_parts(names, sep="_"):
    """``names`` without the ``sep``-separated words they all begin and end with
    (``a_x2_Set5``, ``a_x4_Set5`` -> ``x2``, ``x4``), when what is left tells them apart."""
    words = [n.split(sep) for n in names]
    if len(names) < 2:
        return list(names)
    shortest = min(len(w) for w in words)
    head = 0
    while head < shortest - 1 and len({tuple(w[:head + 1]) for w in words}) == 1:
        head += 1
    tail = 0
    while (all(len(w) - tail - 1 > head for w in words)
           and len({tuple(w[len(w) - tail - 1:]) for w in words}) == 1):
        tail += 1
    short = [sep.join(w[head:len(w) - tail]) for w in words]
    return short if all(short) and len(set(short)) == len(short) else list(names)


def report_table(reports, metric=None):
    """``(header, rows)`` of reports side by side. ``reports``: ``[(label, report)]``."""
    columns, keys, values, bicubic = [], [], {}, {}
    for label, report in reports:
        m = _metric_of(report, metric)
        for result in report["results"]:
            key = (result.get("dataset"), result.get("scale"), result.get("variant"))
            if key not in keys:
                keys.append(key)
            col = f"{label}" if len(reports) > 1 else result.get("model", label)
            entries = [(col, result.get(m))]
            for name, extra in (result.get("also") or {}).items():
                entries.append((f"{col}: {name}", extra.get(m)))
            for name, value in entries:
                if name not in columns:
                    columns.append(name)
                values[(key, name)] = value
            if m == "psnr" and result.get("bicubic_psnr") is not None:
                bicubic.setdefault(key, result["bicubic_psnr"])
    show_bicubic = bool(bicubic)
    header = ["dataset", "scale", "variant"] + columns + (["bicubic"] if show_bicubic else [])
    rows = []
    datasets = []
    for key in keys:
        if (key[0], key[1]) not in datasets:
            datasets.append((key[0], key[1]))
    for dataset, scale in datasets:
        group = [k for k in keys if k[0] == dataset and k[1] == scale]
        for key in group:
            row = [dataset, scale, key[2]] + [values.get((key, c)) for c in columns]
            rows.append(row + ([bicubic.get(key)] if show_bicubic else []))
        if len(group) > 1:
            means = [_mean([values.get((k, c)) for k in group]) for c in columns]
            extra = [_mean([bicubic.get(k) for k in group])] if show_bicubic else []
            rows.append([dataset, scale, "mean"] + means + extra)
    return header, rows


def run_table(runs):
    """``(header, rows)`` of run folders: steps, training time, last and best validation."""
    extra = []
    for run in runs:
        for name in (run["rows"][0].keys() if run["rows"] else ()):
            if name not in ("step", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "gain",
                            "loss", "lr", "seconds") and name not in extra:
                extra.append(name)
    header = ["run", "steps", "hours", "last psnr", "best psnr", "bicubic", "last loss"]
    header += [f"last {name}" for name in extra]
    rows = []
    for run in runs:
        r = run["rows"]
        if not r:
            rows.append([run["name"]] + [None] * (len(header) - 1))
            continue
        last = r[-1]
        psnrs = [_float(x.get("psnr")) for x in r]
        rows.append([run["name"], int(last["step"]), _float(last.get("seconds")) / 3600.0,
                     _float(last.get("psnr")), max(p for p in psnrs if p is not None),
                     _float(last.get("bicubic_psnr")), _float(last.get("loss"))]
                    + [_float(last.get(name)) for name in extra])
    return header, rows


def format_table(header, rows, markdown=False):
    """Aligned text (or a Markdown table) with numbers to 2 decimals (4 significant digits for
    small ones such as a loss)."""
    cells = [[_cell(v) for v in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < 1 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) if cells else len(str(h))
              for i, h in enumerate(header)]
    out = ["  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))]
    out.append("-" * len(out[0]))
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    return "\n".join(out)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf"
        return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.4g}"
    return str(value)


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None
