"""Optimizer x loss comparison on a real binary task (course 000, exercise 8).

The course trains Dense 32 relu -> Dense 1 sigmoid for 10 epochs with every combination of
optimizer (adam, sgd, rmsprop) and loss (binary cross-entropy, MSE, MAE) on simulated data and
plots the final validation accuracy. Here the task is the Telco churn data (``training/churn.py``
loads it): the raw columns are encoded once (one-hot categories, standardized numbers), each
combination is trained ``REPEATS`` times with different seeds, and the table reports the mean and
standard deviation of the final validation accuracy, the final validation value of the loss it
trained with, and the validation binary cross-entropy (comparable across losses).

Writes ``results.csv``, ``results.md`` and ``comparison.png`` (grouped bars) to
``reports/compare_optimizers/`` (or ``cfg.extra["report_dir"]``).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from training import churn
from training.common.data import holdout_splits, set_seed
from training.common.plots import plot_optimizer_comparison
from training.common.tabular import (
    encode_columns,
    fill_defaults,
    make_inputs,
    to_inputs,
)
from training.config import TrainConfig

REPORT_DIR = Path("reports/compare_optimizers")
OPTIMIZERS = ["adam", "sgd", "rmsprop"]
LOSSES = ["binary_crossentropy", "mean_squared_error", "mean_absolute_error"]

# Hyper-parameters (the course's)
EPOCHS = 10
BATCH_SIZE = 32
VALIDATION_FRACTION = 0.2
REPEATS = 3


# ---- Data -------------------------------------------------------------------------------------
def encoded_churn(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Churn training data (the churn test split left out), encoded to a float matrix."""
    frame, labels = churn.load_data(cfg.data_dir)
    (x_tr, y_tr), (x_val, y_val), _ = holdout_splits(
        frame,
        labels,
        test_size=churn.TEST_FRACTION,
        validation_size=VALIDATION_FRACTION,
        seed=cfg.seed,
        limit=cfg.limit,
    )
    columns = churn.describe_columns(x_tr)
    x_tr, x_val = fill_defaults(x_tr, columns), fill_defaults(x_val, columns)
    inputs = make_inputs(columns)
    encoder = keras.Model(inputs, encode_columns(inputs, columns, x_tr))

    def encode(x: pd.DataFrame) -> np.ndarray:
        # one eager call on the whole (small) frame: no tf.function tracing
        tensors = {
            k: tf.constant(v.astype(str) if v.dtype == object else v)
            for k, v in to_inputs(x, columns).items()
        }
        return np.asarray(encoder(tensors), dtype="float32")

    # (N, 1) targets: MSE / MAE need the same rank as the sigmoid output
    return (
        encode(x_tr),
        y_tr.astype("float32")[:, None],
        encode(x_val),
        y_val.astype("float32")[:, None],
    )


# ---- Model ------------------------------------------------------------------------------------
def make_model(n_features: int, optimizer: str, loss: str) -> keras.Model:
    """The course's ex.8 network."""
    model = keras.Sequential(
        [
            keras.Input(shape=(n_features,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=["accuracy", keras.metrics.BinaryCrossentropy(name="bce")],
    )
    return model


# ---- Run, tabulate, plot ----------------------------------------------------------------------
def run_grid(
    x_tr, y_tr, x_val, y_val, *, epochs: int, seed: int, repeats: int, eager: bool = False
) -> pd.DataFrame:
    rows = []
    for optimizer in OPTIMIZERS:
        for loss in LOSSES:
            for repeat in range(repeats):
                set_seed(seed + repeat)
                model = make_model(x_tr.shape[1], optimizer, loss)
                model.run_eagerly = eager  # smoke runs: tracing costs more than a few steps
                history = model.fit(
                    x_tr,
                    y_tr,
                    validation_data=(x_val, y_val),
                    epochs=epochs,
                    batch_size=BATCH_SIZE,
                    verbose=0,
                ).history
                rows.append(
                    {
                        "optimizer": optimizer,
                        "loss": loss,
                        "repeat": repeat,
                        "val_accuracy": history["val_accuracy"][-1],
                        "val_loss": history["val_loss"][-1],
                        "val_bce": history["val_bce"][-1],
                    }
                )
                print(
                    f"{optimizer:8s} {loss:20s} #{repeat}: val_accuracy "
                    f"{rows[-1]['val_accuracy']:.4f}, val_loss {rows[-1]['val_loss']:.4f}"
                )
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    summary = runs.groupby(["optimizer", "loss"], sort=False).agg(
        val_accuracy_mean=("val_accuracy", "mean"),
        val_accuracy_std=("val_accuracy", "std"),
        val_loss_mean=("val_loss", "mean"),
        val_loss_std=("val_loss", "std"),
        val_bce_mean=("val_bce", "mean"),
        runs=("repeat", "count"),
    )
    return summary.reset_index().fillna(0.0)


def to_markdown(summary: pd.DataFrame, header: str) -> str:
    lines = [
        header,
        "",
        "| optimizer | loss | val accuracy | val loss (own) | val BCE | runs |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        lines.append(
            f"| {row.optimizer} | {row.loss} | {row.val_accuracy_mean:.4f} ± "
            f"{row.val_accuracy_std:.4f} | {row.val_loss_mean:.4f} ± {row.val_loss_std:.4f} | "
            f"{row.val_bce_mean:.4f} | {row.runs} |"
        )
    return "\n".join(lines) + "\n"


def train(cfg: TrainConfig) -> Path:
    """Run the grid and write the report; return the report folder."""
    out = Path(cfg.extra.get("report_dir", REPORT_DIR))
    out.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr, x_val, y_val = encoded_churn(cfg)
    epochs = cfg.epochs_or(EPOCHS)
    repeats = int(cfg.extra.get("repeats", REPEATS))
    runs = run_grid(
        x_tr,
        y_tr,
        x_val,
        y_val,
        epochs=epochs,
        seed=cfg.seed,
        repeats=repeats,
        eager=cfg.limit is not None,
    )
    summary = summarize(runs)

    summary.to_csv(out / "results.csv", index=False, float_format="%.5f")
    majority = float(max(y_val.mean(), 1 - y_val.mean()))
    header = (
        f"Course 000 ex.8 MLP (Dense32-relu, Dense1-sigmoid) on Telco churn: {len(x_tr)} train / "
        f"{len(x_val)} validation customers, {x_tr.shape[1]} encoded features, {epochs} epochs, "
        f"batch {BATCH_SIZE}, default learning rates, mean ± std over {repeats} seeds. "
        f"Validation majority-class rate: {majority:.4f}. 'val loss (own)' is each run's training "
        f"loss on the validation split, so compare it only within a loss; val BCE compares all."
    )
    (out / "results.md").write_text(to_markdown(summary, header))
    plot_optimizer_comparison(
        summary,
        OPTIMIZERS,
        LOSSES,
        out / "comparison.png",
        title=f"Optimizer x loss, churn validation split ({epochs} epochs, {repeats} seeds)",
    )
    print(to_markdown(summary, header))
    return out
