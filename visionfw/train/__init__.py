"""Training: the trainer that runs any recipe, the run's settings, validation, distribution.

A recipe (:mod:`visionfw.recipes`) owns its networks, optimisers and step; the
:class:`~visionfw.train.trainer.Trainer` lends it services (``opt.minimize``: tape, replica
scaling, all-reduce, clipping, NaN check, apply) and owns everything around the step — EMA,
validation, progress, checkpoints and distribution. :func:`~visionfw.train.run.train` is what
``train.py MODEL`` calls. TensorFlow loads with the submodules, not with this package.
"""

from visionfw.errors import VisionfwError


class TrainError(VisionfwError, RuntimeError):
    """A training run that cannot start or continue; the message is one line."""


from visionfw._lazy import lazy_exports  # noqa: E402

_API = {
    "Recipe": "visionfw.recipes.base",
    "StepServices": "visionfw.recipes.base",
    "register_recipe": "visionfw.recipes.base",
    "get_recipe": "visionfw.recipes.base",
    "SRRecipe": "visionfw.recipes.sr",
    "Trainer": "trainer",
    "TrainConfig": "config",
    "train": "run",
    "ValidationSet": "validate",
    "make_strategy": "distribute",
    "rank_datasets": "rank",
}

__all__ = sorted(["TrainError", *_API])


__getattr__, __dir__ = lazy_exports(__name__, _API)
