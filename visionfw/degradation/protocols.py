"""Blind-SR test protocols: named lists of degradations, reproducible bit for bit from a seed.

:func:`get_protocol` returns ``[(variant_name, degradation), ...]``; an evaluation makes each
LR image with ``degradation(hr, scale, seed=image_name_or_index)`` from the HR image cropped
to a multiple of :func:`hr_multiple`. The protocols (details in ``docs/degradations.md``):

- ``bicubic``: MATLAB bicubic down-sampling, rounded to 8 bits like a stored LR benchmark.
- ``gaussian8``: IKC/DAN setting 1. Eight isotropic 21x21 Gaussians with widths
  ``np.linspace(lo, hi, 8)``, [0.80, 1.60] at x2, [1.35, 2.40] at x3, [1.80, 3.20] at x4;
  reflect padding, then bicubic down-sampling, rounded to 8 bits (DAN's
  ``generate_mod_blur_LR_bic.py``: ``BatchBlur`` reflect-pads by 10 and correlates, then
  MATLAB-style ``imresize``, then ``tensor2img`` rounds).
- ``aniso``: KENet's random anisotropic setting: Gaussians with sigma1, sigma2 uniform in
  [0.2, 4.0] and theta uniform in [0, pi], one kernel per image, drawn from the protocol
  seed and the image's seed (its name or index); reflect padding, bicubic, 8 bits. The
  kernels are KENet's size for the scale (:func:`aniso_kernel_size`: 11x11 at x2, 21x21
  otherwise); the variant's spec, in every report, names it.
- ``aniso-direct``: the same kernels (the same draw per image) with USRNet's degradation
  model: circular blur, direct down-sampling keeping pixel 0 of each block, 8 bits -- the
  protocol a kernel estimator + USRNet pipeline is scored on (USRNet refuses bicubic).
- ``usrnet12``: USRNet's Table 1: its 12 kernels x noise 0, 2.55, 7.65 (0-255 scale), circular
  blur, direct down-sampling keeping pixel 0 of each block, as ``main_test_table1.py`` does
  (``ndimage.convolve(..., mode='wrap')`` on the uint8 image, which truncates to uint8, then
  ``downsample_np(center=False)``, then noise on [0, 1] without clipping). USRNet crops HR to
  a multiple of ``lcm(scale, 8)``; see :func:`hr_multiple`.
- any other string is parsed as a spec and gives one variant.
"""
import math
import os

import numpy as np

from visionfw.degradation import DegradationError
from visionfw.degradation.spec import parse_degradation, spec_literal
from visionfw.registry import Registry

GAUSSIAN8_RANGES = {2: (0.80, 1.60), 3: (1.35, 2.40), 4: (1.80, 3.20)}
USRNET_NOISE = (0.0, 2.55, 7.65)
ANISO_SIGMA = (0.2, 4.0)
KERNEL_SIZE = 21
ANISO_SIZE = {2: 11}             # KENet's kernel side per scale; KERNEL_SIZE otherwise

_PROTOCOLS = Registry("protocol", error=DegradationError)


def _protocol(name):
    def wrap(fn):
        _PROTOCOLS.register(name, fn)
        return fn
    return wrap


def protocol_names():
    """The named protocols, sorted."""
    return _PROTOCOLS.names()


def get_protocol(name_or_spec, scale, seed=0, kernels_path=None):
    """The variants of a protocol: a list of ``(variant_name, Degradation)``.

    Args:
        name_or_spec: ``'bicubic'``, ``'gaussian8'``, ``'aniso'``, ``'aniso-direct'``,
            ``'usrnet12'``, or a spec.
        scale: the SR factor.
        seed: protocol seed; folded into every variant's per-call seed (see
            :class:`~visionfw.degradation.spec.Degradation`), so a (seed, image name) pair
            always gives the same LR image.
        kernels_path: the USRNet ``kernels_12.mat`` (default: see
            :func:`visionfw.degradation.kernels.default_usrnet_path`).
    """
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise DegradationError(f"scale must be a positive integer, got {scale!r}")
    scale, seed = int(scale), int(seed)
    if not isinstance(name_or_spec, str) or not name_or_spec.strip():
        raise DegradationError(f"a protocol is a name or a spec string, got {name_or_spec!r}")
    key = name_or_spec.strip()
    if key in _PROTOCOLS:
        if key == "usrnet12":
            return _PROTOCOLS.get(key)(scale, seed, kernels_path)
        return _PROTOCOLS.get(key)(scale, seed)
    try:
        deg = parse_degradation(key, base_seed=seed)
    except DegradationError as exc:
        raise DegradationError(f"{exc} (named protocols: {', '.join(protocol_names())})") from None
    return [(deg.spec, deg)]


def hr_multiple(name_or_spec, scale):
    """What HR height and width must be a multiple of: ``scale``, or ``lcm(scale, 8)`` for
    ``usrnet12`` (USRNet's ``modcrop(img_H, np.lcm(sf, 8))``)."""
    return math.lcm(int(scale), 8) if str(name_or_spec).strip() == "usrnet12" else int(scale)


@_protocol("bicubic")
def _bicubic(scale, seed):
    # The published bicubic tables keep the LR image in floating point (the SRCNN/VDSR MATLAB
    # evaluation never rounds it); 'bicubic+quantize' gives the 8-bit LR of stored sets.
    return [("bicubic", parse_degradation("bicubic", base_seed=seed))]


@_protocol("gaussian8")
def _gaussian8(scale, seed):
    if scale not in GAUSSIAN8_RANGES:
        raise DegradationError(f"gaussian8 is defined for scales {sorted(GAUSSIAN8_RANGES)}, "
                               f"got {scale}")
    lo, hi = GAUSSIAN8_RANGES[scale]
    variants = []
    for width in np.linspace(lo, hi, 8):
        spec = (f"gaussian(sigma={spec_literal(float(width))},size={KERNEL_SIZE},padding=reflect)"
                "+bicubic+quantize")
        variants.append((f"sigma{width:.2f}", parse_degradation(spec, base_seed=seed)))
    return variants


def aniso_kernel_size(scale):
    """KENet's kernel side at ``scale``: 11 at x2, 21 otherwise."""
    return ANISO_SIZE.get(int(scale), KERNEL_SIZE)


def aniso_blur(scale, padding="reflect", size=None):
    """The ``aniso`` protocol's blur op as a spec (KENet's training blurs, at its size for
    ``scale`` unless ``size`` is given)."""
    lo, hi = ANISO_SIGMA
    side = aniso_kernel_size(scale) if size is None else int(size)
    return (f"gaussian(sigma1={lo}~{hi},sigma2={lo}~{hi},theta=0.0~{spec_literal(math.pi)},"
            f"size={side},padding={padding})")


@_protocol("aniso")
def _aniso(scale, seed):
    spec = aniso_blur(scale) + "+bicubic+quantize"
    return [("aniso", parse_degradation(spec, base_seed=seed))]


@_protocol("aniso-direct")
def _aniso_direct(scale, seed):
    spec = aniso_blur(scale, "circular") + "+direct(offset=0)+quantize"
    return [("aniso-direct", parse_degradation(spec, base_seed=seed))]


@_protocol("usrnet12")
def _usrnet12(scale, seed, kernels_path=None):
    from visionfw.degradation.kernels import default_usrnet_path, usrnet_kernels

    path = kernels_path if kernels_path is not None else default_usrnet_path()
    usrnet_kernels(path)  # fail early, with a clear message, if the file is missing or wrong
    variants = []
    for index in range(12):
        for noise in USRNET_NOISE:
            spec = (f"kernel(path={spec_literal(str(path))},index={index},padding=circular)"
                    "+quantize(mode=floor)+direct(offset=0)")
            if noise > 0:
                spec += f"+noise(sigma={spec_literal(noise)},clip=false)"
            # float64, so that the truncation to uint8 after the blur matches SciPy's
            deg = parse_degradation(spec, base_seed=seed, dtype="float64")
            variants.append((f"k{index + 1:02d}_noise{noise:.2f}", deg))
    return variants


def export_protocol(protocol, scale, dataset, out, seed=0, kernels_path=None, log=None,
                    name=None):
    """Write a protocol's LR sets and kernels to disk, with a manifest and a content hash.

    For each HR image of ``dataset`` (cropped to :func:`hr_multiple`) and each variant::

        out/<variant>/<image>.png              the LR image, 8 bits
        out/<variant>/kernels/<image>.npy      the blur kernel (float32), if the variant blurs
        out/<variant>/kernels/<image>.png      a picture of it (scaled to its maximum, 8x)
        out/manifest.json                      settings, variant specs, SHA-256 of every file

    Each image's seed is its file name without extension, so a file gives the same LR image
    whatever else is in the folder. Files that cannot be read, and images smaller than the
    protocol's size multiple, are skipped, named through ``log`` and listed in the manifest's
    ``skipped``; nothing is written when no image is left. The returned manifest's ``hash`` (the SHA-256 of the
    sorted ``path sha256`` lines) identifies the whole export. ``name`` replaces the folder
    name of a protocol with one variant (a spec's is the canonical spec).
    """
    import hashlib
    import json
    import pathlib

    from visionfw.degradation.metrics import kernel_picture
    from visionfw.degradation.ops import to_uint8
    from visionfw.imageio import ImageError, list_images, modcrop, read_image, write_image

    log = log or (lambda msg: None)
    out = pathlib.Path(out)
    variants = get_protocol(protocol, scale, seed, kernels_path)
    if name is not None:
        if len(variants) != 1:
            raise DegradationError(f"--name names the folder of a one-variant protocol; "
                                   f"{protocol} has {len(variants)} variants")
        if not name or name in (".", "..") or "/" in name or os.sep in name:
            raise DegradationError(f"--name {name!r}: a plain folder name is expected")
        variants = [(name, variants[0][1])]
    paths = list_images(dataset)
    if not paths:
        raise DegradationError(f"{dataset}: no images")
    multiple = hr_multiple(protocol, scale)
    hrs, skipped = [], {}
    for p in paths:
        try:
            image = read_image(p)
        except ImageError as exc:
            skipped[p.name] = exc.reason
            continue
        if min(image.shape[:2]) < multiple:
            skipped[p.name] = (f"{image.shape[1]}x{image.shape[0]} is smaller than the "
                               f"{multiple}-px multiple of {protocol} at x{scale}")
            continue
        hrs.append((p.stem, modcrop(image, multiple).astype(np.float32) / 255.0))
    for name, why in skipped.items():
        log(f"skipped {name}: {why}")
    if not hrs:
        raise DegradationError(f"{dataset}: no usable images ({len(skipped)} skipped)")
    out.mkdir(parents=True, exist_ok=True)
    files = {}

    def record(path):
        files[path.relative_to(out).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()

    for name, deg in variants:
        folder = out / name
        folder.mkdir(exist_ok=True)
        for stem, hr in hrs:
            lr, labels = deg.degrade(hr, scale, seed=stem)
            target = folder / f"{stem}.png"
            write_image(target, to_uint8(lr).numpy())
            record(target)
            if "kernel" in labels:
                (folder / "kernels").mkdir(exist_ok=True)
                kernel = np.asarray(labels["kernel"], dtype=np.float32)
                npy = folder / "kernels" / f"{stem}.npy"
                tmp = npy.with_name(f".{npy.name}.tmp")
                with open(tmp, "wb") as f:
                    np.save(f, kernel)
                tmp.replace(npy)
                record(npy)
                picture = folder / "kernels" / f"{stem}.png"
                write_image(picture, kernel_picture(kernel, zoom=8))
                record(picture)
        log(f"{name}: {len(hrs)} images")
    lines = "".join(f"{path} {digest}\n" for path, digest in sorted(files.items()))
    manifest = {
        "protocol": protocol, "scale": int(scale), "seed": int(seed),
        "dataset": pathlib.Path(dataset).name, "hr_multiple": multiple,
        "images": [stem for stem, _ in hrs],
        "skipped": skipped,
        "variants": {name: deg.spec for name, deg in variants},
        "files": dict(sorted(files.items())),
        "hash": hashlib.sha256(lines.encode()).hexdigest(),
    }
    target = out / "manifest.json"
    tmp = target.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(target)
    return manifest
