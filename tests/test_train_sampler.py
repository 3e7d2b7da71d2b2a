"""The PSNR-gain sampler follows its formula: val(i) = sum over bins j >= b(i) of
width(j) * f(j), renormalised to the drawn patches' probability mass."""
import numpy as np
import tensorflow as tf

from visionfw.data.sampler import PsnrGainSampler, grid_patches, psnr_gain_probabilities


def test_probabilities_follow_the_formula_on_a_hand_made_histogram():
    # 8 gains, 4 bins over [0, 2]: width 0.5, edges 0, 0.5, 1, 1.5, 2.
    gains = np.array([0.1, 0.2, 0.3, 0.7, 1.2, 1.3, 1.9, 2.0])
    # bins:             0    0    0    1    2    2    3    3   -> counts 3, 1, 2, 2
    # density f(j) = count / (8 * 0.5): 0.75, 0.25, 0.5, 0.5; width * f = 3/8, 1/8, 2/8, 2/8
    # val(i) = tail sum from its bin: bin 0 -> 8/8, bin 1 -> 5/8, bin 2 -> 4/8, bin 3 -> 2/8
    val = np.array([8, 8, 8, 5, 4, 4, 2, 2]) / 8.0
    old = np.array([0.01, 0.02, 0.01, 0.03, 0.02, 0.01, 0.05, 0.05])
    expected = val / val.sum() * old.sum()
    new = psnr_gain_probabilities(old, gains, bins=4).numpy()
    np.testing.assert_allclose(new, expected, rtol=1e-12)
    assert abs(new.sum() - old.sum()) < 1e-15
    # a patch that gained little is drawn more often than one that gained much
    assert new[0] > new[3] > new[4] > new[6]


def test_equal_gains_keep_relative_probabilities():
    old = np.array([0.1, 0.2, 0.3])
    new = psnr_gain_probabilities(old, np.full(3, 1.5), bins=5).numpy()
    np.testing.assert_allclose(new, np.full(3, 0.2))


def test_sampler_draws_in_proportion_and_updates_only_the_drawn_patches():
    positions = grid_patches([(64, 64), (32, 96)], 32)
    assert positions.tolist() == [[0, 0, 0], [0, 0, 32], [0, 32, 0], [0, 32, 32],
                                  [1, 0, 0], [1, 0, 32], [1, 0, 64]]
    sampler = PsnrGainSampler(positions, batch_size=2, bins=2, seed=5)
    sampler.probs.assign([0.0, 0.0, 0.5, 0.0, 0.5, 0.0, 0.0])
    for step in range(5):                       # zero-probability patches are never drawn
        assert sorted(sampler.draw(step).numpy().tolist()) == [2, 4]
    np.testing.assert_array_equal(sampler.draw(3).numpy(), sampler.draw(3).numpy())
    sampler.probs.assign(np.full(7, 1 / 7))
    ids = sampler.draw(0)
    sampler.update(ids, tf.constant([0.5, 3.0]))
    p = sampler.probs.numpy()
    low, high = ids.numpy()
    assert p[low] > p[high] and abs(p.sum() - 1.0) < 1e-12
    untouched = [i for i in range(7) if i not in (low, high)]
    np.testing.assert_allclose(p[untouched], 1 / 7)


def test_sampler_stride_sets_the_grid_of_candidate_patches(tmp_path):
    from tests.train_utils import make_trainer, tiny_config, write_images

    images = write_images(tmp_path / "imgs", n=2, size=(48, 64))
    shapes = [(48, 64)] * 2
    default = make_trainer(tiny_config(tmp_path / "a", images, sampler="psnr-gain"))
    assert default.sampler.probs.shape[0] == len(grid_patches(shapes, 32)) == 2 * 2
    dense = make_trainer(tiny_config(tmp_path / "b", images, sampler="psnr-gain",
                                     sampler_stride=8))
    assert dense.sampler.probs.shape[0] == len(grid_patches(shapes, 32, 8)) == 2 * 3 * 5
    rows = dense.sampler.positions.numpy()
    assert set(rows[:, 1]) == {0, 8, 16} and set(rows[:, 2]) == {0, 8, 16, 24, 32}


def test_a_bad_sampler_stride_is_one_line(tmp_path):
    from tests.train_utils import run_cli

    r = run_cli("train.py", "srresnet", "--sampler", "psnr-gain", "--sampler-stride", "0",
                "--out", str(tmp_path / "run"))
    assert r.returncode != 0
    assert "--sampler-stride must be a positive integer" in r.stderr
    assert "Traceback" not in r.stderr
