"""Smoke test of the sales forecaster: tiny training run, export, reload, raw-scale forecasts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from training import sales
from training.config import TrainConfig


def test_baselines_repeat_last_value_and_last_season():
    history = np.arange(1, 25, dtype="float32")
    base = sales.baseline_forecasts(history, 12)
    np.testing.assert_array_equal(base["naive"], np.full(12, 24.0))
    np.testing.assert_array_equal(base["seasonal_naive"], history[-12:])


def test_untrained_model_is_seasonal_naive_at_any_scale():
    # The correction layer starts at zero, so the forecast is the last season in raw units.
    model = sales.make_model()
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e5):
        window = (scale * (10 + rng.random((3, sales.WINDOW)))).astype("float32")
        forecast = np.asarray(model(window))
        np.testing.assert_allclose(forecast, window[:, -12:], rtol=1e-4)


def test_train_export_reload_forecasts_raw_scale(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=200, version=1)
    path = sales.train(cfg)

    meta = json.loads((path / "metadata.json").read_text())
    assert meta["task"] == "forecasting"
    assert "labels" not in meta
    assert meta["forecast"] == {
        "window": sales.WINDOW,
        "min_history": sales.WINDOW,
        "max_horizon": 12,
    }
    assert set(meta["metrics"]["per_series"]) == set(sales.SERIES_FILES)
    mean = meta["metrics"]["mean_mase"]
    assert set(mean) == {"model", "naive", "seasonal_naive", "ets"}
    # The AutoETS anchor is scored on the same held-out months, beside the model.
    anchor = meta["metrics"]["anchor"]
    assert anchor["mase_vs_seasonal_naive"] == pytest.approx(mean["ets"] / mean["seasonal_naive"])
    assert anchor["anchor_wins"] == (mean["ets"] < mean["model"])
    assert all(np.isfinite(s["mase"]["ets"]) for s in meta["metrics"]["per_series"].values())
    assert (path / "forecasts.png").is_file() and (path / "history.png").is_file()

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    t = np.arange(sales.WINDOW)
    windows = np.stack(
        [
            1000 + 200 * np.sin(2 * np.pi * t / 12),  # thousands
            3.0 + 0.5 * np.cos(2 * np.pi * t / 12),  # units
        ]
    ).astype("float32")
    forecast = serve(history=tf.constant(windows))["output_0"].numpy()
    assert forecast.shape == (2, 12)
    assert np.isfinite(forecast).all()
    # Per-window scaling in the graph: each forecast stays on its own window's scale.
    for row, window in zip(forecast, windows, strict=True):
        assert window.min() * 0.5 < row.mean() < window.max() * 1.5


def test_missing_data_names_the_folder(tmp_path):
    from training.common.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="monthly-sales"):
        sales.train(TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "out", limit=10))
