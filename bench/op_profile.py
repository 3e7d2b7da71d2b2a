#!/usr/bin/env python3
"""Where one ``bench/speed.py`` case spends its time, operation by operation.

Builds the case exactly as ``speed.py`` times it, runs it a few times under TensorFlow's
profiler and sums the host-side operation times of the trace: per operation type (oneDNN's
convolutions appear as ``_MklNative...``), and per layer, the numbers of repeated blocks folded
together (``block_3/sft_1/mul_conv1`` counts under ``block/sft/mul_conv1``). The times are
those of the operations themselves; the wall time of a call is shorter when two run at once.

    python bench/op_profile.py sftmd_train_step_ms [--precision bf16] [--runs 3] [--top 25]
"""
import collections
import glob
import pathlib
import re
import sys
import tempfile

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def profile_ops(fn, runs):
    """``(per type, per layer)`` milliseconds per call of ``fn`` from a profiler trace."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    fn()
    fn()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(runs):
            fn()
        tf.profiler.experimental.stop()
        path = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
        space = xplane_pb2.XSpace()
        space.ParseFromString(pathlib.Path(path).read_bytes())
    by_type, by_layer = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if "host" not in plane.name.lower():
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:     # runtime events, not operations
                    continue
                op, kind = name.rsplit(":", 1)
                if kind.strip().startswith("__"):     # the traced function's span, around the ops
                    continue
                ms = event.duration_ps / 1e9 / runs
                by_type[kind] += ms
                by_layer[f"{re.sub(r'_[0-9]+', '', op)} ({kind})"] += ms
    return by_type, by_layer


@click.command()
@click.argument("case")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True)
@click.option("--runs", type=int, default=3, show_default=True, help="profiled calls")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--top", type=int, default=25, show_default=True, help="rows of each table")
def main(case, precision, runs, threads, top):
    """Per-operation profile of CASE (a key of bench/speed.py, e.g. sftmd_train_step_ms)."""
    from visionfw import runtime

    runtime.import_tensorflow_quietly()
    runtime.configure_threads(threads, 1)
    import keras
    import tensorflow as tf

    import speed
    import visionfw

    cases = speed.cases_for(visionfw)
    if case not in cases:
        raise click.UsageError(f"unknown case {case!r}; valid: {', '.join(sorted(cases))}")
    runtime.set_precision(precision)
    name, hp, kind, shape = cases[case]
    result = {}

    def timer(fn, _runs):
        result["ops"] = profile_ops(fn, runs)
        return speed.median_ms(fn, 5)

    ms, _ = speed.time_case(name, hp, kind, shape, runs, False, tf, visionfw, keras, timer)
    by_type, by_layer = result["ops"]
    total = sum(by_type.values())
    click.echo(f"{case}, {precision}, graph path: {ms:.1f} ms a call (median of 5), "
               f"{total:.1f} ms of operations")
    for title, table in (("operation type", by_type), ("layer (operation)", by_layer)):
        click.echo(f"\n{'ms':>9}  {'share':>6}  {title}")
        for key, value in table.most_common(top):
            click.echo(f"{value:9.2f}  {100 * value / total:5.1f}%  {key}")


if __name__ == "__main__":
    main()
