"""IKC on tiny networks: the recipe's schedule (one Predictor step, t Corrector steps per batch,
SFTMD frozen), the correction loop's t + 1 steps, the per-step report, one-line errors."""
import numpy as np
import pytest

import visionfw
from tests.train_utils import make_trainer, tiny_config, write_images
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
    with pytest.raises(TrainError, match="its PCA gives 4-long codes but the predictor has "
                                         "code_len=6"):
        make_trainer(ikc_config(tmp_path / "b", images, sftmd, hparams={"code_len": "6"}))


def test_train_py_and_test_py_run_ikc(tmp_path, images, sftmd):
    from tests.train_utils import run_py

    out = tmp_path / "run"
    r = run_py("train.py", "ikc", "--param", "nf=8", "--param", "code_len=4", "--scale", "2",
               "--recipe-param", f"sftmd={sftmd}", "--recipe-param", "steps_per_batch=2",
               "--degradation", BLUR, "--train-dir", images, "--val-dir", images,
               "--steps", "2", "--batch-size", "2", "--patch-size", "32", "--val-every", "2",
               "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = tmp_path / "r.json"
    r = run_py("test.py", "ikc", "--weights", str(out), "--dataset", images, "--degradation",
               "gaussian(sigma=1.0)+bicubic", "--method-param", "iterations=2", "--json",
               str(report), "--quiet")
    assert r.returncode == 0, r.stderr
    import json

    data = json.loads(report.read_text())
    assert len(data["results"][0]["steps"]) == 3 and data["protocol"]["method"] == "ikc"
    r = run_py("test.py", "ikc", "--weights", f"sftmd={sftmd}", "--dataset", images)
    assert r.returncode == 2 and "no network for role(s) predictor, corrector" in r.stderr
    assert r.stderr.strip().count("\n") == 0
