"""USRNet and its ResUNet prior at tiny sizes: parameter counts against the paper's layout, the
unrolled data steps against a hand-written loop, the shared prior, the recipe and the method."""
import json

import numpy as np
import pytest

import visionfw
from tests.train_utils import make_trainer, run_cli, tiny_config, write_images
from visionfw.layers import usrnet_data_step

TINY = {"iterations": 3, "nc": 8, "nb": 1, "levels": 3, "hidden": 8, "scale": 2}


def resunet_count(nc, nb, levels, c_in, c_out):
    """Weights of the official ResUNet layout, counted by hand (3x3 convs without bias; 2x2
    strided and transposed convs between levels)."""
    widths = [nc * 2 ** i for i in range(levels)]
    n = 9 * c_in * nc + 9 * nc * c_out                       # head, tail
    for w in widths[:-1]:
        n += 2 * nb * 2 * 9 * w * w                           # blocks down and up
        n += 2 * 4 * w * 2 * w                                # strided conv and its transpose
    return n + nb * 2 * 9 * widths[-1] ** 2                   # bottom blocks


def test_parameter_counts_match_the_official_layout():
    assert visionfw.build_model("resunet").count_params() == resunet_count(64, 2, 4, 4, 3)
    hyper = (2 * 64 + 64) + (64 * 64 + 64) + (64 * 16 + 16)
    # USRNet's paper: 17.02M parameters; the ResUNet is shared by the 8 iterations
    model = visionfw.build_model("usrnet")
    assert model.count_params() == resunet_count(64, 2, 4, 4, 3) + hyper == 17_016_016


def alphas_by_hand(model, sigma, scale, iterations):
    """The hyper-parameter network in NumPy from its dense layers: (sigma/255, s) -> alphas,
    betas (softplus + 1e-6)."""
    h = np.array([[sigma / 255.0, scale]], np.float64)
    dense = [layer for layer in model.layers if layer.name.startswith("dense_")]
    for i, layer in enumerate(dense):
        w, b = (np.asarray(v, np.float64) for v in layer.get_weights())
        h = h @ w + b
        h = np.maximum(h, 0) if i < 2 else np.log1p(np.exp(h)) + 1e-6
    return h[0, :iterations], h[0, iterations:]


def test_without_its_prior_usrnet_is_the_unrolled_data_steps():
    from visionfw.methods.usrnet import without_prior

    model = visionfw.build_model("usrnet", **TINY)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(w.numpy() + rng.normal(size=w.shape).astype("float32") * 0.05)
    bare = without_prior(model)
    assert bare.count_params() == sum(np.prod(w.shape) for layer in model.layers
                                      if layer.name.startswith("dense_") for w in layer.weights)
    lr = rng.random((1, 10, 12, 3), np.float32)
    kernel = rng.random((1, 7, 7), np.float32)
    kernel /= kernel.sum()
    sigma, s = 7.65, 2
    out = bare.predict([lr, kernel, np.float32([s]), np.float32([sigma])], verbose=0)
    alphas, _ = alphas_by_hand(model, sigma, s, TINY["iterations"])
    x = np.repeat(np.repeat(lr, s, axis=1), s, axis=2)          # nearest-neighbour start
    for a in alphas:
        x = np.asarray(usrnet_data_step(x, lr, kernel, np.float32([a]), s))
    np.testing.assert_allclose(out, x, atol=1e-4)
    full = model.predict([lr, kernel, np.float32([s]), np.float32([sigma])], verbose=0)
    assert np.abs(full - out).max() > 1e-3                      # the prior does something


def test_every_iteration_calls_one_shared_prior():
    model = visionfw.build_model("usrnet", **TINY)
    priors = [layer for layer in model.layers if layer.name.startswith("prior")]
    assert len(priors) == 1 and len(priors[0]._inbound_nodes) == TINY["iterations"]
    assert len(model.weights) == len({id(w) for w in model.weights})


def test_any_kernel_size_and_scale_and_the_betas_reach_the_prior():
    model = visionfw.build_model("usrnet", **TINY)
    rng = np.random.default_rng(1)
    for s, ks in ((1, 4), (3, 25), (4, 5)):
        lr = rng.random((2, 9, 10, 3), np.float32)
        k = rng.random((2, ks, ks), np.float32)
        k /= k.sum(axis=(1, 2), keepdims=True)
        y = model.predict([lr, k, np.float32([s, s]), np.float32([0, 10])], verbose=0)
        assert y.shape == (2, 9 * s, 10 * s, 3) and np.all(np.isfinite(y))
    # the noise level changes the output only through the hyper-parameters
    a = model.predict([lr, k, np.float32([4, 4]), np.float32([0, 0])], verbose=0)
    b = model.predict([lr, k, np.float32([4, 4]), np.float32([25, 25])], verbose=0)
    assert np.abs(a - b).max() > 1e-4


def test_the_recipe_checks_its_degradation_and_trains(tmp_path):
    from visionfw.train import TrainError
    from visionfw.train.run import apply_recipe_degradation

    images = write_images(tmp_path / "imgs", n=2, size=(48, 48))
    hp = {k: str(v) for k, v in TINY.items()}
    config = tiny_config(tmp_path / "run", images, model="usrnet", hparams=hp, scale=2, steps=2,
                         patch_size=30, batch_size=2, degradation="bicubic", scales=[2, 3])
    spec = apply_recipe_degradation(config)
    assert spec.startswith("randomblur(size=25") and "padding=circular" in spec
    assert "+direct+" in spec and "noise(0~25,clip=false,zero=0.125)" in spec
    trainer = make_trainer(config)
    assert trainer.recipe.name == "usrnet"
    before = [np.array(w) for w in trainer.recipe.main_network().weights]
    trainer.fit()
    after = trainer.recipe.main_network().weights
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, after))
    small = tiny_config(tmp_path / "small", images, model="usrnet", hparams=hp, scale=2,
                        patch_size=24, degradation=spec)
    with pytest.raises(TrainError, match="--patch-size 24 is smaller than the 25x25 kernels"):
        make_trainer(small)
    for wrong, what in (("gaussian(sigma=2)+direct", "reflect padding of the blur"),
                        ("gaussian(sigma=2,padding=circular)+bicubic",
                         "bicubic down-sampling")):
        bad = tiny_config(tmp_path / "bad", images, model="usrnet", hparams=hp, scale=2,
                          degradation=wrong)
        with pytest.raises(TrainError, match=what):
            make_trainer(bad)


@pytest.fixture(scope="module")
def usrnet_file(tmp_path_factory):
    model = visionfw.build_model("usrnet", **TINY)
    path = tmp_path_factory.mktemp("usrnet") / "u.weights.h5"
    visionfw.save_model(model, path)
    return path


def test_the_method_scores_usrnet_and_its_data_steps(usrnet_file, tmp_path):
    from visionfw.degradation import gaussian_kernel
    from visionfw.evaluate import Dataset, evaluate, format_report, make_method
    from visionfw.methods.usrnet import without_prior

    model = visionfw.load_model(usrnet_file)
    method = make_method("usrnet", {"model": model})
    lr = np.random.default_rng(0).random((10, 10, 3), np.float32)
    k = gaussian_kernel(9, 1.3).astype(np.float32)
    out = method(lr, None, {"kernel": k, "noise_sigma": np.float32(2.55)})
    expected = model.predict([lr[None], k[None], np.float32([2]), np.float32([2.55])],
                             verbose=0)[0]
    np.testing.assert_allclose(out["sr"][0], expected, atol=1e-5)
    steps = without_prior(model).predict([lr[None], k[None], np.float32([2]),
                                          np.float32([2.55])], verbose=0)[0]
    np.testing.assert_allclose(out["also"]["data steps alone"][0], steps, atol=1e-5)
    images = write_images(tmp_path / "imgs", n=2, size=(48, 48))
    report = evaluate(method, [Dataset.from_folder(images)],
                      degradation="gaussian(sigma=1.2,padding=circular)+direct", channel="rgb")
    r = report["results"][0]
    assert set(r["also"]) == {"data steps alone"}
    assert r["also"]["data steps alone"]["psnr"] == pytest.approx(
        np.mean([i["also"]["data steps alone"]["psnr"] for i in r["images"]]))
    assert report["protocol"]["kernel"] == "true"
    assert report["protocol"]["lr"] == ("LR made by the degradation 'gaussian(sigma=1.2,"
                                        "padding=circular)+direct' of the HR cropped to a "
                                        "multiple of the scale")
    with pytest.raises(Exception, match="needs the true kernel"):
        method(lr, None, {})
    with pytest.raises(Exception, match="the 25x25 kernel is larger than the 20x20 SR image"):
        method(lr, None, {"kernel": gaussian_kernel(25, 2.0)})


def test_test_py_usrnet12_table_has_kernels_as_columns(usrnet_file, shared_data, tmp_path):
    images = write_images(tmp_path / "imgs", n=1, size=(48, 48))
    report = tmp_path / "r.json"
    r = run_cli("test.py", "usrnet", "--weights", str(usrnet_file), "--dataset", images,
               "--degradation", "usrnet12", "--variant", "k0[1-3]_noise0.00",
               "--variant", "k12_noise7.65", "--json", str(report), "--quiet")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "RGB (PSNR over all channels" in text and "circular blur" in text
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("PSNR (dB)"))
    assert lines[head].split()[2:] == ["k01", "k02", "k03", "mean"]
    rows = [line.split()[0] for line in lines[head + 2: head + 5]]
    assert rows == ["bicubic", "data", "usrnet"]
    data = json.loads(report.read_text())
    assert [x["variant"] for x in data["results"]] == ["k01_noise0.00", "k02_noise0.00",
                                                      "k03_noise0.00", "k12_noise7.65"]
    assert data["protocol"]["channel"] == "rgb"
    r = run_cli("test.py", "usrnet", "--weights", str(usrnet_file), "--dataset", images,
                "--degradation", "usrnet12", "--variant", "k99*")
    assert r.returncode == 2 and "no variant of usrnet12 matches" in r.stderr
