"""Training's validation reads and scores images as test.py does (one code path), so a
grayscale ground truth (Set14's bridge) is scored on its gray values in val.csv too."""
import numpy as np
import pytest

import visionfw
from visionfw.evaluate import Dataset, evaluate, resolve_dataset
from visionfw.train.validate import ValidationSet


def _by_name(rows, key):
    return {r["name"]: r[key] for r in rows}


@pytest.mark.parametrize("name,published", [("Set14", 30.24), ("Set5", None)])
def test_bicubic_validation_is_test_py_on_the_benchmarks(shared_data, name, published):
    from visionfw.train.config import TrainConfig
    from visionfw.train.run import load_validation_images

    folder = shared_data / "benchmark" / name
    config = TrainConfig(scale=2, val_dirs=[str(folder)])
    images, _ = load_validation_images(config)                  # what train.py validates on
    val = ValidationSet(images, config.scale, config.degradation, config.seed)
    model = visionfw.build_model("bicubic", scale=2, compile=False)
    # the bicubic model run through the validation, as a trained network would be
    scores = val.evaluate(lambda inputs: np.asarray(model(inputs["lr"], training=False)))
    tested = evaluate(model, [resolve_dataset(name, shared_data / "benchmark")])["results"][0]
    assert len(val) == tested["n_images"]
    if published is not None:
        assert val.bicubic_psnr == pytest.approx(published, abs=0.01)
    assert val.bicubic_psnr == pytest.approx(tested["bicubic_psnr"], abs=1e-9)
    assert val.bicubic_ssim == pytest.approx(tested["bicubic_ssim"], abs=1e-9)
    assert scores["psnr"] == pytest.approx(tested["psnr"], abs=1e-9)
    assert _by_name(scores["images"], "bicubic_psnr") == pytest.approx(
        _by_name(tested["images"], "bicubic_psnr"), abs=1e-9)
    if name == "Set14":
        assert [i["name"] for i in val.items if i["is_gray"]] == ["bridge"]


def test_a_y_model_on_a_gray_image_is_validated_as_test_py_scores_it(tmp_path):
    """A Y-only network's output against a gray ground truth: its Y with bicubic's chroma,
    reduced to gray, in both."""
    from skimage import data

    from tests.train_utils import make_trainer, tiny_config, write_images
    from visionfw.imageio import write_image

    folder = tmp_path / "val"
    write_images(folder, n=1, size=(40, 48))
    write_image(folder / "gray.png", data.camera()[100:140, 200:248])
    config = tiny_config(tmp_path / "run", folder, model="vdsr-y",
                         hparams={"depth": "3", "filters": "8"}, val_dirs=[str(folder)])
    trainer = make_trainer(config, validation=True)
    assert [i["is_gray"] for i in trainer.validation.items] == [True, False]
    scores = trainer.validate()
    tested = evaluate(trainer.recipe.main_network(), [Dataset.from_folder(folder)])
    tested = tested["results"][0]
    assert _by_name(scores["images"], "psnr") == pytest.approx(
        _by_name(tested["images"], "psnr"), abs=1e-6)
    assert scores["bicubic_psnr"] == pytest.approx(tested["bicubic_psnr"], abs=1e-9)


def test_validation_images_follow_val_seed_not_the_run_seed(tmp_path):
    """Runs of different --seed validate on the same LR images of a random degradation (so
    their val.csv compare); --val-seed changes them; a run made before the option keeps the
    images its own seed drew."""
    from tests.train_utils import make_trainer, tiny_config, write_images
    from visionfw.train.config import TrainConfig

    images = write_images(tmp_path / "img", n=2)
    spec = "gaussian(sigma=0.2~4)+bicubic+noise(0~20)"

    def val_lr(name, **extra):
        config = tiny_config(tmp_path / name, images, degradation=spec, val_dirs=[images],
                             **extra)
        return [item["lr"] for item in make_trainer(config, validation=True).validation.items]

    a, b = val_lr("a", seed=1), val_lr("b", seed=2)
    other = val_lr("c", seed=1, val_seed=5)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert all(not np.allclose(x, z) for x, z in zip(a, other))
    assert TrainConfig.from_dict({"seed": 3}).val_seed == 3
    assert TrainConfig.from_dict({"seed": 3, "val_seed": 0}).val_seed == 0
