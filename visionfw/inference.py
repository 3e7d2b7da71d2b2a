"""Running a model on images: one traced function for any size, tiles, self-ensemble (which
turns a kernel input with its image), Y models.

All functions take and return float32 NumPy arrays on [0, 1] (images ``(H, W, C)``).
"""
import numpy as np


class Predictor:
    """Calls a model through one traced function: one graph for every image size, or XLA
    compiled per size, as :func:`visionfw.runtime.inference_jit` chooses for this CPU.

    The model's first input is the image; further inputs (a kernel, a noise level, ...) are
    passed after it, each for one image (no batch axis): ``predict(image, kernel)``.

    Args:
        model: a ``keras.Model`` mapping ``(N, h, w, C)`` (and its other inputs) to
            ``(N, s*h, s*w, C)``.
        jit: compile with XLA (True; once per input size) or run one graph function (False);
            None (the default) takes the faster path on this CPU.
        output: for a model with several outputs, the index of the one returned (default:
            the one its dictionary's ``meta['score']`` names, see :func:`scored_output`).
    """

    def __init__(self, model, jit=None, output=None):
        import tensorflow as tf

        from visionfw.runtime import InferenceFunction

        self.model = model
        self.n_inputs = len(model.inputs)
        self.channels = model.inputs[0].shape[-1]
        specs = [tf.TensorSpec([None, *t.shape[1:]], tf.float32) for t in model.inputs]
        single = self.n_inputs == 1
        index = scored_output(model) if output is None else output

        def call(*xs):
            out = model(xs[0] if single else list(xs), training=False)
            if isinstance(out, (list, tuple)):
                out = out[index]
            # float32 out whatever the compute precision (a bf16 network under --precision bf16)
            return tf.cast(out, tf.float32)

        self._fn = InferenceFunction(call, signature=specs, jit=jit, name=model.name)

    def __call__(self, image, *extras):
        """``(H, W, C)`` (and the other inputs of one image) -> ``(sH, sW, C)``."""
        if len(extras) + 1 != self.n_inputs:
            raise ValueError(f"model {self.model.name!r} takes {self.n_inputs} input(s), got "
                             f"{len(extras) + 1}")
        xs = [np.asarray(image, np.float32)[None]]
        xs += [np.asarray(e, np.float32)[None] for e in extras]
        return np.asarray(self._fn(*xs))[0]


def scored_output(model):
    """Index of the output to score: the one ``meta['score']`` names among the dictionary's
    ``outputs`` (a model with one output: 0). A model with several outputs must name it."""
    from visionfw.graph.builder import model_spec

    if len(model.outputs) == 1:
        return 0
    d = (model_spec(model) or {}).get("dict", {})
    name = (d.get("meta") or {}).get("score")
    outputs = [str(o) for o in d.get("outputs") or []]
    if name is None or str(name) not in outputs:
        from visionfw.errors import VisionfwError

        raise VisionfwError(f"model {model.name!r} has {len(model.outputs)} outputs "
                            f"({', '.join(outputs) or 'unnamed'}); name the image to score in "
                            "its dictionary's meta['score']")
    return outputs.index(str(name))


def run_tiled(fn, image, scale, tile, overlap):
    """Run ``fn`` on overlapping ``tile`` x ``tile`` pieces of ``image`` and blend the results.

    Memory is bounded by one tile plus the output. In each overlap the outer third of a tile
    is dropped and the middle third blended linearly, so the result equals the whole-image
    output when a third of the overlap covers the model's receptive-field radius.

    Args:
        fn: ``(h, w, C) -> (s*h, s*w, C)``.
        image: ``(H, W, C)`` float array.
        scale: the model's factor s.
        tile: tile size in input pixels.
        overlap: pixels shared by neighbouring tiles (less than ``tile``).
    """
    h, w, _ = image.shape
    if tile <= 0 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")
    if h <= tile and w <= tile:
        return fn(image)
    ys = _starts(h, tile, overlap)
    xs = _starts(w, tile, overlap)
    out = None
    weight = np.zeros((h * scale, w * scale, 1), np.float32)
    for y0 in ys:
        for x0 in xs:
            piece = image[y0:y0 + tile, x0:x0 + tile]
            result = fn(piece)
            if out is None:
                out = np.zeros((h * scale, w * scale, result.shape[-1]), np.float32)
            ph, pw = piece.shape[:2]
            wy = _ramp(ph, overlap, y0 > 0, y0 + ph < h) .repeat(scale)
            wx = _ramp(pw, overlap, x0 > 0, x0 + pw < w).repeat(scale)
            wmap = (wy[:, None] * wx[None, :])[..., None]
            sy, sx = y0 * scale, x0 * scale
            out[sy:sy + ph * scale, sx:sx + pw * scale] += result * wmap
            weight[sy:sy + ph * scale, sx:sx + pw * scale] += wmap
    return out / weight


def _starts(length, tile, overlap):
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _ramp(n, overlap, fade_in, fade_out):
    """Per-pixel blend weights of one tile axis.

    On a side shared with a neighbour, the outer third of the overlap gets weight 0 (those
    pixels saw the tile's padding, not the image), the middle third ramps up linearly and the
    rest counts fully; the neighbour's weights mirror these, so every pixel is covered.
    """
    w = np.ones(n, np.float32)
    if overlap > 0:
        dead = overlap // 3
        live = overlap - 2 * dead
        ramp = np.concatenate([np.zeros(dead), (np.arange(live) + 0.5) / live,
                               np.ones(dead)]).astype(np.float32)
        if fade_in:
            w[:overlap] = np.minimum(w[:overlap], ramp)
        if fade_out:
            w[n - overlap:] = np.minimum(w[n - overlap:], ramp[::-1])
    return w


def orient(x, k, flip):
    """``x`` turned ``k`` quarter turns (``np.rot90``) after a left-right flip if ``flip``."""
    x = x[:, ::-1] if flip else x
    return np.ascontiguousarray(np.rot90(x, k))


def unorient(x, k, flip):
    """The inverse of :func:`orient`."""
    x = np.rot90(x, -k)
    return x[:, ::-1] if flip else x


def orient_kernel(kernel, k, flip):
    """A kernel turned and flipped with its image, about its centre ``[size // 2, size // 2]``.

    An even-sized kernel is first padded with a zero row and column at the end, so that the
    turns keep the centre where it is (an even grid has no middle tap to turn about).
    """
    kernel = np.asarray(kernel)
    h, w = kernel.shape[-2:]
    if h % 2 == 0 or w % 2 == 0 or h != w:
        n = max(h, w) | 1
        padded = np.zeros((n, n), kernel.dtype)
        # keep the centre [h // 2, w // 2] at [n // 2, n // 2]
        top, left = n // 2 - h // 2, n // 2 - w // 2
        padded[top:top + h, left:left + w] = kernel
        kernel = padded
    return orient(kernel, k, flip)


def self_ensemble(fn, image, kernel=None):
    """The x8 geometric self-ensemble: the average of ``fn`` over the flips and 90-degree turns.

    With a ``kernel`` (a kernel-conditioned model), ``fn(image, kernel)`` is called with the
    kernel flipped and turned together with the image, so every orientation sees the blur that
    made it.
    """
    total = None
    for flip in (False, True):
        for k in range(4):
            x = orient(image, k, flip)
            if kernel is None:
                y = fn(x)
            else:
                y = fn(x, orient_kernel(kernel, k, flip))
            y = unorient(y, k, flip)
            total = y.astype(np.float64) if total is None else total + y
    return (total / 8).astype(np.float32)


# ---- Y-channel models: the conversions live in visionfw.color --------------------------------

from visionfw.color import rgb_to_ycbcr, ycbcr_to_rgb  # noqa: E402,F401
