"""Pieces every command shares: model selection, ``--param K=V`` parsing, one-line errors."""
import functools
import os
import sys

import click

from visionfw.errors import HyperparameterError, VisionfwError


class OneLineUsage:
    """Click's usage errors (unknown option, bad value) as one ``error: ...`` line, exit 2."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            click.echo(f"error: {message}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


class OneLineCommand(OneLineUsage, click.Command):
    pass


class OneLineGroup(OneLineUsage, click.Group):
    pass


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


def plugin_options(fn):
    """``--plugin FILE_OR_MODULE`` (repeatable): user plugins imported, with those of
    ``VISIONFW_PLUGINS``, before the command runs, so their layers, blocks, models, recipes,
    methods and losses are known to it. A plugin that cannot be loaded is a one-line error."""

    @functools.wraps(fn)
    def wrapper(*args, plugins=(), **kwargs):
        from visionfw.plugins import load_user_plugins

        one_line_errors(load_user_plugins)(plugins)
        return fn(*args, **kwargs)

    return click.option("--plugin", "plugins", multiple=True, metavar="FILE_OR_MODULE",
                        help="A .py file or module whose import registers your own layers, "
                             "blocks, models, recipes or methods; repeatable (also: "
                             "VISIONFW_PLUGINS, a list separated by "
                             f"'{os.pathsep}').")(wrapper)


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


def check_out_dir(out, flag="--out"):
    """Create ``out`` and prove it writable before any image is computed."""
    from visionfw.fsutil import unwritable_reason

    reason = unwritable_reason(out)
    if reason:
        raise HyperparameterError(f"{flag} {out} is not writable: {reason}")


def start_runtime(threads=None):
    from visionfw import runtime

    runtime.import_tensorflow_quietly()
    runtime.configure_threads(threads)


EXTRA_ARGS = {"help_option_names": ["-h", "--help"], "ignore_unknown_options": True,
              "allow_extra_args": True}


def extra_options(ctx, owner_of):
    """Options the command does not declare, read as parameters of its recipe or method:
    ``--steps-per-batch 7`` is ``steps_per_batch=7``. ``owner_of()`` gives ``(what, declared
    names)`` -- e.g. ``('recipe ikc', {...})`` -- and is called only when there are extras.
    Anything else is a one-line error naming the option and the nearest valid one."""
    import difflib

    args, out = list(ctx.args), {}
    if not args:
        return out
    what, declared = owner_of()
    own = [o for p in ctx.command.params for o in getattr(p, "opts", []) if o.startswith("--")]
    while args:
        token = args.pop(0)
        if not token.startswith("--") or token == "--":
            raise click.UsageError(f"unexpected argument {token!r}")
        name, _, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if key not in declared:
            valid = own + [f"--{n.replace('_', '-')}" for n in declared]
            near = difflib.get_close_matches(f"--{name}", valid, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            params = ", ".join(f"--{n.replace('_', '-')}" for n in sorted(declared))
            also = f"; {what} takes {params}" if params else ""
            raise click.UsageError(f"no such option: --{name}{hint}{also}")
        if not _:
            if not args or args[0].startswith("--"):
                raise click.UsageError(f"--{name} needs a value")
            value = args.pop(0)
        if key in out:
            raise click.UsageError(f"--{name} is given twice")
        out[key] = value
    return out


def merge_options(pairs, extra, flag):
    """``--recipe-param``/``--method-param`` pairs and the same parameters given as options:
    one dict; a parameter given both ways is an error."""
    both = sorted(set(pairs) & set(extra))
    if both:
        raise HyperparameterError(f"{', '.join('--' + b.replace('_', '-') for b in both)} and "
                                  f"{flag} {both[0]}=... both given; give it once")
    return {**pairs, **extra}
