"""Reading and writing benchmark images as 8-bit RGB arrays.

Every image comes back as ``uint8`` with shape ``(H, W, 3)``, the way MATLAB's ``imread``
feeds the published evaluation scripts. Conversions, decided once here:

- Grayscale (8-bit, 1-bit, 16-bit) is repeated into three channels. ``read_image(...,
  return_gray=True)`` also says whether the file was grayscale, because the metric scores a
  grayscale ground truth on its own gray values rather than on Y.
- 16-bit grayscale is mapped to 8 bits as ``round(v / 257)`` (MATLAB's ``im2uint8``), so 65535
  becomes 255. 16-bit *colour* is refused: Pillow would silently keep only the high byte.
- An alpha channel is dropped when it is fully opaque; any transparency is refused, since
  there is no single right background to composite on.
- Palette images are expanded to RGB. EXIF orientation is ignored (MATLAB ignores it too).
- Multi-page TIFFs give their first page.

Every failure raises :class:`ImageError` with a one-line message that names the file.
"""
import os
import pathlib

import numpy as np

try:
    from visionfw.errors import VisionfwError
except ImportError:  # visionfw.errors not written yet
    VisionfwError = Exception

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

# file extension -> Pillow format name used when writing
_WRITE_FORMATS = {".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG",
                  ".tif": "TIFF", ".tiff": "TIFF"}


class ImageError(ValueError, VisionfwError):
    """An image file could not be read or written; the message names the file."""

    @property
    def reason(self):
        """The message without the ``PATH: `` it starts with (for lists that name the file
        themselves)."""
        head, sep, tail = str(self).partition(": ")
        return tail if sep else str(self)


def read_image(path, return_gray=False):
    """Read a PNG, BMP, JPEG or TIFF file as a ``uint8`` array of shape ``(H, W, 3)``.

    Args:
        path: the image file.
        return_gray: also return whether the file stores a grayscale image.

    Returns:
        The array, or ``(array, is_gray)`` when ``return_gray`` is true.
    """
    from PIL import Image, UnidentifiedImageError

    path = pathlib.Path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as im:
            if im.format not in ("PNG", "BMP", "JPEG", "MPO", "TIFF"):
                raise ImageError(f"{path}: unsupported image format {im.format}")
            _refuse_16bit_colour(im, path)
            im.load()
            rgb, is_gray = _to_rgb8(im, path)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated or damaged data with these.
        raise ImageError(f"{path}: cannot decode image ({exc})") from None
    return (rgb, is_gray) if return_gray else rgb


def _refuse_16bit_colour(im, path):
    if im.mode not in ("RGB", "RGBA"):
        return
    for tile in im.tile:
        rawmode = tile.args if isinstance(tile.args, str) else tile.args[0]
        if ";16" in str(rawmode):
            raise ImageError(f"{path}: 16-bit colour images are not supported; "
                             "convert the file to 8 bits per channel")


def _to_rgb8(im, path):
    """Pillow image -> (uint8 HxWx3 array, is_gray)."""
    mode = im.mode
    if mode in ("1", "L"):
        gray = np.asarray(im.convert("L"))
        return _repeat3(gray), True
    if mode == "LA":
        data = np.asarray(im)
        _check_opaque(data[..., 1], 255, path)
        return _repeat3(data[..., 0]), True
    if mode.startswith("I;16") or mode == "I":
        data = np.asarray(im).astype(np.int64)
        if data.min() < 0 or data.max() > 65535:
            raise ImageError(f"{path}: integer image outside the 16-bit range is not supported")
        # im2uint8 for uint16: round(v * 255 / 65535) = round(v / 257), halves rounded up.
        gray = ((data * 2 + 257) // 514).astype(np.uint8)
        return _repeat3(gray), True
    if mode == "P":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        data = np.asarray(im)
        _check_opaque(data[..., 3], 255, path)
        return np.ascontiguousarray(data[..., :3]), False
    if mode == "RGB":
        return np.asarray(im).copy(), False
    if mode == "CMYK":                  # print files: Pillow's conversion, as viewers show them
        return np.asarray(im.convert("RGB")).copy(), False
    if mode == "YCbCr":
        return np.asarray(im.convert("RGB")).copy(), False
    raise ImageError(f"{path}: unsupported pixel mode {mode!r} (expected 8-bit RGB or gray)")


def _check_opaque(alpha, opaque, path):
    if np.any(alpha != opaque):
        raise ImageError(f"{path}: image has transparent pixels; remove the alpha channel first")


def _repeat3(gray):
    return np.repeat(gray[..., None], 3, axis=-1)


def write_image(path, array):
    """Write a ``uint8`` image atomically: a temporary file in the same folder, then a rename.

    Args:
        path: the destination; its extension (png, bmp, jpg, jpeg, tif, tiff) picks the format.
        array: ``uint8`` with shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``.
    """
    from PIL import Image

    path = pathlib.Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: cannot write extension {path.suffix!r}; "
                         f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ImageError(f"{path}: expected a uint8 array, got {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ImageError(f"{path}: expected shape (H, W), (H, W, 1) or (H, W, 3), "
                         f"got {array.shape}")
    if not path.parent.is_dir():
        raise ImageError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # os.open applies the umask, so the file gets the same permissions as a plain write.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(np.ascontiguousarray(array)).save(f, format=fmt)
        os.replace(tmp, path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write image ({exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def modcrop(img, scale):
    """Crop the bottom and right edges so height and width are multiples of ``scale``."""
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"modcrop: scale must be a positive integer, got {scale}")
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


def list_images(folder):
    """Image files in ``folder`` (not its sub-folders), sorted by name, as paths.

    Recognised extensions, in any case: png, bmp, jpg, jpeg, tif, tiff.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
