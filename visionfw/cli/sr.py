"""``python -m visionfw sr``: super-resolve your own LR images (no ground truth needed)."""
import glob
import pathlib
import sys
import time

import click

from visionfw.cli.common import (EXTRA_ARGS, check_out_dir, extra_options, merge_options,
                                 one_line_errors, start_runtime)
from visionfw.errors import HyperparameterError


def collect_inputs(inputs):
    """Image paths from files, folders and glob patterns, in the order given (each once)."""
    from visionfw.imageio import IMAGE_EXTENSIONS, list_images

    out, seen = [], set()
    for item in inputs:
        path = pathlib.Path(item)
        if path.is_dir():
            found = list_images(path)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(pathlib.Path(p) for p in glob.glob(item)
                           if pathlib.Path(p).suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise HyperparameterError(f"{item}: no such file or folder, and no image "
                                          "matches it as a pattern")
        for p in found:
            if p.resolve() not in seen:
                seen.add(p.resolve())
                out.append(p)
    if not out:
        raise HyperparameterError(f"no PNG, BMP, JPEG or TIFF image in {', '.join(inputs)}")
    return out


@click.command("sr", context_settings=EXTRA_ARGS,
               epilog="A method's parameters may also be given as options: --method ikc "
                      "--iterations 7.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--weights", "weights", multiple=True, required=True,
              help="Weights file, ROLE=FILE for a method's networks, or a train.py run "
                   "folder; repeatable.")
@click.option("--method", default=None,
              help="Method of several networks (e.g. ikc); default: the single network's own.")
@click.option("--method-param", "method_params", multiple=True, metavar="NAME=VALUE")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the SR images (NAME_xS.png) and, for blind methods, the "
                   "estimated kernels (NAME_kernel.png).")
@click.option("--scale", type=click.IntRange(1, 16), default=None,
              help="Up-scaling factor (default: the network's own).")
@click.option("--tile", type=click.IntRange(8, None), default=None,
              help="Run the network on tiles of this many LR pixels.")
@click.option("--tile-overlap", type=click.IntRange(0, None), default=16, show_default=True)
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips and rotations.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True)
@click.option("--save-steps", type=click.Path(file_okay=False), default=None,
              help="Methods with steps (ikc): write each step's SR image (NAME_step<t>.png) "
                   "and a picture of every step's estimated kernel (NAME_kernels.png) here.")
@click.pass_context
@one_line_errors
def sr(ctx, inputs, weights, method, method_params, out, scale, tile, tile_overlap, self_ensemble,
       precision, save_steps):
    """Super-resolve INPUTS (image files, folders or quoted glob patterns) and write the SR
    images to --out as PNGs in the input's form: a gray image gives a gray one (the mean of
    the network's three channels), a 16-bit image a 16-bit one, an alpha channel is resized
    bicubically and kept. Files that cannot be read are skipped and named."""
    from visionfw.cli.evaluate import load_for_test, method_from_roles, parse_weights
    from visionfw.evaluate import EvaluationError, method_for
    from visionfw.params import parse_pairs

    if tile is not None and tile_overlap >= tile:
        raise HyperparameterError(f"--tile-overlap {tile_overlap} must be smaller than "
                                  f"--tile {tile}")
    inputs = _split_options(ctx, inputs)
    extra = extra_options(ctx, lambda: _method_params_of(method))
    paths = collect_inputs(inputs)
    check_out_dir(out)
    if save_steps:
        check_out_dir(save_steps, "--save-steps")
    roles = parse_weights(weights)
    options = merge_options(parse_pairs(method_params, flag="--method-param"), extra,
                            "--method-param")
    start_runtime()
    from visionfw.runtime import set_precision

    set_precision(precision)
    common = dict(tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble)
    if method is None and len(roles) == 1 and "model" in roles and not options:
        runner = method_for(load_for_test(None, roles["model"], (), scale), scale=scale, **common)
    else:
        runner = method_from_roles(method or "sr", roles, options, scale, **common)
    if runner.kind != "image":
        raise EvaluationError(f"method {runner.name} estimates kernels; sr writes SR images")
    if runner.labels:
        raise EvaluationError(f"method {runner.name} needs the true {runner.labels[0]} of each "
                              "image, which images without ground truth do not have; use a "
                              "blind method (e.g. --method ikc)")
    done, skipped, notes, start = [], [], set(), time.perf_counter()
    for i, path in enumerate(paths, 1):
        try:
            seconds, size = _one(runner, path, out, save_steps, notes)
        except (EvaluationError, ValueError, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            skipped.append(path.name)
            click.echo(f"[{i}/{len(paths)}] {path.name}: skipped ({reason})", err=True)
            continue
        done.append(path.name)
        click.echo(f"[{i}/{len(paths)}] {path.name}: {size} in {seconds:.1f} s", err=True)
    for note in sorted(notes):
        click.echo(note, err=True)
    total = time.perf_counter() - start
    click.echo(f"{len(done)} image(s) super-resolved x{runner.scale} into {out} in {total:.1f} s"
               + (f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""))
    if not done:
        sys.exit(2)


def _split_options(ctx, inputs):
    """INPUTS swallow the options click does not know (``--iterations 7``): hand them, with
    their values, back to the extra arguments."""
    kept, tokens = [], list(inputs)
    while tokens:
        token = tokens.pop(0)
        if token.startswith("--"):
            ctx.args.append(token)
            if "=" not in token and tokens and not tokens[0].startswith("--"):
                ctx.args.append(tokens.pop(0))
        else:
            kept.append(token)
    if not kept:
        raise click.UsageError("no INPUTS: give LR image files, folders or glob patterns")
    return kept


def _method_params_of(name):
    from visionfw.cli.evaluate import _method_params_of as of

    return of(name) if name else ("sr", set())


def _one(runner, path, out, save_steps=None, notes=None):
    """Super-resolve one file; ``(seconds, 'WxH -> WxH')``.

    The SR image is written as a PNG in the input's form (:meth:`visionfw.imageio.Picture.
    encode`): a grayscale file is run as RGB with three equal channels (what the networks
    take) and written as one channel, the mean of the result's three channels; a 16-bit file
    (gray or colour) is read and written with 16 bits (the networks work on float [0, 1]
    either way); an alpha channel is resized by MATLAB-bicubic ``imresize``, as the bicubic
    baseline is, and written with the result. Step images (``save_steps``) are 8-bit, gray
    for a gray input; a 16-bit input adds a note about that to ``notes`` (a set).
    """
    import numpy as np

    from visionfw.imageio import ImageError, read_picture, write_image
    from visionfw.resize import imresize

    try:
        picture = read_picture(path)
    except ImageError as exc:
        raise ValueError(str(exc)) from None
    lr = picture.rgb
    t0 = time.perf_counter()
    bicubic = np.clip(np.asarray(imresize(lr, runner.scale), np.float32), 0, 1)
    result = runner(lr, bicubic, {})
    image = np.clip(result["sr"][1], 0, 1)
    alpha = None
    if picture.alpha is not None:
        alpha = np.clip(np.asarray(imresize(picture.alpha, runner.scale), np.float32), 0, 1)
    stem = path.stem
    write_image(pathlib.Path(out) / f"{stem}_x{runner.scale}.png", picture.encode(image, alpha))
    if "kernel" in result:
        from visionfw.degradation import kernel_picture

        picture_of_kernel = kernel_picture(result["kernel"], zoom=8)
        write_image(pathlib.Path(out) / f"{stem}_kernel.png",
                    np.repeat(picture_of_kernel[..., None], 3, axis=-1))
        np.save(pathlib.Path(out) / f"{stem}_kernel.npy", np.asarray(result["kernel"]))
    if save_steps and result.get("steps"):
        from visionfw.evaluate.pictures import save_steps as write_steps

        steps = result["steps"]
        if picture.gray:
            steps = [dict(step, image=np.mean(step["image"], axis=-1, keepdims=True))
                     for step in steps]
        if picture.bits == 16 and notes is not None:
            notes.add("note: the step images of --save-steps are written with 8 bits, the SR "
                      "images of 16-bit inputs with 16")
        write_steps(save_steps, None, None, stem, steps, None)
    h, w = lr.shape[:2]
    form = ", ".join(f for f, on in (("gray", picture.gray), ("16-bit", picture.bits == 16),
                                     ("alpha", alpha is not None)) if on)
    return (time.perf_counter() - t0,
            f"{w}x{h} -> {image.shape[1]}x{image.shape[0]}" + (f" ({form})" if form else ""))
