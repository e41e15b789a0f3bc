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


def test_backtest_trains_each_origin_on_the_months_before_it(monkeypatch):
    lengths = {"airline_passengers": 132, "car_sales": 96, "shampoo_sales": 30}
    lengths |= {"writing_paper_sales": 135, "champagne_sales": 93}
    t = np.arange(200)
    season = 100 + 10 * np.sin(2 * np.pi * t / 12)
    series = {name: (season[:n] + t[:n]).astype("float32") for name, n in lengths.items()}
    trained_on = []

    def fit_network(parts, cfg):
        trained_on.append({name: len(part) for name, part in parts.items()})
        return sales.make_model(), {}, {}  # untrained: the seasonal-naive forecast

    monkeypatch.setattr(sales, "fit_network", fit_network)
    monkeypatch.setattr(sales, "ets_forecast", lambda history, horizon: history[-12:][:horizon])
    result = sales.backtest(series, TrainConfig())

    # Origin k's network saw only the months up to 12k months before the test months; shampoo
    # (30 months) is too short for any origin.
    for k, lengths_seen in enumerate(trained_on, start=1):
        assert lengths_seen == {
            name: n - sales.EVAL_HORIZON[name] - 12 * k
            for name, n in lengths.items()
            if name != "shampoo_sales"
        }
    assert len(trained_on) == sales.BACKTEST_ORIGINS == result["origins"] == 3
    assert result["forecast_months"] == 3 * 4 * 12
    assert [o["months_before_test"] for o in result["per_origin"]] == [12, 24, 36]
    # An untrained network is the seasonal-naive forecast, so it scores exactly that.
    assert result["mase_vs_seasonal_naive"] == pytest.approx(1.0, rel=1e-4)
    assert result["ets_vs_seasonal_naive"] == pytest.approx(1.0)
    assert result["mean_mase"]["seasonal_naive"] > 0


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
    backtest = meta["metrics"]["backtest"]
    assert len(backtest["per_origin"]) == 3 and backtest["forecast_months"] == 144
    assert "shampoo_sales" not in backtest["per_origin"][0]["series"]
    assert np.isfinite(backtest["mase_vs_seasonal_naive"])
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
