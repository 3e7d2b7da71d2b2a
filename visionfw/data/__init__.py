"""Training data: images decoded once and cached, random HR patches, LR made on the fly.

::

    from visionfw.data import ImageSet, PatchPipeline, embedded
    images = ImageSet.from_folders(["T91", "BSD200"])            # decoded once, in memory
    pipe = PatchPipeline(images, scale=4, patch_size=96, batch_size=16, seed=0)
    for batch in pipe.dataset(start_step=0, end_step=1000):      # float32 in [0, 1]
        batch["lr"], batch["hr"], batch["scale"]     # and the degradation's labels (kernel, ...)

The batch of step ``s`` is a function of ``(seed, s)`` alone, so an interrupted run that
resumes at step ``k`` sees the same patches as one that never stopped. Submodules:
:mod:`.images` (loading, the memory and HDF5 caches), :mod:`.pipeline` (the ``tf.data``
pipeline), :mod:`.sampler` (the PSNR-gain patch sampler), :mod:`.embedded` (the colour
photographs that ship inside scikit-image).

Only NumPy is imported with the package; TensorFlow loads with the pipeline.
"""

from visionfw.errors import VisionfwError


class DataError(VisionfwError, ValueError):
    """Training or validation data that cannot be used; the message is one line."""


from visionfw._lazy import lazy_exports  # noqa: E402

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


__getattr__, __dir__ = lazy_exports(__name__, _API, ("embedded",))
