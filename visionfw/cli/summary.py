"""``summary``: print the layer table of a model name or a JSON dictionary."""
import click

from visionfw.cli.common import (model_options, one_line_errors, plugin_options, resolve_hparams,
                                 start_runtime)
from visionfw.graph.printer import INPUT_SIZE


def table_options(fn):
    """``--expand`` and ``--input-size``: how the layer table is drawn (``summary``,
    ``train.py --summary``)."""
    fn = click.option("--input-size", type=click.IntRange(min=1), default=INPUT_SIZE,
                      show_default=True, metavar="N",
                      help="Shapes and MACs (FLOPs = 2 x MACs) for an N x N LR image.")(fn)
    fn = click.option("--expand", is_flag=True,
                      help="List the layers inside each block, indented under it.")(fn)
    return fn


def show_summary(model, params, scale, dump_json=None, expand=False, input_size=INPUT_SIZE):
    from visionfw.graph.printer import print_layer_table
    from visionfw.graph.schema import save_dict
    from visionfw.models import resolve_model

    hp = resolve_hparams(model, params, scale)
    d, name, _ = resolve_model(model, **hp)   # name and hyperparameter errors before TensorFlow
    own = (d.get("meta") or {}).get("scale")
    if scale is not None and name is None and own is not None and int(own) != int(scale):
        from visionfw.errors import HyperparameterError

        raise HyperparameterError(f"{model} up-samples x{own} (its meta.scale); --scale "
                                  f"{scale} does not change a dictionary: edit its "
                                  "up-sampling layers and meta.scale, or drop --scale")
    start_runtime()
    print_layer_table(d, expand=expand, input_size=input_size)
    if dump_json:
        save_dict(d, dump_json)
        click.echo(f"dictionary written to {dump_json}")


@click.command("summary")
@click.argument("model")
@model_options
@plugin_options
@click.option("--json", "dump_json", type=click.Path(dir_okay=False), default=None,
              help="Also write the model's dictionary to this JSON file.")
@table_options
@one_line_errors
def summary(model, params, scale, dump_json, expand, input_size):
    """Print MODEL's layer table (MODEL: a registered name or a .json dictionary): each link's
    nodes, layer, parameters, output shape, size and MACs for one LR image."""
    show_summary(model, params, scale, dump_json, expand=expand, input_size=input_size)


@click.command("models")
@plugin_options
@one_line_errors
def list_models():
    """List registered models and their hyperparameters."""
    from visionfw import models

    for name in models.model_names():
        hp = models.model_hparams(name)
        args = ", ".join(f"{h.name}: {h.type.__name__} = {h.default!r}" for h in hp.values())
        click.echo(f"{name}({args})")


def _describe(cls):
    paragraph = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    first = paragraph.split(". ")[0].rstrip(".")
    params = ", ".join(f"{p.name}: {p.type.__name__} = {p.default!r}"
                       for p in getattr(cls, "params", ()))
    return f"({params})" + (f"  {first}." if first else "")


@click.command("recipes")
@plugin_options
@one_line_errors
def list_recipes():
    """List training recipes (train.py --recipe) and their parameters (--recipe-param)."""
    from visionfw import runtime

    runtime.import_tensorflow_quietly(start=False)
    from visionfw.recipes.base import RECIPES, recipe_names

    for name in recipe_names():
        click.echo(f"{name}{_describe(RECIPES.get(name))}")


@click.command("methods")
@plugin_options
@one_line_errors
def list_methods():
    """List test methods (test.py METHOD), their roles (--weights ROLE=FILE) and parameters."""
    from visionfw.methods.base import METHODS, method_names

    for name in method_names():
        cls = METHODS.get(name)
        roles = ", ".join(f"{r}=FILE" for r in cls.roles)
        click.echo(f"{name} [{roles}]{_describe(cls)}")
