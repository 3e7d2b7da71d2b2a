"""Bicubic baseline on Set5, Set14 and B100 next to the published figures.

Two ways of making the bicubic result from the HR image cropped to a multiple of the scale,
both with MATLAB-bicubic ``imresize`` down by 1/scale and up by scale:

- ``y``: the protocol behind the published bicubic rows (SRCNN and VDSR evaluation code,
  quoted by EDSR, RCAN and later papers): the rounded Y channel (or the gray values of a
  grayscale image) is resized in floating point and rounded to uint8 only at the end.
- ``rgb``: the uint8 RGB pipeline that makes our models' LR inputs (MATLAB rounds to uint8
  after each axis and after each resize), scored on Y afterwards. It lands 0.005-0.02 dB
  below the published values.

Both are scored by ``visionfw.metrics.evaluate_pair``.

    python bench/bicubic_table.py [--data ../shared/data] [--datasets Set5,Set14,B100]
"""
import pathlib
import sys
import time

import click

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (dataset, scale) -> (PSNR, SSIM) of bicubic as published.
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
    ("B100", 2): (29.56, 0.8431), ("B100", 3): (27.21, 0.7385), ("B100", 4): (25.96, 0.6675),
}


def bicubic_sr(hr, scale, is_gray, pipeline="y"):
    """The bicubic x``scale`` estimate of ``hr`` (uint8, already modcropped).

    ``pipeline='y'`` returns the Y (or gray) plane as float in [0, 1]; ``'rgb'`` returns uint8 RGB.
    """
    import numpy as np

    from visionfw.metrics import rgb2y
    from visionfw.resize import imresize

    if pipeline == "rgb":
        return imresize(imresize(hr, 1 / scale), scale)
    plane = hr[..., :1] if is_gray else rgb2y(hr)[..., None]
    plane = plane.astype(np.float64) / 255.0
    return imresize(imresize(plane, 1 / scale), scale)[..., 0]


def bicubic_scores(folder, scale, pipeline="y"):
    """Mean (PSNR, SSIM) of bicubic x``scale`` over the images in ``folder``."""
    import numpy as np

    from visionfw.imageio import list_images, modcrop, read_image
    from visionfw.metrics import evaluate_pair

    scores = []
    for path in list_images(folder):
        hr, is_gray = read_image(path, return_gray=True)
        hr = modcrop(hr, scale)
        sr = bicubic_sr(hr, scale, is_gray, pipeline)
        scores.append(evaluate_pair(sr, hr, scale, hr_is_gray=is_gray))
    return tuple(np.mean(scores, axis=0))


@click.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=ROOT.parent / "shared" / "data", show_default=True,
              help="Folder holding benchmark/<dataset>/HR.")
@click.option("--datasets", default="Set5,Set14,B100", show_default=True)
@click.option("--scales", default="2,3,4", show_default=True)
def main(data, datasets, scales):
    from visionfw import runtime
    from visionfw.metrics import protocol_description

    runtime.configure_threads()
    print(f"Bicubic baseline. Protocol: {protocol_description('y')}")
    print("y = Y plane resized in float (the published protocol); "
          "rgb = uint8 RGB resized as MATLAB does, then Y")
    print(f"{'dataset':<8}{'scale':>6} | {'y PSNR':>7}{'SSIM':>8} | {'rgb PSNR':>8}{'SSIM':>8} | "
          f"{'published':>10}{'':>7} | {'y - published':>15}")
    for name in datasets.split(","):
        for scale in (int(s) for s in scales.split(",")):
            start = time.perf_counter()
            folder = data / "benchmark" / name / "HR"
            yp, ys = bicubic_scores(folder, scale, "y")
            rp, rs = bicubic_scores(folder, scale, "rgb")
            pp, ps = PUBLISHED.get((name, scale), (float("nan"), float("nan")))
            print(f"{name:<8}{'x%d' % scale:>6} | {yp:7.2f}{ys:8.4f} | {rp:8.2f}{rs:8.4f} | "
                  f"{pp:10.2f}{ps:7.4f} | {yp - pp:+7.3f}{ys - ps:+8.4f}"
                  f"   ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
