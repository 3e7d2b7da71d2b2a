"""KENet, its adaptive attention loss, the kernel-space recipes (kenet, ikc-predictor without an
SFTMD), the mean-kernel baseline and the kenet+usrnet pipeline, at tiny sizes."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import visionfw
from tests.train_utils import run_cli, write_images, zero_conv_biases

TINY_KENET = {"nf": 4, "fc": 16}
TINY_USRNET = {"iterations": 2, "nc": 8, "nb": 1, "levels": 3, "hidden": 8, "scale": 2}


# ---------------------------------------------------------------- the loss, by hand

def attention_by_hand(est, true, thresholds, weights):
    """The loss with explicit loops over images and taps."""
    terms = [0.0] * (len(thresholds) + 1)
    n = est.size
    for b in range(est.shape[0]):
        peak = max(true[b].ravel())
        for i in range(est.shape[1]):
            for j in range(est.shape[2]):
                e, t = float(est[b, i, j]), float(true[b, i, j])
                terms[0] += abs(e - t) / n
                for m, lam in enumerate(thresholds):
                    masked = e if t > lam * peak else t
                    terms[m + 1] += abs(masked - t) / n
    return sum(w * term for w, term in zip(weights, terms)), terms


def test_attention_loss_on_a_hand_computed_example():
    from visionfw.losses import attention, get_loss, support_masked

    true = np.array([[[0.0, 0.05, 0.0], [0.05, 0.8, 0.05], [0.0, 0.05, 0.0]]], np.float32)
    est = np.array([[[0.1, 0.1, 0.1], [0.1, 0.2, 0.1], [0.1, 0.1, 0.1]]], np.float32)
    # lambda 0.01: support = taps > 0.008 (the cross); lambda 0.1: taps > 0.08 (the centre)
    wide = np.asarray(support_masked(est, true, 0.01))
    np.testing.assert_allclose(wide, [[[0.0, 0.1, 0.0], [0.1, 0.2, 0.1], [0.0, 0.1, 0.0]]])
    tight = np.asarray(support_masked(est, true, 0.1))
    np.testing.assert_allclose(tight, [[[0.0, 0.05, 0.0], [0.05, 0.2, 0.05], [0.0, 0.05, 0.0]]])
    # by hand: |k*-k| = (4*0.1 + 4*0.05 + 0.6) / 9; masked at 0.01: (4*0.05 + 0.6) / 9;
    # masked at 0.1: 0.6 / 9
    l_all, l_wide, l_tight = 1.2 / 9, 0.8 / 9, 0.6 / 9
    expected = 0.01 * l_all + 0.1 * l_wide + 1.0 * l_tight
    assert float(attention(est, true)) == pytest.approx(expected, rel=1e-6)
    assert float(get_loss("attention")(est, true)) == pytest.approx(expected, rel=1e-6)
    # the weighted sum with other weights and thresholds, against the loop version
    rng = np.random.default_rng(1)
    t = rng.random((3, 5, 5)).astype(np.float32) ** 4
    e = rng.random((3, 5, 5)).astype(np.float32)
    for thresholds, weights in [((0.01, 0.1), (0.01, 0.1, 1.0)), ((0.3,), (0.5, 2.0)),
                                ((0.05, 0.2, 0.6), (1.0, 0.0, 0.3, 0.7))]:
        want, terms = attention_by_hand(e, t, thresholds, weights)
        got = float(attention(e, t, thresholds=thresholds, weights=weights))
        assert got == pytest.approx(want, rel=1e-5)
    # plain L1 (the ablation) is the first term alone
    assert float(get_loss("l1")(e, t)) == pytest.approx(attention_by_hand(e, t, (), (1.0,))[0],
                                                       rel=1e-5)
    with pytest.raises(Exception, match="2 thresholds need 3 weights"):
        attention(e, t, thresholds=(0.1, 0.2), weights=(1.0,))


def test_target_blur_trains_towards_the_softened_kernel():
    """``target_blur``: the loss is the attention loss against the true kernel convolved with
    a zero-padded Gaussian (SciPy's ``gaussian_filter``, ``mode='constant'``) and renormalised;
    0 leaves the true kernel."""
    from scipy.ndimage import gaussian_filter

    from visionfw.losses import attention
    from visionfw.recipes.kenet import KERNEL_LOSS_PARAMS, kernel_loss

    options = {p.name: p.default for p in KERNEL_LOSS_PARAMS}
    rng = np.random.default_rng(3)
    true = (rng.random((2, 15, 15)) ** 10).astype(np.float32)
    true /= true.sum(axis=(1, 2), keepdims=True)
    est = rng.random((2, 15, 15)).astype(np.float32)
    est /= est.sum(axis=(1, 2), keepdims=True)
    assert float(kernel_loss(options, est, true)) == pytest.approx(float(attention(est, true)))
    for sigma in (0.7, 2.5):
        soft = np.stack([gaussian_filter(k.astype(np.float64), sigma, mode="constant")
                         for k in true])
        soft /= soft.sum(axis=(1, 2), keepdims=True)
        got = float(kernel_loss(dict(options, target_blur=sigma), est, true))
        assert got == pytest.approx(float(attention(est, soft.astype(np.float32))), rel=1e-5)
        # the softened target itself scores (nearly) zero, the true kernel does not
        assert float(kernel_loss(dict(options, target_blur=sigma), soft.astype(np.float32),
                                 true)) < 1e-7 < float(kernel_loss(dict(options,
                                                                        target_blur=sigma),
                                                                   true, true))


# ---------------------------------------------------------------- the network

@pytest.mark.parametrize("scale,side", [(2, 11), (4, 21)])
def test_kenet_outputs_a_kernel_at_both_sizes(scale, side):
    model = visionfw.build_model("kenet", scale=scale, **TINY_KENET)
    assert tuple(model.outputs[0].shape[1:]) == (side, side)
    rng = np.random.default_rng(scale)
    for w in model.weights:                   # far from the start: large logits
        w.assign(rng.normal(size=w.shape).astype("float32"))
    k = model.predict(rng.random((3, 24, 40, 3), np.float32), verbose=0)
    assert k.shape == (3, side, side) and k.min() >= 0
    np.testing.assert_allclose(k.sum(axis=(1, 2)), 1.0, atol=1e-5)
    d = visionfw.model_dict("kenet", scale=scale, **TINY_KENET)
    assert d["meta"]["output"] == "kernel" and d["meta"]["kernel_size"] == side
    # the paper's widths: 64 * s channels at stage s
    paper = visionfw.model_dict("kenet", scale=4)
    widths = [p["filters"] for p in paper["convo_par"]]
    assert widths == [64, 64, 64] + [64] * 3 + [128] * 3 + [192] * 3
    assert [p["units"] for p in paper["dense_par"]] == [1024, 1024, 441]


def test_kenet_refuses_an_even_kernel_size():
    with pytest.raises(Exception, match="odd size"):
        visionfw.model_dict("kenet", size=10)


def test_kenet_stage_head_reads_stages_one_to_three_independent_of_contrast():
    """pool=stages, norm=layer: the first dense layer reads the pooled features of stages 1-3
    (nf, 2 nf and 3 nf channels), each layer-normalised. With the convolutions' biases at
    zero the trunk is positively homogeneous, so the logits for an image three times as bright
    are the same; without the normalisation they are not."""
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    # bright enough that the pooled features' variance is far above the normalisation's
    # epsilon (1e-3); compared before the softmax, which a large input saturates
    x = 100.0 * rng.random((2, 24, 32, 3), np.float32)
    change = {}
    for norm in ("layer", "none"):
        model = visionfw.build_model("kenet", scale=2, pool="stages", norm=norm, **TINY_KENET)
        dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
        assert dense[0].get_weights()[0].shape[0] == 6 * TINY_KENET["nf"]
        norms = [l for l in model.layers if isinstance(l, keras.layers.LayerNormalization)]
        assert len(norms) == (3 if norm == "layer" else 0)
        zero_conv_biases(model)
        k1 = np.asarray(model(x))
        np.testing.assert_allclose(k1.sum(axis=(1, 2)), 1.0, atol=1e-5)
        logits = keras.Model(model.inputs, dense[-1].output)    # before the softmax
        a, b = np.asarray(logits(x)), np.asarray(logits(3.0 * x))
        change[norm] = np.abs(a - b).max() / np.abs(a).max()
    assert change["layer"] < 1e-3 and change["none"] > 0.1
    with pytest.raises(Exception, match="norm 'none' or 'layer'"):
        visionfw.model_dict("kenet", norm="batch")


# ---------------------------------------------------------------- protocols and the baseline

def test_aniso_protocols_use_kenets_size_and_the_same_kernels():
    from visionfw.degradation import get_protocol

    hr = np.random.default_rng(0).random((48, 48, 3)).astype(np.float32)
    for scale, side in ((2, 11), (4, 21)):
        [(_, bic)] = get_protocol("aniso", scale)
        [(_, direct)] = get_protocol("aniso-direct", scale)
        assert f"size={side}" in bic.spec and "bicubic" in bic.spec
        assert "padding=circular" in direct.spec and "direct(offset=0)" in direct.spec
        k1 = np.asarray(bic.degrade(hr, scale, seed="img")[1]["kernel"])
        k2 = np.asarray(direct.degrade(hr, scale, seed="img")[1]["kernel"])
        assert k1.shape == (side, side)
        np.testing.assert_array_equal(k1, k2)


def test_mean_training_kernel_against_numpy():
    from visionfw.degradation.metrics import mean_training_kernel

    # isotropic sigma uniform in [1, 2]: the mean by quadrature of NumPy Gaussians
    x = np.arange(11) - 5
    sig = np.linspace(1.0, 2.0, 2001)
    g = np.exp(-(x[None, :, None] ** 2 + x[None, None, :] ** 2) / (2 * sig[:, None, None] ** 2))
    g /= g.sum(axis=(1, 2), keepdims=True)
    want = g.mean(axis=0)
    got = mean_training_kernel("gaussian(sigma=1.0~2.0,size=11)+bicubic", n=20000)
    assert got.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(got, want / want.sum(), atol=1e-3)     # 4 sampling s.d.
    fixed = mean_training_kernel("gaussian(sigma=1.5,size=11)+bicubic", n=10)
    one = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(fixed, one / one.sum(), atol=1e-6)
    with pytest.raises(Exception, match="blurs nothing"):
        mean_training_kernel("bicubic")


def test_noise_zero_probability():
    import tensorflow as tf

    from visionfw.degradation import parse_degradation

    d = parse_degradation("noise(sigma=5~25,zero=0.25)")
    assert "zero=0.25" in d.spec and d.is_random
    labels = {}
    x = tf.fill([4000, 2, 2, 1], 0.5)
    y = d.ops[0].apply(x, 1, tf.constant([3, 4], tf.int64), labels)
    sigma = labels["noise_sigma"].numpy()
    assert abs((sigma == 0).mean() - 0.25) < 0.03 and sigma[sigma > 0].min() >= 5
    np.testing.assert_array_equal(y.numpy()[sigma == 0], 0.5)      # no noise at all there
    assert parse_degradation("noise(7.65)").spec == "noise(sigma=7.65,clip=true)+bicubic"
    with pytest.raises(Exception, match="zero must be <= 1"):
        parse_degradation("noise(5,zero=2)")


# ---------------------------------------------------------------- training and testing

@pytest.fixture(scope="module")
def kenet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kenet")
    images = write_images(root / "imgs", n=3, size=(64, 64))
    out = root / "run"
    r = run_cli("train.py", "kenet", "--param", "nf=4", "--param", "fc=16", "--scale", "2",
               "--train-dir", images, "--val-dir", images, "--steps", "3", "--val-every", "3",
               "--batch-size", "2", "--patch-size", "32", "--out", out)
    assert r.returncode == 0, r.stderr
    return out, images


def test_train_kenet_then_score_its_run_folder(kenet_run, tmp_path):
    out, images = kenet_run
    settings = json.loads((out / "settings.json").read_text())
    assert "size=11" in settings["settings"]["degradation"]
    rows = (out / "val.csv").read_text().splitlines()
    assert "kernel_psnr" in rows[0].split(",")
    val_kernel = float(rows[1].split(",")[rows[0].split(",").index("kernel_psnr")])
    report = tmp_path / "k.json"
    r = run_cli("test.py", "kernel-estimator", "--weights", out, "--dataset", images,
               "--degradation", "aniso", "--scale", "2", "--json", report)
    assert r.returncode == 0, r.stderr
    result = json.loads(report.read_text())["results"][0]
    assert "size=11" in result["degradation"]
    # validation and test.py make the same LR images and score the same way
    assert result["kernel_psnr"] == pytest.approx(val_kernel, abs=0.01)
    # each row carries both kernels' ellipses; the true one is the protocol's kernel's
    from visionfw.degradation import get_protocol, kernel_shape
    from visionfw.evaluate import make_lr
    from visionfw.imageio import modcrop, read_image

    deg = get_protocol("aniso", 2)[0][1]
    first = result["images"][0]
    hr = modcrop(read_image(next(Path(images).glob(first["name"] + ".*"))), 2)
    _, labels = make_lr(hr, deg, 2, first["name"])
    assert first["true_shape"] == pytest.approx(kernel_shape(labels["kernel"]), abs=1e-3)
    assert len(first["shape"]) == 3 and "orientation" in result
    assert "direction" in r.stdout
    r = run_cli("test.py", "mean-kernel", "--dataset", images, "--degradation", "aniso",
                "--scale", "2", "--json", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    mean = json.loads((tmp_path / "m.json").read_text())
    assert mean["protocol"]["training"].startswith("gaussian(sigma1=0.2~4.0")
    assert np.isfinite(mean["results"][0]["kernel_psnr"])


def test_kenet_loss_choice_and_bad_settings(tmp_path):
    images = write_images(tmp_path / "imgs", n=2, size=(48, 48))
    base = ["kenet", "--param", "nf=4", "--param", "fc=16", "--scale", "2", "--train-dir",
            images, "--steps", "1", "--batch-size", "2", "--patch-size", "32"]
    r = run_cli("train.py", *base, "--out", tmp_path / "a", "--param", "size=21")
    assert r.returncode != 0 and "estimates 21x21 kernels but the degradation draws 11x11" \
        in r.stderr and "--param size=11" in r.stderr
    assert not (tmp_path / "a").exists()
    r = run_cli("train.py", *base, "--out", tmp_path / "b", "--degradation", "bicubic")
    assert r.returncode != 0 and "blurs nothing" in r.stderr
    r = run_cli("train.py", *base, "--out", tmp_path / "c", "--recipe-param", "loss=mse")
    assert r.returncode != 0 and "expected attention or l1" in r.stderr
    r = run_cli("train.py", *base, "--out", tmp_path / "d", "--recipe-param", "target_blur=-1")
    assert r.returncode != 0 and "target_blur is a Gaussian's sigma" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().splitlines()[-1].startswith("error:")


def test_ikc_predictor_without_sftmd_fits_its_pca(tmp_path):
    images = write_images(tmp_path / "imgs", n=2, size=(48, 48))
    from visionfw.recipes.kenet import kernel_degradation

    out = tmp_path / "run"
    r = run_cli("train.py", "ikc-predictor", "--param", "nf=4", "--scale", "2", "--pca", "fit",
               "--degradation", kernel_degradation(2), "--train-dir", images, "--val-dir",
               images, "--steps", "2", "--val-every", "2", "--batch-size", "2",
               "--patch-size", "32", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "kernel_psnr" in (out / "val.csv").read_text().splitlines()[0]
    from visionfw.kernel_codes import pca_of

    model = visionfw.load_model(out / "best.weights.h5")
    pca = pca_of(model)
    assert pca.kernel_size == 11 and not pca.centred and pca.mean is not None
    r = run_cli("train.py", "ikc-predictor", "--scale", "2", "--pca", "fit", "--sftmd", "x.h5",
                "--train-dir", images, "--steps", "1", "--out", tmp_path / "bad")
    assert r.returncode != 0 and "give one of them" in r.stderr


@pytest.fixture(scope="module")
def pipeline_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    files = {}
    from visionfw.graph.builder import attach_spec, build

    x4_only = visionfw.model_dict("usrnet", **dict(TINY_USRNET, scale=4))
    x4_only["meta"]["trained_scales"] = [4]              # as train.py usrnet --scale 4 records
    usrnet_x4 = build(x4_only)
    attach_spec(usrnet_x4, x4_only, "usrnet", dict(TINY_USRNET, scale=4))
    for name, model in {"usrnet": visionfw.build_model("usrnet", **TINY_USRNET),
                        "usrnet_x4": usrnet_x4,
                        "kenet": visionfw.build_model("kenet", scale=2, **TINY_KENET),
                        "kenet_x4": visionfw.build_model("kenet", scale=4, **TINY_KENET)}.items():
        files[name] = root / f"{name}.weights.h5"
        visionfw.save_model(model, files[name])
    return files


def test_kenet_usrnet_pipeline_on_two_images(pipeline_files, tmp_path):
    from visionfw.evaluate import Dataset, evaluate, make_method

    images = write_images(tmp_path / "imgs", n=2, size=(48, 48))
    usrnet = visionfw.load_model(pipeline_files["usrnet"])
    kenet = visionfw.load_model(pipeline_files["kenet"])
    method = make_method("kenet+usrnet", {"model": usrnet, "estimator": kenet})
    report = evaluate(method, [Dataset.from_folder(images)], degradation="aniso-direct",
                      channel="rgb", save_steps=tmp_path / "steps")
    r = report["results"][0]
    assert set(r["also"]) == {"USRNet + mean kernel", "USRNet + true kernel"}
    assert np.isfinite(r["kernel_psnr"]) and r["n_images"] == 2
    # the pipeline's rows carry the ellipses too, summed up in the report
    from visionfw.degradation import orientation_summary
    from visionfw.evaluate.report import format_report

    rows = r["images"]
    assert all(len(x["shape"]) == 3 and len(x["true_shape"]) == 3 for x in rows)
    assert r["orientation"] == orientation_summary([(x["shape"], x["true_shape"])
                                                    for x in rows])
    assert "direction" in format_report(report)
    assert report["protocol"]["estimated_kernel_size"] == 11
    # the report names the blurs whose mean fills the mean-kernel row: KENet's at x2, 11x11
    assert report["protocol"]["mean_kernel_training"].startswith("gaussian(sigma1=0.2~4.0")
    assert "size=11" in report["protocol"]["mean_kernel_training"]
    # the pipeline's SR is USRNet fed the estimate; the rows are USRNet fed the others
    lr = np.random.default_rng(0).random((16, 16, 3), np.float32)
    k_est = kenet.predict(lr[None], verbose=0)[0]
    true = np.zeros((11, 11), np.float32)
    true[5, 5] = 1
    out = method(lr, None, {"kernel": true, "noise_sigma": np.float32(0)})

    def usr(k):
        return usrnet.predict([lr[None], k[None], np.float32([2]), np.float32([0])],
                              verbose=0)[0]

    np.testing.assert_allclose(out["sr"][0], usr(k_est), atol=1e-5)
    np.testing.assert_allclose(out["also"]["USRNet + true kernel"][0], usr(true), atol=1e-5)
    np.testing.assert_allclose(out["also"]["USRNet + mean kernel"][0],
                               usr(method.mean_kernel(11)), atol=1e-5)
    pictures = sorted(p.name for p in (tmp_path / "steps").rglob("*_kernels.png"))
    assert len(pictures) == 2
    # sr on images without ground truth: SR and the kernel picture beside each
    r = run_cli("-m visionfw", "sr", "--method", "kenet+usrnet", "--weights",
                f"model={pipeline_files['usrnet']}", "--weights",
                f"estimator={pipeline_files['kenet']}", "--scale", "2", "--out",
                tmp_path / "sr", images)
    assert r.returncode == 0, r.stderr
    written = sorted(p.name for p in (tmp_path / "sr").iterdir())
    assert len([n for n in written if n.endswith("_kernel.png")]) == 2
    assert len([n for n in written if n.endswith("_x2.png")]) == 2


def test_kenet_usrnet_bad_inputs(pipeline_files, tmp_path):
    images = write_images(tmp_path / "imgs", n=1, size=(48, 48))
    f = pipeline_files

    def run(*weights, scale="2", deg="aniso-direct"):
        args = ["test.py", "kenet+usrnet", "--dataset", images, "--scale", scale,
                "--degradation", deg]
        for w in weights:
            args += ["--weights", w]
        return run_cli(*args)

    r = run(f"model={f['kenet']}", f"estimator={f['kenet']}")
    assert r.returncode != 0 and "that is a kernel estimator" in r.stderr
    r = run(f"model={f['usrnet']}", f"estimator={f['usrnet']}")
    assert r.returncode != 0 and "not kernels" in r.stderr
    r = run(f"model={f['usrnet']}", f"estimator={f['kenet_x4']}")
    assert r.returncode != 0 and "is an x4 network" in r.stderr and "--scale 4" in r.stderr
    r = run(f"model={f['usrnet']}", f"estimator={f['kenet']}", deg="aniso")
    assert r.returncode != 0 and "bicubic" in r.stderr and "Traceback" not in r.stderr
    r = run(f"model={f['usrnet']}", scale="2")
    assert r.returncode != 0 and "estimator" in r.stderr
    # a restorer of another scale: an x4-only USRNet at x2
    r = run(f"model={f['usrnet_x4']}", f"estimator={f['kenet']}")
    assert r.returncode != 0 and "trained" in r.stderr and "Traceback" not in r.stderr
    # an even kernel: USRNet has no centre tap for it
    from visionfw.methods.usrnet import EstimatorUSRNetMethod

    class Even:
        outputs = [type("T", (), {"shape": (None, 10, 10)})()]

    assert EstimatorUSRNetMethod._estimate_side(Even()) == 10
    usrnet = visionfw.load_model(f["usrnet"])
    kenet = visionfw.load_model(f["kenet"])
    from visionfw.evaluate import make_method

    method = make_method("kenet+usrnet", {"model": usrnet, "estimator": kenet})
    with pytest.raises(Exception, match="no centre tap"):
        method.restore(np.zeros((16, 16, 3), np.float32), {}, np.ones((10, 10), np.float32)
                       / 100)
    assert math.isfinite(method.mean_kernel(11).sum())


def test_json_folder_is_made_before_the_run(tmp_path):
    images = write_images(tmp_path / "imgs", n=1, size=(32, 32))
    target = tmp_path / "new" / "deeper" / "m.json"
    r = run_cli("test.py", "mean-kernel", "--dataset", images, "--degradation", "aniso",
                "--scale", "2", "--json", target)
    assert r.returncode == 0, r.stderr
    assert json.loads(target.read_text())["results"][0]["n_images"] == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("test.py", "mean-kernel", "--dataset", images, "--degradation", "aniso",
                "--scale", "2", "--json", blocker / "m.json")
    assert r.returncode == 2 and "cannot write in" in r.stderr


# ---------------------------------------------------------------- the kernel ensemble

def test_orientations_turn_back_and_give_eight_different_views():
    from visionfw.inference import orient, unorient

    a = np.random.default_rng(0).random((5, 7, 3))
    turns = [(k, flip) for flip in (False, True) for k in range(4)]
    views = [orient(a, k, flip) for k, flip in turns]
    for (k, flip), v in zip(turns, views):
        np.testing.assert_array_equal(unorient(v, k, flip), a)
    assert len({v.tobytes() + bytes(v.shape) for v in views}) == 8


def test_kernel_ensemble_of_an_equivariant_estimator_is_its_estimate():
    from visionfw.methods.kernel import dihedral_kernel_mean

    def centre(lr):                     # the 5x5 centre of the gray image: turns with it
        gray = lr.mean(axis=-1)
        i, j = (gray.shape[0] - 5) // 2, (gray.shape[1] - 5) // 2
        crop = gray[i:i + 5, j:j + 5]
        return crop / crop.sum()

    lr = 0.1 + np.random.default_rng(1).random((15, 13, 3))
    np.testing.assert_allclose(dihedral_kernel_mean(centre, lr), centre(lr), atol=1e-12)


def test_kernel_ensemble_of_a_fixed_answer_is_its_mean_over_the_symmetries():
    from visionfw.methods.kernel import dihedral_kernel_mean

    k = np.random.default_rng(2).random((5, 5))
    k /= k.sum()
    # the 8 symmetries of the square, written out independently of visionfw's order
    t = k.T
    want = np.mean([k, k[::-1], k[:, ::-1], k[::-1, ::-1], t, t[::-1], t[:, ::-1],
                    t[::-1, ::-1]], axis=0)
    got = dihedral_kernel_mean(lambda lr: k, np.zeros((9, 11, 3)))
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert abs(got.sum() - 1) < 1e-12


def test_kenet_usrnet_ensemble_feeds_usrnet_the_mean_of_turned_back_estimates(pipeline_files):
    from visionfw.evaluate import EvaluationError, make_method

    usrnet = visionfw.load_model(pipeline_files["usrnet"])
    kenet = visionfw.load_model(pipeline_files["kenet"])
    lr = np.random.default_rng(3).random((16, 20, 3)).astype(np.float32)
    plain = make_method("kenet+usrnet", {"model": usrnet, "estimator": kenet})
    method = make_method("kenet+usrnet", {"model": usrnet, "estimator": kenet}, ensemble=True)
    assert method.protocol()["kernel_ensemble"] and not plain.protocol()["kernel_ensemble"]
    got = method(lr, None, {})
    views = [lr, np.rot90(lr, 1), np.rot90(lr, 2), np.rot90(lr, 3)]
    views += [v[:, ::-1] for v in views]
    ks = [kenet.predict(np.ascontiguousarray(v)[None], verbose=0)[0].astype(np.float64)
          for v in views]
    back = [np.rot90(k[:, ::-1] if t >= 4 else k, -(t % 4)) for t, k in enumerate(ks)]
    want = np.mean(back, axis=0)
    np.testing.assert_allclose(got["kernel"], want / want.sum(), atol=1e-6)
    assert not np.allclose(got["kernel"], plain(lr, None, {})["kernel"], atol=1e-6)
    sr = usrnet.predict([lr[None], got["kernel"][None], np.float32([2]), np.float32([0])],
                        verbose=0)[0]
    np.testing.assert_allclose(got["sr"][0], sr, atol=1e-4)
    estimator = make_method("kernel-estimator", {"model": kenet}, ensemble=True)
    np.testing.assert_allclose(estimator(lr, None, {})["kernel"], got["kernel"], atol=1e-6)
    with pytest.raises(EvaluationError, match="an estimator of the LR image alone"):
        make_method("dan+usrnet", {"model": usrnet,
                                   "estimator": visionfw.build_model(
                                       "dan-kernel-estimator", nf=4, nb=1, size=5, scale=2)},
                    ensemble=True)


# ---------------------------------------------------------------- the kernel's temperature

def gaussian_by_hand(side, cov):
    """A centred anisotropic Gaussian on a side x side grid from its covariance, summing one."""
    r = np.arange(side) - side // 2
    y, x = np.meshgrid(r, r, indexing="ij")
    p = np.stack([x.ravel(), y.ravel()])
    inv = np.linalg.inv(cov)
    k = np.exp(-0.5 * np.einsum("in,ij,jn->n", p, inv, p)).reshape(side, side)
    return k / k.sum()


def test_temperature_scales_a_gaussians_covariance_and_is_a_softmax_temperature():
    from visionfw.methods.kernel import temper

    cov = np.array([[4.0, 1.5], [1.5, 1.2]])
    for t in (0.5, 0.8, 1.7):
        np.testing.assert_allclose(temper(gaussian_by_hand(21, cov), t),
                                   gaussian_by_hand(21, t * cov), atol=1e-12)
    logits = np.random.default_rng(4).normal(size=(5, 5)) * 3
    soft = np.exp(logits) / np.exp(logits).sum()
    sharper = np.exp(logits / 0.6) / np.exp(logits / 0.6).sum()
    np.testing.assert_allclose(temper(soft, 0.6), sharper, atol=1e-12)
    k = soft.astype(np.float32)
    assert temper(k, 1.0) is not k and np.array_equal(temper(k, 1.0), k)   # as it is
    # a peak far below float64's tiny: scaled before the power, not lost
    tiny = soft * 1e-300
    np.testing.assert_allclose(temper(tiny, 0.1), temper(soft, 0.1), rtol=1e-9)


def test_kenet_usrnet_temperature_feeds_usrnet_the_tempered_estimate_and_mean(pipeline_files,
                                                                             tmp_path):
    from visionfw.evaluate import EvaluationError, make_method

    usrnet = visionfw.load_model(pipeline_files["usrnet"])
    kenet = visionfw.load_model(pipeline_files["kenet"])
    lr = np.random.default_rng(5).random((16, 16, 3)).astype(np.float32)
    true = np.zeros((11, 11), np.float32)
    true[5, 5] = 1
    labels = {"kernel": true, "noise_sigma": np.float32(0)}
    plain = make_method("kenet+usrnet", {"model": usrnet, "estimator": kenet})
    method = make_method("kenet+usrnet", {"model": usrnet, "estimator": kenet},
                         temperature=0.5, mean_temperature=0.7)
    got, base = method(lr, None, labels), plain(lr, None, labels)
    est = base["kernel"].astype(np.float64)
    want = est ** 2 / (est ** 2).sum()
    np.testing.assert_allclose(got["kernel"], want, atol=1e-6)
    mean = plain.mean_kernel(11).astype(np.float64) ** (1 / 0.7)
    np.testing.assert_allclose(method.mean_kernel(11), mean / mean.sum(), atol=1e-6)

    def usr(k):
        return usrnet.predict([lr[None], k[None], np.float32([2]), np.float32([0])],
                              verbose=0)[0]

    np.testing.assert_allclose(got["sr"][0], usr(got["kernel"]), atol=1e-5)
    np.testing.assert_allclose(got["also"]["USRNet + mean kernel"][0],
                               usr(method.mean_kernel(11)), atol=1e-5)
    # the true-kernel row is never tempered
    np.testing.assert_allclose(got["also"]["USRNet + true kernel"][0],
                               base["also"]["USRNet + true kernel"][0], atol=1e-6)
    p = method.protocol()
    assert p["kernel_temperature"] == 0.5 and p["mean_kernel_temperature"] == 0.7
    # kernel-estimator and mean-kernel take the same parameter and agree
    estimator = make_method("kernel-estimator", {"model": kenet}, temperature=0.5)
    np.testing.assert_allclose(estimator(lr, None, {})["kernel"], got["kernel"], atol=1e-6)
    assert estimator.protocol()["kernel_temperature"] == 0.5
    mean_method = make_method("mean-kernel", {}, scale=2, temperature=0.7)
    np.testing.assert_allclose(mean_method(lr, None, {})["kernel"], method.mean_kernel(11),
                               atol=1e-6)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(EvaluationError, match="a temperature is a number above 0"):
            make_method("kenet+usrnet", {"model": usrnet, "estimator": kenet}, temperature=bad)
    images = write_images(tmp_path / "imgs", n=1, size=(32, 32))
    r = run_cli("test.py", "kenet+usrnet", "--dataset", images, "--scale", "2",
                "--degradation", "aniso-direct", "--weights", f"model={pipeline_files['usrnet']}",
                "--weights", f"estimator={pipeline_files['kenet']}", "--method-param",
                "temperature=0")
    assert r.returncode != 0 and "a temperature is a number above 0" in r.stderr
    assert "Traceback" not in r.stderr
