#!/usr/bin/env python3
"""Train a super-resolution model by name (or JSON dictionary); ``--summary`` prints its layers.

    python train.py srresnet --summary --param B=8
"""
import click

from visionfw.cli.common import model_options, one_line_errors
from visionfw.cli.summary import show_summary


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model")
@model_options
@click.option("--summary", is_flag=True, help="Print the layer table and exit.")
@click.option("--save-dict", type=click.Path(dir_okay=False), default=None,
              help="Write the model's link dictionary to this JSON file.")
@one_line_errors
def main(model, params, scale, summary, save_dict):
    """Train MODEL: a registered model name or a .json link dictionary."""
    if summary or save_dict:
        show_summary(model, params, scale, save_dict)
        return
    raise click.UsageError("training is not available yet; use --summary to inspect the model")


if __name__ == "__main__":
    main()
