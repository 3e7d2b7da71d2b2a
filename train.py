#!/usr/bin/env python3
"""Train a super-resolution model, or rank training sets.

    python train.py srresnet --scale 2 --steps 2000 --out runs/x2
    python train.py srresnet --summary --param B=8
    python train.py rank-datasets --dataset A --dataset B --eval-dataset Set5
"""
from visionfw.cli.train import main, run

if __name__ == "__main__":
    run()
