"""Smoke tests: fashion_mnist trains on a tiny slice, exports, and serves raw uint8 pixels;
the ImageNet-transfer variant fails fast and clearly when the weights cannot be had."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from training import fashion_mnist
from training.config import TrainConfig


def test_read_idx_matches_keras_layout(data_dir):
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(data_dir)
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and set(np.unique(y_train)) == set(range(10))
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)


def test_fashion_mnist_smoke(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=256, version=1)
    path = fashion_mnist.train(cfg)

    assert path == tmp_path / "fashion_mnist" / "1"
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["labels"] == fashion_mnist.LABELS and len(metadata["labels"]) == 10
    assert metadata["variant"] == fashion_mnist.DEFAULT_VARIANT
    assert metadata["image"]["background"] == "dark"
    assert set(metadata["course_baseline"]) >= {"simple", "deep", "vgg16_scratch", "vgg16_transfer"}
    assert metadata["inputs"] == [{"name": "pixels", "dtype": "uint8", "shape": [None, 28, 28, 1]}]

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    probabilities = serve(pixels=tf.constant(pixels))["output_0"].numpy()
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown variant"):
        fashion_mnist.make_model("resnet")


def test_vgg16_transfer_fails_clearly_offline(tmp_path, monkeypatch):
    """No cached weights and no network: a clear error, fast, before any data is read."""

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fashion_mnist, "WEIGHTS_CACHE_DIR", str(tmp_path / "keras"))
    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    cfg = TrainConfig(data_dir=tmp_path / "no-data", out_dir=tmp_path, variant="vgg16_transfer")

    start = time.monotonic()
    with pytest.raises(fashion_mnist.PretrainedWeightsUnavailableError) as excinfo:
        fashion_mnist.train(cfg)
    assert time.monotonic() - start < 20
    message = str(excinfo.value)
    assert "vgg16_transfer" in message and "ImageNet" in message and "--variant" in message
    assert socket.getdefaulttimeout() is None  # the temporary download timeout is undone
