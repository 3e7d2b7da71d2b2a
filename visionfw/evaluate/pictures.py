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


# ---- pictures of images without ground truth: python -m visionfw sr ----------------------

def contact_sheet(lr, bicubic, panels, scale, columns=4, gap=4, max_side=512, min_width=128):
    """A labelled contact sheet of one LR image: the LR (pixels repeated), the bicubic
    up-sampling and each of ``panels``, every one with the same square zoomed beneath it.

    Laid out like :func:`comparison_grid` without the ground truth: cells of ``columns`` to a
    row, each a caption, the full picture and the zoomed crop. The crop is the square of a
    third of the shorter side where the last panel (the result) has the most detail; a red
    frame marks it on the LR panel. A picture longer than ``max_side`` is shown shrunk by a
    whole factor (the mean of each block), the crop at full resolution or zoomed.

    Args:
        lr: ``(h, w, 3)`` uint8 LR image.
        bicubic: ``(s*h, s*w, 3)`` uint8 bicubic up-sampling.
        panels: ``[(label, (s*h, s*w, 3) uint8 image), ...]``: the steps, or the one result.
        scale: the factor s.

    Returns:
        ``(picture, layout)``: the ``uint8`` sheet and, per cell in order (LR, bicubic, then
        ``panels``), ``{"label", "panel": (top, left, height, width), "crop": (...)}`` in the
        sheet's pixels.
    """
    h, w = bicubic.shape[:2]
    lr_big = np.repeat(np.repeat(lr, scale, 0), scale, 1)[:h, :w]
    cells = [(f"LR x{scale} (pixels repeated)", lr_big), ("bicubic", bicubic), *panels]
    shrink = max(1, -(-max(h, w) // max_side))
    c = min(max(8, min(h, w) // 3), min(h, w), max(8, max_side // 2))
    y0, x0 = _busiest_square(cells[-1][1], c)
    zoom = max(1, (min(h, w) // shrink) // c)
    shown = [_shrink(img, shrink) for _, img in cells]
    crops = [np.repeat(np.repeat(img[y0:y0 + c, x0:x0 + c], zoom, 0), zoom, 1)
             for _, img in cells]
    _frame(shown[0], y0 // shrink, x0 // shrink, max(1, c // shrink))
    width = max(min_width, shown[0].shape[1], crops[0].shape[1])
    columns = max(1, min(int(columns), len(cells)))
    rows, layout, top = [], [], 0
    for start in range(0, len(cells), columns):
        part = range(start, min(start + columns, len(cells)))
        upper = _row([_pad_width(shown[i], width) for i in part], gap)
        lower = _row([_pad_width(crops[i], width) for i in part], gap)
        block = np.full((upper.shape[0] + gap + lower.shape[0], upper.shape[1], 3), 255,
                        np.uint8)
        block[:upper.shape[0]] = upper
        block[upper.shape[0] + gap:] = lower
        block = _caption_strip(block, [width] * len(part), gap, [cells[i][0] for i in part])
        strip = block.shape[0] - upper.shape[0] - gap - lower.shape[0]
        for k, i in enumerate(part):
            left = k * (width + gap)
            layout.append({"label": cells[i][0],
                           "panel": (top + strip, left) + shown[i].shape[:2],
                           "crop": (top + strip + upper.shape[0] + gap, left)
                           + crops[i].shape[:2]})
        rows.append(block)
        top += block.shape[0] + gap
    sheet = np.full((top - gap, max(r.shape[1] for r in rows), 3), 255, np.uint8)
    y = 0
    for block in rows:
        sheet[y:y + block.shape[0], :block.shape[1]] = block
        y += block.shape[0] + gap
    return sheet, layout


def _shrink(img, factor):
    """``img`` made ``factor`` times smaller by the mean of each block (a copy at factor 1)."""
    if factor == 1:
        return img.copy()
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    blocks = img[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def _pad_width(img, width):
    """``img`` on a white background ``width`` pixels wide (left-aligned)."""
    if img.shape[1] >= width:
        return img
    out = np.full((img.shape[0], width, img.shape[2]), 255, np.uint8)
    out[:, :img.shape[1]] = img
    return out


class KernelStrip:
    """What :func:`kernel_strip` drew: ``picture`` (``uint8 (H, W, 3)``), ``vmax`` (the
    kernel value drawn white, the largest tap of all the kernels), ``sigmas`` (each kernel's
    fitted isotropic sigma), ``captions`` (each kernel's caption lines) and ``boxes`` (where
    each kernel is drawn: ``(top, left, height, width)``)."""

    def __init__(self, picture, vmax, sigmas, captions, boxes):
        self.picture, self.vmax, self.sigmas = picture, vmax, sigmas
        self.captions, self.boxes = captions, boxes


def kernel_strip(kernels, labels, zoom=8, gap=8, bar=12):
    """A row of kernels on one colour scale, each captioned with its label and the sigma of
    the isotropic Gaussian nearest to it (:func:`visionfw.degradation.fit_isotropic_sigma`,
    the one test.py reports).

    Every kernel is drawn by :func:`visionfw.degradation.kernel_picture` with the same
    ``peak``: black is 0, white the largest tap over the whole strip (``vmax``), so the
    kernels' heights compare. A grey bar on the right shows the scale, its ends labelled, and
    a header line states it. Kernels of different sizes are centred in equal cells.

    Returns:
        :class:`KernelStrip`.
    """
    from PIL import Image, ImageDraw

    from visionfw.degradation import fit_isotropic_sigma, kernel_picture

    kernels = [np.asarray(k, np.float64) for k in kernels]
    if not kernels or len(kernels) != len(labels):
        raise ValueError(f"kernel_strip: {len(kernels)} kernels for {len(labels)} labels")
    vmax = max(float(k.max()) for k in kernels)
    sigmas = [fit_isotropic_sigma(k) if k.shape[0] == k.shape[1] else None for k in kernels]
    captions = [[str(label), "sigma ?" if s is None else f"sigma {s:.2f}"]
                for label, s in zip(labels, sigmas)]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pictures = [kernel_picture(k, zoom, peak=vmax) for k in kernels]
    side = max(max(p.shape) for p in pictures)
    width = max(side, *(int(measure.textlength(t)) + 4 for lines in captions for t in lines))
    line, head = 12, 14
    header = f"shared scale: black 0, white {vmax:.4g} (largest tap)"
    scale_text = [f"{vmax:.3g}", "0"]
    bar_width = bar + 4 + max(int(measure.textlength(t)) for t in scale_text) if bar else 0
    total_w = len(kernels) * (width + gap) + bar_width + gap
    total_w = max(total_w, int(measure.textlength(header)) + 2 * gap)
    canvas = np.full((head + gap + side + 2 * line + gap, total_w, 3), 255, np.uint8)
    boxes = []
    for i, p in enumerate(pictures):
        top = head + gap + (side - p.shape[0]) // 2
        left = gap + i * (width + gap) + (width - p.shape[1]) // 2
        canvas[top:top + p.shape[0], left:left + p.shape[1]] = p[..., None]
        boxes.append((top, left) + p.shape)
    x_bar = gap + len(kernels) * (width + gap)
    if bar:
        ramp = np.floor(np.linspace(255, 0, side) + 0.5).astype(np.uint8)
        canvas[head + gap:head + gap + side, x_bar:x_bar + bar] = ramp[:, None, None]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw.text((gap, 1), header, fill=(0, 0, 0))
    for i, lines in enumerate(captions):
        for j, text in enumerate(lines):
            draw.text((gap + i * (width + gap) + 2, head + gap + side + 1 + j * line), text,
                      fill=(0, 0, 0))
    if bar:
        draw.text((x_bar + bar + 3, head + gap), scale_text[0], fill=(0, 0, 0))
        draw.text((x_bar + bar + 3, head + gap + side - line), scale_text[1], fill=(0, 0, 0))
    return KernelStrip(np.asarray(image, np.uint8), vmax, sigmas, captions, boxes)
