"""rank-datasets: one run per training set, a matrix of gains (rows: evaluation sets)."""
import json

from tests.train_utils import tiny_config, write_images
from visionfw.train.rank import format_matrix, rank_datasets


def test_rank_datasets_matrix_and_reuse(tmp_path, capsys):
    a = write_images(tmp_path / "setA", n=2, seed=1)
    b = write_images(tmp_path / "setB", n=2, seed=2)
    e1 = write_images(tmp_path / "evalX", n=1, seed=3)
    e2 = write_images(tmp_path / "evalY", n=1, seed=4)
    base = tiny_config(tmp_path / "runs", a, steps=4)
    out = tmp_path / "rank.json"
    report = rank_datasets(base, [a, b], [e1, e2], json_path=str(out), log=lambda m: None,
                           progress=False)
    assert report["train_datasets"] == ["setA", "setB"]
    assert report["eval_datasets"] == ["evalX", "evalY"]
    gain, psnr, bic = report["gain"], report["psnr"], report["bicubic_psnr"]
    assert len(gain) == 2 and all(len(row) == 2 for row in gain)
    for i in range(2):
        for j in range(2):
            assert abs(gain[i][j] - (psnr[i][j] - bic[i])) < 1e-3
    assert json.loads(out.read_text())["gain"] == gain
    table = capsys.readouterr().out
    assert table == format_matrix(report) + "\n"
    assert table.splitlines()[1].split() == ["eval", "\\", "train", "setA", "setB", "bicubic"]
    assert (tmp_path / "runs" / "setA" / "last.weights.h5").is_file()
    # a second ranking reuses the finished runs and gives the same matrix
    again = rank_datasets(base, [a, b], [e1, e2], log=lambda m: None, progress=False)
    assert again["gain"] == gain
