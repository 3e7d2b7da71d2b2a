#!/usr/bin/env python3
"""Peak memory and time of tiled inference as the image grows (test.py --tile).

For each LR size (default 256, 512, 1024 pixels square) it writes a synthetic HR image of
4x that size, then runs ``test.py`` with a random-weight SRResNet x4 checkpoint and
``--tile 128 --tile-overlap 24`` in a fresh process, and reports that process's peak resident
memory and wall time. A 1024x1024 LR image gives a 4096x4096 output.

    python bench/tiled_memory.py [--sizes 256,512,1024] [--tile 128] [--json OUT]
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import click
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic(size, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / (size / 12)
    base = np.stack([np.sin(x), np.cos(y * 1.3), np.sin(x * 0.7 + y)], -1) * 0.4 + 0.5
    return (np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1) * 255).round().astype(np.uint8)


@click.command()
@click.option("--sizes", default="256,512,1024", show_default=True)
@click.option("--tile", type=int, default=128, show_default=True)
@click.option("--overlap", type=int, default=24, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(sizes, tile, overlap, json_path):
    import visionfw
    from visionfw.imageio import write_image

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        weights = tmp / "srresnet.weights.h5"
        visionfw.save_model(visionfw.build_model("srresnet", scale=4, compile=False), weights)
        for lr in (int(s) for s in sizes.split(",")):
            folder = tmp / f"big{lr}" / "HR"
            folder.mkdir(parents=True)
            write_image(folder / "image.png", synthetic(4 * lr))
            cmd = [sys.executable, "-c",
                   "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
                   "sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0]);"
                   "\ntry:\n runpy.run_path(sys.argv[0], run_name='__main__')\n"
                   "finally:\n print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF)"
                   ".ru_maxrss, file=sys.stderr)",
                   str(ROOT / "test.py"), "--weights", str(weights), "--dataset",
                   str(folder.parent), "--tile", str(tile), "--tile-overlap", str(overlap),
                   "--quiet"]
            start = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            peak = [l for l in r.stderr.splitlines() if l.startswith("PEAK_KIB")]
            if r.returncode != 0 or not peak:
                raise SystemExit(f"test.py failed at {lr}: {r.stderr.strip()[-400:]}")
            mib = int(peak[-1].split()[1]) / 1024
            rows.append({"lr": lr, "output": 4 * lr, "peak_mib": round(mib, 1),
                         "seconds": round(seconds, 1)})
            print(f"LR {lr}x{lr} -> {4 * lr}x{4 * lr}: peak {mib:,.0f} MiB, {seconds:.1f} s "
                  f"({seconds / (lr * lr) * 1e6:.1f} s per megapixel of LR)")
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
