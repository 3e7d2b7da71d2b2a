"""Command line: ``python -m visionfw.degradation export|protocols|ops|report``."""
import os
import sys

import click

from visionfw.degradation import DegradationError
from visionfw.errors import VisionfwError


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
@click.option("--name", default=None,
              help="Folder name of a one-variant protocol's images (default: the variant's "
                   "name, for a spec the spec itself).")
@click.option("--kernels", "kernels_path", default=None,
              type=click.Path(exists=True, dir_okay=False),
              help="USRNet kernels_12.mat (usrnet12 only).")
def export(protocol, scale, dataset, out, seed, name, kernels_path):
    """Write the LR images (PNG) and kernels (.npy, .png) of a protocol; print the export hash."""
    from visionfw import runtime
    from visionfw.degradation.protocols import export_protocol

    runtime.import_tensorflow_quietly()      # TensorFlow's start-up chatter is not ours to print
    manifest = export_protocol(protocol, scale, dataset, out, seed, kernels_path,
                               log=lambda msg: click.echo(msg, err=True), name=name)
    click.echo(f"{len(manifest['files'])} files in {out}; hash {manifest['hash']}")


@cli.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder of the report (default: RUN/degradation_report).")
@click.option("--weights", "which", type=click.Choice(["last", "stopped", "best"]),
              default=None,
              help="The run's last, stopped or best weights (default: last if the run "
                   "finished, else those of its early stop, else best).")
@click.option("--samples", default=1024, show_default=True, type=int,
              help="Kernels drawn for the statistics.")
@click.option("--shown", default=16, show_default=True, type=int,
              help="Kernels drawn in kernels.png.")
@click.option("--patches", default=64, show_default=True, type=int,
              help="HR crops (of the run's patch size) degraded for the noise statistics.")
@click.option("--hr-dir", "hr_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="Folder of HR images for those crops (default: the run's --train-dir).")
@click.option("--true-kernel", default=None,
              help="The kernel that made the LR images, when known: a kernel file or a fixed "
                   "blur spec (default: the run's --true-kernel, if any).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the HR crops.")
def report(run, out, which, samples, shown, patches, hr_dirs, true_kernel, seed):
    """What a learned degradation (a train.py pdm or pdm-sr RUN) draws: kernel samples and
    their mean (PNG, .npy), the noise level, and the kernel PSNR against a known kernel
    (report.json)."""
    from visionfw import runtime
    from visionfw.degradation.learned import degradation_report

    runtime.import_tensorflow_quietly()
    out = out or os.path.join(run, "degradation_report")
    degradation_report(run, out, which=which, samples=samples, shown=shown, patches=patches,
                       hr_dirs=hr_dirs, true_kernel=true_kernel, seed=seed,
                       log=click.echo)
    click.echo(f"report written to {out}")


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
    except (DegradationError, VisionfwError) as exc:
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
