"""Pictures of an evaluation: SR images and comparison grids."""
import pathlib

import numpy as np


def save_outputs(save_dir, dataset, variant, image_name, lr, bic, sr, hr, scale, grid,
                 scores=None):
    """The SR image (``NAME.png``) and, with ``grid``, the labelled comparison picture
    (``NAME_grid.png``); ``scores`` = ``(sr_psnr, bicubic_psnr)`` in dB for the captions."""
    from visionfw.imageio import write_image
    from visionfw.metrics import to_uint8

    folder = pathlib.Path(save_dir) / dataset
    if variant:
        folder = folder / variant
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / f"{image_name}.png", to_uint8(np.clip(sr, 0, 1)))
    if grid:
        picture = comparison_grid(to_uint8(lr), to_uint8(bic), to_uint8(np.clip(sr, 0, 1)), hr,
                                  scale, captions=grid_captions(scale, scores))
        write_image(folder / f"{image_name}_grid.png", picture)


def grid_captions(scale, scores=None, model="SR"):
    """Captions of the four panels: LR, bicubic, the model and HR, with the PSNRs if known."""
    sr_psnr, bic_psnr = scores if scores else (None, None)
    return [f"LR x{scale} (pixels repeated)",
            "bicubic" + (f" {bic_psnr:.2f} dB" if bic_psnr is not None else ""),
            model + (f" {sr_psnr:.2f} dB" if sr_psnr is not None else ""),
            "HR (ground truth)"]


def comparison_grid(lr, bicubic, sr, hr, scale, gap=4, captions=None):
    """LR (pixel-repeated), bicubic, SR and HR side by side, with a zoomed crop row beneath.

    The crop is the square of a third of the shorter side where the ground truth has the most
    detail; a red frame marks it on the HR panel. ``captions`` (four strings, e.g. from
    :func:`grid_captions`) are written in a strip above the panels.
    """
    h, w = hr.shape[:2]
    lr_big = np.repeat(np.repeat(lr, scale, 0), scale, 1)[:h, :w]
    panels = [lr_big, bicubic, sr, hr.copy()]
    c = max(8, min(h, w) // 3)
    y0, x0 = _busiest_square(hr, c)
    zoom = max(1, min(h, w) // c)
    crops = [np.repeat(np.repeat(p[y0:y0 + c, x0:x0 + c], zoom, 0), zoom, 1) for p in panels]
    _frame(panels[3], y0, x0, c)
    top = _row(panels, gap)
    bottom = _row(crops, gap)
    width = max(top.shape[1], bottom.shape[1])
    canvas = np.full((top.shape[0] + gap + bottom.shape[0], width, 3), 255, np.uint8)
    canvas[: top.shape[0], : top.shape[1]] = top
    canvas[top.shape[0] + gap:, : bottom.shape[1]] = bottom
    if captions:
        canvas = _caption_strip(canvas, [p.shape[1] for p in panels], gap, captions)
    return canvas


def _caption_strip(canvas, widths, gap, captions, height=14):
    """``canvas`` with a white strip on top holding each panel's caption (Pillow's bitmap
    font, clipped to the panel's width)."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (canvas.shape[1], height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    x = 0
    for width, text in zip(widths, captions):
        while text and draw.textlength(text) > width - 2:
            text = text[:-1]
        draw.text((x + 1, 1), text, fill=(0, 0, 0))
        x += width + gap
    return np.concatenate([np.asarray(strip, np.uint8), canvas], axis=0)


def _row(images, gap):
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + gap * (len(images) - 1)
    row = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for img in images:
        row[: img.shape[0], x:x + img.shape[1]] = img
        x += img.shape[1] + gap
    return row


def _busiest_square(img, c):
    g = img.astype(np.float32).mean(axis=-1)
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    best, where = -1.0, (0, 0)
    step = max(1, c // 4)
    for y in range(0, max(1, energy.shape[0] - c + 1), step):
        for x in range(0, max(1, energy.shape[1] - c + 1), step):
            e = float(energy[y:y + c, x:x + c].sum())
            if e > best:
                best, where = e, (y, x)
    return where


def _frame(img, y0, x0, c, color=(255, 0, 0)):
    y1, x1 = min(y0 + c, img.shape[0]) - 1, min(x0 + c, img.shape[1]) - 1
    img[y0, x0:x1 + 1] = color
    img[y1, x0:x1 + 1] = color
    img[y0:y1 + 1, x0] = color
    img[y0:y1 + 1, x1] = color


def save_kernels(save_dir, dataset, variant, image_name, estimate, true):
    """A picture of the estimated kernel beside the true one (``NAME_kernel.png``)."""
    from visionfw.degradation import kernel_grid
    from visionfw.imageio import write_image

    folder = pathlib.Path(save_dir) / dataset
    if variant:
        folder = folder / variant
    folder.mkdir(parents=True, exist_ok=True)
    picture = kernel_grid([estimate], [true])
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=-1)
    write_image(folder / f"{image_name}_kernel.png", picture)


def save_steps(save_dir, dataset, variant, image_name, steps, true_kernel):
    """A loop's every step: ``NAME_step<t>.png`` per step, and ``NAME_kernels.png``, the
    estimated kernel of each step beside the true one (true in green; the estimates alone for
    an image without ground truth, ``true_kernel=None``). ``dataset`` may be ``None``
    (straight into ``save_dir``)."""
    from visionfw.degradation import kernel_grid
    from visionfw.imageio import write_image
    from visionfw.metrics import to_uint8

    folder = pathlib.Path(save_dir) / (dataset or "")
    if variant:
        folder = folder / variant
    folder.mkdir(parents=True, exist_ok=True)
    for t, step in enumerate(steps):
        write_image(folder / f"{image_name}_step{t}.png", to_uint8(np.clip(step["image"], 0, 1)))
    kernels = [step["kernel"] for step in steps if "kernel" in step]
    if kernels:
        true = None if true_kernel is None else [true_kernel] * len(kernels)
        picture = kernel_grid(kernels, true, columns=len(kernels))
        write_image(folder / f"{image_name}_kernels.png", picture)
