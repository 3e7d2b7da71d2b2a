"""``python -m visionfw sr``: super-resolve your own LR images (no ground truth needed)."""
import glob
import pathlib
import sys
import time

import click

from visionfw.cli.common import (EXTRA_ARGS, check_out_dir, extra_options, merge_options,
                                 one_line_errors, plugin_options, start_runtime)
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
              help="Weights file, ROLE=FILE for a method's networks, a train.py run folder, "
                   "or 'bicubic' (no file: MATLAB-bicubic up-sampling at --scale, the "
                   "baseline); repeatable.")
@click.option("--method", default=None,
              help="Method of several networks (e.g. ikc); default: the single network's own.")
@click.option("--method-param", "method_params", multiple=True, metavar="NAME=VALUE")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the SR images (NAME_xS.png), the contact sheets "
                   "(NAME_sheet.png) and, for methods that estimate kernels, the last estimate "
                   "(NAME_kernel.png, .npy) and every step's (NAME_kernels.png).")
@click.option("--scale", type=click.IntRange(1, 16), default=None,
              help="Up-scaling factor (default: the network's own).")
@click.option("--kernel", "kernel_file", default=None, metavar="FILE[:INDEX]",
              help="Non-blind networks (usrnet, nonblind): the blur kernel of the inputs, a "
                   ".npy, .mat or grayscale picture (.png) checked as a blur (finite, "
                   "non-negative, sum one); :INDEX (0-based) picks one of several.")
@click.option("--noise", type=click.FloatRange(0, 255), default=None, metavar="SIGMA",
              help="Noise level of the inputs on the 0-255 scale, for networks that take one "
                   "(USRNet); default 0.")
@click.option("--tile", type=click.IntRange(8, None), default=None,
              help="Run the network on tiles of this many LR pixels.")
@click.option("--tile-overlap", type=click.IntRange(0, None), default=16, show_default=True)
@click.option("--self-ensemble", is_flag=True, help="Average over the 8 flips and rotations.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
              show_default=True)
@click.option("--sheet/--no-sheet", default=None,
              help="Write NAME_sheet.png: the LR (pixels repeated), bicubic and every step's "
                   "SR (or the one SR), labelled, each with the same zoomed crop. Default: on "
                   "for methods with steps (ikc, dan, usrnet's iterations), off otherwise.")
@click.option("--save-steps", type=click.Path(file_okay=False), default=None,
              help="Methods with steps (ikc, dan, dan+usrnet's alternations, usrnet's and "
                   "kenet+usrnet's iterations): write each step's SR image "
                   "(NAME_step<t>.png) and the labelled strip of the steps' estimated kernels "
                   "(NAME_kernels.png) here.")
@plugin_options
@click.pass_context
@one_line_errors
def sr(ctx, inputs, weights, method, method_params, out, scale, kernel_file, noise, tile,
       tile_overlap, self_ensemble, precision, sheet, save_steps):
    """Super-resolve INPUTS (image files, folders or quoted glob patterns) and write the SR
    images to --out as PNGs in the input's form: a gray image gives a gray one (the mean of
    the network's three channels), a 16-bit image a 16-bit one, an alpha channel is resized
    bicubically and kept. Files that cannot be read are skipped and named. A warning (one
    line, not an error) says when an input looks noisy for a network its train.py run
    recorded as trained without noise, or when an estimated kernel sits at the edge of the
    estimator's training range."""
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
    bicubic = _is_bicubic(weights)
    if bicubic and (method or method_params or extra):
        raise HyperparameterError("--weights bicubic is the plain bicubic baseline; it takes "
                                  "no --method or method parameters")
    if bicubic and scale is None:
        raise HyperparameterError("--weights bicubic needs --scale (it has no network to take "
                                  "the factor from)")
    roles = {} if bicubic else parse_weights(weights)
    options = merge_options(parse_pairs(method_params, flag="--method-param"), extra,
                            "--method-param")
    given = read_kernel(kernel_file) if kernel_file else None
    start_runtime()
    from visionfw.runtime import set_precision

    set_precision(precision)
    common = dict(tile=tile, tile_overlap=tile_overlap, self_ensemble=self_ensemble)
    steps_wanted = bool(save_steps) or sheet is not False
    label = None                            # the one SR panel's caption on the sheet
    if bicubic:
        runner = method_for(load_for_test("bicubic", None, (), scale), scale=scale, **common)
    elif method is None and len(roles) == 1 and "model" in roles and not options:
        from visionfw.cli.evaluate import report_label

        model = load_for_test(None, roles["model"], (), scale)
        label = report_label(roles["model"])
        if _is_unfolded(model):             # USRNet alone: its iterations are its steps
            from visionfw.evaluate import make_method

            runner = make_method("usrnet", {"model": model}, scale, steps=steps_wanted,
                                 **common)
        else:
            runner = method_for(model, scale=scale, **common)
    else:
        name = method or "sr"
        if "steps" in _method_params_of(name)[1] and "steps" not in options:
            options["steps"] = steps_wanted
        runner = method_from_roles(name, roles, options, scale, **common)
    if runner.kind != "image":
        raise EvaluationError(f"method {runner.name} estimates kernels; sr writes SR images")
    if label is None and not bicubic:
        label = runner.name
    labels = _labels(runner, given, noise)
    from visionfw.evaluate.trained import training_of

    trainings = {role: training_of(path) for role, path in roles.items()}
    job = dict(runner=runner, out=out, save_steps=save_steps, labels=labels, sheet=sheet,
               kernel_given=given is not None, trainings=trainings, label=label)
    done, skipped, notes, start = [], [], set(), time.perf_counter()
    for i, path in enumerate(paths, 1):
        warnings = []
        try:
            seconds, size = _one(path=path, notes=notes, warnings=warnings, **job)
        except (EvaluationError, ValueError, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            skipped.append(path.name)
            click.echo(f"[{i}/{len(paths)}] {path.name}: skipped ({reason})", err=True)
            continue
        done.append(path.name)
        click.echo(f"[{i}/{len(paths)}] {path.name}: {size} in {seconds:.1f} s", err=True)
        for line in warnings:
            click.echo(line, err=True)
    for note in sorted(notes):
        click.echo(note, err=True)
    total = time.perf_counter() - start
    click.echo(f"{len(done)} image(s) super-resolved x{runner.scale} into {out} in {total:.1f} s"
               + (f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""))
    if not done:
        sys.exit(2)


def _is_bicubic(weights):
    """``--weights bicubic`` (alone, and no file of that name): the bicubic baseline."""
    import os

    return tuple(weights) == ("bicubic",) and not os.path.exists("bicubic")


def _is_unfolded(model):
    """A kernel-conditioned network with ``prior`` links (USRNet): run as ``usrnet``."""
    from visionfw.conditioning import roles_of, spec_dict

    return "kernel" in roles_of(model) and "prior" in spec_dict(model)


def read_kernel(value):
    """The kernel of ``--kernel FILE[:INDEX]``: read and checked by
    :func:`visionfw.degradation.load_kernels` (finite, no negative taps, sum one; a picture
    is normalised to sum one), the file's only kernel or the one at 0-based INDEX. A ``.mat``
    file's only variable is read, else its ``kernels`` (USRNet's files)."""
    import os

    import numpy as np

    from visionfw.degradation import DegradationError, load_kernels

    path, index = value, None
    head, sep, tail = value.rpartition(":")
    if sep and head and tail.isdigit() and not os.path.exists(value):
        path, index = head, int(tail)
    try:
        kernels = load_kernels(path, None)
    except DegradationError:
        if not path.lower().endswith(".mat"):
            raise
        kernels = load_kernels(path, "kernels")
    if index is None and len(kernels) > 1:
        raise DegradationError(f"--kernel {value}: the file holds {len(kernels)} kernels; pick "
                               f"one with --kernel {path}:INDEX (0 to {len(kernels) - 1})")
    if index is not None and index >= len(kernels):
        raise DegradationError(f"--kernel {value}: index {index} out of range "
                               f"0..{len(kernels) - 1}")
    return np.asarray(kernels[index or 0], np.float32)


def _labels(runner, kernel, noise):
    """What sr feeds the method beside the LR image: ``--kernel`` and ``--noise``, refused in
    one line where the method would not use them, or missing where it needs them."""
    import numpy as np

    from visionfw.evaluate import EvaluationError

    labels = {}
    if kernel is not None:
        if "kernel" not in runner.labels:
            raise EvaluationError(f"--kernel: method {runner.name} takes no given kernel (it "
                                  "estimates its own, or uses none); --kernel is for "
                                  "non-blind networks such as usrnet")
        labels["kernel"] = kernel
    if noise is not None:
        if not getattr(runner, "feeds_noise", False):
            raise EvaluationError(f"--noise: method {runner.name}'s networks take no noise "
                                  "level")
        labels["noise_sigma"] = np.float32(noise)
    missing = [name for name in runner.labels if name not in labels]
    if missing:
        raise EvaluationError(f"method {runner.name} needs the true {missing[0]} of each "
                              "image, which images without ground truth do not have: give it "
                              "(--kernel FILE) or use a blind method (e.g. --method ikc)")
    return labels


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


def _one(runner, path, out, save_steps=None, notes=None, labels=None, sheet=None,
         kernel_given=False, trainings=None, label=None, warnings=None):
    """Super-resolve one file; ``(seconds, 'WxH -> WxH')``.

    The SR image is written as a PNG in the input's form (:meth:`visionfw.imageio.Picture.
    encode`): a grayscale file is run as RGB with three equal channels (what the networks
    take) and written as one channel, the mean of the result's three channels; a 16-bit file
    (gray or colour) is read and written with 16 bits (the networks work on float [0, 1]
    either way); an alpha channel is resized by MATLAB-bicubic ``imresize``, as the bicubic
    baseline is, and written with the result. Step images (``save_steps``) are 8-bit, gray
    for a gray input; a 16-bit input adds a note about that to ``notes`` (a set).

    ``labels`` (the ``--kernel`` and ``--noise``) are fed to the method; ``sheet`` (``None``:
    when the method has steps) writes the contact sheet; an estimated kernel (not one given,
    ``kernel_given``) is written with the strip of every step's; ``warnings`` (a list)
    receives the lines of :func:`visionfw.evaluate.trained.input_warnings` for ``trainings``
    (``{role: Training or None}``). ``label`` names the single SR panel of the sheet.
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
    result = runner(lr, bicubic, dict(labels or {}))
    image = np.clip(result["sr"][1], 0, 1)
    alpha = None
    if picture.alpha is not None:
        alpha = np.clip(np.asarray(imresize(picture.alpha, runner.scale), np.float32), 0, 1)
    stem, folder = path.stem, pathlib.Path(out)
    write_image(folder / f"{stem}_x{runner.scale}.png", picture.encode(image, alpha))
    steps = result.get("steps") or []
    estimated = "kernel" in result and not kernel_given
    if estimated:
        from visionfw.degradation import kernel_picture

        picture_of_kernel = kernel_picture(result["kernel"], zoom=8)
        write_image(folder / f"{stem}_kernel.png",
                    np.repeat(picture_of_kernel[..., None], 3, axis=-1))
        np.save(folder / f"{stem}_kernel.npy", np.asarray(result["kernel"]))
        strip = _kernel_strip(result, steps)
        write_image(folder / f"{stem}_kernels.png", strip.picture)
    if sheet or (sheet is None and steps):
        write_image(folder / f"{stem}_sheet.png", _sheet(lr, bicubic, image, steps,
                                                        runner.scale, label))
    if save_steps and steps:
        from visionfw.evaluate.pictures import save_steps as write_steps

        kept = [{"image": np.mean(step["image"], axis=-1, keepdims=True) if picture.gray
                 else step["image"]} for step in steps]
        if picture.bits == 16 and notes is not None:
            notes.add("note: the step images of --save-steps are written with 8 bits, the SR "
                      "images of 16-bit inputs with 16")
        write_steps(save_steps, None, None, stem, kept, None)
        if estimated:
            write_image(pathlib.Path(save_steps) / f"{stem}_kernels.png", strip.picture)
    if warnings is not None and trainings:
        from visionfw.evaluate.trained import input_warnings

        warnings.extend(input_warnings(path.name, lr, trainings,
                                       result["kernel"] if estimated else None))
    h, w = lr.shape[:2]
    form = ", ".join(f for f, on in (("gray", picture.gray), ("16-bit", picture.bits == 16),
                                     ("alpha", alpha is not None)) if on)
    return (time.perf_counter() - t0,
            f"{w}x{h} -> {image.shape[1]}x{image.shape[0]}" + (f" ({form})" if form else ""))


def step_label(step, last=False):
    """A step's caption: its label, its note, and "(result)" on the last."""
    return step.get("label", "") + step.get("note", "") + (" (result)" if last else "")


def _kernel_strip(result, steps):
    """The labelled strip of every step's kernel, or of the one estimate."""
    from visionfw.evaluate.pictures import kernel_strip

    pairs = [(step_label(step), step["kernel"]) for step in steps if "kernel" in step]
    if not pairs:
        pairs = [("estimate", result["kernel"])]
    return kernel_strip([k for _, k in pairs], [text for text, _ in pairs])


def _sheet(lr, bicubic, image, steps, scale, label):
    """The contact sheet: every step's SR (or the one SR) beside the LR and bicubic."""
    import numpy as np

    from visionfw.evaluate.pictures import contact_sheet
    from visionfw.metrics import to_uint8

    if steps:
        panels = [(step_label(step, i == len(steps) - 1), step["image"])
                  for i, step in enumerate(steps)]
    else:
        panels = [] if label is None else [(f"SR: {label}", image)]
    picture, _ = contact_sheet(to_uint8(lr), to_uint8(bicubic),
                               [(text, to_uint8(np.clip(x, 0, 1))) for text, x in panels],
                               scale)
    return picture
