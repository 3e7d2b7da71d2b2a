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


@keras.saving.register_keras_serializable(package="visionfw")
class PerTrainingStep(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule of the training step for an optimiser updated ``updates`` times per step
    (IKC's Corrector: once per correction step): the rate at update ``i`` is the wrapped
    schedule's at step ``i // updates``, so every network follows the run's schedule.

    Args:
        schedule: the schedule of training steps.
        updates: optimiser updates per training step.
    """

    def __init__(self, schedule, updates):
        self.schedule = schedule
        self.updates = int(updates)

    def __call__(self, step):
        import tensorflow as tf

        return self.schedule(tf.math.floordiv(step, self.updates))

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "updates": self.updates}

    @classmethod
    def from_config(cls, config):
        return cls(keras.optimizers.schedules.deserialize(config["schedule"]),
                   config["updates"])


def per_training_step(schedule, updates):
    """``schedule`` for an optimiser updated ``updates`` times per training step."""
    if updates == 1 or not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule
    return PerTrainingStep(schedule, updates)
