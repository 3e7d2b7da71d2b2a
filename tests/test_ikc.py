"""IKC on tiny networks: the recipe's schedule (one Predictor step, t Corrector steps per batch,
SFTMD frozen), the correction loop's t + 1 steps, the per-step report, one-line errors."""
import numpy as np
import pytest

import visionfw
from tests.train_utils import (assert_same_steps_on_both_paths, make_trainer, tiny_config,
                               write_images)
from visionfw.evaluate import Dataset, EvaluationError, evaluate, format_report, make_method
from visionfw.train import TrainError

BLUR = "gaussian(sigma=0.5~3)+bicubic"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs"), n=2, size=(48, 48))


@pytest.fixture(scope="module")
def sftmd(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("sftmd") / "run"
    trainer = make_trainer(tiny_config(out, images, model="sftmd", scale=2, steps=2,
                                       hparams={"nb": "1", "nf": "8", "code_len": "4"},
                                       patch_size=32, degradation=BLUR))
    trainer.fit()
    return out / "last.weights.h5"


def ikc_config(out, images, sftmd, **extra):
    params = {"sftmd": str(sftmd), "steps_per_batch": "3", **extra.pop("params", {})}
    return tiny_config(out, images, model="ikc-predictor", recipe="ikc", scale=2, steps=2,
                       hparams={"nf": "8", "code_len": "4", **extra.pop("hparams", {})},
                       patch_size=32, degradation=BLUR, recipe_params=params, **extra)


@pytest.fixture(scope="module")
def ikc_run(tmp_path_factory, images, sftmd):
    out = tmp_path_factory.mktemp("ikc") / "run"
    trainer = make_trainer(ikc_config(out, images, sftmd))
    frozen = [np.array(v) for v in trainer.recipe.networks["sftmd"].weights]
    trainer.fit()
    return out, trainer, frozen


def test_the_recipe_steps_the_corrector_t_times_per_batch(ikc_run):
    out, trainer, frozen = ikc_run
    opts = trainer.recipe.optimizers
    assert int(opts["predictor"].iterations.numpy()) == 2
    assert int(opts["corrector"].iterations.numpy()) == 6         # 3 per batch
    # both follow the run's schedule of training steps, not their own update counts
    from visionfw.train.schedule import PerTrainingStep

    schedule = trainer.recipe.schedule
    rate = opts["corrector"]._learning_rate
    assert isinstance(rate, PerTrainingStep) and rate.updates == 3
    assert float(rate(3)) == pytest.approx(float(schedule(1)))     # update 3 is in step 1
    assert float(schedule(1)) != pytest.approx(float(schedule(3)))
    for name in ("predictor", "corrector"):
        assert float(np.asarray(opts[name].learning_rate)) == pytest.approx(
            float(schedule(2)), rel=1e-6), name
    for a, b in zip(frozen, trainer.recipe.networks["sftmd"].weights):
        np.testing.assert_array_equal(a, np.asarray(b))          # SFTMD is frozen
    for name in ("last.weights.h5", "last.predictor.weights.h5", "sftmd.weights.h5"):
        assert (out / name).is_file(), name
    assert visionfw.load_model(out / "last.weights.h5").name == "IKCCorrector"


def test_the_loop_returns_every_step_and_the_report_has_every_row(ikc_run, images, tmp_path):
    out = ikc_run[0]
    nets = {"sftmd": visionfw.load_model(out / "sftmd.weights.h5"),
            "predictor": visionfw.load_model(out / "last.predictor.weights.h5"),
            "corrector": visionfw.load_model(out / "last.weights.h5")}
    method = make_method("ikc", nets, iterations=3)
    lr = np.random.default_rng(0).random((12, 12, 3), np.float32)
    from visionfw.degradation import gaussian_kernel

    result = method(lr, None, {"kernel": gaussian_kernel(21, 1.5)})
    assert len(result["steps"]) == 4                               # t + 1 codes and images
    assert all(s["image"].shape == (24, 24, 3) for s in result["steps"])
    np.testing.assert_array_equal(result["sr"][0], result["steps"][-1]["image"])
    report = evaluate(method, [Dataset.from_folder(images)],
                      degradation="gaussian(sigma=1.5)+bicubic", save_steps=tmp_path / "steps")
    written = sorted(p.name for p in (tmp_path / "steps" / Dataset.from_folder(images).name)
                     .iterdir())
    assert "img0_kernels.png" in written and "img0_step3.png" in written
    assert len([n for n in written if n.startswith("img0_step")]) == 4
    r = report["results"][0]
    assert [s["label"] for s in r["steps"]] == ["step 0", "step 1", "step 2", "step 3"]
    assert r["psnr"] == pytest.approx(r["steps"][-1]["psnr"])
    assert r["oracle_psnr"] >= max(s["psnr"] for s in r["steps"]) - 1e-9
    assert np.isfinite(r["true_kernel_psnr"])
    text = format_report(report)
    for row in ("bicubic", "step 0 (predictor only)", "last step", "oracle", "true kernel"):
        assert row in text


def test_bad_roles_and_code_lengths_are_one_line_errors(ikc_run, images, sftmd, tmp_path):
    out = ikc_run[0]
    f = visionfw.load_model(out / "sftmd.weights.h5")
    p = visionfw.load_model(out / "last.predictor.weights.h5")
    c = visionfw.load_model(out / "last.weights.h5")
    with pytest.raises(EvaluationError, match=r"no network for role\(s\) corrector"):
        make_method("ikc", {"sftmd": f, "predictor": p})
    with pytest.raises(EvaluationError, match="--weights sftmd: IKCPredictor takes image"):
        make_method("ikc", {"sftmd": p, "predictor": p, "corrector": c})
    longer = visionfw.build_model("ikc-predictor", nf=8, code_len=5, scale=2, compile=False)
    with pytest.raises(EvaluationError, match="code lengths differ"):
        make_method("ikc", {"sftmd": f, "predictor": longer, "corrector": c})
    with pytest.raises(TrainError, match="needs the trained SFTMD"):
        make_trainer(ikc_config(tmp_path / "a", images, sftmd, params={"sftmd": ""}))
    with pytest.raises(TrainError, match="^--sftmd .*: its PCA gives 4-long codes but the "
                                         "predictor has code_len=6"):
        make_trainer(ikc_config(tmp_path / "b", images, sftmd, hparams={"code_len": "6"}))


def test_train_py_and_test_py_run_ikc(tmp_path, images, sftmd):
    import json

    from tests.train_utils import run_cli

    out = tmp_path / "run"
    r = run_cli("train.py", "ikc", "--param", "nf=8", "--param", "code_len=4", "--scale", "2",
               "--sftmd", str(sftmd), "--steps-per-batch", "2",     # recipe parameters
               "--degradation", BLUR, "--train-dir", images, "--val-dir", images,
               "--steps", "2", "--batch-size", "2", "--patch-size", "32", "--val-every", "2",
               "--out", str(out))
    assert r.returncode == 0, r.stderr
    settings = json.loads((out / "settings.json").read_text())
    assert settings["settings"]["recipe_params"] == {
        "sftmd": str(sftmd), "steps_per_batch": 2, "corrector_nf": 0, "predictor": "",
        "corrector": "", "train_predictor": True}
    # a run saved before a parameter existed resumes (the new one takes its default); resuming
    # with some of the recipe's parameters repeated keeps the run; a changed one is refused
    for key in ("predictor", "corrector", "train_predictor"):
        del settings["settings"]["recipe_params"][key]
    (out / "settings.json").write_text(json.dumps(settings))
    same = run_cli("train.py", "ikc", "--sftmd", str(sftmd), "--steps-per-batch", "2",
                  "--out", str(out), "--resume")
    assert same.returncode == 0, same.stderr
    other = run_cli("train.py", "ikc", "--steps-per-batch", "3", "--out", str(out), "--resume")
    assert other.returncode == 2 and "these differ" in other.stderr
    report = tmp_path / "r.json"
    r = run_cli("test.py", "ikc", "--weights", str(out), "--dataset", images, "--degradation",
               "gaussian(sigma=1.0)+bicubic", "--iterations", "2", "--json",
               str(report), "--quiet")
    assert r.returncode == 0, r.stderr
    data = json.loads(report.read_text())
    assert len(data["results"][0]["steps"]) == 3 and data["protocol"]["method"] == "ikc"
    # validation reports the last step's code error (and the predictor's): the numbers test.py
    # gives for the same weights, degradation and images
    import csv

    row = list(csv.DictReader(open(out / "val.csv")))[-1]
    r = run_cli("test.py", "ikc", "--weights", str(out), "--dataset", images, "--degradation",
               BLUR, "--method-param", "iterations=2", "--json", str(report), "--quiet")
    assert r.returncode == 0, r.stderr
    images_ = json.loads(report.read_text())["results"][0]["images"]
    for column, step in (("code_error", -1), ("predictor_code_error", 0)):
        expected = np.mean([i["steps"][step]["code_error"] for i in images_])
        assert float(row[column]) == pytest.approx(expected, rel=1e-3), column
    assert float(row["psnr"]) == pytest.approx(
        np.mean([i["steps"][-1]["psnr"] for i in images_]), abs=1e-3)
    r = run_cli("test.py", "ikc", "--weights", f"sftmd={sftmd}", "--dataset", images)
    assert r.returncode == 2 and "no network for role(s) predictor, corrector" in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_codes_of_another_pca_are_carried_into_sftmds(ikc_run):
    """A Predictor and Corrector trained with a rotated (here: sign-flipped and mixed) PCA
    share a loop with SFTMD: the method hands SFTMD ``code @ P_est^T P_sftmd``."""
    import keras

    from visionfw.graph.builder import attach_spec, build, model_spec
    from visionfw.kernel_codes import bridge, pca_of, with_pca
    from visionfw.degradation import KernelPCA, gaussian_kernel
    from visionfw.recipes.ikc import ikc_loop

    out = ikc_run[0]
    f = visionfw.load_model(out / "sftmd.weights.h5")
    own = pca_of(f)
    rotation = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))[0]
    rotated = KernelPCA(own.matrix @ rotation)
    kernel = gaussian_kernel(21, 1.2)
    assert bridge(own, own) is None
    np.testing.assert_allclose(bridge(rotated, own), rotation.T, atol=1e-12)
    # a kernel inside the span is coded the same through the bridge
    inside = own.decode(own.encode(kernel))
    np.testing.assert_allclose(rotated.encode(inside) @ bridge(rotated, own), own.encode(inside),
                               atol=1e-12)

    def relabel(path):
        net = visionfw.load_model(path)
        spec = model_spec(net)
        copy = build(with_pca(spec["dict"], rotated))
        attach_spec(copy, with_pca(spec["dict"], rotated), spec.get("name"),
                    spec.get("hparams"))
        copy.set_weights(net.get_weights())
        return copy

    p, c = relabel(out / "last.predictor.weights.h5"), relabel(out / "last.weights.h5")
    method = make_method("ikc", {"sftmd": f, "predictor": p, "corrector": c}, iterations=2)
    lr = np.random.default_rng(0).random((12, 12, 3), np.float32)
    result = method(lr, None, {"kernel": kernel})
    x = keras.ops.convert_to_tensor(lr[None])
    codes, images = ikc_loop(p, c, f, x, 2, to_sftmd=rotation.T)
    bridged = keras.ops.convert_to_tensor(np.asarray(codes[-1]) @ rotation.T.astype(np.float32))
    expected = keras.ops.convert_to_numpy(f([x, bridged]))
    np.testing.assert_allclose(result["steps"][-1]["image"], np.clip(expected[0], 0, 1),
                               atol=1e-5)
    code = np.asarray(codes[-1])[0]
    assert result["steps"][-1]["code_error"] == pytest.approx(
        float(np.mean((code - rotated.encode(kernel)[0]) ** 2)), rel=1e-4)
    # a rotated Predictor beside the run's own Corrector: its code is carried into the
    # Corrector's basis before the first correction
    own_c = visionfw.load_model(out / "last.weights.h5")
    mixed = make_method("ikc", {"sftmd": f, "predictor": p, "corrector": own_c}, iterations=1)
    result = mixed(lr, None, {"kernel": kernel})
    h0 = np.asarray(p(x)) @ rotation.T.astype(np.float32)
    sr0 = np.clip(keras.ops.convert_to_numpy(f([x, keras.ops.convert_to_tensor(h0)])), 0, 1)
    h1 = keras.ops.convert_to_numpy(own_c([keras.ops.convert_to_tensor(sr0),
                                           keras.ops.convert_to_tensor(h0)]))
    sr1 = np.clip(keras.ops.convert_to_numpy(f([x, keras.ops.convert_to_tensor(h1)])), 0, 1)
    np.testing.assert_allclose(result["steps"][1]["image"], sr1[0], atol=1e-5)
    assert result["steps"][0]["code_error"] == pytest.approx(
        float(np.mean((np.asarray(p(x))[0] - rotated.encode(kernel)[0]) ** 2)), rel=1e-4)
    # a published-style pair without a PCA needs --method-param pca
    bare = {}
    for role, net in (("predictor", p), ("corrector", c)):
        spec = model_spec(net)
        d = dict(spec["dict"], meta={k: v for k, v in spec["dict"]["meta"].items()
                                     if k != "pca"})
        bare[role] = build(d)
        attach_spec(bare[role], d)
    with pytest.raises(EvaluationError, match="carry no PCA.*--method-param pca=FILE"):
        make_method("ikc", {"sftmd": f, **bare})


def test_sr_runs_ikc_on_images_without_ground_truth(tmp_path, images, ikc_run):
    """The real-LR path: ``python -m visionfw sr`` with IKC's three networks writes the SR
    image, the last estimated kernel and, with --save-steps, every step and their kernels."""
    from tests.train_utils import run_cli
    from visionfw.imageio import read_image

    out, steps, run = tmp_path / "sr", tmp_path / "steps", ikc_run[0]
    weights = ["--weights", f"sftmd={run / 'sftmd.weights.h5'}", "--weights",
               f"predictor={run / 'last.predictor.weights.h5'}", "--weights",
               f"corrector={run / 'last.weights.h5'}"]
    r = run_cli("-m visionfw", "sr", f"{images}/img0.png", *weights,
               "--method", "ikc", "--iterations", "2", "--out", str(out), "--save-steps",
               str(steps))
    assert r.returncode == 0, r.stderr
    lr = read_image(f"{images}/img0.png")
    assert read_image(out / "img0_x2.png").shape == (2 * lr.shape[0], 2 * lr.shape[1], 3)
    assert (out / "img0_kernel.npy").is_file()
    written = sorted(p.name for p in steps.iterdir())
    assert written == ["img0_kernels.png", "img0_step0.png", "img0_step1.png", "img0_step2.png"]
    np.testing.assert_array_equal(read_image(steps / "img0_step2.png"),
                                  read_image(out / "img0_x2.png"))
    r = run_cli("-m visionfw", "sr", f"{images}/img0.png", *weights,
                "--method", "ikc", "--iteration", "2", "--out", str(out))
    assert r.returncode == 2 and "did you mean --iterations?" in r.stderr


def test_the_predictor_recipe_trains_on_codes_in_the_sftmds_pca(tmp_path, images, sftmd):
    import tensorflow as tf

    from visionfw.kernel_codes import encode, pca_of
    from visionfw.recipes.ikc import ikc_loop

    config = tiny_config(tmp_path / "p", images, model="ikc-predictor", scale=2, steps=2,
                         hparams={"nf": "8", "code_len": "4"}, patch_size=32,
                         degradation=BLUR, recipe_params={"sftmd": str(sftmd)})
    trainer = make_trainer(config, validation=True)
    assert trainer.recipe.name == "ikc-predictor"
    p = trainer.recipe.networks["predictor"]
    before = [np.array(w) for w in p.weights]
    trainer.fit()
    assert int(trainer.recipe.optimizers["predictor"].iterations.numpy()) == 2
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, p.weights))
    f = trainer.recipe.networks["sftmd"]
    np.testing.assert_allclose(pca_of(p).matrix, pca_of(f).matrix)    # the SFTMD's PCA
    scores = trainer.validate()
    item = trainer.validation.items[0]
    codes, _ = ikc_loop(p, None, f, tf.constant(item["lr"][None]), 0)
    true = encode(pca_of(f), item["labels"]["kernel"][None])
    expected = float(np.mean((np.asarray(codes[0]) - true) ** 2))
    assert scores["images"][0]["code_error"] == pytest.approx(expected, rel=1e-4)
    # the estimated kernel is a picture of the validation, not a number in val.csv
    np.testing.assert_allclose(trainer.validation.preview["pictures"]["kernel"],
                               pca_of(f).decode(np.asarray(codes[0]))[0], atol=1e-5)
    from tests.train_utils import event_tags

    assert [t for t in event_tags(tmp_path / "p") if t.startswith("val/kernel/")]
    # an IKC run can start from it
    trained = tmp_path / "p" / "last.weights.h5"
    ikc = make_trainer(ikc_config(tmp_path / "i", images, sftmd,
                                  params={"predictor": str(trained)}))
    for a, b in zip(ikc.recipe.networks["predictor"].weights, p.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    frozen = make_trainer(ikc_config(tmp_path / "k", images, sftmd,
                                     params={"predictor": str(trained),
                                             "train_predictor": "false"}))
    frozen.fit()
    assert "predictor" not in frozen.recipe.optimizers
    assert int(frozen.recipe.optimizers["corrector"].iterations.numpy()) == 6
    for a, b in zip(frozen.recipe.networks["predictor"].weights, p.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))     # kept as it started
    # a Corrector fine-tuned from an earlier run's (here: the frozen run's) starts from it
    corrector = tmp_path / "k" / "last.weights.h5"
    again = make_trainer(ikc_config(tmp_path / "m", images, sftmd,
                                    params={"predictor": str(trained), "corrector": str(corrector),
                                            "train_predictor": "false"}))
    saved = visionfw.load_model(corrector)
    assert saved.name == again.recipe.networks["corrector"].name
    for a, b in zip(again.recipe.networks["corrector"].weights, saved.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(TrainError, match="another layout than this run's Corrector"):
        make_trainer(ikc_config(tmp_path / "n", images, sftmd, params={
            "corrector": str(corrector), "corrector_nf": "4"}))
    with pytest.raises(TrainError, match="give the trained one"):
        make_trainer(ikc_config(tmp_path / "l", images, sftmd,
                                params={"train_predictor": "false"}))
    with pytest.raises(TrainError, match="has another layout"):
        make_trainer(ikc_config(tmp_path / "j", images, sftmd, hparams={"nf": "4"},
                                params={"predictor": str(trained)}))
    with pytest.raises(TrainError, match="Corrector trains together with the Predictor"):
        make_trainer(tiny_config(tmp_path / "c", images, model="ikc-corrector", scale=2,
                                 hparams={"nf": "8", "code_len": "4"}, patch_size=32,
                                 degradation=BLUR, recipe_params={"sftmd": str(sftmd)}))


def test_the_loop_gives_the_same_steps_through_xla_and_the_graph(ikc_run, monkeypatch):
    out = ikc_run[0]
    nets = {"sftmd": visionfw.load_model(out / "sftmd.weights.h5"),
            "predictor": visionfw.load_model(out / "last.predictor.weights.h5"),
            "corrector": visionfw.load_model(out / "last.weights.h5")}
    lr = np.random.default_rng(4).random((12, 16, 3), np.float32)
    steps = assert_same_steps_on_both_paths(
        monkeypatch, lambda: make_method("ikc", nets, iterations=2), lr)
    assert len(steps) == 3
