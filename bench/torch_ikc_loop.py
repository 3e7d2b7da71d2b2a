#!/usr/bin/env python3
"""PyTorch twin of bench/speed.py's ``ikc_loop_x4_infer_ms``: IKC's whole correction loop.

The networks are the PyTorch reference's (``../shared/bench/torch_reference.py``: SFTMD, the
IKC Predictor and Corrector, parameter counts equal to visionfw's) at the zoo's sizes: the
Predictor and Corrector 32 filters, SFTMD 8 blocks of 32 filters, code length 10, x4. One
128x128 LR image: the Predictor's code, then 7 times the Corrector on the current SR image and
code, and SFTMD on the LR image and the new code -- as ``test.py ikc`` runs it. The SR image
is clipped to [0, 1] before the Corrector reads it, as visionfw does.

Run it in the same throwaway environment as the reference (``pip install torch==2.13.0
numpy``); it prints one JSON object: ``ikc_loop_x4_infer_ms`` (and ``ikc_loop_x4_infer_bf16_ms``
with --bf16), the median of the faster memory format.

Usage: python torch_ikc_loop.py [--threads 2] [--runs 10] [--bf16] [--json OUT]
"""
import argparse
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "bench"))
import torch_reference as ref  # noqa: E402

ITERATIONS = 7


def loop_case(bf16=False):
    def make(channels_last):
        torch.manual_seed(0)
        predictor = ref.IKCPredictor(filters=32).eval()
        corrector = ref.IKCCorrector(filters=32).eval()
        sftmd = ref.SFTMD(blocks=8, filters=32).eval()
        lr = torch.rand(1, 3, 128, 128)
        if channels_last:
            predictor, corrector, sftmd = (m.to(memory_format=torch.channels_last)
                                           for m in (predictor, corrector, sftmd))
            lr = lr.contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode(), ref.autocast(bf16):
                code = predictor(lr).float()
                sr = sftmd(lr, code).float().clamp(0, 1)
                for _ in range(ITERATIONS):
                    code = corrector(sr, code).float()
                    sr = sftmd(lr, code).float().clamp(0, 1)
        return run
    return make


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"torch": torch.__version__, "threads": args.threads,
           "ikc_loop_x4_infer_ms": ref.best_format(loop_case(), args.runs)}
    if args.bf16:
        out["ikc_loop_x4_infer_bf16_ms"] = ref.best_format(loop_case(True), args.runs)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
