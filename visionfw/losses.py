"""Registered training losses: ``fn(estimate, target, **params) -> scalar`` on float32 tensors.

Image losses (``l1``, ``mse``) compare an SR batch with its HR batch; kernel losses
(``attention``, KENet's adaptive attention loss) compare estimated ``(B, k, k)`` kernels with
the true ones. A recipe looks a loss up by name (:func:`get_loss`), so a loss registered in a
plugin (``@register_loss("name")``) is usable by every recipe that takes a loss name.
"""
from visionfw.errors import VisionfwError
from visionfw.registry import Registry


class LossError(VisionfwError, ValueError):
    """An unknown loss, or parameters a loss cannot take."""


LOSSES = Registry("loss", error=LossError, fold_case=True)
register_loss = LOSSES.decorator
get_loss = LOSSES.get
loss_names = LOSSES.names


@register_loss("l1")
def l1(estimate, target):
    """Mean absolute difference."""
    import tensorflow as tf

    return tf.reduce_mean(tf.abs(estimate - target))


@register_loss("mse")
def mse(estimate, target):
    """Mean squared difference."""
    import tensorflow as tf

    return tf.reduce_mean(tf.square(estimate - target))


def support_masked(estimate, true, threshold):
    """KENet's masked estimate ``k*_lambda``: the estimate where the true kernel exceeds
    ``threshold`` times its own maximum, the true value elsewhere (so only errors on the
    kernel's support count). ``estimate``, ``true``: ``(B, k, k)``."""
    import tensorflow as tf

    peak = tf.reduce_max(true, axis=[1, 2], keepdims=True)
    return tf.where(true > threshold * peak, estimate, true)


@register_loss("attention")
def attention(estimate, true, thresholds=(0.01, 0.1), weights=(0.01, 0.1, 1.0)):
    """KENet's adaptive attention loss on ``(B, k, k)`` kernels::

        L = rho0 |k* - k| + rho1 |k*_lambda1 - k| + rho2 |k*_lambda2 - k|

    with ``|.|`` the mean absolute difference over taps and batch, and ``k*_lambda`` the
    estimate masked to the true kernel's support above ``lambda`` times its maximum
    (:func:`support_masked`). ``thresholds`` = (lambda1, lambda2), ``weights`` = (rho0, rho1,
    rho2); the defaults are the paper's. The tighter the mask, the more the loss attends to
    the taps where the kernel's mass is.
    """
    import tensorflow as tf

    if len(weights) != len(thresholds) + 1:
        raise LossError(f"attention: {len(thresholds)} thresholds need "
                        f"{len(thresholds) + 1} weights, got {len(weights)}")
    terms = [tf.reduce_mean(tf.abs(estimate - true))]
    for t in thresholds:
        terms.append(tf.reduce_mean(tf.abs(support_masked(estimate, true, float(t)) - true)))
    return tf.add_n([float(w) * term for w, term in zip(weights, terms)])


# ---- ReDegNet's losses (train.py redegnet): feature maps are NHWC lists, degradation
# representations (Omega) are (B, D) tensors; discriminator scores are raw.

def gram_matrix(features):
    """The Gram matrix of ``(N, H, W, C)`` feature maps: ``(N, C, C)``, ``F^T F / (C H W)``
    with ``F`` the ``(H W, C)`` matrix of each image (BasicSR's ``_gram_mat``)."""
    import tensorflow as tf

    shape = tf.shape(features)
    n, c = shape[0], shape[3]
    f = tf.reshape(features, [n, -1, c])
    size = tf.cast(shape[1] * shape[2] * c, features.dtype)
    return tf.matmul(f, f, transpose_a=True) / size


def _layer_weights(weights, count):
    if weights is None:
        return (1.0,) * count
    if len(weights) != count:
        raise LossError(f"{len(weights)} layer weights for {count} feature maps")
    return tuple(float(w) for w in weights)


def perceptual(estimate_features, target_features, weights=None):
    """``sum_l w_l mean|phi_l(x) - phi_l(y)|`` over lists of feature maps (one per layer)."""
    import tensorflow as tf

    w = _layer_weights(weights, len(estimate_features))
    return tf.add_n([wl * tf.reduce_mean(tf.abs(e - t))
                     for wl, e, t in zip(w, estimate_features, target_features)])


def style(estimate_features, target_features, weights=None):
    """Gram style loss: ``sum_l w_l mean|G(phi_l(x)) - G(phi_l(y))|`` (:func:`gram_matrix`)."""
    import tensorflow as tf

    w = _layer_weights(weights, len(estimate_features))
    return tf.add_n([wl * tf.reduce_mean(tf.abs(gram_matrix(e) - gram_matrix(t)))
                     for wl, e, t in zip(w, estimate_features, target_features)])


def hinge_discriminator(real_scores, fake_scores):
    """The hinge loss of a discriminator: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``."""
    import tensorflow as tf

    return (tf.reduce_mean(tf.nn.relu(1.0 - real_scores))
            + tf.reduce_mean(tf.nn.relu(1.0 + fake_scores)))


def hinge_generator(fake_scores):
    """The hinge loss of a generator: ``-mean(D(fake))``."""
    import tensorflow as tf

    return -tf.reduce_mean(fake_scores)


def degradation_consistency(omega_a, omega_b):
    """``mean|Omega_a - Omega_b|``: one degradation read from two contents should agree."""
    import tensorflow as tf

    return tf.reduce_mean(tf.abs(omega_a - omega_b))


def batch_contrast(omega_a, omega_b, temperature=0.1):
    """InfoNCE over a batch: row ``i`` of ``omega_a`` should be nearer (cosine) to row ``i`` of
    ``omega_b`` -- the same degradation on other content -- than to any other row, which holds
    another degradation. Both are first centred on the mean of all their rows (a vector shared
    by every Omega tells nothing apart and would make every cosine near one). The
    cross-entropy of ``softmax(cos(a_i, b_j) / temperature)`` over ``j`` at ``j = i``, averaged
    over both directions (a to b, b to a) and the rows."""
    import tensorflow as tf

    a, b = tf.cast(omega_a, tf.float32), tf.cast(omega_b, tf.float32)
    centre = tf.reduce_mean(tf.concat([a, b], axis=0), axis=0, keepdims=True)
    a = tf.math.l2_normalize(a - centre, axis=-1)
    b = tf.math.l2_normalize(b - centre, axis=-1)
    logits = tf.matmul(a, b, transpose_b=True) / temperature
    labels = tf.range(tf.shape(logits)[0])
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    return 0.5 * (tf.reduce_mean(ce(labels=labels, logits=logits))
                  + tf.reduce_mean(ce(labels=labels, logits=tf.transpose(logits))))


def disentanglement(omega_real, omega_synthetic, lam=1.0, eps=1e-8):
    """``lam / (mean|Omega_real - Omega_synthetic| + eps)``: one content under two
    degradations should read apart (ReDegNet's "contrastive" term)."""
    import tensorflow as tf

    return lam / (tf.reduce_mean(tf.abs(omega_real - omega_synthetic)) + eps)
