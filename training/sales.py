"""Monthly sales forecasting, 1 to 12 months ahead, with an LSTM (course 000, exercise 4).

The course's network is LSTM(50) -> Dense(1): one step ahead from a window of 10 values of a
synthetic sine series scaled to [0, 1] by a MinMaxScaler fitted on the whole series. Here the model
reads a window of the last ``WINDOW`` raw monthly values of any scale and predicts the next
``MAX_HORIZON`` months at once (direct multi-output). Scaling lives in the graph and is per window:
the window is standardised by its own mean and standard deviation, the LSTM(50) predicts a
correction to the seasonal-naive forecast (the last 12 values of the window) in that scale, and the
result is mapped back to raw units. The correction layer starts at zero, so an untrained model *is*
the seasonal-naive forecast and training only has to learn trend and shape changes.

Training data: the training part of the five classic series (each series' last months are the test
period, never trained on), the course's synthetic sine series, and random synthetic monthly series
(level x trend x 12-month seasonal profile x noise) that teach trend and seasonality in general.

Evaluation, per series, on its last ``horizon`` months (12; 6 for shampoo, whose file is short):
MAE and MASE of the model, the naive forecast (last value repeated) and the seasonal-naive forecast
(same month a year earlier). A statistical anchor is scored beside them on the same months:
statsforecast's AutoETS (error, trend and seasonality chosen by AICc per series) fitted on each
series' training months; the metadata says which is better (``metrics["anchor"]``). MASE is
scaled by the in-sample MAE of the seasonal-naive (m = 12)
forecast over the training part of the series (every series, shampoo included, has >= 24 training
months, so m = 12 is used throughout).

One year per series (54 test months) is a small sample, and one year can break a series' pattern:
the issue's own check on the year after these months found the network at 0.977x seasonal-naive
where the test months say 0.836x. So ``backtest`` also forecasts from three earlier origins (12,
24 and 36 months before the test months, four series each), retraining the network on the months
before each origin only, and the metadata reports them beside the test months
(``metrics["backtest"]``): how far one year's figure may fall from the mean.

Data: ``<data-dir>/monthly-sales/*.csv``, CSV ``"Month","Sales"`` (airline: ``"Passengers"``).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from training.common.data import limit_rows, require_path, set_seed
from training.common.export import add_plot, export_model
from training.common.plots import plot_forecasts
from training.config import TrainConfig

NAME = "sales"
LAYOUT = """
<data-dir>/monthly-sales/airline-passengers.csv           "Month","Passengers"
<data-dir>/monthly-sales/monthly-car-sales.csv            "Month","Sales"
<data-dir>/monthly-sales/monthly-shampoo-sales.csv        "Month","Sales"
<data-dir>/monthly-sales/monthly-writing-paper-sales.csv  "Month","Sales"
<data-dir>/monthly-sales/monthly_champagne_sales.csv      "Month","Sales"
"""
SERIES_FILES = {
    "airline_passengers": "airline-passengers.csv",
    "car_sales": "monthly-car-sales.csv",
    "shampoo_sales": "monthly-shampoo-sales.csv",
    "writing_paper_sales": "monthly-writing-paper-sales.csv",
    "champagne_sales": "monthly_champagne_sales.csv",
}
# Months at the end of each series used only for evaluation (shampoo has 30 months in all).
EVAL_HORIZON = {name: 12 for name in SERIES_FILES} | {"shampoo_sales": 6}
DATA_NOTE = {
    "source": "Five classic monthly series from Hyndman's Time Series Data Library: Perrin Freres "
    "champagne (Makridakis & Wheelwright), shampoo (Makridakis, Wheelwright & Hyndman), Quebec car "
    "sales (Abraham & Ledolter), writing paper (Makridakis & Wheelwright), airline passengers (Box "
    "& Jenkins); plus the course's synthetic sine series and generated synthetic monthly series",
    "license": "Time Series Data Library: free for research and teaching, cite the original books",
    "stand_in": False,
    "synthetic_training_data": "course 000 ex.4 sine series (300 points) and SYNTHETIC_SERIES "
    "random seasonal series; evaluation uses only the five real series",
}

# Hyper-parameters
WINDOW = 24  # two seasons of context; shampoo's 24 training months are exactly one window
MAX_HORIZON = 12
SEASON = 12
LSTM_UNITS = 50  # the course's
EPOCHS = 60
BATCH_SIZE = 64
SYNTHETIC_SERIES = 300  # 100 tried on the backtest, not adopted (SELECTION)
SYNTHETIC_LENGTH = 96
VALIDATION_WINDOWS = 6  # last windows of each real training part: early stopping only
BACKTEST_ORIGINS = 3  # earlier forecast origins, a year apart, all before the test months

# Recipe changes tried on the backtest (MASE vs seasonal-naive pooled over its 3 origins), and
# what the test months then said of them (2026-12-07/08). Neither was adopted.
SELECTION = {
    "synthetic_series": {
        "served": 300,
        "backtest_mase_vs_seasonal_naive": {
            "300": {"seed 42": 0.827, "seed 7": 0.846, "seed 123": 0.843},
            "100": {"seed 42": 0.787, "seed 7": 0.778, "seed 123": 0.843},
            "30": {"seed 42": 0.893},
        },
        "also_tried": "the real series' windows repeated 10 times among the synthetic ones: "
        "0.879 (seed 42)",
        "test_looks": "100 (seed 42), trained for export, scored 0.946x seasonal-naive on the "
        "test months, against 0.836x at 300, and lost to the ETS anchor there",
        "why_not_adopted": "over the backtest and the test months together (204 forecast months), "
        "100 and 300 score 0.846x and 0.830x: no difference beyond the spread between years, so "
        "the served recipe did not change",
    },
    "correction_weight": {
        "served": "the network as trained (its whole correction to the seasonal-naive forecast)",
        "tried": "the seasonal-naive forecast plus 0.25 / 0.5 / 0.75 / 1 of the correction "
        "(300 synthetic series, seed 42)",
        "backtest_mase_vs_seasonal_naive": {"0.25": 0.905, "0.5": 0.846, "0.75": 0.815, "1": 0.827},
        "best_weight_per_origin": {"12 months before test": 0.25, "24": 1, "36": 1},
        "test_looks": "0.75 scored 0.870x seasonal-naive on the test months, 1 scored 0.836x (v3)",
        "why_not_adopted": "the origins disagree on the weight (0.25, 1, 1) and the pooled gain "
        "(0.815x vs 0.827x) is far inside the spread between origins",
    },
}


# ---- Data -------------------------------------------------------------------------------------
def load_series(data_dir: Path) -> dict[str, np.ndarray]:
    """Each series' values (the file's second column) in time order."""
    root = require_path(data_dir / "monthly-sales", LAYOUT)
    series = {}
    for name, file in SERIES_FILES.items():
        df = pd.read_csv(require_path(root / file, LAYOUT))
        series[name] = df.iloc[:, 1].astype("float32").to_numpy()
    return series


def course_sine_series() -> np.ndarray:
    """Course 000 ex.4's data: a noisy sine over 300 steps (its own seed)."""
    rng = np.random.default_rng(0)
    return (np.sin(np.linspace(0, 100, 300)) + rng.normal(0, 0.1, 300)).astype("float32")


def synthetic_monthly_series(count: int, length: int, seed: int) -> list[np.ndarray]:
    """Positive series: level x linear trend x (1 + 12-month seasonal profile) x noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    out = []
    for _ in range(count):
        harmonics = sum(
            rng.normal(0, 0.25 / k) * np.sin(2 * np.pi * k * t / SEASON + rng.uniform(0, 2 * np.pi))
            for k in range(1, 4)
        )
        seasonal = 1.0 + rng.uniform(0, 1) * harmonics
        trend = 1.0 + rng.uniform(-0.004, 0.015) * t
        noise = 1.0 + rng.normal(0, rng.uniform(0.0, 0.08), length)
        level = 10 ** rng.uniform(1, 5)
        out.append(np.clip(level * trend * seasonal * noise, 0.01 * level, None).astype("float32"))
    return out


def windows(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (WINDOW inputs, MAX_HORIZON targets) pair that lies wholly inside ``series``."""
    n = len(series) - WINDOW - MAX_HORIZON + 1
    if n <= 0:
        return np.zeros((0, WINDOW), "float32"), np.zeros((0, MAX_HORIZON), "float32")
    x = np.stack([series[i : i + WINDOW] for i in range(n)])
    y = np.stack([series[i + WINDOW : i + WINDOW + MAX_HORIZON] for i in range(n)])
    return x, y


def training_windows(train_parts: dict[str, np.ndarray], synthetic: list[np.ndarray]):
    """Train windows (real + synthetic) and validation windows (the last of each real series)."""
    xs, ys, xv, yv = [], [], [], []
    for part in train_parts.values():
        x, y = windows(part)
        k = min(VALIDATION_WINDOWS, len(x) // 4)
        xs.append(x[: len(x) - k])
        ys.append(y[: len(y) - k])
        xv.append(x[len(x) - k :])
        yv.append(y[len(y) - k :])
    for s in synthetic:
        x, y = windows(s)
        xs.append(x)
        ys.append(y)
    return (np.concatenate(xs), np.concatenate(ys)), (np.concatenate(xv), np.concatenate(yv))


# ---- Model ------------------------------------------------------------------------------------
class WindowStandardize(keras.layers.Layer):
    """(x - mean) / scale per window; scale is the window's std, floored relative to its level."""

    def call(self, x):
        mean = keras.ops.mean(x, axis=-1, keepdims=True)
        std = keras.ops.std(x, axis=-1, keepdims=True)
        scale = keras.ops.maximum(std, 1e-3 * keras.ops.abs(mean) + 1e-6)
        return (x - mean) / scale, mean, scale


class SeasonalResidual(keras.layers.Layer):
    """Seasonal-naive forecast (last SEASON standardised values, repeated) plus a correction,
    mapped back to raw units with the window's mean and scale."""

    def call(self, z, correction, mean, scale):
        last_season = z[:, -SEASON:]
        repeats = -(-MAX_HORIZON // SEASON)
        seasonal_naive = keras.ops.tile(last_season, [1, repeats])[:, :MAX_HORIZON]
        return (seasonal_naive + correction) * scale + mean


def make_model() -> keras.Model:
    """Raw history (None, WINDOW) in, raw forecasts of the next MAX_HORIZON months out."""
    history = keras.Input(shape=(WINDOW,), dtype="float32", name="history")
    z, mean, scale = WindowStandardize(name="window_standardize")(history)
    x = keras.layers.Reshape((WINDOW, 1))(z)
    x = keras.layers.LSTM(LSTM_UNITS)(x)
    correction = keras.layers.Dense(MAX_HORIZON, kernel_initializer="zeros", name="correction")(x)
    forecast = SeasonalResidual(name="forecast")(z, correction, mean, scale)
    model = keras.Model(history, forecast, name="sales_lstm_direct")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=scaled_mae)
    return model


def scaled_mae(y_true, y_pred):
    """MAE in units of each target's own scale, so that series of every size count alike."""
    scale = keras.ops.mean(keras.ops.abs(y_true), axis=-1, keepdims=True) + 1e-6
    return keras.ops.mean(keras.ops.abs(y_true - y_pred) / scale, axis=-1)


# ---- Evaluate ---------------------------------------------------------------------------------
def baseline_forecasts(history: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    return {
        "naive": np.repeat(history[-1], horizon),
        "seasonal_naive": np.array(
            [history[len(history) - SEASON + k % SEASON] for k in range(horizon)]
        ),
    }


def ets_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """The statistical anchor: statsforecast's AutoETS (error, trend and seasonality chosen by
    AICc per series, season 12) fitted on the series' training months."""
    from statsforecast.models import AutoETS

    fitted = AutoETS(season_length=SEASON).forecast(y=history.astype("float64"), h=horizon)
    return np.asarray(fitted["mean"], dtype="float32")


def mase_scale(train_part: np.ndarray) -> float:
    """In-sample MAE of the seasonal-naive forecast over a series' training months."""
    return float(np.mean(np.abs(train_part[SEASON:] - train_part[:-SEASON])))


def network_forecast(model: keras.Model, train_part: np.ndarray, horizon: int) -> np.ndarray:
    """The model's forecast of the ``horizon`` months after ``train_part`` (its last window)."""
    return np.asarray(model.predict(train_part[None, -WINDOW:], verbose=0))[0, :horizon]


def forecasts_after(model: keras.Model, train_part: np.ndarray, horizon: int) -> dict:
    """The model's, the baselines' and the ETS anchor's forecasts of the months after
    ``train_part``."""
    return {
        "model": network_forecast(model, train_part, horizon),
        **baseline_forecasts(train_part, horizon),
        "ets": ets_forecast(train_part, horizon),
    }


def evaluate(model: keras.Model, series: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Per series: MAE and MASE of the model, the baselines and the ETS anchor over its last
    months."""
    per_series, forecasts = {}, {}
    for name, values in series.items():
        horizon = EVAL_HORIZON[name]
        train_part, actual = values[:-horizon], values[-horizon:]
        predicted = forecasts_after(model, train_part, horizon)
        scale = mase_scale(train_part)
        mae = {k: float(np.mean(np.abs(actual - p))) for k, p in predicted.items()}
        per_series[name] = {
            "horizon": horizon,
            "train_months": len(train_part),
            "mase_scale": scale,
            "mae": mae,
            "mase": {k: v / scale for k, v in mae.items()},
        }
        forecasts[name] = {"train": train_part, "actual": actual, **predicted}
    methods = ["model", "naive", "seasonal_naive", "ets"]
    metrics = {
        "mean_mase": {
            m: float(np.mean([s["mase"][m] for s in per_series.values()])) for m in methods
        },
        "per_series": per_series,
        "mase_scaling": "in-sample seasonal-naive (m=12) MAE over each series' training part",
        "evaluation_months": "the last `horizon` months of each series, never trained on",
    }
    mean = metrics["mean_mase"]
    metrics["beats_seasonal_naive"] = mean["model"] < mean["seasonal_naive"]
    metrics["mase_vs_seasonal_naive"] = mean["model"] / mean["seasonal_naive"]
    metrics["anchor"] = {
        "method": "ets: statsforecast AutoETS (season 12; error, trend and seasonality chosen "
        "by AICc per series) on each series' training months",
        "mase_vs_seasonal_naive": mean["ets"] / mean["seasonal_naive"],
        "anchor_wins": mean["ets"] < mean["model"],
    }
    return metrics, forecasts


# ---- Backtest ---------------------------------------------------------------------------------
def backtest(series: dict[str, np.ndarray], cfg: TrainConfig) -> dict:
    """Rolling origin on the months before the test months. For each of ``BACKTEST_ORIGINS``
    origins (12, 24, 36 months before them) the network is trained again, on the months before
    the origin only, and it, the baselines and the ETS anchor forecast the 12 months after it.
    A series too short for an origin (shampoo) sits it out. One year per series is a small
    sample, and a year can break a series' pattern: the spread between origins says how far one
    year's figure (the test months', or any future year's) may fall from the mean."""
    pooled: dict[str, list[float]] = {}
    per_origin = []
    for k in range(1, BACKTEST_ORIGINS + 1):
        cuts = {n: len(v) - EVAL_HORIZON[n] - k * MAX_HORIZON for n, v in series.items()}
        parts = {n: series[n][:cut] for n, cut in cuts.items() if cut >= WINDOW + SEASON}
        model, _, _ = fit_network(parts, cfg)
        scores: dict[str, list[float]] = {}
        for name, part in parts.items():
            actual = series[name][len(part) : len(part) + MAX_HORIZON]
            for method, forecast in forecasts_after(model, part, MAX_HORIZON).items():
                value = float(np.mean(np.abs(actual - forecast))) / mase_scale(part)
                scores.setdefault(method, []).append(value)
                pooled.setdefault(method, []).append(value)
        mean = {m: float(np.mean(v)) for m, v in scores.items()}
        per_origin.append(
            {
                "months_before_test": k * MAX_HORIZON,
                "series": sorted(parts),
                "mean_mase": mean,
                "mase_vs_seasonal_naive": mean["model"] / mean["seasonal_naive"],
            }
        )
        print(f"{NAME}: backtest origin {k}: {mean}")
    mean = {m: float(np.mean(v)) for m, v in pooled.items()}
    return {
        "origins": BACKTEST_ORIGINS,
        "forecast_months": len(pooled["model"]) * MAX_HORIZON,
        "mean_mase": mean,
        "mase_vs_seasonal_naive": mean["model"] / mean["seasonal_naive"],
        "ets_vs_seasonal_naive": mean["ets"] / mean["seasonal_naive"],
        "per_origin": per_origin,
        "note": "each origin's network is trained on the months before it only, with the same "
        "recipe and seed; the test months come after every origin",
    }


# ---- Train, evaluate, export ------------------------------------------------------------------
def fit_network(train_parts: dict[str, np.ndarray], cfg: TrainConfig):
    """The network trained on windows of ``train_parts`` and the synthetic series, with early
    stopping on the last windows of each real part; returns it, its history and split sizes."""
    set_seed(cfg.seed)
    n_synthetic = SYNTHETIC_SERIES if cfg.limit is None else max(1, cfg.limit // 50)
    synthetic = [
        course_sine_series(),
        *synthetic_monthly_series(n_synthetic, SYNTHETIC_LENGTH, cfg.seed),
    ]
    (x_tr, y_tr), (x_val, y_val) = training_windows(train_parts, synthetic)
    x_tr, y_tr = limit_rows(cfg.limit, x_tr, y_tr, seed=cfg.seed)
    model = make_model()
    history = model.fit(
        x_tr,
        y_tr,
        validation_data=(x_val, y_val),
        epochs=cfg.epochs_or(EPOCHS),
        batch_size=BATCH_SIZE,
        shuffle=True,
        verbose=2 if cfg.limit is None else 0,
        callbacks=[keras.callbacks.EarlyStopping(patience=8, restore_best_weights=True)],
    )
    sizes = {"train": len(x_tr), "validation": len(x_val), "synthetic_series": len(synthetic)}
    return model, history.history, sizes


def train(cfg: TrainConfig) -> Path:
    series = load_series(cfg.data_dir)
    backtested = backtest(series, cfg)
    train_parts = {name: s[: -EVAL_HORIZON[name]] for name, s in series.items()}
    model, history, sizes = fit_network(train_parts, cfg)

    metrics, forecasts = evaluate(model, series)
    metrics["backtest"] = backtested
    for name, s in metrics["per_series"].items():
        print(
            f"{NAME} [{name}]: MASE model {s['mase']['model']:.3f}, "
            f"seasonal naive {s['mase']['seasonal_naive']:.3f}, naive {s['mase']['naive']:.3f}"
        )
    print(f"{NAME}: mean MASE {metrics['mean_mase']}")
    path = export_model(
        model,
        name=NAME,
        cfg=cfg,
        history=history,
        task="forecasting",
        data=DATA_NOTE,
        splits={
            "train": sizes["train"],
            "validation": sizes["validation"],
            "test": sum(EVAL_HORIZON.values()),
            "units": "train/validation: windows; test: forecast months over the 5 series",
            "real_series_training_months": {k: len(v) for k, v in train_parts.items()},
            "synthetic_series": sizes["synthetic_series"],
            "backtest_months": backtested["forecast_months"],
        },
        metrics=metrics,
        metadata={
            "forecast": {"window": WINDOW, "min_history": WINDOW, "max_horizon": MAX_HORIZON},
            "architecture": f"per-window standardisation in graph -> LSTM({LSTM_UNITS}) -> "
            f"Dense({MAX_HORIZON}) correction added to the seasonal-naive forecast -> raw scale "
            f"(direct multi-output, window {WINDOW})",
            "selection": SELECTION,
            "course_baseline": {
                "architecture": "LSTM(50) -> Dense(1), window 10, one step, MinMaxScaler",
                "mae": None,
                "note": "course 000 ex.4 trains on a synthetic sine and reports "
                "only the loss curve",
            },
        },
    )
    add_plot(path, "forecasts", plot_forecasts(forecasts, path / "forecasts.png"))
    return path
