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
``--bf16`` when bf16 is timed) and the ratios torch_ms / visionfw_ms are printed.
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


def graph_flops(concrete):
    """Floating-point operations of the convolutions and matrix products in a traced graph."""
    flops = 0
    for op in concrete.graph.get_operations():
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


def time_data_step(shape, runs, jit, tf):
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
    return median_ms(lambda: fn(z, y, k, alpha).numpy(), runs), 0


def time_case(name, hp, kind, shape, runs, jit, tf, visionfw, keras):
    if kind == "data_step":
        return time_data_step(shape, runs, jit, tf)
    model = visionfw.build_model(name, compile=False, **hp)
    batch, h, w = shape
    x = make_inputs(model, batch, (h, w), tf, hp.get("scale"))
    if kind == "infer":
        fn = tf.function(lambda x: model(x, training=False), jit_compile=jit)
        concrete = fn.get_concrete_function(x)
        ms = median_ms(lambda: tf.nest.map_structure(lambda t: t.numpy(), fn(x)), runs)
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
    ms = median_ms(lambda: fn(x, target).numpy(), runs)
    return ms, graph_flops(concrete)


def cases_for(visionfw):
    cases = dict(MAIN_CASES)
    cases["usrnet_data_step_ms"] = ("usrnet", {}, "data_step", (1, 128, 128))
    cases["usrnet_x4_infer_ms"] = ("usrnet", {"scale": 4}, "infer", (1, 64, 64))
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


def worker(threads, runs, only, precision="fp32"):
    """One process, one oneDNN setting, one precision: every case on the graph and XLA paths."""
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
        for jit in (False, True):
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


def run_worker(onednn, threads, runs, only, precision="fp32"):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--runs", str(runs),
           "--precision", precision]
    for key in only:
        cmd += ["--only", key]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"worker (oneDNN={onednn}) failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--runs", type=int, default=10, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.option("--torch-python", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A Python with torch, to run the reference script in the same session.")
@click.option("--only", multiple=True, help="Time only these cases (repeatable).")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(["fp32", "bf16"]),
              help="Precisions to time (repeatable; default: both).")
@click.option("--worker", is_flag=True, hidden=True)
def main(threads, runs, json_path, torch_python, only, worker_mode=None, **kw):
    """Time visionfw's models on every execution path; compare with PyTorch."""
    raise NotImplementedError  # replaced below


def _main(threads, runs, json_path, torch_python, only, precisions, worker):
    precisions = list(precisions) or ["fp32", "bf16"]
    if worker:
        return globals()["worker"](threads, runs, only, precisions[0])
    import keras
    import tensorflow as tf

    from visionfw.runtime import fast_bf16

    result = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "tensorflow": tf.__version__,
                          "keras": keras.__version__, "threads": threads,
                          "fast_bf16": fast_bf16(), "date": time.strftime("%Y-%m-%d")},
              "cases": {}}
    # fp32 on both oneDNN settings; bf16 only with oneDNN (TensorFlow's own kernels emulate it)
    settings = [(p, flag) for p in precisions for flag in (("0", "1") if p == "fp32" else ("1",))]
    runs_by_setting = {s: run_worker(s[1], threads, runs, only, s[0]) for s in settings}
    result["peak_rss_mib"] = {f"{p}, onednn={f}": round(v["peak_rss_mib"], 1)
                              for (p, f), v in runs_by_setting.items()}
    for precision in precisions:
        rates = [r["matmul_gflops"] for (p, _), r in runs_by_setting.items() if p == precision]
        result[f"matmul_{precision}_gflops"] = max(rates)
    result["matmul_gflops"] = result.get("matmul_fp32_gflops", result[f"matmul_{precisions[0]}_gflops"])
    for (precision, flag), r in runs_by_setting.items():
        for key, paths in r["cases"].items():
            for path, m in paths.items():
                m = dict(m, precision=precision)
                result["cases"].setdefault(key, {})[f"{path}, oneDNN {'on' if flag == '1' else 'off'}"] = m
    for key, paths in result["cases"].items():
        timed = {p: m for p, m in paths.items() if "ms" in m}
        if timed:
            best = min(timed, key=lambda p: timed[p]["ms"])
            result[key] = round(timed[best]["ms"], 2)
            paths["best"] = best
            rate = result[f"matmul_{timed[best]['precision']}_gflops"]
            paths["fraction_of_matmul"] = timed[best]["gflops_per_s"] / rate
    if "bf16" in precisions and not result["machine"]["fast_bf16"]:
        result["note"] = ("this CPU has no AMX-BF16 or AVX512-BF16: bf16 runs emulated, "
                          "expect it slower than fp32")
    if torch_python:
        cmd = [torch_python, str(TORCH_REFERENCE), "--threads", str(threads), "--runs", str(runs)]
        if "bf16" in precisions:
            cmd.append("--bf16")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            ref = json.loads(r.stdout)
            result["torch"] = ref
            keys = [precision_key(k, p) for p in precisions for k in MAIN_CASES]
            result["ratios"] = {k: round(ref[k] / result[k], 3) for k in keys
                                if k in ref and k in result}
        else:
            result["torch_error"] = r.stderr.strip().splitlines()[-1:]
    print(_table(result))
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(result, indent=1) + "\n")


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
        for k, v in result["ratios"].items():
            lines.append(f"torch / visionfw {k}: {result['torch'][k]:.1f} / {result[k]:.1f} = "
                         f"{v:.2f}")
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
