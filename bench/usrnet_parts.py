#!/usr/bin/env python3
"""Where USRNet's inference time goes: the ResUNet prior against everything else.

USRNet x4 (8 iterations, ResUNet 64/128/256/512, 2 blocks per level) on one 64x64 LR image
with a 25x25 kernel, the ``usrnet_x4_infer_ms`` case of ``bench/speed.py``, timed whole and in
parts, in one process, interleaved over ``--rounds``:

  full       the whole network (the speed.py case)
  prior x K  the ResUNet alone on the (1, 256, 256, 4) estimate and beta map, K times
  data x K   the closed-form FFT data step alone, K times

``outside`` is what the whole network spends beyond the K prior passes (data steps,
hyper-parameter network, nearest up-sampling, beta maps, padding and cropping), as a share of
the whole. The prior's floating-point rate is set beside a matrix-multiply rate measured in
the same process, the ceiling a convolution-bound network can reach here.

    python bench/usrnet_parts.py [--threads 2] [--runs 5] [--rounds 2] [--jit] [--json OUT]
"""
import json
import os
import pathlib
import sys

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@click.command()
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--runs", type=int, default=5, show_default=True, help="timed runs per part "
              "and round (the median is kept)")
@click.option("--rounds", type=int, default=2, show_default=True)
@click.option("--jit/--no-jit", default=False, show_default=True, help="XLA for every part")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(threads, runs, rounds, jit, json_path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import visionfw
    from bench.speed import graph_flops, make_inputs, matmul_gflops, median_ms
    from model_defs.usrnet import resunet_body
    from visionfw.graph.builder import build
    from visionfw.layers import usrnet_data_step

    iterations, size, scale = 8, 64, 4
    full = visionfw.build_model("usrnet", compile=False, scale=scale, iterations=iterations)
    x = make_inputs(full, 1, (size, size), tf, scale)
    prior = build(resunet_body(64, 2, 4, 3, 4))
    estimate = tf.random.uniform([1, size * scale, size * scale, 4])
    z = tf.random.uniform([1, size * scale, size * scale, 3])
    y = tf.random.uniform([1, size, size, 3])
    alpha = tf.fill([1], 0.05)

    fns = {
        "full": tf.function(lambda: full(x, training=False), jit_compile=jit),
        "prior": tf.function(lambda: prior(estimate, training=False), jit_compile=jit),
        "data": tf.function(lambda: usrnet_data_step(z, y, x[1], alpha, scale), jit_compile=jit),
    }
    flops = {name: graph_flops(fn.get_concrete_function()) for name, fn in fns.items()}
    times = {name: [] for name in fns}
    rates = []
    for _ in range(rounds):
        rates.append(matmul_gflops(tf))
        for name, fn in fns.items():
            times[name].append(median_ms(lambda: tf.nest.map_structure(
                lambda t: t.numpy(), fn()), runs))
    best = {name: min(ts) for name, ts in times.items()}
    outside = best["full"] - iterations * best["prior"]
    rate = max(rates)
    prior_gflops = flops["prior"] / (best["prior"] * 1e-3) / 1e9
    report = {
        "case": f"usrnet x{scale}, {iterations} iterations, nc 64, {size}x{size} LR, 25x25 "
                f"kernel, {threads} threads, {'XLA' if jit else 'graph'}",
        "ms": times, "best_ms": best,
        "prior_share": iterations * best["prior"] / best["full"],
        "data_share": iterations * best["data"] / best["full"],
        "outside_share": outside / best["full"],
        "prior_gflops": prior_gflops, "matmul_gflops": rates,
        "prior_share_of_matmul_rate": prior_gflops / rate,
        "prior_gflop_per_pass": flops["prior"] / 1e9,
    }
    print(report["case"])
    for name in fns:
        print(f"  {name:6s} {', '.join(f'{t:.1f}' for t in times[name])} ms")
    print(f"  {iterations} prior passes: {100 * report['prior_share']:.1f} % of the whole; "
          f"{iterations} data steps: {100 * report['data_share']:.1f} %; everything outside "
          f"the prior: {100 * report['outside_share']:.1f} %")
    print(f"  prior: {prior_gflops:.0f} GFLOP/s, {100 * report['prior_share_of_matmul_rate']:.0f} "
          f"% of the {rate:.0f} GFLOP/s matmul rate")
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
