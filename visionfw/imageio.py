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

:func:`read_picture` is the other reader, for images that are processed and written back
(``python -m visionfw sr``): float RGB on [0, 1] at the file's own precision (8 or 16 bits,
16-bit colour PNG and TIFF included), with whether it is grayscale and its alpha channel, so
the result can be written in the same form (:meth:`Picture.encode`, :func:`write_image` of
``uint16`` and of an alpha channel to PNG).
"""
import os
import pathlib
import struct
import zlib
from dataclasses import dataclass

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
    rgb, is_gray = _open(path, _rgb8)
    return (rgb, is_gray) if return_gray else rgb


@dataclass
class Picture:
    """An image read for processing and writing back in its own form (:func:`read_picture`).

    Attributes:
        rgb: float32 ``(H, W, 3)`` on [0, 1]; a grayscale image has three equal channels.
        gray: the file stores a grayscale image (1, 8 or 16 bits, with or without alpha).
        alpha: float32 ``(H, W, 1)`` on [0, 1], or ``None`` when the file has no alpha channel
            or a fully opaque one.
        bits: 8, or 16 for a 16-bit file.
    """

    rgb: np.ndarray
    gray: bool = False
    alpha: np.ndarray = None
    bits: int = 8

    def encode(self, rgb, alpha=None):
        """A processed image (float ``(h, w, 3)`` on [0, 1]) as the array to write, in this
        picture's form: the mean of its three channels for a grayscale picture, ``alpha``
        (float ``(h, w, 1)``; give it when the picture has one) as its last channel, and
        ``uint16`` for a 16-bit picture (``uint8`` otherwise), rounded as MATLAB's
        ``im2uint8``/``im2uint16`` (clip, scale, halves up)."""
        rgb = np.asarray(rgb, np.float64)
        out = rgb.mean(axis=-1, keepdims=True) if self.gray else rgb
        if alpha is not None:
            out = np.concatenate([out, np.asarray(alpha, np.float64).reshape(
                out.shape[:2] + (1,))], axis=-1)
        return to_bits(out, self.bits)


def to_bits(image, bits=8):
    """Float on [0, 1] -> ``uint8`` (``bits=8``) or ``uint16`` (16): clip, scale, round halves
    up (MATLAB's ``im2uint8`` and ``im2uint16``)."""
    peak, dtype = {8: (255.0, np.uint8), 16: (65535.0, np.uint16)}[int(bits)]
    return np.floor(np.clip(np.asarray(image, np.float64), 0.0, 1.0) * peak + 0.5).astype(dtype)


def read_picture(path):
    """Read a PNG, BMP, JPEG or TIFF file as a :class:`Picture`: float RGB on [0, 1] at the
    file's own precision, whether it is grayscale, its alpha channel and its bit depth.

    Unlike :func:`read_image` (8-bit RGB for the benchmarks' protocol), 16-bit files keep
    their 16 bits (colour ones too), and transparency is kept as the alpha channel instead of
    being refused; a fully opaque alpha channel is dropped. Failures raise :class:`ImageError`.
    """
    data, bits = _open(path, _native)
    peak = 65535.0 if bits == 16 else 255.0
    channels = data.shape[-1]
    gray = channels in (1, 2)
    alpha = None
    if channels in (2, 4) and np.any(data[..., -1] != peak):
        alpha = data[..., -1:].astype(np.float32) / np.float32(peak)
    colour = data[..., :1 if gray else 3].astype(np.float32) / np.float32(peak)
    rgb = np.repeat(colour, 3, axis=-1) if gray else colour
    return Picture(rgb=rgb, gray=gray, alpha=alpha, bits=bits)


def _open(path, convert):
    """``convert(pillow_image, path)`` of the image file, every failure an ImageError."""
    from PIL import Image, UnidentifiedImageError

    path = pathlib.Path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as im:
            if im.format not in ("PNG", "BMP", "JPEG", "MPO", "TIFF"):
                raise ImageError(f"{path}: unsupported image format {im.format}")
            return convert(im, path)
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


def _rgb8(im, path):
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16") and _bit_depth(im) == 16:
        raise ImageError(f"{path}: 16-bit colour images are not supported; "
                         "convert the file to 8 bits per channel")
    im.load()
    return _to_rgb8(im, path)


def _bit_depth(im):
    """16 when the file stores 16 bits per sample (Pillow decodes 16-bit colour to 8 bits,
    keeping the high byte), else 8."""
    if im.mode.startswith("I;16"):
        return 16
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return 16 if max(bits) == 16 else 8
    for tile in im.tile:
        rawmode = tile.args if isinstance(tile.args, str) else tile.args[0]
        if ";16" in str(rawmode):
            return 16
    return 8


def _native(im, path):
    """Pillow image -> ``(array (H, W, C), bits)``: ``uint8`` or ``uint16`` samples as the file
    stores them, C = 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA)."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        im.load()
        data = np.asarray(im).astype(np.int64)
        if data.min() < 0 or data.max() > 65535:
            raise ImageError(f"{path}: integer image outside the 16-bit range is not supported")
        return data.astype(np.uint16)[..., None], 16
    if _bit_depth(im) == 16:                # colour, or gray with alpha: not Pillow's to decode
        return _read_16bit(im.format, path), 16
    im.load()
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))[..., None], 8
    if mode in ("LA", "RGB", "RGBA"):
        data = np.asarray(im)
        return (data if data.ndim == 3 else data[..., None]).copy(), 8
    if mode in ("P", "PA"):
        return np.asarray(im.convert("RGBA")).copy(), 8
    if mode in ("CMYK", "YCbCr"):           # as viewers show them
        return np.asarray(im.convert("RGB")).copy(), 8
    raise ImageError(f"{path}: unsupported pixel mode {mode!r} (expected 8- or 16-bit RGB or "
                     "gray)")


def _read_16bit(fmt, path):
    """A 16-bit colour (or gray-and-alpha) PNG or TIFF as ``uint16 (H, W, C)``."""
    if fmt == "PNG":
        import tensorflow as tf

        try:
            data = tf.io.decode_png(pathlib.Path(path).read_bytes(), channels=0,
                                    dtype=tf.uint16)
        except tf.errors.OpError:
            raise ImageError(f"{path}: cannot decode image (damaged or truncated 16-bit PNG "
                             "data)") from None
        return data.numpy()
    if fmt == "TIFF":
        import tifffile                     # installed with scikit-image

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            data, axes = page.asarray(), page.axes
        if axes == "SYX":                   # planar: one plane per sample
            data, axes = np.moveaxis(data, 0, -1), "YXS"
        if axes == "YX":
            data, axes = data[..., None], "YXS"
        if axes == "YXS" and data.dtype == np.uint16 and data.shape[-1] in (1, 2, 3, 4):
            return data
        raise ImageError(f"{path}: 16-bit TIFF of {data.dtype} samples laid out as {axes} is "
                         "not supported")
    raise ImageError(f"{path}: 16-bit {fmt} images are not supported")


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
    """Write an image atomically: a temporary file in the same folder, then a rename.

    Args:
        path: the destination; its extension (png, bmp, jpg, jpeg, tif, tiff) picks the format.
        array: ``uint8`` with shape ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; to PNG also
            ``uint16`` (16 bits per sample) and an alpha channel last: ``(H, W, 2)`` (gray,
            alpha) or ``(H, W, 4)`` (RGBA).
    """
    from PIL import Image

    path = pathlib.Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: cannot write extension {path.suffix!r}; "
                         f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: expected a uint8 array (or uint16 for PNG), got "
                         f"{array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    channels = 1 if array.ndim == 2 else array.shape[-1] if array.ndim == 3 else 0
    if channels not in (1, 2, 3, 4) or (fmt != "PNG" and channels not in (1, 3)):
        raise ImageError(f"{path}: expected shape (H, W), (H, W, 1) or (H, W, 3), or with an "
                         f"alpha channel (H, W, 2) or (H, W, 4) for PNG, got {array.shape}")
    if array.dtype == np.uint16 and fmt != "PNG":
        raise ImageError(f"{path}: 16-bit images are written as PNG only")
    if not path.parent.is_dir():
        raise ImageError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # os.open applies the umask, so the file gets the same permissions as a plain write.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            if array.dtype == np.uint16:
                f.write(_png16(array))
            else:
                Image.fromarray(np.ascontiguousarray(array)).save(f, format=fmt)
        os.replace(tmp, path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write image ({exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _png16(array):
    """The bytes of a 16-bit PNG of ``uint16 (H, W)`` or ``(H, W, C)``, C = 2, 3 or 4 (Pillow
    writes 16-bit gray only). Every row uses the ``Sub`` filter."""
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[-1]
    raw = np.ascontiguousarray(array, ">u2").view(np.uint8).reshape(h, w * channels * 2)
    step = channels * 2                 # bytes per pixel: Sub takes each byte minus the one
    rows = raw.copy()                   # a pixel to its left, modulo 256
    rows[:, step:] -= raw[:, :-step]
    data = np.concatenate([np.ones((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(data, 6)) + chunk(b"IEND", b""))


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
