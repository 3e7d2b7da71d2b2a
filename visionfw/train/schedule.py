"""Learning-rate schedules, as Keras schedules of the optimiser's step count."""
import keras

from visionfw.train import TrainError

SCHEDULES = ("multistep", "cosine", "constant")


def default_milestones(steps):
    """Halve the rate at 50% and 75% of the run (BasicSR's SRResNet recipe, compressed)."""
    return sorted({max(1, steps // 2), max(1, 3 * steps // 4)})


def make_schedule(kind, lr, steps, milestones=None, gamma=0.5, floor=0.01):
    """A learning rate or schedule for ``steps`` optimiser steps.

    Args:
        kind: ``'multistep'`` (times ``gamma`` at each milestone), ``'cosine'`` (cosine
            decay from ``lr`` to ``floor * lr`` at the last step) or ``'constant'``.
        lr: the initial learning rate.
        milestones: steps at which ``multistep`` decays (default: 50% and 75% of ``steps``).
    """
    if kind not in SCHEDULES:
        raise TrainError(f"--schedule {kind!r}: expected one of {', '.join(SCHEDULES)}")
    if not lr > 0:
        raise TrainError(f"--lr must be positive, got {lr}")
    if kind == "constant":
        return float(lr)
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(float(lr), decay_steps=max(1, steps),
                                                      alpha=floor)
    milestones = sorted(milestones or default_milestones(steps))
    if any(m < 1 for m in milestones) or len(set(milestones)) != len(milestones):
        raise TrainError(f"--milestones must be distinct positive steps, got {milestones}")
    values = [float(lr) * gamma ** i for i in range(len(milestones) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(milestones, values)
