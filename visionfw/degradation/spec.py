"""Degradation specs: a small declarative language for HR -> LR pipelines, and its parser.

A spec is a chain of ops joined by ``+``, applied left to right::

    bicubic
    gaussian(sigma=2.0)+bicubic
    gaussian(sigma1=2,sigma2=1,theta=0.5)+direct
    gaussian(sigma=0.2~4.0)+bicubic+noise(15)+jpeg(quality=75)
    motion(size=25)+direct(offset=0)
    randomblur(size=25,sigma=0.7~4,motion=0.25,padding=circular)+direct
    kernel(path=kernels_12.mat,index=3,padding=circular)+direct

Arguments are ``name=value`` or positional (in the order listed by :func:`describe_ops`).
A value is a number, ``true``/``false``, a bare word or path, a quoted string (``"a+b.mat"``),
or a range ``low~high``: a range is drawn uniformly, independently for every image and every
call, from the call's seed. Integer arguments draw integers, both ends included. Parsing is
done by hand here: nothing in a spec is ever evaluated as Python.

When no down-sampling op (``bicubic``, ``direct``) is given, ``bicubic`` is added at the end.
At most one blur op (``gaussian``, ``motion``, ``kernel``, ``randomblur``) and one
down-sampling op are allowed. Ops register themselves with :func:`register_op`.
"""
import dataclasses
import re

import numpy as np

from visionfw.degradation import DegradationError
from visionfw.degradation import kernels as K
from visionfw.registry import Registry, suggest

_OPS = Registry("degradation op", error=DegradationError)


@dataclasses.dataclass(frozen=True)
class Param:
    """One argument of an op.

    Args:
        name: the argument's name in specs.
        kind: ``'float'``, ``'int'``, ``'bool'``, ``'str'`` or ``'choice'``.
        default: value when the argument is left out (``None``: not set).
        low, high: inclusive bounds for numbers (``None``: unbounded).
        choices: allowed words for ``'choice'``.
        ranged: whether ``low~high`` ranges are accepted.
        positive: numbers must be > 0 (not only >= low).
    """
    name: str
    kind: str
    default: object = None
    low: float = None
    high: float = None
    choices: tuple = ()
    ranged: bool = False
    positive: bool = False


def register_op(name, params, stage):
    """Class decorator registering a spec op.

    Args:
        name: the op's name in specs.
        params: list of :class:`Param`, in positional order.
        stage: ``'blur'``, ``'down'`` or ``'other'``; a spec may hold one blur and one down op.
    """
    def wrap(cls):
        cls.op_name, cls.params, cls.stage = name, tuple(params), stage
        _OPS.register(name, cls)
        return cls
    return wrap


def op_names():
    """Names of the registered ops, sorted."""
    return _OPS.names()


def describe_ops():
    """One line per op: ``name(arg=default, ...)``."""
    lines = []
    for name in op_names():
        args = ", ".join(f"{p.name}={_format_value(p.default)}" if p.default is not None else p.name
                         for p in _OPS.get(name).params)
        lines.append(f"{name}({args})" if args else name)
    return lines


# --------------------------------------------------------------------------- values

@dataclasses.dataclass(frozen=True)
class Range:
    """``low~high``: drawn uniformly per image and per call."""
    low: float
    high: float

    def __str__(self):
        return f"{_format_value(self.low)}~{_format_value(self.high)}"


def _format_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return v if re.fullmatch(r"[^\s(),=+~\"']+", v) else '"' + v.replace('"', '\\"') + '"'
    if isinstance(v, tuple):
        return f"{_format_value(v[0])}~{_format_value(v[1])}"
    return str(v)


_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _split_top(text, sep):
    """Split at ``sep`` outside parentheses and quotes; raise on unbalanced brackets."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise DegradationError(f"bad degradation spec {text!r}: "
                                       f"unmatched ')' at position {i}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote:
        raise DegradationError(f"bad degradation spec {text!r}: unclosed quote {quote}")
    if depth:
        raise DegradationError(f"bad degradation spec {text!r}: unclosed '('")
    parts.append(text[start:])
    return parts


def _unquote(token):
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1].replace("\\" + token[0], token[0]), True
    return token, False


def _convert(op, param, token):
    """Turn a value token into the parameter's type; raise a one-line error if it does not fit."""
    raw, quoted = _unquote(token.strip())
    where = f"{op}: {param.name}"
    if not raw and not quoted:
        raise DegradationError(f"{where} has an empty value")
    if param.kind in ("float", "int") and not quoted and "~" in raw:
        if not param.ranged:
            raise DegradationError(f"{where} does not take a range, got {raw!r}")
        ends = raw.split("~")
        if len(ends) != 2:
            raise DegradationError(f"{where}: a range is 'low~high', got {raw!r}")
        low, high = (_number(op, param, e.strip()) for e in ends)
        if low > high:
            raise DegradationError(f"{where}: range {raw!r} has low > high")
        return Range(low, high) if low != high else low
    if param.kind in ("float", "int"):
        if quoted:
            raise DegradationError(f"{where} must be a number, got {token!r}")
        return _number(op, param, raw)
    if param.kind == "bool":
        word = raw.lower()
        if word in ("true", "yes", "1"):
            return True
        if word in ("false", "no", "0"):
            return False
        raise DegradationError(f"{where} must be true or false, got {raw!r}")
    if param.kind == "choice":
        if raw not in param.choices:
            raise DegradationError(f"{where} must be one of {', '.join(param.choices)}; "
                                   f"got {raw!r}")
        return raw
    return raw


def _number(op, param, text):
    where = f"{op}: {param.name}"
    if param.kind == "int":
        if not _INT.fullmatch(text):
            raise DegradationError(f"{where} must be an integer, got {text!r}")
        value = int(text)
    else:
        if not _FLOAT.fullmatch(text):
            raise DegradationError(f"{where} must be a number, got {text!r}")
        value = float(text)
    if param.positive and not value > 0:
        raise DegradationError(f"{where} must be > 0, got {text}")
    if param.low is not None and value < param.low:
        raise DegradationError(f"{where} must be >= {_format_value(param.low)}, got {text}")
    if param.high is not None and value > param.high:
        raise DegradationError(f"{where} must be <= {_format_value(param.high)}, got {text}")
    return value


_OP_TEXT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*", re.S)


def _parse_op(text, spec):
    match = _OP_TEXT.fullmatch(text)
    if not match:
        token = text.strip() or "(empty)"
        raise DegradationError(f"bad degradation spec {spec!r}: cannot read op {token!r}; "
                               f"expected name or name(args); valid ops: {', '.join(op_names())}")
    name, body = match.group(1), match.group(2)
    cls = _OPS.find(name)
    if cls is None:
        raise DegradationError(f"unknown degradation op {name!r} in {spec!r}"
                               f"{suggest(name, op_names())}; valid ops: {', '.join(op_names())}")
    params = {p.name: p for p in cls.params}
    values = {}
    named = False
    if body is not None and body.strip():
        for i, item in enumerate(_split_top(body, ",")):
            item = item.strip()
            if not item:
                raise DegradationError(f"{name}: empty argument in {text.strip()!r}")
            key, eq, value = item.partition("=")
            if eq and re.fullmatch(r"\s*[A-Za-z_]\w*\s*", key) and not _unquote(item)[1]:
                key, named = key.strip(), True
                if key not in params:
                    raise DegradationError(f"{name}: unknown argument {key!r}; "
                                           f"valid: {', '.join(params) or '(none)'}")
            else:
                if named:
                    raise DegradationError(f"{name}: positional argument {item!r} "
                                           "after a named one")
                if i >= len(cls.params):
                    raise DegradationError(f"{name}: too many arguments; it takes "
                                           f"{', '.join(params) or 'none'}")
                key, value = cls.params[i].name, item
            if key in values:
                raise DegradationError(f"{name}: argument {key!r} given twice")
            values[key] = _convert(name, params[key], value)
    args = {p.name: values.get(p.name, p.default) for p in cls.params}
    return cls(**args), values


def parse_degradation(spec, base_seed=None, dtype="float32"):
    """Parse a spec string into a callable :class:`Degradation`.

    Args:
        spec: e.g. ``"gaussian(sigma=2.0)+bicubic+noise(15)"``; see the module docstring.
        base_seed: an int folded into every call's seed (protocols use it), or ``None``.
        dtype: ``'float32'`` or ``'float64'``, the precision of the computation (the result
            is float32 either way). float64 reproduces float64 NumPy/SciPy pipelines exactly
            enough to truncate to the same 8-bit values; float32 input holding 8-bit levels
            is then snapped to the exact levels ``v / 255`` first.

    Raises:
        DegradationError: unknown op, unknown or bad argument, or bad syntax; one line that
            names the offending token.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DegradationError(f"a degradation spec must be a non-empty string, got {spec!r}")
    ops = [_parse_op(part, spec)[0] for part in _split_top(spec, "+")]
    return Degradation(ops, base_seed=base_seed, dtype=dtype)


# --------------------------------------------------------------------------- the pipeline

class Degradation:
    """A parsed spec: ``lr = deg(hr, scale, seed=None)``.

    ``hr`` is ``(H, W, C)`` or ``(N, H, W, C)``, float on [0, 1] (``uint8`` is divided by
    255), NumPy or tensor; the result is float32 of the same rank, a NumPy array for NumPy
    input in eager mode, else a tensor. ``seed`` is an int, a string (an image name, hashed
    with TensorFlow's stable fingerprint) or an integer tensor (inside ``tf.data``); with
    ``None`` every call draws fresh randomness. The same seed always gives the same output.

    After an eager call, :attr:`kernel` holds the blur kernel that call used (NumPy,
    ``(k, k)`` for one image, ``(N, k, k)`` for a batch) and :attr:`labels` every label. In
    graphs, use :meth:`degrade`, which returns ``(lr, labels)``.
    """

    def __init__(self, ops, base_seed=None, dtype="float32"):
        stages = [op.stage for op in ops]
        for stage, what in (("blur", "blur op (gaussian, motion, kernel, randomblur)"),
                            ("down", "down-sampling op (bicubic, direct)")):
            if stages.count(stage) > 1:
                raise DegradationError(f"a spec may hold only one {what}; got "
                                       f"{' + '.join(op.op_name for op in ops)}")
        if "down" not in stages:
            ops = list(ops) + [_OPS.get("bicubic")()]
        if dtype not in ("float32", "float64"):
            raise DegradationError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.ops = tuple(ops)
        self.dtype = dtype
        self.base_seed = None if base_seed is None else int(base_seed)
        self.labels = None
        self._last_kernel = None

    @property
    def spec(self):
        """The canonical spec string: every op with all its arguments."""
        return "+".join(op.describe() for op in self.ops)

    def __str__(self):
        return self.spec

    def __repr__(self):
        seed = "" if self.base_seed is None else f", base_seed={self.base_seed}"
        dtype = "" if self.dtype == "float32" else f", dtype={self.dtype!r}"
        return f"Degradation({self.spec!r}{seed}{dtype})"

    def _key(self):
        return self.spec, self.base_seed, self.dtype

    def __eq__(self, other):
        return isinstance(other, Degradation) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    @property
    def has_noise(self):
        """Whether a noise op is in the chain (``noise_seed`` changes something)."""
        return any(isinstance(op, NoiseOp) for op in self.ops)

    @property
    def is_random(self):
        """Whether the output depends on the seed."""
        return any(op.is_random() for op in self.ops)

    @property
    def blur_op(self):
        return next((op for op in self.ops if op.stage == "blur"), None)

    @property
    def kernel(self):
        """The kernel of the last eager call, else the fixed kernel of a seed-free blur op."""
        if self._last_kernel is not None:
            return self._last_kernel
        op = self.blur_op
        if op is not None and not op.is_random():
            return op.kernels(1, K.seed_pair(0)).numpy()[0]
        return None

    def _seed(self, seed):
        import tensorflow as tf

        if seed is None:
            if tf.executing_eagerly():
                seed = int(np.random.SeedSequence().entropy % (2 ** 63))
            else:
                seed = tf.random.uniform([], maxval=2 ** 62, dtype=tf.int64)
        if isinstance(seed, str) or (tf.is_tensor(seed) and seed.dtype == tf.string):
            seed = tf.strings.to_hash_bucket_fast(seed, 2 ** 62)
        pair = K.seed_pair(seed)
        if self.base_seed is not None:
            mixed = tf.random.experimental.stateless_fold_in(K.seed_pair(self.base_seed), pair[0])
            pair = tf.random.experimental.stateless_fold_in(mixed, pair[1])
        return pair

    def degrade(self, hr, scale, seed=None, noise_seed=None):
        """``(lr, labels)``; ``labels`` maps ``'kernel'``, ``'noise_sigma'``,
        ``'jpeg_quality'`` to tensors (per image, first axis N for batches) for the ops present.
        ``noise_seed`` (same forms as ``seed``) draws the noise ops from it instead, every
        other op as ``seed`` says: the same degradation with its noise drawn again.
        """
        import tensorflow as tf

        from visionfw.degradation.ops import _as_batch

        scale = _check_scale(scale)
        x, single, as_numpy = _as_batch(hr, tf.as_dtype(self.dtype))
        if self.dtype == "float64" and getattr(hr, "dtype", None) in (np.float32, tf.float32):
            x = _snap_to_levels(x)
        pair = self._seed(seed)
        noise_pair = pair if noise_seed is None else self._seed(noise_seed)
        labels = {}
        for i, op in enumerate(self.ops):
            base = noise_pair if isinstance(op, NoiseOp) else pair
            op_seed = tf.random.experimental.stateless_fold_in(base, tf.constant(i, tf.int64))
            x = op.apply(x, scale, op_seed, labels)
        x = tf.cast(x, tf.float32)
        if single:
            x = x[0]
            labels = {k: v[0] for k, v in labels.items()}
        if as_numpy:
            return x.numpy(), {k: v.numpy() for k, v in labels.items()}
        return x, labels

    def __call__(self, hr, scale, seed=None, noise_seed=None):
        import tensorflow as tf

        lr, labels = self.degrade(hr, scale, seed, noise_seed)
        if tf.executing_eagerly():
            self.labels = {k: np.asarray(v) for k, v in labels.items()}
            self._last_kernel = self.labels.get("kernel")
        return lr

    def sample_kernel(self, seed=None, batch=None):
        """The kernel(s) a call with this seed uses, without an image; ``None`` without blur.

        Returns NumPy ``(k, k)`` (``batch=None``) or ``(batch, k, k)``.
        """
        import tensorflow as tf

        op = self.blur_op
        if op is None:
            return None
        pair = self._seed(seed)
        index = self.ops.index(op)
        op_seed = tf.random.experimental.stateless_fold_in(pair, tf.constant(index, tf.int64))
        kernels = op.kernels(1 if batch is None else int(batch), op_seed).numpy()
        return kernels[0] if batch is None else kernels


def _snap_to_levels(x):
    """Put float32-rounded 8-bit values back on ``v / 255`` exactly (float64 pipelines).

    ``np.float32(v / 255)`` is off by up to 1.5e-5 of a level; a float64 pipeline that must
    truncate like SciPy does on the uint8 image needs the exact levels. Values further than
    1e-3 of a level from one are left alone.
    """
    import tensorflow as tf

    v = x * 255.0
    r = tf.round(v)
    return tf.where(tf.abs(v - r) < 1e-3, r / 255.0, x)


def _check_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        if isinstance(scale, float) and scale.is_integer() and scale >= 1:
            return int(scale)
        raise DegradationError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


# --------------------------------------------------------------------------- ops

class Op:
    """Base of spec ops: holds the argument values, draws the ranged ones per image."""
    op_name = "?"
    params = ()
    stage = "other"

    def __init__(self, **args):
        self.args = args

    def describe(self):
        shown = [f"{p.name}={_format_value(self.args[p.name])}"
                 for p in self.params if self.args.get(p.name) is not None]
        return f"{self.op_name}({','.join(shown)})" if shown else self.op_name

    def is_random(self):
        return any(isinstance(v, Range) for v in self.args.values())

    def draw(self, name, batch, seed, stream, dtype="float32"):
        """Per-image values of argument ``name``: fixed, or uniform in its range."""
        import tensorflow as tf

        value = self.args[name]
        param = next(p for p in self.params if p.name == name)
        if not isinstance(value, Range):
            return tf.fill([batch], tf.constant(value, dtype=dtype))
        s = tf.random.experimental.stateless_fold_in(seed, tf.constant(stream, tf.int64))
        if param.kind == "int":
            drawn = tf.random.stateless_uniform([batch], seed=s, minval=int(value.low),
                                                maxval=int(value.high) + 1, dtype=tf.int64)
        else:
            drawn = tf.random.stateless_uniform([batch], seed=s, minval=value.low,
                                                maxval=value.high, dtype=tf.float64)
        return tf.cast(drawn, dtype)

    def apply(self, x, scale, seed, labels):
        raise NotImplementedError


_PADDING = Param("padding", "choice", "reflect",
                 choices=("reflect", "symmetric", "circular", "zero"))


class BlurOp(Op):
    """A blur op: :meth:`kernels` gives ``(N, k, k)`` float32 kernels for a batch."""

    def kernels(self, batch, seed):
        raise NotImplementedError

    def apply(self, x, scale, seed, labels):
        import tensorflow as tf

        from visionfw.degradation.ops import blur

        kernels = self.kernels(tf.shape(x)[0], seed)
        labels["kernel"] = kernels
        if self.is_random():
            return blur(x, kernels, self.args["padding"])
        return blur(x, kernels[0], self.args["padding"])


@register_op("gaussian", [
    Param("sigma", "float", ranged=True, positive=True),
    Param("sigma1", "float", ranged=True, positive=True),
    Param("sigma2", "float", ranged=True, positive=True),
    Param("theta", "float", ranged=True),
    Param("size", "int", K.DEFAULT_SIZE, low=1),
    _PADDING,
], stage="blur")
class GaussianOp(BlurOp):
    """Gaussian blur: ``sigma`` (isotropic) or ``sigma1``, ``sigma2``, ``theta`` (radians).

    ``theta`` turns the ``sigma1`` axis from "right" towards "down"; see
    :func:`visionfw.degradation.kernels.gaussian_kernel`.
    """

    def __init__(self, **args):
        super().__init__(**args)
        if args["sigma"] is not None:
            clash = [n for n in ("sigma1", "sigma2", "theta") if args[n] is not None]
            if clash:
                raise DegradationError(f"gaussian: give sigma (isotropic) or sigma1/sigma2/theta, "
                                       f"not both (got sigma and {', '.join(clash)})")
        elif args["sigma1"] is None:
            raise DegradationError("gaussian: needs sigma (isotropic) or sigma1 "
                                   "(with optional sigma2, theta)")

    def kernels(self, batch, seed):
        from visionfw.degradation.kernels import gaussian_kernels_tf

        a = self.args
        if a["sigma"] is not None:
            s1 = self.draw("sigma", batch, seed, 1, "float64")
            s2, theta = s1, 0.0 * s1
        else:
            s1 = self.draw("sigma1", batch, seed, 1, "float64")
            s2 = s1 if a["sigma2"] is None else self.draw("sigma2", batch, seed, 2, "float64")
            theta = (0.0 * s1 if a["theta"] is None
                     else self.draw("theta", batch, seed, 3, "float64"))
        return gaussian_kernels_tf(s1, s2, theta, a["size"])


@register_op("motion", [
    Param("size", "int", 25, low=7),
    Param("length", "float", None, ranged=True, positive=True),
    _PADDING,
], stage="blur")
class MotionOp(BlurOp):
    """Random camera-shake kernel (:func:`visionfw.degradation.kernels.motion_kernel`).

    Always random: a new kernel per image, drawn from the seed. ``length`` is the path length
    in pixels (default ``0.25*size~size``). Made in NumPy through ``tf.numpy_function``.
    """

    def is_random(self):
        return True

    def kernels(self, batch, seed):
        import tensorflow as tf

        size = self.args["size"]
        length = self.args["length"]
        if isinstance(length, Range):
            length = (length.low, length.high)

        def make(seed_value, n):
            root = [int(v) & 0xFFFFFFFFFFFFFFFF for v in seed_value]
            return np.stack([K.motion_kernel(np.random.default_rng(root + [i]), size, length)
                             for i in range(int(n))]).astype(np.float32)

        out = tf.numpy_function(make, [seed, tf.cast(batch, tf.int64)], tf.float32, stateful=False)
        out.set_shape([None, size, size])
        return out


@register_op("randomblur", [
    Param("size", "int", 25, low=7),
    Param("sigma", "float", Range(0.7, 4.0), ranged=True, positive=True),
    Param("motion", "float", 0.25, low=0.0, high=1.0),
    Param("length", "float", None, ranged=True, positive=True),
    _PADDING,
], stage="blur")
class RandomBlurOp(BlurOp):
    """A different kind of kernel per image: isotropic Gaussian, anisotropic Gaussian or motion.

    For training non-blind networks on many kernel shapes (as USRNet does). Each image draws
    a motion kernel (:func:`visionfw.degradation.kernels.motion_kernel`, path ``length`` as in
    the ``motion`` op) with probability ``motion``, otherwise an isotropic Gaussian
    (``sigma`` drawn from its range) or an anisotropic one (``sigma1``, ``sigma2`` drawn
    independently from the ``sigma`` range, ``theta ~ U[0, pi)``), each with probability
    ``(1 - motion) / 2``. Always random. Streams folded into the op's seed: 1 isotropic sigma,
    2 and 3 anisotropic sigma1 and sigma2, 4 theta, 5 the kind, 6 the motion kernels (NumPy,
    through ``tf.numpy_function``, only for the images that draw one; never when
    ``motion=0``).
    """

    ISOTROPIC, ANISOTROPIC, MOTION = 0, 1, 2

    def is_random(self):
        return True

    def kinds(self, batch, seed):
        """Per-image kind: 0 isotropic, 1 anisotropic, 2 motion; int32 ``(batch,)``."""
        import tensorflow as tf

        p = float(self.args["motion"])
        s = tf.random.experimental.stateless_fold_in(seed, tf.constant(5, tf.int64))
        u = tf.random.stateless_uniform([batch], seed=s, dtype=tf.float64)
        return tf.where(u < p, self.MOTION,
                        tf.where(u < p + 0.5 * (1.0 - p), self.ISOTROPIC, self.ANISOTROPIC))

    def kernels(self, batch, seed):
        import math

        import tensorflow as tf

        size = self.args["size"]
        kind = self.kinds(batch, seed)
        iso = tf.equal(kind, self.ISOTROPIC)
        sigma = self.draw("sigma", batch, seed, 1, "float64")
        s1 = tf.where(iso, sigma, self.draw("sigma", batch, seed, 2, "float64"))
        s2 = tf.where(iso, sigma, self.draw("sigma", batch, seed, 3, "float64"))
        t_seed = tf.random.experimental.stateless_fold_in(seed, tf.constant(4, tf.int64))
        theta = tf.random.stateless_uniform([batch], seed=t_seed, minval=0.0, maxval=math.pi,
                                            dtype=tf.float64)
        theta = tf.where(iso, tf.zeros_like(theta), theta)
        out = K.gaussian_kernels_tf(s1, s2, theta, size)
        if self.args["motion"] > 0:
            is_motion = tf.equal(kind, self.MOTION)
            m_seed = tf.random.experimental.stateless_fold_in(seed, tf.constant(6, tf.int64))
            motion = self._motion_kernels(m_seed, is_motion)
            out = tf.where(is_motion[:, tf.newaxis, tf.newaxis], motion, out)
        out.set_shape([None, size, size])
        return out

    def _motion_kernels(self, seed, wanted):
        """Motion kernels for the images where ``wanted`` is true, zeros elsewhere."""
        import tensorflow as tf

        size = self.args["size"]
        length = self.args["length"]
        if isinstance(length, Range):
            length = (length.low, length.high)

        def make(seed_value, mask):
            root = [int(v) & 0xFFFFFFFFFFFFFFFF for v in seed_value]
            out = np.zeros((len(mask), size, size), np.float32)
            for i in np.flatnonzero(mask):
                out[i] = K.motion_kernel(np.random.default_rng(root + [int(i)]), size, length)
            return out

        out = tf.numpy_function(make, [seed, wanted], tf.float32, stateful=False)
        out.set_shape([None, size, size])
        return out


@register_op("kernel", [
    Param("path", "str"),
    Param("index", "int", 0, low=0, ranged=True),
    Param("variable", "str", "kernels"),
    _PADDING,
], stage="blur")
class KernelFileOp(BlurOp):
    """A kernel stored in a file (``.mat``, ``.npy``, ``.png``); ``index`` is 0-based.

    A range of indices draws one stored kernel per image. All kernels of the file must share
    one size.
    """

    def __init__(self, **args):
        super().__init__(**args)
        if not args["path"]:
            raise DegradationError("kernel: needs path=FILE")
        stack = K.load_kernels(args["path"], args["variable"])
        index = args["index"]
        top = index.high if isinstance(index, Range) else index
        if top >= len(stack):
            raise DegradationError(f"kernel: index {_format_value(index)} out of range "
                                   f"0..{len(stack) - 1} for {args['path']}")
        shapes = {k.shape for k in stack}
        if isinstance(index, Range) and len(shapes) > 1:
            raise DegradationError(f"kernel: a range of indices needs kernels of one size, "
                                   f"{args['path']} has {sorted(shapes)}")
        self.stack = stack if isinstance(index, Range) else [stack[index]]

    def kernels(self, batch, seed):
        import tensorflow as tf

        stack = tf.constant(np.stack(self.stack), tf.float32)
        if not isinstance(self.args["index"], Range):
            return tf.repeat(stack, batch, axis=0)
        index = self.draw("index", batch, seed, 1, "int32")
        return tf.gather(stack, index)


@register_op("bicubic", [], stage="down")
class BicubicOp(Op):
    """MATLAB ``imresize(x, 1/scale, 'bicubic')``."""

    def apply(self, x, scale, seed, labels):
        from visionfw.degradation.ops import downsample_bicubic

        return downsample_bicubic(x, scale)


@register_op("direct", [Param("offset", "int", 0, low=0)], stage="down")
class DirectOp(Op):
    """Keep HR pixel ``scale * i + offset`` (default 0, the top-left of each block)."""

    def apply(self, x, scale, seed, labels):
        from visionfw.degradation.ops import downsample_direct

        return downsample_direct(x, scale, self.args["offset"])


@register_op("noise", [
    Param("sigma", "float", low=0.0, ranged=True),
    Param("clip", "bool", True),
    Param("zero", "float", 0.0, low=0.0, high=1.0),
], stage="other")
class NoiseOp(Op):
    """White Gaussian noise, ``sigma`` on the 0-255 scale; ``clip`` to [0, 1] (default).

    ``zero`` is the probability that an image gets no noise at all (sigma 0) whatever the
    range says: KAIR trains USRNet with ``zero=0.125`` so that the noise-free case, where the
    data step trusts the LR image most, is seen often rather than almost never.
    """

    def __init__(self, **args):
        super().__init__(**args)
        if args["sigma"] is None:
            raise DegradationError("noise: needs sigma, e.g. noise(15) or noise(sigma=0~25)")

    def describe(self):
        text = super().describe()
        # Left out at its default so that specs written before it existed read as before.
        return text.replace(",zero=0.0)", ")") if self.args["zero"] == 0 else text

    def is_random(self):
        return super().is_random() or self.args["zero"] > 0

    def apply(self, x, scale, seed, labels):
        import tensorflow as tf

        from visionfw.degradation.ops import add_gaussian_noise

        sigma = self.draw("sigma", tf.shape(x)[0], seed, 1)
        if self.args["zero"] > 0:
            s = tf.random.experimental.stateless_fold_in(seed, tf.constant(3, tf.int64))
            keep = tf.random.stateless_uniform(tf.shape(sigma), seed=s) >= self.args["zero"]
            sigma = tf.where(keep, sigma, tf.zeros_like(sigma))
        labels["noise_sigma"] = sigma
        noise_seed = tf.random.experimental.stateless_fold_in(seed, tf.constant(2, tf.int64))
        return add_gaussian_noise(x, sigma, noise_seed, clip=self.args["clip"])


@register_op("jpeg", [Param("quality", "int", low=1, high=100, ranged=True)], stage="other")
class JpegOp(Op):
    """JPEG compression at ``quality`` (1-100), e.g. ``jpeg(75)`` or ``jpeg(quality=30~95)``."""

    def __init__(self, **args):
        super().__init__(**args)
        if args["quality"] is None:
            raise DegradationError("jpeg: needs quality, e.g. jpeg(quality=75)")

    def apply(self, x, scale, seed, labels):
        import tensorflow as tf

        from visionfw.degradation.ops import jpeg_compress

        quality = self.args["quality"]
        labels["jpeg_quality"] = self.draw("quality", tf.shape(x)[0], seed, 1, "int32")
        if isinstance(quality, Range):
            return jpeg_compress(x, labels["jpeg_quality"])
        return jpeg_compress(x, int(quality))


@register_op("quantize", [Param("mode", "choice", "round", choices=("round", "floor"))],
             stage="other")
class QuantizeOp(Op):
    """Snap to 8-bit levels: ``round`` (saving a PNG) or ``floor`` (a uint8 SciPy blur)."""

    def apply(self, x, scale, seed, labels):
        from visionfw.degradation.ops import quantize

        return quantize(x, self.args["mode"])


def spec_literal(value):
    """How a Python value is written in a spec (used to build specs programmatically)."""
    return _format_value(value)

