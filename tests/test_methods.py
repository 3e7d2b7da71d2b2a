"""Methods in test.py: registered runners of networks given by role."""
import numpy as np
import pytest

import visionfw
from tests.train_utils import run_cli, train_tiny_run, write_images
from visionfw.degradation import fit_pca, kernel_psnr
from visionfw.evaluate import Dataset, EvaluationError, evaluate, make_method


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs"), n=2, size=(40, 44))


def test_kernel_estimator_is_scored_in_kernel_space(folder, tmp_path):
    pca = fit_pca(n_components=4, keep_mean=False, n_kernels=2000, seed=1)
    path = pca.save(tmp_path / "pca.h5")
    model = visionfw.build_model("ikc-predictor", nf=8, code_len=4, compile=False)
    method = make_method("kernel-estimator", {"model": model}, pca=str(path))
    spec = "gaussian(sigma=1.5)+bicubic"
    report = evaluate(method, [Dataset.from_folder(folder)], degradation=spec)
    result = report["results"][0]
    assert "psnr" not in result and np.isfinite(result["kernel_psnr"])
    # the row is the kernel PSNR of the decoded code against the true kernel
    from visionfw.evaluate.datasets import crop_to_multiple
    from visionfw.imageio import read_image

    hr = crop_to_multiple(read_image(f"{folder}/img0.png"), 4)
    from visionfw.degradation import get_protocol

    _, deg = get_protocol(spec, 4)[0]
    lr, labels = deg.degrade(hr.astype(np.float32) / 255, 4, seed="img0")
    code = np.asarray(model(np.asarray(lr)[None]))[0]
    kernel = pca.decode(code[None])[0]
    assert result["images"][0]["kernel_psnr"] == pytest.approx(
        kernel_psnr(kernel, labels["kernel"]), abs=1e-4)
    text = visionfw.evaluate.format_report(report)
    assert "kernel PSNR" in text and "mean" in text


def test_method_errors_are_one_line(folder, tmp_path):
    model = visionfw.build_model("ikc-predictor", nf=8, code_len=4, compile=False)
    with pytest.raises(EvaluationError, match="carries no PCA: give the one that decodes it"):
        make_method("kernel-estimator", {"model": model})
    with pytest.raises(EvaluationError, match="--tile and --self-ensemble"):
        make_method("kernel-estimator", {"model": model}, tile=16, pca="x")
    with pytest.raises(EvaluationError, match=r"no network for role\(s\) model"):
        make_method("sr", {"sftmd": model})
    with pytest.raises(EvaluationError, match="unknown method 'nonblnd'; did you mean "
                                              "'nonblind'"):
        make_method("nonblnd", {"model": model})
    sr = visionfw.build_model("srresnet", B=1, filters=8, scale=2, compile=False)
    with pytest.raises(EvaluationError, match="does not predict an image"):
        make_method("nonblind", {"model": model})
    with pytest.raises(EvaluationError, match=r"method sr has no parameter \(--method-param\) "
                                              "pca; valid: none"):
        make_method("sr", {"model": sr}, pca="x")
    weights = tmp_path / "p.weights.h5"
    visionfw.save_model(model, weights)
    r = run_cli("test.py", "kernel-estimator", "--weights", f"model={weights}", "--dataset",
               folder, "--degradation", "gaussian(sigma=1)+bicubic", "--method-param",
               "pca=nope.npy")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "nope.npy: no such PCA file" in r.stderr
    r = run_cli("test.py", "--weights", f"sftmd={weights}", "--dataset", folder)
    assert r.returncode == 2 and "roles belong to a METHOD" in r.stderr


def test_a_run_folder_names_its_networks(folder, tmp_path):
    out = tmp_path / "run"
    r = train_tiny_run(out, folder)
    assert r.returncode == 0, r.stderr
    a = run_cli("test.py", "--weights", str(out), "--dataset", folder, "--quiet")
    b = run_cli("test.py", "--weights", str(out / "best.weights.h5"), "--dataset", folder,
               "--quiet")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    def scores(out):                        # the table's last row; the time line differs
        return [line for line in out.splitlines() if not line.startswith("time:")][-1]

    assert "mean" in scores(a.stdout) and scores(a.stdout) == scores(b.stdout)
    r = run_cli("test.py", "--weights", str(tmp_path), "--dataset", folder)
    assert r.returncode == 2 and "not a train.py run folder" in r.stderr
