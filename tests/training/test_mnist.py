"""Smoke tests: mnist trains on a tiny slice, exports, and serves raw uint8 pixels in inference
mode; a missing dataset is a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from training import mnist
from training.common.data import DatasetNotFoundError
from training.config import TrainConfig


def test_mnist_smoke(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=256, version=3)
    path = mnist.train(cfg)

    assert path == tmp_path / "mnist" / "3"
    assert {"saved_model.pb", "metadata.json", "history.png", "confusion_matrix.png"} <= {
        p.name for p in path.iterdir()
    }
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["task"] == "image_classification"
    assert metadata["labels"] == [str(d) for d in range(10)]
    assert metadata["inputs"] == [{"name": "pixels", "dtype": "uint8", "shape": [None, 28, 28, 1]}]
    # The official test set, whole: --limit cuts the training data only.
    assert metadata["splits"]["test"] == len(np.load(data_dir / "mnist" / "mnist.npz")["y_test"])
    assert len(metadata["metrics"]["confusion_matrix"]) == 10
    assert metadata["training"]["limited_to_examples"] == 256

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    pixels = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    first = serve(pixels=tf.constant(pixels))["output_0"].numpy()
    second = serve(pixels=tf.constant(pixels))["output_0"].numpy()
    assert first.shape == (5, 10)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=1e-5)
    # Augmentation layers must be off in the served graph: the same digit, the same answer.
    np.testing.assert_array_equal(first, second)


def test_course_variant_is_the_course_network():
    model = mnist.make_model("course")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer",
        "Rescaling",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    with pytest.raises(ValueError, match="unknown mnist net"):
        mnist.make_model("resnet")


def test_missing_dataset_names_the_file_and_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"mnist\.npz[\s\S]*x_train"):
        mnist.load_data(tmp_path)
