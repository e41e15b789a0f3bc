"""Simpsons: the Kaggle-layout loader on a fake tree, picture-grouped splits, and a smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from training import simpsons
from training.common.data import DatasetNotFoundError
from training.config import TrainConfig

FRAME_CHARACTERS = ["bart_simpson", "homer_simpson", "lisa_simpson", "sideshow_bob"]


def write_jpeg(path: Path, size: tuple[int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG")


@pytest.fixture
def kaggle_tree(tmp_path: Path) -> Path:
    """The full Kaggle download's nesting, tiny: 8 frames per character, 2 test images each,
    a character outside the course's 18, and a Simpsons-MNIST folder sharing file names."""
    root = tmp_path / "simpsons-characters"
    frames = root / "simpsons_dataset" / "simpsons_dataset"
    tests = root / "kaggle_simpson_testset" / "kaggle_simpson_testset"
    for c, character in enumerate([*FRAME_CHARACTERS, "lenny_leonard"]):
        for i in range(8):
            write_jpeg(frames / character / f"pic_{i:04d}.jpg", (40, 30), seed=100 * c + i)
        for n in range(2):
            write_jpeg(tests / f"{character}_{n}.jpg", (36, 36), seed=1000 + 10 * c + n)
    for i in range(4):  # same pictures as frames pic_0000..3, plus 8 of a 28-px-only character
        write_jpeg(
            tmp_path / "simpsons-mnist-rgb28/train/bart_simpson" / f"pic_{i:04d}.jpg",
            (28, 28),
            seed=i,
        )
    for i in range(8):
        write_jpeg(
            tmp_path / "simpsons-mnist-rgb28/train/ned_flanders" / f"pic_{i:04d}.jpg",
            (28, 28),
            seed=500 + i,
        )
    return tmp_path


def test_loader_reads_the_full_kaggle_layout(kaggle_tree):
    pool, official = simpsons.find_images(kaggle_tree)
    assert sorted(set(pool.characters)) == sorted([*FRAME_CHARACTERS, "ned_flanders"])
    assert pool.sources.count("frames") == 8 * len(FRAME_CHARACTERS)
    assert pool.sources.count("rgb28") == 12
    # The test set's "<character>_<n>.jpg" names give the class; non-course characters are skipped.
    assert sorted(official.characters) == sorted(FRAME_CHARACTERS * 2)
    assert set(official.sources) == {"kaggle_testset"}
    # The same file name in both sources is the same picture.
    assert pool.pictures.count("bart_simpson/pic_0000") == 2


def test_splits_keep_pictures_together_and_use_the_official_test_set(kaggle_tree):
    pool, _ = simpsons.find_images(kaggle_tree)
    labels = sorted(set(pool.characters))
    train, val, test = simpsons.split_pictures(pool, labels, seed=0, official_test=True)
    pictures = np.array(pool.pictures)
    sources = np.array(pool.sources)
    assert len(train) + len(val) + len(test) == len(pool.paths)
    assert not set(pictures[train]) & set(pictures[test])
    assert not set(pictures[train]) & set(pictures[val])
    assert not set(pictures[val]) & set(pictures[test])
    # With the Kaggle test set, only 28-px-only pictures are held out of the frames' pool.
    assert set(sources[test]) == {"rgb28"}
    assert {pool.characters[i] for i in test} == {"ned_flanders"}


def test_every_image_reaches_the_model_as_28x28_rgb(kaggle_tree):
    pool, official = simpsons.find_images(kaggle_tree)
    pixels = simpsons.load_pixels(pool, np.arange(len(pool.paths)))
    assert pixels.shape == (len(pool.paths), 28, 28, 3) and pixels.dtype == np.uint8
    assert simpsons.load_pixels(official, np.arange(3)).shape == (3, 28, 28, 3)


def test_missing_data_names_the_folder_and_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="simpsons_dataset") as excinfo:
        simpsons.find_images(tmp_path)
    assert "simpsons-mnist-rgb28" in str(excinfo.value)


def test_train_export_reload_serves_raw_pixels(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=64, version=1)
    path = simpsons.train(cfg)

    meta = json.loads((path / "metadata.json").read_text())
    labels = meta["labels"]
    assert labels == sorted(labels) and "bart_simpson" in labels
    assert len(labels) == len(set(labels)) >= 11
    assert meta["image"] == {
        **meta["image"],
        "height": 28,
        "width": 28,
        "channels": 3,
        "background": "natural",
    }
    assert meta["inputs"] == [{"name": "pixels", "dtype": "uint8", "shape": [None, 28, 28, 3]}]
    assert meta["splits"] == {"train": 64, "validation": 64, "test": 64}
    assert "CC BY-NC-SA 4.0" in meta["data"]["license"] and "Fox" in meta["data"]["license"]
    assert sum(v["n"] for v in meta["metrics"]["accuracy_by_source"].values()) == 64
    # The served candidate is chosen on validation; a limited run trains one member.
    validation = meta["validation"]
    assert set(validation["accuracy"]) == {"single", "single_mirror"}
    assert validation["served"] in validation["accuracy"]

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    out = serve(pixels=tf.constant(pixels))["output_0"].numpy()
    assert out.shape == (3, len(labels))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
