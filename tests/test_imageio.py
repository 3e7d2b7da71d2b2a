"""visionfw.imageio: formats, grayscale, 16-bit, alpha, failures, atomic writes."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from visionfw.imageio import ImageError, list_images, modcrop, read_image, write_image


@pytest.fixture
def rgb():
    return np.random.default_rng(2).integers(0, 256, (13, 10, 3), dtype=np.uint8)


def _png16(path, array, colour):
    """Write a 16-bit PNG by hand (Pillow cannot write 16-bit colour)."""
    h, w = array.shape[:2]
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", w, h, 16, 2 if colour else 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "tiff", "PNG"])
def test_lossless_round_trip(tmp_path, rgb, ext):
    path = tmp_path / f"a.{ext}"
    write_image(path, rgb)
    out, is_gray = read_image(path, return_gray=True)
    assert out.dtype == np.uint8 and not is_gray
    assert np.array_equal(out, rgb)


def test_jpeg_round_trip(tmp_path):
    smooth = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)
    for name in ("a.jpg", "b.jpeg"):
        write_image(tmp_path / name, smooth)
        out = read_image(tmp_path / name)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - smooth).mean() < 3


def test_grayscale_is_repeated_and_flagged(tmp_path):
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    write_image(tmp_path / "g.png", gray)
    out, is_gray = read_image(tmp_path / "g.png", return_gray=True)
    assert is_gray and out.shape == (6, 10, 3)
    assert all(np.array_equal(out[..., k], gray) for k in range(3))
    Image.fromarray(gray > 100).save(tmp_path / "bits.png")  # 1-bit
    out, is_gray = read_image(tmp_path / "bits.png", return_gray=True)
    assert is_gray and set(np.unique(out)) == {0, 255}


def test_16bit_gray_is_scaled_like_im2uint8(tmp_path):
    # round(v / 257): 128 -> 0.498 -> 0, 129 -> 0.502 -> 1, 128 * 257 -> 128, 65535 -> 255
    values = np.array([[0, 128, 129, 32896, 65535, 65406]], np.uint16)
    _png16(tmp_path / "g16.png", values, colour=False)
    out, is_gray = read_image(tmp_path / "g16.png", return_gray=True)
    assert is_gray
    assert out[0, :, 0].tolist() == [0, 0, 1, 128, 255, 254]


def test_16bit_colour_is_refused(tmp_path):
    _png16(tmp_path / "c16.png", np.full((2, 3, 3), 40000, np.uint16), colour=True)
    with pytest.raises(ImageError, match=r"c16\.png.*16-bit colour"):
        read_image(tmp_path / "c16.png")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_read_picture_keeps_16_bits_gray_and_alpha(tmp_path, channels):
    from visionfw.imageio import read_picture

    values = np.random.default_rng(channels).integers(0, 65536, (5, 7, channels), np.uint16)
    values[0, 0, -1] = 0                                      # alpha (if any) is not opaque
    write_image(tmp_path / "a.png", values)                   # 16-bit PNG of every colour type
    picture = read_picture(tmp_path / "a.png")
    assert picture.bits == 16 and picture.gray == (channels < 3)
    assert picture.rgb.shape == (5, 7, 3) and picture.rgb.dtype == np.float32
    assert (picture.alpha is not None) == (channels in (2, 4))
    back = picture.encode(picture.rgb, picture.alpha)
    assert back.dtype == np.uint16 and np.array_equal(back.reshape(values.shape), values)
    if channels in (1, 3):                                    # written by another encoder
        _png16(tmp_path / "b.png", values[..., 0] if channels == 1 else values, channels == 3)
        picture = read_picture(tmp_path / "b.png")
        assert np.array_equal(picture.encode(picture.rgb).reshape(values.shape), values)


def test_read_picture_8_bit_forms(tmp_path, rgb):
    from visionfw.imageio import read_picture

    gray = rgb[..., 0]
    write_image(tmp_path / "g.png", gray)
    picture = read_picture(tmp_path / "g.png")
    assert picture.gray and picture.bits == 8 and picture.alpha is None
    assert np.array_equal(picture.rgb, np.repeat(gray[..., None], 3, -1) / np.float32(255))
    # the result of a gray picture is written as the mean of its three channels
    result = np.stack([np.full((2, 3), v, np.float32) for v in (0.1, 0.2, 0.7)], axis=-1)
    assert picture.encode(result).tolist() == [[[85]] * 3] * 2
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    write_image(tmp_path / "opaque.png", rgba)
    assert read_picture(tmp_path / "opaque.png").alpha is None    # opaque alpha: dropped
    rgba[3, 4, 3] = 10
    write_image(tmp_path / "see-through.png", rgba)
    picture = read_picture(tmp_path / "see-through.png")
    assert not picture.gray and picture.alpha.shape == (13, 10, 1)
    assert np.array_equal(picture.encode(picture.rgb, picture.alpha), rgba)
    write_image(tmp_path / "c16.png", np.zeros((9, 9, 3), np.uint16) + 999)
    (tmp_path / "cut.png").write_bytes((tmp_path / "c16.png").read_bytes()[:60])
    with pytest.raises(ImageError, match=r"cut\.png.*damaged or truncated"):
        read_picture(tmp_path / "cut.png")


def test_alpha(tmp_path, rgb):
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert np.array_equal(read_image(tmp_path / "opaque.png"), rgb)
    rgba[3, 4, 3] = 254
    Image.fromarray(rgba).save(tmp_path / "see-through.png")
    with pytest.raises(ImageError, match=r"see-through\.png.*transparent"):
        read_image(tmp_path / "see-through.png")
    gray_alpha = np.stack([rgb[..., 0], np.full(rgb.shape[:2], 255, np.uint8)], axis=-1)
    Image.fromarray(gray_alpha, mode="LA").save(tmp_path / "la.png")
    out, is_gray = read_image(tmp_path / "la.png", return_gray=True)
    assert is_gray and np.array_equal(out[..., 2], rgb[..., 0])


def test_palette_is_expanded(tmp_path):
    im = Image.new("P", (4, 2))
    im.putpalette([0, 0, 0, 200, 10, 30] + [0] * 762)
    im.putpixel((1, 0), 1)
    im.save(tmp_path / "p.png")
    out, is_gray = read_image(tmp_path / "p.png", return_gray=True)
    assert not is_gray
    assert out[0, 1].tolist() == [200, 10, 30] and out[1, 1].tolist() == [0, 0, 0]


def test_failures_name_the_file(tmp_path, rgb):
    write_image(tmp_path / "good.png", rgb)
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.png").write_bytes(b"not an image at all" * 10)
    Image.fromarray(rgb).save(tmp_path / "anim.gif")
    (tmp_path / "folder.png").mkdir()
    for name in ("missing.png", "truncated.png", "garbage.png", "anim.gif", "folder.png"):
        with pytest.raises(ImageError, match=name.replace(".", r"\.")) as info:
            read_image(tmp_path / name)
        assert "\n" not in str(info.value)
    assert issubclass(ImageError, ValueError)


def test_truncated_jpeg(tmp_path):
    smooth = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3).astype(np.uint8)
    write_image(tmp_path / "a.jpg", smooth)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_write_is_atomic(tmp_path, rgb, monkeypatch):
    path = tmp_path / "out.png"
    write_image(path, rgb)

    def broken_save(self, fp, format=None, **kwargs):
        fp.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match=r"out\.png.*disk full"):
        write_image(path, np.zeros_like(rgb))
    monkeypatch.undo()
    assert np.array_equal(read_image(path), rgb)  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary left


def test_write_overwrites_and_keeps_shape_rules(tmp_path, rgb):
    path = tmp_path / "x.bmp"
    write_image(path, rgb)
    write_image(path, rgb[..., :1])
    out, is_gray = read_image(path, return_gray=True)
    assert is_gray and np.array_equal(out[..., 0], rgb[..., 0])
    with pytest.raises(ImageError, match="uint8"):
        write_image(tmp_path / "f.png", rgb / 255.0)
    with pytest.raises(ImageError, match="extension"):
        write_image(tmp_path / "f.gif", rgb)
    with pytest.raises(ImageError, match="shape"):
        write_image(tmp_path / "f.png", np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="shape"):       # an alpha channel: PNG only
        write_image(tmp_path / "f.bmp", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="PNG only"):
        write_image(tmp_path / "f.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(ImageError, match="does not exist"):
        write_image(tmp_path / "nowhere" / "f.png", rgb)


def test_modcrop_keeps_top_left(rgb):
    out = modcrop(rgb, 4)
    assert out.shape == (12, 8, 3)
    assert np.array_equal(out, rgb[:12, :8])
    assert modcrop(rgb[..., 0], 5).shape == (10, 10)
    assert modcrop(rgb, 1).shape == rgb.shape


def test_list_images(tmp_path, rgb):
    for name in ("b.PNG", "a.jpeg", "c.Tif", "d.bmp", "e.JPG", "f.tiff"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "index.tsv").write_text("file\n")
    (tmp_path / "g.gif").write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.jpeg", "b.PNG", "c.Tif", "d.bmp", "e.JPG", "f.tiff"]
    with pytest.raises(ImageError, match="no such folder"):
        list_images(tmp_path / "absent")


def test_benchmark_folder_reads(shared_data):
    paths = list_images(shared_data / "benchmark" / "Set14" / "HR")
    assert len(paths) == 14
    gray = {p.stem for p in paths if read_image(p, return_gray=True)[1]}
    assert gray == {"bridge"}
    assert read_image(paths[0]).shape == (480, 500, 3)  # baboon, 500 x 480

