"""A training run from its settings: what ``train.py MODEL [options]`` calls.

Order of work: settings and the model's hyperparameters are checked, the run folder is
created, proved writable and locked, and only then does TensorFlow start, the data load and
the training begin — so a typo costs a second, not a TensorFlow start-up. A start that fails
(before the first training step) removes the run folder it created; the lock
(:class:`~visionfw.train.config.RunLock`) is released however the run ends.
"""
import datetime
import os
import shutil
import signal
import sys
import threading
import time

from visionfw.errors import VisionfwError
from visionfw.train import TrainError
from visionfw.train.config import (RUN_DEFINING, RunLock, TrainConfig, clean_leftovers,
                                   lock_name, prepare_run_folder, read_settings, write_json,
                                   writing)


def resolve_model_and_scale(config):
    """``(dict, name, hparams)`` of the run's model, with ``config.scale`` filled in."""
    from visionfw import models

    hp = dict(config.hparams)
    if config.scale is not None and isinstance(config.model, str) and models.has_model(config.model):
        if "scale" in models.model_hparams(config.model):
            if "scale" in hp and int(hp["scale"]) != config.scale:
                raise TrainError(f"--scale {config.scale} and --param scale={hp['scale']} "
                                 "disagree")
            hp["scale"] = config.scale
    d, name, hparams = models.resolve_model(config.model, **hp)
    scale = (d.get("meta") or {}).get("scale")
    if config.scale is None:
        if not scale:
            raise TrainError(f"{config.model}: its dictionary names no scale in 'meta'; "
                             "give --scale")
        config.scale = int(scale)
    elif scale and int(scale) != config.scale:
        raise TrainError(f"--scale {config.scale} but the model up-samples x{scale}")
    elif not scale:
        # the checkpoints carry what test.py needs: the scale this dictionary was trained at
        d = dict(d, meta=dict(d.get("meta") or {}, scale=config.scale))
    check_scales(config, d)
    return d, name, hparams


def takes_scale(d):
    """Whether a dictionary's network takes the scale as an input (``meta['scales'] ==
    'input'``, as USRNet declares, or an input of role ``scale``), so it trains on several."""
    from visionfw.conditioning import ConditioningError, roles_of

    if (d.get("meta") or {}).get("scales") == "input":
        return True
    try:
        return "scale" in roles_of(d)
    except ConditioningError:
        return False


def check_scales(config, d):
    """``--scales`` needs a network that takes the scale as an input; a network of fixed scale
    accepts only its own."""
    scales = [int(s) for s in config.scales or ()]
    if not scales or takes_scale(d) or all(s == int(config.scale) for s in scales):
        return
    listed = ",".join(map(str, scales))
    raise TrainError(f"--scales {listed}: {d.get('name') or config.model} up-samples "
                     f"x{config.scale} only (its scale is fixed); --scales is for networks "
                     "that take the scale as an input (e.g. usrnet); give --scale N instead")


def recipe_name(config, model):
    """The recipe of a run: ``--recipe``, else the one the model names (``register_model(...,
    recipe=)`` or the dictionary's ``meta['recipe']``), else ``'sr'``."""
    from visionfw import models

    if config.recipe:
        return config.recipe
    d, name, _ = model
    if name:
        return models.get_model_def(name).recipe
    return (d.get("meta") or {}).get("recipe", "sr")


def recipe_as_model(config):
    """``train.py ikc ...``: a recipe named in MODEL's place trains the model it declares
    (``Recipe.model``), with itself as the recipe."""
    from visionfw import models

    name = config.model
    if (not isinstance(name, str) or models.has_model(name) or name.lower().endswith(".json")
            or os.sep in name):
        return config
    from visionfw import runtime

    runtime.import_tensorflow_quietly(start=False)
    from visionfw.recipes.base import RECIPES

    cls = RECIPES.find(name)
    if cls is None or not getattr(cls, "model", None):
        return config
    if config.recipe and config.recipe != cls.name:
        raise TrainError(f"MODEL {name} is the recipe {cls.name}, but --recipe says "
                         f"{config.recipe}")
    config.recipe, config.model = cls.name, cls.model
    return config


def recipe_of(config):
    """The recipe class a configuration trains with (before any run folder is touched)."""
    import copy

    from visionfw import runtime

    config = recipe_as_model(copy.deepcopy(config))
    runtime.import_tensorflow_quietly(start=False)
    from visionfw.recipes.base import get_recipe

    return get_recipe(recipe_name(config, resolve_model_and_scale(config)))


def apply_recipe_degradation(config, explicit=(), log=None):
    """A recipe's own training degradation (SFTMD's and IKC's Gaussian blurs, USRNet's mixed
    blurs) when the run was not given one; returns the spec used."""
    if config.degradation != "bicubic" or "degradation" in (explicit or ()):
        return config.degradation
    cls = recipe_of(config)
    default = cls.default_degradation(config.scale)
    if default:
        config.degradation = default
        if log:
            log(f"degradation: {default} (recipe {cls.name}'s default; --degradation changes "
                "it)")
    return config.degradation


def apply_recipe_clip_norm(config, explicit=(), log=None):
    """A recipe's own gradient clipping (PDM's 50) when the run was not given ``--clip-norm``;
    returns the norm used."""
    if config.clip_norm is not None or "clip_norm" in (explicit or ()):
        return config.clip_norm
    cls = recipe_of(config)
    if cls.default_clip_norm:
        config.clip_norm = float(cls.default_clip_norm)
        if log:
            log(f"clip-norm: {config.clip_norm:g} (recipe {cls.name}'s default; --clip-norm "
                "changes it)")
    return config.clip_norm


def resolve_recipe(config, model):
    """The recipe class of the run, with ``config.recipe`` and ``config.recipe_params`` set to
    its name and typed parameters (an unknown recipe or parameter is a one-line error)."""
    from visionfw import runtime

    runtime.import_tensorflow_quietly(start=False)     # recipes are TensorFlow code
    from visionfw.recipes.base import get_recipe

    cls = get_recipe(recipe_name(config, model))
    config.recipe = cls.name
    try:
        config.recipe_params = cls.resolve_options(config.recipe_params or {})
    except VisionfwError as exc:
        raise TrainError(str(exc)) from None
    return cls


def check_folders(config):
    """A one-line error for a data folder option that names no folder (before TensorFlow is
    imported, so a mistyped path is reported at once)."""
    for flag, folders in (("--train-dir", config.train_dirs), ("--val-dir", config.val_dirs),
                          ("--unpaired-dir", config.unpaired_dirs),
                          ("--pair-dir", config.pair_dirs)):
        for folder in folders:
            if not os.path.isdir(folder):
                raise TrainError(f"{flag} {folder}: no such folder")


def preflight(config, data=True):
    """Checks that need the scale but not TensorFlow: settings, folders, the degradation.
    ``data=False`` (a dry run) leaves out the folders and the cluster."""
    config.check()
    for s in config.scales or [config.scale]:
        if config.patch_size % int(s):
            raise TrainError(f"--patch-size {config.patch_size} must be a multiple of --scale "
                             f"{s}")
    if data:
        check_folders(config)
    for folder in config.pair_dirs if data else ():
        pair_folders(folder)
    if config.init_weights:
        from visionfw.checkpoint import read_spec
        from visionfw.errors import CheckpointError

        try:
            read_spec(config.init_weights)
        except CheckpointError as exc:
            raise TrainError(f"--init-weights {exc}") from None
    from visionfw.degradation import get_protocol

    get_protocol(config.degradation, config.scale, seed=config.seed)
    if config.strategy == "multiworker" and data:
        from visionfw.train.distribute import check_tf_config

        check_tf_config()


def dry_run(config, explicit=()):
    """The checks :func:`train` makes of the settings before it reads an image or touches a
    run folder -- the model and its hyperparameters, the recipe and its parameters, the
    degradation, the patch size -- for ``train.py --config FILE --summary``. The data folders,
    the files a recipe starts from (IKC's SFTMD) and the cluster are left for the run.
    Returns ``(config, (dict, name, hparams), recipe class)``."""
    config = recipe_as_model(config)
    config.check()
    model = resolve_model_and_scale(config)
    apply_recipe_degradation(config, explicit)
    apply_recipe_clip_norm(config, explicit)
    preflight(config, data=False)
    recipe_cls = resolve_recipe(config, model)
    recipe_cls.check_model(config, model[0])
    return config, model, recipe_cls


def default_out(config, name):
    stem = name or os.path.splitext(os.path.basename(str(config.model)))[0]
    return os.path.join("runs", f"{stem}_x{config.scale}")


def merge_for_resume(config, saved, explicit, log=None):
    """The saved settings, with the options given on this command line on top.

    An explicitly given option that changes what the run computes is an error: a resumed
    run must reach what the uninterrupted run would have.
    """
    base = TrainConfig.from_dict(saved["settings"])
    changed, extended = [], None
    for key in explicit:
        new, old = getattr(config, key), getattr(base, key)
        if key == "recipe_params" and base.recipe:       # parameters added since keep defaults
            old = _typed_recipe_params(base.recipe, old or {})
            new = _typed_recipe_params(base.recipe, {**old, **(new or {})})
        if key == "steps" and new is not None and old is not None and new > old:
            extended = (old, new)          # a longer run: allowed, the schedule is stretched
        elif key in RUN_DEFINING and new != old:
            changed.append(f"--{key.replace('_', '-')} {new!r} (run has {old!r})")
        setattr(base, key, new)
    if config.model != base.model or (config.hparams and config.hparams != base.hparams):
        changed.insert(0, f"model {config.model} {config.hparams or ''} (run has "
                          f"{base.model} {base.hparams})")
    if changed:
        raise TrainError("--resume keeps the run's settings; these differ: " + "; ".join(changed)
                         + (" (only --steps may grow, to extend the run)"
                            if any(c.startswith("--steps") for c in changed) else ""))
    base.out = config.out
    if extended and log:
        log(f"--steps {extended[1]}: extending the run from {extended[0]} steps; the "
            f"{base.schedule} schedule now runs to step {extended[1]} (the learning rate "
            "follows the longer schedule from the step reached)")
    return base


def _typed_recipe_params(recipe, given):
    """Recipe parameters as the run records them: typed, defaults filled in."""
    from visionfw import runtime

    runtime.import_tensorflow_quietly(start=False)
    from visionfw.recipes.base import get_recipe

    try:
        return get_recipe(recipe).resolve_options(given)
    except VisionfwError as exc:
        raise TrainError(str(exc)) from None


def image_folder(path):
    """A folder of images, or a benchmark folder whose images are in ``HR/``."""
    from visionfw.imageio import IMAGE_EXTENSIONS

    if os.path.isdir(path):
        has_images = any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(path))
        hr = os.path.join(path, "HR")
        if not has_images and os.path.isdir(hr):
            return hr
    return path


def load_training_images(config):
    from visionfw.data import embedded
    from visionfw.data.images import ImageSet

    if not config.train_dirs:
        return ImageSet.from_arrays(embedded.train_images()), embedded.NAME
    folders = [image_folder(p) for p in config.train_dirs]
    return ImageSet.from_folders(folders, cache=config.cache), ", ".join(config.train_dirs)


def pair_folders(folder):
    """``(lq, hq)`` subfolders of a paired folder: ``LQ``/``HQ`` or ``LR``/``HR``."""
    for lq, hq in (("LQ", "HQ"), ("LR", "HR"), ("lq", "hq"), ("lr", "hr")):
        a, b = os.path.join(folder, lq), os.path.join(folder, hq)
        if os.path.isdir(a) and os.path.isdir(b):
            return a, b
    raise TrainError(f"--pair-dir {folder}: expected subfolders LQ/ and HQ/ (or LR/ and HR/) "
                     "holding images of the same names")


def second_stream(config):
    """The run's second stream of patches, or ``None``."""
    from visionfw.data.images import ImageSet
    from visionfw.data.pipeline import PairedPatches, UnpairedPatches

    if config.unpaired_dirs:
        images = ImageSet.from_folders([image_folder(p) for p in config.unpaired_dirs],
                                       cache=config.cache)
        return UnpairedPatches(images, config.patch_size // config.scale, config.seed)
    if config.pair_dirs:
        pairs = [pair_folders(p) for p in config.pair_dirs]
        lq = ImageSet.from_folders([a for a, _ in pairs], cache=config.cache)
        hq = ImageSet.from_folders([b for _, b in pairs], cache=config.cache)
        return PairedPatches(lq, hq, config.scale, config.patch_size, config.seed)
    return None


def load_validation_images(config):
    from visionfw.data import embedded
    from visionfw.train.validate import validation_images

    if not config.val_dirs:
        return embedded.val_images(), f"{embedded.NAME} (held out)"
    return (validation_images([image_folder(p) for p in config.val_dirs]),
            ", ".join(config.val_dirs))


def build_trainer(config, model, log=None, progress=True, validation=True, strategy=None,
                  resume=False):
    """Everything but the loop: data, validation set, strategy, recipe and :class:`Trainer`.

    ``model`` is ``(dict, name, hparams)`` from :func:`resolve_model_and_scale`; TensorFlow
    must already be running.
    """
    from visionfw.data.pipeline import PatchPipeline
    from visionfw.train.distribute import make_strategy
    from visionfw.train.schedule import make_schedule
    from visionfw.train.trainer import Trainer
    from visionfw.train.validate import ValidationSet

    d, name, hparams = model
    recipe_cls = resolve_recipe(config, model)
    if strategy is None:
        strategy = make_strategy(config.strategy, config.cpu_devices)
    images, _ = load_training_images(config)
    scales = [int(s) for s in config.scales] or config.scale
    pipeline = PatchPipeline(images, scales, config.patch_size, config.batch_size,
                             config.degradation, config.seed, extra=second_stream(config))
    val = None
    if validation:
        val_images, _ = load_validation_images(config)
        val = ValidationSet(val_images, config.scale, config.degradation, config.val_seed)
    schedule = make_schedule(config.schedule, config.lr, config.steps, config.milestones,
                             config.gamma)
    from visionfw.runtime import set_precision

    set_precision(config.precision)
    recipe = recipe_cls(config, d, name, hparams, schedule, config.recipe_params)
    trainer = Trainer(recipe, pipeline, config.steps, run_dir=config.out, strategy=strategy,
                      seed=config.seed, validation=val, val_every=config.val_every,
                      save_every=config.save_every, ema=config.ema, clip_norm=config.clip_norm,
                      jit=config.jit, sampler=config.sampler, sampler_bins=config.sampler_bins,
                      sampler_stride=config.sampler_stride,
                      log=log, progress=progress,
                      init_weights=None if resume else config.init_weights)
    trainer.hparams = _flat_settings(config)         # TensorBoard's HParams tab
    return trainer


def _flat_settings(config):
    """The run's settings as one flat ``{name: value}`` (model and recipe parameters by
    ``param/NAME`` and ``recipe/NAME``)."""
    flat = {}
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            prefix = {"hparams": "param", "recipe_params": "recipe"}.get(key, key)
            flat.update({f"{prefix}/{k}": v for k, v in value.items()})
        elif isinstance(value, (list, tuple)):
            flat[key] = ",".join(str(v) for v in value)
        else:
            flat[key] = value
    return flat


def train(config, argv=None, resume=False, explicit=(), log=None, progress=True, stop_at=None,
          threads=None):
    """Run (or resume) a training run; returns the trainer's result dict.

    Args:
        config: a :class:`TrainConfig`.
        argv: the command line, recorded in ``settings.json``.
        resume: continue the run in ``config.out`` from its latest checkpoint.
        explicit: names of settings given on the command line (they override saved ones).
        stop_at: stop (with a checkpoint) after this step.
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    previous = _stop_on_sigterm(log)
    try:
        return _train(config, argv, resume, explicit, log, progress, stop_at, threads)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm(log):
    """Before training (the trainer then saves a checkpoint on SIGTERM), SIGTERM ends the
    command like Ctrl-C: the lock is released and a new run folder removed. Returns the
    previous handler (``None`` outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        log("SIGTERM: stopped before training")
        raise SystemExit(143)

    return signal.signal(signal.SIGTERM, handler)


def _new_folder(path):
    """The outermost folder that creating ``path`` would create, or ``None`` if it exists."""
    path, created = os.path.abspath(path), None
    while not os.path.lexists(path):
        created, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return created


def _train(config, argv, resume, explicit, log, progress, stop_at, threads):
    check_folders(config)
    config = recipe_as_model(config)
    from_settings = resume
    if resume:
        if not config.out:
            raise TrainError("--resume needs --out RUN_DIR (the run to continue)")
        has_checkpoint = os.path.isfile(os.path.join(config.out, "checkpoints", "checkpoint"))
        saved = read_settings(config.out) if os.path.isdir(config.out) else None
        if saved is None:
            if not has_checkpoint:
                raise TrainError(f"--resume: {config.out} holds no checkpoint to resume from")
            raise TrainError(f"--resume: {config.out} has no settings.json")
        config = merge_for_resume(config, saved, explicit, log)
        if not has_checkpoint:      # stopped before its first checkpoint was complete
            log(f"--resume: {config.out} has no complete checkpoint yet; starting the run "
                "from step 0 with its settings")
            resume = False
    from visionfw.plugins import load_user_plugins

    # the run's user plugins (a resumed run's from its settings.json) and this process's
    # (--plugin, VISIONFW_PLUGINS): all recorded, so --resume and --config load them again
    where = os.path.join(config.out, "settings.json") if from_settings else None
    config.plugins = load_user_plugins(config.plugins, env=False, source=where)
    config.check()
    if stop_at is not None and stop_at >= config.steps:
        raise TrainError(f"--stop-at {stop_at} must be below --steps ({config.steps}): the run "
                         "ends there anyway")
    model = resolve_model_and_scale(config)
    notes = []              # said once the checks pass, so a refusal stays one line
    if not from_settings:
        apply_recipe_degradation(config, explicit, notes.append)
        apply_recipe_clip_norm(config, explicit, notes.append)
    preflight(config)
    recipe_cls = resolve_recipe(config, model)
    recipe_cls.check_run(config)
    recipe_cls.check_model(config, model[0])
    for note in notes:
        log(note)
    if not config.out:
        config.out = default_out(config, model[1])

    created = _new_folder(config.out)      # removed again if the start fails
    lock = trainer = None
    try:
        from visionfw.fsutil import unwritable_reason

        reason = unwritable_reason(config.out)
        if reason:
            raise TrainError(f"run folder {config.out} is not writable: {reason}")
        lock = RunLock.acquire(config.out, lock_name(config.strategy), log)
        removed = clean_leftovers(config.out)
        if removed:
            log(f"removed what an interrupted write left in {config.out}: "
                + ", ".join(removed[:5]) + (f" and {len(removed) - 5} more"
                                            if len(removed) > 5 else ""))
        prepare_run_folder(config.out, resume)

        from visionfw.train.distribute import start

        strategy = start(config.strategy, config.cpu_devices, threads)
        trainer = build_trainer(config, model, log=log, progress=progress, strategy=strategy,
                                resume=resume)
        if trainer.is_chief:
            _write_settings(config, model, argv, resume)
        t0 = time.time()
        result = trainer.fit(resume=resume, stop_at=stop_at)
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
        if created and not (trainer is not None and int(trainer.step.numpy()) > 0):
            shutil.rmtree(created, ignore_errors=True)     # a failed start leaves nothing
        raise
    finally:
        if lock is not None:
            lock.release()
    result["seconds"] = time.time() - t0
    result["out"] = config.out
    if trainer.is_chief and result["stopped"] is None:
        best = result["best_psnr"]
        where = os.path.join(config.out, "best.weights.h5")
        bic = trainer.validation.bicubic_psnr if trainer.validation else None
        best_by = getattr(trainer.recipe, "best_by", "psnr")
        if best is None or bic is None:
            text = ""
        elif best_by == "psnr":
            text = f"; best validation PSNR {best:.3f} dB (bicubic {bic:.3f} dB) in {where}"
        else:
            text = f"; best validation {best_by} {best:.3f} in {where}"
        first = result.get("first_step_s")
        first = "" if first is None else f" (first step {first:.0f} s after start)"
        log(f"trained {config.out} to step {result['step']} in {result['seconds']:.0f} s{first}"
            f"{text}")
    return result


def _write_settings(config, model, argv, resume):
    import keras
    import tensorflow as tf

    path = os.path.join(config.out, "settings.json")
    now = datetime.datetime.now().isoformat(timespec="seconds")
    previous = read_settings(config.out) if resume else None
    record = previous or {"created": now, "argv": list(argv or sys.argv)}
    record["settings"] = config.to_dict()
    record["model"] = {"name": model[1], "hparams": model[2], "scale": config.scale}
    if model[1] is None:                 # a JSON dictionary: where it came from
        record["model"]["dict_file"] = os.path.abspath(str(config.model))
    record["recipe"] = {"name": config.recipe, "params": config.recipe_params}
    record["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
    if resume:
        record.setdefault("resumed", []).append({"at": now, "argv": list(argv or sys.argv)})
    with writing(config.out, "settings.json"):
        write_json(path, record)
