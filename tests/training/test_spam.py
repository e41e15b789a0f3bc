"""Smoke test: spam trains on a tiny slice, exports, and the SavedModel scores raw strings."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from training import spam
from training.config import TrainConfig


def test_spam_smoke(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=300, version=1)
    path = spam.train(cfg)

    assert path == tmp_path / "spam" / "1"
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["task"] == "text_classification"
    assert metadata["labels"] == ["ham", "spam"]
    assert metadata["training"]["limited_to_examples"] == 300
    assert {"accuracy", "roc_auc", "per_class"} <= set(metadata["metrics"])
    assert (path / "history.png").is_file() and (path / "confusion_matrix.png").is_file()

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    texts = tf.constant(
        ["WINNER!! Claim your free prize now, call 09061701461", "see you at 5", ""]
    )
    probabilities = serve(text=texts)["output_0"].numpy()
    assert probabilities.shape == (3, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
