"""Fuzz the blind-SR command lines with bad and unusual inputs.

Each attempt either fails in one line -- exit status 2 and exactly one stderr line, starting
``error: `` (no traceback) -- or, when the input is legitimately valid, succeeds with a result
that is checked. Every case was once a traceback or a silent wrong result, or could become one.
The commands: ``test.py ikc | usrnet | nonblind | kernel-estimator`` (and ``bicubic`` with
kernel files), ``python -m visionfw sr`` and ``train.py sftmd | ikc | usrnet`` -- for these,
inputs refused before training (each would stop after one step of two 32x32 patches should it
start) and one real 1-step run.

The networks are tiny and built here (no zoo weights); the images are 48x48. The last test
prints the tally -- attempts, one-line errors, oks, tracebacks, wrong results -- and each
case's outcome with its first stderr line:

    .venv/bin/python -m pytest -q tests/test_fuzz_blind.py -rA     # add -m "not slow": 1.5 min
"""
import json
import math
import traceback

import numpy as np
import pytest

from tests.conftest import DATA
from tests.train_utils import run_cli, write_images

SLOW = pytest.mark.slow

IKC_PCA = DATA / "kernels" / "PCA_IKC_DAN" / "IKC_pca_matrix.npy"
CIRC = "gaussian(sigma=1.2,padding=circular)+direct"      # what USRNet's data step models
BLUR = "gaussian(sigma=1.2)+bicubic"                       # IKC's kind of degradation
IKC_TRAIN = "gaussian(sigma=0.2~2,size=21)+bicubic"        # recipes sftmd/ikc at x2
USRNET_TRAIN = "randomblur(size=25,padding=circular)+direct+noise(0~25,clip=false,zero=0.125)"

RESULTS = {}    # case name -> (outcome, first stderr line); outcomes: error ok traceback wrong


# ------------------------------------------------------------------------------- the inputs
@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Every file the cases name, by placeholder."""
    import h5py
    import scipy.io

    import visionfw
    from visionfw.graph.builder import attach_spec, build
    from visionfw.kernel_codes import default_pca, with_pca
    from visionfw.models import resolve_model

    if not IKC_PCA.is_file():
        pytest.skip("../shared/data is not present")
    root = tmp_path_factory.mktemp("fuzz_blind")
    p = {"root": str(root), "ikc_pca": str(IKC_PCA),
         "imgs": write_images(root / "imgs", n=2, size=(48, 48)),
         "lr_dir": write_images(root / "lr", n=2, size=(24, 24))}   # same names, x2 smaller

    def save(key, name, hp, meta=None, pca=None):
        d, name, values = resolve_model(name, **hp)
        if meta:
            d = dict(d, meta=dict(d.get("meta") or {}, **meta))
        if pca is not None:
            d = with_pca(d, pca)
        model = build(d)
        attach_spec(model, d, name, values)
        p[key] = str(root / f"{key}.weights.h5")
        visionfw.save_model(model, p[key])

    usrnet = dict(iterations=2, nc=8, nb=1, levels=3, hidden=8, scale=2)
    save("U", "usrnet", usrnet)
    save("U234", "usrnet", usrnet, meta={"trained_scales": [2, 3, 4]})
    save("U2", "usrnet", usrnet, meta={"trained_scales": [2]})
    pca4, pca10 = default_pca(4), default_pca(10)
    save("F", "sftmd", dict(nb=1, nf=8, code_len=4, scale=2), pca=pca4)
    save("F4", "sftmd", dict(nb=1, nf=8, code_len=4, scale=4), pca=pca4)
    save("P", "ikc-predictor", dict(nf=8, code_len=4, scale=2), pca=pca4)
    save("C", "ikc-corrector", dict(nf=8, code_len=4, scale=2), pca=pca4)
    save("P10", "ikc-predictor", dict(nf=8, code_len=10, scale=2), pca=pca10)
    save("Pbare", "ikc-predictor", dict(nf=8, code_len=4, scale=2))     # converted: no PCA
    save("SR2", "srresnet", dict(B=1, filters=8, scale=2))               # fixed x2, no kernel

    def write(name, text=None, data=None):
        path = root / name
        if data is not None:
            path.write_bytes(data)
        else:
            path.write_text(text)
        return str(path)

    p["txt"] = write("notes.weights.h5", "these are not weights\n")
    p["zero_bytes"] = write("zero.weights.h5", data=b"")
    with h5py.File(root / "bare.weights.h5", "w"):
        pass                                      # a valid HDF5 file holding nothing
    p["bare_h5"] = str(root / "bare.weights.h5")

    g = np.exp(-((np.arange(15) - 7.0) ** 2) / 4.0)
    good = np.outer(g, g) / np.outer(g, g).sum()
    kernels = {"k_zero": np.zeros((15, 15)), "k_two": 2 * good, "k_nan": good.copy(),
               "k_neg": good - 0.01 * np.eye(15) + 0.15 / 225,      # sums to one
               "k_1d": good.sum(0), "k_4d": good[None, None],
               "k_rect": good[:, 2:13] / good[:, 2:13].sum()}        # 15 high, 11 wide
    kernels["k_nan"][7, 7] = np.nan
    assert abs(kernels["k_neg"].sum() - 1) < 1e-9 and kernels["k_neg"].min() < 0
    for key, value in kernels.items():
        p[key] = str(root / f"{key}.npy")
        np.save(p[key], value)
    p["k_txt"] = write("kernel.npy", "0.1 0.2\n")
    p["k15_mat"] = str(root / "k15.mat")           # (1, 15, 15), as saved from Python
    scipy.io.savemat(p["k15_mat"], {"kernels": good[None].astype(np.float32)})
    p["k15_sum"] = float(good.astype(np.float32).sum())

    p["pca4"] = str(root / "own_pca.npy")          # the PCA P carries, as a file: same codes
    np.save(p["pca4"], pca4.matrix)
    p["pca_vec"] = str(root / "vector_pca.npy")
    np.save(p["pca_vec"], pca4.matrix[:, 0])
    p["pca_missing"] = str(root / "nowhere" / "pca.npy")
    p["pca_txt"] = write("text_pca.npy", "not numpy")

    bad = root / "unreadable"                      # image names, nothing readable in them
    bad.mkdir()
    (bad / "a.png").write_text("this is not an image")
    (bad / "b.png").write_bytes(b"")
    (bad / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    p["unreadable"] = str(bad)
    mixed = root / "mixed"                         # one good image beside a truncated one
    write_images(mixed, n=1, size=(48, 48))
    png = (mixed / "img0.png").read_bytes()
    (mixed / "broken.png").write_bytes(png[: len(png) // 3])
    p["mixed"] = str(mixed)
    (root / "empty").mkdir()
    p["empty_dir"] = str(root / "empty")
    return p


# ----------------------------------------------------------------- checks of valid results
def _finite(x):
    return x is not None and math.isfinite(float(x))


def report_ok(tmp, scale=2, n=2, steps=None, also=None, kernel=False):
    """The JSON report: one dataset, ``n`` images scored, finite numbers at ``scale``."""
    with open(tmp / "r.json") as f:
        report = json.load(f)
    (result,) = report["results"]
    assert len(result["images"]) == n and result["n_skipped"] == 2 - n, result
    assert int(result["scale"]) == scale, result["scale"]
    assert _finite(result["kernel_psnr" if kernel else "psnr"]), result
    if steps is not None:
        assert [s["label"] for s in result["steps"]] == [f"step {t}" for t in range(steps)]
        assert all(_finite(s["psnr"]) for s in result["steps"])
    if also is not None:
        assert _finite(result["also"][also]["psnr"]), result.get("also")
    return result


def usrnet_ok(scale):
    def check(tmp, p, out):
        report_ok(tmp, scale=scale, also="data steps alone")
        assert f"x{scale}" in out.stdout
    return check


def kernel15_ok(tmp, p, out):
    from visionfw.degradation.kernels import load_kernels

    (k,) = load_kernels(p["k15_mat"])
    assert k.shape == (15, 15) and abs(k.sum() - p["k15_sum"]) < 1e-6
    report_ok(tmp)


def ikc_ok(tmp, p, out):
    result = report_ok(tmp, steps=2)
    assert _finite(result["true_kernel_psnr"])
    assert all(_finite(s["code_error"]) for s in result["images"][0]["steps"])


def ikc_lr_dir_ok(tmp, p, out):
    result = report_ok(tmp, steps=2)
    assert "true_kernel_psnr" not in result            # no true kernel: no upper bound
    assert "nan" not in out.stdout                     # unscored columns are '-', not nan


def sr_files_ok(scale, kernels=False):
    def check(tmp, p, out):
        from visionfw.imageio import read_picture

        for name in ("img0", "img1"):
            sr = read_picture(tmp / "out" / f"{name}_x{scale}.png").rgb
            assert sr.shape == (48 * scale, 48 * scale, 3)
            if kernels:
                k = np.load(tmp / "out" / f"{name}_kernel.npy")
                assert k.ndim == 2 and np.isfinite(k).all() and abs(k.sum() - 1) < 1e-3, k
        assert f"2 image(s) super-resolved x{scale}" in out.stdout
    return check


def one_skip_ok(tmp, p, out):
    result = report_ok(tmp, n=1)
    assert [i["name"] for i in result["images"]] == ["img0"]
    assert "broken" in out.stderr + out.stdout


def trained_ok(tmp, p, out):
    import csv

    import visionfw
    from visionfw.kernel_codes import pca_of

    run = tmp / "run"
    with open(run / "val.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and _finite(rows[-1]["psnr"]), rows
    net = visionfw.load_model(run / "last.weights.h5", compile=False)
    assert pca_of(net).n_components == 4


# ---------------------------------------------------------------------------- the table
def E(name, argv, must=None, marks=()):
    """A case refused in one line (that contains ``must``, case-insensitively)."""
    return pytest.param(tuple(argv), "error", must, id=name, marks=marks)


def OK(name, argv, check, marks=()):
    """A valid case: exit 0, and ``check(tmp_path, paths, result)`` holds."""
    return pytest.param(tuple(argv), "ok", check, id=name, marks=marks)


def train_args(degradation, patch=32):
    """A run that would stop after one step of 2 patches, should it start at all."""
    return ("--degradation", degradation, "--train-dir", "{imgs}", "--val-dir", "{imgs}",
            "--out", "{tmp}/run", "--steps", "1", "--batch-size", "2", "--patch-size",
            str(patch), "--val-every", "1")


T = ("test.py",)
DS = ("--dataset", "{imgs}", "--quiet")
IKC = ("--weights", "sftmd={F}", "--weights", "predictor={P}", "--weights", "corrector={C}")
SR = ("-m visionfw", "sr", "{imgs}")
OUT = ("--out", "{tmp}/out")
TRAIN_IKC = ("train.py", "ikc", "--param", "nf=8", "--param", "code_len=4", "--scale", "2")
TRAIN_SFTMD = ("train.py", "sftmd", "--param", "nb=2", "--param", "nf=8", "--param",
               "code_len=4")
TRAIN_USRNET = ("train.py", "usrnet", "--param", "iterations=2", "--param", "nc=8", "--param",
                "nb=1", "--param", "levels=3", "--param", "hidden=8", "--scale", "2")


def usrnet(*extra, method="usrnet", weights="{U}", degradation=CIRC):
    return T + (method, "--weights", weights, "--degradation", degradation) + extra + DS


def ikc(*extra):
    return T + ("ikc",) + IKC + extra + DS


def estimator(weights, *extra, degradation=BLUR):
    return T + ("kernel-estimator", "--weights", f"model={weights}", "--degradation",
                degradation) + extra + DS


def ikc_roles(sftmd="{F}", predictor="{P}", corrector="{C}"):
    return ("--weights", f"sftmd={sftmd}", "--weights", f"predictor={predictor}", "--weights",
            f"corrector={corrector}")


CASES = [
    # --- test.py usrnet / nonblind / auto with a USRNet: what its data step cannot model
    E("usrnet-self-ensemble", usrnet("--self-ensemble"), "self-ensemble"),
    E("nonblind-usrnet-self-ensemble", usrnet("--self-ensemble", method="nonblind"),
      "self-ensemble"),
    E("auto-usrnet-self-ensemble", T + ("--weights", "{U}", "--degradation", CIRC,
                                        "--self-ensemble") + DS, "self-ensemble"),
    E("usrnet-reflect-bicubic", usrnet(degradation=BLUR), "reflect padding"),
    E("usrnet-circular-bicubic",
      usrnet(degradation="gaussian(sigma=1.2,padding=circular)+bicubic"),
      "bicubic down-sampling"),
    E("usrnet-bicubic", usrnet(degradation="bicubic"), "without blur"),
    E("usrnet-direct-offset-1",
      usrnet(degradation="gaussian(sigma=1.2,padding=circular)+direct(offset=1)"),
      "direct(offset=1) down-sampling"),
    E("nonblind-usrnet-reflect-bicubic", usrnet(method="nonblind", degradation=BLUR),
      "reflect padding"),
    E("nonblind-usrnet-circular-bicubic",
      usrnet(method="nonblind", degradation="gaussian(sigma=1.2,padding=circular)+bicubic"),
      "bicubic down-sampling"),
    E("nonblind-usrnet-bicubic", usrnet(method="nonblind", degradation="bicubic"),
      "without blur"),
    E("auto-usrnet-reflect-bicubic", T + ("--weights", "{U}", "--degradation", BLUR) + DS,
      "reflect padding"),
    E("usrnet-scale-1", usrnet("--scale", "1", weights="{U234}"), "scale 1"),
    E("usrnet-scale-5", usrnet("--scale", "5", weights="{U234}"), "scale 5"),
    E("nonblind-usrnet-scale-5", usrnet("--scale", "5", method="nonblind", weights="{U234}"),
      "scale 5"),
    E("usrnet-trained-x2-at-scale-3", usrnet("--scale", "3", weights="{U2}"), "scale 3"),
    E("usrnet-kernel-larger-than-image",
      usrnet(degradation="gaussian(sigma=9,size=99,padding=circular)+direct"),
      "larger than"),
    E("usrnet-lr-dir-no-true-kernel", usrnet("--lr-dir", "{lr_dir}"), "true kernel"),
    E("usrnet-estimator-is-corrector", usrnet("--weights", "estimator={C}",
                                              weights="model={U}"), "2 inputs"),
    E("usrnet-estimator-without-model", T + ("usrnet", "--weights", "estimator={P}",
                                             "--degradation", CIRC) + DS, "role(s) model"),
    E("usrnet-variant-matches-nothing", usrnet("--variant", "nothing*"), "nothing*"),
    E("usrnet-not-a-usrnet", usrnet(weights="{SR2}"), "takes no kernel"),
    E("usrnet-method-param-of-ikc", usrnet("--method-param", "iterations=3"), "iterations"),
    E("usrnet-tile-overlap-too-large", usrnet("--tile", "16", "--tile-overlap", "16"),
      "--tile-overlap"),
    E("usrnet-param-given-to-method", usrnet("--param", "nc=4"), "--param"),
    OK("usrnet-mat-kernel-1x15x15",
       usrnet("--json", "{tmp}/r.json",
              degradation="kernel(path={k15_mat},padding=circular)+direct"), usrnet_ok(2)),
    OK("usrnet-rectangular-kernel",
       usrnet("--json", "{tmp}/r.json",
              degradation="kernel(path={k_rect},padding=circular)+direct"), usrnet_ok(2)),
    OK("usrnet-x2-file-at-scale-3", usrnet("--scale", "3", "--json", "{tmp}/r.json",
                                           weights="{U234}"), usrnet_ok(3), marks=SLOW),
    # --- kernel files that are no blur kernels, for test.py bicubic and test.py usrnet
    *[E(f"bicubic-{k}", T + ("bicubic", "--scale", "2", "--degradation",
                             f"kernel(path={{{k}}})+bicubic") + DS, must)
      for k, must in (("k_zero", "sums to 0"), ("k_two", "sums to 2"), ("k_nan", "NaN"),
                      ("k_neg", "negative"), ("k_1d", "shape"), ("k_4d", "shape"),
                      ("k_txt", "kernel.npy"))],
    *[E(f"usrnet-{k}", usrnet(degradation=f"kernel(path={{{k}}},padding=circular)+direct"),
        must)
      for k, must in (("k_zero", "sums to 0"), ("k_two", "sums to 2"), ("k_nan", "NaN"),
                      ("k_neg", "negative"))],
    E("bicubic-kernel-file-missing", T + ("bicubic", "--scale", "2", "--degradation",
                                          "kernel(path={root}/none.npy)+bicubic") + DS,
      "no such kernel file"),
    E("bicubic-kernel-index-out-of-range",
      T + ("bicubic", "--scale", "2", "--degradation",
           "kernel(path={k15_mat},index=3)+bicubic") + DS, "out of range"),
    OK("bicubic-mat-kernel-1x15x15",
       T + ("bicubic", "--scale", "2", "--degradation", "kernel(path={k15_mat})+bicubic",
            "--json", "{tmp}/r.json") + DS, kernel15_ok),
    # --- test.py nonblind with code-conditioned networks
    E("nonblind-sftmd-no-blur", usrnet(method="nonblind", weights="{F}",
                                       degradation="bicubic"), "kernel"),
    E("nonblind-sftmd-kernel-too-large",
      usrnet(method="nonblind", weights="{F}",
             degradation="gaussian(sigma=1.2,size=25)+bicubic"), "larger than"),
    E("nonblind-predictor", usrnet(method="nonblind", weights="{P}", degradation=BLUR),
      "does not predict an image"),
    E("nonblind-sftmd-x2-at-scale-3", usrnet("--scale", "3", method="nonblind",
                                             weights="{F}", degradation=BLUR), "x3"),
    E("nonblind-two-models", usrnet("--weights", "{U}", method="nonblind", weights="{F}",
                                    degradation=BLUR), "given twice"),
    E("nonblind-sftmd-lr-dir", usrnet("--lr-dir", "{lr_dir}", "--scale", "2",
                                      method="nonblind", weights="{F}"), "true kernel"),
    OK("nonblind-sftmd-rectangular-kernel-self-ensemble",
       usrnet("--self-ensemble", "--json", "{tmp}/r.json", method="nonblind", weights="{F}",
              degradation="kernel(path={k_rect})+bicubic"), lambda tmp, p, out: report_ok(tmp)),
    OK("nonblind-sftmd-self-ensemble",
       usrnet("--self-ensemble", "--json", "{tmp}/r.json", method="nonblind", weights="{F}",
              degradation=BLUR), lambda tmp, p, out: report_ok(tmp)),
    # --- test.py kernel-estimator
    E("kernel-estimator-corrector", estimator("{C}"), "2 inputs"),
    E("kernel-estimator-sr-network", estimator("{U}"), "not kernels"),
    E("kernel-estimator-pca-of-other-signs", estimator("{P10}", "--method-param",
                                                       "pca={ikc_pca}"),
      "codes kernels differently"),
    E("kernel-estimator-pca-missing", estimator("{Pbare}", "--method-param",
                                                "pca={pca_missing}"), "no such PCA file"),
    E("kernel-estimator-pca-vector", estimator("{Pbare}", "--method-param", "pca={pca_vec}"),
      "--method-param pca"),
    E("kernel-estimator-pca-text", estimator("{Pbare}", "--method-param", "pca={pca_txt}"),
      "--method-param pca"),
    E("kernel-estimator-pca-10-for-4", estimator("{Pbare}", "--method-param",
                                                 "pca={ikc_pca}"), "10 components"),
    E("kernel-estimator-pca-10-for-own-4", estimator("{P}", "--method-param",
                                                     "pca={ikc_pca}"), "--method-param pca"),
    E("kernel-estimator-no-pca", estimator("{Pbare}"), "carries no PCA"),
    E("kernel-estimator-pca-without-value", estimator("{Pbare}", "--method-param", "pca"),
      "--method-param"),
    E("kernel-estimator-lr-dir", estimator("{P}", "--lr-dir", "{lr_dir}", "--scale", "2"),
      "true kernel"),
    E("kernel-estimator-tile", estimator("{P}", "--tile", "24"), "--tile"),
    E("kernel-estimator-self-ensemble", estimator("{P}", "--self-ensemble"),
      "--self-ensemble"),
    E("kernel-estimator-no-blur", estimator("{P}", degradation="bicubic"), "kernel"),
    OK("kernel-estimator-same-pca-file",
       estimator("{P}", "--method-param", "pca={pca4}", "--json", "{tmp}/r.json"),
       lambda tmp, p, out: report_ok(tmp, kernel=True)),
    OK("kernel-estimator-x2-predictor-at-scale-3",      # its weights fit any scale
       estimator("{P}", "--scale", "3", "--json", "{tmp}/r.json"),
       lambda tmp, p, out: report_ok(tmp, scale=3, kernel=True)),
    # --- test.py ikc: roles and options
    E("ikc-missing-roles", T + ("ikc", "--weights", "sftmd={F}") + DS,
      "no network for role(s) predictor, corrector"),
    E("ikc-no-weights", T + ("ikc",) + DS, "needs its networks"),
    E("ikc-unknown-role", ikc("--weights", "estimator={P}"), "unknown role(s) estimator"),
    E("ikc-swapped-roles", T + ("ikc",) + ikc_roles(predictor="{C}", corrector="{P}") + DS,
      "--weights predictor"),
    E("ikc-predictor-as-sftmd", T + ("ikc",) + ikc_roles(sftmd="{P}") + DS,
      "--weights sftmd"),
    E("ikc-usrnet-as-sftmd", T + ("ikc",) + ikc_roles(sftmd="{U}") + DS, "--weights sftmd"),
    E("ikc-srresnet-as-corrector", T + ("ikc",) + ikc_roles(corrector="{SR2}") + DS,
      "--weights corrector"),
    E("ikc-role-twice", ikc("--weights", "sftmd={F}"), "twice"),
    E("ikc-iterations-negative", ikc("--iterations", "-1"), "iterations"),
    E("ikc-iterations-text", ikc("--iterations", "seven"), "iterations"),
    E("ikc-iterations-given-twice", ikc("--iterations", "2", "--method-param",
                                        "iterations=3"), "give it once"),
    E("ikc-misspelt-option", ikc("--iteration", "2"), "did you mean --iterations"),
    E("ikc-tile", ikc("--tile", "24"), "--tile"),
    E("ikc-self-ensemble", ikc("--self-ensemble"), "--self-ensemble"),
    E("ikc-code-lengths-differ", T + ("ikc",) + ikc_roles(predictor="{P10}") + DS,
      "code lengths differ"),
    E("ikc-pca-file-for-own-pcas", ikc("--pca", "{ikc_pca}"), "--method-param pca"),
    E("ikc-sftmd-x4-others-x2", T + ("ikc",) + ikc_roles(sftmd="{F4}") + DS, "--scale"),
    E("ikc-sftmd-x4-at-scale-2", T + ("ikc",) + ikc_roles(sftmd="{F4}") + ("--scale", "2")
      + DS, "x4"),
    E("ikc-text-weights", T + ("ikc",) + ikc_roles(sftmd="{txt}") + DS, "notes.weights.h5"),
    E("ikc-zero-byte-weights", T + ("ikc",) + ikc_roles(predictor="{zero_bytes}") + DS,
      "zero.weights.h5"),
    E("ikc-empty-h5-weights", T + ("ikc",) + ikc_roles(corrector="{bare_h5}") + DS,
      "bare.weights.h5"),
    E("ikc-missing-file", T + ("ikc",) + ikc_roles(sftmd="{root}/none.weights.h5") + DS,
      "no such file"),
    E("ikc-not-a-run-folder", T + ("ikc", "--weights", "{imgs}") + DS,
      "not a train.py run folder"),
    E("ikc-save-steps-unwritable", ikc("--save-steps", "{txt}/steps"), "--save-steps"),
    E("ikc-true-kernel-25-pca-21", ikc("--degradation", "gaussian(sigma=1.2,size=25)+bicubic"),
      "21x21"),
    OK("ikc-one-iteration", ikc("--iterations", "1", "--degradation", BLUR, "--json",
                                "{tmp}/r.json"), ikc_ok),
    OK("ikc-given-lr-images", ikc("--iterations", "1", "--lr-dir", "{lr_dir}", "--scale", "2",
                                  "--json", "{tmp}/r.json"), ikc_lr_dir_ok, marks=SLOW),
    # --- test.py: datasets, weights and options in general
    E("test-unreadable-folder", T + ("bicubic", "--scale", "2", "--dataset", "{unreadable}",
                                     "--quiet"), "no image"),
    E("test-empty-folder", T + ("bicubic", "--scale", "2", "--dataset", "{empty_dir}",
                                "--quiet"), "empty"),
    E("test-missing-dataset", T + ("bicubic", "--scale", "2", "--dataset", "{root}/nowhere",
                                   "--quiet"), "nowhere"),
    E("test-text-weights", T + ("--weights", "{txt}") + DS, "notes.weights.h5"),
    E("test-zero-byte-weights", T + ("--weights", "{zero_bytes}") + DS, "zero.weights.h5"),
    E("test-empty-h5-weights", T + ("--weights", "{bare_h5}") + DS, "bare.weights.h5"),
    E("test-role-without-method", T + ("--weights", "sftmd={F}") + DS, "METHOD"),
    E("test-model-given-other-weights",
      T + ("sftmd", "--weights", "{P}", "--param", "nb=1", "--param", "nf=8", "--param",
           "code_len=4", "--scale", "2", "--degradation", BLUR) + DS, "--ignore-dict"),
    E("test-unknown-method", T + ("ikcc", "--weights", "{F}") + DS, "ikcc"),
    E("test-unknown-degradation", usrnet(method="nonblind", weights="{F}",
                                         degradation="gausian(sigma=1)+bicubic"), "gausian"),
    E("test-degradation-bad-value", usrnet(method="nonblind", weights="{F}",
                                           degradation="gaussian(sigma=-1)+bicubic"),
      "sigma"),
    E("test-misspelt-option", T + ("nonblind", "--weights", "{F}", "--degradaton", BLUR) + DS,
      "did you mean --degradation"),
    OK("test-skips-a-corrupt-image",
       T + ("nonblind", "--weights", "{F}", "--degradation", BLUR, "--dataset", "{mixed}",
            "--json", "{tmp}/r.json"), one_skip_ok),
    # --- python -m visionfw sr
    E("sr-missing-input", ("-m visionfw", "sr", "{root}/none.png", "--weights", "{SR2}")
      + OUT, "none.png"),
    E("sr-empty-folder", ("-m visionfw", "sr", "{empty_dir}", "--weights", "{SR2}") + OUT,
      "no PNG"),
    E("sr-out-is-a-file", SR + ("--weights", "{SR2}", "--out", "{txt}"), "--out"),
    E("sr-unknown-method", SR + ("--method", "ikcc", "--weights", "{SR2}") + OUT, "ikcc"),
    E("sr-scale-of-fixed-network", SR + ("--weights", "{SR2}", "--scale", "3") + OUT, "x3"),
    E("sr-usrnet-self-ensemble", SR + ("--weights", "{U}", "--self-ensemble") + OUT,
      "self-ensemble"),
    E("sr-usrnet-without-kernel", SR + ("--weights", "{U}") + OUT, "true kernel"),
    E("sr-usrnet-estimator-scale-5", SR + ("--method", "usrnet", "--weights", "model={U}",
                                           "--weights", "estimator={P}", "--scale", "5")
      + OUT, "scale 5"),
    E("sr-sftmd-without-kernel", SR + ("--weights", "{F}") + OUT, "true kernel"),
    E("sr-kernel-estimator", SR + ("--method", "kernel-estimator", "--weights", "model={P}")
      + OUT, "estimates kernels"),
    E("sr-ikc-missing-role", SR + ("--method", "ikc", "--weights", "sftmd={F}", "--weights",
                                   "predictor={P}") + OUT, "corrector"),
    E("sr-ikc-self-ensemble", SR + ("--method", "ikc") + IKC + ("--self-ensemble",) + OUT,
      "--self-ensemble"),
    E("sr-ikc-tile", SR + ("--method", "ikc") + IKC + ("--tile", "24") + OUT, "--tile"),
    E("sr-ikc-iterations-negative", SR + ("--method", "ikc") + IKC + ("--iterations", "-1")
      + OUT, "iterations"),
    E("sr-ikc-swapped-roles", SR + ("--method", "ikc") + ikc_roles(predictor="{C}",
                                                                   corrector="{P}") + OUT,
      "--weights predictor"),
    E("sr-text-weights", SR + ("--weights", "{txt}") + OUT, "notes.weights.h5"),
    E("sr-misspelt-option", SR + ("--weights", "{SR2}", "--scales", "2") + OUT, "--scales"),
    E("sr-roles-without-method", SR + ("--weights", "sftmd={F}") + OUT, "sftmd"),
    OK("sr-ikc", SR + ("--method", "ikc") + IKC + ("--iterations", "1") + OUT,
       sr_files_ok(2, kernels=True)),
    OK("sr-usrnet-with-estimator", SR + ("--method", "usrnet", "--weights", "model={U}",
                                         "--weights", "estimator={P}") + OUT,
       sr_files_ok(2, kernels=True), marks=SLOW),
    # --- train.py: refused before training
    E("train-ikc-x4-sftmd-at-x2", TRAIN_IKC + ("--sftmd", "{F4}") + train_args(IKC_TRAIN),
      "up-samples x4"),
    E("train-ikc-no-sftmd", TRAIN_IKC + train_args(IKC_TRAIN), "--sftmd"),
    E("train-ikc-sftmd-missing", TRAIN_IKC + ("--sftmd", "{root}/none.weights.h5")
      + train_args(IKC_TRAIN), "none.weights.h5"),
    E("train-ikc-sftmd-text", TRAIN_IKC + ("--sftmd", "{txt}") + train_args(IKC_TRAIN),
      "notes.weights.h5"),
    E("train-ikc-sftmd-is-usrnet", TRAIN_IKC + ("--sftmd", "{U}") + train_args(IKC_TRAIN),
      "not an LR image and a kernel code"),
    E("train-ikc-code-len", ("train.py", "ikc", "--param", "nf=8", "--param", "code_len=6",
                             "--scale", "2", "--sftmd", "{F}") + train_args(IKC_TRAIN),
      "code_len=4"),
    E("train-ikc-sftmd-given-twice", TRAIN_IKC + ("--sftmd", "{F}", "--recipe-param",
                                                  "sftmd={F}") + train_args(IKC_TRAIN),
      "give it once"),
    E("train-ikc-steps-per-batch-0", TRAIN_IKC + ("--sftmd", "{F}", "--steps-per-batch", "0")
      + train_args(IKC_TRAIN), "--steps-per-batch"),
    E("train-ikc-predictor-without-pca", TRAIN_IKC + ("--sftmd", "{F}", "--predictor",
                                                      "{Pbare}") + train_args(IKC_TRAIN),
      "--predictor"),
    E("train-ikc-predictor-other-code-len", TRAIN_IKC + ("--sftmd", "{F}", "--predictor",
                                                         "{P10}") + train_args(IKC_TRAIN),
      "another layout"),
    E("train-ikc-corrector-nf-negative", TRAIN_IKC + ("--sftmd", "{F}", "--corrector-nf",
                                                      "-1") + train_args(IKC_TRAIN),
      "corrector"),
    E("train-ikc-steps-per-batch-text", TRAIN_IKC + ("--sftmd", "{F}", "--steps-per-batch",
                                                     "seven") + train_args(IKC_TRAIN),
      "steps_per_batch"),
    E("train-ikc-kernel-25-for-pca-21", TRAIN_IKC + ("--sftmd", "{F}")
      + train_args("gaussian(sigma=1~2,size=25)+bicubic"), "25x25", marks=SLOW),
    E("train-ikc-no-blur", TRAIN_IKC + ("--sftmd", "{F}") + train_args("bicubic"), "kernel"),
    E("train-ikc-scales", TRAIN_IKC + ("--sftmd", "{F}", "--scales", "2,4")
      + train_args(IKC_TRAIN), "scale"),
    E("train-ikc-default-degradation-note-then-error",
      TRAIN_IKC + ("--sftmd", "{F4}", "--train-dir", "{imgs}", "--val-dir", "{imgs}", "--out",
                   "{tmp}/run", "--steps", "1", "--batch-size", "2", "--patch-size", "32"),
      "up-samples x4"),
    E("train-sftmd-scales-2-5", TRAIN_SFTMD + ("--scales", "2,5") + train_args(IKC_TRAIN),
      "scale"),
    E("train-sftmd-scale-0", TRAIN_SFTMD + ("--scale", "0") + train_args(IKC_TRAIN), "--scale"),
    E("train-sftmd-no-blur", TRAIN_SFTMD + ("--scale", "2") + train_args("bicubic"),
      "kernel"),
    E("train-sftmd-pca-missing", TRAIN_SFTMD + ("--scale", "2", "--pca", "{pca_missing}")
      + train_args(IKC_TRAIN), "pca.npy"),
    E("train-sftmd-pca-10-for-4", TRAIN_SFTMD + ("--scale", "2", "--pca", "{ikc_pca}")
      + train_args(IKC_TRAIN), "code_len"),
    E("train-sftmd-kernel-25-for-pca-21", TRAIN_SFTMD + ("--scale", "2")
      + train_args("gaussian(sigma=1~2,size=25)+bicubic"), "25x25", marks=SLOW),
    E("train-sftmd-misspelt-recipe-option", TRAIN_SFTMD + ("--scale", "2", "--steps-per-batch",
                                                           "3") + train_args(IKC_TRAIN),
      "--steps-per-batch"),
    E("train-usrnet-reflect-bicubic", TRAIN_USRNET + train_args("gaussian(sigma=2)+bicubic"),
      "reflect padding"),
    E("train-usrnet-circular-bicubic",
      TRAIN_USRNET + train_args("gaussian(sigma=2,padding=circular)+bicubic"),
      "bicubic down-sampling"),
    E("train-usrnet-no-blur", TRAIN_USRNET + train_args("direct"), "without blur"),
    E("train-usrnet-nan-kernel",
      TRAIN_USRNET + train_args("kernel(path={k_nan},padding=circular)+direct"), "NaN"),
    E("train-usrnet-patch-smaller-than-kernel", TRAIN_USRNET + train_args(USRNET_TRAIN, 16),
      "--patch-size 16"),
    E("train-usrnet-every-iteration-negative",
      TRAIN_USRNET + ("--every-iteration", "-1") + train_args(USRNET_TRAIN),
      "every_iteration"),
    OK("train-sftmd-one-step", TRAIN_SFTMD + ("--scale", "2") + train_args(IKC_TRAIN),
       trained_ok, marks=SLOW),
]


# ------------------------------------------------------------------------------- the test
def _command(args):
    """The command line a user would type."""
    import shlex

    return ".venv/bin/python " + " ".join([args[0]] + [shlex.quote(a) for a in args[1:]])


@pytest.mark.parametrize("argv, expect, extra", CASES)
def test_bad_input_is_one_line_or_valid(argv, expect, extra, paths, tmp_path, request):
    name = request.node.callspec.id
    args = [a.format(tmp=tmp_path, **paths) for a in argv]
    command = _command(args)
    try:
        out = run_cli(*args)
    except Exception:       # noqa: BLE001 - a traceback is what this test looks for
        RESULTS[name] = ("traceback", traceback.format_exc().strip().splitlines()[-1])
        pytest.fail(f"traceback from: {command}\n{traceback.format_exc()}", pytrace=False)
    lines = out.stderr.strip().splitlines()
    first = lines[0] if lines else ""

    def wrong(why):
        RESULTS[name] = ("wrong", f"{why} -- {first}")
        pytest.fail(f"{why}: {command}\nexit {out.returncode}\nstderr:\n{out.stderr[-2000:]}"
                    f"\nstdout:\n{out.stdout[-1500:]}", pytrace=False)

    if expect == "error":
        if out.returncode == 0:
            wrong("accepted (exit 0), should be refused")
        if not (out.returncode == 2 and len(lines) == 1 and first.startswith("error: ")):
            wrong("refused, but not as exit 2 with one 'error: ' line on stderr")
        if extra is not None and extra.lower() not in first.lower():
            wrong(f"the error does not say {extra!r}")
        RESULTS[name] = ("error", first)
        return
    if out.returncode != 0:
        wrong("valid input refused")
    try:
        extra(tmp_path, paths, out)
    except (AssertionError, OSError, KeyError, ValueError) as exc:
        wrong(f"ran, but the result is wrong ({type(exc).__name__}: {exc})")
    RESULTS[name] = ("ok", "")


def test_zz_tally():
    """The counts over the attempts that ran, and each one's outcome (see them with -rA)."""
    outcomes = [o for o, _ in RESULTS.values()]
    counts = {k: outcomes.count(k) for k in ("error", "ok", "traceback", "wrong")}
    print(f"\nfuzz_blind: {len(RESULTS)} attempts of {len(CASES)} cases: "
          f"{counts['error']} one-line errors, {counts['ok']} ok, "
          f"{counts['traceback']} tracebacks, {counts['wrong']} wrong results")
    for name, (outcome, line) in RESULTS.items():
        print(f"  {outcome:9s} {name}: {line[:200]}")
    assert set(outcomes) <= set(counts)
