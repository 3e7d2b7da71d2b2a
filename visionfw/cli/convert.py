"""``python -m visionfw convert``: published PyTorch weights -> a visionfw checkpoint."""
import os

import click

from visionfw.cli.common import (model_options, one_line_errors, plugin_options, resolve_hparams,
                                 start_runtime)
from visionfw.errors import CheckpointError, HyperparameterError


def parse_names(pairs):
    """``('convo_0/kernel=input.weight',)`` -> ``{'convo_0/kernel': 'input.weight'}``."""
    out = {}
    for pair in pairs:
        keras_path, sep, torch_key = pair.partition("=")
        if not sep or not keras_path.strip() or not torch_key.strip():
            raise HyperparameterError(f"--name {pair!r} is not of the form KERAS_PATH=TORCH_KEY, "
                                      "e.g. --name convo_0/kernel=input.weight")
        out[keras_path.strip()] = torch_key.strip()
    return out


def convert_to_checkpoint(model, checkpoint, out, params=(), scale=None, key=None, names=(),
                          echo=None):
    """Convert ``checkpoint`` for ``model`` and write the visionfw checkpoint ``out``.

    Everything that can be checked without TensorFlow (names, hyperparameters, paths) is checked
    first. Returns the list of :class:`visionfw.convert.Assignment`.
    """
    from visionfw.checkpoint import save_model
    from visionfw.convert import ConversionError, convert_model
    from visionfw.models import resolve_model

    out = os.fspath(out)
    if not out.endswith(".weights.h5"):
        raise CheckpointError(f"{out}: the output name must end in .weights.h5")
    if not os.path.isfile(checkpoint):
        raise CheckpointError(f"{checkpoint}: no such checkpoint file")
    from visionfw.fsutil import unwritable_reason

    folder = os.path.dirname(os.path.abspath(out))
    reason = unwritable_reason(folder)                     # creates a missing folder
    if reason:
        raise CheckpointError(f"{out}: folder {folder} is not writable: {reason}")
    hp = resolve_hparams(model, params, scale)
    _, registered, values = resolve_model(model, **hp)   # name and hyperparameter errors first
    mapping = parse_names(names)
    start_runtime()
    try:
        net, plan = convert_model(model, checkpoint, names=mapping, key=key, **hp)
    except ConversionError as exc:
        hint = ""
        if registered:
            used = ", ".join(f"{k}={v}" for k, v in values.items())
            hint = f" [{registered} with {used}; --scale and --param must match the checkpoint]"
            fits = _sibling_that_fits(registered, checkpoint, hp, key, mapping)
            if fits:
                raise ConversionError(
                    f"{os.path.basename(checkpoint)} fits model {fits}, not {registered}: "
                    f"python -m visionfw convert {fits} {checkpoint} {out}  ({registered}: "
                    f"{exc}{hint})") from None
        raise ConversionError(f"{exc}{hint}") from None
    save_model(net, out)
    if echo:
        for a in plan:
            echo(f"  {a.keras_path:<32} <- {a.torch_key} {tuple(a.value.shape)}")
        echo(f"{os.path.basename(checkpoint)}: {len(plan)} tensors, {net.count_params():,} "
             f"parameters -> {out}")
    return plan


def _sibling_that_fits(registered, checkpoint, hp, key, mapping):
    """A registered variant of the same family (``vdsr`` / ``vdsr-y``) that the checkpoint
    converts into, or None."""
    from visionfw.convert import ConversionError, convert_model
    from visionfw.errors import VisionfwError
    from visionfw.models import model_hparams, model_names

    family = registered.split("-")[0]
    for name in model_names():
        if name == registered or name.split("-")[0] != family:
            continue
        own = {k: v for k, v in hp.items() if k in model_hparams(name)}
        try:
            convert_model(name, checkpoint, names=mapping, key=key, **own)
        except (ConversionError, VisionfwError):
            continue
        return name
    return None


@click.command("convert")
@click.argument("model")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@model_options
@plugin_options
@click.option("--key", default=None,
              help="Top-level entry of the checkpoint that holds the state dict "
                   "(default: found automatically).")
@click.option("--name", "names", multiple=True, metavar="KERAS_PATH=TORCH_KEY",
              help="Pair a model weight with a tensor by name instead of by order; repeatable.")
@click.option("--quiet", is_flag=True, help="Print only errors.")
@one_line_errors
def convert(model, checkpoint, out, params, scale, key, names, quiet):
    """Load the PyTorch CHECKPOINT (.pt/.pth, or a .npz state dict) into MODEL (a registered name
    or a .json dictionary) and write OUT (.weights.h5), a visionfw checkpoint that rebuilds the
    model on its own (test.py --weights OUT)."""
    convert_to_checkpoint(model, checkpoint, out, params, scale, key, names,
                          echo=None if quiet else click.echo)
