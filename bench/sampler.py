#!/usr/bin/env python3
"""Does the PSNR-gain patch sampler converge faster than uniform sampling? Several seeds of
the same run with each sampler, validation PSNR against the step, side by side.

Each run is ``train.py`` in its own process (same model, data, schedule and seed for every
arm; only the sampler options differ), so the runs share nothing but the machine. Arms:
``uniform`` (a random crop anywhere in a random image), ``psnr-gain`` on the grid of
non-overlapping patches (``--sampler-stride`` = the patch size, the default) and, with
``--dense-stride S``, ``psnr-gain`` on a grid of step S (overlapping candidates, closer to the
variety of uniform crops). The table gives, per validation step, the mean over seeds of each
arm's Set5 PSNR, its difference from uniform, and in how many seeds it was ahead; then the
seconds per step.

Default workload (the setting the sampler was proposed for): SRResNet x4 (8 blocks, 32
filters, no BatchNorm), HR patches 128, batch 16, 1500 steps, cosine from 1e-3, validation
on Set5 every 250 steps, seeds 0 1 2; training images from ``--train-dir`` (T91).

    python bench/sampler.py --train-dir ../shared/data/train/T91 \\
        --val-dir ../shared/data/benchmark/Set5 [--seeds 0,1,2] [--steps 1500] \\
        [--dense-stride 32] [--out runs/bench-sampler] [--json OUT]

Runs already finished in ``--out`` are reused (delete the folder to measure again), so an
interrupted bench resumes where it stopped.
"""
import csv
import json
import os
import pathlib
import subprocess
import sys

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]


def arms(patch_size, dense_stride):
    """``{name: train.py options}`` of the compared samplers."""
    out = {"uniform": ["--sampler", "uniform"],
           "psnr-gain": ["--sampler", "psnr-gain", "--sampler-stride", str(patch_size)]}
    if dense_stride:
        out[f"psnr-gain-stride{dense_stride}"] = ["--sampler", "psnr-gain", "--sampler-stride",
                                                  str(dense_stride)]
    return out


def run_one(out, arm, options, seed, args, threads):
    """One training run (or the finished one already in ``out``); its val.csv rows."""
    folder = out / f"{arm}-seed{seed}"
    if not (folder / "last.weights.h5").is_file():
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        cmd = [sys.executable, str(ROOT / "train.py"), *args, *options,
               "--seed", str(seed), "--out", str(folder), "--threads", str(threads)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise click.ClickException(f"{arm} seed {seed} failed: "
                                       f"{r.stderr.strip().splitlines()[-1:]}")
    with open(folder / "val.csv") as f:
        return list(csv.DictReader(f))


@click.command()
@click.option("--train-dir", "train_dirs", multiple=True, help="Training image folders.")
@click.option("--val-dir", "val_dirs", multiple=True, help="Validation folders (Set5).")
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--steps", type=int, default=1500, show_default=True)
@click.option("--val-every", type=int, default=250, show_default=True)
@click.option("--scale", type=int, default=4, show_default=True)
@click.option("--patch-size", type=int, default=128, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--param", "params", multiple=True, default=("B=8", "filters=32",
                                                           "batchnorm=false"),
              show_default=True, metavar="NAME=VALUE")
@click.option("--dense-stride", type=int, default=None,
              help="Also run psnr-gain on a grid of this step (overlapping candidates).")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="runs/bench-sampler",
              show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(train_dirs, val_dirs, seeds, steps, val_every, scale, patch_size, batch_size, lr,
         params, dense_stride, threads, out, json_path):
    """Uniform against psnr-gain sampling, several seeds, one table."""
    import numpy as np

    seeds = [int(s) for s in seeds.split(",") if s]
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    args = ["srresnet", "--scale", str(scale), "--steps", str(steps), "--val-every",
            str(val_every), "--patch-size", str(patch_size), "--batch-size", str(batch_size),
            "--lr", str(lr), "--schedule", "cosine"]
    for p in params:
        args += ["--param", p]
    for d in train_dirs:
        args += ["--train-dir", d]
    for d in val_dirs:
        args += ["--val-dir", d]
    compared = arms(patch_size, dense_stride)
    runs = {}
    for seed in seeds:
        for arm, options in compared.items():
            click.echo(f"{arm} seed {seed} ...", err=True)
            runs[(arm, seed)] = run_one(out, arm, options, seed, args, threads)
    val_steps = [int(r["step"]) for r in runs[("uniform", seeds[0])]]

    def psnr(arm, seed, step):
        return next(float(r["psnr"]) for r in runs[(arm, seed)] if int(r["step"]) == step)

    rows = []
    for step in val_steps:
        u = [psnr("uniform", s, step) for s in seeds]
        row = {"step": step}
        for arm in compared:
            v = [psnr(arm, s, step) for s in seeds]
            row[arm] = float(np.mean(v))
            row[f"{arm}_per_seed"] = v
            if arm != "uniform":
                row[f"{arm}_minus_uniform"] = float(np.mean(v) - np.mean(u))
                row[f"{arm}_ahead"] = int(sum(b > a for a, b in zip(u, v)))
        rows.append(row)

    def seconds_per_step(arm):
        return float(np.mean([float(runs[(arm, s)][-1]["seconds"]) / steps for s in seeds]))

    timing = {arm: seconds_per_step(arm) for arm in compared}
    others = [a for a in compared if a != "uniform"]
    click.echo(f"SRResNet x{scale} ({', '.join(params)}), patch {patch_size}, batch "
               f"{batch_size}, {steps} steps, seeds {seeds}; Set5 PSNR (dB), mean over seeds; "
               f"'-uni' is the difference from uniform, 'ahead' in how many seeds")
    click.echo(f"{'step':>6} {'uniform':>9}" + "".join(f" {a:>24} {'-uni':>7} {'ahead':>6}"
                                                      for a in others))
    for r in rows:
        click.echo(f"{r['step']:>6} {r['uniform']:9.3f}" + "".join(
            f" {r[a]:24.3f} {r[a + '_minus_uniform']:+7.3f} {r[a + '_ahead']:>3} of "
            f"{len(seeds)}" for a in others))
    click.echo("seconds per step (incl. validation): " + ", ".join(
        f"{a} {timing[a]:.3f} ({timing[a] / timing['uniform']:.2f}x)" for a in compared))
    if json_path:
        from visionfw.graph.schema import atomic_write_text

        atomic_write_text(json_path, json.dumps(
            {"settings": {"scale": scale, "params": list(params), "patch_size": patch_size,
                          "batch_size": batch_size, "steps": steps, "lr": lr,
                          "seeds": seeds, "dense_stride": dense_stride,
                          "arms": compared, "train_dirs": list(train_dirs),
                          "val_dirs": list(val_dirs)},
             "rows": rows, "seconds_per_step": timing}, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
