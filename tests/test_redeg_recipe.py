"""ReDegNet's training at tiny sizes (nf 8, omega 16, 32x32 patches, batch 2): the losses by
hand, the shared synthetic chain, one step of each optimiser and what each update reaches,
bit-exact resume, train.py redegnet and redegnet-sr, load_redeg, and one-line errors."""
import json
import os
import re

import numpy as np
import pytest

import visionfw
from tests.train_utils import (assert_same_state, event_tags, make_trainer, resume_from_copy,
                               run_cli, tiny_config, write_images, write_pairs)

SYN = {"omega": 16, "nf": 8, "mapping": 2, "levels": 3, "w_dim": 16}
SYN_ARGS = [a for k, v in SYN.items() for a in ("--param", f"{k}={v}")]
NETS = {"deg_nf": 8, "d_nf": 8}
CHEAP = "noise(5)"                 # a chain that traces fast, for the step tests
THREADS = {"VISIONFW_THREADS": "1"}


# ---------------------------------------------------------------- the losses by hand

def test_gram_matrix_by_hand():
    from visionfw.losses import gram_matrix

    # one image, 2 x 1 pixels, 2 channels: F = [[1, 2], [3, 4]] (rows are pixels)
    f = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]], np.float32)
    # F^T F = [[1+9, 2+12], [2+12, 4+16]], divided by C H W = 4
    np.testing.assert_allclose(np.asarray(gram_matrix(f)), [[[2.5, 3.5], [3.5, 5.0]]])


def test_perceptual_and_style_by_hand():
    from visionfw.losses import perceptual, style

    a = [np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]], np.float32), np.ones((1, 1, 1, 1), np.float32)]
    b = [np.zeros_like(a[0]), np.full((1, 1, 1, 1), 3.0, np.float32)]
    # layer 1: mean |a - b| = 2.5; layer 2: 2; weighted 2 and 0.5
    assert float(perceptual(a, b, (2.0, 0.5))) == pytest.approx(2 * 2.5 + 0.5 * 2)
    # Grams: layer 1 mean of [[2.5, 3.5], [3.5, 5]] = 3.625 (b's is 0); layer 2 |1 - 9| = 8
    assert float(style(a, b, (2.0, 0.5))) == pytest.approx(2 * 3.625 + 0.5 * 8)
    with pytest.raises(ValueError, match="2 layer weights for 1 feature maps"):
        perceptual(a[:1], b[:1], (1.0, 1.0))


def test_hinge_losses_by_hand():
    from visionfw.losses import hinge_discriminator, hinge_generator

    real = np.array([[0.5], [2.0]], np.float32)
    fake = np.array([[-2.0], [0.5]], np.float32)
    # relu(1 - real) = 0.5, 0 -> 0.25; relu(1 + fake) = 0, 1.5 -> 0.75
    assert float(hinge_discriminator(real, fake)) == pytest.approx(1.0)
    assert float(hinge_generator(fake)) == pytest.approx(0.75)


def test_consistency_and_disentanglement_by_hand():
    from visionfw.losses import degradation_consistency, disentanglement

    a = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
    b = np.array([[0.0, 4.0], [0.0, 3.0]], np.float32)
    assert float(degradation_consistency(a, b)) == pytest.approx(1.5)     # (1 + 2 + 0 + 3) / 4
    assert float(disentanglement(a, b, 0.4, 1e-8)) == pytest.approx(0.4 / 1.5)
    assert float(disentanglement(a, a, 0.4, 0.5)) == pytest.approx(0.8)      # eps keeps it finite


def test_batch_contrast_by_hand():
    from visionfw.losses import batch_contrast

    a = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)          # centred already
    # twins aligned: cos 1 on the diagonal, -1 off it -> log(1 + e^-2) per row and direction
    assert float(batch_contrast(a, 3 * a, 1.0)) == pytest.approx(np.log1p(np.exp(-2.0)))
    # twins swapped: the diagonal is the far one -> log(1 + e^2)
    assert float(batch_contrast(a, a[::-1], 1.0)) == pytest.approx(np.log1p(np.exp(2.0)))
    # a vector shared by every row changes nothing: it is taken out first
    assert float(batch_contrast(a + 5, 3 * a + 5, 1.0)) == pytest.approx(np.log1p(np.exp(-2.0)))
    # a numpy reference on a random batch, both directions averaged
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    centre = np.concatenate([x, y]).mean(0)
    u, v = x - centre, y - centre
    cos = (u / np.linalg.norm(u, axis=1, keepdims=True)) @ \
        (v / np.linalg.norm(v, axis=1, keepdims=True)).T / 0.1

    def ce(m):
        return np.mean(np.log(np.exp(m).sum(1)) - np.diag(m))
    assert float(batch_contrast(x.astype(np.float32), y.astype(np.float32), 0.1)) == \
        pytest.approx(0.5 * (ce(cos) + ce(cos.T)), rel=1e-5)


# ---------------------------------------------------------------- the synthetic chain

def test_chain_is_one_degradation_on_two_contents():
    import tensorflow as tf

    from visionfw.recipes.redeg import RandomChain

    rng = np.random.default_rng(0)
    a = tf.constant(0.3 + 0.4 * rng.random((2, 32, 32, 3)), tf.float32)
    b = tf.constant(0.3 + 0.4 * rng.random((2, 32, 32, 3)), tf.float32)
    seeds = tf.constant([[1, 2], [3, 4]], tf.int64)
    noise = RandomChain("noise(5~20)")
    ya, yb = noise(a, b, seeds)
    # the same noise on both contents (no clipping at these values), another per item
    np.testing.assert_allclose(ya - a, yb - b, atol=1e-6)
    assert not np.allclose((ya - a)[0], (ya - a)[1], atol=1e-3)
    # the same content gives the same image under the default chain, in random order
    chain = RandomChain(visionfw.recipes.redeg.DEFAULT_CHAIN)
    ya, yb = chain(a, a, seeds)
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    assert ya.shape == a.shape and float(tf.reduce_min(ya)) >= 0 and float(tf.reduce_max(ya)) <= 1
    again, _ = chain(a, a, seeds)
    np.testing.assert_array_equal(ya.numpy(), again.numpy())
    other, _ = chain(a, a, seeds + 7)
    assert not np.allclose(ya.numpy(), other.numpy(), atol=1e-3)
    # probability 0: nothing happens; resize: bicubic down by the factor, then back up
    np.testing.assert_array_equal(RandomChain("0*noise(50)")(a, b, seeds)[0].numpy(), a.numpy())
    from visionfw.resize import imresize

    down = RandomChain("resize(2)", order="fixed")(a, b, seeds)[0]
    want = np.clip(imresize(imresize(a, output_shape=(16, 16)), output_shape=(32, 32)), 0, 1)
    np.testing.assert_allclose(down.numpy(), np.asarray(want), atol=1e-5)


@pytest.mark.parametrize("chain,match", [("gaussian(sigma=1)+bicubic", "write resize(LOW~HIGH)"),
                                         ("1.5*noise(5)", "is not in [0, 1]"),
                                         ("noise(5)+blurry(3)", "unknown degradation op"),
                                         ("resize(4~2)", "factors must be >= 1, low first")])
def test_bad_chain_is_one_line(chain, match):
    from visionfw.recipes.redeg import RandomChain
    from visionfw.train import TrainError

    with pytest.raises(TrainError, match=re.escape(match)):
        RandomChain(chain)


def test_feature_network_from_a_keras_file(tmp_path):
    import keras

    from visionfw.recipes.redeg import layer_weights, load_features, random_features
    from visionfw.train import TrainError

    net = random_features()
    assert len(net.outputs) == 5 and not net.trainable_weights
    x = np.random.default_rng(1).random((1, 32, 32, 3)).astype(np.float32)
    # fixed and seeded: a second build has the same weights, whatever the global seed
    keras.utils.set_random_seed(99)
    for u, v in zip(net.get_weights(), random_features().get_weights()):
        np.testing.assert_array_equal(u, v)
    assert layer_weights("", 5) == (2.0, 1.2, 0.6, 0.2, 0.1) and layer_weights("", 2) == (1, 1)
    inp = keras.Input((None, None, 3))
    mine = keras.Model(inp, [keras.layers.Conv2D(4, 3, name="c")(inp)])
    mine.save(tmp_path / "f.keras")
    loaded = load_features(str(tmp_path / "f.keras"))
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(mine(x)), atol=1e-6)
    with pytest.raises(TrainError, match="2 weights for a feature network of 1 outputs"):
        layer_weights("1,2", 1)


# ---------------------------------------------------------------- the recipe

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """HR images, and pairs whose LQ is half the HQ's size (img0, img1)."""
    root = tmp_path_factory.mktemp("redeg-data")
    return write_images(root / "hr", n=2, size=(48, 48)), write_pairs(root / "pairs")


def redeg_config(out, data, **extra):
    hr, pairs = data
    params = dict(NETS, chain=CHEAP, **extra.pop("recipe_params", {}))
    settings = dict(model="redeg-synnet", recipe="redegnet", scale=2, hparams=dict(SYN),
                    steps=4, batch_size=2, patch_size=32, pair_dirs=[pairs],
                    recipe_params=params)
    return tiny_config(out, hr, **dict(settings, **extra))


class RecordingServices:
    """A stand-in for the trainer's ``opt``: each ``minimize`` records which networks its loss
    reaches (a gradient that is not None), and updates nothing."""

    def __init__(self, recipe, seed=0):
        import tensorflow as tf

        self.recipe, self.rng, self.reached = recipe, tf.random.Generator.from_seed(seed), {}

    def minimize(self, name, loss_fn):
        import tensorflow as tf

        nets = self.recipe.networks
        with tf.GradientTape(persistent=True) as tape:
            out = loss_fn()
            loss = out[0] if isinstance(out, tuple) else out
        self.reached[name] = {n for n, net in nets.items()
                              if any(g is not None for g in
                                     tape.gradient(loss, net.trainable_variables))}
        return out


def test_each_update_reaches_only_its_networks(tmp_path, data):
    import tensorflow as tf

    trainer = make_trainer(redeg_config(tmp_path / "g", data, steps=1,
                                        recipe_params={"swap": 1.0}))
    recipe = trainer.recipe
    rng = np.random.default_rng(0)
    batch = {"hr": rng.random((2, 32, 32, 3)), "hq": rng.random((2, 32, 32, 3)),
             "lq": rng.random((2, 16, 16, 3))}
    opt = RecordingServices(recipe)
    out = recipe.train_step({k: tf.constant(v, tf.float32) for k, v in batch.items()}, opt)
    # the discriminator's update sees the reconstruction and Omega detached: SynNet and
    # DegNet get nothing from it; the generator's loss reaches all three (its optimiser
    # applies to DegNet and SynNet only)
    assert opt.reached == {"redeg": {"degnet", "synnet", "discriminator"},
                           "discriminator": {"discriminator"}}
    assert set(out) >= {"pixel", "perceptual", "style", "consistency", "disentangle",
                        "adversarial", "contrast", "discriminator_loss", "loss"}
    assert all(np.isfinite(float(v)) for v in out.values())


def test_the_omega_swap_reconstructs_with_the_other_pairs_omega(tmp_path, data, monkeypatch):
    import tensorflow as tf

    trainer = make_trainer(redeg_config(tmp_path / "s", data, steps=1))
    recipe = trainer.recipe
    rng = np.random.default_rng(1)
    batch = {k: tf.constant(rng.random(s), tf.float32) for k, s in
             (("hr", (2, 32, 32, 3)), ("hq", (2, 32, 32, 3)), ("lq", (2, 16, 16, 3)))}
    degnet, synnet = recipe.networks["degnet"], recipe.networks["synnet"]

    class Spy:
        def __init__(self, net, log):
            self.net, self.log = net, log
            self.trainable_variables = net.trainable_variables

        def __call__(self, inputs, training=False):
            out = self.net(inputs, training=training)
            self.log.append((inputs, out))
            return out

    read, made = [], []
    monkeypatch.setitem(recipe.networks, "degnet", Spy(degnet, read))
    monkeypatch.setitem(recipe.networks, "synnet", Spy(synnet, made))
    for swap, expect in ((1.0, (0, 2, 1)), (0.0, (0, 1, 2))):
        read.clear(), made.clear()
        recipe.options["swap"] = swap
        recipe.train_step(batch, RecordingServices(recipe))
        # DegNet reads real, syn_a (of hq), syn_b (of hr); SynNet makes real, a, b with ...
        omegas = [np.asarray(o) for _, o in read[:3]]
        used = [np.asarray(inputs[1]) for inputs, _ in made[:3]]
        for u, e in zip(used, expect):
            np.testing.assert_array_equal(u, omegas[e])


def test_each_optimizer_updates_its_networks_and_resume_is_bit_exact(tmp_path, data):
    straight = make_trainer(redeg_config(tmp_path / "a", data, save_every=2))
    recipe = straight.recipe
    assert set(recipe.optimizers) == {"redeg", "discriminator"}
    assert recipe.features.name == "redeg_features" and len(recipe.layer_weights) == 5
    before = {n: [np.array(v) for v in net.trainable_weights]
              for n, net in recipe.networks.items()}
    features = [np.array(w) for w in recipe.features.weights]
    assert straight.fit()["step"] == 4
    assert {k: int(o.iterations.numpy()) for k, o in recipe.optimizers.items()} == \
        {"redeg": 4, "discriminator": 4}
    for name, net in recipe.networks.items():
        assert any(not np.array_equal(a, np.asarray(b))
                   for a, b in zip(before[name], net.trainable_weights)), name
    for a, b in zip(features, recipe.features.weights):     # the feature network is frozen
        np.testing.assert_array_equal(a, np.asarray(b))
    second = resume_from_copy(tmp_path / "a", redeg_config(tmp_path / "b", data), 2)
    assert second.fit(resume=True)["step"] == 4
    assert_same_state(straight, second)
    assert int(second.recipe.optimizers["discriminator"].iterations.numpy()) == 4


# ---------------------------------------------------------------- the commands

@pytest.fixture(scope="module")
def redeg_run(tmp_path_factory, data):
    hr, pairs = data
    out = tmp_path_factory.mktemp("redeg") / "run"
    r = run_cli("train.py", "redegnet", *SYN_ARGS, "--deg-nf", "8", "--d-nf", "8",
               "--scale", "2", "--train-dir", hr, "--pair-dir", pairs, "--val-dir", hr,
               "--steps", "1", "--batch-size", "2", "--patch-size", "32", "--val-every", "1",
               "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_train_redegnet_writes_its_networks_and_losses(redeg_run):
    settings = json.loads((redeg_run / "settings.json").read_text())
    params = settings["recipe"]["params"]
    assert settings["recipe"]["name"] == "redegnet" and params["features"] == "random"
    assert params["chain"] == visionfw.recipes.redeg.DEFAULT_CHAIN and params["swap"] == 0.8
    for name in ("best.weights.h5", "best.degnet.weights.h5", "best.discriminator.weights.h5",
                 "last.weights.h5", "last.degnet.weights.h5"):
        assert (redeg_run / name).is_file(), name
    tags = event_tags(redeg_run)
    for loss in ("pixel", "perceptual", "style", "consistency", "disentangle", "adversarial",
                 "contrast", "discriminator_loss"):
        assert f"train/{loss}" in tags, loss
    assert (redeg_run / "train.csv").read_text().splitlines()[0].startswith("step,loss")


def test_redegnet_validation_scores_the_synthesis_of_each_pair(redeg_run, data):
    """val.csv's synthesis_psnr against the same measure made again outside the graph: the
    run's validated networks (best = the step-1 validation's), Omega of the centre square of
    each validation pair (redeg evaluate's omega_of_pair with one crop), SynNet's LQ brought
    down by bicubic, scored on 8 bits with 2 border pixels cropped."""
    import csv

    from visionfw.evaluate.redeg import down_by, omega_of_pair, rgb_psnr, synthesise
    from visionfw.imageio import list_images, read_image
    from visionfw.metrics import to_uint8
    from visionfw.resize import imresize

    hr_dir, _ = data
    with open(redeg_run / "val.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "synthesis_psnr" in rows[0] and len(rows) == 1
    logged = float(rows[0]["synthesis_psnr"])
    degnet = visionfw.load_model(redeg_run / "best.degnet.weights.h5")
    synnet = visionfw.load_model(redeg_run / "best.weights.h5")
    scores = []
    for path in list_images(hr_dir):
        hr = read_image(path).astype(np.float32) / 255.0          # 48x48: a multiple of 2
        lr = to_uint8(np.asarray(imresize(hr, scale=0.5)))        # the bicubic protocol's LR
        omega = omega_of_pair(degnet, lr.astype(np.float32) / 255.0, hr, crops=1)
        fake = down_by(synthesise(synnet, hr, omega), 2, lr.shape)
        scores.append(rgb_psnr(fake, lr, 2))
    # an untrained SynNet is far from the LR (about 8 dB): the two must agree, to 0.02 dB
    assert np.isfinite(logged) and logged == pytest.approx(np.mean(scores), abs=0.02), scores


def test_load_redeg(redeg_run, tmp_path):
    from visionfw.errors import CheckpointError
    from visionfw.recipes.redeg import load_redeg
    from visionfw.train import TrainError
    from visionfw.train.config import write_json

    degnet, synnet = load_redeg(redeg_run)
    assert [i.shape[-1] for i in synnet.inputs] == [3, 16]
    given = visionfw.load_model(redeg_run / "last.degnet.weights.h5").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(given, degnet.get_weights()))
    d2, s2 = load_redeg(redeg_run / "best.degnet.weights.h5")      # a checkpoint of the run
    assert d2.name == degnet.name and s2.name == synnet.name
    with pytest.raises(TrainError, match="no such run folder or checkpoint"):
        load_redeg(tmp_path / "nothing")
    other = tmp_path / "other"
    other.mkdir()
    write_json(str(other / "settings.json"), {"recipe": {"name": "sr"}})
    with pytest.raises(TrainError, match="not a run of train.py redegnet"):
        load_redeg(other)
    # networks of the wrong kind beside each other
    visionfw.save_model(visionfw.build_model("srresnet", B=1, filters=8),
                        str(tmp_path / "x.weights.h5"))
    visionfw.save_model(degnet, str(tmp_path / "x.degnet.weights.h5"))
    with pytest.raises(CheckpointError, match="holds srresnet, not redeg-synnet"):
        load_redeg(tmp_path / "x.weights.h5")


def test_init_weights_of_a_run_starts_the_networks_saved_beside_it(redeg_run, data, tmp_path):
    """--init-weights RUN/NAME.weights.h5 starts SynNet from it, DegNet from the
    NAME.degnet file beside it; the discriminator, whose file is not there, starts fresh."""
    import shutil

    from visionfw.train.config import prepare_run_folder
    from visionfw.train.run import build_trainer, resolve_model_and_scale

    given = tmp_path / "given"
    given.mkdir()
    for name in ("last.weights.h5", "last.degnet.weights.h5"):
        shutil.copy(redeg_run / name, given / name)
    config = redeg_config(tmp_path / "next", data, init_weights=str(given / "last.weights.h5"))
    lines = []
    prepare_run_folder(config.out, False)
    trainer = build_trainer(config, resolve_model_and_scale(config), log=lines.append,
                            progress=False)
    nets = trainer.recipe.networks
    for net, name in (("synnet", "last.weights.h5"), ("degnet", "last.degnet.weights.h5")):
        file_weights = visionfw.load_model(given / name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(file_weights, nets[net].get_weights()))
        assert any(line.startswith(f"--init-weights {given / name}: ") for line in lines), net
    on_file = visionfw.load_model(redeg_run / "last.discriminator.weights.h5").get_weights()
    assert not all(np.array_equal(a, b)
                   for a, b in zip(on_file, nets["discriminator"].get_weights()))
    assert "--init-weights: no discriminator file beside last.weights.h5; it starts from " \
           "random weights" in lines


def test_redegnet_sr_from_a_run_then_test(redeg_run, data, tmp_path):
    hr, pairs = data
    out = tmp_path / "sr-run"
    r = run_cli("train.py", "redegnet-sr", "--param", "B=1", "--param", "filters=8",
               "--scale", "2", "--redeg", redeg_run, "--pairs", pairs, "--train-dir", hr,
               "--val-dir", hr, "--steps", "1", "--batch-size", "2", "--patch-size", "32",
               "--val-every", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    given = visionfw.load_model(redeg_run / "last.weights.h5").get_weights()
    kept = visionfw.load_model(out / "last.synnet.weights.h5").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(given, kept))
    assert "sr_loss" in " ".join(event_tags(out))
    # the SR network is an ordinary model: test.py takes the run folder
    r = run_cli("test.py", "--weights", out, "--dataset", hr, "--scale", "2")
    assert r.returncode == 0, r.stderr
    # a second stage from this one's SR weights keeps the frozen SynNet of its own --redeg,
    # not the copy saved beside the weights it starts from
    import shutil

    other = tmp_path / "other-redeg"
    shutil.copytree(redeg_run, other)
    synnet = visionfw.load_model(other / "last.weights.h5")
    synnet.set_weights([w + 0.01 for w in synnet.get_weights()])
    visionfw.save_model(synnet, other / "last.weights.h5")
    again = tmp_path / "sr-again"
    r = run_cli("train.py", "redegnet-sr", "--param", "B=1", "--param", "filters=8",
               "--scale", "2", "--redeg", other, "--pairs", pairs, "--train-dir", hr,
               "--steps", "1", "--batch-size", "2", "--patch-size", "32",
               "--init-weights", out / "last.weights.h5", "--out", again)
    assert r.returncode == 0, r.stderr
    kept = visionfw.load_model(again / "last.synnet.weights.h5").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(synnet.get_weights(), kept))


def test_redegnet_sr_degrades_with_the_bank(redeg_run, data, tmp_path):
    from visionfw.recipes.redeg import omega_bank

    hr, pairs = data
    config = tiny_config(tmp_path / "b", hr, model="srresnet", recipe="redegnet-sr", scale=2,
                         hparams={"B": 1, "filters": 8}, steps=1, batch_size=2, patch_size=32,
                         recipe_params={"redeg": str(redeg_run), "pairs": pairs, "tiles": 3})
    recipe = make_trainer(config).recipe
    # two 64 x 64 pairs, DegNet reads 32 x 32: 4 tiles each, 3 kept
    assert recipe.bank.shape == (6, 16)
    np.testing.assert_array_equal(recipe.bank.numpy(),
                                  omega_bank(recipe.networks["degnet"], pairs, 3).numpy())
    import tensorflow as tf

    hr_batch = tf.constant(np.random.default_rng(2).random((2, 32, 32, 3)), tf.float32)
    lr = recipe.degrade(hr_batch, RecordingServices(recipe)).numpy()
    assert lr.shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(lr, np.round(lr * 255) / 255)        # 8-bit levels


def test_bad_input_is_one_line(tmp_path, data):
    hr, pairs = data
    odd = tmp_path / "odd"
    for sub, name in (("LQ", "a"), ("HQ", "b")):
        write_images(odd / sub, n=1, size=(32, 32))
        os.rename(odd / sub / "img0.png", odd / sub / f"{name}.png")
    base = ["--scale", "2", "--train-dir", hr, "--steps", "1", "--batch-size", "2",
            "--patch-size", "32", *SYN_ARGS]

    def refused(*args, match, model="redegnet", extra=base):
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        r = run_cli("train.py", model, *args, *extra, "--out", out)
        assert r.returncode != 0 and match in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0, r.stderr
        assert not out.exists()

    refused(match="give them with --pair-dir FOLDER")
    refused("--pair-dir", odd, match="LQ and HQ images must have the same names")
    refused("--pair-dir", pairs, "--chain", "noise(5)+bicubic", match="write resize(LOW~HIGH)")
    refused("--pair-dir", pairs, "--features", tmp_path / "none.keras", match="no such file")
    refused("--pair-dir", pairs, "--w-style", "-1", match="w_style must be >= 0")
    refused("--pair-dir", pairs, match="must be a multiple of 8",
            extra=[a if a != "32" else "36" for a in base])
    sr = ["--scale", "2", "--train-dir", hr, "--steps", "1", "--batch-size", "2",
          "--patch-size", "32", "--param", "B=1", "--param", "filters=8"]
    refused(match="give its run with --redeg RUN", model="redegnet-sr", extra=sr)
    refused("--redeg", tmp_path / "missing", match="no such run folder", model="redegnet-sr",
            extra=sr)
