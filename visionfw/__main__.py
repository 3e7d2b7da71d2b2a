"""``python -m visionfw COMMAND``: sr, summary, models, recipes, methods, convert, export, compare,
redeg."""
import click

from visionfw.cli.common import OneLineGroup
from visionfw.cli.compare import compare
from visionfw.cli.convert import convert
from visionfw.cli.export import export
from visionfw.cli.redeg import redeg
from visionfw.cli.sr import sr
from visionfw.cli.summary import list_methods, list_models, list_recipes, summary


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """visionfw tools: super-resolve your own images (sr), look at a model (summary), list
    what is registered (models, recipes, methods), convert PyTorch weights (convert), write a
    network as SavedModel, TFLite or ONNX (export), put test.py reports and train.py runs side by
    side (compare), transfer and measure a trained ReDegNet's degradation (redeg)."""


main.add_command(sr)
main.add_command(summary)
main.add_command(list_models)
main.add_command(list_recipes)
main.add_command(list_methods)
main.add_command(convert)
main.add_command(export)
main.add_command(compare)
main.add_command(redeg)

if __name__ == "__main__":
    main()
