"""PNG plots saved next to each exported model (course 000, exercise 7)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_history(history: dict[str, list[float]], path: Path, title: str = "") -> Path:
    """Loss and accuracy (or any other metric) per epoch, training vs validation."""
    metric_names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(
        1, len(metric_names), figsize=(5 * len(metric_names), 4), squeeze=False
    )
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
    plt.close(fig)
    return path


def plot_confusion_matrix(
    matrix: list[list[int]], labels: list[str], path: Path, title: str = ""
) -> Path:
    m = np.asarray(matrix)
    size = max(4, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
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
    plt.close(fig)
    return path
