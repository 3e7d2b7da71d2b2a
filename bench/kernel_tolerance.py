#!/usr/bin/env python3
"""How exact must a kernel estimate be for USRNet? USRNet fed altered true kernels.

USRNet (a trained file) restores Set5 under USRNet's 12 test kernels (``usrnet12``, x4, noise
0, RGB PSNR: the protocol of ``test.py usrnet`` and ``test.py dan+usrnet``), fed the true
kernel changed in one known way, each change a row of PSNR and kernel PSNR per kernel:

  true          the true kernel (``test.py usrnet``'s row)
  blur:S        the true kernel convolved with a Gaussian of standard deviation S HR pixels
                (zero outside the l x l window) and renormalised: an estimate right in shape
                and place, too soft
  gaussian      the Gaussian with the true kernel's centroid and covariance (its first two
                moments): what a perfect estimator of Gaussian kernels answers
  mean:SPEC     the mean kernel of a training degradation's blurs, whatever the image
                (``test.py``'s mean-kernel row; SPEC as ``--degradation`` takes it)

It answers what kernel PSNR says and does not say about the SR an estimate gives: a row with a
lower kernel PSNR can restore better (``blur`` against ``gaussian`` on the motion kernels).

    python bench/kernel_tolerance.py --weights zoo/usrnet_k6_nc16_x234_x2ft8.weights.h5 \\
        --data-root ../shared/data/benchmark --row true --row blur:0.7 --row gaussian \\
        --json bench/reports/kernel_tolerance.json
"""
import json
import os
import pathlib
import sys

import click
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_ROWS = ("true", "blur:0.5", "blur:0.7", "blur:1.0", "blur:1.5", "gaussian",
                "mean:randomblur(size=25,padding=circular)+direct")


def blurred(kernel, sigma):
    """``kernel`` softened as ``--recipe-param target_blur`` softens a training target: a
    Gaussian of ``sigma`` taps, zero outside, renormalised (float64)."""
    import tensorflow as tf

    from visionfw.recipes.kenet import soften_kernels

    k = tf.constant(np.asarray(kernel, np.float64)[None])
    return soften_kernels(k, float(sigma))[0].numpy()


def moment_gaussian(kernel):
    """The Gaussian (same window) with ``kernel``'s centroid and covariance: the library's
    second-moment ellipse (:func:`~visionfw.degradation.kernel_shape`) about its centre of
    mass, each variance raised by 1e-6 so that a straight line's zero width stays finite."""
    from visionfw.degradation import centre_of_mass, kernel_shape
    from visionfw.degradation.kernels import _inverse_covariance

    major, minor, degrees = kernel_shape(kernel)
    a, b, d = _inverse_covariance(np.sqrt(major ** 2 + 1e-6), np.sqrt(minor ** 2 + 1e-6),
                                  np.radians(degrees))
    row, col = centre_of_mass(kernel)
    rows, cols = np.mgrid[0:kernel.shape[0], 0:kernel.shape[1]].astype(np.float64)
    x, y = cols - col, rows - row
    g = np.exp(-0.5 * (a * x * x + 2.0 * b * x * y + d * y * y))
    return g / g.sum()


def parse_row(text):
    """``(label, function of the true kernel)`` for one ``--row``."""
    from visionfw.degradation.metrics import mean_training_kernel

    name, _, arg = text.partition(":")
    if name == "true" and not arg:
        return text, lambda k: k
    if name == "gaussian" and not arg:
        return text, moment_gaussian
    if name == "blur" and arg:
        try:
            sigma = float(arg)
        except ValueError:
            sigma = -1.0
        if sigma <= 0:
            raise click.BadParameter(f"{text}: blur:S takes a positive sigma in HR pixels")
        return text, lambda k: blurred(k, sigma)
    if name == "mean" and arg:
        cache = {}

        def mean(k):
            if k.shape not in cache:
                cache[k.shape] = mean_training_kernel(arg)
            if cache[k.shape].shape != k.shape:
                raise click.BadParameter(f"{text}: its kernels are {cache[k.shape].shape}, "
                                         f"the test kernels {k.shape}; give size= to match")
            return cache[k.shape]
        return text, mean
    raise click.BadParameter(f"{text}: expected true, blur:S, gaussian or mean:SPEC")


def altered_usrnet(network, alter):
    """The ``usrnet`` method on ``network`` with the true kernel replaced by ``alter(k)``."""
    from visionfw.evaluate import make_method

    method = make_method("usrnet", {"model": network}, scale=4)

    def kernel_for(lr, labels):
        return np.asarray(alter(np.asarray(labels["kernel"], np.float64)), np.float32)

    method.kernel_for = kernel_for
    return method


@click.command()
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False),
              help="a trained USRNet (.weights.h5)")
@click.option("--data-root", default="../shared/data/benchmark", show_default=True)
@click.option("--dataset", default="Set5", show_default=True)
@click.option("--row", "rows", multiple=True, help="true, blur:S, gaussian or mean:SPEC "
              "(repeatable; default: the set in the module docstring)")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(weights, data_root, dataset, rows, threads, json_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parsed = [parse_row(r) for r in (rows or DEFAULT_ROWS)]
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from visionfw import checkpoint
    from visionfw.evaluate import evaluate, resolve_dataset

    network = checkpoint.load_model(weights, compile=False)
    sets = [resolve_dataset(dataset, data_root)]
    out = {"weights": weights, "dataset": dataset, "protocol": "usrnet12 x4, noise 0, RGB",
           "rows": {}}
    for label, alter in parsed:
        report = evaluate(altered_usrnet(network, alter), sets, degradation="usrnet12",
                          channel="rgb", variants=["*noise0.00"], model_name=label)
        res = report["results"]
        out["rows"][label] = {
            "variants": [r["variant"] for r in res],
            "psnr": [round(r["psnr"], 4) for r in res],
            # the true kernel's own kernel PSNR is infinite: null in the JSON
            "kernel_psnr": [round(r["kernel_psnr"], 3) if np.isfinite(r["kernel_psnr"])
                            else None for r in res],
            "mean_psnr": round(float(np.mean([r["psnr"] for r in res])), 4)}
        row = out["rows"][label]
        click.echo(f"{label:<24} " + " ".join(f"{p:6.2f}" for p in row["psnr"])
                   + f"  mean {row['mean_psnr']:.2f}")
        click.echo(f"{'  kernel PSNR':<24} " + " ".join(
            f"{p:6.1f}" if p is not None else f"{'inf':>6}" for p in row["kernel_psnr"]))
    if json_path:
        tmp = json_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, json_path)
        click.echo(f"written to {json_path}")


if __name__ == "__main__":
    main()
