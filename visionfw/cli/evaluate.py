"""``test.py``: evaluate a model on benchmark datasets with the papers' protocol."""
import os
import pathlib

import click

from visionfw.cli.common import model_options, one_line_errors, resolve_hparams, start_runtime
from visionfw.errors import CheckpointError, HyperparameterError


def load_for_test(model, weights, params, scale):
    """The model to evaluate: from a name/JSON (+ weights), or from a weights file alone."""
    from visionfw import checkpoint, models

    if model is None:
        if weights is None:
            raise HyperparameterError("give a MODEL (name or .json), or --weights of a visionfw "
                                      "checkpoint to rebuild it from")
        spec = checkpoint.read_spec(weights)
        hp = {}
        if params:
            from visionfw.cli.common import parse_params

            hp = parse_params(params)
        if scale is not None and spec.get("model") and "scale" in spec.get("hparams", {}):
            if int(spec["hparams"]["scale"]) != scale:
                hp["scale"] = scale
        return checkpoint.load_model(weights, compile=False, **hp)
    hp = resolve_hparams(model, params, scale)
    built = models.build_model(model, compile=False, **hp)
    if weights is not None:
        checkpoint.load_weights(built, weights)
    elif built.trainable_weights:
        raise CheckpointError(f"model {model} has {built.count_params():,} parameters to learn; "
                              "pass --weights FILE")
    return built


def check_output_path(path, what):
    if path is None:
        return
    folder = pathlib.Path(path).resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise HyperparameterError(f"{what} {path}: folder {folder} does not exist or is not "
                                  "writable")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", required=False)
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Weights file (.weights.h5); alone, it also rebuilds the model.")
@click.option("--dataset", "datasets", multiple=True, required=True,
              help="Dataset folder, or a name under --data-root; repeatable.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              envvar="VISIONFW_DATA_ROOT", help="Folder holding datasets given by name.")
@model_options
@click.option("--degradation", default="bicubic", show_default=True,
              help="LR protocol or spec: bicubic, gaussian8, aniso, usrnet12, "
                   "'gaussian(sigma=2.0)+bicubic+noise(15)', ...")
@click.option("--seed", type=int, default=0, show_default=True, help="Protocol seed.")
@click.option("--channel", type=click.Choice(["y", "rgb"]), default="y", show_default=True,
              help="Score Y (the papers) or RGB.")
@click.option("--per-image", is_flag=True, help="Print a row per image.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report as JSON.")
@click.option("--save-dir", type=click.Path(file_okay=False), default=None,
              help="Write SR images here.")
@click.option("--grid", is_flag=True, help="With --save-dir: also a comparison picture per image.")
@click.option("--lr-dir", type=click.Path(file_okay=False), default=None,
              help="Evaluate on these LR images (same names) instead of generated ones.")
@click.option("--tile", type=click.IntRange(8, None), default=None,
              help="Run the model on tiles of this many LR pixels.")
@click.option("--tile-overlap", type=click.IntRange(0, None), default=16, show_default=True)
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips and rotations.")
@click.option("--quiet", is_flag=True, help="No per-image progress lines.")
@one_line_errors
def main(model, weights, datasets, data_root, params, scale, degradation, seed, channel,
         per_image, json_path, save_dir, grid, lr_dir, tile, tile_overlap, self_ensemble, quiet):
    """Evaluate MODEL (a registered name or .json dictionary; omit it to rebuild the model from
    --weights) on each --dataset, printing PSNR/SSIM of the model and of bicubic."""
    from visionfw.evaluate import evaluate, format_report, resolve_dataset, write_report

    check_output_path(json_path, "--json")
    if grid and not save_dir:
        raise HyperparameterError("--grid needs --save-dir")
    if tile is not None and tile_overlap >= tile:
        raise HyperparameterError(f"--tile-overlap {tile_overlap} must be smaller than "
                                  f"--tile {tile}")
    sets = [resolve_dataset(d, data_root) for d in datasets]
    start_runtime()
    net = load_for_test(model, weights, params, scale)
    log = None if quiet else (lambda line: click.echo(line, err=True))
    report = evaluate(net, sets, scale=scale, degradation=degradation, seed=seed,
                      channel=channel, tile=tile, tile_overlap=tile_overlap,
                      self_ensemble=self_ensemble, save_dir=save_dir, grid=grid, lr_dir=lr_dir,
                      model_name=model or pathlib.Path(weights).name, log=log)
    click.echo(format_report(report, per_image=per_image))
    if json_path:
        write_report(report, json_path)
        click.echo(f"report written to {json_path}")
