"""What ``python -m visionfw sr`` writes for a reader: the contact sheet, the kernel strip on
one colour scale with fitted sigmas, the bicubic baseline, USRNet fed a kernel file and a
noise level with its iterations as steps, and the warnings about inputs a network was not
trained for. Tiny networks, built (not trained), so each test takes seconds."""
import json
import math

import numpy as np
import pytest

import visionfw
from tests.test_blind_correctness import TINY_USRNET
from tests.train_utils import run_cli, write_images
from visionfw.imageio import read_image, write_image


@pytest.fixture(scope="module")
def lr_folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("lr"), n=1, size=(24, 28))


@pytest.fixture(scope="module")
def usrnet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("usrnet") / "u.weights.h5"
    visionfw.save_model(visionfw.build_model("usrnet", **TINY_USRNET), path)
    return path


@pytest.fixture(scope="module")
def ikc_run(tmp_path_factory):
    """A run folder of IKC's three networks (code length 4, the PCA of a few hundred
    Gaussians) whose settings.json records Gaussian blurs of sigma 0.2-2."""
    from visionfw.degradation import fit_pca
    from visionfw.kernel_codes import with_pca
    from visionfw.models import model_dict

    folder = tmp_path_factory.mktemp("ikc")
    pca = fit_pca(n_components=4, keep_mean=False, n_kernels=400, sigma_range=(0.2, 2.0))
    names = {"sftmd": ("sftmd", {"nb": 1, "nf": 8}),
             "best.predictor": ("ikc-predictor", {"nf": 8}),
             "best": ("ikc-corrector", {"nf": 8})}
    for file, (model, hp) in names.items():
        d = with_pca(model_dict(model, code_len=4, scale=2, **hp), pca)
        net = visionfw.build_model(d, compile=False)
        visionfw.save_model(net, folder / f"{file}.weights.h5")
    _settings(folder, "gaussian(sigma=0.2~2,size=21)+bicubic", recipe="ikc")
    return folder


def _settings(folder, degradation, recipe="sr", params=None, scale=2):
    """A train.py settings.json recording only what sr reads of it."""
    record = {"settings": {"degradation": degradation, "scale": scale, "out": str(folder)},
              "recipe": {"name": recipe, "params": params or {}}}
    (folder / "settings.json").write_text(json.dumps(record))


def _one_line_error(r):
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0, r.stderr
    assert "Traceback" not in r.stderr


# ---- the pictures ------------------------------------------------------------------------

def test_contact_sheet_has_one_labelled_cell_per_panel_each_with_the_same_crop():
    from visionfw.evaluate.pictures import contact_sheet

    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (20, 26, 3), dtype=np.uint8)
    big = [rng.integers(0, 256, (40, 52, 3), dtype=np.uint8) for _ in range(6)]
    panels = [(f"step {t}", img) for t, img in enumerate(big[1:])]
    sheet, layout = contact_sheet(lr, big[0], panels, 2, columns=4, gap=4, min_width=128)
    assert [c["label"] for c in layout] == ["LR x2 (pixels repeated)", "bicubic",
                                           *[f"step {t}" for t in range(5)]]
    crop, zoom = 40 // 3, 3                             # a third of the shorter side, x3
    rows, width, caption = math.ceil(7 / 4), 128, 14
    row_height = caption + 40 + 4 + crop * zoom
    assert sheet.shape == (rows * row_height + (rows - 1) * 4, 4 * width + 3 * 4, 3)
    for i, cell in enumerate(layout):
        top, left, h, w = cell["panel"]
        assert (h, w) == (40, 52) and left == (i % 4) * (width + 4)
        assert top == (i // 4) * (row_height + 4) + caption
        image = big[i - 1] if i >= 2 else None
        if image is not None:                            # the panel is the picture itself
            np.testing.assert_array_equal(sheet[top:top + h, left:left + w], image)
        ct, cl, ch, cw = cell["crop"]
        assert (ch, cw) == (crop * zoom, crop * zoom) and cl == left
    # every crop shows the same square: the zoomed pixels of one region of each panel
    ct, cl, ch, cw = layout[-1]["crop"]
    shown = sheet[ct:ct + ch:zoom, cl:cl + cw:zoom]
    where = [(y, x) for y in range(40 - crop + 1) for x in range(52 - crop + 1)
             if np.array_equal(big[-1][y:y + crop, x:x + crop], shown)]
    assert len(where) == 1
    y0, x0 = where[0]
    ct, cl, _, _ = layout[2]["crop"]
    np.testing.assert_array_equal(sheet[ct:ct + ch:zoom, cl:cl + cw:zoom],
                                  big[1][y0:y0 + crop, x0:x0 + crop])


def test_kernel_strip_shares_one_scale_and_labels_each_kernel_with_its_fitted_sigma():
    from visionfw.degradation import fit_isotropic_sigma, gaussian_kernel, kernel_picture
    from visionfw.evaluate.pictures import kernel_strip

    kernels = [gaussian_kernel(15, s) for s in (0.8, 1.6, 3.0)] + [gaussian_kernel(9, 2.0)]
    strip = kernel_strip(kernels, ["step 0", "step 1", "step 2", "small"], zoom=4, gap=8)
    assert strip.vmax == max(k.max() for k in kernels) == kernels[0].max()
    for k, sigma, lines in zip(kernels, strip.sigmas, strip.captions):
        assert sigma == fit_isotropic_sigma(k)
        assert lines[1] == f"sigma {fit_isotropic_sigma(k):.2f}"
    assert [lines[0] for lines in strip.captions] == ["step 0", "step 1", "step 2", "small"]
    # on the shared scale only the highest kernel reaches white; the others are as much darker
    # as their peaks are lower
    peaks = []
    for k, (top, left, h, w) in zip(kernels, strip.boxes):
        assert (h, w) == (k.shape[0] * 4, k.shape[1] * 4)
        np.testing.assert_array_equal(strip.picture[top:top + h, left:left + w, 0],
                                      kernel_picture(k, 4, peak=strip.vmax))
        peaks.append(int(strip.picture[top:top + h, left:left + w].max()))
    expected = [int(np.floor(k.max() / strip.vmax * 255 + 0.5)) for k in kernels]
    assert peaks == expected and peaks[0] == 255 > peaks[1] > peaks[2]


# ---- sr ----------------------------------------------------------------------------------

def test_ikc_writes_the_sheet_and_the_labelled_kernel_strip(ikc_run, lr_folder, tmp_path):
    out, steps = tmp_path / "out", tmp_path / "steps"
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", ikc_run, "--method", "ikc",
                "--iterations", "2", "--out", out, "--save-steps", steps)
    assert r.returncode == 0, r.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == ["img0_kernel.npy", "img0_kernel.png", "img0_kernels.png",
                       "img0_sheet.png", "img0_x2.png"]
    # on by default for a method with steps: LR, bicubic and three steps, four to a row
    sheet = read_image(out / "img0_sheet.png")
    row = 14 + 48 + 4 + (48 // 3) * 3                   # caption, panel, gap, zoomed crop
    assert sheet.shape == (2 * row + 4, 4 * 128 + 3 * 4, 3)
    assert sorted(p.name for p in steps.iterdir()) == [
        "img0_kernels.png", "img0_step0.png", "img0_step1.png", "img0_step2.png"]
    np.testing.assert_array_equal(read_image(steps / "img0_kernels.png"),
                                  read_image(out / "img0_kernels.png"))
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", ikc_run, "--method", "ikc",
                "--iterations", "1", "--out", tmp_path / "quiet", "--no-sheet")
    assert r.returncode == 0 and not (tmp_path / "quiet" / "img0_sheet.png").exists()


def test_weights_bicubic_is_the_matlab_bicubic_resize(lr_folder, tmp_path):
    from visionfw.metrics import to_uint8
    from visionfw.resize import imresize

    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", "bicubic", "--scale", "3",
                "--out", tmp_path / "out", "--sheet")
    assert r.returncode == 0, r.stderr
    lr = read_image(f"{lr_folder}/img0.png").astype(np.float32) / 255
    expected = to_uint8(np.clip(np.asarray(imresize(lr, 3), np.float32), 0, 1))
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "img0_x3.png"), expected)
    assert read_image(tmp_path / "out" / "img0_sheet.png").shape[1] == 2 * 128 + 4
    _one_line_error(run_cli("-m visionfw", "sr", lr_folder, "--weights", "bicubic", "--out",
                            tmp_path / "o"))


def test_usrnet_takes_a_kernel_file_and_noise_and_saves_every_iteration(usrnet_file,
                                                                         lr_folder, tmp_path):
    from visionfw.degradation import gaussian_kernel

    kernel = gaussian_kernel(9, 1.3)
    np.save(tmp_path / "k.npy", kernel)
    out, steps = tmp_path / "out", tmp_path / "steps"
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", usrnet_file, "--kernel",
                tmp_path / "k.npy", "--noise", "7.65", "--out", out, "--save-steps", steps)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in steps.iterdir())
    assert names == [f"img0_step{t}.png" for t in range(TINY_USRNET["iterations"])]
    # the last iteration is the network's output, fed the kernel and the noise level
    model = visionfw.load_model(usrnet_file)
    lr = read_image(f"{lr_folder}/img0.png").astype(np.float32) / 255
    expected = model.predict([lr[None], kernel[None].astype(np.float32), np.float32([2]),
                              np.float32([7.65])], verbose=0)[0]
    from visionfw.metrics import to_uint8

    sr = read_image(out / "img0_x2.png").astype(int)
    assert np.abs(sr - to_uint8(np.clip(expected, 0, 1)).astype(int)).max() <= 1
    np.testing.assert_array_equal(read_image(steps / "img0_step2.png"), sr)
    assert not np.array_equal(read_image(steps / "img0_step0.png"), sr)
    assert sorted(p.name for p in out.iterdir()) == ["img0_sheet.png", "img0_x2.png"]
    # without a kernel USRNet cannot run on images that have none
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", usrnet_file, "--out",
                tmp_path / "none")
    _one_line_error(r)
    assert "--kernel FILE" in r.stderr


@pytest.mark.parametrize("kernel, why", [
    (np.full((5, 5), 0.1), "sums to 2.5"),
    (np.array([[0.5, -0.1], [0.3, 0.3]]), "negative taps"),
    (np.array([[np.nan, 0.5], [0.25, 0.25]]), "NaN"),
])
def test_a_bad_kernel_file_is_a_one_line_error(usrnet_file, lr_folder, tmp_path, kernel, why):
    np.save(tmp_path / "bad.npy", kernel)
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", usrnet_file, "--kernel",
                tmp_path / "bad.npy", "--out", tmp_path / "out")
    _one_line_error(r)
    assert why in r.stderr


def test_kernel_and_noise_are_refused_where_no_network_takes_them(lr_folder, ikc_run,
                                                                   tmp_path):
    from visionfw.degradation import gaussian_kernel

    np.save(tmp_path / "k.npy", gaussian_kernel(9, 1.3))
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", ikc_run, "--method", "ikc",
                "--kernel", tmp_path / "k.npy", "--out", tmp_path / "o")
    _one_line_error(r)
    assert "takes no given kernel" in r.stderr
    r = run_cli("-m visionfw", "sr", lr_folder, "--weights", "bicubic", "--scale", "2",
                "--noise", "5", "--out", tmp_path / "o")
    _one_line_error(r)
    assert "take no noise level" in r.stderr


def _noisy_and_clean(folder):
    """A smooth 48x48 photograph crop, and the same with white noise of sigma 20."""
    from skimage import data

    folder.mkdir()
    clean = data.astronaut()[400:496:2, 200:296:2]
    noise = np.random.default_rng(0).normal(0, 20, clean.shape)
    write_image(folder / "clean.png", clean)
    write_image(folder / "noisy.png", np.clip(clean + noise, 0, 255).round().astype(np.uint8))
    return folder


def test_noisy_inputs_are_flagged_for_networks_trained_without_noise(tmp_path):
    from visionfw.evaluate.trained import NOISY, estimate_noise_sigma
    from visionfw.imageio import read_image as read

    inputs = _noisy_and_clean(tmp_path / "in")
    assert estimate_noise_sigma(read(inputs / "clean.png") / 255.0) < NOISY
    assert estimate_noise_sigma(read(inputs / "noisy.png") / 255.0) > NOISY
    run = tmp_path / "run"
    run.mkdir()
    model = visionfw.build_model("srresnet", B=1, filters=8, scale=2)
    visionfw.save_model(model, run / "best.weights.h5")
    _settings(run, "bicubic")
    r = run_cli("-m visionfw", "sr", inputs, "--weights", run, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: noisy.png looks noisy")
    assert "model was trained without noise" in warnings[0]
    # trained with noise: nothing to say
    _settings(run, "bicubic+noise(0~25)")
    r = run_cli("-m visionfw", "sr", inputs, "--weights", run, "--out", tmp_path / "out2")
    assert r.returncode == 0 and "warning:" not in r.stderr
    # a file outside a run: its training is not known, so nothing is guessed
    visionfw.save_model(model, tmp_path / "alone.weights.h5")
    r = run_cli("-m visionfw", "sr", inputs, "--weights", tmp_path / "alone.weights.h5",
                "--out", tmp_path / "out3")
    assert r.returncode == 0 and "warning:" not in r.stderr


def test_an_estimate_at_the_edge_of_the_training_range_is_flagged(tmp_path):
    from visionfw.degradation import fit_isotropic_sigma, gaussian_kernel
    from visionfw.evaluate.trained import Training, input_warnings

    lr = np.full((16, 16, 3), 0.5)
    trained = {"sftmd": None, "predictor": Training("gaussian(sigma=0.2~4)+bicubic", 4, "S"),
               "corrector": Training("gaussian(sigma=0.2~4)+bicubic", 4, "S")}
    assert trained["corrector"].sigma_range() == (0.2, 4.0)
    wide = gaussian_kernel(21, 3.95)
    lines = input_warnings("a.png", lr, trained, wide)
    assert len(lines) == 1 and "upper edge of the corrector's training range 0.2-4" in lines[0]
    assert f"sigma {fit_isotropic_sigma(wide):.2f}" in lines[0]
    assert "lower edge" in input_warnings("a.png", lr, trained, gaussian_kernel(21, 0.25))[0]
    beyond = input_warnings("a.png", lr, trained, gaussian_kernel(21, 5.0))
    assert "is above the corrector's training range" in beyond[0]
    assert input_warnings("a.png", lr, trained, gaussian_kernel(21, 2.0)) == []
    assert input_warnings("a.png", lr, {"corrector": None}, wide) == []


def test_a_network_a_run_copied_is_traced_to_its_own_run(tmp_path):
    from visionfw.evaluate.trained import training_of

    first, second = tmp_path / "sftmd_run", tmp_path / "ikc_run"
    first.mkdir()
    second.mkdir()
    (first / "best.weights.h5").write_bytes(b"")
    (second / "sftmd.weights.h5").write_bytes(b"")
    (second / "best.weights.h5").write_bytes(b"")
    _settings(first, "gaussian(sigma=0.2~2,size=21)+bicubic+noise(5)")
    _settings(second, "gaussian(sigma=0.2~2,size=21)+bicubic", recipe="ikc",
              params={"sftmd": str(first / "best.weights.h5")})
    assert training_of(second / "best.weights.h5").noise_free() is True
    copied = training_of(second / "sftmd.weights.h5")
    assert copied.noise_free() is False and copied.source == str(first / "settings.json")
    assert training_of(tmp_path / "elsewhere.weights.h5") is None
