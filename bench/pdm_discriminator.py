#!/usr/bin/env python3
"""What a PDM run's discriminator tells apart: the content of the images or their degradation.

The discriminator of ``train.py pdm`` is trained to score the real LR patches 1 and the
synthesised ones 0. This script scores, with a run's saved discriminator, LR patches of the
real set (``--lr-dir``) and LR patches made from HR crops of ``--hr-dir`` by the run's learned
degradation and by each ``--spec`` (degradations of the library, the true one of a synthetic
experiment among them). If the scores of the specs barely differ from one another while the
real patches score far above all of them, the discriminator has learned the content of the
two image sets, not the degradation, and its gradient cannot lead the kernel to the truth.

    python bench/pdm_discriminator.py RUN --hr-dir HR --lr-dir LR \\
        --spec "gaussian(sigma1=2.6,sigma2=1.2,theta=0.7,size=21)+direct+noise(10)+quantize" \\
        [--spec ...] [--which best|last|stopped] [--patches 64] [--seed 0] [--json OUT]
"""
import os
import pathlib
import sys

import click
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def crops(folder, size, n, rng):
    """``n`` random ``size`` squares (RGB, [0, 1]) of the images of ``folder`` at least that big."""
    from visionfw.imageio import list_images, read_image

    images = [im for im in (read_image(p) for p in list_images(folder))
              if min(im.shape[:2]) >= size]
    if not images:
        raise click.ClickException(f"{folder}: no image of at least {size}x{size}")
    out = []
    for _ in range(n):
        im = images[rng.integers(len(images))]
        top = rng.integers(im.shape[0] - size + 1)
        left = rng.integers(im.shape[1] - size + 1)
        out.append(im[top:top + size, left:left + size, :3])
    return np.stack(out).astype(np.float32) / 255.0


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--hr-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="HR images the fake LR patches are made from.")
@click.option("--lr-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The real LR images (the run's --unpaired-dir).")
@click.option("--spec", "specs", multiple=True, help="A degradation of the library; repeatable.")
@click.option("--which", type=click.Choice(["best", "last", "stopped"]), default="best",
              show_default=True)
@click.option("--patches", default=64, show_default=True, help="Patches per row.")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the scores.")
def main(run, hr_dir, lr_dir, specs, which, patches, seed, json_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from visionfw.checkpoint import load_model
    from visionfw.degradation import parse_degradation
    from visionfw.degradation.ops import to_uint8
    from visionfw.recipes.pdm import load_run
    from visionfw.train.config import write_json

    degradation, _ = load_run(run, which)
    disc_path = pathlib.Path(run) / f"{which}.discriminator.weights.h5"
    if not disc_path.exists():
        raise click.ClickException(f"{disc_path}: no such file (the run's discriminator)")
    disc = load_model(str(disc_path), compile=False)
    scale = degradation.scale
    lr_side = 32
    rng = np.random.default_rng(seed)
    hr = tf.constant(crops(hr_dir, lr_side * scale, patches, rng))
    real = tf.constant(crops(lr_dir, lr_side, patches, rng))

    def eight_bits(x):
        return tf.cast(to_uint8(x), tf.float32) / 255.0

    zk, zn = degradation.fixed_draws(hr)
    learned, _, _ = degradation(hr, zk, zn)
    rows = [("real LR", real), ("learned degradation", eight_bits(learned))]
    for i, spec in enumerate(specs):
        deg = parse_degradation(spec, base_seed=seed)
        rows.append((spec, eight_bits(deg.degrade(hr, scale, seed=i)[0])))
    scores = {name: float(tf.reduce_mean(tf.cast(disc(x, training=False), tf.float32)))
              for name, x in rows}
    for name, value in scores.items():
        print(f"{value:7.3f}  {name}")
    if json_path:
        report = {"run": str(run), "which": which, "hr_dir": hr_dir, "lr_dir": lr_dir,
                  "patches": patches, "lr_side": lr_side, "seed": seed, "scores": scores}
        write_json(json_path, report)


if __name__ == "__main__":
    main()
