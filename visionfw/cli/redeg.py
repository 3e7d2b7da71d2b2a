"""``python -m visionfw redeg``: a trained ReDegNet (``train.py redegnet``) put to use --
``transfer`` the degradation of one LQ/HQ pair to other images, ``evaluate`` how well that
works on held-out degradations (:mod:`visionfw.evaluate.redeg`)."""
import math
import os
import pathlib

import click

from visionfw.cli.common import check_out_dir, one_line_errors, start_runtime

RUN_HELP = ("A train.py redegnet (or redegnet-sr) run folder, or one of its checkpoints "
            "(RUN/best.weights.h5).")
ADAPT_HELP = ("Fit SynNet and Omega to the pair first: this many Adam steps of the L1 "
              "distance between SynNet's synthesis of the pair's HQ image and its LQ image "
              "(nine squares of DegNet's size). Not in the official method; 0 (the default) "
              "is the official transfer. Fifty were chosen on degradations outside the held-out "
              "ones (docs/redegnet.md).")
ADAPT_LR_HELP = "Adam's learning rate of --adapt."
CROPS_HELP = ("DegNet reads up to this many squares of its size from the pair (the centre, "
              "corners, edge midpoints) and Omega is their mean.")


@click.group("redeg")
def redeg():
    """A trained ReDegNet: transfer a real degradation (transfer), measure it (evaluate)."""


def _read(path, flag):
    """A float [0, 1] RGB image; a missing or unreadable file is one line naming ``flag``."""
    from visionfw.evaluate.redeg import EvaluationError
    from visionfw.imageio import ImageError, read_image

    if not os.path.isfile(path):
        raise EvaluationError(f"{flag} {path}: no such file")
    try:
        return read_image(path).astype("float32") / 255.0
    except ImageError as exc:
        raise EvaluationError(f"{flag} {path}: {exc.reason}") from None


def _load(run):
    from visionfw.evaluate.redeg import EvaluationError
    from visionfw.recipes.redeg import load_redeg

    if not os.path.exists(run):
        raise EvaluationError(f"--run {run}: no such run folder or checkpoint")
    return load_redeg(run)


@redeg.command("transfer")
@click.option("--run", required=True, metavar="RUN", help=RUN_HELP)
@click.option("--pair", required=True, nargs=2, metavar="LQ HQ",
              help="The real pair whose degradation is transferred: its LQ image (at the HQ "
                   "size, or smaller by an integer ratio) and its HQ image.")
@click.option("--to", "targets", required=True, multiple=True, metavar="IMAGES",
              help="Images, folders or quoted glob patterns to degrade; repeatable.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder of the degraded images (NAME.png, RGB, 8 bits).")
@click.option("--scale", type=click.IntRange(1, 16), default=None,
              help="HQ/LQ size ratio of the pair, when its LQ sides are the HQ sides over S "
                   "rounded (default: the pair's exact ratio).")
@click.option("--crops", type=click.IntRange(1, 9), default=5, show_default=True,
              help=CROPS_HELP)
@click.option("--adapt", "adapt_steps", type=click.IntRange(0, 100000), default=0,
              show_default=True, help=ADAPT_HELP)
@click.option("--adapt-lr", type=click.FloatRange(0, 1, min_open=True), default=1e-4,
              show_default=True, help=ADAPT_LR_HELP)
@one_line_errors
def transfer(run, pair, targets, out, scale, crops, adapt_steps, adapt_lr):
    """Degrade images as a real LQ/HQ pair is degraded: DegNet reads Omega from the pair,
    SynNet degrades each image of --to with it (at the image's size; padded by mirroring to
    SynNet's multiple and cropped back) and, when the pair's LQ is smaller than its HQ, the
    result goes down by the same ratio (MATLAB bicubic). With --adapt N, SynNet and Omega are
    first fitted to the pair. Writes --out/NAME.png."""
    from visionfw.cli.sr import collect_inputs
    from visionfw.evaluate.redeg import (EvaluationError, adapt, degnet_size, down_by,
                                         omega_of_pair, pair_ratio, synthesise)
    from visionfw.imageio import write_image
    from visionfw.metrics import to_uint8

    lq_path, hq_path = pair
    paths = collect_inputs(targets)
    lq, hq = _read(lq_path, "--pair LQ"), _read(hq_path, "--pair HQ")
    ratio = pair_ratio(lq.shape, hq.shape, scale)
    images = [(p, _read(str(p), "--to")) for p in paths]
    names = {}
    for p, _ in images:
        if p.stem in names:
            raise EvaluationError(f"--to: {names[p.stem]} and {p} would both be written as "
                                  f"{p.stem}.png")
        names[p.stem] = p
    check_out_dir(out)
    outputs = [pathlib.Path(out) / f"{p.stem}.png" for p, _ in images]
    inputs = {p.resolve() for p in paths} | {pathlib.Path(lq_path).resolve(),
                                             pathlib.Path(hq_path).resolve()}
    clash = [o for o in outputs if o.resolve() in inputs]
    if clash:
        raise EvaluationError(f"--out {out}: would write over the input {clash[0]}")
    start_runtime()
    degnet, synnet = _load(run)
    omega = omega_of_pair(degnet, lq, hq, crops, what=f"--pair {hq_path}")
    if adapt_steps:
        omega, losses = adapt(synnet, omega, lq, hq, adapt_steps, adapt_lr,
                              degnet_size(degnet))
        click.echo(f"SynNet fitted to the pair in {adapt_steps} steps: L1 {losses[0]:.4f} -> "
                   f"{losses[-1]:.4f}", err=True)
    for (p, image), target in zip(images, outputs):
        fake = down_by(synthesise(synnet, image, omega), ratio)
        write_image(target, to_uint8(fake))
        click.echo(f"{p.name}: {fake.shape[1]}x{fake.shape[0]} -> {target}", err=True)
    click.echo(f"{len(images)} image(s) degraded as {os.path.basename(lq_path)} "
               f"(x{ratio}) into {out}")


@redeg.command("evaluate")
@click.option("--run", required=True, metavar="RUN", help=RUN_HELP)
@click.option("--protocol", "protocols", required=True, multiple=True, metavar="SPEC",
              help="A held-out degradation: a spec of the degradation library or a named "
                   "protocol (python -m visionfw.degradation protocols); repeatable.")
@click.option("--dataset", required=True, metavar="DIR",
              help="Folder of HQ images (or of an HR/ sub-folder), e.g. Set14.")
@click.option("--source", default=None, metavar="IMAGE",
              help="The HQ image whose one degraded pair gives Omega (default: the dataset's "
                   "first image); it is left out of the PSNR averages.")
@click.option("--json", "json_path", required=True, type=click.Path(dir_okay=False),
              help="The report (JSON, written atomically).")
@click.option("--scale", type=click.IntRange(1, 16), default=None,
              help="Down-sampling factor of the degradations (default: the run's --scale).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of each degradation's one draw (shared by every image) and of the "
                   "training-chain draws.")
@click.option("--crops", type=click.IntRange(1, 9), default=5, show_default=True,
              help=CROPS_HELP)
@click.option("--draws", type=click.IntRange(1, 1000), default=16, show_default=True,
              help="Draws of the run's training chain averaged for the training-mean "
                   "baseline.")
@click.option("--adapt", "adapt_steps", type=click.IntRange(0, 100000), default=0,
              show_default=True, help=ADAPT_HELP)
@click.option("--adapt-lr", type=click.FloatRange(0, 1, min_open=True), default=1e-4,
              show_default=True, help=ADAPT_LR_HELP)
@one_line_errors
def evaluate(run, protocols, dataset, source, json_path, scale, seed, crops, draws,
             adapt_steps, adapt_lr):
    """Acceptance measurements of a trained ReDegNet on held-out degradations. For each
    degradation D: Omega from one pair (D(source), source), SynNet's D-like LQ of every other
    image against the true D(image) (PSNR, RGB, 8 bits), beside MATLAB bicubic down-sampling
    and the mean of the run's training chain (with --adapt N, also the synthesis of SynNet
    and Omega fitted to the pair first); then how well Omegas of every degradation x
    every image tell the degradations apart (nearest-neighbour retrieval). Prints a table,
    writes --json."""
    from visionfw.cli.evaluate import check_output_path
    from visionfw.degradation import get_protocol, hr_multiple
    from visionfw.evaluate.redeg import (EvaluationError, format_table, measure, run_settings,
                                         training_chain, write_report)
    from visionfw.imageio import list_images, modcrop

    if not os.path.isdir(dataset):
        raise EvaluationError(f"--dataset {dataset}: no such folder")
    folder = pathlib.Path(dataset)
    folder = folder / "HR" if (folder / "HR").is_dir() else folder
    paths = list_images(folder)
    if not paths:
        raise EvaluationError(f"--dataset {dataset}: no PNG, BMP, JPEG or TIFF image")
    if source is None:
        source = str(paths[0])
    elif not os.path.isfile(source):
        raise EvaluationError(f"--source {source}: no such file")
    others = [p for p in paths if p.resolve() != pathlib.Path(source).resolve()]
    if not others:
        raise EvaluationError(f"--dataset {dataset}: no image besides the source to degrade")
    stems = [pathlib.Path(source).stem] + [p.stem for p in others]
    twice = [n for n in stems if stems.count(n) > 1]
    if twice:
        raise EvaluationError(f"--dataset {dataset}: two images are named {twice[0]} (the "
                              "report names each image by its file name)")
    if not os.path.exists(run):
        raise EvaluationError(f"--run {run}: no such run folder or checkpoint")
    start_runtime()
    degnet, synnet = _load(run)              # a folder of another recipe: refused here
    settings = run_settings(run)
    if scale is None:
        scale = (settings.get("settings") or {}).get("scale")
        if not scale:
            raise EvaluationError(f"--run {run}: its settings.json records no scale; give "
                                  "--scale")
    variants = [v for spec in protocols for v in get_protocol(spec, scale, seed)]
    names = [name for name, _ in variants]
    if len(set(names)) < len(names):
        raise EvaluationError("--protocol: a degradation is given twice")
    multiple = math.lcm(*(hr_multiple(spec, scale) for spec in protocols))
    check_output_path(json_path, "--json")
    hq = {}
    for i, p in enumerate([pathlib.Path(source), *others]):
        image = modcrop(_read(str(p), "--dataset" if i else "--source"), multiple)
        if min(image.shape[:2]) < multiple:
            raise EvaluationError(f"{p}: smaller than {multiple} pixels")
        hq[p] = image
    from visionfw.recipes.redeg import RandomChain

    chain = RandomChain(*training_chain(settings))
    src = pathlib.Path(source)
    report = measure(degnet, synnet, variants, scale, (src.stem, hq[src]),
                     [(p.stem, hq[p]) for p in others], chain, seed=seed, crops=crops,
                     draws=draws, adapt_steps=adapt_steps, adapt_lr=adapt_lr,
                     log=lambda line: click.echo(line, err=True))
    report = {"protocol": report.pop("protocol"), "run": str(run), "dataset": str(folder),
              **report}
    write_report(report, json_path)
    click.echo(format_table(report))
    click.echo(f"report written to {json_path}")
