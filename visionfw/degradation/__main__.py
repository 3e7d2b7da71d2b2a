"""Command line: ``python -m visionfw.degradation export|protocols|ops``."""
import sys

import click

from visionfw.degradation import DegradationError


@click.group()
def cli():
    """Degradations and blind-SR test protocols of visionfw."""


@cli.command()
@click.option("--protocol", required=True,
              help="gaussian8, aniso, usrnet12, bicubic, or a spec string.")
@click.option("--scale", required=True, type=int, help="SR factor.")
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of HR images.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--seed", default=0, show_default=True, type=int, help="Protocol seed.")
@click.option("--kernels", "kernels_path", default=None,
              type=click.Path(exists=True, dir_okay=False),
              help="USRNet kernels_12.mat (usrnet12 only).")
def export(protocol, scale, dataset, out, seed, kernels_path):
    """Write the LR images (PNG) and kernels (.npy, .png) of a protocol; print the export hash."""
    from visionfw import runtime
    from visionfw.degradation.protocols import export_protocol

    runtime.import_tensorflow_quietly()      # TensorFlow's start-up chatter is not ours to print
    manifest = export_protocol(protocol, scale, dataset, out, seed, kernels_path,
                               log=lambda msg: click.echo(msg, err=True))
    click.echo(f"{len(manifest['files'])} files in {out}; hash {manifest['hash']}")


@cli.command()
def protocols():
    """List the named protocols."""
    from visionfw.degradation.protocols import protocol_names

    for name in protocol_names():
        click.echo(name)


@cli.command()
def ops():
    """List the spec ops and their arguments."""
    from visionfw.degradation.spec import describe_ops

    for line in describe_ops():
        click.echo(line)


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="python -m visionfw.degradation", standalone_mode=False)
    except DegradationError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except OSError as exc:                    # e.g. --out under a file, or not writable
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
