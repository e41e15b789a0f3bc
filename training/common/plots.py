"""PNG plots saved next to each exported model (course 000, exercise 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# The object-oriented API alone: no pyplot, so no GUI backend to switch off (training runs on
# servers and CI) and no global figure state to close.
from matplotlib.figure import Figure


def plot_history(history: dict[str, list[float]], path: Path, title: str = "") -> Path:
    """Loss and accuracy (or any other metric) per epoch, training vs validation."""
    metric_names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig = Figure(figsize=(5 * len(metric_names), 4))
    axes = fig.subplots(1, len(metric_names), squeeze=False)
    for ax, name in zip(axes[0], metric_names, strict=True):
        ax.plot(history[name], label=f"train {name}")
        if f"val_{name}" in history:
            ax.plot(history[f"val_{name}"], label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def plot_confusion_matrix(
    matrix: list[list[int]], labels: list[str], path: Path, title: str = ""
) -> Path:
    m = np.asarray(matrix)
    size = max(4, 0.5 * len(labels) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = m.max() / 2 if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                color="white" if m[i, j] > threshold else "black",
                fontsize=8,
            )
    ax.set_title(title or "confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def plot_regularization_path(fit: dict, languages: list[str], path: Path) -> Path:
    """Validation balanced accuracy per language and train accuracy along the L2 path
    (sentiment's logistic head)."""
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    # One curve per language at the chosen character-bag scale.
    chosen = fit.get("chosen_char_weight", 1.0)
    points = [p for p in fit["path"] if p.get("char_weight", 1.0) == chosen]
    cs = [p["C"] for p in points]
    for lang in languages:
        ax.plot(
            cs,
            [p["validation_balanced_accuracy"].get(lang) for p in points],
            "-o",
            label=f"validation balanced accuracy ({lang})",
        )
    ax.plot(cs, [p["train_accuracy"] for p in points], "--", label="train accuracy")
    ax.axvline(fit["chosen_C"], color="grey", linestyle=":")
    ax.set_xscale("log")
    ax.set_xlabel("C (inverse L2 strength)")
    ax.legend(fontsize=7)
    ax.set_title("sentiment: logistic head, regularisation path")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def plot_forecasts(forecasts: dict, path: Path) -> Path:
    """Per series: the last three years of history, the held-out months and each forecast."""
    fig = Figure(figsize=(8, 2.6 * len(forecasts)))
    axes = fig.subplots(len(forecasts), 1, squeeze=False)
    for ax, (name, f) in zip(axes[:, 0], forecasts.items(), strict=True):
        n_train, h = len(f["train"]), len(f["actual"])
        shown = min(n_train, 36)
        t_train = np.arange(n_train - shown, n_train)
        t_eval = np.arange(n_train, n_train + h)
        ax.plot(t_train, f["train"][-shown:], color="black", label="history")
        ax.plot(t_eval, f["actual"], color="black", linestyle="--", label="actual (held out)")
        for key, style in [("model", "-o"), ("ets", "-."), ("seasonal_naive", ":"), ("naive", ":")]:
            if key not in f:
                continue
            ax.plot(t_eval, f[key], style, markersize=3, label=key)
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def plot_optimizer_comparison(
    summary: pd.DataFrame, optimizers: list[str], losses: list[str], path: Path, title: str
) -> Path:
    """Grouped bars per optimizer, one bar per loss: final validation accuracy and loss."""
    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    width = 0.8 / len(losses)
    positions = np.arange(len(optimizers))
    for ax, metric, label in (
        (axes[0], "val_accuracy", "final validation accuracy"),
        (axes[1], "val_loss", "final validation loss (its own loss)"),
    ):
        for i, loss in enumerate(losses):
            part = summary[summary["loss"] == loss].set_index("optimizer").loc[optimizers]
            ax.bar(
                positions + (i - (len(losses) - 1) / 2) * width,
                part[f"{metric}_mean"],
                width,
                yerr=part[f"{metric}_std"],
                capsize=3,
                label=loss,
            )
        ax.set_xticks(positions, optimizers)
        ax.set_title(label)
        ax.set_xlabel("optimizer")
        if metric == "val_accuracy":
            ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def plot_roc(curve: dict, auc: float, path: Path, title: str = "") -> Path:
    """The ROC curve recorded by ``evaluate.roc_points``, with the chance diagonal."""
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.plot(curve["fpr"], curve["tpr"], label=f"ROC-AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title or "ROC (test split)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path
