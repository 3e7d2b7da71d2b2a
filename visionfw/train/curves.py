"""The training-curve picture of a run (``curves.png`` beside ``val.csv``): validation PSNR
against bicubic's, the gain over bicubic, and the training loss at every logged step
(``train.csv``), against the step."""
import os

import numpy as np


def read_rows(path):
    """The rows of a CSV file as dicts of strings (``[]`` when it does not exist)."""
    import csv

    if not path or not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def smoothed(values, weight=0.9):
    """TensorBoard-style exponential smoothing, debiased at the start."""
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def loss_limits(values):
    """``(low, high, log)`` of the loss axis: the 1st to 99th percentile of the finite
    ``values`` with a margin, so that the spikes of the first steps do not flatten the curve;
    a log axis when every value is positive. ``None`` without a finite value."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return None
    low, high = (float(v) for v in np.percentile(values, [1, 99]))
    if min(values) > 0:
        return low / 1.15, high * 1.15, True
    pad = 0.08 * (high - low) or 1.0
    return low - pad, high + pad, False


def plot_curves(history, path, title=None, train_rows=None):
    """Draw ``history`` (``val.csv``'s rows: dicts of strings) and ``train_rows``
    (``train.csv``'s: the loss every logged step) into the PNG ``path`` (written to a
    temporary file and renamed). Returns ``path``, or ``None`` when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history and not train_rows:
        return None
    steps = [int(r["step"]) for r in history]

    def column(key, rows=history):
        return [float(r[key]) if r.get(key) not in (None, "") else float("nan")
                for r in rows]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=90)
    psnr, bic = axes[0], axes[1]
    psnr.plot(steps, column("psnr"), marker="o", ms=3, label="model")
    psnr.plot(steps, column("bicubic_psnr"), ls="--", color="gray", label="bicubic")
    psnr.set(title="validation PSNR (dB)", xlabel="step")
    psnr.legend(loc="lower right", fontsize=8)
    bic.plot(steps, column("gain"), marker="o", ms=3, color="tab:green")
    bic.axhline(0.0, color="gray", lw=0.8)
    bic.set(title="gain over bicubic (dB)", xlabel="step")
    loss = axes[2]
    values = column("loss")
    drawn = [v for v in values if np.isfinite(v)]
    if train_rows:
        logged = [int(r["step"]) for r in train_rows]
        every = column("loss", train_rows)
        loss.plot(logged, every, color="tab:red", alpha=0.3, lw=0.8, label="logged steps")
        loss.plot(logged, smoothed(every), color="tab:red", lw=1.5, label="smoothed")
        drawn += [v for v in every if np.isfinite(v)]
    loss.plot(steps, values, marker="o", ms=3, ls="none", color="black",
              label="at validations")
    limits = loss_limits(drawn)
    if limits is not None:
        low, high, log = limits
        if log:
            loss.set_yscale("log")
        loss.set_ylim(low, high)
    loss.legend(loc="upper right", fontsize=8)
    loss.set(title="training loss", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = f"{path}.tmp-{os.getpid()}.png"
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
