"""Evaluation: tiles, self-ensemble, Y models, reports, and test.py's errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

import visionfw
from tests.conftest import ROOT
from visionfw.evaluate import Dataset, evaluate, format_report
from visionfw.imageio import write_image
from visionfw.inference import Predictor, rgb_to_ycbcr, run_tiled, self_ensemble, ycbcr_to_rgb


def images(n=2, size=(36, 44), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        # smooth content plus a little texture, so bicubic is imperfect but sane
        y, x = np.mgrid[: size[0], : size[1]] / 9.0
        base = np.stack([np.sin(x + i), np.cos(y * 1.3), np.sin(x * 0.7 + y)], -1) * 0.4 + 0.5
        img = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1)
        out.append((f"img{i}", (img * 255).round().astype(np.uint8)))
    return out


def test_tiled_and_whole_image_outputs_agree():
    model = visionfw.build_model("srresnet", B=2, filters=8, scale=2, compile=False)
    fn = Predictor(model)
    x = np.random.default_rng(1).random((100, 90, 3), dtype=np.float32)
    whole = fn(x)
    tiled = run_tiled(fn, x, 2, tile=56, overlap=40)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 1 / 255


def test_self_ensemble_is_the_mean_of_the_eight_transforms():
    def fn(img):  # not equivariant: depends on position
        h, w, _ = img.shape
        return img * np.linspace(0.5, 1.5, w, dtype=np.float32)[None, :, None] + \
            np.arange(h, dtype=np.float32)[:, None, None] / h

    x = np.random.default_rng(2).random((5, 7, 3), dtype=np.float32)
    expected = []
    for flip in (False, True):
        for k in range(4):
            t = np.rot90(x[:, ::-1] if flip else x, k)
            y = np.rot90(fn(t), -k)
            expected.append(y[:, ::-1] if flip else y)
    np.testing.assert_allclose(self_ensemble(fn, x), np.mean(expected, 0), rtol=1e-6, atol=1e-6)


def test_report_splits_the_time_in_the_method_from_the_rest(monkeypatch):
    import time

    from visionfw.methods.base import get_method

    sr = get_method("sr")
    called = sr.__call__

    def slow(self, *args, **kwargs):
        time.sleep(0.2)
        return called(self, *args, **kwargs)

    def slow_bicubic(*args, **kwargs):
        time.sleep(0.1)
        return upscale(*args, **kwargs)

    import visionfw.evaluate as evaluation

    upscale = evaluation.upscale_bicubic
    monkeypatch.setattr(sr, "__call__", slow)
    monkeypatch.setattr(evaluation, "upscale_bicubic", slow_bicubic)
    report = evaluate(visionfw.build_model("bicubic", scale=2), [Dataset.from_arrays(
        "tiny", images())])
    (r,) = report["results"]
    per_image = [i["method_seconds"] for i in r["images"]]
    assert all(t >= 0.2 for t in per_image)
    assert r["method_seconds"] == pytest.approx(sum(per_image), abs=2e-3)
    # the bicubic reference is outside the method: at least 0.1 s per image more in the total
    assert r["seconds"] >= r["method_seconds"] + 0.2
    assert "s of it in the method (" in format_report(report)


def test_ycbcr_round_trip_and_known_values():
    white = np.ones((1, 1, 3), np.float32)
    np.testing.assert_allclose(rgb_to_ycbcr(white)[0, 0] * 255, [235, 128, 128], atol=1e-3)
    x = np.random.default_rng(3).random((4, 5, 3), dtype=np.float32)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-5)


def test_bicubic_model_equals_bicubic_column_and_report_format():
    ds = Dataset.from_arrays("tiny", images())
    report = evaluate(visionfw.build_model("bicubic", scale=2), [ds])
    (r,) = report["results"]
    assert r["psnr"] == pytest.approx(r["bicubic_psnr"]) and r["scale"] == 2
    assert [i["name"] for i in r["images"]] == ["img0", "img1"]
    assert 20 < r["psnr"] < 60
    text = format_report(report, per_image=True)
    assert text.startswith("Protocol: PSNR/SSIM on Y") and "img1" in text
    assert "LR: MATLAB-bicubic imresize" in text


def test_y_channel_model_gets_y_and_saves_colour(tmp_path):
    model = visionfw.build_model("vdsr", depth=3, filters=4, channels=1, scale=2, compile=False)
    for w in model.weights:  # a VDSR with a zero residual is bicubic on Y
        w.assign(np.zeros(w.shape, "float32"))
    ds = Dataset.from_arrays("tiny", images(1))
    report = evaluate(model, [ds], save_dir=tmp_path, grid=True)
    (r,) = report["results"]
    # bicubic on Y vs bicubic on RGB then Y: equal up to rounding of the Y plane
    assert abs(r["psnr"] - r["bicubic_psnr"]) < 0.05
    saved = visionfw.imageio.read_image(tmp_path / "tiny" / "img0.png")
    assert saved.shape == (36, 44, 3) and saved.std(axis=-1).mean() > 1  # colour, not gray
    grid = visionfw.imageio.read_image(tmp_path / "tiny" / "img0_grid.png")
    assert grid.shape[1] > 4 * 44


def run_test_py(*args):
    return subprocess.run([sys.executable, "test.py", *args, "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "Mini" / "HR"
    d.mkdir(parents=True)
    for name, img in images(2, (24, 24)):
        write_image(d / f"{name}.png", img)
    return tmp_path / "Mini"


def test_test_py_errors_are_one_line_and_json_is_never_half_written(folder, tmp_path):
    out = tmp_path / "out.json"
    out.write_text("previous report")
    (tmp_path / "empty").mkdir()
    srresnet = tmp_path / "s.weights.h5"
    visionfw.save_model(visionfw.build_model("srresnet", B=1, filters=8, scale=2), srresnet)
    visionfw.save_model(visionfw.build_model("vdsr-y", depth=2, filters=4, scale=2),
                        tmp_path / "y.weights.h5")
    cases = [
        (("bicubic", "--dataset", str(tmp_path / "nope")), "nope': no such folder"),
        (("bicubic", "--dataset", str(tmp_path / "empty")), "holds no PNG"),
        (("bicubic", "--dataset", str(folder), "--scale", "2", "--json", str(out),
          "--save-dir", str(out / "sr")), "--save-dir"),      # checked before any work
        (("--weights", str(tmp_path / "y.weights.h5"), "--dataset", str(folder),
          "--channel", "rgb"), "restores the Y channel only"),
        (("srresnet", "--param", "B=2", "--param", "filters=8", "--scale", "2", "--weights",
          str(srresnet), "--dataset", str(folder)), "weights do not fit model"),
        (("srresnet", "--dataset", str(folder), "--scale", "2"), "pass --weights"),
        (("--dataset", str(folder)), "give a MODEL"),
        (("bicubic", "--dataset", str(folder), "--degradation", "gausian(sigma=2)"),
         "gausian"),
    ]
    from tests.train_utils import run_cli

    for i, (args, pattern) in enumerate(cases):   # in this process; the first also as a user
        for r in ([run_test_py(*args)] if i == 0 else []) + [run_cli("test.py", *args,
                                                                       "--quiet")]:
            assert r.returncode == 2, (args, r.stdout, r.stderr)
            assert pattern in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert out.read_text() == "previous report"


def test_test_py_json_report_from_weights_alone(folder, tmp_path):
    weights = tmp_path / "s.weights.h5"
    visionfw.save_model(visionfw.build_model("srresnet", B=1, filters=8, scale=2), weights)
    out = tmp_path / "r.json"
    r = run_test_py("--weights", str(weights), "--dataset", str(folder), "--json", str(out),
                    "--per-image", "--self-ensemble")
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    (res,) = report["results"]
    assert res["dataset"] == "Mini" and res["scale"] == 2
    assert set(res) >= {"dataset", "model", "scale", "psnr", "ssim", "images"}
    assert [i["name"] for i in res["images"]] == ["img0", "img1"]
    assert report["protocol"]["self_ensemble"] is True
    assert report["protocol"]["lr"].startswith("LR made by MATLAB-bicubic imresize")
    assert "img1" in r.stdout


def test_lr_dir_is_used_instead_of_generated_lr(folder, tmp_path):
    lr_dir = tmp_path / "lr"
    lr_dir.mkdir()
    for name, img in images(2, (24, 24)):
        write_image(lr_dir / f"{name}x2.png", np.full((12, 12, 3), 128, np.uint8))
    out = tmp_path / "r.json"
    r = run_test_py("bicubic", "--scale", "2", "--dataset", str(folder), "--lr-dir", str(lr_dir),
                    "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    res = report["results"][0]
    generated = run_test_py("bicubic", "--scale", "2", "--dataset", str(folder))
    assert res["degradation"] == "given LR images"
    assert report["protocol"]["lr"].startswith("given LR images")
    # a flat grey LR scores far below the LR made from the ground truth
    assert res["psnr"] < float(generated.stdout.split("mean")[1].split()[0]) - 3


def test_bicubic_through_test_py_matches_published_set5_x4(shared_data, tmp_path):
    out = tmp_path / "r.json"
    r = run_test_py("bicubic", "--dataset", "Set5", "--scale", "4", "--data-root",
                    str(shared_data / "benchmark"), "--json", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())["results"][0]
    assert abs(res["psnr"] - 28.42) <= 0.02 and abs(res["ssim"] - 0.8104) <= 0.002


def test_images_too_small_to_score_are_skipped_and_named(tmp_path):
    from tests.train_utils import write_images
    from visionfw.train.validate import ValidationSet

    folder = write_images(tmp_path / "HR", n=2, size=(36, 40))
    write_image(tmp_path / "HR" / "tiny.png", np.full((12, 14, 3), 128, np.uint8))
    model = visionfw.build_model("bicubic", scale=2, compile=False)
    report = evaluate(model, [Dataset.from_folder(folder)])
    result = report["results"][0]
    assert [r["name"] for r in result["images"]] == ["img0", "img1"]
    assert result["skipped"] == [{"name": "tiny", "reason": "14x12 is too small to score at x2: "
                                  "SSIM needs at least 15x15 px"}]
    assert "skipped tiny: 14x12 is too small" in format_report(report)
    # training's validation leaves it out with a warning instead of stopping mid-run
    from visionfw.imageio import read_image

    images = [(n, read_image(tmp_path / "HR" / f"{n}.png")) for n in ("img0", "tiny")]
    val = ValidationSet(images, 2)
    assert [i["name"] for i in val.items] == ["img0"]


def test_unreadable_images_are_skipped_named_and_counted_and_finished_datasets_kept(
        folder, tmp_path, monkeypatch):
    import visionfw.evaluate as ev
    from tests.train_utils import run_cli

    mixed = tmp_path / "Mixed"
    mixed.mkdir()
    good = (folder / "HR" / "img0.png").read_bytes()
    (mixed / "ok.png").write_bytes(good)
    (mixed / "cut.png").write_bytes(good[: len(good) // 2])
    (mixed / "zero.png").write_bytes(b"")
    (mixed / "text.png").write_text("not an image")
    out = tmp_path / "r.json"
    args = ("bicubic", "--scale", "2", "--dataset", str(folder), "--dataset", str(mixed),
            "--json", str(out), "--quiet")
    r = run_cli("test.py", *args)
    assert r.returncode == 0, r.stderr
    first, second = json.loads(out.read_text())["results"]
    assert (first["n_images"], first["n_skipped"]) == (2, 0)
    assert [i["name"] for i in second["images"]] == ["ok"]
    assert second["n_skipped"] == 3
    reasons = {s["name"]: s["reason"] for s in second["skipped"]}
    assert reasons["zero"] == "empty file (0 bytes)"
    assert "truncated" in reasons["cut"] and "not a readable image" in reasons["text"]
    for name in ("cut", "zero", "text"):
        assert f"skipped {name}: " in r.stdout
    assert second["psnr"] == pytest.approx(first["images"][0]["psnr"])   # ok.png is img0
    # a failure in the second dataset keeps the first: printed, and in the JSON
    real = ev._one_image

    def failing(method, dataset, *rest, **kw):
        if dataset.name == "Mixed":
            raise ev.EvaluationError("Mixed/ok: something went wrong")
        return real(method, dataset, *rest, **kw)

    monkeypatch.setattr(ev, "_one_image", failing)
    out.unlink()
    r = run_cli("test.py", *args)
    assert r.returncode == 2 and "something went wrong" in r.stderr
    report = json.loads(out.read_text())
    assert [x["dataset"] for x in report["results"]] == ["Mini"]
    assert report["incomplete"] == "Mixed/ok: something went wrong"
    assert "Mini x2" in r.stdout and "incomplete: Mixed/ok" in r.stdout


def test_weights_saved_from_another_dictionary_are_refused_or_loaded_with_a_warning(
        folder, tmp_path):
    from tests.train_utils import run_cli

    weights = tmp_path / "v.weights.h5"
    visionfw.save_model(visionfw.build_model("vdsr", depth=3, filters=4, scale=2), weights)
    same = json.loads(visionfw.dict_to_json(visionfw.model_dict("vdsr", depth=3, filters=4,
                                                                scale=2)))
    (tmp_path / "same.json").write_text(json.dumps(same))
    elu = dict(same, aactv_sub=["ELU"] * len(same["aactv"]))
    (tmp_path / "elu.json").write_text(json.dumps(elu))
    base = ("--weights", str(weights), "--dataset", str(folder), "--quiet")
    ok = run_cli("test.py", str(tmp_path / "same.json"), *base)
    assert ok.returncode == 0, ok.stderr
    r = run_cli("test.py", str(tmp_path / "elu.json"), *base)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "aactv_sub is absent in the file and" in r.stderr and "ELU" in r.stderr
    assert "--ignore-dict-mismatch" in r.stderr
    forced = run_cli("test.py", str(tmp_path / "elu.json"), *base, "--ignore-dict-mismatch")
    assert forced.returncode == 0 and forced.stderr.startswith("warning: ")
    # a registered model: an option the file holds but the command leaves out is a
    # difference; one the command gives (here the same value) is the user's choice
    r = run_cli("test.py", "vdsr", "--param", "depth=3", *base)
    assert r.returncode == 2 and "differs from the one given" in r.stderr
    assert run_cli("test.py", "vdsr", "--param", "depth=3", "--param", "filters=4",
                   *base).returncode == 0


def test_comparison_grid_has_captioned_panels_with_the_psnrs(folder, tmp_path):
    from visionfw.evaluate.pictures import comparison_grid, grid_captions
    from visionfw.imageio import read_image

    hr = images(1, (24, 24))[0][1]
    lr = hr[::2, ::2]
    plain = comparison_grid(lr, hr, hr, hr, 2)
    captions = grid_captions(2, (31.234, 28.5))
    assert captions[1] == "bicubic 28.50 dB" and captions[2] == "SR 31.23 dB"
    labelled = comparison_grid(lr, hr, hr, hr, 2, captions=captions)
    strip = labelled.shape[0] - plain.shape[0]
    assert strip > 8 and np.array_equal(labelled[strip:], plain)
    for panel in range(4):                          # ink in each panel's part of the strip
        x0 = panel * (24 + 4)
        assert (labelled[:strip, x0:x0 + 24] < 128).any()
    # test.py --grid writes it with the scores it printed
    r = run_test_py("bicubic", "--scale", "2", "--dataset", str(folder), "--save-dir",
                    str(tmp_path / "out"), "--grid")
    assert r.returncode == 0, r.stderr
    grid = read_image(tmp_path / "out" / "Mini" / "img0_grid.png")
    assert grid.shape[0] == comparison_grid(lr, hr, hr, hr, 2, captions=captions).shape[0]


def test_progress_lines_name_the_lr_apart_from_the_bicubic_score(folder):
    from tests.train_utils import run_cli

    r = run_cli("test.py", "bicubic", "--scale", "2", "--dataset", str(folder))
    line = next(x for x in r.stderr.splitlines() if "img0" in x)
    assert line.startswith("[1/2] Mini [LR: bicubic down-scaling] img0: ")
    assert "(bicubic up-scaling " in line
