"""The ``tf.data`` pipeline: random HR patches, 8-fold flips and rotations, LR on the fly.

Patch ``k`` of a run (``k = step * batch_size + position in the batch``) is a function of
``(seed, k)`` alone: which image, where in it, which of the 8 flips/rotations, and the seed
of the degradation all come from stateless random ops seeded with ``(seed, k)``. So the
batch of step ``s`` does not depend on how the run got there (resumed or not), nor on how
the batch is split between replicas or workers.

Each patch comes from an image drawn uniformly (as one epoch of the papers' loaders visits
every image once, whatever its size), at a crop position drawn uniformly within it; images
smaller than the patch are left out, by name.
"""
import numpy as np
import tensorflow as tf

from visionfw.data import DataError
from visionfw.data.images import warn

# stream ids folded into (seed, k): one stream per random choice
_IMAGE, _POSITION, _FLIP, _DEGRADE = 0, 1, 2, 3
_STREAMS = 4


def training_degradation(spec, scale, seed):
    """The degradation that makes training LR patches: a protocol name or a spec string.

    ``'bicubic'`` is MATLAB bicubic down-sampling rounded to 8 bits, like stored LR images.
    A protocol with several variants (``gaussian8``, ``usrnet12``) is refused: train on a
    spec with ranges instead (``gaussian(sigma=0.2~4)+bicubic``).
    """
    from visionfw.degradation import get_protocol

    variants = get_protocol(spec, scale, seed=seed)
    if len(variants) != 1:
        raise DataError(f"--degradation {spec}: this protocol has {len(variants)} variants; "
                        "training takes one spec, e.g. 'gaussian(sigma=0.2~4)+bicubic'")
    return variants[0][1]


def augment8(image, code):
    """One of the 8 flips/rotations of a square ``(H, W, C)`` image, ``code`` in 0..7."""
    image = tf.image.rot90(image, k=tf.cast(code % 4, tf.int32))
    return tf.cond(code >= 4, lambda: tf.image.flip_left_right(image), lambda: image)


class PatchPipeline:
    """Batches of ``(lr, hr)`` float32 patches in [0, 1] from an :class:`ImageSet`.

    Args:
        images: the :class:`~visionfw.data.images.ImageSet`.
        scale: the SR factor; ``patch_size`` must be a multiple of it.
        patch_size: HR patch side; LR patches are ``patch_size // scale``.
        batch_size: patches per step, over all replicas.
        degradation: a protocol name or spec (see :func:`training_degradation`).
        seed: the run's seed.
        augment: apply the 8 flips/rotations.
    """

    def __init__(self, images, scale, patch_size, batch_size, degradation="bicubic", seed=0,
                 augment=True, on_skip=warn):
        if patch_size < scale or patch_size % scale:
            raise DataError(f"--patch-size {patch_size} must be a multiple of --scale {scale}")
        if batch_size < 1:
            raise DataError(f"--batch-size must be positive, got {batch_size}")
        self.images = images
        self.scale = int(scale)
        self.patch_size = int(patch_size)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.degradation = training_degradation(degradation, self.scale, self.seed)
        h, w = images.shapes[:, 0], images.shapes[:, 1]
        ny = np.maximum(h - patch_size + 1, 0)
        nx = np.maximum(w - patch_size + 1, 0)
        for name, a, b in zip(images.names, h, w):
            if a < patch_size or b < patch_size:
                on_skip(f"{name}: {b}x{a} is smaller than the {patch_size}x{patch_size} patch; "
                        "left out")
        counts = ny * nx
        self._usable = np.flatnonzero(counts).astype(np.int64)
        if len(self._usable) == 0:
            raise DataError(f"no training image is at least {patch_size}x{patch_size}")
        self._nx = nx.astype(np.int64)
        self._counts = counts.astype(np.int64)

    def _seed(self, k, stream):
        return tf.stack([tf.constant(self.seed, tf.int64), k * _STREAMS + stream])

    def hr_patch(self, k):
        """The ``uint8`` HR patch ``k`` (crop only, before flips): an image drawn uniformly
        among those large enough, then a crop position drawn uniformly within it."""
        k = tf.cast(k, tf.int64)
        pick = tf.random.stateless_uniform([], self._seed(k, _IMAGE), minval=0,
                                           maxval=len(self._usable), dtype=tf.int64)
        i = tf.gather(tf.constant(self._usable), pick)
        u = tf.random.stateless_uniform([], self._seed(k, _POSITION), minval=0,
                                        maxval=tf.gather(tf.constant(self._counts), i),
                                        dtype=tf.int64)
        nx = tf.gather(tf.constant(self._nx), i)
        return self.images.crop(i, u // nx, u % nx, self.patch_size)

    def finish(self, hr, k):
        """Flip/rotate the ``uint8`` HR patch ``k`` and make its LR: ``(lr, hr)`` float32."""
        k = tf.cast(k, tf.int64)
        hr = tf.cast(hr, tf.float32) / 255.0
        if self.augment:
            code = tf.random.stateless_uniform([], self._seed(k, _FLIP), minval=0, maxval=8,
                                               dtype=tf.int64)
            hr = augment8(hr, code)
        lr, _ = self.degradation.degrade(hr, self.scale, seed=self._seed(k, _DEGRADE))
        lr_size = self.patch_size // self.scale
        lr = tf.ensure_shape(tf.cast(lr, tf.float32), (lr_size, lr_size, 3))
        return lr, hr

    def sample(self, k):
        """Training pair ``k``: ``(lr, hr)`` float32."""
        return self.finish(self.hr_patch(k), k)

    def dataset(self, start_step, end_step, replicas=1, first_replica=0, local_replicas=1):
        """Per-replica batches for steps ``start_step .. end_step - 1``.

        With several replicas, each step's ``batch_size`` patches are split in order:
        replica ``r`` gets positions ``r * b .. (r + 1) * b - 1`` (``b = batch_size //
        replicas``). This input pipeline feeds ``local_replicas`` replicas, starting with
        global replica ``first_replica``, taking turns per step as ``tf.distribute`` expects.
        """
        if self.batch_size % replicas:
            raise DataError(f"--batch-size {self.batch_size} must be a multiple of the "
                            f"{replicas} replicas")
        per = self.batch_size // replicas
        group = local_replicas * per
        batch, first = self.batch_size, first_replica

        def index(t):
            step, rem = t // group, t % group
            return step * batch + (first + rem // per) * per + rem % per

        ds = tf.data.Dataset.range(start_step * group, end_step * group)
        ds = ds.map(lambda t: self.sample(index(t)), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
        ds = ds.batch(per, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options)

    def distribute(self, strategy, start_step, end_step):
        """The distributed dataset of ``strategy``: one input pipeline per worker."""

        def make(ctx):
            replicas = ctx.num_replicas_in_sync
            local = replicas // ctx.num_input_pipelines
            return self.dataset(start_step, end_step, replicas=replicas,
                                first_replica=ctx.input_pipeline_id * local,
                                local_replicas=local)

        return strategy.distribute_datasets_from_function(make)

    def batch_from_positions(self, positions, step):
        """A batch made from chosen crops ``(N, 3)`` = (image, top, left): ``(lr, hr)``.

        Used by samplers that pick patches themselves; patch ``j`` of the batch is flipped
        and degraded as patch ``k = step * batch_size + j``.
        """
        positions = tf.cast(positions, tf.int64)
        base = tf.cast(step, tf.int64) * self.batch_size

        def one(args):
            pos, j = args
            hr = self.images.crop(pos[0], pos[1], pos[2], self.patch_size)
            return self.finish(hr, base + j)

        n = tf.shape(positions, out_type=tf.int64)[0]
        lr_size = self.patch_size // self.scale
        return tf.map_fn(one, (positions, tf.range(n)), fn_output_signature=(
            tf.TensorSpec((lr_size, lr_size, 3), tf.float32),
            tf.TensorSpec((self.patch_size, self.patch_size, 3), tf.float32)))
