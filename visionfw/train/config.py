"""The settings of a training run: typed defaults, checks, and ``settings.json``; the run
folder: its lock, its leftovers, and the one-line error of a write that fails in it."""
import contextlib
import dataclasses
import errno
import json
import os
import socket
import sys
from dataclasses import dataclass, field

from visionfw.train import TrainError

LOSSES = ("l1", "mse")
STRATEGIES = ("default", "mirrored", "multiworker")
PRECISIONS = ("fp32", "bf16")
SAMPLERS = ("uniform", "psnr-gain")

# Settings that define what a run computes: a resumed run must keep them.
RUN_DEFINING = ("model", "hparams", "scale", "train_dirs", "batch_size", "patch_size", "lr",
                "schedule", "milestones", "gamma", "loss", "seed", "ema", "clip_norm",
                "sampler", "sampler_bins", "sampler_stride", "degradation", "steps", "recipe",
                "recipe_params", "scales", "unpaired_dirs", "pair_dirs", "precision",
                "init_weights", "val_seed")


@dataclass
class TrainConfig:
    """Everything a run needs. ``model`` is a registered name or a ``.json`` dictionary path;
    ``hparams`` its hyperparameters (strings from ``--param`` are typed by the registry).

    ``train_dirs`` empty means the photographs embedded in scikit-image; ``val_dirs`` empty
    means their held-out photographs (or none, with ``val_dirs=None`` and no embedded data).

    ``recipe`` names the training recipe (default: the one the model names); ``recipe_params``
    its parameters. ``scales``: several factors drawn per step (for networks that take the
    scale as an input). ``unpaired_dirs``: folders of images without ground truth, a second
    stream of patches under ``real_lr``; ``pair_dirs``: folders with ``LQ/`` and ``HQ/`` image
    pairs, a second stream under ``lq`` and ``hq``. ``plugins``: the user plugins the run
    imports (:func:`visionfw.plugins.load_user_plugins`), so ``--resume`` and ``--config``
    load them again.
    """

    model: str = "srresnet"
    hparams: dict = field(default_factory=dict)
    scale: int = None
    train_dirs: list = field(default_factory=list)
    val_dirs: list = field(default_factory=list)
    out: str = None
    steps: int = 1000
    batch_size: int = 16
    patch_size: int = 96
    lr: float = 2e-4
    schedule: str = "cosine"
    milestones: list = field(default_factory=list)
    gamma: float = 0.5
    loss: str = "l1"
    seed: int = 0
    jit: bool = False
    strategy: str = "default"
    cpu_devices: int = None
    val_every: int = 500
    val_seed: int = 0
    save_every: int = None
    ema: float = None
    clip_norm: float = None
    sampler: str = "uniform"
    sampler_bins: int = 10
    sampler_stride: int = None
    degradation: str = "bicubic"
    cache: str = "memory"
    recipe: str = None
    recipe_params: dict = field(default_factory=dict)
    scales: list = field(default_factory=list)
    unpaired_dirs: list = field(default_factory=list)
    pair_dirs: list = field(default_factory=list)
    precision: str = "fp32"
    init_weights: str = None
    plugins: list = field(default_factory=list)

    def check(self):
        """Raise :class:`TrainError` for a value no run can use (before any work starts)."""
        positive = {"steps": self.steps, "batch_size": self.batch_size,
                    "patch_size": self.patch_size, "val_every": self.val_every,
                    "sampler_bins": self.sampler_bins}
        for name, value in positive.items():
            if value is None or value < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be a positive integer, "
                                 f"got {value}")
        if self.sampler_stride is not None and self.sampler_stride < 1:
            raise TrainError(f"--sampler-stride must be a positive integer, got "
                             f"{self.sampler_stride}")
        if self.val_seed is None or self.val_seed < 0:
            raise TrainError(f"--val-seed must be a non-negative integer, got {self.val_seed}")
        if self.save_every is not None and self.save_every < 1:
            raise TrainError(f"--save-every must be a positive integer, got {self.save_every}")
        if not self.lr > 0:
            raise TrainError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.gamma <= 1:
            raise TrainError(f"--gamma must be in (0, 1], got {self.gamma}")
        for name, value, valid in (("loss", self.loss, LOSSES),
                                   ("strategy", self.strategy, STRATEGIES),
                                   ("sampler", self.sampler, SAMPLERS),
                                   ("precision", self.precision, PRECISIONS)):
            if value not in valid:
                raise TrainError(f"--{name} {value!r}: expected one of {', '.join(valid)}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise TrainError(f"--ema must be a decay in (0, 1), e.g. 0.999, got {self.ema}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise TrainError(f"--clip-norm must be positive, got {self.clip_norm}")
        if self.sampler == "psnr-gain" and self.strategy != "default":
            raise TrainError("--sampler psnr-gain draws every batch from the last step's gains "
                             "and runs with --strategy default only")
        if self.cpu_devices is not None and self.cpu_devices < 1:
            raise TrainError(f"--cpu-devices must be positive, got {self.cpu_devices}")
        if any(int(s) < 1 for s in self.scales):
            raise TrainError(f"--scales must be positive factors, got {self.scales}")
        if self.unpaired_dirs and self.pair_dirs:
            raise TrainError("give --unpaired-dir or --pair-dir, not both: a run has one "
                             "second stream")
        if self.init_weights is not None and not os.path.isfile(self.init_weights):
            raise TrainError(f"--init-weights {self.init_weights}: no such file")
        if any(m < 1 for m in self.milestones):
            raise TrainError(f"--milestones must be positive steps, got {self.milestones}")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        if "val_seed" not in values and "seed" in values:
            # runs made before --val-seed validated on LR images drawn with the run's seed
            values["val_seed"] = values["seed"]
        return cls(**values)


def prepare_run_folder(out, resume):
    """Create ``out`` (or check it for ``resume``) and prove it is writable, before training.

    Returns the path of the latest checkpoint state file's folder (``out/checkpoints``).
    """
    from visionfw.fsutil import unwritable_reason

    reason = unwritable_reason(out)
    if reason:
        raise TrainError(f"run folder {out} is not writable: {reason}")
    ckpt = os.path.join(out, "checkpoints")
    has_run = os.path.isfile(os.path.join(ckpt, "checkpoint"))
    if resume and not has_run:
        raise TrainError(f"--resume: {out} holds no checkpoint to resume from")
    if not resume and has_run:
        raise TrainError(f"{out} already holds a run; add --resume to continue it or choose "
                         "another --out")
    return ckpt


LOCK_NAME = "train.lock"


def lock_name(strategy="default"):
    """The lock file of a run folder: ``train.lock``; in a multi-worker run, where every
    worker writes the same folder, each task has its own (``train.worker-1.lock``)."""
    if strategy != "multiworker":
        return LOCK_NAME
    try:
        task = json.loads(os.environ.get("TF_CONFIG", ""))["task"]
        return f"train.{task['type']}-{int(task.get('index', 0))}.lock"
    except (ValueError, KeyError, TypeError):
        return LOCK_NAME


class RunLock:
    """The lock a training run holds on its run folder while it writes there.

    ``RUN/train.lock`` holds the holder's PID and host, and is locked with ``fcntl.flock``:
    the kernel drops that lock when the holder's process ends, however it ends, so a lock
    file left by a killed run is stale and is taken over (with a note), while one whose
    holder is alive refuses the second writer. :meth:`release` removes the file.
    :func:`visionfw.train.run.train` (``train.py``) holds it from before it cleans the folder
    until the run ends, however it ends; a :class:`~visionfw.train.trainer.Trainer` made
    directly takes none.
    """

    def __init__(self, path, fd):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, out, name=LOCK_NAME, log=None):
        import fcntl

        path, locked = os.path.join(out, name), True
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise TrainError(f"run folder {out}: cannot create its lock file {name} "
                                 f"({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise TrainError(f"run folder {out} is in use by {_describe(holder)} (lock "
                                 f"{path}); wait for that run to end or stop it, or choose "
                                 "another --out") from None
            except OSError as exc:          # a file system without locks: run unprotected
                if log:
                    log(f"run folder {out}: cannot lock {name} ({exc.strerror or exc}); "
                        "nothing stops a second train.py from writing this folder")
                locked = False
                break
            try:        # the file may have been released (removed) between open and flock
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = _read_holder(fd)
        try:            # who holds it, for the message of a second writer (a full disk: no one)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass
        if stale and locked and log:
            log(f"run folder {out}: took over the lock of {_describe(stale)}, which is no "
                "longer running")
        return cls(path, fd)

    def release(self):
        """Remove the lock file and drop the lock (once)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _read_holder(fd):
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        return []


def _describe(holder):
    if not holder:
        return "another process"
    host = f" on {holder[1]}" if len(holder) > 1 and holder[1] != socket.gethostname() else ""
    return f"PID {holder[0]}{host}"


class RunWriteError(TrainError):
    """A file of the run folder could not be written (a full disk, a permission)."""


def is_write_error(exc):
    """An error of the file system: ``OSError``, or TensorFlow's ``OpError`` of a write."""
    if isinstance(exc, OSError):
        return True
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(exc, tf.errors.OpError)


def kept_checkpoint(folder):
    """``(path, step)`` of the latest complete checkpoint in ``folder``, or ``None``."""
    tf = sys.modules.get("tensorflow")
    latest = tf.train.latest_checkpoint(folder) if tf and os.path.isdir(folder) else None
    if not latest:
        return None
    try:
        return latest, int(latest.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return latest, None


def check_room(folder, *networks):
    """Raise ``OSError(ENOSPC)`` when ``folder``'s file system has no room for the weights
    files of ``networks``, estimated with a margin: the weights, HDF5's 1-2 kB of groups and
    headers per layer and per weight, and the dictionary stored beside them.

    HDF5 that runs out of space in the middle of a file leaves its library in a state that
    crashes the interpreter when the half-written file is released (h5py 3.14), after the error
    is reported; so a weights file that cannot fit is refused before HDF5 starts it."""
    import shutil

    import numpy as np

    from visionfw.graph.builder import model_spec

    def objects(layer):
        return 1 + sum(objects(sub) for sub in getattr(layer, "layers", None) or ())

    need = 64 * 1024
    for net in networks:
        data = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in net.weights)
        spec = len(json.dumps(model_spec(net) or {}))
        need += int(1.1 * data) + 4096 * (objects(net) + len(net.weights)) + 2 * spec
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# what a write error says, when its message holds one of these among other details
_REASONS = [os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS,
                                            errno.EACCES, errno.EPERM, errno.EIO)]


def _reason(exc):
    """The cause of a failed write in a few words (``'No space left on device'``): TensorFlow's
    and HDF5's messages bury it among paths and buffer offsets."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
        getattr(exc, "message", None) or str(exc)
    text = " ".join(str(text).split())
    for reason in _REASONS:
        if reason in text:
            return reason
    return text[:200] or type(exc).__name__


def write_failed(out, what, exc, folder=None):
    """The one-line error of a failed write of ``what`` in the run folder ``out``; the
    temporaries of the writes are removed first. ``folder`` is where this process writes
    (``out``, or a worker's subfolder)."""
    folder = folder or out
    try:
        clean_leftovers(folder)
    except OSError:
        pass
    reason = _reason(exc)
    kept = kept_checkpoint(os.path.join(folder, "checkpoints"))
    if kept:
        step = f" (step {kept[1]})" if kept[1] is not None else ""
        tail = (f"; the last checkpoint kept is {kept[0]}{step}: free space (or fix the "
                "permission), then continue with --resume")
    else:
        tail = "; no checkpoint was kept"
    return RunWriteError(f"cannot write {what} in run folder {out}: {reason}{tail}")


@contextlib.contextmanager
def writing(out, what, folder=None):
    """Run a write into the run folder; a file-system error becomes :func:`write_failed`."""
    try:
        yield
    except Exception as exc:
        if not is_write_error(exc):
            raise
        raise write_failed(out, what, exc, folder) from None


def clean_leftovers(out):
    """Remove what a kill during a write leaves in a run folder: TensorFlow's
    ``checkpoints/ckpt-N_temp/`` folders, our ``.tmp-*`` files (checkpoints, JSON),
    ``NAME.tmp-*`` (val.csv, curves.png) and ``.probe-*``. Returns the names removed
    (relative to ``out``)."""
    import glob
    import shutil

    removed = []
    patterns = ("checkpoints/*_temp*", ".tmp-*", "*/.tmp-*", "*.tmp-*", ".probe-*")
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(glob.escape(out), pattern))):
            if not os.path.lexists(path):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed.append(os.path.relpath(path, out))
    return removed


def read_settings(out):
    path = os.path.join(out, "settings.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TrainError(f"{path}: cannot read the run's settings ({exc})") from None


def write_json(path, data):
    """Write JSON atomically: a temporary file beside ``path``, then a rename."""
    from visionfw.graph.schema import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
