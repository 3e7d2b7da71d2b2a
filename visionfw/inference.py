"""Running a model on images: one traced function for any size, tiles, self-ensemble, Y models.

All functions take and return float32 NumPy arrays on [0, 1] (images ``(H, W, C)``).
"""
import numpy as np


class Predictor:
    """Calls a single-input image model through one ``tf.function`` for every image size.

    Args:
        model: a ``keras.Model`` mapping ``(N, h, w, C)`` to ``(N, s*h, s*w, C)``.
        jit: compile with XLA (retraces per input size, but runs faster on fixed sizes).
    """

    def __init__(self, model, jit=False):
        import tensorflow as tf

        self.model = model
        if len(model.inputs) != 1:
            raise ValueError(f"model {model.name!r} takes {len(model.inputs)} inputs; image "
                             "evaluation needs a single image input")
        channels = model.inputs[0].shape[-1]
        self.channels = channels
        spec = tf.TensorSpec([None, None, None, channels], tf.float32)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=None if jit
                               else [spec], jit_compile=jit, reduce_retracing=True)

    def __call__(self, image):
        """``(H, W, C)`` -> ``(sH, sW, C)``."""
        x = np.asarray(image, np.float32)[None]
        return np.asarray(self._fn(x))[0]


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


def self_ensemble(fn, image):
    """The x8 geometric self-ensemble: average of ``fn`` over the flips and 90-degree turns."""
    total = None
    for flip in (False, True):
        base = image[:, ::-1] if flip else image
        for k in range(4):
            y = fn(np.ascontiguousarray(np.rot90(base, k)))
            y = np.rot90(y, -k)
            if flip:
                y = y[:, ::-1]
            total = y.astype(np.float64) if total is None else total + y
    return (total / 8).astype(np.float32)


# ---- Y-channel models ---------------------------------------------------------------------

def rgb_to_ycbcr(img):
    """Float RGB on [0, 1] -> float YCbCr on [0, 1] (ITU-R BT.601 studio range, as MATLAB)."""
    m = np.array([[65.481, 128.553, 24.966],
                  [-37.797, -74.203, 112.0],
                  [112.0, -93.786, -18.214]]) / 255.0
    out = img.astype(np.float64) @ m.T
    out += np.array([16.0, 128.0, 128.0]) / 255.0
    return out.astype(np.float32)


def ycbcr_to_rgb(img):
    """Inverse of :func:`rgb_to_ycbcr`, clipped to [0, 1]."""
    m = np.array([[65.481, 128.553, 24.966],
                  [-37.797, -74.203, 112.0],
                  [112.0, -93.786, -18.214]]) / 255.0
    x = img.astype(np.float64) - np.array([16.0, 128.0, 128.0]) / 255.0
    return np.clip(x @ np.linalg.inv(m).T, 0, 1).astype(np.float32)
