"""Process-wide TensorFlow settings (threads, log level), applied before TensorFlow starts."""
import copy
import importlib.util
import os
import sys
import time

# when the process started using visionfw: train.py reports its time to the first finished step
# from here (``import visionfw`` comes first in every entry point)
STARTED = time.time()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's convolutions ran our networks 1.7-3x faster with AVX-512, and our training steps
# 1.2-1.5x faster with AVX2 only (bench/speed.py measures both); it must be chosen before
# TensorFlow loads. Set TF_ENABLE_ONEDNN_OPTS=0 to turn it off. Inference picks its path per
# CPU (inference_jit below).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

_configured = False


def configure_threads(intra_op=None, inter_op=None):
    """Set TensorFlow's thread pools once, before the first op runs.

    ``intra_op`` defaults to the ``VISIONFW_THREADS`` environment variable, else the number of
    CPUs; ``inter_op`` defaults to 1 on small machines, since our graphs are mostly one long chain.
    """
    global _configured
    if _configured:
        return
    import tensorflow as tf

    cpus = os.cpu_count() or 1
    intra = int(intra_op or os.environ.get("VISIONFW_THREADS", cpus))
    inter = int(inter_op or (1 if cpus <= 4 else 2))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        # TensorFlow already started: its pools are fixed for this process.
        pass
    _configured = True


class _StderrToDevnull:
    """Point file descriptor 2 at /dev/null for a while: TensorFlow's C++ start-up lines
    (absl, oneDNN, CUDA probing) are written there before any log level applies."""

    def __enter__(self):
        sys.stderr.flush()
        try:
            self.saved = os.dup(2)
        except OSError:
            self.saved = None
            return self
        self.devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(self.devnull, 2)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            os.close(self.devnull)
        return False


class _QuietLoader:
    """Runs TensorFlow's own loader with stderr silenced, then lists the devices (the CUDA
    probe prints too) without starting the runtime, so thread settings still apply."""

    def __init__(self, spec):
        self.spec = spec

    def create_module(self, spec):
        return self.spec.loader.create_module(self.spec)

    def exec_module(self, module):
        module.__spec__, module.__loader__ = self.spec, self.spec.loader
        with _StderrToDevnull():
            self.spec.loader.exec_module(module)
            module.config.list_physical_devices()


class QuietTensorFlowImport:
    """A one-shot import hook: the first ``import tensorflow`` of the process, wherever it
    happens (a visionfw module, the user's code), runs through :class:`_QuietLoader`. Errors
    still raise; only the start-up chatter is dropped. ``VISIONFW_TF_LOGS=1`` keeps it."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        real = importlib.util.find_spec("tensorflow")
        if real is None or real.loader is None:
            return None
        spec = copy.copy(real)
        spec.loader = _QuietLoader(real)
        return spec


def install_quiet_import():
    """Install :class:`QuietTensorFlowImport` unless TensorFlow is loaded or
    ``VISIONFW_TF_LOGS`` is set (``import visionfw`` does this)."""
    if "tensorflow" in sys.modules or os.environ.get("VISIONFW_TF_LOGS"):
        return
    if not any(isinstance(f, QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, QuietTensorFlowImport())


def import_tensorflow_quietly(start=True):
    """Import TensorFlow without its start-up chatter (see :class:`QuietTensorFlowImport`).

    ``start`` is kept for callers of earlier versions: the devices are listed either way and
    the runtime (thread pools) is not started, so :func:`configure_threads` still applies.
    """
    install_quiet_import()
    import tensorflow as tf

    return tf


# --precision: the Keras dtype policy each name stands for
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}


def set_precision(name):
    """Build networks from now on in ``'fp32'`` or ``'bf16'`` (Keras' ``mixed_bfloat16``:
    float32 variables, bfloat16 compute; visionfw casts outputs back to float32 before losses,
    clipping and scoring). Returns the previous Keras policy name."""
    import keras

    if name not in PRECISIONS:
        from visionfw.errors import HyperparameterError

        raise HyperparameterError(f"--precision {name!r}: expected one of "
                                  f"{', '.join(PRECISIONS)}")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(PRECISIONS[name])
    return previous


def cpu_flags():
    """The CPU's feature flags as ``/proc/cpuinfo`` lists them (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((line.split(":", 1)[1].split() for line in f
                             if line.startswith("flags")), []))
    except OSError:
        return set()


def fast_bf16():
    """Whether this CPU has bfloat16 matrix units or instructions (AMX-BF16, AVX512-BF16);
    without them bf16 still runs, emulated and usually slower than fp32."""
    flags = cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


INFERENCE_PATHS = ("auto", "xla", "graph")


def inference_jit():
    """Whether inference (test.py, ``sr``, training's validation) is compiled with XLA.

    ``VISIONFW_INFERENCE`` chooses: ``xla``, ``graph`` (one TensorFlow graph function for every
    input size, oneDNN's kernels), or ``auto`` (the default): XLA on a CPU without AVX-512,
    the graph function with it. Measured with ``bench/speed.py`` (``bench/README.md``): with
    AVX-512 the graph path won every inference case by 30-60 %; on an AVX2-only CPU oneDNN's
    graph kernels ran SRResNet and SFTMD 2-3x slower than XLA (a 9x9 convolution to 3
    channels twenty times slower), while training steps were within 5-25 % of XLA. XLA
    compiles once per input size, a few seconds per network."""
    choice = os.environ.get("VISIONFW_INFERENCE", "auto").strip().lower()
    if choice not in INFERENCE_PATHS:
        from visionfw.errors import HyperparameterError

        raise HyperparameterError(f"VISIONFW_INFERENCE={choice!r}: expected one of "
                                  f"{', '.join(INFERENCE_PATHS)}")
    if choice == "auto":
        return "avx512f" not in cpu_flags()
    return choice == "xla"


class InferenceFunction:
    """``fn`` traced for inference on the path :func:`inference_jit` chooses.

    The graph path is one function for every input size (``signature``, if given, with
    ``None`` dimensions); the XLA path compiles once per input size. Should XLA refuse to
    compile ``fn`` (an op it does not have), the call falls back to the graph path for good,
    with one line on stderr.

    Args:
        fn: a function of tensors.
        signature: the graph path's ``input_signature``.
        jit: force XLA (True) or the graph path (False); None asks :func:`inference_jit`.
        name: what to call ``fn`` in the fallback line.
    """

    def __init__(self, fn, signature=None, jit=None, name=None):
        import tensorflow as tf

        self.name = name or getattr(fn, "__name__", "function")
        self._graph = tf.function(fn, input_signature=signature, reduce_retracing=True,
                                  autograph=False)
        use_xla = inference_jit() if jit is None else bool(jit)
        self._xla = (tf.function(fn, jit_compile=True, reduce_retracing=True, autograph=False)
                     if use_xla else None)

    @property
    def jit(self):
        """Whether calls go through XLA (False from the start, or after XLA refused)."""
        return self._xla is not None

    def __call__(self, *args):
        if self._xla is not None:
            import tensorflow as tf

            try:
                return self._xla(*args)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                    tf.errors.InternalError) as exc:
                # a refusal to compile names the XLA device or its converter; an error of the
                # computation itself (a failed check, a bad shape) is raised as it is
                if not any(word in str(exc) for word in ("unsupported operations",
                                                         "XLA_CPU_JIT", "tf2xla")):
                    raise
                first = str(exc).strip().splitlines()[0][:160]
                print(f"note: XLA could not compile {self.name} ({first}); running it as a "
                      "graph function", file=sys.stderr)
                self._xla = None
        return self._graph(*args)


def without_remapping():
    """Turn Grappler's remapper off for this process. On training steps that take a gradient
    through a convolution, BiasAdd and LeakyReLU with respect to the input alone (PDM's and
    ReDegNet's discriminators, DAN's estimator behind a frozen USRNet), TensorFlow 2.21's
    remapper fails on that fusion, logs an error line and drops its rewrite of the step anyway;
    off, the step is the same graph without the line (an SRResNet x4 step measured here was
    no slower without it)."""
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"remapping": False})


def traced(fn):
    """``fn`` as a TensorFlow function that an unrolled loop calls at every iteration.

    Inside a traced step, a network called ``n`` times is traced ``n`` times, and tracing a
    Keras graph costs far more than running it on a small batch: IKC's loop (seven SFTMD and
    Corrector passes) took minutes to its first step. Wrapped, ``fn`` is traced once per
    distinct input signature (shapes generalised after the second) and each iteration is a
    call of that one function. Pass the tensors ``fn`` reads as arguments; Python values in
    its closure are frozen at the first trace."""
    import tensorflow as tf

    return tf.function(fn, autograph=False, reduce_retracing=True,
                       experimental_attributes={"_noinline": True})
