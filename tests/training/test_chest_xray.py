"""Smoke test of the chest X-ray CNN: tiny training run, export, reload, raw uint8 pixels in."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from training import chest_xray
from training.config import TrainConfig


def test_class_weights_balance_the_classes():
    y = np.array([0] * 10 + [1] * 30)
    weights = chest_xray.class_weights(y)
    assert weights[0] * 10 == weights[1] * 30  # each class carries the same total weight
    assert weights[0] > weights[1]


def test_splits_are_disjoint_and_stratified(data_dir):
    splits = chest_xray.load_splits(data_dir, seed=42)
    paths = {k: set(x) for k, (x, _) in splits.items()}
    assert not paths["train"] & paths["test"]
    assert not paths["validation"] & paths["test"]
    assert not paths["train"] & paths["validation"]
    shares = {k: float(np.mean(y)) for k, (_, y) in splits.items()}
    assert max(shares.values()) - min(shares.values()) < 0.01  # same PNEUMONIA share everywhere


def test_train_export_reload_serves_raw_pixels(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=32, version=1)
    path = chest_xray.train(cfg)

    meta = json.loads((path / "metadata.json").read_text())
    assert meta["task"] == "image_classification"
    assert meta["labels"] == ["NORMAL", "PNEUMONIA"]
    height, width, channels = (meta["image"][k] for k in ("height", "width", "channels"))
    assert meta["image"]["background"] == "natural"
    assert meta["inputs"] == [
        {"name": "pixels", "dtype": "uint8", "shape": [None, height, width, channels]}
    ]
    assert meta["splits"] == {"train": 32, "validation": 32, "test": 32}
    assert meta["training"]["limited_to_examples"] == 32
    assert "CC BY 4.0" in meta["data"]["license"]
    assert (path / "history.png").is_file() and (path / "confusion_matrix.png").is_file()

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    pixels = np.random.default_rng(0).integers(0, 256, (3, height, width, channels), dtype=np.uint8)
    out = serve(pixels=tf.constant(pixels))["output_0"].numpy()
    assert out.shape == (3, 1)
    assert np.all((out >= 0) & (out <= 1))
