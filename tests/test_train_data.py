"""The training pipeline: corrupt files skipped by name, deterministic batches, HDF5 cache."""
import os

import numpy as np
import pytest

from tests.train_utils import write_images
from visionfw.data import DataError
from visionfw.data.images import ImageSet
from visionfw.data.pipeline import PatchPipeline, augment8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = write_images(tmp_path_factory.mktemp("imgs"), n=3)
    with open(os.path.join(folder, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n this is not an image")
    return folder


def test_corrupt_image_is_skipped_and_named(folder, capsys):
    images = ImageSet.from_folders([folder])
    err = capsys.readouterr().err
    assert images.names == ["img0", "img1", "img2"]
    lines = [l for l in err.splitlines() if "broken.png" in l]
    assert len(lines) == 1 and lines[0].startswith("warning: skipping ")


def test_batches_depend_on_seed_and_step_only(folder):
    images = ImageSet.from_folders([folder])
    pipe = PatchPipeline(images, scale=2, patch_size=16, batch_size=4, seed=7)
    full = [(b["lr"].numpy(), b["hr"].numpy()) for b in pipe.dataset(0, 4)]
    late = [(b["lr"].numpy(), b["hr"].numpy()) for b in pipe.dataset(2, 4)]
    for (a, b), (c, d) in zip(full[2:], late):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert full[0][1].shape == (4, 16, 16, 3) and full[0][0].shape == (4, 8, 8, 3)
    assert not np.array_equal(full[0][1], full[1][1])
    # two replicas (one pipeline feeding both) see the two halves of the same batch
    halves = [b["hr"].numpy() for b in pipe.dataset(3, 4, replicas=2, local_replicas=2)]
    np.testing.assert_array_equal(np.concatenate(halves), full[3][1])
    # a second worker's pipeline gives the second half
    second = [b["hr"].numpy() for b in pipe.dataset(3, 4, replicas=2, first_replica=1)]
    np.testing.assert_array_equal(second[0], full[3][1][2:])
    other = PatchPipeline(images, scale=2, patch_size=16, batch_size=4, seed=8)
    assert not np.array_equal(next(iter(other.dataset(0, 1)))["hr"], full[0][1])


def test_lr_is_matlab_bicubic_of_the_hr_patch(folder):
    from visionfw.resize import imresize

    pipe = PatchPipeline(ImageSet.from_folders([folder]), scale=2, patch_size=16, batch_size=2)
    batch = next(iter(pipe.dataset(0, 1)))
    lr, hr = batch["lr"], batch["hr"]
    hr8 = np.round(hr.numpy() * 255).astype(np.uint8)
    expected = np.asarray(imresize(hr8.astype(np.float32) / 255.0, scale=0.5))
    np.testing.assert_allclose(lr.numpy(), np.clip(np.floor(expected * 255 + 0.5), 0, 255) / 255,
                               atol=1.5 / 255)


def test_the_eight_flips_and_rotations_are_distinct():
    x = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    outs = {augment8(x, np.int64(c)).numpy().tobytes() for c in range(8)}
    assert len(outs) == 8


def test_h5_cache_gives_the_same_patches_and_is_reused(folder, tmp_path, capsys):
    path = str(tmp_path / "cache.h5")
    memory = ImageSet.from_folders([folder])
    cached = ImageSet.from_folders([folder], cache=f"h5:{path}")
    assert os.path.isfile(path) and cached.names == memory.names
    a = PatchPipeline(memory, 2, 16, 4, seed=1)
    b = PatchPipeline(cached, 2, 16, 4, seed=1)
    for x, y in zip(a.dataset(0, 2), b.dataset(0, 2)):
        np.testing.assert_array_equal(x["hr"].numpy(), y["hr"].numpy())
    capsys.readouterr()
    mtime = os.path.getmtime(path)
    again = ImageSet.from_folders([folder], cache=f"h5:{path}")
    assert os.path.getmtime(path) == mtime and again.names == memory.names
    assert "broken.png" in capsys.readouterr().err      # still reported on reuse


def test_bad_settings_are_data_errors(folder):
    images = ImageSet.from_folders([folder])
    with pytest.raises(DataError, match="multiple of --scale"):
        PatchPipeline(images, scale=3, patch_size=16, batch_size=2)
    with pytest.raises(DataError, match="no training image is at least 128x128"):
        PatchPipeline(images, scale=2, patch_size=128, batch_size=2)
    with pytest.raises(DataError, match="expected 'memory' or 'h5:PATH'"):
        ImageSet.from_folders([folder], cache="disk")
