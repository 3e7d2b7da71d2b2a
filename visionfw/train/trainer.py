"""The trainer: runs any recipe, and owns everything around its step.

The recipe owns its step (:mod:`visionfw.recipes.base`): ``recipe.train_step(batch, opt)``
calls ``opt.minimize(...)`` once per update it wants. What the trainer does, in one place,
for every recipe:

- the services of ``opt``: each ``minimize`` call's gradient tape, replica scaling,
  all-reduce, clipping to a global norm and apply; the step counter, the checkpointed RNG;
  one traced step function per phase of the recipe's ``period`` (``opt.every(n)``);
- BatchNorm statistics averaged over replicas after each step, so replicas stay identical;
- an optional exponential moving average (EMA) of the weights of the networks the recipe
  names in ``ema``, used for validation and for the saved weights;
- NaN detection: a step whose loss or gradients are not finite stops the run without
  saving, so the last good checkpoint stays the latest; the error names the step;
- validation every N steps (PSNR/SSIM against bicubic, ``val.csv``, TensorBoard,
  ``best.weights.h5``), a Keras progress bar, checkpoints with
  ``tf.train.CheckpointManager``, and a checkpoint on Ctrl-C or SIGTERM;
- a write that fails (a full disk, a permission) stops the run with a one-line
  :class:`~visionfw.train.config.RunWriteError` naming the run folder and the last checkpoint
  kept; every file is written to a temporary and renamed, and the temporaries are removed.

Exact resumption: a checkpoint holds the networks, optimisers (their step counts drive
the learning-rate schedules), the step, the RNG state, the best PSNR, the EMA and the
sampler's probabilities; the data of step ``s`` is a function of ``(seed, s)``.
"""
import csv
import io
import os
import shutil
import signal
import sys
import threading
import time

import numpy as np
import tensorflow as tf

from visionfw.runtime import InferenceFunction
from visionfw.train import TrainError
from visionfw.train.config import check_room, writing
from visionfw.train.distribute import worker_role

LOSS_TAIL = 50          # val.csv's loss: the mean of this many latest step losses
CSV_FIELDS = ["step", "psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "gain", "loss",
              "lr", "seconds"]
STOPPED_WEIGHTS = "stopped.weights.h5"   # the main network where a run stopped early
LOG_EVERY = 10          # train.csv and TensorBoard's train/ scalars: every this many steps
TRAIN_FIELDS = ["step", "loss", "lr", "grad_norm", "steps_per_s", "data_wait_ms"]


def scalar_summary(tag, value):
    """A TensorBoard scalar, written with TensorFlow alone (``tf.summary.scalar`` needs the
    tensorboard package, which training does not)."""
    meta = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=1)   # DATA_CLASS_SCALAR
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=meta.SerializeToString())


def _read(variable):
    """A variable's value as a tensor placed on the replica's device (an all-reduce of a bare
    read of a distributed variable finds no device under MultiWorkerMirroredStrategy)."""
    return tf.identity(getattr(variable, "value", variable))


class NonFiniteLoss(TrainError):
    """A step produced a NaN or infinite loss or gradient."""


class PlainProgress:
    """Progress as one plain line every ``interval`` seconds (no ANSI codes or back-spaces),
    for logs that are not a terminal."""

    def __init__(self, start, end, interval=30.0, stream=None):
        self.start, self.end, self.interval = start, end, interval
        self.stream = stream or sys.stdout
        self.last = time.perf_counter()

    def update(self, done, values):
        now = time.perf_counter()
        if now - self.last < self.interval and self.start + done < self.end:
            return
        self.last = now
        text = " - ".join(f"{k}: {v:.4g}" for k, v in values)
        print(f"step {self.start + done}/{self.end} - {text}", file=self.stream, flush=True)


class _Interval:
    """What happened between two logged steps: the step losses, gradient norms, and the time
    the loop waited for the next batch."""

    def __init__(self):
        self.losses, self.norms, self.wait = [], [], 0.0

    def add(self, loss, norm):
        self.losses.append(loss)
        self.norms.append(norm)

    def row(self, step, lr, rate, timed_wait=True):
        n = max(len(self.losses), 1)
        return {"step": step, "loss": float(np.mean(self.losses)) if self.losses else "",
                "lr": float(lr), "grad_norm": float(np.mean(self.norms)) if self.norms else "",
                "steps_per_s": float(rate),
                "data_wait_ms": 1000.0 * self.wait / n if timed_wait else ""}


class Trainer:
    """Trains a recipe on a patch pipeline.

    Args:
        recipe: the :class:`~visionfw.recipes.base.Recipe` (not built yet).
        pipeline: the :class:`~visionfw.data.pipeline.PatchPipeline`.
        steps: the run's total number of steps.
        run_dir: the run folder (checkpoints, weights, logs, ``val.csv``); ``None`` keeps
            nothing on disk.
        strategy: a ``tf.distribute`` strategy (default: one device).
        seed: seeds the RNG that recipes may use (``self.rng``).
        validation: a :class:`~visionfw.train.validate.ValidationSet` or ``None``.
        val_every: validate (and checkpoint) every this many steps, and at the end.
        save_every: checkpoint every this many steps (default: ``val_every``).
        ema: EMA decay (e.g. 0.999) or ``None``.
        clip_norm: clip the gradients to this global norm, or ``None``.
        jit: compile the forward and backward pass with XLA.
        sampler: ``'uniform'`` or ``'psnr-gain'``; ``sampler_bins``: its histogram bins;
            ``sampler_stride``: the step of its grid of candidate patches (default: the patch
            size).
        log: where one-line messages go (default: stderr).
        progress: show a Keras progress bar.
        keep: checkpoints kept.
    """

    def __init__(self, recipe, pipeline, steps, run_dir=None, strategy=None, seed=0,
                 validation=None, val_every=500, save_every=None, ema=None, clip_norm=None,
                 jit=False, sampler="uniform", sampler_bins=10, sampler_stride=None, log=None,
                 progress=True, keep=3, init_weights=None):
        self.recipe = recipe
        self.pipeline = pipeline
        self.steps = int(steps)
        self.run_dir = run_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.validation = validation
        self.val_every = int(val_every)
        self.save_every = int(save_every or val_every)
        self.ema_decay = ema
        self.clip_norm = clip_norm
        self.jit = bool(jit)
        self.log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.progress = progress
        self.is_chief, self.task_id = worker_role(self.strategy)
        self.stop_requested = None
        self.history = []
        self._recent = []              # the latest step losses (see loss_tail)
        self.on_step = None            # optional callback(trainer, step, losses)
        self.log_every = LOG_EVERY

        import keras

        from visionfw.recipes.base import trainable

        keras.utils.set_random_seed(seed)     # the same seed gives the same initial weights
        with self.strategy.scope():
            recipe.want_gains = sampler == "psnr-gain"
            recipe.build()
            self._check_recipe()
            self.init_report = None
            if init_weights:          # before the EMA copies: they start from these weights
                from visionfw.checkpoint import describe_transfer, transfer_weights

                self.init_report = transfer_weights(recipe.main_network(), init_weights)
                self.log(describe_transfer(init_weights, self.init_report))
                self._init_companions(init_weights)
            self._build_optimizers()
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.best_psnr = tf.Variable(-1.0, dtype=tf.float64, trainable=False,
                                         name="best_psnr")
            self.rng = tf.random.Generator.from_seed(seed)
            ema_nets = [recipe.networks[n] for n in recipe.ema if n in recipe.networks]
            self.ema_targets = trainable(ema_nets)
            self.ema_vars = []
            if ema:
                self.ema_vars = [tf.Variable(tf.convert_to_tensor(v), trainable=False,
                                             name="ema") for v in self.ema_targets]
            self.sampler = None
            if sampler == "psnr-gain":
                from visionfw.data.sampler import PsnrGainSampler, grid_patches

                positions = grid_patches(pipeline.images.shapes, pipeline.patch_size,
                                         sampler_stride)
                self.sampler = PsnrGainSampler(positions, pipeline.batch_size, sampler_bins,
                                               seed)
        # the last LOSS_TAIL step losses (val.csv's loss column), kept across a resume
        self.loss_tail = tf.Variable(tf.zeros([LOSS_TAIL], tf.float64), trainable=False,
                                     name="loss_tail")
        self.loss_count = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_count")
        self.checkpoint = self._make_checkpoint()
        self.manager = None
        if run_dir:
            folder = os.path.join(run_dir, "checkpoints")
            if not self.is_chief:
                # Every worker saves (TensorFlow's rule); only the chief's copy is kept.
                folder = os.path.join(run_dir, f"worker-{self.task_id}", "checkpoints")
            self.manager = tf.train.CheckpointManager(self.checkpoint, folder, max_to_keep=keep,
                                                      checkpoint_name="ckpt")
        self._train_step = self._make_train_step()
        self._predict = InferenceFunction(recipe.predict, name=f"recipe {recipe.name}'s "
                                          "prediction")

    # ------------------------------------------------------------------ construction

    def _check_recipe(self):
        recipe = self.recipe
        if recipe.main not in recipe.networks:
            raise TrainError(f"recipe {recipe.name}: main network {recipe.main!r} is not one of "
                             f"its networks {sorted(recipe.networks)}")
        unknown = [n for n in recipe.ema if n not in recipe.networks]
        if unknown:
            raise TrainError(f"recipe {recipe.name}: ema names {unknown}, which are not among "
                             f"its networks {sorted(recipe.networks)}")
        if int(recipe.period) < 1:
            raise TrainError(f"recipe {recipe.name}: period must be a positive integer")
        have = set(self.pipeline.keys()) if hasattr(self.pipeline, "keys") else None
        if have is not None:
            missing = [k for k in recipe.needs if k not in have]
            if missing:
                raise TrainError(
                    f"recipe {recipe.name} needs batch key(s) {missing}, which this pipeline "
                    f"does not make (it makes {', '.join(sorted(have))}); a kernel comes from a "
                    "blur in --degradation, e.g. 'gaussian(sigma=0.2~4)+bicubic'")

    def _build_optimizers(self):
        from visionfw.recipes.base import trainable

        for name, opt in self.recipe.optimizers.items():
            opt.build(trainable(self.recipe.networks_of(name)))

    def _make_checkpoint(self, legacy=False):
        objects = {"step": self.step, "best_psnr": self.best_psnr, "rng": self.rng}
        if not legacy:          # checkpoints of earlier versions have no loss tail
            objects.update(loss_tail=self.loss_tail, loss_count=self.loss_count)
        for name, net in self.recipe.networks.items():
            objects[f"network_{name}"] = net
        for name, opt in self.recipe.optimizers.items():
            objects[f"optimizer_{name}"] = opt
        if self.ema_vars:
            objects["ema"] = list(self.ema_vars)
        if self.sampler is not None:
            objects["sampler_probs"] = self.sampler.probs
        return tf.train.Checkpoint(**objects)

    def _make_train_step(self):
        """``step(batch)`` (or ``step()`` with the sampler) -> ``(losses, finite, grad_norm)``
        (``grad_norm``: the global norm of the step's gradients, summed over its updates, before
        clipping): one traced function per phase of the recipe's ``period``, picked by the step
        counter."""
        from visionfw.recipes.base import StepServices

        strategy, recipe = self.strategy, self.recipe
        replicas = strategy.num_replicas_in_sync

        def replica_step(batch, phase):
            opt = StepServices(recipe, self.step, self.rng, phase, replicas, self.clip_norm,
                               self.jit)
            out = dict(recipe.train_step(batch, opt))
            if opt.updates == 0:
                raise TrainError(f"recipe {recipe.name}: train_step made no update at phase "
                                 f"{phase} (call opt.minimize)")
            if replicas > 1:
                ctx = tf.distribute.get_replica_context()
                for v in recipe.synced_variables():
                    v.assign(ctx.all_reduce(tf.distribute.ReduceOp.MEAN, _read(v)))
            out["_squares"] = opt.squares
            return out

        def core(batch, phase):
            per_replica = strategy.run(replica_step, args=(batch, phase))
            gains = per_replica.pop("gain", None)
            squares = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica.pop("_squares"),
                                      axis=None)
            losses = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                      for k, v in per_replica.items()}
            finite = tf.math.is_finite(squares)
            for v in losses.values():
                finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(v)))
            if self.ema_vars:
                t = tf.cast(self.step, tf.float32)
                decay = tf.minimum(float(self.ema_decay), (1.0 + t) / (10.0 + t))
                for e, v in zip(self.ema_vars, self.ema_targets):
                    e.assign(decay * e + (1.0 - decay) * _read(v))
            self.step.assign_add(1)
            return losses, finite, gains, tf.sqrt(squares)

        # No autograph: a step has no tensor-dependent Python control flow (schedules are
        # resolved per phase in Python), and converting Keras' internals costs seconds.
        if self.sampler is None:
            def make(phase):
                @tf.function(autograph=False)
                def train_step(batch):
                    losses, finite, _, norm = core(batch, phase)
                    return losses, finite, norm
                return train_step
        else:
            sampler, pipeline = self.sampler, self.pipeline

            def make(phase):
                @tf.function(autograph=False)
                def train_step():
                    ids = sampler.draw(self.step)
                    batch = pipeline.batch_from_positions(tf.gather(sampler.positions, ids),
                                                          self.step)
                    losses, finite, gains, norm = core(batch, phase)
                    sampler.update(ids, gains)
                    return losses, finite, norm
                return train_step

        period = int(recipe.period)
        functions = {}

        def dispatch(*batch):
            phase = int(self.step.numpy()) % period
            if phase not in functions:
                functions[phase] = make(phase)
            return functions[phase](*batch)

        return dispatch

    # ------------------------------------------------------------------ state

    def restore(self):
        """Load the latest checkpoint of the run folder; returns its step (0 if none)."""
        latest = self.manager.latest_checkpoint if self.manager else None
        if self.run_dir and not self.is_chief:
            latest = tf.train.latest_checkpoint(os.path.join(self.run_dir, "checkpoints"))
        if not latest:
            return 0
        try:
            try:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            except AssertionError:
                self._make_checkpoint(legacy=True).restore(
                    latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainError(f"{latest}: checkpoint does not fit this run ({reason})") from None
        return int(self.step.numpy())

    def _folder(self):
        """Where this process writes: the run folder, or a worker's subfolder of it."""
        if self.is_chief:
            return self.run_dir
        return os.path.join(self.run_dir, f"worker-{self.task_id}")

    def _writing(self, what):
        """A write into the run folder: a file-system error (a full disk, a permission) is a
        one-line :class:`~visionfw.train.config.RunWriteError` naming the run folder and the
        last checkpoint kept, with the temporaries removed."""
        return writing(self.run_dir, what, self._folder())

    def save(self):
        """Write a checkpoint of the current step (atomic: TensorFlow writes the files, then
        updates the ``checkpoint`` index with a rename)."""
        if self.manager is None:
            return None
        self.loss_tail.assign(np.pad(self._recent, (0, LOSS_TAIL - len(self._recent))))
        self.loss_count.assign(len(self._recent))
        step = int(self.step.numpy())
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return self.manager.latest_checkpoint
        with self._writing(f"checkpoint ckpt-{step}"):
            return self.manager.save(checkpoint_number=step)

    def swap_ema(self):
        """Exchange the weights with their moving averages (call again to swap back)."""
        for e, v in zip(self.ema_vars, self.ema_targets):
            current = tf.convert_to_tensor(v)
            v.assign(tf.convert_to_tensor(e))
            e.assign(current)

    def _weight_files(self, name):
        """``[(network name, file name)]`` that :meth:`save_weights` writes for ``name``: the
        main network's, then each other network of the recipe's ``saved`` (``best.weights.h5``
        -> ``best.predictor.weights.h5``)."""
        stem = name[: -len(".weights.h5")] if name.endswith(".weights.h5") else name
        main = self.recipe.main
        return [(main, name)] + [(net, f"{stem}.{net}.weights.h5")
                                 for net in getattr(self.recipe, "saved", ()) if net != main]

    def _init_companions(self, init_weights):
        """A multi-network run started from ``RUN/NAME.weights.h5`` also starts each other
        network of the recipe's ``saved`` from ``RUN/NAME.<network>.weights.h5`` when that file
        lies beside it (a later stage of a staged training: DegNet with its SynNet); a network
        without its file starts fresh, and the log says which. Frozen networks are left alone:
        they come from their own option (``redegnet-sr --redeg``), which a file beside the
        given one must not replace."""
        from visionfw.checkpoint import describe_transfer, transfer_weights

        folder, name = os.path.split(init_weights)
        if not name.endswith(".weights.h5"):
            return
        fresh = []
        for net, file_name in self._weight_files(name)[1:]:
            path = os.path.join(folder, file_name)
            if net not in self.recipe.networks or not self.recipe.networks[net].trainable:
                continue
            if not os.path.isfile(path):
                fresh.append(net)
                continue
            self.log(describe_transfer(path, transfer_weights(self.recipe.networks[net], path)))
        if fresh:
            self.log(f"--init-weights: no {', '.join(fresh)} file beside {name}; "
                     f"{'it starts' if len(fresh) == 1 else 'they start'} from random weights")

    def _remove_stopped_weights(self):
        """A finished run's ``last`` weights supersede those of an earlier stop."""
        if not (self.run_dir and self.is_chief):
            return
        for _, name in self._weight_files(STOPPED_WEIGHTS):
            path = os.path.join(self._folder(), name)
            if os.path.exists(path):
                os.remove(path)

    def save_weights(self, name):
        """Write the main network (EMA weights when EMA is on) to ``run_dir/name``, and each
        other network the recipe lists in ``saved`` beside it (:meth:`_weight_files`)."""
        from visionfw.checkpoint import save_model

        if not self.run_dir:
            return None
        folder = self._folder()
        if self.ema_vars:
            self.swap_ema()
        try:
            for net, file_name in self._weight_files(name):
                with self._writing(file_name):
                    check_room(folder, self.recipe.networks[net])
                    save_model(self.recipe.networks[net], os.path.join(folder, file_name))
        finally:
            if self.ema_vars:
                self.swap_ema()
        return os.path.join(folder, name)

    # ------------------------------------------------------------------ validation

    def validate(self):
        """Scores of the current (EMA) weights on the validation set, or ``None``."""
        if self.validation is None or len(self.validation) == 0:
            return None
        if self.ema_vars:
            self.swap_ema()
        try:
            return self.validation.evaluate(self.predict_arrays,
                                            crop=self.recipe.score_crop,
                                            with_hr=self.recipe.val_with_hr)
        finally:
            if self.ema_vars:
                self.swap_ema()

    def predict_arrays(self, inputs):
        """The recipe's prediction for a dict of NumPy batches, as a NumPy array (and, for a
        recipe with ``val_metrics``, the dict of its per-image measures)."""
        out = self._predict({k: tf.constant(v) for k, v in inputs.items()})
        if isinstance(out, (tuple, list)):
            return out[0].numpy(), {k: v.numpy() for k, v in out[1].items()}
        return out.numpy()

    def _csv_path(self):
        return os.path.join(self.run_dir, "val.csv") if self.run_dir and self.is_chief else None

    def _load_history(self, step):
        path = self._csv_path()
        self.history = []
        if path and os.path.isfile(path):
            with open(path, newline="") as f:
                self.history = [r for r in csv.DictReader(f) if int(r["step"]) <= step]

    def _write_history(self):
        path = self._csv_path()
        if not path:
            return
        fields = CSV_FIELDS[:6] + list(self.recipe.val_metrics) + CSV_FIELDS[6:]
        self._write_csv(path, fields, self.history)

    def _write_csv(self, path, fields, rows):
        """``rows`` as the CSV file ``path`` of the run folder, written to a temporary file and
        renamed (a kill leaves the old file or the new one)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        tmp = f"{path}.tmp-{os.getpid()}"
        with self._writing(os.path.basename(path)):
            try:
                with open(tmp, "w", newline="") as f:
                    f.write(buf.getvalue())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def _train_csv_path(self):
        return os.path.join(self.run_dir, "train.csv") if self.run_dir and self.is_chief else None

    def _truncate_train_csv(self, step):
        """``train.csv`` without the rows after ``step`` (a resume redoes them) and without a
        line a kill cut short."""
        path = self._train_csv_path()
        if not path or not os.path.isfile(path):
            return
        with open(path, newline="") as f:
            rows = []
            for r in csv.DictReader(f):
                try:
                    if int(r["step"]) <= step and None not in r.values():
                        rows.append(r)
                except (TypeError, ValueError):
                    pass
        self._write_csv(path, TRAIN_FIELDS, rows)

    def _append_train_csv(self, row):
        path = self._train_csv_path()
        if not path:
            return
        new = not os.path.isfile(path)
        with self._writing("train.csv"), open(path, "a", newline="") as f:
            out = csv.DictWriter(f, fieldnames=TRAIN_FIELDS, lineterminator="\n")
            if new:
                out.writeheader()
            out.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                          for k, v in row.items()})

    def _log_hparams(self, writer):
        """The run's settings in TensorBoard's HParams tab (with the tensorboard package)."""
        settings = getattr(self, "hparams", None)
        if writer is None or not settings:
            return
        try:
            from tensorboard.plugins.hparams import api as hp_api
        except ImportError:
            return
        values = {k: (v if isinstance(v, (bool, int, float, str)) else str(v))
                  for k, v in settings.items() if v is not None}
        with self._writing("logs/"), writer.as_default():
            hp_api.hparams(values, trial_id=os.path.basename(os.path.abspath(self.run_dir)))

    # ------------------------------------------------------------------ the loop

    def _learning_rate(self):
        opt = next(iter(self.recipe.optimizers.values()))
        return float(np.asarray(opt.learning_rate))

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def handler(signum, frame):
            name = signal.Signals(signum).name
            if self.stop_requested:
                raise KeyboardInterrupt   # a second signal: stop at once
            self.stop_requested = name
            self.log(f"{name}: saving a checkpoint after this step, then stopping "
                     "(send it again to stop at once)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def fit(self, resume=False, stop_at=None):
        """Train to ``steps`` (or to ``stop_at``, for tests and budgets).

        Returns ``{"step", "best_psnr", "stopped", "last_val", "first_step_s"}``; ``stopped``
        is ``None`` when the run reached ``steps``, else ``'SIGINT'``, ``'SIGTERM'`` or
        ``'stop_at'``; ``first_step_s`` the seconds from the process start to the end of its
        first step (``None`` when it made none).
        Raises :class:`NonFiniteLoss` when a step is not finite.
        """
        start = self.restore() if resume else 0
        if stop_at is not None and int(stop_at) < start:
            raise TrainError(f"--stop-at {stop_at}: the run is already at step {start}")
        if not resume:
            self.save()                      # step 0: there is always a good checkpoint
        self._load_history(start)
        end = self.steps if stop_at is None else min(self.steps, int(stop_at))
        writer = None
        if self.run_dir and self.is_chief:
            with self._writing("logs/"):
                writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "logs"))
        if not resume:
            self._log_hparams(writer)
        previous = self._install_signals()
        result = {"step": start, "best_psnr": None, "stopped": None, "last_val": None}
        self.first_step_s = None
        failed = True
        try:
            result.update(self._loop(start, end, writer))
            failed = False
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if writer is not None:
                try:
                    with self._writing("logs/"):
                        writer.close()
                except TrainError:
                    if not failed:        # else the error on its way out says more
                        raise
        best = float(self.best_psnr.numpy())
        result["best_psnr"] = best if best >= 0 else None
        result["first_step_s"] = self.first_step_s
        if result["step"] >= self.steps:
            self.save_weights("last.weights.h5")
            self._remove_stopped_weights()
        elif result["stopped"] is not None and self.is_chief:
            # the weights where the run stopped, for the next stage of a staged training
            # (--init-weights RUN/stopped.weights.h5); the run itself continues with --resume
            self.save_weights(STOPPED_WEIGHTS)
        if not self.is_chief and self.run_dir and result["stopped"] is None:
            shutil.rmtree(os.path.join(self.run_dir, f"worker-{self.task_id}", "checkpoints"),
                          ignore_errors=True)
        return result

    def _loop(self, start, end, writer):
        import keras

        if self.sampler is None:
            data = iter(self.pipeline.distribute(self.strategy, start, self.steps))
        bar = None
        if self.progress and end > start:
            if sys.stdout.isatty():
                bar = keras.utils.Progbar(end - start, interval=0.5,
                                          stateful_metrics=["loss", "val_psnr", "steps/s"])
            else:
                bar = PlainProgress(start, end)      # a log file gets plain lines
        count = int(self.loss_count.numpy())
        self._recent = [float(x) for x in self.loss_tail.numpy()[:count]]
        last_val = None
        times = [time.perf_counter()]
        # val.csv's seconds count the training time of the run, across resumes
        t0 = time.time() - (float(self.history[-1]["seconds"]) if self.history else 0.0)
        step = start
        logged = _Interval()               # what train.csv and TensorBoard get every LOG_EVERY
        self._truncate_train_csv(start)
        while step < end:
            if self.sampler is None:
                waited = time.perf_counter()
                batch = next(data)
                logged.wait += time.perf_counter() - waited
                losses, finite, norm = self._train_step(batch)
            else:                            # the batch is drawn inside the traced step
                losses, finite, norm = self._train_step()
            step += 1
            losses = {k: float(v) for k, v in losses.items()}
            if self.first_step_s is None:       # start-up, tracing and the step itself
                from visionfw.runtime import STARTED

                self.first_step_s = time.time() - STARTED
            if not bool(finite):
                last = self.manager.latest_checkpoint if self.manager else None
                where = f"; the last good checkpoint is {last}" if last else ""
                raise NonFiniteLoss(f"loss or gradients became NaN/inf at step {step} "
                                    f"(loss {losses}); stopped without saving{where}")
            main_loss = losses.get("loss", next(iter(losses.values())))
            self._recent = (self._recent + [main_loss])[-LOSS_TAIL:]
            times = (times + [time.perf_counter()])[-21:]
            rate = (len(times) - 1) / max(times[-1] - times[0], 1e-9)
            if self.on_step is not None:
                self.on_step(self, step, losses)
            logged.add(main_loss, float(norm))
            if step % self.log_every == 0 or step == end:
                row = logged.row(step, self._learning_rate(), rate,
                                 timed_wait=self.sampler is None)
                self._append_train_csv(row)
                if writer is not None:
                    with self._writing("logs/"), writer.as_default(step=step):
                        for k, v in losses.items():
                            scalar_summary(f"train/{k}", v)
                        scalar_summary("train/learning_rate", row["lr"])
                        scalar_summary("train/grad_norm", row["grad_norm"])
                        scalar_summary("train/steps_per_s", row["steps_per_s"])
                        if row["data_wait_ms"] != "":
                            scalar_summary("train/data_wait_ms", row["data_wait_ms"])
                logged = _Interval()
            if step % self.val_every == 0 or step == self.steps:
                last_val = self._validate_and_record(step, float(np.mean(self._recent)), t0,
                                                     writer)
            if step % self.save_every == 0 or step == self.steps:
                self.save()
            if bar is not None:
                values = [("loss", float(np.mean(self._recent))), ("steps/s", rate)]
                if last_val is not None:
                    values.append(("val_psnr", last_val["psnr"]))
                bar.update(step - start, values)
            if self.stop_requested:
                self.save()
                if bar is not None:
                    print(flush=True)
                self.log(f"stopped at step {step} ({self.stop_requested}); checkpoint saved in "
                         f"{self.run_dir}; continue with --resume")
                return {"step": step, "stopped": self.stop_requested, "last_val": last_val}
        if end < self.steps:
            self.save()
            self.log(f"stopped at step {step} of {self.steps} (--stop-at); checkpoint saved in "
                     f"{self.run_dir}; continue with --resume")
            return {"step": step, "stopped": "stop_at", "last_val": last_val}
        return {"step": step, "stopped": None, "last_val": last_val}

    def _log_pictures(self):
        """TensorBoard images of the first validation images (``Validation.previews``): the
        labelled comparison grid and, for a recipe that estimates kernels, the estimate
        beside the true kernel (and a learned degradation's kernel draws,
        ``kernel_samples``)."""
        previews = self.validation.previews
        for preview in previews:
            self._log_picture(preview)
        samples = previews[0]["pictures"].get("kernel_samples") if previews else None
        if samples is not None:          # a learned degradation's draws, whatever the image
            from visionfw.degradation import kernel_grid

            with self._writing("logs/"):
                tf.summary.image("val/kernel_samples", kernel_grid(list(samples))[None])

    def _log_picture(self, preview):
        from visionfw.evaluate.pictures import comparison_grid, grid_captions
        from visionfw.metrics import to_uint8
        from visionfw.resize import imresize

        scale = self.validation.scale
        bicubic = np.clip(np.asarray(imresize(preview["lr"], scale=float(scale))), 0, 1)
        grid = comparison_grid(to_uint8(preview["lr"]), to_uint8(bicubic),
                               to_uint8(preview["sr"]), preview["hr"], scale,
                               captions=grid_captions(scale, (preview["psnr"],
                                                              preview["bicubic_psnr"])))
        with self._writing("logs/"):
            tf.summary.image(f"val/comparison/{preview['name']}", grid[None])
        estimate, true = preview["pictures"].get("kernel"), preview["true_kernel"]
        if estimate is not None:
            from visionfw.degradation import kernel_grid

            picture = kernel_grid([estimate], None if true is None else [np.asarray(true)])
            with self._writing("logs/"):
                tf.summary.image(f"val/kernel/{preview['name']}", picture[None])

    def _plot_curves(self):
        """``curves.png`` in the run folder, redrawn at each validation."""
        if not self.run_dir or not self.is_chief:
            return
        from visionfw.train.curves import plot_curves, read_rows

        run = os.path.basename(os.path.abspath(self.run_dir))
        try:
            with self._writing("curves.png"):
                plot_curves(self.history, os.path.join(self.run_dir, "curves.png"),
                            title=f"{self.recipe.main_network().name} ({run})",
                            train_rows=read_rows(self._train_csv_path()))
        except ImportError:                  # matplotlib is a dependency; a trimmed install
            pass

    def _validate_and_record(self, step, loss, t0, writer):
        if not self.is_chief:
            return None
        scores = self.validate()
        if scores is None:
            return None
        gain = scores["psnr"] - scores["bicubic_psnr"]
        row = {"step": step, "psnr": f"{scores['psnr']:.4f}", "ssim": f"{scores['ssim']:.5f}",
               "bicubic_psnr": f"{scores['bicubic_psnr']:.4f}",
               "bicubic_ssim": f"{scores['bicubic_ssim']:.5f}", "gain": f"{gain:.4f}",
               "loss": f"{loss:.6f}", "lr": f"{self._learning_rate():.3e}",
               "seconds": f"{time.time() - t0:.1f}"}
        extra = {name: scores[name] for name in self.recipe.val_metrics}
        row.update({name: f"{value:.6g}" for name, value in extra.items()})
        self.history.append(row)
        self._write_history()
        if writer is not None:
            with writer.as_default(step=step):
                with self._writing("logs/"):
                    scalar_summary("val/psnr", scores["psnr"])
                    scalar_summary("val/ssim", scores["ssim"])
                    scalar_summary("val/gain_over_bicubic", gain)
                    for name, value in extra.items():
                        scalar_summary(f"val/{name}", value)
                self._log_pictures()
        self._plot_curves()
        best_by = getattr(self.recipe, "best_by", "psnr")     # a kernel estimator: kernel_psnr
        if best_by is None:         # nothing ranks the weights: keep the latest validated
            self.save_weights("best.weights.h5")
            improved = False
        else:
            improved = scores[best_by] > float(self.best_psnr.numpy())
            if improved:
                self.best_psnr.assign(scores[best_by])
                self.save_weights("best.weights.h5")
        mark = " (best)" if improved else ""
        self.log(f"\nstep {step}: val PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f} "
                 f"(bicubic {scores['bicubic_psnr']:.3f} / {scores['bicubic_ssim']:.4f}, "
                 f"gain {gain:+.3f} dB)"
                 + "".join(f", {name} {value:.4g}" for name, value in extra.items()) + mark)
        return scores




