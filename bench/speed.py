#!/usr/bin/env python3
"""Speed of visionfw's models on this machine, beside PyTorch's reference timings.

Cases (the same as ``../shared/bench/torch_reference.py``):

  srresnet_x4_infer_ms       SRResNet x4 (16 blocks, 64 filters, BatchNorm), one 128x128 LR image
  vdsr_infer_ms              VDSR (20 layers, 64 filters), one 256x256 image (already up-sampled)
  srresnet_x4_train_step_ms  SRResNet x4, batch 16 of 24x24 LR patches, L1 loss, Adam

plus ``<name>_infer_ms`` (one 128x128 LR image) and ``<name>_train_step_ms`` (batch 16 of 24x24
LR patches) for every other registered model, and for USRNet:

  usrnet_data_step_ms        the closed-form FFT data step alone, one 128x128 LR image x4
                             (512x512 estimate), 25x25 kernel
  usrnet_x4_infer_ms         USRNet (8 iterations, ResUNet 64-512), one 64x64 LR image x4, 25x25
                             kernel (256x256 out)
  ikc_loop_x4_infer_ms       IKC's whole loop at the zoo's sizes (Predictor nf 32, then 7 times
                             Corrector nf 32 and SFTMD 8 blocks x 32), one 128x128 LR image x4

and, with ``--first-step``, ``first_step_s.RECIPE``: seconds from the start of a tiny ``train.py
RECIPE`` (embedded images, 2 blocks / 8 filters, batch 4) to its first finished step, as
train.py reports it -- start-up, building and tracing, which a researcher waits through at every
change of code.

Inputs are made by role: a network's scale input gets its scale, its kernel input a normalised
25x25 kernel. Each case is timed on every execution path
(graph function or XLA, oneDNN on or off — a process-wide switch, so each setting runs in its
own process) and the report keeps all of them, marks the fastest, and gives the achieved
GFLOP/s (floating-point work counted from the traced graph's convolutions and matrix
products) next to a measured float32 matrix-multiply rate. Peak resident memory is per process.

    python bench/speed.py [--threads 2] [--runs 10] [--precision fp32 --precision bf16]
                          [--json OUT] [--torch-python PATH]

Both precisions are timed by default: ``bf16`` is Keras' ``mixed_bfloat16`` policy (float32
weights, bfloat16 compute), reported under the same keys with ``_bf16`` before ``_ms``
(oneDNN on only), beside a bfloat16 matrix-multiply rate. The report says whether the CPU has
fast bf16 (AMX-BF16 or AVX512-BF16); without it bf16 still runs, emulated.

With ``--torch-python`` (an interpreter that has torch), the reference script runs too (with
``--bf16`` when bf16 is timed), and ``bench/torch_ikc_loop.py`` (the IKC loop on the reference's
networks), and the ratios torch_ms / visionfw_ms of every key both sides have are printed.
"""
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TORCH_REFERENCE = ROOT.parent / "shared" / "bench" / "torch_reference.py"
TORCH_IKC_LOOP = ROOT / "bench" / "torch_ikc_loop.py"
IKC_LOOP_ITERATIONS = 7

MAIN_CASES = {
    "srresnet_x4_infer_ms": ("srresnet", {"scale": 4}, "infer", (1, 128, 128)),
    "vdsr_infer_ms": ("vdsr", {"scale": 1}, "infer", (1, 256, 256)),
    "srresnet_x4_train_step_ms": ("srresnet", {"scale": 4}, "train", (16, 24, 24)),
}


def median_ms(fn, runs, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def graph_operations(graph):
    """The operations of a traced graph, those of the functions it calls (once per call:
    ``visionfw.runtime.traced`` loops call one function at every iteration) included."""
    for op in graph.get_operations():
        if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            called = graph._functions.get(op.get_attr("f").name)
            if called is not None and hasattr(called, "graph"):
                yield from graph_operations(called.graph)
                continue
        yield op


def graph_flops(concrete):
    """Floating-point operations of the convolutions and matrix products in a traced graph."""
    flops = 0
    for op in graph_operations(concrete.graph):
        if op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
                       "DepthwiseConv2dNative"):
            if op.type == "Conv2D" or op.type == "DepthwiseConv2dNative":
                out, kernel = op.outputs[0].shape, op.inputs[1].shape
            elif op.type == "Conv2DBackpropInput":
                out, kernel = op.inputs[2].shape, op.inputs[1].shape   # d(out) and kernel
            else:
                out, kernel = op.inputs[2].shape, op.outputs[0].shape
            if None in out.as_list() or None in kernel.as_list():
                continue
            kh, kw, cin, cout = kernel.as_list()
            n, h, w, _ = out.as_list()
            mult = cin * cout if op.type != "DepthwiseConv2dNative" else cin * cout
            flops += 2 * n * h * w * kh * kw * mult
        elif op.type in ("MatMul", "BatchMatMulV2"):
            a, b = op.inputs[0].shape.as_list(), op.inputs[1].shape.as_list()
            if None in a or None in b:
                continue
            ta = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
            m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
            n = b[-2] if (op.get_attr("transpose_b") if op.type == "MatMul"
                          else op.get_attr("adj_y")) else b[-1]
            batch = 1
            for d in a[:-2]:
                batch *= d
            flops += 2 * batch * m * n * k
    return flops


def matmul_gflops(tf, n=2048, runs=5, dtype="float32"):
    a = tf.cast(tf.random.uniform((n, n)), dtype)
    b = tf.cast(tf.random.uniform((n, n)), dtype)
    f = tf.function(lambda: tf.linalg.matmul(a, b))
    ms = median_ms(lambda: f().numpy(), runs)
    return 2 * n ** 3 / (ms * 1e-3) / 1e9


def make_inputs(model, batch, size, tf, scale=None):
    """Random inputs by role: image inputs get ``size``, a kernel input a normalised 25x25
    kernel, a scale input the scale, other inputs keep their declared shape."""
    from visionfw.conditioning import roles_of

    xs = []
    for t, role in zip(model.inputs, roles_of(model)):
        if role == "kernel":
            k = tf.random.uniform([batch, 25, 25])
            xs.append(k / tf.reduce_sum(k, axis=[1, 2], keepdims=True))
            continue
        if role == "scale":
            xs.append(tf.fill([batch], float(scale or 4)))
            continue
        dims = [batch] + [size[i] if d is None and i < 2 else (d or 1)
                          for i, d in enumerate(t.shape[1:])]
        xs.append(tf.random.uniform(dims))
    return xs[0] if len(xs) == 1 else xs


def time_data_step(shape, runs, jit, tf, timer=median_ms):
    """The USRNet data step alone: z (1, 4h, 4w, 3), y (1, h, w, 3), a 25x25 kernel."""
    from visionfw.layers import usrnet_data_step

    batch, h, w = shape
    y = tf.random.uniform([batch, h, w, 3])
    z = tf.random.uniform([batch, 4 * h, 4 * w, 3])
    k = tf.random.uniform([batch, 25, 25])
    k = k / tf.reduce_sum(k, axis=[1, 2], keepdims=True)
    alpha = tf.fill([batch], 0.05)
    fn = tf.function(lambda z, y, k, a: usrnet_data_step(z, y, k, a, 4), jit_compile=jit)
    fn(z, y, k, alpha)
    return timer(lambda: fn(z, y, k, alpha).numpy(), runs), 0


def time_ikc_loop(shape, runs, jit, tf, visionfw, timer=median_ms):
    """Predictor, then IKC_LOOP_ITERATIONS times Corrector and SFTMD, as test.py ikc runs it."""
    from visionfw.recipes.ikc import ikc_loop

    batch, h, w = shape
    p = visionfw.build_model("ikc-predictor", nf=32, scale=4)
    c = visionfw.build_model("ikc-corrector", nf=32, scale=4)
    f = visionfw.build_model("sftmd", nb=8, nf=32, scale=4)
    lr = tf.random.uniform([batch, h, w, 3])
    fn = tf.function(lambda lr: ikc_loop(p, c, f, lr, IKC_LOOP_ITERATIONS)[1][-1],
                     jit_compile=jit, autograph=False)
    concrete = fn.get_concrete_function(lr)
    return timer(lambda: fn(lr).numpy(), runs), graph_flops(concrete)


def time_case(name, hp, kind, shape, runs, jit, tf, visionfw, keras, timer=median_ms):
    """``(ms, flops)`` of one case; ``timer(fn, runs)`` times the built call (the median of
    ``runs`` by default; ``bench/op_profile.py`` passes a profiler)."""
    if kind == "data_step":
        return time_data_step(shape, runs, jit, tf, timer)
    if kind == "ikc_loop":
        return time_ikc_loop(shape, runs, jit, tf, visionfw, timer)
    model = visionfw.build_model(name, compile=False, **hp)
    batch, h, w = shape
    x = make_inputs(model, batch, (h, w), tf, hp.get("scale"))
    if kind == "infer":
        fn = tf.function(lambda x: model(x, training=False), jit_compile=jit)
        concrete = fn.get_concrete_function(x)
        ms = timer(lambda: tf.nest.map_structure(lambda t: t.numpy(), fn(x)), runs)
        return ms, graph_flops(concrete)
    if not model.trainable_weights:
        return None, 0
    y = model(x, training=False)
    target = tf.nest.map_structure(lambda t: tf.random.uniform(tf.shape(t)), y)
    opt = keras.optimizers.Adam(1e-4)
    opt.build(model.trainable_weights)

    def step(x, target):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.add_n([tf.reduce_mean(tf.abs(tf.cast(o, tf.float32) - tf.cast(t, tf.float32)))
                             for o, t in zip(tf.nest.flatten(out), tf.nest.flatten(target))])
        grads = tape.gradient(loss, model.trainable_weights)
        opt.apply_gradients(zip(grads, model.trainable_weights))
        return loss

    fn = tf.function(step, jit_compile=jit)
    concrete = fn.get_concrete_function(x, target)
    ms = timer(lambda: fn(x, target).numpy(), runs)
    return ms, graph_flops(concrete)


def cases_for(visionfw):
    cases = dict(MAIN_CASES)
    cases["usrnet_data_step_ms"] = ("usrnet", {}, "data_step", (1, 128, 128))
    cases["usrnet_x4_infer_ms"] = ("usrnet", {"scale": 4}, "infer", (1, 64, 64))
    cases["ikc_loop_x4_infer_ms"] = ("ikc", {}, "ikc_loop", (1, 128, 128))
    for name in visionfw.model_names():
        if name in ("srresnet", "usrnet"):
            continue
        hp = {"scale": 1} if name == "vdsr" else {}
        cases.setdefault(f"{name}_infer_ms", (name, hp, "infer", (1, 128, 128)))
        cases.setdefault(f"{name}_train_step_ms", (name, hp, "train", (16, 24, 24)))
    return cases


def precision_key(key, precision):
    """``srresnet_x4_infer_ms`` -> ``srresnet_x4_infer_bf16_ms`` for bf16."""
    return key if precision == "fp32" else key[: -len("_ms")] + f"_{precision}_ms"


def worker(threads, runs, only, precision="fp32", paths=("graph", "xla")):
    """One process, one oneDNN setting, one precision: every case on the graph and XLA paths
    (or those of ``paths``)."""
    from visionfw import runtime

    runtime.import_tensorflow_quietly()
    runtime.configure_threads(threads, 1)
    import keras
    import tensorflow as tf

    import visionfw

    runtime.set_precision(precision)
    dtype = "bfloat16" if precision == "bf16" else "float32"
    out = {"matmul_gflops": matmul_gflops(tf, dtype=dtype), "cases": {}}
    for base, (name, hp, kind, shape) in cases_for(visionfw).items():
        key = precision_key(base, precision)
        if only and base not in only and key not in only:
            continue
        for jit in [p == "xla" for p in ("graph", "xla") if p in paths]:
            try:
                ms, flops = time_case(name, hp, kind, shape, runs, jit, tf, visionfw, keras)
            except Exception as exc:  # a path that does not compile is reported, not fatal
                out["cases"].setdefault(key, {})["xla" if jit else "graph"] = {
                    "error": str(exc).splitlines()[0][:200]}
                continue
            if ms is None:
                continue
            out["cases"].setdefault(key, {})["xla" if jit else "graph"] = {
                "ms": ms, "gflop": flops / 1e9,
                "gflops_per_s": flops / 1e9 / (ms * 1e-3) if ms else 0.0}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run_worker(onednn, threads, runs, only, precision="fp32", paths=("graph", "xla")):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--runs", str(runs),
           "--precision", precision, *[a for p in paths for a in ("--path", p)]]
    for key in only:
        cmd += ["--only", key]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"worker (oneDNN={onednn}) failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def first_step_commands(folder):
    """``(name, train.py arguments)`` of the tiny runs timed to their first step, in an order
    where each finds what it needs (ikc an SFTMD, dan-usrnet a USRNet) from an earlier one;
    ``ikc_zoo`` is the zoo's IKC command (Predictor and Corrector nf 32, the zoo SFTMD)."""
    tiny = ["--steps", "1", "--batch-size", "4", "--val-every", "1", "--threads", "2"]
    run = lambda name: ["--out", str(folder / name)]                      # noqa: E731
    return [
        ("sftmd", ["sftmd", "--param", "nb=2", "--param", "nf=8", "--scale", "4",
                   "--patch-size", "32", *tiny, *run("sftmd")]),
        ("ikc", ["ikc", "--param", "nf=8", "--scale", "4", "--sftmd",
                 str(folder / "sftmd" / "best.weights.h5"), "--patch-size", "32", *tiny,
                 *run("ikc")]),
        ("usrnet", ["usrnet", "--param", "iterations=2", "--param", "nc=8", "--param", "nb=1",
                    "--param", "levels=3", "--param", "hidden=8", "--scale", "2",
                    "--patch-size", "64", *tiny, *run("usrnet")]),
        ("kenet", ["kenet", "--param", "nf=8", "--param", "fc=16", "--scale", "2",
                   "--patch-size", "32", *tiny, *run("kenet")]),
        ("dan", ["dan", "--param", "nb=2", "--param", "nf=8", "--scale", "2",
                 "--recipe-param", "estimator_nf=8", "--recipe-param", "estimator_nb=1",
                 "--patch-size", "32", *tiny, *run("dan")]),
        ("dan-usrnet", ["dan-usrnet", "--param", "nf=8", "--param", "nb=1", "--scale", "2",
                        "--usrnet", str(folder / "usrnet" / "best.weights.h5"),
                        "--patch-size", "64", *tiny, *run("dan-usrnet")]),
        ("ikc_zoo", ["ikc", "--param", "nf=32", "--scale", "4", "--sftmd",
                     str(ROOT / "zoo" / "sftmd_nb8_nf32_x4.weights.h5"), "--patch-size", "96",
                     "--steps", "1", "--batch-size", "16", "--val-every", "1", "--threads", "2",
                     *run("ikc_zoo")]),
    ]


def time_first_steps(names=None):
    """``{name: seconds}`` from train.py's own report of its first finished step."""
    import re
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in first_step_commands(pathlib.Path(tmp)):
            if names and name not in names:
                continue
            r = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT,
                               capture_output=True, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
            m = re.search(r"first step (\d+(?:\.\d+)?) s after start", r.stdout + r.stderr)
            if r.returncode != 0 or not m:
                tail = (r.stderr or r.stdout).strip().splitlines()[-1:]
                out[name] = {"error": tail[0][:200] if tail else f"exit {r.returncode}"}
            else:
                out[name] = float(m.group(1))
    return out


@click.command()
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--runs", type=int, default=10, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.option("--torch-python", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A Python with torch, to run the reference script in the same session.")
@click.option("--only", multiple=True, help="Time only these cases (repeatable).")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(["fp32", "bf16"]),
              help="Precisions to time (repeatable; default: both).")
@click.option("--rounds", type=int, default=2, show_default=True,
              help="Interleaved rounds (visionfw, then torch, then again); each side keeps "
                   "its best, and every round's ratios are reported.")
@click.option("--first-step", "first_step", multiple=True,
              help="Also time train.py to its first step: 'all' or recipe names (sftmd, ikc, "
                   "usrnet, kenet, dan, dan-usrnet, ikc_zoo).")
@click.option("--onednn", type=click.Choice(["both", "on"]), default="both", show_default=True,
              help="fp32 with oneDNN on and off, or on only (bf16 always runs with it on).")
@click.option("--path", "paths", multiple=True, type=click.Choice(["graph", "xla"]),
              help="Execution paths to time (repeatable; default: both).")
@click.option("--worker", is_flag=True, hidden=True)
def main(threads, runs, json_path, torch_python, only, worker_mode=None, **kw):
    """Time visionfw's models on every execution path; compare with PyTorch."""
    raise NotImplementedError  # replaced below


def _main(threads, runs, json_path, torch_python, only, precisions, worker, rounds=2,
          first_step=(), onednn="both", paths=()):
    precisions = list(precisions) or ["fp32", "bf16"]
    paths = tuple(paths) or ("graph", "xla")
    if worker:
        return globals()["worker"](threads, runs, only, precisions[0], paths)
    import keras
    import tensorflow as tf

    from visionfw.runtime import fast_bf16

    result = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "tensorflow": tf.__version__,
                          "keras": keras.__version__, "threads": threads,
                          "fast_bf16": fast_bf16(), "date": time.strftime("%Y-%m-%d")},
              "timed": {"onednn": onednn, "paths": list(paths), "runs": runs, "rounds": rounds},
              "cases": {}, "rounds": []}
    # fp32 on both oneDNN settings; bf16 only with oneDNN (TensorFlow's own kernels emulate it)
    both = onednn == "both"
    settings = [(p, flag) for p in precisions
                for flag in (("0", "1") if p == "fp32" and both else ("1",))]
    for _ in range(max(1, rounds)):
        ours = {s: run_worker(s[1], threads, runs, only, s[0], paths) for s in settings}
        theirs = _torch_times(torch_python, threads, runs, precisions) if torch_python else None
        result["rounds"].append({"visionfw": ours, "torch": theirs})
    _merge_rounds(result, precisions)
    for rnd in result["rounds"]:             # JSON keys: "fp32, onednn=1"
        rnd["visionfw"] = {f"{p}, onednn={f}": v for (p, f), v in rnd["visionfw"].items()}
    if first_step:
        names = None if "all" in first_step else set(first_step)
        result["first_step_s"] = time_first_steps(names)
    print(_table(result))
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(result, indent=1) + "\n")


def _torch_times(torch_python, threads, runs, precisions):
    """The reference's keys and the IKC loop's, from one run of each torch script, or
    ``{"error": ...}``."""
    times = {}
    for script in (TORCH_REFERENCE, TORCH_IKC_LOOP):
        cmd = [torch_python, str(script), "--threads", str(threads), "--runs", str(runs)]
        if "bf16" in precisions:
            cmd.append("--bf16")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return {"error": f"{script.name}: " + " ".join(r.stderr.strip().splitlines()[-1:])}
        times.update(json.loads(r.stdout))
    return times


def _merge_rounds(result, precisions):
    """Every path of every case from every round, each side's best time per key, and the
    ratios torch / visionfw of each round and of the two bests."""
    by_round, bests = [], {}
    for n, rnd in enumerate(result["rounds"]):
        mine = {}
        for (precision, flag), r in rnd["visionfw"].items():
            key = f"matmul_{precision}_gflops"
            result[key] = max(result.get(key, 0.0), r["matmul_gflops"])
            for case, paths in r["cases"].items():
                for path, m in paths.items():
                    label = f"{path}, oneDNN {'on' if flag == '1' else 'off'}, round {n + 1}"
                    result["cases"].setdefault(case, {})[label] = dict(m, precision=precision)
                    if "ms" in m:
                        mine[case] = min(mine.get(case, float("inf")), m["ms"])
        by_round.append(mine)
        for case, ms in mine.items():
            bests[case] = min(bests.get(case, float("inf")), ms)
        result.setdefault("peak_rss_mib", {}).update(
            {f"{p}, onednn={f}": round(v["peak_rss_mib"], 1) for (p, f), v in
             rnd["visionfw"].items()})
    result["matmul_gflops"] = result.get("matmul_fp32_gflops",
                                         result[f"matmul_{precisions[0]}_gflops"])
    for case, paths in result["cases"].items():
        timed = {p: m for p, m in paths.items() if "ms" in m}
        if timed:
            best = min(timed, key=lambda p: timed[p]["ms"])
            result[case] = round(timed[best]["ms"], 2)
            paths["best"] = best
            rate = result[f"matmul_{timed[best]['precision']}_gflops"]
            paths["fraction_of_matmul"] = timed[best]["gflops_per_s"] / rate
    if "bf16" in precisions and not result["machine"]["fast_bf16"]:
        result["note"] = ("this CPU has no AMX-BF16 or AVX512-BF16: bf16 runs emulated, "
                          "expect it slower than fp32")
    torch_rounds = [rnd["torch"] for rnd in result["rounds"] if rnd["torch"]]
    errors = [t["error"] for t in torch_rounds if "error" in t]
    if errors:
        result["torch_error"] = errors[0]
    torch_rounds = [t for t in torch_rounds if "error" not in t]
    if not torch_rounds:
        return
    ref = {k: min(t[k] for t in torch_rounds if k in t) for k in torch_rounds[0]
           if k.endswith("_ms")}
    result["torch"] = dict(torch_rounds[0], **ref)
    result["ratios"] = {k: round(ref[k] / bests[k], 3) for k in ref if k in bests}
    result["ratios_by_round"] = [
        {k: round(t[k] / mine[k], 3) for k in t if k.endswith("_ms") and k in mine}
        for t, mine in zip(torch_rounds, by_round)]


def _table(result):
    rates = "; ".join(f"matmul {k.split('_')[1]}: {v:.1f} GFLOP/s" for k, v in result.items()
                      if k.startswith("matmul_") and k != "matmul_gflops")
    lines = [f"{rates}; fast bf16 on this CPU: {result['machine']['fast_bf16']}; peak RSS "
             f"{result['peak_rss_mib']}"] + ([result["note"]] if "note" in result else []) + [""]
    lines.append(f"{'case':<34} {'path':<24} {'ms':>9} {'GFLOP/s':>8} {'of matmul':>9}")
    for key, paths in result["cases"].items():
        for path, m in paths.items():
            if path in ("best", "fraction_of_matmul"):
                continue
            if "ms" not in m:
                lines.append(f"{key:<34} {path:<24} {'failed':>9}  {m['error'][:40]}")
                continue
            mark = " *" if paths.get("best") == path else ""
            rate = result[f"matmul_{m.get('precision', 'fp32')}_gflops"]
            lines.append(f"{key:<34} {path:<24} {m['ms']:9.1f} {m['gflops_per_s']:8.1f} "
                         f"{m['gflops_per_s'] / rate:9.0%}{mark}")
    if "ratios" in result:
        lines.append("")
        lines.append(f"{'torch / visionfw (best of each side)':<40} {'torch ms':>9} "
                     f"{'ours ms':>9} {'ratio':>6}  by round")
        for k, v in result["ratios"].items():
            each = " ".join(f"{r.get(k, float('nan')):.2f}" for r in result["ratios_by_round"])
            lines.append(f"{k:<40} {result['torch'][k]:9.1f} {result[k]:9.1f} {v:6.2f}  {each}")
    if "torch_error" in result:
        lines.append(f"torch reference failed: {result['torch_error']}")
    for name, v in result.get("first_step_s", {}).items():
        lines.append(f"first_step_s {name}: " + (f"{v:.1f}" if isinstance(v, float) else
                                                 f"failed ({v['error']})"))
    return "\n".join(lines)


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


main.callback = _main

if __name__ == "__main__":
    main()
