"""The ``tf.data`` pipeline: random HR patches, 8-fold flips and rotations, LR on the fly.

Patch ``k`` of a run (``k = step * batch_size + position in the batch``) is a function of
``(seed, k)`` alone: which image, where in it, which of the 8 flips/rotations, and the seed
of the degradation all come from stateless random ops seeded with ``(seed, k)``. So the
batch of step ``s`` does not depend on how the run got there (resumed or not), nor on how
the batch is split between replicas or workers.

Each patch comes from an image drawn uniformly (as one epoch of the papers' loaders visits
every image once, whatever its size), at a crop position drawn uniformly within it; images
smaller than the patch are left out, by name.

A batch is a dict: ``lr``, ``hr``, ``scale`` and the labels of the degradation that made the
LR (``kernel`` (k, k) for a blur, ``noise_sigma`` on the 0-255 scale -- 0 without a noise op
--, ``jpeg_quality``, whatever an op records). With several ``scales``, each step draws its
scale from ``(seed, step)``; all patches of a step share it. A second stream
(:class:`UnpairedPatches`, :class:`PairedPatches`) adds its own keys to every batch.
"""
import numpy as np
import tensorflow as tf

from visionfw.data import DataError
from visionfw.data.images import warn

# stream ids folded into (seed, k): one stream per random choice
_IMAGE, _POSITION, _FLIP, _DEGRADE = 0, 1, 2, 3
_STREAMS = 4
# tags of the random streams added later (the per-step scale, second streams), kept apart
# from the ones above so that the patches of existing runs stay what they were
_SCALE_TAG, _UNPAIRED_TAG, _PAIRED_TAG = 101, 102, 103


def tagged_seed(seed, tag, k, stream=0):
    """A stateless seed for stream ``stream`` of item ``k`` of the random source ``tag``."""
    base = tf.random.experimental.stateless_fold_in(
        tf.constant([seed, tag], tf.int64), tf.cast(k, tf.int64))
    return tf.random.experimental.stateless_fold_in(base, tf.constant(stream, tf.int64))


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


def draw_crop(seeds, usable, counts, nx):
    """``(image, top, left)`` of a crop: an image drawn uniformly among ``usable`` ones, then
    a position uniformly among its ``counts[i]`` positions (``nx[i]`` per row).

    ``seeds`` is ``(image seed, position seed)``; the index arrays are NumPy int64.
    """
    pick = tf.random.stateless_uniform([], seeds[0], minval=0, maxval=len(usable),
                                       dtype=tf.int64)
    i = tf.gather(tf.constant(usable), pick)
    u = tf.random.stateless_uniform([], seeds[1], minval=0,
                                    maxval=tf.gather(tf.constant(counts), i), dtype=tf.int64)
    row = tf.gather(tf.constant(nx), i)
    return i, u // row, u % row


def augment8(image, code):
    """One of the 8 flips/rotations of a square ``(H, W, C)`` image, ``code`` in 0..7."""
    image = tf.image.rot90(image, k=tf.cast(code % 4, tf.int32))
    return tf.cond(code >= 4, lambda: tf.image.flip_left_right(image), lambda: image)


class PatchPipeline:
    """Batches of named float32 patches in [0, 1] from an :class:`ImageSet` (see the module
    docstring for the keys).

    Args:
        images: the :class:`~visionfw.data.images.ImageSet`.
        scale: the SR factor, or a list of factors drawn per step; ``patch_size`` must be a
            multiple of each. LR patches are ``patch_size // scale``.
        patch_size: HR patch side.
        batch_size: patches per step, over all replicas.
        degradation: a protocol name or spec (see :func:`training_degradation`).
        seed: the run's seed.
        augment: apply the 8 flips/rotations.
        extra: a second stream whose ``sample(k)`` adds keys to patch ``k``.
    """

    def __init__(self, images, scale, patch_size, batch_size, degradation="bicubic", seed=0,
                 augment=True, on_skip=warn, extra=None):
        scales = [int(s) for s in (scale if isinstance(scale, (list, tuple)) else [scale])]
        if not scales:
            raise DataError("no scale given")
        for s in scales:
            if patch_size < s or patch_size % s:
                raise DataError(f"--patch-size {patch_size} must be a multiple of --scale {s}")
        if batch_size < 1:
            raise DataError(f"--batch-size must be positive, got {batch_size}")
        self.images = images
        self.scales = scales
        self.scale = scales[0]
        self.patch_size = int(patch_size)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.extra = extra
        self.degradations = [training_degradation(degradation, s, self.seed) for s in scales]
        self.degradation = self.degradations[0]
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
        self._spec = self._element_spec()

    def _element_spec(self):
        """``{key: tf.TensorSpec}`` of one patch, from a trace of :meth:`finish`."""
        hr = tf.TensorSpec((self.patch_size, self.patch_size, 3), tf.uint8)
        k = tf.TensorSpec((), tf.int64)
        fn = tf.function(self._finish_all, autograph=False)
        out = fn.get_concrete_function(hr, k).structured_outputs
        return {key: tf.TensorSpec(t.shape, t.dtype) for key, t in out.items()}

    def keys(self):
        """The keys of every batch."""
        keys = list(self._spec)
        if self.extra is not None:
            keys += list(self.extra.keys())
        return keys

    def _seed(self, k, stream):
        return tf.stack([tf.constant(self.seed, tf.int64), k * _STREAMS + stream])

    def hr_patch(self, k):
        """The ``uint8`` HR patch ``k`` (crop only, before flips): an image drawn uniformly
        among those large enough, then a crop position drawn uniformly within it."""
        k = tf.cast(k, tf.int64)
        i, top, left = draw_crop((self._seed(k, _IMAGE), self._seed(k, _POSITION)),
                                 self._usable, self._counts, self._nx)
        return self.images.crop(i, top, left, self.patch_size)

    def scale_of(self, k):
        """The scale index of patch ``k``: drawn per step from ``(seed, step)``."""
        if len(self.scales) == 1:
            return tf.constant(0, tf.int64)
        step = tf.cast(k, tf.int64) // self.batch_size
        return tf.random.stateless_uniform([], tagged_seed(self.seed, _SCALE_TAG, step),
                                           minval=0,
                                           maxval=len(self.scales), dtype=tf.int64)

    def _degrade(self, hr, k, index):
        """LR and labels of HR patch ``k`` at scale number ``index`` (a Python int)."""
        scale = self.scales[index]
        lr, labels = self.degradations[index].degrade(hr, scale, seed=self._seed(k, _DEGRADE))
        lr_size = self.patch_size // scale
        out = {"lr": tf.ensure_shape(tf.cast(lr, tf.float32), (lr_size, lr_size, 3)),
               "scale": tf.constant(float(scale), tf.float32)}
        for key, value in labels.items():
            out[key] = tf.cast(value, tf.float32) if value.dtype == tf.float64 else value
        out.setdefault("noise_sigma", tf.constant(0.0, tf.float32))
        return out

    def _finish_all(self, hr, k):
        """Flip/rotate the ``uint8`` HR patch ``k`` and make its LR and labels."""
        k = tf.cast(k, tf.int64)
        hr = tf.cast(hr, tf.float32) / 255.0
        if self.augment:
            code = tf.random.stateless_uniform([], self._seed(k, _FLIP), minval=0, maxval=8,
                                               dtype=tf.int64)
            hr = augment8(hr, code)
        if len(self.scales) == 1:
            out = self._degrade(hr, k, 0)
        else:
            branches = [lambda i=i: self._degrade(hr, k, i) for i in range(len(self.scales))]
            out = tf.switch_case(tf.cast(self.scale_of(k), tf.int32), branches)
            out["lr"].set_shape((None, None, 3))
        out["hr"] = hr
        return out

    def finish(self, hr, k):
        """Patch ``k`` from its ``uint8`` HR crop: the dict of the module docstring."""
        out = self._finish_all(hr, k)
        if self.extra is not None:
            out.update(self.extra.sample(k))
        return out

    def sample(self, k):
        """Training patch ``k``: a dict of float32 tensors (``lr``, ``hr``, labels)."""
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
        """A batch made from chosen crops ``(N, 3)`` = (image, top, left): a dict.

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
        spec = dict(self._spec)
        if self.extra is not None:
            spec.update(self.extra.spec())
        return tf.map_fn(one, (positions, tf.range(n)), fn_output_signature=spec)


class UnpairedPatches:
    """A second stream of random patches from other images, under one key (e.g. real LR
    images without ground truth, for methods that learn a degradation from them).

    Patch ``k`` is a function of ``(seed, k)`` like the main stream's, drawn from its own
    random streams.

    Args:
        images: an :class:`~visionfw.data.images.ImageSet`.
        patch_size: patch side.
        seed: the run's seed.
        key: the batch key (default ``'real_lr'``).
        augment: apply the 8 flips/rotations.
    """

    def __init__(self, images, patch_size, seed=0, key="real_lr", augment=True, on_skip=warn):
        self.images = images
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self.key = key
        self.augment = augment
        h, w = images.shapes[:, 0], images.shapes[:, 1]
        for name, a, b in zip(images.names, h, w):
            if a < patch_size or b < patch_size:
                on_skip(f"{name}: {b}x{a} is smaller than the {patch_size}x{patch_size} patch of "
                        f"the {key} stream; left out")
        ny = np.maximum(h - patch_size + 1, 0)
        nx = np.maximum(w - patch_size + 1, 0)
        self._counts = (ny * nx).astype(np.int64)
        self._usable = np.flatnonzero(self._counts).astype(np.int64)
        if len(self._usable) == 0:
            raise DataError(f"no {key} image is at least {patch_size}x{patch_size}")
        self._nx = nx.astype(np.int64)

    def _seed(self, k, stream):
        return tagged_seed(self.seed, _UNPAIRED_TAG, k, stream)

    def keys(self):
        return [self.key]

    def spec(self):
        return {self.key: tf.TensorSpec((self.patch_size, self.patch_size, 3), tf.float32)}

    def sample(self, k):
        k = tf.cast(k, tf.int64)
        i, top, left = draw_crop((self._seed(k, _IMAGE), self._seed(k, _POSITION)),
                                 self._usable, self._counts, self._nx)
        patch = tf.cast(self.images.crop(i, top, left, self.patch_size), tf.float32) / 255.0
        if self.augment:
            code = tf.random.stateless_uniform([], self._seed(k, _FLIP), minval=0, maxval=8,
                                               dtype=tf.int64)
            patch = augment8(patch, code)
        return {self.key: tf.ensure_shape(patch, (self.patch_size, self.patch_size, 3))}


class PairedPatches:
    """A second stream of aligned patches from LQ/HQ image pairs (same names, HQ ``scale``
    times larger), under the keys ``lq`` and ``hq``: real pairs rather than made ones.

    Args:
        lq, hq: :class:`~visionfw.data.images.ImageSet` objects, paired by name.
        scale: the HQ/LQ size ratio.
        patch_size: the HQ patch side (a multiple of ``scale``).
        seed: the run's seed.
    """

    def __init__(self, lq, hq, scale, patch_size, seed=0, augment=True):
        if patch_size % scale:
            raise DataError(f"paired stream: patch size {patch_size} is not a multiple of "
                            f"scale {scale}")
        index = {n: i for i, n in enumerate(hq.names)}
        missing = [n for n in lq.names if n not in index]
        if missing:
            raise DataError(f"paired stream: LQ image(s) {missing[:3]} have no HQ image of the "
                            "same name")
        self.lq, self.hq, self.scale = lq, hq, int(scale)
        self.patch_size, self.seed, self.augment = int(patch_size), int(seed), augment
        self._hq_index = np.array([index[n] for n in lq.names], np.int64)
        lq_size = patch_size // scale
        rows, cols = [], []
        for name, (h, w), j in zip(lq.names, lq.shapes[:, :2], self._hq_index):
            hh, hw = hq.shapes[j][:2]
            if (hh, hw) != (h * scale, w * scale):
                raise DataError(f"paired stream: {name} is {w}x{h} in LQ and {hw}x{hh} in HQ, "
                                f"not x{scale}")
            rows.append(max(h - lq_size + 1, 0))
            cols.append(max(w - lq_size + 1, 0))
        self._nx = np.array(cols, np.int64)
        self._counts = np.array(rows, np.int64) * self._nx
        self._usable = np.flatnonzero(self._counts).astype(np.int64)
        if len(self._usable) == 0:
            raise DataError(f"paired stream: no LQ image is at least {lq_size}x{lq_size}")

    def _seed(self, k, stream):
        return tagged_seed(self.seed, _PAIRED_TAG, k, stream)

    def keys(self):
        return ["lq", "hq"]

    def spec(self):
        p, q = self.patch_size, self.patch_size // self.scale
        return {"lq": tf.TensorSpec((q, q, 3), tf.float32),
                "hq": tf.TensorSpec((p, p, 3), tf.float32)}

    def sample(self, k):
        k = tf.cast(k, tf.int64)
        s, q = self.scale, self.patch_size // self.scale
        i, top, left = draw_crop((self._seed(k, _IMAGE), self._seed(k, _POSITION)),
                                 self._usable, self._counts, self._nx)
        lq = tf.cast(self.lq.crop(i, top, left, q), tf.float32) / 255.0
        j = tf.gather(tf.constant(self._hq_index), i)
        hq = tf.cast(self.hq.crop(j, top * s, left * s, self.patch_size), tf.float32) / 255.0
        if self.augment:
            code = tf.random.stateless_uniform([], self._seed(k, _FLIP), minval=0, maxval=8,
                                               dtype=tf.int64)
            lq, hq = augment8(lq, code), augment8(hq, code)
        return {"lq": tf.ensure_shape(lq, (q, q, 3)),
                "hq": tf.ensure_shape(hq, (self.patch_size, self.patch_size, 3))}
