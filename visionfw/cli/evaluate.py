"""``test.py``: evaluate a model or a method on benchmark datasets with the papers' protocol.

``test.py MODEL --weights FILE`` (or ``--weights FILE`` alone) runs one network, as the ``sr``
method (or ``nonblind``, fed the true kernel, when the network takes one). ``test.py METHOD
--weights ROLE=FILE ...`` runs a method of several networks given by role; ``--weights`` may
also name a run folder of ``train.py``, whose recipe says which files play which role.
"""
import os
import pathlib

import click

from visionfw.cli.common import (EXTRA_ARGS, OneLineCommand, check_out_dir, extra_options,
                                 merge_options, model_options, one_line_errors, plugin_options,
                                 resolve_hparams, start_runtime)
from visionfw.errors import CheckpointError, HyperparameterError


def load_for_test(model, weights, params, scale, insist=False):
    """The model to evaluate: from a name/JSON (+ weights), or from a weights file alone.

    Weights saved from another dictionary than MODEL's are refused in one line saying how they
    differ; with ``insist`` that line is a warning and the weights load if they fit."""
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
        try:
            return checkpoint.load_model(weights, compile=False, **hp)
        except CheckpointError:
            if "scale" not in hp:
                raise
            raise CheckpointError(f"{weights} is an x{spec['hparams']['scale']} network whose "
                                  f"weights depend on the scale; test it at --scale "
                                  f"{spec['hparams']['scale']}, or give weights trained at "
                                  f"x{hp['scale']}") from None
    hp = resolve_hparams(model, params, scale)
    built = models.build_model(model, compile=False, **hp)
    if weights is not None:
        name = model if models.has_model(model) else None
        mismatch = checkpoint.dict_mismatch(weights, built, name, hp)
        if mismatch and not insist:
            raise CheckpointError(f"{mismatch}; test the file alone (drop MODEL: it rebuilds "
                                  "its own), or load anyway with --ignore-dict-mismatch")
        if mismatch:
            click.echo(f"warning: {mismatch}", err=True)
        checkpoint.load_weights(built, weights)
    elif built.trainable_weights:
        raise CheckpointError(f"model {model} has {built.count_params():,} parameters to learn; "
                              "pass --weights FILE")
    return built


def report_label(weights):
    """How a report names a network given by its weights file: ``RUN/best.weights.h5`` of a
    train.py run folder by the run folder, another file by its name without
    ``.weights.h5``, with the dictionary's name (``demo (SRResNet)``)."""
    path = pathlib.Path(weights)
    folder = path.parent
    label = (folder.name if (folder / "settings.json").is_file() and folder.name
             else path.name.removesuffix(".weights.h5").removesuffix(".h5"))
    try:
        from visionfw.checkpoint import read_spec

        name = read_spec(path)["dict"].get("name")
    except Exception:                   # noqa: BLE001 -- loading reports the real error
        name = None
    return f"{label} ({name})" if name and name != label else label


def check_output_path(path, what):
    """Before any image runs: the folder of an output file is made if missing and must take
    a file (one line otherwise), so a long evaluation never ends unable to write its report."""
    from visionfw.fsutil import unwritable_reason

    if path is None:
        return
    folder = pathlib.Path(path).resolve().parent
    reason = unwritable_reason(folder)
    if reason:
        raise HyperparameterError(f"{what} {path}: cannot write in {folder} ({reason})")


def parse_weights(values):
    """``('sftmd=F', 'P')`` -> ``{'sftmd': 'F', 'model': 'P'}``; a run folder is expanded by
    its recipe's roles."""
    out = {}
    for value in values:
        role, sep, path = value.partition("=")
        if not sep or os.path.exists(value):
            role, path = "model", value
        role = role.strip()
        if not role or not path:
            raise HyperparameterError(f"--weights {value!r}: expected FILE or ROLE=FILE")
        if role in out:
            raise HyperparameterError(f"--weights: role {role!r} is given twice")
        if os.path.isdir(path):
            for r, p in run_folder_roles(path, role).items():
                if r in out:
                    raise HyperparameterError(f"--weights: role {r!r} is given twice")
                out[r] = p
            continue
        if not os.path.isfile(path):
            raise CheckpointError(f"--weights {value}: no such file")
        out[role] = path
    return out


def method_from_roles(name, roles, options, scale=None, **common):
    """Method ``name`` on the networks of ``roles`` (``{role: weights file}``), each rebuilt
    from its own file; ``common`` are the tiling and self-ensemble options."""
    from visionfw.evaluate import make_method

    networks = {r: load_for_test(None, p, (), scale) for r, p in roles.items()}
    return make_method(name, networks, scale=scale, **common, **options)


def run_folder_roles(folder, role="model"):
    """``{role: weights file}`` of a ``train.py`` run folder, as its recipe declares them."""
    from visionfw.train.config import read_settings

    saved = read_settings(folder)
    if saved is None:
        raise CheckpointError(f"--weights {folder}: a folder, but not a train.py run folder "
                              "(no settings.json)")
    from visionfw import runtime

    runtime.import_tensorflow_quietly(start=False)
    from visionfw.recipes.base import get_recipe

    recipe = get_recipe(saved.get("recipe", {}).get("name") or "sr")
    roles = dict(getattr(recipe, "test_weights", {"model": "best.weights.h5"}))
    if list(roles) == ["model"] and role != "model":
        roles = {role: roles["model"]}
    out = {}
    for r, name in roles.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise CheckpointError(f"--weights {folder}: the run has no {name} yet (train it to "
                                  "its first validation)")
        out[r] = path
    return out


def _method_params_of(name):
    if name is None:
        return "test.py", set()
    from visionfw.methods.base import get_method

    return f"method {name}", {p.name for p in get_method(name).params}


@click.command(cls=OneLineCommand, context_settings=EXTRA_ARGS,
               epilog="A method's parameters may also be given as options: test.py ikc "
                      "--iterations 7 is --method-param iterations=7.")
@click.argument("model", required=False)
@click.option("--weights", "weights", multiple=True,
              help="Weights file (.weights.h5; alone, it also rebuilds the model), ROLE=FILE "
                   "for a method's networks, or a train.py run folder; repeatable.")
@click.option("--method-param", "method_params", multiple=True, metavar="NAME=VALUE",
              help="Method parameter, repeatable (e.g. --method-param pca=FILE).")
@click.option("--dataset", "datasets", multiple=True, required=True,
              help="Dataset folder, or a name under --data-root; repeatable.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              envvar="VISIONFW_DATA_ROOT", help="Folder holding datasets given by name.")
@model_options
@plugin_options
@click.option("--degradation", default="bicubic", show_default=True,
              help="LR protocol or spec: bicubic, gaussian8, aniso, usrnet12, "
                   "'gaussian(sigma=2.0)+bicubic+noise(15)', ...")
@click.option("--seed", type=int, default=0, show_default=True, help="Protocol seed.")
@click.option("--channel", type=click.Choice(["y", "y-float", "rgb"]), default=None,
              help="Score Y (the papers: rounded), y-float (Y of the 8-bit images unrounded, as "
                   "IKC's and DAN's test scripts) or RGB. Default: y, but rgb for usrnet12 "
                   "(USRNet's table).")
@click.option("--variant", "variants", multiple=True, metavar="PATTERN",
              help="Run only the protocol's variants matching this glob, repeatable (e.g. "
                   "--variant '*noise0.00' of usrnet12).")
@click.option("--per-image", is_flag=True, help="Print a row per image.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report as JSON.")
@click.option("--save-dir", type=click.Path(file_okay=False), default=None,
              help="Write SR images here.")
@click.option("--grid", is_flag=True, help="With --save-dir: also a comparison picture per image.")
@click.option("--save-steps", type=click.Path(file_okay=False), default=None,
              help="Methods with steps (ikc): write each step's SR image and a picture of "
                   "estimated against true kernels per image here.")
@click.option("--lr-dir", type=click.Path(file_okay=False), default=None,
              help="Evaluate on these LR images (same names) instead of generated ones.")
@click.option("--tile", type=click.IntRange(8, None), default=None,
              help="Run the model on tiles of this many LR pixels.")
@click.option("--tile-overlap", type=click.IntRange(0, None), default=16, show_default=True)
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips and rotations.")
@click.option("--quiet", is_flag=True, help="No per-image progress lines.")
@click.option("--ignore-dict-mismatch", "insist", is_flag=True,
              help="Load --weights into MODEL even where the file was saved from another "
                   "dictionary (a warning instead of an error).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True, help="bf16: bfloat16 compute (outputs scored in float32).")
@click.pass_context
@one_line_errors
def main(ctx, model, weights, method_params, datasets, data_root, params, scale, degradation, seed,
         channel, per_image, json_path, save_dir, grid, lr_dir, tile, tile_overlap,
         self_ensemble, quiet, insist, precision, save_steps, variants):
    """Evaluate MODEL (a registered name or .json dictionary; omit it to rebuild the model from
    --weights) or METHOD (sr, nonblind, kernel-estimator, ...: its networks by role with
    --weights ROLE=FILE) on each --dataset, printing PSNR/SSIM beside bicubic's."""
    from visionfw.evaluate import evaluate, format_report, method_for, resolve_dataset, write_report
    from visionfw.methods.base import is_method
    from visionfw.params import parse_pairs

    if model is not None and model.startswith("--"):    # an unknown option, not a MODEL
        ctx.args.insert(0, model)
        model = None
    method_name = model if model is not None and is_method(model) else None
    extra = extra_options(ctx, lambda: _method_params_of(method_name))
    check_output_path(json_path, "--json")
    for folder, flag in ((save_dir, "--save-dir"), (save_steps, "--save-steps")):
        if folder is not None:
            check_out_dir(folder, flag)
    if grid and not save_dir:
        raise HyperparameterError("--grid needs --save-dir")
    if tile is not None and tile_overlap >= tile:
        raise HyperparameterError(f"--tile-overlap {tile_overlap} must be smaller than "
                                  f"--tile {tile}")
    sets = [resolve_dataset(d, data_root) for d in datasets]
    roles = parse_weights(weights)
    options = parse_pairs(method_params, flag="--method-param")
    options = merge_options(options, extra, "--method-param")
    if method_name is None and (set(roles) - {"model"}):
        raise HyperparameterError(f"--weights names role(s) {sorted(set(roles) - {'model'})}; "
                                  "roles belong to a METHOD, e.g. test.py nonblind --weights "
                                  "model=FILE")
    if method_name is None and options:
        raise HyperparameterError("--method-param needs a METHOD, e.g. test.py "
                                  "kernel-estimator --weights model=FILE --method-param pca=P")
    start_runtime()
    from visionfw.runtime import set_precision

    set_precision(precision)
    log = None if quiet else (lambda line: click.echo(line, err=True))
    common = dict(tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble)
    if method_name is not None:
        if params:
            raise HyperparameterError("--param applies to a MODEL; a method's networks are "
                                      "rebuilt from their weights files")
        from visionfw.methods.base import get_method

        if not roles and get_method(method_name).roles:
            raise HyperparameterError(f"method {method_name} needs its networks: --weights "
                                      "ROLE=FILE (or a train.py run folder)")
        runner = method_from_roles(method_name, roles, options, scale, **common)
        label = method_name
    else:
        net = load_for_test(model, roles.get("model"), params, scale, insist)
        runner = method_for(net, scale=scale, **common)
        label = model or report_label(roles["model"])
    if channel is None:
        channel = "rgb" if degradation.strip() == "usrnet12" else "y"
    if channel == "rgb" and runner.color == "y":
        raise HyperparameterError(f"{label} restores the Y channel only, so it is scored on "
                                  "Y: --channel y (or y-float)")

    def show(report):
        report["protocol"]["precision"] = precision
        click.echo(format_report(report, per_image=per_image))
        if json_path:
            write_report(report, json_path)
            click.echo(f"report written to {json_path}")

    try:
        report = evaluate(runner, sets, degradation=degradation, seed=seed, channel=channel,
                          save_dir=save_dir, grid=grid, lr_dir=lr_dir, model_name=label,
                          log=log, save_steps=save_steps, variants=list(variants) or None)
    except BaseException as exc:
        partial = getattr(exc, "partial_report", None)
        if partial and partial["results"]:          # keep the datasets that finished
            partial["incomplete"] = (f"stopped by {type(exc).__name__}" if not str(exc)
                                     else str(exc))
            show(partial)
        raise
    show(report)
    if not any(r["images"] for r in report["results"]):
        from visionfw.evaluate import EvaluationError

        raise EvaluationError("no image could be scored (see the skipped lines above); check "
                              "the --dataset folders and the images in them")
