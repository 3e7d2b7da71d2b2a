"""Training data: images decoded once and cached, random HR patches, LR made on the fly.

::

    from visionfw.data import ImageSet, PatchPipeline, embedded
    images = ImageSet.from_folders(["T91", "BSD200"])            # decoded once, in memory
    pipe = PatchPipeline(images, scale=4, patch_size=96, batch_size=16, seed=0)
    for lr, hr in pipe.dataset(start_step=0, end_step=1000):     # float32 in [0, 1]
        ...

The batch of step ``s`` is a function of ``(seed, s)`` alone, so an interrupted run that
resumes at step ``k`` sees the same patches as one that never stopped. Submodules:
:mod:`.images` (loading, the memory and HDF5 caches), :mod:`.pipeline` (the ``tf.data``
pipeline), :mod:`.sampler` (the PSNR-gain patch sampler), :mod:`.embedded` (the colour
photographs that ship inside scikit-image).

Only NumPy is imported with the package; TensorFlow loads with the pipeline.
"""
import importlib

from visionfw.errors import VisionfwError


class DataError(VisionfwError, ValueError):
    """Training or validation data that cannot be used; the message is one line."""


_API = {
    "ImageSet": "images",
    "load_images": "images",
    "parse_cache": "images",
    "PatchPipeline": "pipeline",
    "PsnrGainSampler": "sampler",
    "psnr_gain_probabilities": "sampler",
    "grid_patches": "sampler",
    "train_images": "embedded",
    "val_images": "embedded",
}

__all__ = sorted(["DataError", "embedded", *_API])


def __getattr__(name):
    if name == "embedded":
        return importlib.import_module(f"{__name__}.embedded")
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'visionfw.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
