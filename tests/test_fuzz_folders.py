"""Folders as users have them: valid images beside truncated, empty, tiny, 16-bit, palette,
CMYK, RGBA and non-image files. test.py and train.py run on them without a traceback, name
every file they leave out, and keep every result they finish."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.train_utils import run_cli


def photo(size, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: size[0], : size[1]] / 7.0
    base = np.stack([np.sin(x + seed), np.cos(y * 1.3), np.sin(x * 0.7 + y)], -1) * 0.4 + 0.5
    return (np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """``(folder, usable, left_out)``: file names that must be scored, and that must be
    named as skipped, by test.py at x2 (the SSIM window needs 15x15 px after the border)."""
    folder = tmp_path_factory.mktemp("messy")
    usable, left_out = [], []

    def save(name, image, **kw):
        image.save(folder / name, **kw)

    for i in range(2):
        save(f"good{i}.png", Image.fromarray(photo((40, 48), i)))
        usable.append(f"good{i}")
    good = (folder / "good0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image")
    (folder / "notes.txt").write_text("not listed: no image extension")
    left_out += ["truncated", "zero", "text"]
    for side in (1, 2, 5, 11, 14):                       # too small to score at x2
        save(f"tiny{side:02d}.png", Image.fromarray(photo((side, side), side)))
        left_out.append(f"tiny{side:02d}")
    for side in (16, 24):                                # big enough
        save(f"tiny{side:02d}.png", Image.fromarray(photo((side, side), side)))
        usable.append(f"tiny{side:02d}")
    gray16 = (photo((40, 40), 3)[..., 0].astype(np.uint16) * 257)
    save("gray16.png", Image.fromarray(gray16))
    usable.append("gray16")
    with open(folder / "rgb16.png", "wb") as f:          # 16-bit colour: refused by name
        _write_png16_rgb(f, (photo((32, 32), 4).astype(np.uint16) * 257))
    left_out.append("rgb16")
    save("palette.png", Image.fromarray(photo((40, 40), 5)).convert("P"))
    usable.append("palette")
    save("cmyk.jpg", Image.fromarray(photo((40, 40), 6)).convert("CMYK"), quality=95)
    usable.append("cmyk")
    rgba = np.dstack([photo((40, 40), 7), np.full((40, 40), 255, np.uint8)])
    save("rgba_opaque.png", Image.fromarray(rgba, "RGBA"))
    usable.append("rgba_opaque")
    rgba[5:10, 5:10, 3] = 0
    save("rgba_holes.png", Image.fromarray(rgba, "RGBA"))
    left_out.append("rgba_holes")
    return folder, usable, left_out


def _write_png16_rgb(f, array):
    """A 16-bit RGB PNG (Pillow writes none), from zlib and struct."""
    import struct
    import zlib

    h, w, _ = array.shape

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_test_py_scores_the_usable_images_and_names_every_other(messy, tmp_path):
    folder, usable, left_out = messy
    out = tmp_path / "r.json"
    r = run_cli("test.py", "bicubic", "--scale", "2", "--dataset", str(folder), "--json",
                str(out), "--per-image")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    (result,) = json.loads(out.read_text())["results"]
    assert sorted(i["name"] for i in result["images"]) == sorted(usable)
    assert sorted(s["name"] for s in result["skipped"]) == sorted(left_out)
    assert result["n_skipped"] == len(left_out)
    for name in left_out:
        assert f"skipped {name}: " in r.stdout
    assert "16-bit colour" in next(s["reason"] for s in result["skipped"]
                                   if s["name"] == "rgb16")
    assert all(np.isfinite(i["psnr"]) for i in result["images"])
    assert "1x1 is too small" in next(s["reason"] for s in result["skipped"]
                                      if s["name"] == "tiny01")


def test_train_py_trains_on_the_usable_images_and_warns_for_the_rest(messy, tmp_path):
    folder, usable, left_out = messy
    out = tmp_path / "run"
    r = run_cli("train.py", "srresnet", "--param", "B=1", "--param", "filters=4", "--scale",
                "2", "--train-dir", str(folder), "--val-dir", str(folder), "--steps", "2",
                "--val-every", "2", "--batch-size", "2", "--patch-size", "24", "--out",
                str(out))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    warned = r.stderr
    for name in ("truncated", "zero", "text", "rgb16", "rgba_holes", "tiny01"):
        assert name in warned, (name, warned)
    assert (out / "best.weights.h5").is_file() and (out / "val.csv").is_file()
