"""Simpsons: the Kaggle-layout loader on a fake tree, near-duplicate grouping, scene-grouped
splits, and a smoke run on the real frames that exports explanation signatures."""

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
    and a character outside the 20 (barney_gumble) that must be left out."""
    root = tmp_path / "simpsons-characters"
    frames = root / "simpsons_dataset" / "simpsons_dataset"
    tests = root / "kaggle_simpson_testset" / "kaggle_simpson_testset"
    for c, character in enumerate([*FRAME_CHARACTERS, "barney_gumble"]):
        for i in range(8):
            write_jpeg(frames / character / f"pic_{i:04d}.jpg", (40, 30), seed=100 * c + i)
        for n in range(2):
            write_jpeg(tests / f"{character}_{n}.jpg", (36, 36), seed=1000 + 10 * c + n)
    return tmp_path


def test_loader_reads_the_full_kaggle_layout(kaggle_tree):
    pool, official = simpsons.find_frames(kaggle_tree)
    assert sorted(set(pool.characters)) == FRAME_CHARACTERS
    assert len(pool.paths) == 8 * len(FRAME_CHARACTERS)
    # The test set's "<character>_<n>.jpg" names give the class; other characters are skipped.
    assert sorted(official.characters) == sorted(FRAME_CHARACTERS * 2)


def test_every_image_reaches_the_model_as_64x64_rgb(kaggle_tree):
    pool, official = simpsons.find_frames(kaggle_tree)
    pixels = simpsons.load_pixels(pool.paths)
    assert pixels.shape == (len(pool.paths), 64, 64, 3) and pixels.dtype == np.uint8
    assert simpsons.load_pixels(official.paths[:3]).shape == (3, 64, 64, 3)


def test_missing_data_names_the_folder_and_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="simpsons_dataset"):
        simpsons.find_frames(tmp_path)


def test_near_copies_of_a_frame_are_one_group_and_never_straddle_splits():
    rng = np.random.default_rng(0)
    # Smooth pictures, like cartoon frames: random 6x6 colours enlarged to 64x64.
    small = rng.integers(0, 256, (30, 6, 6, 3)).astype(np.uint8)
    scenes = np.stack(
        [np.asarray(Image.fromarray(s).resize((64, 64), Image.BILINEAR)) for s in small]
    )
    # Each scene twice more: brighter, and shifted by a pixel (the next frame of a shot).
    brighter = np.clip(scenes.astype(int) + 12, 0, 255).astype(np.uint8)
    shifted = np.roll(scenes, 1, axis=2)
    pixels = np.concatenate([scenes, brighter, shifted])
    characters = ["bart_simpson"] * len(pixels)
    hashes = simpsons.difference_hash(pixels)
    groups = simpsons.near_duplicate_groups(hashes, characters, simpsons.DUPLICATE_BITS)
    scene = np.tile(np.arange(30), 3)
    # Copies of one scene share a group; different scenes (random images) do not.
    assert all(len(set(groups[scene == s])) == 1 for s in range(30))
    assert len(set(groups)) == 30
    # The same picture under two characters is two groups (hashes are compared per character).
    two = simpsons.near_duplicate_groups(
        hashes[:2].repeat(2), ["bart_simpson", "lisa_simpson"] * 2, simpsons.DUPLICATE_BITS
    )
    assert two[0] != two[1]

    y = np.concatenate([np.repeat(np.arange(3), 10)] * 3)  # 3 classes, 10 scenes each
    train, validation, test = simpsons.split_by_group(groups, y, seed=0)
    assert len(train) + len(validation) + len(test) == len(pixels)
    for a, b in ((train, validation), (train, test), (validation, test)):
        assert not set(groups[a]) & set(groups[b])


def test_train_export_reload_serves_raw_pixels_and_explains(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=120, version=1)
    path = simpsons.train(cfg)

    meta = json.loads((path / "metadata.json").read_text())
    labels = meta["labels"]
    assert labels == sorted(labels) and set(labels) <= set(simpsons.CHARACTERS)
    assert len(labels) >= 18
    assert meta["image"]["height"] == meta["image"]["width"] == 64
    assert meta["inputs"] == [{"name": "pixels", "dtype": "uint8", "shape": [None, 64, 64, 3]}]
    assert sum(meta["splits"].values()) == 120
    assert "CC BY-NC-SA 4.0" in meta["data"]["license"] and "Fox" in meta["data"]["license"]
    assert meta["explain"]["gradcam"]["layer"] in meta["explain"]["activations"]

    loaded = tf.saved_model.load(str(path))
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    out = loaded.signatures["serving_default"](pixels=tf.constant(pixels))["output_0"].numpy()
    assert out.shape == (3, len(labels))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    heatmap = loaded.signatures["gradcam"](pixels=tf.constant(pixels))["heatmap"].numpy()
    assert heatmap.shape[0] == 3 and heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6
