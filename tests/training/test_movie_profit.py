"""Smoke test: movie_profit trains one variant on a tiny slice, exports, and the SavedModel takes
named raw columns (genres as the CSV's "a|b" string)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from training import movie_profit
from training.config import TrainConfig


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown variant"):
        movie_profit.hidden_layers("resnet", None)


def test_movie_profit_smoke(data_dir, tmp_path):
    cfg = TrainConfig(
        data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=200, version=1, variant="l2"
    )
    path = movie_profit.train(cfg)

    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["labels"] == ["not_profitable", "profitable"]
    assert metadata["variant"] == "l2"
    assert 0.5 <= metadata["metrics"]["majority_class_rate"] <= 1
    columns = metadata["columns"]
    assert columns["genres"]["separator"] == "|"
    assert "gross" not in columns

    inputs = {}
    for name, spec in columns.items():
        if spec["type"] == "numeric":
            # defaults, and a NaN that must not turn into a NaN probability
            inputs[name] = tf.constant([spec["default"], np.nan], tf.float32)
        else:
            inputs[name] = tf.constant([spec["default"], "never seen"])
    inputs["genres"] = tf.constant(["Action|Adventure|Sci-Fi", "Drama"])

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    probabilities = serve(**inputs)["output_0"].numpy()
    assert probabilities.shape == (2, 2)
    assert np.all(np.isfinite(probabilities))
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
