"""Process-wide TensorFlow settings (threads, log level), applied before TensorFlow starts."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's convolutions run our networks 2-3x faster on CPUs (bench/speed.py measures both);
# it must be chosen before TensorFlow loads. Set TF_ENABLE_ONEDNN_OPTS=0 to turn it off.
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


def import_tensorflow_quietly(start=True):
    """Import TensorFlow with its start-up chatter (absl, CUDA probing) sent to /dev/null.

    Command-line tools call this first so that a user sees only our own output; errors that
    happen later still reach stderr. ``start=False`` only imports the module: the runtime
    (thread pools, devices) is not started, so :func:`configure_threads` still applies.
    """
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        saved = os.dup(2)
    except OSError:
        import tensorflow as tf

        return tf
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import tensorflow as tf

        if start:
            tf.constant(0.0)  # device discovery also prints; do it now
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
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


def fast_bf16():
    """Whether this CPU has bfloat16 matrix units or instructions (AMX-BF16, AVX512-BF16);
    without them bf16 still runs, emulated and usually slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
