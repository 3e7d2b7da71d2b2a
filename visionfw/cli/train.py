"""``train.py``: train a model (``train.py MODEL [options]``) or rank training sets
(``train.py rank-datasets ...``). Every bad input is a one-line error."""
import sys

import click
from click.core import ParameterSource

from visionfw.cli.common import (EXTRA_ARGS, OneLineGroup, model_options, one_line_errors,
                                 plugin_options)
from visionfw.cli.summary import table_options
from visionfw.errors import VisionfwError


class ModelOrCommand(OneLineGroup):
    """A group whose first word is either a subcommand or the MODEL of ``train``; usage errors
    are one line."""

    default_command = "train"

    def parse_args(self, ctx, args):
        if not args:                     # a bare train.py: the help, as it reads with -h
            click.echo(ctx.get_help())
            ctx.exit(0)
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def _int_list(example):
    """A click callback: ``'2,3,4'`` -> ``[2, 3, 4]`` of positive integers."""

    def parse(ctx, param, value):
        if not value:
            return []
        try:
            values = [int(v) for v in value.replace(" ", "").split(",") if v]
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list of positive "
                                     f"integers, e.g. {example}") from None
        if any(v < 1 for v in values):
            raise click.BadParameter(f"{value!r}: every entry must be positive")
        return values

    return parse


def training_options(fn):
    """Options shared by ``train`` and ``rank-datasets``."""
    options = [
        click.option("--steps", type=int, default=1000, show_default=True,
                     help="Training steps."),
        click.option("--batch-size", type=int, default=16, show_default=True,
                     help="Patches per step (over all replicas)."),
        click.option("--patch-size", type=int, default=96, show_default=True,
                     help="HR patch side (a multiple of the scale)."),
        click.option("--lr", type=float, default=2e-4, show_default=True,
                     help="Initial learning rate (Adam, beta2 0.99)."),
        click.option("--schedule", type=click.Choice(["multistep", "cosine", "constant"]),
                     default="cosine", show_default=True, help="Learning-rate schedule."),
        click.option("--milestones", callback=_int_list("500,750"), default="",
                     help="multistep: steps at which the rate is multiplied by --gamma "
                          "(default: 50% and 75% of --steps)."),
        click.option("--gamma", type=float, default=0.5, show_default=True,
                     help="multistep decay factor."),
        click.option("--loss", type=click.Choice(["l1", "mse"]), default="l1",
                     show_default=True),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seeds the data order (a function of seed and step) and the RNG."),
        click.option("--degradation", default="bicubic", show_default=True,
                     help="How LR is made from HR: a protocol name or a spec such as "
                          "'gaussian(sigma=0.2~4)+bicubic'."),
        click.option("--cache", default="memory", show_default=True,
                     help="Decoded images: 'memory' or 'h5:PATH' (an HDF5 cache on disk)."),
        click.option("--jit/--no-jit", default=False, show_default=True,
                     help="Compile the training step with XLA."),
        click.option("--threads", type=int, default=None,
                     help="TensorFlow intra-op threads (default: all CPUs)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


CONFIG_KEYS = ("steps", "batch_size", "patch_size", "lr", "schedule", "milestones", "gamma",
               "loss", "seed", "degradation", "cache", "jit", "train_dirs", "val_dirs", "out",
               "strategy", "cpu_devices", "val_every", "val_seed", "save_every", "ema",
               "clip_norm", "sampler", "sampler_bins", "sampler_stride", "recipe",
               "recipe_params", "scales", "unpaired_dirs", "pair_dirs", "precision",
               "init_weights")



@click.group(cls=ModelOrCommand, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Train a super-resolution model: train.py MODEL [options], where MODEL is a registered
    name or a .json link dictionary; or rank training sets: train.py rank-datasets ..."""


@main.command("train", context_settings=EXTRA_ARGS,
              epilog="A recipe's parameters may also be given as options: train.py ikc "
                     "--sftmd FILE --steps-per-batch 7 is --recipe-param sftmd=FILE "
                     "--recipe-param steps_per_batch=7.")
@click.argument("model", required=False)
@model_options
@plugin_options
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Replay a run: its settings.json, or a JSON of the same settings (under "
                   "\"settings\", with notes such as \"source\" beside it: configs/); MODEL "
                   "and every option given here override it. With --summary: a dry run.")
@click.option("--init-weights", type=click.Path(dir_okay=False), default=None,
              help="Start from these weights (a visionfw checkpoint, e.g. from convert or an "
                   "earlier run): layers matching by name and shape are loaded, the rest "
                   "reported; a recipe's other networks start from their files beside it "
                   "(RUN/best.degnet.weights.h5 beside RUN/best.weights.h5) when present.")
@click.option("--summary", is_flag=True, help="Print the layer table and exit.")
@table_options
@click.option("--save-dict", type=click.Path(dir_okay=False), default=None,
              help="Write the model's link dictionary to this JSON file.")
@click.option("--train-dir", "train_dirs", multiple=True,
              help="Folder of training images, repeatable (default: the photographs "
                   "embedded in scikit-image).")
@click.option("--val-dir", "val_dirs", multiple=True,
              help="Folder of validation images (or a benchmark folder with HR/), repeatable "
                   "(default: the embedded held-out photographs).")
@training_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: runs/MODEL_xSCALE).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--stop-at", type=click.IntRange(min=1), default=None, metavar="STEP",
              help="Stop after this step, as Ctrl-C does but at a chosen step: a checkpoint "
                   "(continue with --resume; the schedule stays that of --steps) and the "
                   "network's weights in RUN/stopped.weights.h5, to start another stage from "
                   "with --init-weights.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]),
              default="default", show_default=True,
              help="mirrored: all local devices; multiworker: the cluster in TF_CONFIG.")
@click.option("--cpu-devices", type=int, default=None,
              help="Split the CPU into N logical devices (to try --strategy mirrored).")
@click.option("--val-every", type=int, default=500, show_default=True,
              help="Validate and checkpoint every N steps.")
@click.option("--val-seed", type=int, default=0, show_default=True,
              help="Seeds the validation LR images of a random degradation (kernels, noise), "
                   "whatever --seed is, so runs of different seeds validate on the same images "
                   "(runs made before this option used --seed).")
@click.option("--save-every", type=int, default=None,
              help="Checkpoint every N steps (default: --val-every).")
@click.option("--ema", type=float, default=None, help="EMA decay of the weights, e.g. 0.999.")
@click.option("--clip-norm", type=float, default=None, help="Clip gradients to this global norm.")
@click.option("--sampler", type=click.Choice(["uniform", "psnr-gain"]), default="uniform",
              show_default=True, help="How patches are drawn.")
@click.option("--sampler-bins", type=int, default=10, show_default=True,
              help="psnr-gain: histogram bins.")
@click.option("--sampler-stride", type=int, default=None,
              help="psnr-gain: step of the grid of candidate patches (default: the patch "
                   "size, non-overlapping patches).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True,
              help="bf16: bfloat16 compute with float32 weights (Keras mixed_bfloat16); fast on "
                   "CPUs with AMX or AVX512-BF16.")
@click.option("--recipe", default=None,
              help="Training recipe (default: the one the model names; 'sr' for most).")
@click.option("--recipe-param", "recipe_params", multiple=True, metavar="NAME=VALUE",
              help="Recipe parameter, repeatable (e.g. --recipe-param steps_per_batch=7).")
@click.option("--scales", callback=_int_list("2,3,4"), default="",
              help="Several scales drawn per step, e.g. 2,3,4 (networks that take the scale "
                   "as an input).")
@click.option("--unpaired-dir", "unpaired_dirs", multiple=True,
              help="Folder of images without ground truth: a second stream of patches "
                   "(batch key real_lr), repeatable.")
@click.option("--pair-dir", "pair_dirs", multiple=True,
              help="Folder with LQ/ and HQ/ image pairs: a second stream (batch keys lq, hq), "
                   "repeatable.")
@click.pass_context
@one_line_errors
def train_command(ctx, model, params, scale, summary, save_dict, threads, resume, config_path,
                  **options):
    """Train MODEL (a registered name or a .json link dictionary)."""
    from visionfw.cli.common import extra_options, merge_options, parse_params

    if model is None and config_path is None:
        from visionfw.errors import HyperparameterError

        raise HyperparameterError("give MODEL (a registered name or a .json dictionary), e.g. "
                                  "train.py srresnet --scale 2, or --config RUN/settings.json; "
                                  "train.py -h lists the options")
    table = {"expand": options.pop("expand"), "input_size": options.pop("input_size")}
    stop_at = options.pop("stop_at")
    if not (summary or save_dict) and any(
            ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None) for k in table):
        raise click.UsageError("--expand and --input-size draw the layer table: give --summary")
    if (summary or save_dict) and config_path is None:
        extra_options(ctx, lambda: ("--summary", set()))
        from visionfw.cli.summary import show_summary

        show_summary(model, params, scale, save_dict, **table)
        return
    from visionfw.train.config import TrainConfig
    from visionfw.train.run import train

    from visionfw.params import parse_pairs

    values = {k: options[k] for k in CONFIG_KEYS}
    for key in ("train_dirs", "val_dirs", "unpaired_dirs", "pair_dirs"):
        values[key] = list(values[key])
    values["recipe_params"] = parse_pairs(values["recipe_params"], flag="--recipe-param")
    explicit = {k for k in CONFIG_KEYS
                if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)}
    hparams = parse_params(params)
    if config_path is not None:
        saved, plugins = _replayed_settings(config_path)
        from visionfw.plugins import load_user_plugins

        load_user_plugins(plugins, env=False, source=f"--config {config_path}")
        values = {**{k: saved[k] for k in CONFIG_KEYS if k in saved},
                  **{k: values[k] for k in explicit}}
        if model is None or model == saved.get("model"):
            model = saved.get("model")
            hparams = {**(saved.get("hparams") or {}), **hparams}
        if scale is None:
            scale = saved.get("scale")
        explicit |= {k for k in CONFIG_KEYS if k in saved}
    config = TrainConfig(model=model, hparams=hparams, scale=scale, **values)
    extra = extra_options(ctx, lambda: _recipe_params_of(config))
    if extra:
        config.recipe_params = merge_options(config.recipe_params, extra, "--recipe-param")
        explicit.add("recipe_params")
    if ctx.get_parameter_source("scale") not in (ParameterSource.DEFAULT, None):
        explicit.add("scale")
    if summary or save_dict:         # a dry run of the settings: no image read, no run folder
        _dry_run(config, explicit, save_dict, threads, table)
        return
    result = train(config, argv=sys.argv, resume=resume, explicit=explicit, threads=threads,
                   stop_at=stop_at)
    if result["stopped"] in ("SIGINT", "SIGTERM"):
        sys.exit(130 if result["stopped"] == "SIGINT" else 143)


def _dry_run(config, explicit, dict_path, threads, table):
    """``--config FILE --summary``: the settings checked as training checks them before any
    work, the model's layer table, and one line on what the run would do. The data folders
    need not exist yet (a line names those that do not)."""
    import os

    from visionfw.cli.common import start_runtime
    from visionfw.graph.printer import print_layer_table
    from visionfw.graph.schema import save_dict
    from visionfw.train.run import dry_run

    config, (d, _, _), _ = dry_run(config, explicit)
    start_runtime(threads)
    print_layer_table(d, **table)
    if dict_path:
        save_dict(d, dict_path)
        click.echo(f"dictionary written to {dict_path}")
    scales = ",".join(map(str, config.scales)) if config.scales else config.scale
    click.echo(f"run: recipe {config.recipe} at x{scales}, {config.steps:,} steps of "
               f"{config.batch_size} patches of {config.patch_size} px, lr {config.lr:g} "
               f"({config.schedule}), degradation {config.degradation}")
    missing = [f for f in [*config.train_dirs, *config.val_dirs] if not os.path.isdir(f)]
    if missing:
        click.echo(f"not found yet (training needs them; edit the file or give --train-dir / "
                   f"--val-dir): {', '.join(missing)}")


def _replayed_settings(path):
    """The ``settings`` of a run's settings.json (or a bare settings dict) and the user
    plugins the run loaded; one-line errors."""
    import json

    from visionfw.train import TrainError

    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise TrainError(f"--config {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise TrainError(f"--config {path}: not a readable JSON file ({exc})") from None
    settings = data.get("settings", data) if isinstance(data, dict) else None
    if not isinstance(settings, dict) or "model" not in settings:
        raise TrainError(f"--config {path}: holds no run settings (a train.py run's "
                         "settings.json is expected)")
    return settings, settings.get("plugins") or []


def _recipe_params_of(config):
    from visionfw.train.run import recipe_of

    cls = recipe_of(config)
    return f"recipe {cls.name}", set(cls.declared_params())


@main.command("rank-datasets", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", "datasets", multiple=True, required=True,
              help="Training set (an image folder, or 'embedded'), repeatable.")
@click.option("--eval-dataset", "eval_datasets", multiple=True, required=True,
              help="Evaluation set (an image folder or a benchmark folder with HR/), repeatable.")
@click.option("--model", default="srresnet", show_default=True,
              help="Registered model name or .json dictionary.")
@model_options
@plugin_options
@training_options
@click.option("--out", type=click.Path(file_okay=False), default="runs/rank", show_default=True,
              help="Folder for one run per training set.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the matrix as JSON.")
@one_line_errors
def rank_command(datasets, eval_datasets, model, params, scale, threads, out, json_path,
                 **options):
    """Train one model per training set with the same budget; print the matrix of PSNR
    gains over bicubic (rows: evaluation sets, columns: training sets)."""
    from visionfw.cli.common import parse_params
    from visionfw.plugins import loaded_plugins
    from visionfw.train.config import TrainConfig
    from visionfw.train.rank import rank_datasets

    base = TrainConfig(model=model, hparams=parse_params(params), scale=scale, out=out,
                       plugins=loaded_plugins(),
                       **{k: options[k] for k in CONFIG_KEYS if k in options})
    rank_datasets(base, list(datasets), list(eval_datasets), json_path=json_path,
                  threads=threads, argv=sys.argv)


def run():
    try:
        main()
    except VisionfwError as exc:     # raised outside a command (should not happen)
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
