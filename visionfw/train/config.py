"""The settings of a training run: typed defaults, checks, and ``settings.json``."""
import dataclasses
import json
import os
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
                "init_weights")


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
    pairs, a second stream under ``lq`` and ``hq``.
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
        return cls(**{k: v for k, v in d.items() if k in names})


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
