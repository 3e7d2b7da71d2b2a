"""DAN at tiny sizes: the conditional residual block against NumPy, the networks' layout
against DANv1's parameter counts, the unfolded loop's gradient flow, the recipe's step and
its bit-exact resume, the method on two images, one-line errors."""
import json

import numpy as np
import pytest
import tensorflow as tf

import visionfw
from tests.train_utils import (assert_same_state, assert_same_steps_on_both_paths, make_trainer,
                               resume_from_copy, run_cli, tiny_config, write_images,
                               zero_conv_biases)

BLUR = "gaussian(sigma=0.5~3,size=21)+bicubic"
TINY = {"nf": "8", "nb": "2", "code_len": "4"}
TINY_PARAMS = {"estimator_nf": "8", "estimator_nb": "1", "loops": "3"}


# ---------------------------------------------------------------- the block, by hand

def conv_same(x, w, b):
    """'same' zero-padded correlation of ``x`` (H, W, C) with ``w`` (k, k, C, F), in NumPy."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    out = np.zeros(x.shape[:2] + (w.shape[-1],))
    for i in range(k):
        for j in range(k):
            out += xp[i:i + x.shape[0], j:j + x.shape[1]] @ w[i, j]
    return out + b


def lrelu(x, slope=0.2):
    return np.where(x > 0, x, slope * x)


def test_conditional_residual_block_against_numpy():
    d = {"name": "OneCRB",
         "inputs": [{"node": "x", "shape": [None, None, 32]}, {"node": "c", "shape": [None, None, 5]}],
         "block": [("x", "c", "y")], "block_sub": "conditional_residual_block"}
    model = visionfw.build(d)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(scale=0.2, size=w.shape).astype("float32"))
    block = next(layer for layer in model.layers if hasattr(layer, "layers"))
    p = {layer.name: [np.asarray(v, np.float64) for v in layer.get_weights()]
         for layer in block.layers if layer.get_weights()}
    assert set(p) == {"conv1", "conv2", "squeeze", "excite"}
    assert p["conv1"][0].shape == (3, 3, 37, 37) and p["conv2"][0].shape == (3, 3, 37, 32)
    assert p["squeeze"][0].shape == (1, 1, 32, 2) and p["excite"][0].shape == (1, 1, 2, 32)
    x = rng.random((9, 7, 32))
    c = rng.random((9, 7, 5))
    y = conv_same(np.concatenate([x, c], -1), *p["conv1"])        # basic input first
    y = conv_same(lrelu(y), *p["conv2"])
    s = y.mean(axis=(0, 1))
    s = lrelu(s @ p["squeeze"][0][0, 0] + p["squeeze"][1])
    s = 1 / (1 + np.exp(-(s @ p["excite"][0][0, 0] + p["excite"][1])))
    want = x + y * s
    got = model.predict([x[None].astype("float32"), c[None].astype("float32")], verbose=0)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_dan_kernel_estimator_is_danv2s_estimator_against_numpy():
    # DANv2's layout (dan_arch.py), counted: 5x5 LR head and 17x17 stride-4 SR head to 32;
    # 5 dual-path blocks of four 3x3 32 -> 32 convolutions; 3x3 to 64; 1x1 (dense) to 625 taps
    conv = lambda k, i, o: k * k * i * o + o                                 # noqa: E731
    want = conv(5, 3, 32) + conv(17, 3, 32) + 5 * 4 * conv(3, 32, 32) + conv(3, 32, 64) \
        + conv(1, 64, 625)
    assert visionfw.build_model("dan-kernel-estimator").count_params() == want == 274_289
    nb, s, size = 2, 2, 5
    model = visionfw.build_model("dan-kernel-estimator", nf=8, nb=nb, size=size, scale=s)
    rng = np.random.default_rng(3)
    for w in model.weights:
        w.assign(rng.normal(scale=0.15, size=w.shape).astype("float32"))
    p = {layer.name: [np.asarray(v, np.float64) for v in layer.get_weights()]
         for layer in model.layers if layer.get_weights()}
    lr, sr = rng.random((7, 6, 3)), rng.random((14, 12, 3))
    x = conv_same(lr, *p["convo_0"])
    w, b = p["convo_1"]                        # padded by 2s, stride s: back to LR size
    assert w.shape == (4 * s + 1, 4 * s + 1, 3, 4)
    padded = np.pad(sr, ((2 * s, 2 * s), (2 * s, 2 * s), (0, 0)))
    c = np.zeros(lr.shape[:2] + (4,))
    for i in range(4 * s + 1):
        for j in range(4 * s + 1):
            c += padded[i:i + s * 7:s, j:j + s * 6:s] @ w[i, j]
    c += b
    n = 2
    for _ in range(nb):
        f1 = conv_same(lrelu(conv_same(x, *p[f"convo_{n}"])), *p[f"convo_{n + 1}"])
        f2 = conv_same(lrelu(conv_same(c, *p[f"convo_{n + 2}"])), *p[f"convo_{n + 3}"])
        x, c, n = x + f1 * f2, c + f2, n + 4
    x = 2 * x                     # the official group's skip adds its output to itself
    t = conv_same(x, *p[f"convo_{n}"]).mean(axis=(0, 1)) @ p["dense_0"][0] + p["dense_0"][1]
    k = np.exp(t - t.max())
    got = model.predict([lr[None].astype("float32"), sr[None].astype("float32")], verbose=0)[0]
    assert 2 * got.min() < got.max() < 0.5                # a softmax far from saturation
    np.testing.assert_allclose(got, (k / k.sum()).reshape(size, size), rtol=1e-4, atol=1e-6)


def test_networks_have_danv1s_parameter_counts():
    # DANv1 x4 (nf 64, nb 40; Estimator 32 wide, 5 blocks), counted from the official layout
    crb = lambda nf, t: (9 * (nf + t) ** 2 + nf + t) + (9 * (nf + t) * nf + nf) \
        + (nf * (nf // 16) + nf // 16) + ((nf // 16) * nf + nf)           # noqa: E731
    estimator = (3 * 32 + 32) + (81 * 3 * 32 + 32) + 5 * crb(32, 32) + (9 * 32 * 10 + 10)
    restorer = (27 * 64 + 64) + 40 * crb(64, 10) + (9 * 64 * 64 + 64) \
        + 2 * (9 * 64 * 256 + 256) + (9 * 64 * 3 + 3)
    assert visionfw.build_model("dan-estimator").count_params() == estimator == 288_596
    assert visionfw.build_model("dan-restorer").count_params() == restorer == 4_040_915
    e = visionfw.build_model("dan-estimator", nf=8, nb=1, code_len=4, scale=2)
    lr = np.zeros((1, 6, 5, 3), np.float32)
    assert e.predict([lr, np.zeros((1, 12, 10, 3), np.float32)], verbose=0).shape == (1, 4)
    r = visionfw.build_model("dan-restorer", nf=8, nb=1, code_len=4, scale=3)
    assert r.predict([lr, np.zeros((1, 4), np.float32)], verbose=0).shape == (1, 18, 15, 3)


# ---------------------------------------------------------------- the recipe

@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs"), n=2, size=(48, 48))


def dan_config(out, images, **extra):
    return tiny_config(out, images, model="dan-restorer", scale=2, steps=4, hparams=dict(TINY),
                       patch_size=32, batch_size=2, degradation=BLUR,
                       recipe_params=dict(TINY_PARAMS), **extra)


def test_delta_start_and_detached_gradients(tmp_path, images):
    import tensorflow as tf

    from visionfw.kernel_codes import encode
    from visionfw.recipes.dan import delta_code

    trainer = make_trainer(dan_config(tmp_path / "g", images))
    recipe = trainer.recipe
    pca = recipe.pca
    # the start: the centred delta's code, without the mean (row 220 of P for 21x21)
    np.testing.assert_allclose(delta_code(pca)[0], pca.matrix[220], atol=1e-6)
    r, e = recipe.networks["restorer"], recipe.networks["estimator"]
    rng = np.random.default_rng(1)
    lr = tf.constant(rng.random((2, 16, 16, 3)), tf.float32)
    hr = tf.constant(rng.random((2, 32, 32, 3)), tf.float32)
    k = np.zeros((2, 21, 21), np.float32)
    k[:, 10, 10] = 1
    true = encode(pca, tf.constant(k))
    code = tf.constant(rng.random((2, 4)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(code)
        sr_loss, code_loss = recipe.last_losses(lr, hr, true, code)
    rv, ev = r.trainable_variables, e.trainable_variables
    # each loss reaches its own network only; nothing reaches the incoming code
    assert all(g is None for g in tape.gradient(code_loss, rv))
    assert all(g is None for g in tape.gradient(sr_loss, ev))
    assert tape.gradient(sr_loss, code) is None and tape.gradient(code_loss, code) is None
    assert all(g is not None and np.any(np.asarray(g)) for g in tape.gradient(sr_loss, rv))
    assert all(g is not None for g in tape.gradient(code_loss, ev))


def test_one_step_and_bit_exact_resume(tmp_path, images):
    straight = make_trainer(dan_config(tmp_path / "a", images, save_every=2))
    before = [np.array(v) for v in straight.recipe.networks["estimator"].weights]
    assert straight.fit()["step"] == 4
    assert int(straight.recipe.optimizers["dan"].iterations.numpy()) == 4   # one Adam, both nets
    after = straight.recipe.networks["estimator"].weights
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, after))
    second = resume_from_copy(tmp_path / "a", dan_config(tmp_path / "b", images), 2)
    assert second.fit(resume=True)["step"] == 4
    assert_same_state(straight, second)
    for name in ("last.weights.h5", "last.estimator.weights.h5"):
        assert (tmp_path / "a" / name).is_file()
    meta = visionfw.load_model(tmp_path / "a" / "last.weights.h5")
    from visionfw.methods.base import model_meta

    assert model_meta(meta)["loops"] == 3 and "pca" in model_meta(meta)


@pytest.fixture(scope="module")
def dan_run(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("dan") / "run"
    r = run_cli("train.py", "dan", "--param", "nf=8", "--param", "nb=1", "--param", "code_len=4",
               "--estimator-nf", "8", "--estimator-nb", "1", "--loops", "2", "--scale", "2",
               "--degradation", BLUR, "--train-dir", images, "--val-dir", images, "--steps",
               "2", "--batch-size", "2", "--patch-size", "32", "--val-every", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_test_py_dan_scores_every_iteration_on_two_images(dan_run, images, tmp_path):
    import csv

    report = tmp_path / "r.json"
    r = run_cli("test.py", "dan", "--weights", dan_run, "--dataset", images, "--degradation",
               BLUR, "--json", report, "--save-steps", tmp_path / "steps")
    assert r.returncode == 0, r.stderr
    assert "iteration 1" in r.stdout and "true kernel" in r.stdout
    data = json.loads(report.read_text())
    result = data["results"][0]
    assert [s["label"] for s in result["steps"]] == ["iteration 1", "iteration 2"]
    assert all("kernel_psnr" in s and "code_error" in s for s in result["steps"])
    assert "true_kernel_psnr" in result and result["n_images"] == 2
    assert len(list((tmp_path / "steps").rglob("*_kernels.png"))) == 2
    # validation's last code error is test.py's for the same images and degradation
    row = list(csv.DictReader(open(dan_run / "val.csv")))[-1]
    images_ = result["images"]
    assert float(row["code_error"]) == pytest.approx(
        np.mean([i["steps"][-1]["code_error"] for i in images_]), rel=1e-3)
    assert float(row["psnr"]) == pytest.approx(result["psnr"], abs=1e-3)
    r = run_cli("-m visionfw", "sr", "--method", "dan", "--weights", dan_run, "--out",
                tmp_path / "sr", images)
    assert r.returncode == 0, r.stderr
    written = sorted(p.name for p in (tmp_path / "sr").iterdir())
    assert len([n for n in written if n.endswith("_x2.png")]) == 2
    # the last estimate and the labelled strip of every iteration's, per image
    assert len([n for n in written if n.endswith("_kernel.png")]) == 2
    assert len([n for n in written if n.endswith("_kernels.png")]) == 2


def test_wrong_roles_lengths_and_pcas_are_one_line_errors(dan_run, images, tmp_path):
    restorer, estimator = dan_run / "best.weights.h5", dan_run / "best.estimator.weights.h5"

    def run(*weights):
        args = ["test.py", "dan", "--dataset", images, "--degradation", BLUR]
        for w in weights:
            args += ["--weights", w]
        return run_cli(*args)

    r = run(f"restorer={estimator}", f"estimator={restorer}")
    assert r.returncode == 2 and "the restorer takes an LR image and a kernel code" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    r = run(f"restorer={restorer}", f"estimator={restorer}")
    assert r.returncode == 2 and "the estimator takes the LR and SR images" in r.stderr
    # another code length
    other = visionfw.build_model("dan-estimator", nf=8, nb=1, code_len=6, scale=2)
    path = tmp_path / "e6.weights.h5"
    visionfw.save_model(other, path)
    r = run(f"restorer={restorer}", f"estimator={path}")
    assert r.returncode == 2 and "code lengths differ" in r.stderr
    # the same length, another PCA
    from visionfw.degradation import fit_pca
    from visionfw.graph.builder import attach_spec, build
    from visionfw.kernel_codes import with_pca

    d = with_pca(visionfw.model_dict("dan-estimator", nf=8, nb=1, code_len=4, scale=2),
                 fit_pca(n_components=4, size=21, keep_mean=False, isotropic=False))
    foreign = build(d)
    attach_spec(foreign, d, "dan-estimator", {})
    path = tmp_path / "pca.weights.h5"
    visionfw.save_model(foreign, path)
    r = run(f"restorer={restorer}", f"estimator={path}")
    assert r.returncode == 2 and "different PCAs" in r.stderr
    r = run_cli("train.py", "dan", "--param", "nf=8", "--scale", "2", "--train-dir", images,
                "--loops", "0", "--out", tmp_path / "bad")
    assert r.returncode != 0 and "loops must be at least 1" in r.stderr
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- DAN's estimator with USRNet

TINY_USRNET = {"iterations": 2, "nc": 8, "nb": 1, "levels": 3, "hidden": 8, "scale": 2}


@pytest.fixture(scope="module")
def usrnet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("usrnet") / "u.weights.h5"
    visionfw.save_model(visionfw.build_model("usrnet", **TINY_USRNET), path)
    return path


def test_dan_kernel_estimator_emits_kernels():
    e = visionfw.build_model("dan-kernel-estimator", nf=8, nb=1, size=9, scale=2)
    rng = np.random.default_rng(0)
    for w in e.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    k = e.predict([rng.random((2, 10, 12, 3), np.float32),
                   rng.random((2, 20, 24, 3), np.float32)], verbose=0)
    assert k.shape == (2, 9, 9) and k.min() >= 0
    np.testing.assert_allclose(k.sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_dan_kernel_estimator_norm_makes_the_kernel_independent_of_contrast():
    """norm=layer: the pooled features through a layer normalisation before the dense layer.
    With the convolutions' biases at zero the group's products of LR and SR features are of
    degree 2 in the brightness and dominate a bright pair: the logits for a pair three times
    as bright nearly keep their values with the normalisation, and grow about 9 times
    without it."""
    import keras

    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    lr = 100.0 * rng.random((2, 10, 12, 3), np.float32)
    sr = 100.0 * rng.random((2, 20, 24, 3), np.float32)
    change = {}
    for norm in ("layer", "none"):
        model = visionfw.build_model("dan-kernel-estimator", nf=8, nb=1, size=9, scale=2,
                                     norm=norm)
        norms = [l for l in model.layers if isinstance(l, keras.layers.LayerNormalization)]
        assert len(norms) == (1 if norm == "layer" else 0)
        zero_conv_biases(model)
        k = np.asarray(model([lr, sr]))
        assert k.shape == (2, 9, 9)
        np.testing.assert_allclose(k.sum(axis=(1, 2)), 1.0, atol=1e-5)
        dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)][-1]
        logits = keras.Model(model.inputs, dense.output)          # before the softmax
        a, b = np.asarray(logits([lr, sr])), np.asarray(logits([3.0 * lr, 3.0 * sr]))
        change[norm] = np.abs(a - b).max() / np.abs(a).max()
    # without it the logits grow about 9 times (the products' square); with it they move by
    # what the LR features' own term (of degree 1) adds beside the products (of degree 2)
    assert change["none"] > 5 and change["layer"] < 0.05
    with pytest.raises(Exception, match="norm must be 'none' or 'layer'"):
        visionfw.model_dict("dan-kernel-estimator", norm="batch")


def test_train_and_test_dan_usrnet(usrnet_file, images, tmp_path):
    out = tmp_path / "run"
    r = run_cli("train.py", "dan-kernel-estimator", "--param", "nf=8", "--param", "nb=1",
               "--usrnet", usrnet_file, "--loops", "2", "--scale", "2", "--train-dir", images,
               "--val-dir", images, "--steps", "2", "--batch-size", "2", "--patch-size", "32",
               "--val-every", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    # USRNet is frozen by default: the copy beside the run is the file given
    given = visionfw.load_model(usrnet_file).get_weights()
    kept = visionfw.load_model(out / "last.usrnet.weights.h5").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(given, kept))
    assert "kernel_psnr" in (out / "val.csv").read_text().splitlines()[0]
    report = tmp_path / "r.json"
    spec = "gaussian(sigma=1.5,size=25,padding=circular)+direct(offset=0)"
    r = run_cli("test.py", "dan+usrnet", "--weights", out, "--dataset", images,
               "--degradation", spec, "--json", report, "--save-steps", tmp_path / "steps")
    assert r.returncode == 0, r.stderr
    result = json.loads(report.read_text())["results"][0]
    assert set(result["also"]) == {"USRNet + mean kernel", "USRNet + true kernel"}
    assert np.isfinite(result["kernel_psnr"]) and result["n_images"] == 2
    protocol = json.loads(report.read_text())["protocol"]
    assert protocol["iterations"] == 2
    # the mean-kernel row is the mean of the blurs the estimator trained on (USRNet's,
    # Gaussian and motion), not KENet's anisotropic Gaussians
    assert protocol["mean_kernel_training"] == "randomblur(size=25,padding=circular)+direct"
    # the method: USRNet fed the kernel the alternation ends with
    from visionfw.evaluate import make_method

    usrnet = visionfw.load_model(out / "best.usrnet.weights.h5")
    estimator = visionfw.load_model(out / "best.weights.h5")
    method = make_method("dan+usrnet", {"model": usrnet, "estimator": estimator})
    lr = np.random.default_rng(2).random((16, 16, 3), np.float32)
    got = method(lr, None, {})

    def usr(k):
        return usrnet.predict([lr[None], k[None], np.float32([2]), np.float32([0])],
                              verbose=0)[0]

    k = np.zeros((25, 25), np.float32)
    k[12, 12] = 1
    for _ in range(2):
        k = estimator.predict([lr[None], usr(k)[None]], verbose=0)[0]
    np.testing.assert_allclose(got["kernel"], k, atol=1e-5)
    np.testing.assert_allclose(got["sr"][0], usr(k), atol=1e-4)
    # a temperature: the loop runs as trained (its steps unchanged), the last kernel is
    # raised to 1/T and renormalised, and the result is USRNet fed that kernel
    hot = make_method("dan+usrnet", {"model": usrnet, "estimator": estimator},
                      temperature=0.5, steps=True)
    warm = hot(lr, None, {})
    want = k.astype(np.float64) ** 2 / (k.astype(np.float64) ** 2).sum()
    np.testing.assert_allclose(warm["kernel"], want, atol=1e-6)
    # ten times the tolerance above: the untempered kernel could not pass for the tempered
    assert np.abs(warm["kernel"] - k).max() > 1e-5
    np.testing.assert_allclose(warm["sr"][0], usr(warm["kernel"]), atol=1e-4)
    plain = make_method("dan+usrnet", {"model": usrnet, "estimator": estimator},
                        steps=True)(lr, None, {})
    for a, b in zip(warm["steps"][:-1], plain["steps"][:-1]):
        np.testing.assert_array_equal(a["kernel"], b["kernel"])
    assert hot.protocol()["kernel_temperature"] == 0.5
    r = run_cli("-m visionfw", "sr", "--method", "dan+usrnet", "--weights", out, "--out",
                tmp_path / "sr", images)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "sr").glob("*_kernel.png"))) == 2
    # an estimator of the LR image alone belongs to kenet+usrnet
    kenet = tmp_path / "kenet.weights.h5"
    visionfw.save_model(visionfw.build_model("kenet", nf=4, fc=8, scale=2), kenet)
    r = run_cli("test.py", "dan+usrnet", "--weights", f"model={usrnet_file}", "--weights",
                f"estimator={kenet}", "--dataset", images, "--degradation", spec)
    assert r.returncode == 2 and "runs in kenet+usrnet" in r.stderr
    r = run_cli("train.py", "dan-kernel-estimator", "--scale", "2", "--train-dir", images,
                "--out", tmp_path / "bad")
    assert r.returncode != 0 and "needs the trained USRNet" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_the_loop_gives_the_same_iterations_through_xla_and_the_graph(dan_run, monkeypatch):
    from visionfw.evaluate import make_method

    nets = {"restorer": visionfw.load_model(dan_run / "best.weights.h5"),
            "estimator": visionfw.load_model(dan_run / "best.estimator.weights.h5")}
    lr = np.random.default_rng(5).random((16, 12, 3), np.float32)
    steps = assert_same_steps_on_both_paths(monkeypatch, lambda: make_method("dan", nets), lr)
    assert len(steps) == 2


def danusr_config(out, images, usrnet_file, save_every=None, **params):
    return tiny_config(out, images, model="dan-kernel-estimator", recipe="dan-usrnet",
                       save_every=save_every,
                       hparams={"nf": "8", "nb": "1", "size": "9"}, scale=2, steps=4,
                       batch_size=2, patch_size=32,
                       degradation="randomblur(size=9,padding=circular)+direct+noise(0~5)",
                       recipe_params=dict({"usrnet": str(usrnet_file), "loops": "2"}, **params))


def test_dan_usrnet_step_trains_the_estimator_alone_and_resumes_bit_exactly(tmp_path, images,
                                                                            usrnet_file):
    from visionfw.losses import get_loss
    from visionfw.recipes.kenet import kernel_loss
    from visionfw.train import TrainError

    tf.config.optimizer.set_experimental_options({"remapping": True})
    straight = make_trainer(danusr_config(tmp_path / "a", images, usrnet_file, save_every=2))
    recipe = straight.recipe
    # Grappler's remapper is turned off: at the zoo sizes it fails on the estimator's input
    # gradient and logs an error line (a fusion it then drops)
    assert tf.config.optimizer.get_experimental_options().get("remapping") is False
    assert recipe.options["loss"] == "attention"               # KENet's loss by default
    assert float(recipe.optimizers["dan"].epsilon) == 1e-8      # PyTorch's, as DANv2's
    frozen = [np.array(v) for v in recipe.networks["usrnet"].weights]
    before = [np.array(v) for v in recipe.networks["estimator"].weights]
    assert straight.fit()["step"] == 4
    after = recipe.networks["estimator"].weights
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, after))
    assert all(np.array_equal(a, np.asarray(b))
               for a, b in zip(frozen, recipe.networks["usrnet"].weights))
    second = resume_from_copy(tmp_path / "a", danusr_config(tmp_path / "b", images,
                                                             usrnet_file), 2)
    assert second.fit(resume=True)["step"] == 4
    assert_same_state(straight, second)
    # validation scores what test.py dan+usrnet gives: USRNet fed the last kernel
    from visionfw.evaluate import make_method

    lr = np.random.default_rng(3).random((1, 16, 16, 3), np.float32)
    inputs = {"lr": lr, "kernel": np.full((1, 9, 9), 1 / 81, np.float32),
              "scale": np.float32([2]), "noise_sigma": np.float32([0])}
    sr, extra = recipe.predict({k: tf.constant(v) for k, v in inputs.items()})
    method = make_method("dan+usrnet", {"model": recipe.networks["usrnet"],
                                        "estimator": recipe.networks["estimator"]})
    got = method(lr[0], None, {"noise_sigma": np.float32(0)})
    np.testing.assert_allclose(np.asarray(extra["kernel"])[0], got["kernel"], atol=1e-6)
    np.testing.assert_allclose(np.asarray(sr)[0], got["sr"][0], atol=1e-5)
    # the recipe's kernel loss is the registered one the parameters name
    rng = np.random.default_rng(0)
    est, true = rng.random((2, 9, 9)), rng.random((2, 9, 9))
    est, true = (x / x.sum(axis=(1, 2), keepdims=True) for x in (est, true))
    for loss, want in (("attention", get_loss("attention")(est, true)),
                       ("l1", np.abs(est - true).mean())):
        options = dict(recipe.options, loss=loss)
        np.testing.assert_allclose(float(kernel_loss(options, est, true)), float(want),
                                   rtol=1e-6)
    with pytest.raises(TrainError, match="expected attention or l1"):
        make_trainer(danusr_config(tmp_path / "c", images, usrnet_file, loss="l2"))


def test_dan_usrnet_result_loss_reaches_the_estimator_through_frozen_usrnet(tmp_path, images,
                                                                           usrnet_file):
    """With the kernel loss weighted to zero, only ``lambda_sr`` can move the estimator: its
    L1 between HR and USRNet fed the estimate must pass through USRNet's data steps."""
    from visionfw.recipes.dan import DANUSRNetRecipe
    from visionfw.train import TrainError

    silent = {"rho0": "0", "rho1": "0", "rho2": "0"}
    moved = {}
    for weight in ("0", "1"):
        trainer = make_trainer(danusr_config(tmp_path / weight, images, usrnet_file,
                                             lambda_sr=weight, **silent))
        recipe = trainer.recipe
        frozen = [np.array(v) for v in recipe.networks["usrnet"].weights]
        before = [np.array(v) for v in recipe.networks["estimator"].weights]
        trainer.fit()
        after = recipe.networks["estimator"].weights
        moved[weight] = any(not np.array_equal(a, np.asarray(b))
                            for a, b in zip(before, after))
        assert all(np.array_equal(a, np.asarray(b))
                   for a, b in zip(frozen, recipe.networks["usrnet"].weights))
        logged = (tmp_path / weight / "train.csv").read_text().splitlines()
        column = logged[0].split(",").index("loss")         # the kernel loss is weighted 0
        losses = [float(line.split(",")[column]) for line in logged[1:]]
        assert losses and all((x > 0) == (weight == "1") for x in losses)
    assert moved == {"0": False, "1": True}
    config = danusr_config(tmp_path / "c", images, usrnet_file, lambda_sr="-1")
    with pytest.raises(TrainError, match="lambda_sr is a loss weight"):
        DANUSRNetRecipe.check_run(config)
