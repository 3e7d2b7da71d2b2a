"""``python -m visionfw COMMAND``: summary, models."""
import click

from visionfw.cli.summary import list_models, summary


@click.group()
def main():
    """visionfw tools."""


main.add_command(summary)
main.add_command(list_models)

if __name__ == "__main__":
    main()
