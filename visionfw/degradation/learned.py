"""The report of a learned degradation (``train.py pdm`` / ``pdm-sr``): what kernels it draws
and how much noise it adds, as JSON and pictures (``python -m visionfw.degradation report``).

Kernels are drawn from the kernel network in inference mode from a fixed seed, and shown as
the library's *convolution* kernels (the network's correlation taps turned by 180 degrees,
see :mod:`visionfw.degradation.layers`), so they compare with the kernels of a degradation
spec and of ``test.py``. The noise is measured on HR crops degraded by the whole learned
degradation: per crop, the standard deviation of the noise the noise network adds (over
pixels and channels), on the 0-255 scale.
"""
import json
import os

import numpy as np

from visionfw.degradation import DegradationError

SIGMAS = np.arange(0.1, 6.0 + 1e-9, 0.005)     # the isotropic fits' grid (fit_isotropic_sigma's)


def isotropic_fits(kernels):
    """The isotropic Gaussian sigma nearest (least squares) to each of ``(n, k, k)`` kernels,
    on the grid of :func:`~visionfw.degradation.fit_isotropic_sigma`."""
    from visionfw.degradation.kernels import gaussian_kernel_stack

    k = np.asarray(kernels, np.float64)
    bank = gaussian_kernel_stack(k.shape[-1], SIGMAS, SIGMAS, np.zeros_like(SIGMAS))
    flat_bank, flat = bank.reshape(len(SIGMAS), -1), k.reshape(len(k), -1)
    errors = (flat_bank ** 2).sum(1)[:, None] - 2.0 * flat_bank @ flat.T
    return SIGMAS[np.argmin(errors, axis=0)]


def moments(kernel):
    """``(sigma1, sigma2, theta)`` of a kernel's second moments about its centre of mass: the
    spreads along its principal axes (sigma1 the larger) and the direction of the first, in
    the library's Gaussian convention (x the column offset, y the row offset, theta in
    [0, pi) turning x towards y): :func:`~visionfw.degradation.kernel_shape`, with theta in
    radians."""
    from visionfw.degradation.metrics import kernel_shape

    major, minor, degrees = kernel_shape(kernel)
    return major, minor, float(np.radians(degrees))


def near_box_start(side):
    """The kernel PDM's kernel network starts from: the softmax of a one on the centre tap."""
    k = np.ones((side, side))
    k[side // 2, side // 2] = np.e
    return k / k.sum()


def _spread(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max())}


def _hr_crops(folders, size, count, seed):
    """``count`` random ``size`` x ``size`` crops (float32 on [0, 1]) of the images of
    ``folders`` (the embedded photographs when empty), drawn from ``seed``."""
    from visionfw.data import embedded
    from visionfw.data.images import load_images

    images = load_images(folders, on_skip=lambda m: None) if folders else embedded.train_images()
    images = [(n, im) for n, im in images if min(im.shape[:2]) >= size]
    if not images:
        raise DegradationError(f"no HR image is at least {size}x{size} pixels")
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        _, image = images[int(rng.integers(len(images)))]
        top = int(rng.integers(image.shape[0] - size + 1))
        left = int(rng.integers(image.shape[1] - size + 1))
        crops.append(image[top:top + size, left:left + size].astype(np.float32) / 255.0)
    return np.stack(crops)


def degradation_report(run, out, which=None, samples=1024, shown=16, patches=64,
                       hr_dirs=(), true_kernel=None, seed=0, log=None):
    """Write the report of a pdm or pdm-sr run folder into ``out`` and return it (a dict).

    Files: ``report.json``; ``kernels.png`` (``shown`` draws on one scale) and
    ``kernels.npy`` (all ``samples`` draws, float32 ``(n, l, l)``); ``mean_kernel.png`` (the
    mean of the draws, in white, beside the true kernel in green when known) and
    ``mean_kernel.npy``; ``synthetic.png`` (the first four HR crops, each beside the LR
    the learned degradation makes of it, rounded to 8 bits and enlarged by pixel repetition).

    Args:
        run: the run folder.
        out: the report's folder (made if needed).
        which: ``'last'``, ``'stopped'``, ``'best'`` or ``None`` (last if the run finished,
            else its state when stopped early, else best).
        samples: kernels drawn for the statistics.
        shown: kernels drawn in ``kernels.png``.
        patches: HR crops degraded for the noise statistics (of the run's patch size).
        hr_dirs: folders of HR images for the crops (default: the run's ``--train-dir``).
        true_kernel: the kernel that made the LR images, when known (a file or a fixed blur
            spec; default: the run's ``true_kernel`` recipe parameter).
        seed: the seed of the crops (the draws' seed is fixed).
        log: where progress lines go.
    """
    import tensorflow as tf

    from visionfw.degradation.metrics import kernel_grid, kernel_psnr
    from visionfw.imageio import write_image
    from visionfw.metrics import to_uint8
    from visionfw.recipes.pdm import load_run, noise_levels, run_files
    from visionfw.recipes.pdm import true_kernel as read_true_kernel

    log = log or (lambda m: None)
    if samples < 1 or shown < 1 or patches < 1:
        raise DegradationError("--samples, --shown and --patches must be positive")
    files = run_files(run, which)
    deg, settings = load_run(run, which)
    given = true_kernel or (settings.get("recipe_params") or {}).get("true_kernel") or None
    true = read_true_kernel(given, "true kernel") if given else None
    kernels = deg.kernels(samples).numpy().astype(np.float64)
    mean = kernels.mean(axis=0)
    mean /= mean.sum()
    s1, s2, theta = moments(mean)
    report = {
        "run": os.path.abspath(run),
        "weights": {role: os.path.basename(path) for role, path in files.items()},
        "protocol": [
            f"kernels: {samples} draws of z_k ~ N(0, 1) (a fixed seed) through the kernel "
            "network in inference mode, as convolution kernels (the network's correlation "
            "taps turned by 180 degrees); the mean is their average",
            "kernel PSNR: 10 log10(1 / MSE) of sum-one kernels, peak 1, on a common grid with "
            "the origins (tap size // 2) aligned",
            f"isotropic sigma: the least-squares isotropic Gaussian on a {SIGMAS[1] - SIGMAS[0]:g}"
            "-step grid; moments: the spreads along the principal axes of the second moments",
            f"noise: {patches} HR crops of {settings['patch_size']} px through the learned "
            "degradation (inference mode, fixed draws); per crop the standard deviation of the "
            "added noise over pixels and channels, x255",
        ],
        "scale": int(settings["scale"]),
        "kernel_size": deg.side,
        "per_pixel": bool(deg.per_pixel),
        "kernels": {
            "samples": samples,
            "mean_isotropic_sigma": float(isotropic_fits(mean[None])[0]),
            "mean_moments": {"sigma1": s1, "sigma2": s2, "theta": theta},
            "sample_isotropic_sigma": _spread(isotropic_fits(kernels)),
            "sample_psnr_to_mean": _spread(kernel_psnr(kernels, mean)),
        },
    }
    folders = list(hr_dirs) or list(settings.get("train_dirs") or [])
    from visionfw.train.run import image_folder

    crops = _hr_crops([image_folder(f) for f in folders], int(settings["patch_size"]),
                      patches, seed)
    sigmas, means, lrs = [], [], []
    for start in range(0, len(crops), 16):
        hr = tf.constant(crops[start:start + 16])
        zk, zn = deg.fixed_draws(hr, (2022 + seed, start))
        lr, _, noise = deg(hr, zk, zn, training=False)
        sigmas.append(noise_levels(noise).numpy())
        means.append(255.0 * tf.reduce_mean(noise, axis=[1, 2, 3]).numpy())
        lrs.append(lr.numpy())
    report["noise"] = {"patches": patches, "patch_size": int(settings["patch_size"]),
                       "hr": folders or ["embedded"],
                       "sigma": _spread(np.concatenate(sigmas)),
                       "mean": _spread(np.concatenate(means))}
    if true is not None:
        iso = float(isotropic_fits(true[None])[0]) if true.shape[0] == true.shape[1] else None
        from visionfw.degradation.kernels import gaussian_kernel

        rows = {"learned_mean": float(kernel_psnr(mean, true)),
                "learned_samples": _spread(kernel_psnr(kernels, true)),
                "near_box_start": float(kernel_psnr(near_box_start(deg.side), true))}
        if iso is not None:
            rows["best_isotropic"] = float(kernel_psnr(gaussian_kernel(true.shape[0], iso),
                                                       true))
            rows["best_isotropic_sigma"] = iso
        report["true_kernel"] = {"given": given, "moments": dict(zip(
            ("sigma1", "sigma2", "theta"), moments(true))), "kernel_psnr": rows}
    os.makedirs(out, exist_ok=True)
    shown_k = kernels[:shown]
    write_image(os.path.join(out, "kernels.png"), kernel_grid(list(shown_k), columns=8))
    np.save(os.path.join(out, "kernels.npy"), kernels.astype(np.float32))
    np.save(os.path.join(out, "mean_kernel.npy"), mean.astype(np.float32))
    write_image(os.path.join(out, "mean_kernel.png"),
                kernel_grid([mean], None if true is None else [true], zoom=12))
    write_image(os.path.join(out, "synthetic.png"),
                _strip(crops[:4], np.concatenate(lrs)[:4], deg.scale, to_uint8))
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    for line in summary(report):
        log(line)
    return report


def _strip(hr, lr, scale, to_uint8):
    """Pairs ``HR crop | its synthesised LR, each pixel repeated scale x scale`` in a row."""
    cells = []
    for h, l in zip(hr, lr):
        big = np.repeat(np.repeat(np.asarray(to_uint8(l)), scale, axis=0), scale, axis=1)
        h8 = np.asarray(to_uint8(h))[:big.shape[0], :big.shape[1]]
        cells += [h8, np.full((h8.shape[0], 2, 3), 128, np.uint8), big,
                  np.full((h8.shape[0], 8, 3), 128, np.uint8)]
    return np.concatenate(cells[:-1], axis=1)


def summary(report):
    """The report's findings in a few lines."""
    k, n = report["kernels"], report["noise"]
    m = k["mean_moments"]
    per = "one per LR pixel" if report["per_pixel"] else "one per image"
    lines = [f"learned degradation x{report['scale']}, {report['kernel_size']}x"
             f"{report['kernel_size']} kernels ({per})",
             f"mean of {k['samples']} kernels: isotropic sigma {k['mean_isotropic_sigma']:.2f}; "
             f"moments sigma1 {m['sigma1']:.2f}, sigma2 {m['sigma2']:.2f}, theta "
             f"{m['theta']:.2f}; draws {k['sample_psnr_to_mean']['mean']:.1f} dB from the mean",
             f"noise sigma (0-255) over {n['patches']} crops: mean {n['sigma']['mean']:.2f}, "
             f"spread {n['sigma']['std']:.2f} (min {n['sigma']['min']:.2f}, max "
             f"{n['sigma']['max']:.2f}); noise mean {n['mean']['mean']:+.2f}"]
    true = report.get("true_kernel")
    if true:
        p = true["kernel_psnr"]
        line = (f"kernel PSNR against the true kernel: learned mean {p['learned_mean']:.2f} dB, "
                f"near-box start {p['near_box_start']:.2f} dB")
        if "best_isotropic" in p:
            line += (f", best isotropic Gaussian (sigma {p['best_isotropic_sigma']:.2f}) "
                     f"{p['best_isotropic']:.2f} dB")
        lines.append(line)
    return lines
