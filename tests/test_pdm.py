"""PDM at tiny sizes: the degradation layer and the straight-through rounding against NumPy,
the kernel and noise networks (both kernel modes, the near-box start, the official parameter
counts), one step of each optimiser, bit-exact resume, the report, and one-line errors."""
import json
import math

import numpy as np
import pytest

import visionfw
from tests.train_utils import (assert_same_state, event_tags, make_trainer, resume_from_copy,
                               run_cli, tiny_config, write_images)

TRUE = "gaussian(sigma1=2.6,sigma2=1.2,theta=0.7,size=21)"
TINY_NETS = ["--noise-nf", "8", "--noise-nb", "1", "--d-nf", "8", "--d-nb", "2"]
TINY_PARAMS = {"noise_nf": 8, "noise_nb": 1, "d_nf": 8, "d_nb": 2}
TINY_KERNEL = {"kernel_nf": 8, "kernel_nb": 1}


# ---------------------------------------------------------------- NumPy references

def correlate_and_sample(x, kernels, s):
    """``(x correlated with k)`` at HR pixels ``(s*i, s*j)``, reflect padding, by loops:
    ``kernels`` is ``(B, l, l)`` or ``(B, h, w, l, l)``."""
    b, h, w, c = x.shape
    side = kernels.shape[-1]
    o = side // 2
    xp = np.pad(x, ((0, 0), (o, side - 1 - o), (o, side - 1 - o), (0, 0)), mode="reflect")
    out = np.zeros((b, h // s, w // s, c))
    for n in range(b):
        for i in range(h // s):
            for j in range(w // s):
                k = kernels[n] if kernels.ndim == 3 else kernels[n, i, j]
                window = xp[n, s * i:s * i + side, s * j:s * j + side]
                out[n, i, j] = np.einsum("mn,mnc->c", k, window)
    return out


def degradation_cli(capsys, *args):
    """``python -m visionfw.degradation ARGS`` in this process: exit code and output."""
    import types

    from visionfw.degradation.__main__ import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return types.SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def last_conv(model):
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]


def random_kernels(rng, shape):
    k = rng.random(shape) ** 3
    return (k / k.sum(axis=(-2, -1), keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- the layers

@pytest.mark.parametrize("scale,side,size", [(4, 5, (17, 14)), (2, 3, (9, 12)), (3, 7, (12, 12))])
def test_degradation_layer_against_numpy(scale, side, size):
    from visionfw.degradation.layers import KernelDegradation

    rng = np.random.default_rng(scale)
    x = rng.random((2, *size, 3)).astype(np.float32)
    layer = KernelDegradation(scale)
    h, w = size[0] // scale, size[1] // scale
    # one kernel per image, asymmetric (a flipped kernel would give another image)
    k = random_kernels(rng, (2, side, side))
    got = np.asarray(layer([x, k]))
    assert got.shape == (2, h, w, 3)
    np.testing.assert_allclose(got, correlate_and_sample(x, k, scale), atol=1e-5)
    assert not np.allclose(got, correlate_and_sample(x, k[:, ::-1, ::-1], scale), atol=1e-3)
    # one kernel per LR pixel
    kp = random_kernels(rng, (2, h, w, side, side))
    got = np.asarray(layer([x, kp.reshape(2, h, w, side * side)]))
    np.testing.assert_allclose(got, correlate_and_sample(x, kp, scale), atol=1e-5)
    # a delta on the origin keeps HR pixel (s*i, s*j): top-left sampling
    delta = np.zeros((2, side, side), np.float32)
    delta[:, side // 2, side // 2] = 1
    np.testing.assert_allclose(np.asarray(layer([x, delta])),
                               x[:, :scale * h:scale, :scale * w:scale], atol=1e-6)
    # the noise is added as it is, one channel to every channel
    n = rng.normal(size=(2, h, w, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer([x, k, n])),
                               correlate_and_sample(x, k, scale) + n, atol=1e-5)
    assert KernelDegradation.from_config(layer.get_config()).get_config() == layer.get_config()


def test_degradation_layer_is_the_librarys_blur_with_the_kernel_turned():
    from visionfw.degradation import blur, downsample_direct, parse_degradation
    from visionfw.degradation.layers import KernelDegradation

    rng = np.random.default_rng(7)
    x = rng.random((2, 24, 20, 3)).astype(np.float32)
    k = random_kernels(rng, (2, 7, 7))
    got = np.asarray(KernelDegradation(4)([x, k]))
    want = np.asarray(downsample_direct(blur(x, k[:, ::-1, ::-1], "reflect"), 4))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # a point-symmetric Gaussian is the same either way: the spec of the acceptance set
    deg = parse_degradation(TRUE + "+direct(offset=0)")
    g = np.asarray(deg.sample_kernel(0), np.float32)
    np.testing.assert_allclose(np.asarray(KernelDegradation(4)([x, np.stack([g, g])])),
                               np.asarray(deg(x, 4, seed=0)), atol=1e-5)


def test_gradient_reaches_the_kernel_and_the_image():
    import tensorflow as tf

    from visionfw.degradation.layers import KernelDegradation

    rng = np.random.default_rng(3)
    x = tf.constant(rng.random((1, 8, 8, 2)), tf.float32)
    k = tf.constant(random_kernels(rng, (1, 3, 3)))
    weights = rng.normal(size=(1, 4, 4, 2))
    with tf.GradientTape() as tape:
        tape.watch(k)
        y = KernelDegradation(2)([x, k])
        loss = tf.reduce_sum(y * weights)
    # d loss / d k[m, n] = sum over outputs of weight * the window's tap (m, n)
    xp = np.pad(x.numpy(), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    want = np.zeros((3, 3))
    for i in range(4):
        for j in range(4):
            want += np.einsum("mnc,c->mn", xp[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3],
                              weights[0, i, j])
    np.testing.assert_allclose(tape.gradient(loss, k).numpy()[0], want, rtol=1e-4)


def test_noise_levels_against_numpy():
    from visionfw.degradation.layers import KernelDegradation
    from visionfw.recipes.pdm import noise_levels

    rng = np.random.default_rng(5)
    noise = rng.normal(0.01, 10 / 255, size=(3, 32, 32, 3)).astype(np.float32)
    noise[1] *= 0.5
    want = 255 * noise.reshape(3, -1).std(axis=1)
    np.testing.assert_allclose(np.asarray(noise_levels(noise)), want, rtol=1e-4)
    assert abs(want[0] - 10) < 0.5 and abs(want[1] - 5) < 0.3      # the mean is left out
    # the layer adds a noise whose level is measured back from its output
    x = rng.random((3, 128, 128, 3)).astype(np.float32)
    k = random_kernels(rng, (3, 5, 5))
    layer = KernelDegradation(4)
    added = np.asarray(layer([x, k, noise])) - np.asarray(layer([x, k]))
    np.testing.assert_allclose(np.asarray(noise_levels(added)), want, rtol=1e-3)


def test_straight_through_quantize():
    import tensorflow as tf

    from visionfw.degradation.layers import StraightThroughQuantize

    rng = np.random.default_rng(0)
    v = np.concatenate([rng.uniform(-0.3, 1.3, 500), np.arange(256) / 255.0,
                        (np.arange(255) + 0.5) / 255.0]).astype(np.float32)
    x = tf.constant(v)
    upstream = tf.constant(rng.normal(size=v.shape), tf.float32)
    layer = StraightThroughQuantize()
    with tf.GradientTape() as tape:
        tape.watch(x)
        q = layer(x)
        loss = tf.reduce_sum(q * upstream)
    # float32 arithmetic, as the library's quantize op (and a saved PNG) rounds
    f = np.float32
    want = np.floor(np.clip(v, f(0), f(1)) * f(255) + f(0.5)) / f(255)
    np.testing.assert_array_equal(q.numpy(), want)
    from visionfw.degradation import quantize

    np.testing.assert_array_equal(q.numpy(), np.asarray(quantize(v[None, None, :, None]))
                                  .reshape(-1))
    assert len(np.unique(q.numpy())) == 256
    # the gradient is the upstream one everywhere, also where the value was clipped
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), upstream.numpy())
    assert StraightThroughQuantize(levels=15)(tf.constant([0.5])).numpy()[0] == 8 / 15


# ---------------------------------------------------------------- the networks

@pytest.mark.parametrize("scale,side", [(2, 11), (4, 21)])
def test_kernel_network_both_modes(scale, side):
    z = np.random.default_rng(scale).normal(size=(3, 1, 1, 4)).astype(np.float32)
    net = visionfw.build_model("pdm-kernel", latent=4, nf=8, nb=1, scale=scale)
    start = net.predict(z, verbose=0)
    assert start.shape == (3, side, side)
    # the near-box start: softmax of a one on the centre tap, whatever z
    box = np.ones((side, side))
    box[side // 2, side // 2] = math.e
    np.testing.assert_allclose(start, np.broadcast_to(box / box.sum(), start.shape), rtol=1e-5)
    rng = np.random.default_rng(1)
    for w in net.weights:                       # away from the start: large logits
        value = rng.normal(size=w.shape).astype("float32")
        # a batch norm's variance must stay positive: a negative one makes NaNs, which
        # Grappler's remapper happened to fuse away, so the test depended on that option
        w.assign(np.abs(value) if "variance" in w.path else value)
    k = net.predict(z, verbose=0)
    assert k.min() >= 0 and np.ptp(k) > 0.01
    np.testing.assert_allclose(k.sum(axis=(1, 2)), 1, atol=1e-5)
    pixel = visionfw.build_model("pdm-kernel", latent=4, nf=8, nb=1, scale=scale,
                                 per_pixel=True)
    maps = pixel.predict(rng.normal(size=(2, 5, 6, 4)).astype(np.float32), verbose=0)
    assert maps.shape == (2, 5, 6, side * side)
    np.testing.assert_allclose(maps.sum(axis=-1), 1, atol=1e-5)
    # the same weights: a 1 x 1 map of z gives the kernel of the invariant network
    pixel.set_weights(net.get_weights())
    one = pixel.predict(z, verbose=0)
    np.testing.assert_allclose(one.reshape(3, side, side), k, atol=1e-6)


def test_networks_have_the_official_parameter_counts():
    # from the official layouts (deg_arch.py, discriminator.py), trainable parameters
    block = lambda nf, c: 2 * (c * c * nf * nf + nf) + 2 * nf           # noqa: E731
    kernel = (3 * 64 + 64) + 2 * 64 + 8 * block(64, 1) + (64 * 441 + 441)
    noise = (9 * 6 * 64 + 64) + 2 * 64 + 8 * block(64, 3) + (64 * 3 + 3)
    patch = (27 * 64 + 64) + (9 * 64 * 128 + 128) + (9 * 128 * 256 + 256) \
        + (9 * 256 * 512 + 512) + (9 * 512 * 64 + 64)

    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    assert trainable(visionfw.build_model("pdm-kernel")) == kernel == 96_633
    assert trainable(visionfw.build_model("pdm-noise")) == noise == 595_715
    assert visionfw.build_model("patchgan").count_params() == patch == 1_845_952
    d = visionfw.build_model("patchgan", nf=8, nb=3, stride=2)
    assert d.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0).shape == (1, 8, 8, 8)
    with pytest.raises(Exception, match="odd size"):
        visionfw.model_dict("pdm-kernel", size=20)
    with pytest.raises(Exception, match="dim 1 or 3"):
        visionfw.model_dict("pdm-noise", dim=2)


# ---------------------------------------------------------------- the recipes

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pdm-data")
    return (write_images(root / "hr", n=2, size=(48, 48)),
            write_images(root / "lr", n=2, size=(24, 24), seed=4))


def sr_config(out, folders, **extra):
    hr, lr = folders
    params = dict(TINY_PARAMS, **TINY_KERNEL, **extra.pop("recipe_params", {}))
    settings = dict(model="srresnet", recipe="pdm-sr", scale=4, hparams={"B": 1, "filters": 8},
                    steps=4, batch_size=2, patch_size=32, unpaired_dirs=[lr],
                    recipe_params=params, clip_norm=50.0)
    return tiny_config(out, hr, **dict(settings, **extra))


def test_one_step_updates_each_network_with_its_optimizer(tmp_path, folders):
    trainer = make_trainer(sr_config(tmp_path / "a", folders, steps=1))
    recipe = trainer.recipe
    assert set(recipe.optimizers) == {"sr", "degradation", "discriminator"}
    before = {n: [np.array(v) for v in net.trainable_weights]
              for n, net in recipe.networks.items()}
    trainer.fit()
    assert {k: int(o.iterations.numpy()) for k, o in recipe.optimizers.items()} == \
        {"sr": 1, "degradation": 1, "discriminator": 1}
    for name, net in recipe.networks.items():
        assert any(not np.array_equal(a, np.asarray(b))
                   for a, b in zip(before[name], net.trainable_weights)), name


def test_zero_mean_noise_is_kept_by_the_run_and_removes_the_noises_mean(tmp_path, folders):
    from visionfw.checkpoint import load_model
    from visionfw.recipes.pdm import LearnedDegradation

    trainer = make_trainer(sr_config(tmp_path / "z", folders, steps=1,
                                     recipe_params={"noise_zero_mean": "true"}))
    assert trainer.recipe.degradation.zero_mean
    trainer.fit()
    saved = (load_model(str(tmp_path / "z" / f"last.{n}.weights.h5"), compile=False)
             for n in ("kernel", "noise"))
    learned = LearnedDegradation(*saved, 4)                # the choice is in the checkpoint
    assert learned.zero_mean
    plain = LearnedDegradation(learned.kernel_net, learned.noise_net, 4)
    plain.zero_mean = False
    conv = last_conv(learned.noise_net)                    # a noise with a clear mean
    rng = np.random.default_rng(2)
    conv.set_weights([0.1 * rng.standard_normal(w.shape).astype(np.float32)
                      for w in conv.get_weights()])
    hr = np.random.default_rng(3).random((2, 32, 32, 3)).astype(np.float32)
    draws = learned.fixed_draws(hr)
    lr, _, noise = (np.asarray(t) for t in learned(hr, *draws))
    lr0, _, noise0 = (np.asarray(t) for t in plain(hr, *draws))
    means = noise0.mean(axis=(1, 2), keepdims=True)
    assert np.abs(means).min() > 1e-3                      # the plain noise has one
    np.testing.assert_allclose(noise.mean(axis=(1, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(noise, noise0 - means, atol=1e-6)
    np.testing.assert_allclose(lr, lr0 - means, atol=1e-6)


def test_one_kernel_per_pixel_trains(tmp_path, folders):
    hr, lr = folders
    config = tiny_config(tmp_path / "p", hr, model="pdm-kernel", recipe="pdm", scale=4,
                         hparams={"nf": 8, "nb": 1, "per_pixel": True}, steps=1, batch_size=2,
                         patch_size=32, unpaired_dirs=[lr], recipe_params=dict(TINY_PARAMS))
    trainer = make_trainer(config)
    deg = trainer.recipe.degradation
    assert deg.per_pixel and [int(v) for v in deg.latent_shapes(np.zeros((2, 32, 32, 3)))[0]] \
        == [2, 8, 8, 3]
    before = [np.array(w) for w in trainer.recipe.networks["kernel"].trainable_weights]
    trainer.fit()
    after = trainer.recipe.networks["kernel"].trainable_weights
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, after))
    assert deg.kernels(4).shape == (4, 21, 21)


def test_step_losses_and_detached_links(tmp_path, folders):
    import tensorflow as tf

    from visionfw.recipes.pdm import lsgan

    trainer = make_trainer(sr_config(tmp_path / "g", folders, steps=1))
    recipe = trainer.recipe
    rng = np.random.default_rng(0)
    hr = tf.constant(rng.random((2, 32, 32, 3)), tf.float32)
    zk, zn = (tf.random.stateless_normal(s, (1, 2)) for s in recipe.degradation.latent_shapes(hr))
    d, sr = recipe.networks["discriminator"], recipe.networks["sr"]
    deg_vars = recipe.networks["kernel"].trainable_variables + \
        recipe.networks["noise"].trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        fake, kernel, noise = recipe.degradation(hr, zk, zn, training=True)
        adversarial = lsgan(d(fake), 1.0)
        sr_loss = tf.reduce_mean(tf.abs(sr(tf.stop_gradient(recipe.quantize(fake))) - hr))
    # the adversarial loss reaches both degradation networks; the SR loss none of them
    assert all(g is not None for g in tape.gradient(adversarial, deg_vars))
    assert all(g is None for g in tape.gradient(sr_loss, deg_vars))
    # the noise network sees the blurred image detached: no path from noise to the kernel
    kernel_vars = recipe.networks["kernel"].trainable_variables
    assert all(g is None for g in tape.gradient(noise, kernel_vars))
    assert float(lsgan(tf.constant([[0.5, 1.5]]), 1.0)) == pytest.approx(0.25)


def test_centre_offsets_against_numpy():
    from visionfw.recipes.pdm import centre_offsets

    rng = np.random.default_rng(3)
    side = 7
    kernels = random_kernels(rng, (5, side, side))
    at = np.arange(side) - side // 2
    rows = (kernels.sum(axis=2) * at).sum(axis=1)
    cols = (kernels.sum(axis=1) * at).sum(axis=1)
    expected = rows ** 2 + cols ** 2
    np.testing.assert_allclose(np.asarray(centre_offsets(kernels, side)), expected,
                               rtol=1e-5, atol=1e-6)
    per_pixel = np.asarray(centre_offsets(kernels.reshape(1, 5, 1, side * side), side))
    np.testing.assert_allclose(per_pixel[0, :, 0], expected, rtol=1e-5, atol=1e-6)
    delta = np.zeros((side, side), np.float32)
    delta[side // 2 + 2, side // 2 - 1] = 1.0               # 2 down, 1 left: 5 px^2
    assert float(centre_offsets(delta[None], side)[0]) == pytest.approx(5.0)
    assert float(centre_offsets(delta[None, ::-1, ::-1], side)[0]) == pytest.approx(5.0)


def penalty_before_and_after(tmp_path, folders, name, params, tap, measure, lr):
    """Start every drawn kernel with its mass on ``tap(side)`` (row, column), train three steps
    with ``params`` and return ``measure`` of eight fixed draws before and after."""
    import tensorflow as tf

    trainer = make_trainer(sr_config(tmp_path / name, folders, steps=3, lr=lr,
                                     recipe_params=params))
    recipe = trainer.recipe
    side = recipe.degradation.side
    conv = last_conv(recipe.networks["kernel"])
    w, b = conv.get_weights()
    b = np.zeros_like(b)
    row, col = tap(side)
    b[row * side + col] = 7.0
    conv.set_weights([w, b])
    z = tf.random.stateless_normal([8, 1, 1, recipe.degradation.kernel_latent], (1, 2))

    def value():
        taps = recipe.networks["kernel"](z, training=False)
        return float(tf.reduce_mean(measure(taps, side)))

    start = value()
    trainer.fit()
    return start, value()


def test_centre_penalty_pulls_a_shifted_kernel_back(tmp_path, folders):
    """lambda_c (ours, off by default) moves the kernels' centre of mass towards the origin."""
    from visionfw.recipes.pdm import centre_offsets

    def run(name, lambda_c):                     # a start 3 px down and right of the origin
        return penalty_before_and_after(tmp_path, folders, name, {"lambda_c": lambda_c},
                                        lambda side: (side // 2 + 3, side // 2 + 3),
                                        centre_offsets, 0.05)

    start, free = run("free", 0.0)
    _, pulled = run("pulled", 5.0)
    assert start > 5.0
    assert pulled < 0.5 * start and pulled < 0.5 * free


def test_border_mask_and_masses_against_numpy():
    from visionfw.recipes.pdm import border_mask, border_masses

    mask = border_mask(21)
    assert mask[10, 10] == 0 and mask[4, 16] == 0             # Chebyshev distance 6: inside
    assert mask[3, 10] == pytest.approx(49 / 100)             # 7 up: 7^2 / 10^2
    assert mask[0, 0] == pytest.approx(2.0) and mask[20, 10] == pytest.approx(1.0)
    assert border_mask(11)[5, 2] == 0 and border_mask(11)[5, 1] == pytest.approx(16 / 25)
    rng = np.random.default_rng(4)
    side = 11
    kernels = random_kernels(rng, (3, side, side))
    at = np.arange(side) - side // 2
    dy, dx = np.meshgrid(at, at, indexing="ij")
    weight = np.where(np.maximum(abs(dy), abs(dx)) <= 3, 0.0, (dy ** 2 + dx ** 2) / 25.0)
    expected = (kernels * weight).sum(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(border_masses(kernels, side)), expected, rtol=1e-5)
    flat = np.asarray(border_masses(kernels.reshape(1, 3, 1, side * side), side))
    np.testing.assert_allclose(flat[0, :, 0], expected, rtol=1e-5)


def test_boundary_penalty_pulls_border_mass_in(tmp_path, folders):
    """lambda_b (ours, off by default) moves kernel mass off the border of the support."""
    from visionfw.recipes.pdm import border_masses

    def run(name, lambda_b):                     # a start in the top-right corner
        return penalty_before_and_after(tmp_path, folders, name, {"lambda_b": lambda_b},
                                        lambda side: (0, side - 1), border_masses, 0.5)

    start, free = run("free", 0.0)
    _, pulled = run("pulled", 5.0)
    assert start > 0.5
    assert pulled < 0.5 * start and pulled < 0.5 * free


def test_roughness_against_numpy():
    from visionfw.recipes.pdm import roughness

    rng = np.random.default_rng(5)
    side = 9
    kernels = random_kernels(rng, (4, side, side))
    expected = (np.square(np.diff(kernels, axis=1)).sum(axis=(1, 2))
                + np.square(np.diff(kernels, axis=2)).sum(axis=(1, 2)))
    np.testing.assert_allclose(np.asarray(roughness(kernels, side)), expected, rtol=1e-5)
    flat = np.asarray(roughness(kernels.reshape(2, 2, 1, side * side), side))
    np.testing.assert_allclose(flat.reshape(-1), expected, rtol=1e-5)
    delta = np.zeros((1, side, side), np.float32)
    delta[0, 4, 4] = 1.0
    assert float(roughness(delta, side)[0]) == pytest.approx(4.0)
    assert float(roughness(np.full((1, side, side), 1 / side ** 2, np.float32), side)[0]) == 0


def test_smoothness_penalty_spreads_a_delta(tmp_path, folders):
    """lambda_s (ours, off by default) makes a kernel started as a delta smoother."""
    from visionfw.recipes.pdm import roughness

    def run(name, lambda_s):
        return penalty_before_and_after(tmp_path, folders, name, {"lambda_s": lambda_s},
                                        lambda side: (side // 2, side // 2), roughness, 0.5)

    start, free = run("free", 0.0)
    _, smoothed = run("smoothed", 5.0)
    assert start > 1.5
    assert smoothed < 0.5 * start and smoothed < 0.5 * free


def test_frozen_degradation_trains_the_sr_network_alone(tmp_path, folders):
    first = make_trainer(sr_config(tmp_path / "a", folders, steps=1))
    first.fit()
    from visionfw.train.config import write_json

    write_json(str(tmp_path / "a" / "settings.json"),        # as train.py records a run
               {"settings": {"scale": 4}, "recipe": {"name": "pdm-sr"}})
    config = sr_config(tmp_path / "b", folders, steps=2,
                       recipe_params={"pdm": str(tmp_path / "a"), "train_degradation": False})
    trainer = make_trainer(config)
    recipe = trainer.recipe
    assert set(recipe.optimizers) == {"sr"} and "discriminator" not in recipe.networks
    given = visionfw.load_model(tmp_path / "a" / "last.kernel.weights.h5").get_weights()
    trainer.fit()
    kept = recipe.networks["kernel"].get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(given, kept))
    assert (tmp_path / "b" / "last.noise.weights.h5").is_file()


def test_resume_is_bit_exact(tmp_path, folders):
    straight = make_trainer(sr_config(tmp_path / "a", folders, save_every=2))
    assert straight.fit()["step"] == 4
    second = resume_from_copy(tmp_path / "a", sr_config(tmp_path / "b", folders), 2)
    assert second.fit(resume=True)["step"] == 4
    assert_same_state(straight, second)
    assert int(second.recipe.optimizers["discriminator"].iterations.numpy()) == 4


# ---------------------------------------------------------------- the commands

@pytest.fixture(scope="module")
def pdm_run(tmp_path_factory, folders):
    hr, lr = folders
    out = tmp_path_factory.mktemp("pdm") / "run"
    r = run_cli("train.py", "pdm", "--param", "nf=8", "--param", "nb=1", *TINY_NETS,
               "--scale", "4", "--train-dir", hr, "--unpaired-dir", lr, "--val-dir", hr,
               "--true-kernel", TRUE, "--steps", "2", "--batch-size", "2", "--patch-size",
               "32", "--val-every", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_train_pdm_validates_by_kernel_and_noise(pdm_run):
    settings = json.loads((pdm_run / "settings.json").read_text())
    assert settings["settings"]["clip_norm"] == 50.0           # the official max_grad_norm
    assert settings["recipe"]["params"]["true_kernel"] == TRUE
    rows = (pdm_run / "val.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"noise_sigma", "kernel_psnr"} <= set(header) and len(rows) == 3
    psnr = [float(r.split(",")[header.index("kernel_psnr")]) for r in rows[1:]]
    assert all(40 < p < 60 for p in psnr)
    for name in ("best.weights.h5", "best.noise.weights.h5", "best.discriminator.weights.h5",
                 "last.weights.h5", "last.noise.weights.h5"):
        assert (pdm_run / name).is_file(), name
    tags = event_tags(pdm_run)
    assert tags.get("val/kernel_samples") == "images" and tags.get("val/noise_sigma")
    assert "train/discriminator_loss" in tags and "train/noise_sigma" in tags


def test_report_of_a_run(pdm_run, tmp_path, capsys):
    from visionfw.degradation import kernel_psnr, parse_degradation
    from visionfw.degradation.learned import moments, near_box_start

    out = tmp_path / "report"
    r = degradation_cli(capsys, "report", pdm_run, "--out", out, "--samples", "32",
                        "--patches", "4")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["weights"] == {"kernel": "last.weights.h5", "noise": "last.noise.weights.h5"}
    assert report["kernel_size"] == 21 and report["kernels"]["samples"] == 32
    samples, mean = np.load(out / "kernels.npy"), np.load(out / "mean_kernel.npy")
    assert samples.shape == (32, 21, 21)
    np.testing.assert_allclose(mean, samples.mean(axis=0) / samples.mean(axis=0).sum(),
                               atol=1e-6)
    true = parse_degradation(TRUE).sample_kernel(0)
    rows = report["true_kernel"]["kernel_psnr"]
    assert rows["learned_mean"] == pytest.approx(kernel_psnr(mean, true), abs=1e-3)
    assert rows["near_box_start"] == pytest.approx(kernel_psnr(near_box_start(21), true))
    assert rows["best_isotropic"] > rows["near_box_start"]
    assert report["noise"]["sigma"]["mean"] >= 0 and report["noise"]["patches"] == 4
    for name in ("kernels.png", "mean_kernel.png", "synthetic.png"):
        assert (out / name).stat().st_size > 0
    assert "kernel PSNR against the true kernel" in r.stdout
    # the moments name the hidden kernel's axes
    np.testing.assert_allclose(moments(true), (2.6, 1.2, 0.7), atol=0.02)


def test_report_kernels_are_the_librarys_convolution_kernels(pdm_run):
    import tensorflow as tf

    from visionfw.degradation import blur, downsample_direct
    from visionfw.recipes.pdm import load_run

    deg, _ = load_run(str(pdm_run))
    # make the network answer one asymmetric kernel, whatever z
    k = random_kernels(np.random.default_rng(2), (21, 21)).astype(np.float64)
    last = last_conv(deg.kernel_net)
    last.set_weights([np.zeros_like(last.get_weights()[0]), np.log(k).reshape(-1)])
    drawn = deg.kernels(3).numpy()
    np.testing.assert_allclose(drawn, np.broadcast_to(k[::-1, ::-1], drawn.shape), atol=1e-6)
    x = np.random.default_rng(4).random((1, 32, 32, 3)).astype(np.float32)
    zk, zn = deg.fixed_draws(tf.constant(x))
    silent = last_conv(deg.noise_net)                   # no noise
    silent.set_weights([np.zeros_like(w) for w in silent.get_weights()])
    lr, _, _ = deg(tf.constant(x), zk, zn)
    want = downsample_direct(blur(x, drawn[0], "reflect"), 4)
    np.testing.assert_allclose(lr.numpy(), np.asarray(want), atol=1e-5)


def test_pdm_sr_from_a_pdm_run_then_sr_and_test(pdm_run, folders, tmp_path):
    from visionfw.evaluate.trained import training_of

    hr, lr = folders                    # a frozen degradation needs no real LR patches
    out = tmp_path / "sr-run"
    r = run_cli("train.py", "pdm-sr", "--param", "B=1", "--param", "filters=8", "--scale", "4",
               "--pdm", pdm_run, "--train-degradation", "false", "--train-dir", hr,
               "--val-dir", hr, "--steps", "2", "--batch-size", "2",
               "--patch-size", "32", "--val-every", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    given = visionfw.load_model(pdm_run / "last.weights.h5").get_weights()
    kept = visionfw.load_model(out / "last.kernel.weights.h5").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(given, kept))
    header = (out / "val.csv").read_text().splitlines()[0].split(",")
    assert "noise_sigma" in header and "kernel_psnr" not in header
    # the settings record the sizes of the networks it took, not the options' defaults
    params = json.loads((out / "settings.json").read_text())["recipe"]["params"]
    assert (params["kernel_nf"], params["kernel_nb"], params["noise_nf"],
            params["noise_nb"], params["noise_zero_mean"]) == (8, 1, 8, 1, False)
    # its SR network is any model's: test.py and sr take the run folder
    r = run_cli("test.py", "--weights", out, "--dataset", hr, "--scale", "4")
    assert r.returncode == 0, r.stderr
    r = run_cli("-m visionfw", "sr", lr, "--weights", out, "--out", tmp_path / "sr")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "sr").glob("*_x4.png"))) == 2
    # its training LR was not --degradation's: no noise warning is derived from it
    assert training_of(out / "best.weights.h5") is None


def test_pdm_sr_refuses_network_options_its_pdm_run_contradicts(pdm_run, folders, tmp_path):
    hr, lr = folders
    base = ["--scale", "4", "--train-dir", hr, "--unpaired-dir", lr, "--steps", "1",
            "--batch-size", "2", "--patch-size", "32", "--pdm", pdm_run]
    for flag, value, match in (("--noise-zero-mean", "true", "has zero_mean False"),
                               ("--noise-nf", "16", "has nf 8"),
                               ("--kernel-nb", "3", "has nb 1")):
        out = tmp_path / flag.strip("-")
        r = run_cli("train.py", "pdm-sr", *base, flag, value, "--out", out)
        assert r.returncode != 0 and match in r.stderr and "leave" in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0, r.stderr
        assert not out.exists()


def test_bad_input_is_one_line(tmp_path, folders, capsys):
    hr, lr = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["--scale", "4", "--train-dir", hr, "--steps", "1", "--batch-size", "2",
            "--patch-size", "32"]

    def refused(*args, match):
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        r = run_cli("train.py", *args, *base, "--out", out)
        assert r.returncode != 0 and match in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0, r.stderr
        assert not out.exists()

    refused("pdm", match="give them with --unpaired-dir FOLDER")
    refused("pdm", "--unpaired-dir", empty, match=f"--unpaired-dir {empty}: no images")
    refused("pdm", "--unpaired-dir", lr, "--true-kernel", "gaussian(sigma=1~2)",
            match="draws a new kernel per image")
    refused("pdm", "--unpaired-dir", lr, "--true-kernel", "bicubic",
            match="neither a kernel file nor a spec with a blur")
    refused("pdm", "--unpaired-dir", lr, "--noise-dim", "2", match="noise_dim must be 1 or 3")
    refused("pdm", "--unpaired-dir", lr, "--sampler", "psnr-gain", match="draws patches")
    refused("pdm-noise", "--unpaired-dir", lr, match="is not one (train.py pdm")
    refused("pdm-sr", "--unpaired-dir", lr, "--train-degradation", "false",
            match="give the learned one, --pdm RUN")
    refused("pdm-sr", "--unpaired-dir", lr, "--pdm", tmp_path, match="not a run of train.py pdm")
    refused("sftmd", "--recipe", "pdm-sr", "--unpaired-dir", lr,
            match="trains an SR network of the LR image alone")
    r = degradation_cli(capsys, "report", tmp_path)
    assert r.returncode == 2 and "not a run of train.py pdm or pdm-sr" in r.stderr


def test_export_names_a_one_variant_folder(folders, tmp_path, capsys):
    hr, _ = folders
    spec = TRUE + "+direct(offset=0)+noise(10)+quantize"
    r = degradation_cli(capsys, "export", "--protocol", spec, "--scale", "4", "--dataset", hr,
                        "--out", tmp_path / "set", "--name", "hidden")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "set" / "hidden").glob("*.png")) == \
        ["img0.png", "img1.png"]
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert list(manifest["variants"]) == ["hidden"]
    r = degradation_cli(capsys, "export", "--protocol", "gaussian8", "--scale", "4",
                        "--dataset", hr, "--out", tmp_path / "g8", "--name", "x")
    assert r.returncode == 2 and "one-variant protocol" in r.stderr


def test_a_run_folder_gives_last_then_its_stop_then_best(tmp_path):
    """A pdm run that was stopped early lends its state at the stop, not its best validation
    (chosen by the hidden kernel in a synthetic experiment); a finished run its last weights."""
    from visionfw.recipes.pdm import run_files
    from visionfw.train.config import write_json

    write_json(str(tmp_path / "settings.json"), {"settings": {"scale": 4},
                                                 "recipe": {"name": "pdm"}})

    def touch(stem):
        for name in (f"{stem}.weights.h5", f"{stem}.noise.weights.h5"):
            (tmp_path / name).write_bytes(b"")

    touch("best")
    assert run_files(str(tmp_path))["kernel"].endswith("best.weights.h5")
    touch("stopped")
    files = run_files(str(tmp_path))
    assert files == {"kernel": str(tmp_path / "stopped.weights.h5"),
                     "noise": str(tmp_path / "stopped.noise.weights.h5")}
    assert run_files(str(tmp_path), "best")["noise"].endswith("best.noise.weights.h5")
    touch("last")
    assert run_files(str(tmp_path))["kernel"].endswith("last.weights.h5")
