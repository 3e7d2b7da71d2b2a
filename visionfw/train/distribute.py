"""Distribution strategies on TensorFlow's own engine: one device, all local devices, workers.

- ``default``: one device.
- ``mirrored``: ``MirroredStrategy`` over every local GPU, or every logical CPU device when
  there is no GPU (``--cpu-devices N`` splits the CPU into N logical devices, for testing).
- ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``.
"""
import contextlib
import json
import os
import sys

from visionfw.train import TrainError


@contextlib.contextmanager
def _quiet_stderr():
    """Send C++ start-up chatter (absl, gRPC) to /dev/null; Python errors still raise."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start(strategy_name="default", cpu_devices=None, threads=None):
    """Start TensorFlow for training and return the strategy.

    A multi-worker strategy and logical CPU devices must be set up before the first op runs,
    so this replaces :func:`visionfw.cli.common.start_runtime` for training.
    """
    from visionfw import runtime

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_stderr():
        import tensorflow as tf

        runtime.configure_threads(threads)
        strategy = make_strategy(strategy_name, cpu_devices)
        tf.constant(0.0)
    return strategy


def split_cpu(n):
    """Expose the CPU as ``n`` logical devices (before TensorFlow initialises its devices)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        raise TrainError("--cpu-devices must be set before TensorFlow starts its devices") \
            from None


def check_tf_config():
    """The cluster description a multi-worker run needs, checked before TensorFlow starts."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise TrainError("--strategy multiworker needs TF_CONFIG (the cluster and this "
                         "task), e.g. {\"cluster\": {\"worker\": [\"host1:port\", "
                         "\"host2:port\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}")
    try:
        json.loads(text)["cluster"]
    except (ValueError, KeyError, TypeError):
        raise TrainError("TF_CONFIG is not JSON with a 'cluster' entry") from None


def make_strategy(name, cpu_devices=None):
    """The ``tf.distribute`` strategy called ``name``."""
    import tensorflow as tf

    if name == "multiworker":
        check_tf_config()
    if cpu_devices and cpu_devices > 1:
        split_cpu(cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise TrainError(f"--strategy {name!r}: expected default, mirrored or multiworker")


def worker_role(strategy):
    """``(is_chief, task_id)``: the chief writes the run folder; other workers do not."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, 0
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    if task_type == "chief":
        return True, 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return (task_type == "worker" and task_id == 0 and not has_chief), int(task_id)
