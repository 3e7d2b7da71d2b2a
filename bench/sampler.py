#!/usr/bin/env python3
"""Does the PSNR-gain patch sampler converge faster than uniform sampling? Several seeds of
the same run with each sampler, validation PSNR against the step, side by side.

Each run is ``train.py`` in its own process (same model, data, schedule and seed for both
samplers; only ``--sampler`` differs), so the runs share nothing but the machine. The table
gives, per validation step, the mean over seeds of each sampler's Set5 PSNR, their
difference, and in how many seeds psnr-gain was ahead; then the seconds per step.

Default workload (the setting the sampler was proposed for): SRResNet x4 (8 blocks, 32
filters, no BatchNorm), HR patches 128, batch 16, 1500 steps, cosine from 1e-3, validation
on Set5 every 250 steps, seeds 0 1 2; training images from ``--train-dir`` (T91).

    python bench/sampler.py --train-dir ../shared/data/train/T91 \\
        --val-dir ../shared/data/benchmark/Set5 [--seeds 0,1,2] [--steps 1500] \\
        [--out runs/bench-sampler] [--json OUT]

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
SAMPLERS = ("uniform", "psnr-gain")


def run_one(out, sampler, seed, args, threads):
    """One training run (or the finished one already in ``out``); its val.csv rows."""
    folder = out / f"{sampler}-seed{seed}"
    if not (folder / "last.weights.h5").is_file():
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        cmd = [sys.executable, str(ROOT / "train.py"), *args, "--sampler", sampler,
               "--seed", str(seed), "--out", str(folder), "--threads", str(threads)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise click.ClickException(f"{sampler} seed {seed} failed: "
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
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="runs/bench-sampler",
              show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(train_dirs, val_dirs, seeds, steps, val_every, scale, patch_size, batch_size, lr,
         params, threads, out, json_path):
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
    runs = {}
    for seed in seeds:
        for sampler in SAMPLERS:
            click.echo(f"{sampler} seed {seed} ...", err=True)
            runs[(sampler, seed)] = run_one(out, sampler, seed, args, threads)
    val_steps = [int(r["step"]) for r in runs[(SAMPLERS[0], seeds[0])]]

    def psnr(sampler, seed, step):
        return next(float(r["psnr"]) for r in runs[(sampler, seed)] if int(r["step"]) == step)

    rows = []
    for step in val_steps:
        u = [psnr("uniform", s, step) for s in seeds]
        g = [psnr("psnr-gain", s, step) for s in seeds]
        rows.append({"step": step, "uniform": float(np.mean(u)), "psnr_gain": float(np.mean(g)),
                     "difference": float(np.mean(g) - np.mean(u)),
                     "psnr_gain_ahead": int(sum(b > a for a, b in zip(u, g))),
                     "uniform_per_seed": u, "psnr_gain_per_seed": g})

    def seconds_per_step(sampler):
        return float(np.mean([float(runs[(sampler, s)][-1]["seconds"]) / steps for s in seeds]))

    timing = {s: seconds_per_step(s) for s in SAMPLERS}
    click.echo(f"SRResNet x{scale} ({', '.join(params)}), patch {patch_size}, batch "
               f"{batch_size}, {steps} steps, seeds {seeds}; Set5 PSNR (dB), mean over seeds")
    click.echo(f"{'step':>6} {'uniform':>9} {'psnr-gain':>10} {'gain-uni':>9} "
               f"{'psnr-gain ahead':>16}")
    for r in rows:
        click.echo(f"{r['step']:>6} {r['uniform']:9.3f} {r['psnr_gain']:10.3f} "
                   f"{r['difference']:+9.3f} {r['psnr_gain_ahead']:>9} of {len(seeds)}")
    click.echo(f"seconds per step (incl. validation): uniform {timing['uniform']:.3f}, "
               f"psnr-gain {timing['psnr-gain']:.3f} "
               f"({timing['psnr-gain'] / timing['uniform']:.2f}x)")
    if json_path:
        from visionfw.graph.schema import atomic_write_text

        atomic_write_text(json_path, json.dumps(
            {"settings": {"scale": scale, "params": list(params), "patch_size": patch_size,
                          "batch_size": batch_size, "steps": steps, "lr": lr,
                          "seeds": seeds, "train_dirs": list(train_dirs),
                          "val_dirs": list(val_dirs)},
             "rows": rows, "seconds_per_step": timing}, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
