"""Evaluation datasets: named lists of ground-truth images, loaded on demand, and LR images
given from a folder."""
import pathlib
from dataclasses import dataclass, field

import numpy as np

from visionfw.errors import VisionfwError


class EvaluationError(VisionfwError, ValueError):
    """A dataset that is missing or empty, LR images that do not fit, a bad option."""


@dataclass
class Dataset:
    """A named list of ground-truth images, each loaded on demand.

    ``items`` holds ``(image_name, load)`` pairs; ``load()`` returns ``(uint8 (H, W, 3),
    is_gray)``.
    """

    name: str
    items: list = field(default_factory=list)
    folder: str = None

    @classmethod
    def from_folder(cls, folder, name=None):
        """Images directly in ``folder`` or in its ``HR/`` subfolder; named after ``folder``."""
        from visionfw.imageio import list_images, read_image

        folder = pathlib.Path(folder)
        if not folder.is_dir():
            raise EvaluationError(f"dataset folder {folder} does not exist")
        source = folder / "HR" if (folder / "HR").is_dir() else folder
        paths = list_images(source)
        if not paths:
            raise EvaluationError(f"dataset folder {source} holds no PNG, BMP, JPEG or TIFF "
                                  "images")
        items = [(pathlib.Path(p).stem,
                  (lambda p=p: read_image(p, return_gray=True))) for p in paths]
        return cls(name or folder.name, items, str(source))

    @classmethod
    def from_arrays(cls, name, pairs):
        """From in-memory ``(image_name, uint8 (H, W, 3))`` pairs (colour images)."""
        items = []
        for image_name, array in pairs:
            array = np.asarray(array)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
                raise EvaluationError(f"{name}/{image_name}: expected uint8 (H, W, 3), got "
                                      f"{array.dtype} {array.shape}")
            items.append((image_name, (lambda a=array: (a, False))))
        return cls(name, items)


def resolve_dataset(spec, data_root=None):
    """A folder path, or a dataset name (``Set5``) looked up under ``data_root``."""
    path = pathlib.Path(spec)
    if path.is_dir():
        return Dataset.from_folder(path)
    if data_root is not None:
        candidate = pathlib.Path(data_root) / spec
        if candidate.is_dir():
            return Dataset.from_folder(candidate)
        raise EvaluationError(f"dataset {spec!r}: no folder {spec} and no {candidate}")
    raise EvaluationError(f"dataset {spec!r}: no such folder (give a path, or a name with "
                          "--data-root)")


def crop_to_multiple(img, multiple):
    h, w = img.shape[:2]
    return img[: h - h % multiple, : w - w % multiple]



def given_lr(lr_dir, image_name, hr_shape, scale):
    from visionfw.imageio import IMAGE_EXTENSIONS, read_image

    folder = pathlib.Path(lr_dir)
    if not folder.is_dir():
        raise EvaluationError(f"LR folder {folder} does not exist")
    stems = [image_name, f"{image_name}x{scale}", f"{image_name}_x{scale}", f"{image_name}_LR",
             f"{image_name}_lr"]
    for stem in stems:
        for ext in IMAGE_EXTENSIONS:
            for candidate in (folder / (stem + ext), folder / (stem + ext.upper())):
                if candidate.is_file():
                    lr = read_image(candidate).astype(np.float32) / 255.0
                    want = (hr_shape[0] // scale, hr_shape[1] // scale)
                    if lr.shape[:2] != want:
                        raise EvaluationError(f"{candidate}: LR is {lr.shape[1]}x{lr.shape[0]}, "
                                              f"expected {want[1]}x{want[0]} for x{scale}")
                    return lr
    raise EvaluationError(f"no LR image for {image_name} in {folder} (tried {', '.join(stems)} "
                          "with an image extension)")
