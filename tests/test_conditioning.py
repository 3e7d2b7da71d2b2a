"""Named batches carry the degradation's labels; a kernel-conditioned network trains on them
with train.py and is scored by test.py fed the true kernel, tiled and self-ensembled."""
import json

import numpy as np
import pytest
import scipy.ndimage

import visionfw
from tests.train_utils import run_cli, write_images
from visionfw.data.images import ImageSet
from visionfw.data.pipeline import PairedPatches, PatchPipeline, UnpairedPatches
from visionfw.degradation import gaussian_kernel, parse_degradation
from visionfw.degradation.ops import SCIPY_MODES
from visionfw.evaluate import Dataset, evaluate, make_method
from visionfw.inference import orient_kernel, self_ensemble

BLUR = "gaussian(sigma=0.5~3)+bicubic"


def toy_dict(scale=2, size=21):
    """LR image and a 21x21 kernel in; the kernel flattened to a 4-long code, stretched over
    the image and concatenated after the features; two 3x3 convolutions (receptive field
    radius 2 LR pixels) and a pixel shuffle."""
    return {
        "name": "KernelToy",
        "meta": {"scale": scale, "color": "rgb"},
        "inputs": [{"node": "lr", "shape": [None, None, 3]},
                   {"node": "kernel", "shape": [size, size]}],
        "flat": [("kernel", "k1")], "flat_sub": "Flatten",
        "dense": [("k1", "code")], "dense_par": {"units": 4},
        "tile": [("lr", "code", "maps")], "tile_sub": "CodeMap",
        "concat": [("lr", "maps", "joint")], "concat_sub": "Concatenate",
        "convo": [("joint", "f1"), ("f2", "f3")],
        "convo_par": [{"filters": 8, "kernel_size": 3, "padding": "same"},
                      {"filters": 3 * scale * scale, "kernel_size": 3, "padding": "same"}],
        "aactv": [("f1", "f2")],
        "shuffle": [("f3", "sr")], "shuffle_sub": "PixelShuffle",
        "shuffle_par": {"scale": scale},
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs"), n=3, size=(48, 56))


# ---- the pipeline ------------------------------------------------------------------------

def test_kernel_labels_recreate_the_lr_patches(folder):
    """numpy blur (scipy.ndimage.convolve) + the project's bicubic, from HR and the label."""
    from visionfw.resize import imresize

    pipe = PatchPipeline(ImageSet.from_folders([folder]), scale=2, patch_size=32, batch_size=4,
                         degradation=BLUR, seed=5)
    batch = next(iter(pipe.dataset(0, 1)))
    assert set(batch) >= {"lr", "hr", "kernel", "noise_sigma", "scale"}
    assert batch["kernel"].shape == (4, 21, 21) and batch["lr"].shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(batch["scale"].numpy(), 2.0)
    np.testing.assert_array_equal(batch["noise_sigma"].numpy(), 0.0)
    kernels = batch["kernel"].numpy()
    assert not np.allclose(kernels[0], kernels[1])            # one kernel per patch
    for hr, k, lr in zip(batch["hr"].numpy(), kernels, batch["lr"].numpy()):
        np.testing.assert_allclose(k.sum(), 1.0, atol=1e-5)
        blurred = np.stack([scipy.ndimage.convolve(hr[..., c].astype(np.float64), k,
                                                   mode=SCIPY_MODES["reflect"])
                            for c in range(3)], -1)
        small = np.asarray(imresize(blurred.astype(np.float32), scale=0.5))
        expected = np.clip(np.floor(small * 255 + 0.5), 0, 255) / 255
        assert np.abs(lr - expected).max() <= 1.01 / 255
        assert np.mean(np.abs(lr - expected) > 0.5 / 255) < 0.02


def test_noise_label_and_per_step_scales(folder):
    images = ImageSet.from_folders([folder])
    pipe = PatchPipeline(images, scale=[2, 3, 4], patch_size=24, batch_size=2,
                         degradation="gaussian(sigma=1)+bicubic+noise(5~10)", seed=1)
    seen = set()
    for batch in pipe.dataset(0, 12):
        s = int(batch["scale"].numpy()[0])
        assert np.all(batch["scale"].numpy() == s)            # one scale per step
        assert batch["lr"].shape[1:3] == (24 // s, 24 // s)
        sigma = batch["noise_sigma"].numpy()
        assert np.all((sigma >= 5) & (sigma <= 10))
        seen.add(s)
    assert seen == {2, 3, 4}
    again = [int(b["scale"].numpy()[0]) for b in pipe.dataset(5, 12)]
    first = [int(b["scale"].numpy()[0]) for b in pipe.dataset(0, 12)][5:]
    assert again == first                                      # a function of (seed, step)


def test_second_streams(folder, tmp_path):
    images = ImageSet.from_folders([folder])
    unpaired = UnpairedPatches(images, patch_size=12, seed=3)
    pipe = PatchPipeline(images, 2, 16, 2, seed=3, extra=unpaired)
    assert set(pipe.keys()) == {"lr", "hr", "scale", "noise_sigma", "real_lr"}
    a = [b["real_lr"].numpy() for b in pipe.dataset(0, 3)]
    b = [b["real_lr"].numpy() for b in pipe.dataset(1, 3)]
    assert a[0].shape == (2, 12, 12, 3)
    np.testing.assert_array_equal(a[1], b[0])
    assert not np.array_equal(a[0], a[1])

    # LQ/HQ pairs: the LQ patch is the HQ patch down-sampled by the pair's own rule
    from visionfw.imageio import read_image, write_image

    for sub in ("LQ", "HQ"):
        (tmp_path / sub).mkdir()
    for name in ("img0", "img1"):
        hq = read_image(f"{folder}/{name}.png")
        write_image(tmp_path / "HQ" / f"{name}.png", hq)
        write_image(tmp_path / "LQ" / f"{name}.png", hq[::2, ::2])
    lq, hq = ImageSet.from_folders([tmp_path / "LQ"]), ImageSet.from_folders([tmp_path / "HQ"])
    # (without flips: decimation by 2 is not flip-equivariant on an even grid)
    paired = PairedPatches(lq, hq, scale=2, patch_size=16, seed=0, augment=False)
    batch = next(iter(PatchPipeline(images, 2, 16, 3, extra=paired).dataset(0, 1)))
    np.testing.assert_array_equal(batch["lq"].numpy(), batch["hq"].numpy()[:, ::2, ::2])
    assert not np.array_equal(batch["hq"].numpy()[0], batch["hq"].numpy()[1])


# ---- a kernel-conditioned network through train.py and test.py ---------------------------

@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, folder):
    root = tmp_path_factory.mktemp("toy")
    visionfw.save_dict(toy_dict(), root / "toy.json")
    out = root / "run"
    r = run_cli("train.py", str(root / "toy.json"), "--degradation", BLUR, "--train-dir", folder,
               "--val-dir", folder, "--steps", "30", "--batch-size", "4", "--patch-size", "32",
               "--val-every", "30", "--lr", "2e-3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return root, out


def test_trained_on_kernel_labels_and_scored_with_the_true_kernel(toy_run, folder):
    root, out = toy_run
    rows = [line.split(",") for line in (out / "val.csv").read_text().splitlines()]
    assert rows[0][:2] == ["step", "psnr"] and rows[-1][0] == "30"
    report = root / "r.json"
    r = run_cli("test.py", "--weights", str(out / "best.weights.h5"), "--dataset", folder,
               "--degradation", "gaussian(sigma=2.0)+bicubic", "--json", str(report), "--quiet")
    assert r.returncode == 0, r.stderr
    data = json.loads(report.read_text())
    assert data["protocol"]["method"] == "nonblind"
    assert np.isfinite(data["results"][0]["psnr"])
    # the kernel reaches the network: another kernel gives another output
    model = visionfw.load_model(out / "best.weights.h5")
    x = np.random.default_rng(0).random((1, 12, 12, 3), np.float32)
    k1, k2 = gaussian_kernel(21, 0.8)[None], gaussian_kernel(21, 2.5)[None]
    assert not np.allclose(model([x, k1]), model([x, k2]))
    # a method of one role refuses a second one, in one line
    r = run_cli("test.py", "nonblind", "--weights", f"model={out / 'best.weights.h5'}",
               "--weights", f"extra={out / 'best.weights.h5'}", "--dataset", folder)
    assert r.returncode == 2 and "unknown role(s) extra" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    # and LR images from a folder carry no kernel
    r = run_cli("test.py", "--weights", str(out / "best.weights.h5"), "--dataset", folder,
                "--lr-dir", folder)
    assert r.returncode == 2 and "needs the true kernel" in r.stderr


def _scored(model, folder, **kw):
    method = make_method("nonblind", {"model": model}, **kw)
    data = Dataset.from_folder(folder)
    spec = "gaussian(sigma1=3.0,sigma2=0.6,theta=0.5)+bicubic"
    return evaluate(method, [data], degradation=spec)["results"][0]


def test_tiles_carry_the_kernel_and_match_the_whole_image(toy_run, folder, tmp_path):
    model = visionfw.load_model(toy_run[1] / "best.weights.h5")
    method = make_method("nonblind", {"model": model})
    tiled = make_method("nonblind", {"model": model}, tile=12, tile_overlap=9)
    lr = np.random.default_rng(3).random((30, 26, 3), np.float32)
    labels = {"kernel": gaussian_kernel(21, 2.0, 0.7, 0.4)}
    whole = method(lr, None, labels)["sr"][0]
    pieces = tiled(lr, None, labels)["sr"][0]
    assert np.abs(whole - pieces).max() < 1e-5


def test_self_ensemble_turns_the_kernel_with_the_image():
    """A blur is equivariant only if its kernel is turned with the image: the ensemble of an
    exact blur is the blur itself, which fails for an asymmetric kernel left unturned."""
    rng = np.random.default_rng(0)
    img = rng.random((20, 24, 3))
    kernel = np.zeros((7, 7))
    kernel[1:4, 2:6] = rng.random((3, 4))           # off-centre and asymmetric
    kernel /= kernel.sum()

    def blur(x, k):
        return np.stack([scipy.ndimage.convolve(x[..., c], k, mode="wrap") for c in range(3)], -1)

    expected = blur(img, kernel)
    np.testing.assert_allclose(self_ensemble(blur, img, kernel), expected, atol=1e-12)
    unturned = self_ensemble(lambda x, k: blur(x, kernel), img, kernel)
    assert np.abs(unturned - expected).max() > 1e-2
    # an even kernel is padded so that it turns about its centre [size // 2, size // 2]
    even = rng.random((6, 6))
    even /= even.sum()
    np.testing.assert_allclose(self_ensemble(blur, img, even), blur(img, even), atol=1e-12)
    assert orient_kernel(even, 1, True).shape == (7, 7)


def test_the_nonblind_ensemble_feeds_each_orientation_its_turned_kernel(toy_run):
    model = visionfw.load_model(toy_run[1] / "best.weights.h5")
    method = make_method("nonblind", {"model": model}, self_ensemble=True)
    seen = []
    base = method.predict

    def spy(img, k):
        seen.append(k)
        return base(img, k)

    method.predict = spy
    kernel = gaussian_kernel(21, 3.0, 0.5, 0.3)
    method(np.random.default_rng(1).random((10, 12, 3), np.float32), None, {"kernel": kernel})
    expected = [orient_kernel(kernel, k, flip) for flip in (False, True) for k in range(4)]
    assert len(seen) == 8
    for got, want in zip(seen, expected):
        np.testing.assert_allclose(got, want, atol=1e-7)
    assert len({np.round(k, 6).tobytes() for k in seen}) == 4    # 8 orientations, symmetric pairs


def test_the_output_to_score_is_named_in_meta(folder):
    """A two-output network (SR and a kernel estimate) is scored on the output meta names."""
    d = {"name": "TwoOut", "meta": {"scale": 2, "score": "sr"},
         "inputs": [{"node": "lr", "shape": [None, None, 3]}], "outputs": ["k", "sr"],
         "resize": [("lr", "sr")], "resize_sub": "BicubicResize", "resize_par": {"scale": 2},
         "pool": [("lr", "k")], "pool_sub": "GlobalAveragePooling2D"}
    model = visionfw.build(d)
    result = evaluate(model, [Dataset.from_folder(folder)])["results"][0]
    assert result["psnr"] == pytest.approx(result["bicubic_psnr"], abs=0.02)
    bad = visionfw.build({**d, "meta": {"scale": 2}})
    with pytest.raises(visionfw.VisionfwError, match=r"has 2 outputs \(k, sr\); name the image "
                                                     r"to score in its dictionary's meta"):
        evaluate(bad, [Dataset.from_folder(folder)])


def test_a_dictionary_trained_with_scale_keeps_it_in_its_checkpoint(tmp_path, folder):
    d = toy_dict()
    d["meta"] = {"color": "rgb"}                     # no scale: it comes from --scale
    visionfw.save_dict(d, tmp_path / "noscale.json")
    out = tmp_path / "run"
    r = run_cli("train.py", str(tmp_path / "noscale.json"), "--scale", "2", "--degradation", BLUR,
               "--train-dir", folder, "--val-dir", folder, "--steps", "2", "--batch-size", "2",
               "--patch-size", "32", "--val-every", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    from visionfw.checkpoint import read_spec

    assert read_spec(out / "best.weights.h5")["dict"]["meta"]["scale"] == 2
    r = run_cli("test.py", "--weights", str(out / "best.weights.h5"), "--dataset", folder,
               "--degradation", "gaussian(sigma=1.0)+bicubic", "--quiet")
    assert r.returncode == 0, r.stderr
