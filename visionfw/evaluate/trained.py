"""What a network was trained on, as its ``train.py`` run recorded it, and the warnings
``python -m visionfw sr`` gives when an input or an estimate lies outside that.

A weights file says nothing about its training data; the run folder it sits in does
(``settings.json``: the degradation and the scale). A file the run only copied -- IKC's
``sftmd.weights.h5``, named after the recipe parameter that gave it (``--sftmd FILE``) -- is
traced to that file's own run. Anything else (a converted file, a file moved out of its run)
has no known training, and then nothing is said rather than guessed; so has a network trained
on LR that a degradation learned in the same run synthesised (``train.py pdm-sr``).
"""
import json
import pathlib
from dataclasses import dataclass

import numpy as np

# An LR image whose estimated noise sigma (0-255 scale) is above this "looks noisy". On 63
# photographs (Set5, Set14, part of B100, three of scikit-image's) bicubic-down-scaled by 2
# and by 4, the clean LR images read 1.0 (median; 2 of 126, textured x4 ones, above 5), with
# white noise of sigma 5 added 6.1, of sigma 10 11.1.
NOISY = 5.0
EDGE = 0.05             # an estimate within 5% of the training range's width of an end

# The 2nd percentile of the 4x4 block RMS of the high-pass below reads 1 / 2.06 of the
# sigma of white Gaussian noise (measured on 1024x1024 noise, spread 0.3%).
_BLOCK, _PERCENTILE, _CALIBRATION = 4, 2.0, 2.06


def estimate_noise_sigma(image):
    """The noise sigma of an image on the 0-255 scale, or ``None`` if it has no unsaturated
    4x4 block to measure.

    Immerkaer's high-pass (the difference of two Laplacians, ``[[1, -2, 1], [-2, 4, -2], [1,
    -2, 1]]``, which cancels smooth shading and has gain 6 on white noise) is taken per
    channel; its RMS over 4x4 blocks is a noise level per block, and the flattest blocks (the
    2nd percentile; texture only adds to a block's level) give the estimate, calibrated on
    white Gaussian noise. Blocks that touch 0 or 1 are left out: clipping removes noise
    there. The channels' estimates are averaged.

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` float on [0, 1].
    """
    x = np.asarray(image, np.float64)
    if x.ndim == 2:
        x = x[..., None]
    levels = []
    for ch in np.moveaxis(x, -1, 0):
        r = (ch[:-2, :-2] - 2 * ch[:-2, 1:-1] + ch[:-2, 2:] - 2 * ch[1:-1, :-2]
             + 4 * ch[1:-1, 1:-1] - 2 * ch[1:-1, 2:] + ch[2:, :-2] - 2 * ch[2:, 1:-1]
             + ch[2:, 2:]) / 6.0
        inner = ch[1:-1, 1:-1]
        h, w = (r.shape[0] // _BLOCK) * _BLOCK, (r.shape[1] // _BLOCK) * _BLOCK
        if not h or not w:
            continue

        def blocks(a):
            return a[:h, :w].reshape(h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).swapaxes(
                1, 2).reshape(-1, _BLOCK * _BLOCK)

        rms = np.sqrt((blocks(r) ** 2).mean(axis=1))
        clipped = ((blocks(inner) <= 0) | (blocks(inner) >= 1)).any(axis=1)
        if np.all(clipped):
            continue
        levels.append(np.percentile(rms[~clipped], _PERCENTILE) * _CALIBRATION)
    return float(np.mean(levels) * 255.0) if levels else None


@dataclass(frozen=True)
class Training:
    """A network's training as its run recorded it: the degradation spec (or protocol
    name), the scale, and the ``settings.json`` read."""

    degradation: str
    scale: int
    source: str

    def degradations(self):
        """The :class:`~visionfw.degradation.Degradation` objects of the spec (every
        variant of a protocol); ``[]`` if the spec no longer parses."""
        from visionfw.degradation import DegradationError, get_protocol

        try:
            return [deg for _, deg in get_protocol(self.degradation, self.scale)]
        except (DegradationError, ValueError, OSError):
            return []

    def noise_free(self):
        """Whether no training image had noise added (``None`` if unknown)."""
        degs = self.degradations()
        if not degs:
            return None
        for deg in degs:
            for op in deg.ops:
                if op.op_name == "noise" and _high(op.args.get("sigma")) > 0:
                    return False
        return True

    def sigma_range(self):
        """``(low, high)`` of the Gaussian blur widths drawn in training (``sigma``, or
        ``sigma1`` and ``sigma2``; ``randomblur``'s ``sigma`` range), or ``None``: no
        Gaussian blur, another kind of kernel, or one fixed width (no range to sit inside)."""
        lows, highs = [], []
        for deg in self.degradations():
            op = deg.blur_op
            names = {"gaussian": ("sigma", "sigma1", "sigma2"), "randomblur": ("sigma",)}.get(
                getattr(op, "op_name", None))
            if names is None:
                return None
            for name in names:
                value = op.args.get(name)
                if value is not None:
                    lows.append(_low(value))
                    highs.append(_high(value))
        if not lows or max(highs) <= min(lows):
            return None
        return min(lows), max(highs)


def _low(value):
    return float(getattr(value, "low", value))


def _high(value):
    return float(getattr(value, "high", value) or 0.0)


def training_of(weights, _depth=0):
    """The :class:`Training` of a weights file from the ``settings.json`` of the run folder
    holding it, or ``None`` when that is not known (see the module docstring)."""
    path = pathlib.Path(weights)
    settings_file = path.parent / "settings.json"
    try:
        record = json.loads(settings_file.read_text())
        settings = record["settings"]
        spec, scale = str(settings["degradation"]), int(settings["scale"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    name = path.name.removesuffix(".weights.h5")
    if _learns_degradation((record.get("recipe") or {}).get("name") or settings.get("recipe")):
        return None          # its LR was synthesised by a degradation it learned (PDM)
    params = (record.get("recipe") or {}).get("params") or settings.get("recipe_params") or {}
    if name in params:                   # a copy of a network the run was given
        origin = _given_file(params[name], path.parent, settings.get("out"))
        if origin is None or _depth > 4 or origin.resolve() == path.resolve():
            return None
        return training_of(origin, _depth + 1)
    return Training(spec, scale, str(settings_file))


def _learns_degradation(recipe):
    """Whether a recipe trains on LR it synthesises with a learned degradation, so that the
    run's ``degradation`` setting says nothing of its training LR (only of validation's)."""
    if not recipe:
        return False
    try:
        from visionfw.recipes.base import RECIPES

        cls = RECIPES.find(str(recipe))
    except Exception:  # noqa: BLE001 -- an unreadable recipe registry: nothing is known
        return False
    return bool(getattr(cls, "learns_degradation", False))


def _given_file(value, run, out):
    """The file a recipe parameter named, looked for where train.py ran (the run folder
    minus its ``--out``) and here."""
    if not isinstance(value, str) or not value:
        return None
    given = pathlib.Path(value)
    roots = [pathlib.Path.cwd()]
    if out and not pathlib.Path(out).is_absolute():
        parts = len(pathlib.Path(out).parts)
        resolved = run.resolve()
        if len(resolved.parents) >= parts:
            roots.insert(0, resolved.parents[parts - 1])
    for candidate in ([given] if given.is_absolute() else [root / given for root in roots]):
        if candidate.is_file():
            return candidate
    return None


# roles whose networks estimate the kernel, the one that gives the final estimate first
ESTIMATOR_ROLES = ("corrector", "estimator", "predictor")


def input_warnings(name, lr, trainings, kernel=None):
    """One-line warnings about one image: it looks noisy for networks trained without
    noise; the estimated kernel sits at the edge of the estimator's training range.

    Args:
        name: the image's file name.
        lr: the LR image, ``(H, W, C)`` float on [0, 1].
        trainings: ``{role: Training or None}`` of the method's networks.
        kernel: the method's (final) estimated kernel, if it estimates one.
    """
    out = []
    clean = [role for role, t in trainings.items() if t is not None and t.noise_free()]
    if clean:
        sigma = estimate_noise_sigma(lr)
        if sigma is not None and sigma > NOISY:
            sources = sorted({trainings[r].source for r in clean})
            out.append(f"warning: {name} looks noisy (noise sigma about {sigma:.1f} on the "
                       f"0-255 scale) but {', '.join(clean)} "
                       f"{'was' if len(clean) == 1 else 'were'} trained without noise "
                       f"({'; '.join(sources)}); expect the noise to be sharpened as detail")
    if kernel is not None:
        role = next((r for r in ESTIMATOR_ROLES if trainings.get(r) is not None
                     and trainings[r].sigma_range() is not None), None)
        if role is not None and np.ndim(kernel) == 2 and np.shape(kernel)[0] == \
                np.shape(kernel)[1]:
            from visionfw.degradation import fit_isotropic_sigma

            low, high = trainings[role].sigma_range()
            sigma = fit_isotropic_sigma(kernel)
            margin = EDGE * (high - low)
            side = ("lower" if sigma <= low + margin else
                    "upper" if sigma >= high - margin else None)
            if side is not None:
                where = (f"is {'below' if side == 'lower' else 'above'} the" if
                         sigma < low or sigma > high else f"is at the {side} edge of the")
                beyond = {"lower": "sharper", "upper": "wider"}[side]
                out.append(f"warning: {name}: the estimated kernel's fitted sigma {sigma:.2f} "
                           f"{where} {role}'s training range {low:g}-{high:g} "
                           f"({trainings[role].source}); the true blur may be {beyond} than "
                           "the networks have seen")
    return out
