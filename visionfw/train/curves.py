"""The training-curve picture of a run (``curves.png`` beside ``val.csv``): validation PSNR
against bicubic's, the gain over bicubic, and the training loss, against the step."""
import os


def plot_curves(history, path, title=None):
    """Draw ``history`` (``val.csv``'s rows: dicts of strings) into the PNG ``path`` (written
    to a temporary file and renamed). Returns ``path``, or ``None`` for an empty history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return None
    steps = [int(r["step"]) for r in history]

    def column(key):
        return [float(r[key]) if r.get(key) not in (None, "") else float("nan")
                for r in history]

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
    loss.plot(steps, values, marker="o", ms=3, color="tab:red")
    if all(v > 0 for v in values):
        loss.set_yscale("log")
    loss.set(title="training loss (mean of the last steps)", xlabel="step")
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
