"""IKC's SFT layer (against numpy) and the SFTMD network, at tiny sizes."""
import numpy as np
import pytest

import visionfw
from visionfw.layers import SFT
from visionfw.errors import HyperparameterError

TINY = {"nb": 2, "nf": 8, "code_len": 10}


def conv2d_same(x, kernel, bias):
    """Stride-1 'same' cross-correlation, NHWC input, HWIO kernel with odd sizes."""
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1:3]
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[3],))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i:i + h, j:j + w, :] @ kernel[i, j]
    return out + bias


def sft_reference(features, maps, weights, slope):
    def branch(prefix):
        k1, b1, k2, b2 = (weights[f"{prefix}_conv{n}/{v}"] for n in (1, 2) for v in ("kernel", "bias"))
        y = conv2d_same(z, k1, b1)
        return conv2d_same(np.where(y > 0, y, slope * y), k2, b2)

    z = np.concatenate([features, maps], axis=-1)          # features first
    return features / (1 + np.exp(-branch("mul"))) + branch("add")


def test_sft_matches_numpy_reference():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 7, 9, 5)).astype("float32")
    maps = rng.normal(size=(2, 7, 9, 3)).astype("float32")
    layer = SFT(hidden=4, negative_slope=0.2, name="sft")
    layer([features, maps])
    for w in layer.weights:                                 # biases away from zero too
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.3)
    weights = {w.path.split("/", 1)[1]: w.numpy().astype(np.float64) for w in layer.weights}
    assert sorted(weights) == sorted(f"{b}_conv{n}/{v}" for b in ("mul", "add")
                                     for n in (1, 2) for v in ("kernel", "bias"))
    got = np.asarray(layer([features, maps]))
    want = sft_reference(features.astype(np.float64), maps.astype(np.float64), weights, 0.2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert SFT.from_config(layer.get_config()).get_config() == layer.get_config()


def inputs(code_len=10, n=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((n, size, size, 3), dtype=np.float32),
            rng.random((n, code_len), dtype=np.float32)]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_is_scale_times_input(scale):
    model = visionfw.build_model("sftmd", scale=scale, compile=False, **TINY)
    assert model.predict(inputs(), verbose=0).shape == (2, 16 * scale, 16 * scale, 3)


def test_code_changes_output_and_noise_takes_a_longer_code():
    model = visionfw.build_model("sftmd", scale=2, compile=False, **TINY)
    lr, code = inputs()
    a = model.predict([lr, code], verbose=0)
    b = model.predict([lr, code[::-1]], verbose=0)
    assert not np.allclose(a, b)
    noisy = visionfw.build_model("sftmd", scale=2, noise=True, compile=False, **TINY)
    assert tuple(noisy.inputs[1].shape) == (None, 11)
    assert noisy.predict(inputs(code_len=11), verbose=0).shape == (2, 32, 32, 3)


def test_save_load_round_trip(tmp_path):
    model = visionfw.build_model("sftmd", scale=3, **TINY)
    rng = np.random.default_rng(1)
    for w in model.weights:
        w.assign(w.numpy() + rng.normal(size=w.shape).astype("float32") * 0.05)
    path = visionfw.save_model(model, tmp_path / "sftmd.weights.h5")
    again = visionfw.load_model(path)
    x = inputs()
    np.testing.assert_array_equal(model.predict(x, verbose=0), again.predict(x, verbose=0))


def test_default_parameter_count_matches_official_architecture():
    # conv(i -> o, k) has k*k*i*o + o parameters. With nf=64, code_len t=10:
    #   SFT: 2 branches x [conv(64+10 -> 32, 3) + conv(32 -> 64, 3)] = 2 x (21344 + 18496) = 79680
    #   residual block: 2 SFT + 2 conv(64 -> 64, 3) = 2 x 79680 + 2 x 36928           = 233216
    #   head: conv(3 -> 64, 3) + 2 conv(64 -> 64, 3) = 1792 + 2 x 36928                =  75648
    #   16 blocks                                                                       = 3731456
    #   SFT + conv_mid(64 -> 64, 3) after the long skip = 79680 + 36928                 = 116608
    #   x4 up-sampling: 2 x conv(64 -> 256, 3) = 2 x 147712                             = 295424
    #   tail conv(64 -> 3, 9) = 81*64*3 + 3                                             =  15555
    # The official PyTorch module also holds an unused `sft_branch` (16 more blocks), which its
    # parameter count would include; it never runs and is not part of the network.
    expected = 75648 + 16 * 233216 + 116608 + 295424 + 15555
    assert expected == 4234691
    assert visionfw.build_model("sftmd", compile=False).count_params() == expected


@pytest.mark.parametrize("hp", [{"nb": 0}, {"nf": 0}, {"code_len": 0}, {"channels": 0},
                                {"scale": 1}, {"scale": 5}, {"scale": 8}])
def test_bad_hyperparameters(hp):
    with pytest.raises(HyperparameterError, match="^sftmd needs") as info:
        visionfw.model_dict("sftmd", **hp)
    assert "\n" not in str(info.value)


def test_sftmd_recipe_trains_on_true_codes_and_carries_its_pca(tmp_path):
    from tests.train_utils import make_trainer, tiny_config, write_images
    from visionfw.degradation import fit_pca, gaussian_kernel
    from visionfw.evaluate import make_method
    from visionfw.kernel_codes import pca_of

    images = write_images(tmp_path / "imgs", n=2, size=(48, 48))
    config = tiny_config(tmp_path / "run", images, model="sftmd",
                         hparams={"nb": "1", "nf": "8", "code_len": "4"}, scale=2, steps=2,
                         patch_size=32, degradation="gaussian(sigma=0.5~3)+bicubic")
    trainer = make_trainer(config)
    assert trainer.recipe.name == "sftmd"
    before = [np.array(v) for v in trainer.recipe.main_network().trainable_variables]
    trainer.fit()
    after = trainer.recipe.main_network().trainable_variables
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, after))
    model = visionfw.load_model(tmp_path / "run" / "last.weights.h5")
    pca = pca_of(model)
    expected = fit_pca(n_components=4, keep_mean=False, seed=0)
    np.testing.assert_allclose(pca.matrix, expected.matrix, atol=1e-9)
    # test.py's nonblind method encodes the true kernel with that PCA
    method = make_method("nonblind", {"model": model})
    k = gaussian_kernel(21, 1.7)
    np.testing.assert_allclose(method._code(k, 0.0), k.reshape(-1) @ expected.matrix,
                               rtol=1e-5, atol=1e-7)
    lr = np.random.default_rng(0).random((10, 12, 3), np.float32)
    sr = method(lr, None, {"kernel": k})["sr"][0]
    code = (k.reshape(-1) @ expected.matrix).astype(np.float32)[None]
    np.testing.assert_allclose(sr, np.asarray(model([lr[None], code]))[0], atol=1e-5)


def test_ikc_recipes_default_to_the_papers_training_blurs(tmp_path):
    from tests.train_utils import tiny_config
    from visionfw.degradation import parse_degradation
    from visionfw.train.run import apply_recipe_degradation

    for model, scale, top in (("sftmd", 2, 2), ("sftmd", 3, 3), ("sftmd", 4, 4),
                              ("ikc", 4, 4), ("ikc-predictor", 2, 2)):
        config = tiny_config(tmp_path, tmp_path, model=model, scale=scale, hparams={},
                             degradation="bicubic")
        spec = apply_recipe_degradation(config)
        assert spec == f"gaussian(sigma=0.2~{top},size=21)+bicubic", (model, scale)
        blur = parse_degradation(spec).blur_op
        assert blur.args["size"] == 21 and blur.args["sigma"].high == top
    given = tiny_config(tmp_path, tmp_path, model="sftmd", scale=4, hparams={},
                        degradation="gaussian(sigma=1)+bicubic")
    assert apply_recipe_degradation(given) == "gaussian(sigma=1)+bicubic"
    bicubic = tiny_config(tmp_path, tmp_path, model="sftmd", scale=4, hparams={},
                          degradation="bicubic")
    assert apply_recipe_degradation(bicubic, explicit={"degradation"}) == "bicubic"
    plain = tiny_config(tmp_path, tmp_path, model="vdsr", scale=2, hparams={},
                        degradation="bicubic")
    assert apply_recipe_degradation(plain) == "bicubic"
