"""Pieces every command shares: model selection, ``--param K=V`` parsing, one-line errors."""
import functools
import sys

import click

from visionfw.errors import HyperparameterError, VisionfwError


def parse_params(pairs):
    """``('B=8', 'filters=32')`` -> ``{'B': '8', 'filters': '32'}`` (typed later by the model)."""
    from visionfw.params import parse_pairs

    return parse_pairs(pairs, flag="--param")


def model_options(fn):
    """MODEL argument, ``--param`` and ``--scale`` options."""
    fn = click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
                      help="Model hyperparameter, repeatable (e.g. --param B=8).")(fn)
    fn = click.option("--scale", type=click.IntRange(1, 16), default=None,
                      help="Up-scaling factor (sets the model's 'scale' hyperparameter).")(fn)
    return fn


def resolve_hparams(model, params, scale):
    """Hyperparameters for MODEL from ``--param`` and ``--scale``, validated by the registry."""
    from visionfw import models

    hp = parse_params(params)
    if scale is not None:
        if isinstance(model, str) and models.has_model(model):
            if "scale" in models.model_hparams(model):
                if "scale" in hp and int(hp["scale"]) != scale:
                    raise HyperparameterError(f"--scale {scale} and --param scale={hp['scale']} "
                                              "disagree")
                hp["scale"] = scale
    return hp


def one_line_errors(fn):
    """Run a command; a visionfw error becomes ``error: ...`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VisionfwError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def start_runtime(threads=None):
    from visionfw import runtime

    runtime.import_tensorflow_quietly()
    runtime.configure_threads(threads)
