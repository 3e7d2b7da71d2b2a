#!/usr/bin/env python3
"""Single convolutions at inference on the two paths, to see which shapes a path handles badly.

Each case is one ``Conv2D`` (bias, no activation) on a random float32 input, run as a graph
function and under XLA in this process; ms is the best of ``--runs``, GFLOP/s counts the direct
convolution's work. oneDNN is a process-wide switch read when TensorFlow loads: compare
``TF_ENABLE_ONEDNN_OPTS=1`` (visionfw's default) with ``=0`` by running the script twice.

    TF_ENABLE_ONEDNN_OPTS=1 python bench/conv_paths.py [--threads 2] [--runs 5] [--json OUT]
"""
import json
import os
import pathlib
import sys
import time

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (kernel, in channels, out channels, side): the tails and up-sampling convolutions of SRResNet
# and SFTMD at x4 (9x9 and 3x3 to RGB at the SR size, 3x3 to 4x64 channels before the pixel
# shuffle), a 64-channel body convolution at both sizes, a 1x1 one to RGB
CASES = [(9, 64, 3, 512), (3, 64, 3, 512), (3, 64, 256, 128), (3, 64, 64, 128),
         (3, 64, 64, 512), (1, 64, 3, 512)]


@click.command()
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--runs", type=int, default=5, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(threads, runs, json_path):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    onednn = os.environ["TF_ENABLE_ONEDNN_OPTS"]
    rows = []
    print(f"TF_ENABLE_ONEDNN_OPTS={onednn}, {threads} threads")
    for k, cin, cout, side in CASES:
        x = keras.Input((None, None, cin))
        model = keras.Model(x, keras.layers.Conv2D(cout, k, padding="same")(x))
        inp = tf.random.uniform((1, side, side, cin))
        gflop = 2 * side * side * k * k * cin * cout / 1e9
        row = {"case": f"{k}x{k} {cin}->{cout} at {side}x{side}", "gflop": gflop,
               "onednn": onednn}
        for path, jit in (("graph", False), ("xla", True)):
            fn = tf.function(lambda t: model(t, training=False), jit_compile=jit)
            fn(inp)
            fn(inp)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                fn(inp).numpy()
                times.append(time.perf_counter() - start)
            row[f"{path}_ms"] = 1e3 * min(times)
        rows.append(row)
        print(f"  {row['case']:24s} graph {row['graph_ms']:8.1f} ms "
              f"({gflop / row['graph_ms'] * 1e3:4.0f} GFLOP/s)   XLA {row['xla_ms']:8.1f} ms "
              f"({gflop / row['xla_ms'] * 1e3:4.0f} GFLOP/s)", flush=True)
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
