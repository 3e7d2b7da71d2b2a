"""Training: recipes (what to train and how one step goes) and the trainer that runs them.

A :class:`~visionfw.train.recipe.Recipe` declares its networks, their optimisers and a
``train_step(batch)`` that returns a dict of losses; :class:`~visionfw.train.trainer.Trainer`
owns everything else — the optimiser step, EMA, gradient clipping, NaN detection,
validation, progress, checkpoints and distribution. :func:`~visionfw.train.run.train` is what
``train.py MODEL`` calls. TensorFlow loads with the submodules, not with this package.
"""

from visionfw.errors import VisionfwError


class TrainError(VisionfwError, RuntimeError):
    """A training run that cannot start or continue; the message is one line."""


from visionfw._lazy import lazy_exports  # noqa: E402

_API = {
    "Recipe": "recipe",
    "Update": "recipe",
    "SRRecipe": "recipe",
    "register_recipe": "recipe",
    "recipe_for": "recipe",
    "Trainer": "trainer",
    "TrainConfig": "config",
    "train": "run",
    "ValidationSet": "validate",
    "make_strategy": "distribute",
    "rank_datasets": "rank",
}

__all__ = sorted(["TrainError", *_API])


__getattr__, __dir__ = lazy_exports(__name__, _API)
