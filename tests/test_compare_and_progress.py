"""test.py's progress (count and time left) and report names; ``python -m visionfw compare``."""
import json

import numpy as np
import pytest

import visionfw
from tests.test_evaluate import images
from tests.train_utils import run_cli
from visionfw.evaluate import Dataset, Progress, evaluate, format_duration
from visionfw.evaluate.compare import distinct_parts, format_table, report_table, run_table


def test_progress_counts_and_estimates_the_time_left():
    now = [100.0]
    lines = []
    progress = Progress(4, lines.append, clock=lambda: now[0])
    progress.next()
    progress.log("a")
    now[0] += 10.0                     # the first image took 10 s
    progress.next()
    progress.log("b")
    now[0] += 20.0                     # two done in 30 s: 15 s each, two to go
    progress.next()
    progress.log("c")
    assert lines == ["[1/4] a", "[2/4, 30s left] b", "[3/4, 30s left] c"]
    assert [format_duration(s) for s in (0, 59.4, 185, 3720)] == ["0s", "59s", "3m05s",
                                                                  "1h02m"]


def test_test_lines_carry_the_count_over_datasets_and_variants():
    lines = []
    sets = [Dataset.from_arrays("a", images(2)), Dataset.from_arrays("b", images(1, seed=1))]
    evaluate(visionfw.build_model("bicubic", scale=2), sets, log=lines.append)
    assert [line.split("]")[0].split(",")[0] + "]" for line in lines] == \
        ["[1/3]", "[2/3]", "[3/3]"]
    assert "left]" in lines[1] and "img1" in lines[1]


def test_a_report_names_a_run_by_its_folder_and_a_file_by_its_name(tmp_path):
    from visionfw.cli.evaluate import report_label

    model = visionfw.build_model("srresnet", B=1, filters=4, scale=2)
    run = tmp_path / "my_run"
    run.mkdir()
    (run / "settings.json").write_text("{}")
    visionfw.save_model(model, run / "best.weights.h5")
    visionfw.save_model(model, tmp_path / "srr_x2.weights.h5")
    assert report_label(run / "best.weights.h5") == "my_run (SRResNet)"
    assert report_label(tmp_path / "srr_x2.weights.h5") == "srr_x2 (SRResNet)"


def report(model, values, bicubic=None, also=None):
    results = []
    for i, v in enumerate(values):
        r = {"dataset": "Set5", "scale": 2, "variant": f"k{i + 1}", "model": model, "psnr": v}
        if bicubic is not None:
            r["bicubic_psnr"] = bicubic[i]
        if also is not None:
            r["also"] = {"data steps alone": {"psnr": also[i]}}
        results.append(r)
    return {"protocol": {}, "results": results}


def test_reports_side_by_side_with_their_extra_rows_and_means():
    a = report("usrnet", [30.0, 28.0], bicubic=[27.0, 26.0], also=[29.0, 29.5])
    b = report("usrnet", [31.0, 27.0])
    header, rows = report_table([("old", a), ("new", b)])
    assert header == ["dataset", "scale", "variant", "old", "old: data steps alone", "new",
                      "bicubic"]
    assert rows[0] == ["Set5", 2, "k1", 30.0, 29.0, 31.0, 27.0]
    mean = rows[-1]
    assert mean[:3] == ["Set5", 2, "mean"]
    np.testing.assert_allclose(mean[3:], [29.0, 29.25, 29.0, 26.5])
    text = format_table(header, rows, markdown=True).splitlines()
    assert text[0].startswith("| dataset | scale | variant | old |")
    assert text[-1] == "| Set5 | 2 | mean | 29.00 | 29.25 | 29.00 | 26.50 |"


def test_a_kernel_estimators_report_is_tabulated_by_kernel_psnr():
    r = {"protocol": {}, "results": [{"dataset": "B100", "scale": 4, "variant": "aniso",
                                      "model": "kernel-estimator", "kernel_psnr": 48.5}]}
    header, rows = report_table([("kenet", r)])
    assert header == ["dataset", "scale", "variant", "kernel-estimator"]
    assert rows == [["B100", 4, "aniso", 48.5]]


def test_run_folders_last_and_best(tmp_path):
    from visionfw.evaluate.compare import load_run

    run = tmp_path / "r1"
    run.mkdir()
    (run / "val.csv").write_text(
        "step,psnr,ssim,bicubic_psnr,bicubic_ssim,gain,kernel_psnr,loss,lr,seconds\n"
        "500,30.1,0.9,28,0.8,2.1,45.0,0.02,1e-4,1800\n"
        "1000,29.9,0.9,28,0.8,1.9,46.5,0.01,1e-5,3600\n")
    header, rows = run_table([load_run(run)])
    assert header[-1] == "last kernel_psnr"
    assert rows == [["r1", 1000, 1.0, 29.9, 30.1, 28.0, 0.01, 46.5]]


def test_distinct_parts_of_report_names():
    assert distinct_parts(["usr_k6_x2zero3_x2_Set5", "usr_k6_x2_Set5"]) == ["x2zero3_x2", "x2"]
    assert distinct_parts(["a_x2_Set5", "a_x4_Set5"]) == ["x2", "x4"]
    assert distinct_parts(["same", "same"]) == ["same", "same"]


def test_compare_command_and_its_errors(tmp_path):
    a, b = tmp_path / "a_x2.json", tmp_path / "a_x4.json"
    a.write_text(json.dumps(report("usrnet", [30.0])))
    b.write_text(json.dumps(report("usrnet", [31.5])))
    r = run_cli("-m visionfw", "compare", a, b)
    assert r.returncode == 0, r.stderr
    assert "x2" in r.stdout.splitlines()[0] and "31.50" in r.stdout
    r = run_cli("-m visionfw", "compare", a, tmp_path / "missing.json")
    assert r.returncode != 0 and "missing.json: no such report" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run_cli("-m visionfw", "compare", bad)
    assert r.returncode != 0 and "not a test.py JSON report" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("-m visionfw", "compare", a, "--metric", "kernel_psnr")
    assert r.returncode != 0 and "no report has it" in r.stderr


@pytest.mark.parametrize("empty", [[], None])
def test_an_empty_table_still_formats(empty):
    assert format_table(["a", "b"], empty or []).splitlines()[0].split() == ["a", "b"]
