"""The PSNR-gain patch sampler: train more often on patches the model still gets wrong.

The candidate patches are a fixed grid of HR crops over every training image, each with a
sampling probability (uniform at first). Each round (one training step):

1. ``K`` patches (the batch) are drawn without replacement, in proportion to their
   probabilities (Gumbel top-k, seeded by ``(seed, step)``).
2. The model trains on them; the PSNR gain of its output over bicubic is measured on each
   patch (from the training forward pass).
3. A ``B``-bin histogram of the ``K`` gains is built, with density ``f(j)`` and width
   ``width(j)`` of bin ``j``.
4. Drawn patch ``i``, whose gain falls in bin ``b(i)``, gets the value
   ``val(i) = sum over bins j >= b(i) of width(j) * f(j)``: the share of drawn patches that
   gained at least as much as it did. A patch that gained little keeps a value near 1; the
   best ones get the share of the top bin.
5. The drawn patches' new probabilities are their values, normalised so that together they
   keep the probability mass they had; patches not drawn keep theirs.
"""
import numpy as np
import tensorflow as tf

from visionfw.data import DataError


def grid_patches(shapes, patch_size, stride=None):
    """Candidate crops ``(M, 3)`` = (image, top, left) on a grid of step ``stride``."""
    stride = int(stride or patch_size)
    rows = []
    for i, (h, w) in enumerate(np.asarray(shapes)):
        for top in range(0, int(h) - patch_size + 1, stride):
            for left in range(0, int(w) - patch_size + 1, stride):
                rows.append((i, top, left))
    if not rows:
        raise DataError(f"no training image is at least {patch_size}x{patch_size}")
    return np.asarray(rows, dtype=np.int64)


def psnr_gain_probabilities(old, gains, bins):
    """New probabilities of the drawn patches from their PSNR gains (see the module doc).

    Args:
        old: ``(K,)`` probabilities of the drawn patches before the round.
        gains: ``(K,)`` PSNR gains over bicubic (dB) of the same patches.
        bins: number of histogram bins ``B``.

    Returns:
        ``(K,)`` float64 probabilities that sum to ``sum(old)``.
    """
    old = tf.cast(old, tf.float64)
    gains = tf.cast(gains, tf.float64)
    k = tf.cast(tf.size(gains), tf.float64)
    lo, hi = tf.reduce_min(gains), tf.reduce_max(gains)
    # Equal gains: one bin of width 1 around them, as numpy.histogram does.
    same = hi <= lo
    lo = tf.where(same, lo - 0.5, lo)
    hi = tf.where(same, hi + 0.5, hi)
    width = (hi - lo) / bins                                   # every bin is this wide
    b = tf.histogram_fixed_width_bins(gains, tf.stack([lo, hi]), nbins=bins)
    counts = tf.cast(tf.math.bincount(b, minlength=bins, maxlength=bins), tf.float64)
    density = counts / (k * width)                             # f(j): integrates to one
    mass = width * density                                     # width(j) * f(j)
    tail = tf.cumsum(mass, reverse=True)                       # sum over j >= b
    val = tf.gather(tail, b)
    return val / tf.reduce_sum(val) * tf.reduce_sum(old)


class PsnrGainSampler:
    """Sampling probabilities over grid patches, updated from PSNR gains (module doc).

    Create it inside the training strategy's scope: :attr:`probs` is a variable that goes
    into the checkpoint, so a resumed run draws what an uninterrupted run would.

    Args:
        positions: ``(M, 3)`` candidate crops from :func:`grid_patches`.
        batch_size: ``K``, patches drawn per round.
        bins: ``B``, histogram bins.
        seed: the run's seed.
    """

    def __init__(self, positions, batch_size, bins=10, seed=0):
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) < batch_size:
            raise DataError(f"the psnr-gain sampler has {len(positions)} grid patches, fewer "
                            f"than the batch of {batch_size}")
        if bins < 1:
            raise DataError(f"--sampler-bins must be positive, got {bins}")
        self.positions = tf.constant(positions)
        self.batch_size = int(batch_size)
        self.bins = int(bins)
        self.seed = int(seed)
        m = len(positions)
        self.probs = tf.Variable(np.full(m, 1.0 / m), dtype=tf.float64, trainable=False,
                                 name="sampler_probs")

    def draw(self, step):
        """Indices ``(K,)`` of the patches of round ``step``, drawn without replacement."""
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        u = tf.random.stateless_uniform(tf.shape(self.probs), seed, minval=1e-20, maxval=1.0,
                                        dtype=tf.float64)
        keys = tf.math.log(self.probs) - tf.math.log(-tf.math.log(u))
        return tf.math.top_k(keys, k=self.batch_size, sorted=True).indices

    def update(self, ids, gains):
        """Give the drawn patches ``ids`` their new probabilities from their ``gains``."""
        new = psnr_gain_probabilities(tf.gather(self.probs, ids), gains, self.bins)
        self.probs.scatter_nd_update(tf.cast(ids, tf.int64)[:, None], new)
        return new
