"""Colour photographs that ship inside scikit-image, so a demo trains with nothing downloaded.

Six photographs train, three are held out for validation and testing. Every image is
``uint8`` ``(H, W, 3)``; none needs a network download (scikit-image keeps these files in
its own package).
"""
# name -> how to get it from skimage.data (a function name, and an index for stereo pairs)
TRAIN = ("rocket", "hubble_deep_field", "immunohistochemistry", "retina",
         "motorcycle_left", "motorcycle_right")
HELD_OUT = ("astronaut", "chelsea", "coffee")
NAME = "embedded"


def _load(name):
    import numpy as np
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    else:
        image = getattr(data, name)()
    image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    assert image.ndim == 3 and image.shape[-1] == 3, name
    return image


def train_images():
    """``[(name, uint8 HxWx3), ...]``: the six training photographs."""
    return [(name, _load(name)) for name in TRAIN]


def val_images():
    """``[(name, uint8 HxWx3), ...]``: the three held-out photographs (astronaut, chelsea, coffee)."""
    return [(name, _load(name)) for name in HELD_OUT]


def write_held_out(folder):
    """Write the held-out photographs as PNG files into ``folder`` (for ``test.py``)."""
    import os

    from visionfw.imageio import write_image

    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, image in val_images():
        paths.append(os.path.join(folder, f"{name}.png"))
        write_image(paths[-1], image)
    return paths


if __name__ == "__main__":
    # python -m visionfw.data.embedded FOLDER: the held-out photographs as PNGs
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m visionfw.data.embedded FOLDER")
    for path in write_held_out(sys.argv[1]):
        print(path)
