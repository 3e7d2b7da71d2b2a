"""python -m visionfw redeg transfer / evaluate on a tiny redegnet run (nf 8, omega 16, 32x32
patches, 2 steps): the sizes written, the report's numbers against NumPy, nearest-neighbour
retrieval on vectors whose answer is known, and one-line errors."""
import json
import os

import numpy as np
import pytest

from tests.numpy_reference import imresize as numpy_imresize
from tests.train_utils import run_cli, write_images, write_pairs
from visionfw.imageio import read_image, write_image

SYN = {"omega": 16, "nf": 8, "mapping": 2, "levels": 3, "w_dim": 16}      # multiple 8
SYN_ARGS = [a for k, v in SYN.items() for a in ("--param", f"{k}={v}")]
SPECS = ("gaussian(sigma=1.5)+bicubic+quantize", "noise(8)+bicubic")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Training data, pairs at half size (LQ 32 x 32, HQ 64 x 64), a same-size pair, images
    to degrade (one not a multiple of SynNet's 8) and a small evaluation set."""
    from visionfw.resize import imresize

    root = tmp_path_factory.mktemp("redeg-cli")
    hr = write_images(root / "hr", n=2, size=(48, 48))
    write_pairs(root / "pairs")
    for name in ("img0", "img1"):
        small = read_image(root / "pairs" / "LQ" / f"{name}.png")
        write_image(root / f"{name}_same.png", np.asarray(imresize(small, scale=2.0)))
    write_images(root / "to", n=1, size=(40, 48), seed=2)              # a multiple of 8
    write_images(root / "odd", n=1, size=(37, 45), seed=3)
    os.rename(root / "odd" / "img0.png", root / "odd" / "odd.png")
    write_images(root / "set", n=4, size=(40, 52), seed=7)
    return root, hr


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    root, hr = data
    out = tmp_path_factory.mktemp("redeg-run") / "run"
    r = run_cli("train.py", "redegnet", *SYN_ARGS, "--deg-nf", "8", "--d-nf", "8",
               "--scale", "2", "--train-dir", hr, "--pair-dir", root / "pairs",
               "--val-dir", hr, "--steps", "2", "--batch-size", "2", "--patch-size", "32",
               "--val-every", "2", "--chain", "noise(5~20)+resize(2~3)", "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def _pair(root, same=False):
    lq = root / "img0_same.png" if same else root / "pairs" / "LQ" / "img0.png"
    return ["--pair", str(lq), str(root / "pairs" / "HQ" / "img0.png")]


# ---------------------------------------------------------------- transfer

def test_transfer_sizes_half_size_pair(run, data, tmp_path):
    root, _ = data
    out = tmp_path / "out"
    r = run_cli("-m visionfw", "redeg", "transfer", "--run", run, *_pair(root), "--to",
                root / "to", "--to", root / "odd" / "odd.png", "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["img0.png", "odd.png"]
    # down by the pair's ratio, 2, as MATLAB's imresize: ceil(side / 2)
    assert read_image(out / "img0.png").shape == (20, 24, 3)
    assert read_image(out / "odd.png").shape == (19, 23, 3)


def test_transfer_same_size_pair_keeps_sizes_and_is_synnet(run, data, tmp_path):
    from visionfw.recipes.redeg import load_redeg

    root, _ = data
    out = tmp_path / "out"
    r = run_cli("-m visionfw", "redeg", "transfer", "--run", run, *_pair(root, same=True),
                "--to", root / "to" / "img0.png", "--to", root / "odd", "--out", out,
                "--crops", "1")
    assert r.returncode == 0, r.stderr
    assert read_image(out / "odd.png").shape == (37, 45, 3)      # padded to 40 x 48, cropped
    # by hand: Omega of the centre 32 x 32 of the pair, SynNet on the 40 x 48 image
    degnet, synnet = load_redeg(run)
    lq = read_image(root / "img0_same.png").astype(np.float32) / 255
    hq = read_image(root / "pairs" / "HQ" / "img0.png").astype(np.float32) / 255
    omega = np.asarray(degnet([lq[None, 16:48, 16:48], hq[None, 16:48, 16:48]]))
    x = read_image(root / "to" / "img0.png").astype(np.float32) / 255
    want = np.asarray(synnet([x[None], omega]))[0]
    want = np.floor(np.clip(want.astype(np.float64), 0, 1) * 255 + 0.5)
    got = read_image(out / "img0.png").astype(np.float64)
    assert np.abs(got - want).max() <= 1                  # float32 rounding at a .5 boundary


def _pair_arrays(root):
    lq = read_image(root / "pairs" / "LQ" / "img0.png").astype(np.float32) / 255
    hq = read_image(root / "pairs" / "HQ" / "img0.png").astype(np.float32) / 255
    return lq, hq


def test_adapt_fits_the_pair_by_hand(run, data):
    """The first loss is the L1 of SynNet on the nine grid squares against the LQ image at
    the HQ size (recomputed here); the fit lowers it; the weights move only by the steps."""
    from visionfw.evaluate.redeg import adapt, omega_of_pair
    from visionfw.recipes.redeg import load_redeg

    root, _ = data
    degnet, synnet = load_redeg(run)
    lq, hq = _pair_arrays(root)                                  # 32 x 32 and 64 x 64
    omega = omega_of_pair(degnet, lq, hq, 1)
    up = np.clip(numpy_imresize(lq.astype(np.float64), output_shape=(64, 64)), 0, 1)
    squares = [(t, l) for t in (0, 16, 32) for l in (0, 16, 32)]      # 32 x 32 in 64 x 64
    fake = np.asarray(synnet([np.stack([hq[t:t + 32, l:l + 32] for t, l in squares]),
                              np.repeat(omega[None], 9, 0)]), np.float64)
    want = np.mean([np.abs(fake[i] - up[t:t + 32, l:l + 32]).mean()
                    for i, (t, l) in enumerate(squares)])
    before = [w.copy() for w in synnet.get_weights()]
    fitted, losses = adapt(synnet, omega, lq, hq, 40, 1e-3, 32)
    assert len(losses) == 40 and losses[0] == pytest.approx(want, rel=1e-4)
    assert losses[-1] < 0.9 * losses[0]
    assert np.abs(fitted - omega).max() > 1e-4
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(before, synnet.get_weights()))
    synnet.set_weights(before)
    assert adapt(synnet, omega, lq, hq, 0, 1e-3, 32)[1] == []         # no step: unchanged
    assert all(np.array_equal(a, b) for a, b in zip(before, synnet.get_weights()))


def test_transfer_adapt(run, data, tmp_path):
    root, _ = data
    outs = []
    for extra in ([], ["--adapt", "5", "--adapt-lr", "1e-3"]):
        out = tmp_path / f"out{len(extra)}"
        r = run_cli("-m visionfw", "redeg", "transfer", "--run", run, *_pair(root), "--to",
                    root / "to", "--out", out, *extra)
        assert r.returncode == 0, r.stderr
        assert ("fitted to the pair in 5 steps" in r.stderr) == bool(extra)
        outs.append(read_image(out / "img0.png").astype(int))
    assert outs[0].shape == outs[1].shape == (20, 24, 3)
    assert np.abs(outs[0] - outs[1]).max() > 0


# ---------------------------------------------------------------- evaluate

def test_measure_adapt_puts_the_weights_back(run, data):
    """The adapted column is the synthesis of SynNet fitted by adapt() (recomputed), and the
    other columns -- of both degradations -- are those of a report without --adapt."""
    from visionfw.degradation import get_protocol
    from visionfw.evaluate import redeg as R
    from visionfw.metrics import to_uint8
    from visionfw.recipes.redeg import RandomChain, load_redeg

    root, _ = data
    degnet, synnet = load_redeg(run)
    variants = [v for spec in SPECS for v in get_protocol(spec, 2, 0)]
    images = [(f"img{i}", read_image(root / "set" / f"img{i}.png").astype(np.float32) / 255)
              for i in range(3)]
    chain = RandomChain("noise(5~20)+resize(2~3)")
    plain = R.measure(degnet, synnet, variants, 2, images[0], images[1:], chain, draws=1,
                      crops=1)
    fitted = R.measure(degnet, synnet, variants, 2, images[0], images[1:], chain, draws=1,
                       crops=1, adapt_steps=4, adapt_lr=1e-3)
    assert "adapt" not in plain and fitted["adapt"] == {"steps": 4, "lr": 1e-3}
    for a, b in zip(plain["degradations"], fitted["degradations"]):
        assert "adapted_psnr" not in a
        assert a["synthesised_psnr"] == b["synthesised_psnr"]      # the weights came back
        assert b["adapted_psnr"] != b["synthesised_psnr"]
    # the second degradation's adapted PSNR of img2 by hand
    name, deg = variants[1]
    src_hq = images[0][1]
    lq = to_uint8(deg(src_hq, 2, seed=0)).astype(np.float32) / 255
    omega = R.omega_of_pair(degnet, lq, src_hq, 1)
    trained = synnet.get_weights()
    omega, _ = R.adapt(synnet, omega, lq, src_hq, 4, 1e-3, R.degnet_size(degnet))
    hq = images[2][1]
    truth = to_uint8(deg(hq, 2, seed=0))
    want = R.rgb_psnr(R.down_by(R.synthesise(synnet, hq, omega), 2, truth.shape), truth, 2)
    synnet.set_weights(trained)
    row = next(r for r in fitted["degradations"][1]["images"] if r["name"] == "img2")
    assert row["adapted_psnr"] == pytest.approx(want, abs=1e-4)
    assert "adapted" in R.format_table(fitted) and "adapted" not in R.format_table(plain)


def test_evaluate_report_against_numpy(run, data, tmp_path):
    from visionfw.degradation import get_protocol

    root, _ = data
    report_path = tmp_path / "reports" / "redeg.json"
    r = run_cli("-m visionfw", "redeg", "evaluate", "--run", run, "--protocol", SPECS[0],
                "--protocol", SPECS[1], "--dataset", root / "set", "--json", report_path,
                "--draws", "2")
    assert r.returncode == 0, r.stderr
    assert "synthesised" in r.stdout and "retrieval" in r.stdout
    report = json.loads(report_path.read_text())
    assert report["scale"] == 2 and report["source"] == "img0"      # the run's --scale
    assert report["training_chain"] == "noise(5~20)+resize(2~3)"
    assert set(report["protocol"]) >= {"psnr", "synthesised", "bicubic", "training_mean"}
    assert report["images"] == ["img1", "img2", "img3"]
    assert len(report["degradations"]) == 2
    for entry in report["degradations"]:
        for key in ("synthesised_psnr", "bicubic_psnr", "training_mean_psnr"):
            per_image = [row[key] for row in entry["images"]]
            assert len(per_image) == 3 and all(np.isfinite(per_image))
            assert entry[key] == pytest.approx(np.mean(per_image))
    # the bicubic baseline of img2 under the blur, recomputed: the HQ file in NumPy, MATLAB
    # bicubic by the NumPy reference, rounding, a 2-pixel border, PSNR
    name, deg = get_protocol(SPECS[0], 2, 0)[0]
    hq = read_image(root / "set" / "img2.png").astype(np.float64) / 255      # 40 x 52: even
    truth = np.floor(np.clip(np.asarray(deg(hq.astype(np.float32), 2, seed=0),
                                        np.float64), 0, 1) * 255 + 0.5)
    guess = np.floor(np.clip(numpy_imresize(hq, output_shape=(20, 26)), 0, 1) * 255 + 0.5)
    mse = np.mean((truth[2:-2, 2:-2] - guess[2:-2, 2:-2]) ** 2)
    row = next(r for r in report["degradations"][0]["images"] if r["name"] == "img2")
    assert report["degradations"][0]["name"] == name
    assert row["bicubic_psnr"] == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-6)
    # the noise drawn again: only under the noisy degradation, recomputed for img2
    assert "noise_redrawn_psnr" not in report["degradations"][0]
    assert "noise_redrawn" in report["protocol"]
    name, deg = get_protocol(SPECS[1], 2, 0)[0]
    truth, again = (np.floor(np.clip(np.asarray(deg(hq.astype(np.float32), 2, seed=0, **kw),
                                                np.float64), 0, 1) * 255 + 0.5)
                    for kw in ({}, {"noise_seed": 1}))
    mse = np.mean((truth[2:-2, 2:-2] - again[2:-2, 2:-2]) ** 2)
    entry = report["degradations"][1]
    row = next(r for r in entry["images"] if r["name"] == "img2")
    assert mse > 0 and row["noise_redrawn_psnr"] == pytest.approx(10 * np.log10(255 ** 2 / mse),
                                                                  abs=1e-6)
    assert entry["noise_redrawn_psnr"] == pytest.approx(
        np.mean([r["noise_redrawn_psnr"] for r in entry["images"]]))
    assert "D, noise again" in r.stdout
    # 2 degradations x 4 contents: chance of the same degradation 3 / 7, same content 1 / 7
    ret = report["retrieval"]
    assert ret["omegas"] == 8 and ret["degradations"] == 2 and ret["contents"] == 4
    assert ret["chance"] == pytest.approx(3 / 7) and ret["content_chance"] == pytest.approx(1 / 7)
    # among the 6 Omegas of the other three contents, 3 share the degradation
    assert ret["other_content_chance"] == pytest.approx(0.5)
    assert 0 < ret["p_value"] <= 1 and 0 < ret["other_content_p_value"] <= 1
    assert ret["permutations"] == 10000
    assert 0 <= ret["accuracy"] <= 1 and 0 <= ret["content_accuracy"] <= 1
    assert not [p for p in os.listdir(report_path.parent) if p != "redeg.json"]   # no temp


def test_nearest_neighbour_accuracy_by_hand():
    from visionfw.evaluate.redeg import nearest_neighbour_accuracy

    vectors = [[0, 0], [0.1, 0], [5, 5], [5.1, 5], [10, 0]]
    # nearest: 1, 0, 3, 2 (right) and, for [10, 0], [5.1, 5] (label b: wrong)
    out = nearest_neighbour_accuracy(vectors, ["a", "a", "b", "b", "a"])
    # chance: each a has 2 of 4 others alike, each b 1 of 4: (3 * 0.5 + 2 * 0.25) / 5
    assert out == {"accuracy": pytest.approx(0.8), "chance": pytest.approx(0.4), "count": 5}
    # a tie goes to the first: [1, 0] is as near to [0, 0] as to [2, 0] and takes [0, 0]'s
    # label (right); [0, 0] -> [1, 0] right, [2, 0] -> [1, 0] wrong
    out = nearest_neighbour_accuracy([[0, 0], [1, 0], [2, 0]], [0, 0, 1])
    assert out["accuracy"] == pytest.approx(2 / 3) and out["chance"] == pytest.approx(1 / 3)


def test_nearest_neighbour_accuracy_among_other_groups():
    from visionfw.evaluate.redeg import nearest_neighbour_accuracy

    # two contents (groups 0, 1) under degradations a, b: each vector's nearest overall is
    # its own content's other vector (wrong degradation); among the other content's vectors
    # the nearest is of its own degradation
    vectors = [[0, 0], [0, 1], [10, 0.2], [10, 1.2]]
    labels, groups = ["a", "b", "a", "b"], [0, 0, 1, 1]
    assert nearest_neighbour_accuracy(vectors, labels)["accuracy"] == 0
    out = nearest_neighbour_accuracy(vectors, labels, groups=groups)
    assert out == {"accuracy": 1.0, "chance": pytest.approx(0.5), "count": 4}
    with pytest.raises(ValueError, match="no candidate"):
        nearest_neighbour_accuracy(vectors, labels, groups=[0, 0, 0, 0])


def test_permutation_p_value_against_enumeration():
    """The Monte Carlo p-value against the exact one, every within-content labelling listed."""
    import itertools

    from visionfw.evaluate.redeg import nearest_neighbour_accuracy, permutation_p_value

    rng = np.random.default_rng(4)
    contents, degradations = 4, 3
    groups = np.repeat(np.arange(contents), degradations)
    labels = np.tile(np.arange(degradations), contents)
    # the degradation weakly present, the content strongly, plus noise
    vectors = (0.6 * np.eye(degradations)[labels] + 0.8 * rng.normal(size=(contents, 3))[groups]
               + 0.5 * rng.normal(size=(len(labels), 3)))
    for exclude in (False, True):
        g = groups if exclude else None
        observed = nearest_neighbour_accuracy(vectors, labels, groups=g)["accuracy"]
        orders = list(itertools.permutations(range(degradations)))
        hits = 0
        for choice in itertools.product(orders, repeat=contents):
            shuffled = np.concatenate([np.asarray(o) for o in choice])
            acc = nearest_neighbour_accuracy(vectors, shuffled, groups=g)["accuracy"]
            hits += acc >= observed - 1e-12
        exact = hits / len(orders) ** contents
        p = permutation_p_value(vectors, labels, groups, 20000, seed=1, exclude=exclude)
        assert 0.02 < exact < 0.98          # a case where the test has something to estimate
        assert p == pytest.approx(exact, abs=0.015)
    # a representation that is the degradation alone: every shuffle does worse or as well
    perfect = np.eye(degradations)[labels] + 1e-3 * rng.normal(size=(len(labels), 3))
    assert permutation_p_value(perfect, labels, groups, 2000, seed=0) < 0.01


def test_pair_ratio_and_crops():
    from visionfw.evaluate.redeg import EvaluationError, crop_spots, pair_ratio

    assert pair_ratio((32, 48, 3), (64, 96, 3)) == 2 and pair_ratio((9, 9), (9, 9)) == 1
    assert pair_ratio((51, 50), (101, 100), scale=2) == 2        # ceil(101 / 2)
    with pytest.raises(EvaluationError, match="different aspect ratios"):
        pair_ratio((32, 16), (64, 64))
    with pytest.raises(EvaluationError, match="not an integer"):
        pair_ratio((48, 48), (64, 64))
    assert crop_spots(32, 32, 32, 5) == [(0, 0)]
    assert crop_spots(64, 40, 32, 9) == [(16, 4), (0, 0), (0, 8), (32, 0), (32, 8), (0, 4),
                                         (16, 0), (16, 8), (32, 4)]


# ---------------------------------------------------------------- one-line errors

def _refused(*args, match):
    r = run_cli("-m visionfw", "redeg", *[str(a) for a in args])
    assert r.returncode != 0, r.stdout
    assert match in r.stderr and r.stderr.startswith("error: "), r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr


def test_bad_input_is_one_line(run, data, tmp_path):
    from visionfw.train.config import write_json

    root, _ = data
    to = ["--to", root / "to", "--out", tmp_path / "out"]
    hq = root / "pairs" / "HQ" / "img0.png"
    wide = tmp_path / "wide.png"
    write_image(wide, read_image(hq)[:16])                      # 64 x 16 against 64 x 64
    third = tmp_path / "third.png"
    write_image(third, read_image(hq)[:48, :48])                # 64 / 48: not an integer
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    other = tmp_path / "other"
    other.mkdir()
    write_json(str(other / "settings.json"), {"recipe": {"name": "sr"}})
    transfer = ("transfer", "--run", run)
    _refused(*transfer, "--pair", wide, hq, *to, match="different aspect ratios")
    _refused(*transfer, "--pair", third, hq, *to, match="not an integer")
    _refused(*transfer, "--pair", tmp_path / "none.png", hq, *to, match="none.png: no such file")
    _refused(*transfer, "--pair", hq, tmp_path / "nohq.png", *to, match="nohq.png: no such file")
    _refused(*transfer, *_pair(root), "--to", tmp_path / "gone.png", "--out", tmp_path / "o",
             match="gone.png: no such file or folder")
    _refused(*transfer, *_pair(root), "--to", broken, "--out", tmp_path / "o",
             match="broken.png")
    _refused(*transfer, "--pair", broken, hq, *to, match="--pair LQ")
    _refused("transfer", "--run", other, *_pair(root), *to,
             match="not a run of train.py redegnet")
    _refused("transfer", "--run", tmp_path / "norun", *_pair(root), *to,
             match="no such run folder")
    _refused(*transfer, *_pair(root), *to, "--adapt", "-1", match="--adapt")
    _refused(*transfer, *_pair(root), *to, "--adapt", "3", "--adapt-lr", "0",
             match="--adapt-lr")
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    evaluate = ("evaluate", "--dataset", root / "set", "--json", tmp_path / "r.json")
    _refused(*evaluate, "--run", other, "--protocol", SPECS[0],
             match="not a run of train.py redegnet")
    _refused(*evaluate, "--run", run, "--protocol", "blurry(3)", match="unknown")
    _refused(*evaluate, "--run", run, "--protocol", SPECS[0], "--source", broken,
             match="--source")
    _refused("evaluate", "--run", run, "--protocol", SPECS[0], "--dataset", tmp_path / "nod",
             "--json", tmp_path / "r.json", match="no such folder")
    assert not (tmp_path / "r.json").exists()
