#!/usr/bin/env python3
"""Evaluate a super-resolution model with the papers' protocol (PSNR/SSIM on Y, bicubic beside).

    python test.py bicubic --dataset Set5 --scale 4 --data-root ../shared/data/benchmark
    python test.py --weights runs/x/best.weights.h5 --dataset Set5 --json report.json
"""
from visionfw.cli.evaluate import main

if __name__ == "__main__":
    main()
