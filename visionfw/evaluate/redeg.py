"""A trained ReDegNet (``train.py redegnet``) put to use: the degradation of one LQ/HQ pair
transferred to other images (``python -m visionfw redeg transfer``), and the measurements
of how well that works (``python -m visionfw redeg evaluate``).

Both read a pair the same way (:func:`omega_of_pair`): the LQ image brought to the HQ size
by MATLAB bicubic when it is smaller, then DegNet's Omega of up to ``crops`` squares of its
input size (the centre first, then the corners, then the edge midpoints of a 3x3 grid),
averaged. Omega is meant to describe the degradation and not the content, so averaging over
crops of different content keeps the degradation and smooths the rest. SynNet then degrades
any image as that Omega says (:func:`synthesise`), at the image's size; an LQ image smaller
than its HQ image makes the synthesis go down to the LQ size by the same ratio.
"""
import os

import numpy as np

from visionfw.evaluate.datasets import EvaluationError

DEFAULT_CROPS = 5
DEFAULT_DRAWS = 16
DEFAULT_ADAPT_LR = 1e-4
ADAPT_SQUARES = 9
PERMUTATIONS = 10000

PROTOCOL = {
    "pair": "LQ brought to the HQ size by MATLAB bicubic (clipped to [0, 1]) when smaller; "
            "Omega = mean of DegNet's Omegas of up to `crops` squares of DegNet's size (the "
            "centre, then the corners, then the edge midpoints of a 3x3 grid)",
    "degradations": "each --protocol variant D is one degradation of the library: its random "
                    "draws (a range, a random kernel, the noise) are made once from --seed and "
                    "are the same for every image; D(HQ) is rounded to 8 bits (a stored LQ "
                    "image)",
    "synthesised": "SynNet(HQ_b, Omega of the one pair (D(HQ_a), HQ_a) of --source), at the "
                   "HQ size (padded by mirroring to SynNet's multiple, cropped back), MATLAB "
                   "bicubic down to the size of D(HQ_b)",
    "adapted": "with --adapt N: SynNet and Omega first fitted to the one pair -- N Adam steps "
               "(learning rate --adapt-lr, no weight decay) of the L1 distance between "
               "SynNet(HQ_a squares, Omega) and the LQ squares brought to the HQ size, on the "
               "nine squares of DegNet's size of a 3x3 grid of the pair, every step on all "
               "nine, inference mode (no spectral-norm update); then as synthesised with the "
               "fitted networks; the weights are put back before the next degradation",
    "bicubic": "MATLAB bicubic (antialiased) down-sampling of HQ_b to the size of D(HQ_b)",
    "training_mean": "the mean over `draws` draws of the run's training chain (settings.json "
                     "recipe.params chain and chain_order; draw k seeded (seed, k), the same "
                     "draws for every image) on HQ_b, each brought back to the HQ size as in "
                     "training, then MATLAB bicubic down to the size of D(HQ_b): the least-"
                     "squares guess of an LQ image under the training degradations",
    "noise_redrawn": "D(HQ_b) once more with every noise op drawn from another seed (call "
                     "seed 1 where D's is 0), every other draw as in D (8 bits): what a "
                     "synthesis that re-made D exactly, its noise included, would score; "
                     "absent when D has no noise op",
    "psnr": "10 log10(255^2 / MSE) on RGB, each image rounded to 8 bits (clip, x255, halves "
            "up), ceil(scale) pixels cropped on every side; per degradation, the mean over "
            "the images HQ_b (the dataset without the source)",
    "retrieval": "Omegas of every degradation x every content (source and dataset); for each, "
                 "its nearest other Omega by Euclidean distance: accuracy = how often it has "
                 "the same degradation (content_accuracy: the same content); chance = the "
                 "mean over the Omegas of (others of the same label) / (all others); "
                 "other_content_accuracy and other_content_chance: the same with only the "
                 "Omegas of other contents as candidates; p_value, other_content_p_value: "
                 "the share of `permutations` shuffles of the degradation labels within each "
                 "content (seeded by --seed) whose accuracy is at least the measured one, "
                 "(1 + count) / (1 + permutations)",
}


# ---------------------------------------------------------------- a pair read by DegNet

def pair_ratio(lq_shape, hq_shape, scale=None, what="--pair"):
    """The HQ/LQ size ratio of a pair: 1 when LQ has the HQ size, else an integer ``s`` with
    ``LQ = HQ / s`` on both sides (``scale`` given: ``floor`` or ``ceil`` of ``HQ / s``)."""
    (lh, lw), (hh, hw) = lq_shape[:2], hq_shape[:2]
    if (lh, lw) == (hh, hw):
        if scale not in (None, 1):
            raise EvaluationError(f"{what}: LQ and HQ are both {hw}x{hh}, not a ratio of "
                                  f"--scale {scale}")
        return 1
    if lh > hh or lw > hw:
        raise EvaluationError(f"{what}: the LQ image ({lw}x{lh}) is larger than the HQ "
                              f"image ({hw}x{hh})")
    if scale is not None:
        fits = all(n in (v // scale, -(-v // scale)) for n, v in ((lh, hh), (lw, hw)))
        if not fits:
            raise EvaluationError(f"{what}: LQ {lw}x{lh} is not HQ {hw}x{hh} divided by "
                                  f"--scale {scale}")
        return int(scale)
    if hh * lw != hw * lh:
        raise EvaluationError(f"{what}: LQ {lw}x{lh} and HQ {hw}x{hh} have different aspect "
                              "ratios")
    if hh % lh:
        raise EvaluationError(f"{what}: HQ {hw}x{hh} over LQ {lw}x{lh} is a ratio of "
                              f"{hh / lh:.3g}, not an integer (give --scale S when the LQ "
                              "sides are HQ / S rounded)")
    return hh // lh


def up_to_hq(lq, shape):
    """A float [0, 1] LQ image at ``shape`` (MATLAB bicubic, clipped); unchanged if it is."""
    from visionfw.resize import imresize

    if lq.shape[:2] == tuple(shape[:2]):
        return lq
    return np.clip(np.asarray(imresize(lq.astype(np.float32), output_shape=tuple(shape[:2]))),
                   0.0, 1.0)


def crop_spots(height, width, size, count):
    """Up to ``count`` distinct ``(top, left)`` of ``size`` squares in an image: the centre,
    the four corners, the four edge midpoints (a 3x3 grid), in that order."""
    rows, cols = (0, (height - size) // 2, height - size), (0, (width - size) // 2, width - size)
    grid = [(1, 1), (0, 0), (0, 2), (2, 0), (2, 2), (0, 1), (1, 0), (1, 2), (2, 1)]
    spots = []
    for r, c in grid:
        spot = (rows[r], cols[c])
        if spot not in spots:
            spots.append(spot)
    return spots[:count]


def degnet_size(degnet):
    return int(degnet.inputs[0].shape[1])


def pair_squares(lq, hq, size, count):
    """The LQ image (brought to the HQ size) and the HQ image cut to the same ``count``
    squares of side ``size`` (:func:`crop_spots`): two float32 ``(n, size, size, C)``."""
    lq = up_to_hq(lq, hq.shape)
    spots = crop_spots(hq.shape[0], hq.shape[1], size, count)
    return tuple(np.stack([x[t:t + size, l:l + size] for t, l in spots]).astype(np.float32)
                 for x in (lq, hq))


def omega_of_pair(degnet, lq, hq, crops=DEFAULT_CROPS, what="the pair"):
    """DegNet's Omega of a pair (float [0, 1] images; LQ at the HQ size or smaller), the mean
    over :func:`crop_spots`: ``(omega,)`` float32."""
    size = degnet_size(degnet)
    h, w = hq.shape[:2]
    if min(h, w) < size:
        raise EvaluationError(f"{what}: the HQ image is {w}x{h}, smaller than the {size}x{size} "
                              "squares DegNet reads")
    lqs, hqs = pair_squares(lq, hq, size, crops)
    out = np.asarray(degnet([lqs, hqs], training=False), np.float32)
    return out.mean(axis=0)


def synthesise(synnet, hq, omega):
    """SynNet's LQ image of ``hq`` (float [0, 1], ``(H, W, 3)``) under ``omega``, at ``hq``'s
    size: padded by mirroring to SynNet's size multiple, cropped back, clipped to [0, 1]."""
    multiple = synnet_multiple(synnet)
    h, w = hq.shape[:2]
    padded = np.pad(hq, ((0, -h % multiple), (0, -w % multiple), (0, 0)), mode="symmetric")
    y = synnet([padded[None].astype(np.float32), np.asarray(omega, np.float32)[None]],
               training=False)
    return np.clip(np.asarray(y, np.float32)[0, :h, :w], 0.0, 1.0)


def adapt(synnet, omega, lq, hq, steps, lr=DEFAULT_ADAPT_LR, size=None):
    """Fit SynNet and Omega to one pair before transferring it (not in the official method).

    ``steps`` Adam steps of the L1 distance between SynNet's synthesis of HQ squares and the
    LQ image's squares (brought to the HQ size), the reconstruction loss SynNet trained with,
    on the nine squares of ``size`` (DegNet's input side) of a 3x3 grid of the pair, every
    step on all nine. Inference mode: spectral norms are not re-estimated. The weights of
    ``synnet`` change in place (save them with ``get_weights`` to put them back).

    Returns:
        ``(omega, losses)``: the fitted Omega (float32) and the loss of each step (measured
        before its update).
    """
    import keras
    import tensorflow as tf

    h, w = hq.shape[:2]
    size = size or min(h, w)
    if min(h, w) < size:
        raise EvaluationError(f"the pair's HQ image is {w}x{h}, smaller than the {size}x{size} "
                              "squares it is fitted on")
    lqs, hqs = (tf.constant(x) for x in pair_squares(lq, hq, size, ADAPT_SQUARES))
    code = tf.Variable(np.asarray(omega, np.float32)[None], name="omega")
    variables = [code, *synnet.trainable_variables]
    optimizer = keras.optimizers.Adam(lr)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            fake = synnet([hqs, tf.repeat(code, hqs.shape[0], axis=0)], training=False)
            loss = tf.reduce_mean(tf.abs(tf.cast(fake, tf.float32) - lqs))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = [float(step()) for _ in range(steps)]
    return np.asarray(code.numpy()[0], np.float32), losses


def synnet_multiple(synnet):
    """What SynNet's input sides must be a multiple of (its dictionary's ``meta``)."""
    from visionfw.graph.builder import model_spec

    meta = (((model_spec(synnet) or {}).get("dict") or {}).get("meta") or {})
    return int(meta.get("multiple") or 1)


def down_by(image, ratio, shape=None):
    """MATLAB bicubic down-sampling by ``ratio`` (to ``shape`` when given); 1 leaves it."""
    from visionfw.resize import imresize

    if shape is None and ratio == 1:
        return image
    if shape is not None and tuple(shape[:2]) == image.shape[:2]:
        return image
    out = (imresize(image.astype(np.float32), scale=1.0 / ratio) if shape is None
           else imresize(image.astype(np.float32), output_shape=tuple(shape[:2])))
    return np.clip(np.asarray(out), 0.0, 1.0)


# ---------------------------------------------------------------- retrieval

def nearest_neighbour_accuracy(vectors, labels, groups=None):
    """How often each vector's nearest other vector (Euclidean; the first on a tie) has its
    label: ``{'accuracy', 'chance', 'count'}``. ``chance`` is what picking another vector at
    random would score: the mean over the vectors of (others of the same label) / (others).

    With ``groups`` (one per vector), a vector's candidates are only the vectors of other
    groups: for Omegas grouped by content, "is the nearest Omega of another image one of the
    same degradation", which content cannot answer."""
    x = np.asarray(vectors, np.float64)
    labels = np.asarray(labels)
    n = len(x)
    if n < 2 or x.ndim != 2 or len(labels) != n:
        raise ValueError(f"nearest_neighbour_accuracy needs n >= 2 vectors (n, d) and n "
                         f"labels; got {x.shape} and {labels.shape}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"nearest_neighbour_accuracy: {len(groups)} groups for {n} vectors")
    allowed = _candidates(n, groups)
    if not allowed.any(axis=1).all():
        raise ValueError("nearest_neighbour_accuracy: a vector has no candidate of another "
                         "group")
    nearest = _nearest(x, allowed)
    same = labels[:, None] == labels[None, :]
    chance = (same & allowed).sum(axis=1) / allowed.sum(axis=1)
    return {"accuracy": float(np.mean(labels[nearest] == labels)),
            "chance": float(np.mean(chance)), "count": int(n)}


def _candidates(n, groups=None):
    """``(n, n)`` bool: which vectors each may take as its neighbour -- every other one, or,
    with ``groups``, those of other groups."""
    allowed = ~np.eye(n, dtype=bool)
    if groups is not None:
        groups = np.asarray(groups)
        allowed &= groups[:, None] != groups[None, :]
    return allowed


def _nearest(x, allowed):
    """Index of each row's nearest allowed row (Euclidean; the first on a tie)."""
    squared = np.sum(x * x, axis=1)
    distance = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
    return np.argmin(np.where(allowed, distance, np.inf), axis=1)


def permutation_p_value(vectors, labels, groups, permutations=10000, seed=0, exclude=False):
    """One-sided p-value of a nearest-neighbour accuracy under "the vectors carry nothing of
    the label beyond the group": the labels are shuffled within each group (so each content
    keeps one Omega of every degradation), the accuracy recomputed for each of
    ``permutations`` shuffles, and ``p = (1 + #{shuffled >= observed}) / (1 + permutations)``.
    ``exclude`` leaves a vector's own group out of its candidates, as ``groups`` does in
    :func:`nearest_neighbour_accuracy`. The neighbours do not move with the labels, so they
    are found once."""
    x = np.asarray(vectors, np.float64)
    labels, groups = np.asarray(labels), np.asarray(groups)
    nearest = _nearest(x, _candidates(len(x), groups if exclude else None))
    observed = np.mean(labels[nearest] == labels)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    shuffled = labels.copy()
    at_least = 0
    for _ in range(int(permutations)):
        for idx in members:
            shuffled[idx] = labels[rng.permutation(idx)]
        at_least += np.mean(shuffled[nearest] == shuffled) >= observed - 1e-12
    return float((1 + at_least) / (1 + int(permutations)))


# ---------------------------------------------------------------- the run

def run_settings(run):
    """``settings.json`` of a run folder, or of the folder of one of its checkpoints."""
    from visionfw.train.config import read_settings

    folder = str(run) if os.path.isdir(run) else os.path.dirname(os.path.abspath(run))
    return read_settings(folder) or {}


def training_chain(settings):
    """``(chain, order)`` the run trained with (the recipe's defaults when not recorded)."""
    from visionfw.recipes.redeg import DEFAULT_CHAIN

    params = (settings.get("recipe") or {}).get("params") or {}
    return params.get("chain") or DEFAULT_CHAIN, params.get("chain_order") or "random"


def training_mean(chain, hq, draws, seed):
    """The mean over ``draws`` draws of the chain on ``hq`` (float [0, 1], ``(H, W, 3)``), at
    ``hq``'s size; draw ``k`` seeded ``(seed, k)``."""
    import tensorflow as tf

    total = np.zeros(hq.shape, np.float64)
    x = tf.constant(hq, tf.float32)
    for k in range(draws):
        a, _ = chain.pair(x, x, tf.constant([seed, k], tf.int64))
        total += np.asarray(a, np.float64)
    return (total / draws).astype(np.float32)


# ---------------------------------------------------------------- the measurements

def read_hq(path, multiple=1):
    """A float [0, 1] RGB image cropped to a multiple of ``multiple``."""
    from visionfw.imageio import modcrop, read_image

    return modcrop(read_image(path), multiple).astype(np.float32) / 255.0


def rgb_psnr(image, truth_uint8, scale):
    from visionfw.metrics import evaluate_pair

    return evaluate_pair(image, truth_uint8, scale, channel="rgb")[0]


def measure(degnet, synnet, variants, scale, source, images, chain, seed=0,
            crops=DEFAULT_CROPS, draws=DEFAULT_DRAWS, adapt_steps=0,
            adapt_lr=DEFAULT_ADAPT_LR, log=None):
    """The report of ``python -m visionfw redeg evaluate`` (see ``docs/redegnet.md``).

    Args:
        degnet, synnet: the trained networks.
        variants: ``[(name, Degradation)]`` of the held-out degradations.
        scale: their down-sampling factor.
        source: ``(name, hq)`` of the image whose one pair gives Omega.
        images: ``[(name, hq)]``, the other images, float [0, 1] at a multiple of the
            variants' HR multiple.
        chain: the run's :class:`~visionfw.recipes.redeg.RandomChain`.
        seed, crops, draws: as the command's options.
        adapt_steps, adapt_lr: ``--adapt`` and ``--adapt-lr``: with steps, an ``adapted``
            column (:func:`adapt`); ``synnet`` has its weights back on return.
        log: called with a line per degradation.
    """
    from visionfw.metrics import to_uint8

    log = log or (lambda line: None)
    size = degnet_size(degnet)
    contents = [source, *images]
    bicubic, mean = {}, {}
    for name, hq in images:
        lq_shape = (hq.shape[0] // scale, hq.shape[1] // scale)
        bicubic[name] = down_by(hq, scale, lq_shape)
        mean[name] = down_by(training_mean(chain, hq, draws, seed), scale, lq_shape)
    results, vectors, by_degradation, by_content = [], [], [], []
    for v, (variant, deg) in enumerate(variants):
        # one draw of D for every image: the pair and the other images share one degradation
        lqs = {name: to_uint8(deg(hq, scale, seed=0)) for name, hq in contents}
        omegas = {name: omega_of_pair(degnet, lqs[name].astype(np.float32) / 255.0, hq, crops,
                                      what=f"{name} under {variant}")
                  for name, hq in contents if name == source[0] or min(hq.shape[:2]) >= size}
        omega = omegas[source[0]]
        fitted = None
        if adapt_steps:
            trained = synnet.get_weights()
            try:
                fitted_omega, losses = adapt(synnet, omega,
                                             lqs[source[0]].astype(np.float32) / 255.0,
                                             source[1], adapt_steps, adapt_lr, size)
                fitted = {name: down_by(synthesise(synnet, hq, fitted_omega), scale,
                                        lqs[name].shape) for name, hq in images}
            finally:
                synnet.set_weights(trained)
        for c, (name, _) in enumerate(contents):
            if name in omegas:
                vectors.append(omegas[name])
                by_degradation.append(v)
                by_content.append(c)
        rows = []
        keys = ["synthesised_psnr", "bicubic_psnr", "training_mean_psnr"]
        if fitted:
            keys.append("adapted_psnr")
        if deg.has_noise:
            keys.append("noise_redrawn_psnr")
        for name, hq in images:
            truth = lqs[name]
            fake = down_by(synthesise(synnet, hq, omega), scale, truth.shape)
            row = {"name": name,
                   "synthesised_psnr": rgb_psnr(fake, truth, scale),
                   "bicubic_psnr": rgb_psnr(bicubic[name], truth, scale),
                   "training_mean_psnr": rgb_psnr(mean[name], truth, scale)}
            if fitted:
                row["adapted_psnr"] = rgb_psnr(fitted[name], truth, scale)
            if deg.has_noise:
                again = to_uint8(deg(hq, scale, seed=0, noise_seed=1))
                row["noise_redrawn_psnr"] = rgb_psnr(again.astype(np.float32) / 255.0, truth,
                                                     scale)
            rows.append(row)
        entry = {"name": variant, "spec": deg.spec}
        for key in keys:
            entry[key] = float(np.mean([r[key] for r in rows]))
        if fitted:
            entry["adapt_loss"] = {"first": losses[0], "last": losses[-1]}
        entry["images"] = rows
        results.append(entry)
        log(f"{variant}: synthesised {entry['synthesised_psnr']:.2f} dB"
            + (f", adapted {entry['adapted_psnr']:.2f} dB" if fitted else "")
            + f", bicubic {entry['bicubic_psnr']:.2f} dB, training mean "
            f"{entry['training_mean_psnr']:.2f} dB")
    retrieval = {"degradations": len(variants), "contents": len(set(by_content))}
    if len(variants) < 2:
        retrieval["note"] = "one degradation: nothing to tell apart (give two --protocol or more)"
    else:
        by_deg = nearest_neighbour_accuracy(vectors, by_degradation)
        by_con = nearest_neighbour_accuracy(vectors, by_content)
        retrieval.update(accuracy=by_deg["accuracy"], chance=by_deg["chance"],
                         content_accuracy=by_con["accuracy"], content_chance=by_con["chance"],
                         omegas=by_deg["count"], permutations=PERMUTATIONS,
                         p_value=permutation_p_value(vectors, by_degradation, by_content,
                                                     PERMUTATIONS, seed))
        if len(set(by_content)) >= 2:   # images smaller than DegNet's input have no Omega
            across = nearest_neighbour_accuracy(vectors, by_degradation, groups=by_content)
            retrieval.update(other_content_accuracy=across["accuracy"],
                             other_content_chance=across["chance"],
                             other_content_p_value=permutation_p_value(
                                 vectors, by_degradation, by_content, PERMUTATIONS, seed,
                                 exclude=True))
    return {"protocol": dict(PROTOCOL), "scale": int(scale), "seed": int(seed),
            "crops": int(crops), "draws": int(draws),
            **({"adapt": {"steps": int(adapt_steps), "lr": float(adapt_lr)}} if adapt_steps
               else {}),
            "training_chain": chain.text,
            "chain_order": chain.order, "source": source[0],
            "images": [name for name, _ in images],
            "degradations": results, "retrieval": retrieval}


def format_table(report):
    """A short table of the report: a row per degradation, then the retrieval line."""
    columns = [("synthesised", "synthesised_psnr"), ("adapted", "adapted_psnr"),
               ("bicubic", "bicubic_psnr"), ("training mean", "training_mean_psnr"),
               ("D, noise again", "noise_redrawn_psnr")]
    if "adapt" not in report:                   # the column of --adapt only when it was asked
        columns.remove(("adapted", "adapted_psnr"))
    header = ("degradation", *(h for h, _ in columns))
    keys = [k for _, k in columns]
    rows = [(r["name"], *(f"{r[k]:.2f}" if k in r else "-" for k in keys))
            for r in report["degradations"]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = [f"PSNR (dB, RGB) at x{report['scale']} of the synthesis from one pair of "
             f"{report['source']} on {len(report['images'])} images"]
    for row in (header, *rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    r = report["retrieval"]
    if "accuracy" in r:
        lines.append(f"Omega nearest-neighbour retrieval over {r['omegas']} Omegas "
                     f"({r['degradations']} degradations x {r['contents']} contents): same "
                     f"degradation {100 * r['accuracy']:.1f}% (chance {100 * r['chance']:.1f}%), "
                     f"p = {r['p_value']:.2g}; same content "
                     f"{100 * r['content_accuracy']:.1f}% (chance "
                     f"{100 * r['content_chance']:.1f}%)")
        if "other_content_accuracy" in r:
            lines.append(f"  among the Omegas of other images only: same degradation "
                         f"{100 * r['other_content_accuracy']:.1f}% (chance "
                         f"{100 * r['other_content_chance']:.1f}%), "
                         f"p = {r['other_content_p_value']:.2g}")
    else:
        lines.append(f"Omega retrieval: {r['note']}")
    return "\n".join(lines)


def write_report(report, path):
    """The report as JSON, atomically (a temporary file beside it, then a rename)."""
    import json

    from visionfw.graph.schema import atomic_write_text

    try:
        atomic_write_text(os.fspath(path), json.dumps(report, indent=1) + "\n")
    except OSError as exc:
        raise EvaluationError(f"--json {path}: cannot write it ({exc.strerror or exc})") \
            from None
