#!/usr/bin/env python3
"""Can the data pipeline keep the training step fed? Patches per second of both, and the ratio.

- pipeline: the training ``tf.data`` pipeline (decode once, random HR crops, 8 flips and
  rotations, MATLAB-bicubic LR on the fly, parallel map, prefetch) with the model replaced by
  a no-op: batches are pulled and dropped.
- step: the trainer's real training step (SRResNet, forward, backward, Adam) on one fixed
  batch, so data costs nothing.

The ratio pipeline / step must be at least 5: the pipeline then needs at most a fifth of
the machine to keep up. Defaults: SRResNet x4 (16 blocks, 64 filters), batch 16, HR patch 96,
the photographs embedded in scikit-image (or ``--train-dir``).

    python bench/pipeline.py [--train-dir DIR ...] [--scale 4] [--batch-size 16]
                             [--patch-size 96] [--param K=V ...] [--steps 10] [--json OUT]
"""
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pipeline_rate(pipeline, batches):
    """Patches per second pulled from the pipeline (after a warm-up batch)."""
    it = iter(pipeline.dataset(0, batches + 1))
    next(it)
    start = time.perf_counter()
    n = 0
    for batch in it:
        n += int(batch["hr"].shape[0])
    return n / (time.perf_counter() - start)


def step_rate(trainer, steps):
    """Patches per second consumed by the training step on a fixed batch."""
    batch = next(iter(trainer.pipeline.distribute(trainer.strategy, 0, 1)))
    for _ in range(2):                               # trace, then one warm step
        trainer._train_step(batch)[0]["loss"].numpy()
    start = time.perf_counter()
    for _ in range(steps):
        trainer._train_step(batch)[0]["loss"].numpy()
    return steps * trainer.pipeline.batch_size / (time.perf_counter() - start)


@click.command()
@click.option("--train-dir", "train_dirs", multiple=True, help="Image folders (default: embedded).")
@click.option("--model", default="srresnet", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Model hyperparameter, repeatable.")
@click.option("--scale", type=int, default=4, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--patch-size", type=int, default=96, show_default=True)
@click.option("--steps", type=int, default=10, show_default=True, help="Timed training steps.")
@click.option("--batches", type=int, default=200, show_default=True, help="Timed pipeline batches.")
@click.option("--threads", type=int, default=None)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(train_dirs, model, params, scale, batch_size, patch_size, steps, batches, threads, json_path):
    from visionfw.cli.common import parse_params
    from visionfw.train.config import TrainConfig
    from visionfw.train.distribute import start
    from visionfw.train.run import build_trainer, resolve_model_and_scale

    strategy = start("default", None, threads)
    out = tempfile.mkdtemp(prefix="bench-pipeline-")
    try:
        config = TrainConfig(model=model, hparams=parse_params(params), scale=scale, train_dirs=list(train_dirs), out=out,
                             batch_size=batch_size, patch_size=patch_size, steps=steps + 3)
        trainer = build_trainer(config, resolve_model_and_scale(config), progress=False,
                                validation=False, strategy=strategy)
        feed = pipeline_rate(trainer.pipeline, batches)
        need = step_rate(trainer, steps)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    ratio = feed / need
    report = {"model": model, "params": list(params), "scale": scale, "batch_size": batch_size,
              "patch_size": patch_size, "data": list(train_dirs) or "embedded",
              "cpus": os.cpu_count(), "pipeline_patches_per_s": round(feed, 1),
              "step_patches_per_s": round(need, 2), "ratio": round(ratio, 1)}
    click.echo(f"{model} {' '.join(params)} x{scale}, batch {batch_size}, HR patch {patch_size}, "
               f"{os.cpu_count()} CPUs")
    click.echo(f"  pipeline (no-op model): {feed:9.1f} patches/s")
    click.echo(f"  training step:          {need:9.2f} patches/s")
    click.echo(f"  ratio:                  {ratio:9.1f}x  ({'ok' if ratio >= 5 else 'TOO LOW'}, "
               "needs >= 5x)")
    if json_path:
        from visionfw.train.config import write_json

        write_json(json_path, report)
    sys.exit(0 if ratio >= 5 else 1)


if __name__ == "__main__":
    main()
