"""A classifier's output read as classes: probabilities, names and ranking (shared by the
typed endpoints and KServe's classification extension)."""

from __future__ import annotations

import numpy as np


def as_class_probabilities(output: np.ndarray) -> np.ndarray:
    """A classifier's ``output_0`` as ``(N, K)`` probabilities.

    A binary sigmoid ``(N, 1)`` (or ``(N,)``) becomes ``[1 - p, p]``; softmax ``(N, K)`` is kept.
    """
    probs = np.asarray(output, dtype=np.float32)
    if probs.ndim == 1:
        probs = probs[:, None]
    if probs.shape[-1] == 1:
        probs = np.concatenate([1.0 - probs, probs], axis=-1)
    return probs


def class_names(labels: list[str] | None, count: int) -> list[str]:
    """The model's ``count`` class labels; a class its metadata does not name is its index."""
    labels = labels or []
    return [labels[i] if i < len(labels) else str(i) for i in range(count)]


def rank_classes(probabilities: np.ndarray, k: int) -> np.ndarray:
    """``(N, min(k, K))`` indices of each row's likeliest classes, best first (ties: the lower
    index first)."""
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


def decide(probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Each row's class index: the likeliest; for a binary model, the positive class (1) from
    ``threshold`` on (the ``decision_threshold`` its metadata chose on validation data; 0.5
    when it has none)."""
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= (0.5 if threshold is None else threshold)).astype(int)
    return probabilities.argmax(axis=1)
