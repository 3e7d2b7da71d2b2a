"""The blind half refuses what it cannot model and never reports a silent wrong number:
decoded codes are kernels, USRNet is held to its degradation and scales at test time as in
training, a PCA that disagrees with a network's own is refused, kernel files are checked, a
run with nothing scored fails."""
import numpy as np
import pytest

import visionfw
from tests.train_utils import make_trainer, run_cli, tiny_config, write_images
from visionfw.evaluate import Dataset, EvaluationError, evaluate, make_method
from visionfw.recipes.usrnet import USRNET_TRAINING

TINY_USRNET = {"iterations": 3, "nc": 8, "nb": 1, "levels": 3, "hidden": 8, "scale": 2}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs"), n=2, size=(48, 48))


@pytest.fixture(scope="module")
def usrnet_trained_234(tmp_path_factory):
    """A tiny USRNet whose checkpoint records the scales it was trained at (2, 3, 4)."""
    from visionfw.graph.builder import attach_spec, build

    d = visionfw.model_dict("usrnet", **TINY_USRNET)
    d = dict(d, meta=dict(d["meta"], trained_scales=[2, 3, 4]))
    model = build(d)
    attach_spec(model, d, "usrnet", TINY_USRNET)
    path = tmp_path_factory.mktemp("u") / "u.weights.h5"
    visionfw.save_model(model, path)
    return path


def test_usrnet_refuses_the_self_ensemble(usrnet_trained_234, images):
    model = visionfw.load_model(usrnet_trained_234)
    for name in ("usrnet", "nonblind"):
        with pytest.raises(EvaluationError, match="cannot honour the x8 self-ensemble"):
            make_method(name, {"model": model}, scale=2, self_ensemble=True)
    r = run_cli("test.py", "usrnet", "--weights", usrnet_trained_234, "--dataset", images,
                "--self-ensemble", "--scale", "2")
    assert r.returncode == 2 and "self-ensemble" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("spec,what", [
    ("gaussian(sigma=1.2)+bicubic", "reflect padding of the blur"),
    ("gaussian(sigma=1.2,padding=circular)+bicubic", "bicubic down-sampling"),
    ("gaussian(sigma=1.2,padding=circular)+direct(offset=1)", r"direct\(offset=1\)"),
    ("bicubic", "a degradation without blur"),
])
def test_usrnet_refuses_degradations_its_data_step_does_not_model(usrnet_trained_234, images,
                                                                  spec, what):
    model = visionfw.load_model(usrnet_trained_234)
    for name in ("usrnet", "nonblind"):
        method = make_method(name, {"model": model}, scale=2)
        with pytest.raises(EvaluationError, match=what):
            evaluate(method, [Dataset.from_folder(images)], degradation=spec)
    ok = make_method("usrnet", {"model": model}, scale=2)
    report = evaluate(ok, [Dataset.from_folder(images)],
                      degradation="gaussian(sigma=1.2,padding=circular)+direct")
    assert report["results"][0]["images"]


@pytest.mark.parametrize("scale", [1, 5])
def test_usrnet_refuses_scales_it_was_not_trained_at(usrnet_trained_234, images, scale):
    r = run_cli("test.py", "usrnet", "--weights", usrnet_trained_234, "--dataset", images,
                "--scale", scale, "--degradation", "gaussian(sigma=1.2,padding=circular)+direct")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert f"cannot honour scale {scale} (trained at 2, 3, 4)" in r.stderr


def test_training_and_test_share_the_declaration(tmp_path, images):
    from visionfw.train import TrainError

    hp = {k: str(v) for k, v in TINY_USRNET.items()}
    for spec, what in (("gaussian(sigma=2)+direct", "reflect padding"),
                       ("gaussian(sigma=2,padding=circular)+bicubic", "bicubic down-sampling")):
        bad = tiny_config(tmp_path / "bad", images, model="usrnet", hparams=hp, scale=2,
                          degradation=spec)
        with pytest.raises(TrainError, match=what):
            make_trainer(bad)


def test_usrnet_records_its_trained_scales_and_trains_every_estimate(tmp_path, images):
    from visionfw.methods.accepts import accepts_of

    hp = {k: str(v) for k, v in TINY_USRNET.items()}
    config = tiny_config(tmp_path / "run", images, model="usrnet", hparams=hp, scale=2, steps=2,
                         patch_size=36, batch_size=2, scales=[2, 3],
                         recipe_params={"every_iteration": "0.5"}, degradation=USRNET_TRAINING)
    trainer = make_trainer(config)
    recipe = trainer.recipe
    net = recipe.networks["model"]
    # the estimates view is the same network: its last output is the network's output
    lr = np.random.default_rng(0).random((1, 12, 12, 3), np.float32)
    args = [lr, np.full((1, 5, 5), 1 / 25, np.float32), np.float32([2]), np.float32([0])]
    outs = recipe.estimates(args)
    assert len(outs) == TINY_USRNET["iterations"]
    np.testing.assert_allclose(np.asarray(outs[-1]), np.asarray(net(args)), atol=1e-6)
    assert {id(v) for v in recipe.estimates.weights} == {id(v) for v in net.weights}
    trainer.fit()
    saved = visionfw.load_model(tmp_path / "run" / "last.weights.h5")
    accepts = accepts_of(saved)
    assert accepts.scales == (2, 3) and not accepts.ensemble
    bad = tiny_config(tmp_path / "neg", images, model="usrnet", hparams=hp, scale=2,
                      recipe_params={"every_iteration": "-1"}, degradation=USRNET_TRAINING)
    from visionfw.train import TrainError

    with pytest.raises(TrainError, match="every_iteration=-1.0 must be >= 0"):
        make_trainer(bad)


def test_a_pca_that_disagrees_with_the_networks_own_is_refused(tmp_path, shared_data):
    from visionfw.graph.builder import attach_spec, build
    from visionfw.kernel_codes import default_pca, with_pca

    pca = default_pca()
    d = with_pca(visionfw.model_dict("ikc-predictor", nf=8), pca)
    model = build(d)
    attach_spec(model, d, "ikc-predictor", {"nf": 8})
    ikc = shared_data / "kernels" / "PCA_IKC_DAN" / "IKC_pca_matrix.npy"   # other signs
    with pytest.raises(EvaluationError, match="carries the PCA it was trained with"):
        make_method("kernel-estimator", {"model": model}, pca=str(ikc))
    same = pca.save(tmp_path / "same.h5")                 # the same PCA is accepted
    assert make_method("kernel-estimator", {"model": model}, pca=str(same)).pca.same_codes(pca)


def test_kernel_estimator_given_a_corrector_is_one_line():
    corrector = visionfw.build_model("ikc-corrector", nf=8, code_len=4, compile=False)
    with pytest.raises(EvaluationError, match="takes 2 inputs; kernel-estimator runs networks "
                                              "from the LR image alone"):
        make_method("kernel-estimator", {"model": _as_code_output(corrector)}, pca="x")


def _as_code_output(model):
    """The Corrector with meta['output'] = 'kernel_code' (as a trained one records it)."""
    from visionfw.graph.builder import attach_spec, build, model_spec

    d = model_spec(model)["dict"]
    d = dict(d, meta=dict(d.get("meta") or {}, output="kernel_code"))
    out = build(d)
    attach_spec(out, d)
    return out


@pytest.mark.parametrize("content,what", [
    (np.zeros((9, 9)), "sums to 0, not 1"),
    (np.full((9, 9), 2 / 81), "sums to 2, not 1"),
    (np.full((9, 9), np.nan), "NaN"),
    (np.full((9, 9), 1 / 81) + np.pad([[-0.05, 0.05]], ((4, 4), (3, 4))), "negative taps"),
])
def test_kernel_files_are_checked_on_load(tmp_path, images, content, what):
    path = tmp_path / "k.npy"
    np.save(path, content)
    r = run_cli("test.py", "bicubic", "--dataset", images, "--scale", "2",
                "--degradation", f"kernel(path={path})+bicubic")
    assert r.returncode == 2 and what in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_leading_singleton_axis_in_a_mat_file_is_dropped(tmp_path):
    import scipy.io

    from visionfw.degradation.kernels import load_kernels

    k = np.outer(np.hanning(17)[1:-1], np.hanning(17)[1:-1])
    k /= k.sum()
    scipy.io.savemat(tmp_path / "k.mat", {"kernels": k[None]})
    (only,) = load_kernels(tmp_path / "k.mat")
    np.testing.assert_allclose(only, k)


def test_test_py_fails_when_nothing_was_scored(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    r = run_cli("test.py", "bicubic", "--dataset", folder, "--scale", "2")
    assert r.returncode == 2 and "no image could be scored" in r.stderr


def test_a_spec_degradation_prints_the_data_steps_row(usrnet_trained_234, images):
    r = run_cli("test.py", "usrnet", "--weights", usrnet_trained_234, "--dataset", images,
                "--scale", "2", "--degradation", "gaussian(sigma=1.2,padding=circular)+direct",
                "--quiet")
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("data steps alone") for line in r.stdout.splitlines())
