"""Held-out evaluation of classifiers with sklearn.metrics (course 000, exercise 9)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics
from sklearn.model_selection import StratifiedKFold

from training.common.data import stratified_split


def to_class_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """(N, 1) sigmoid output -> (N, 2) [P(class 0), P(class 1)]; (N, K) softmax unchanged."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if p.shape[1] == 1:
        p = np.concatenate([1.0 - p, p], axis=1)
    return p


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    labels: list[str],
    threshold: float | None = None,
) -> dict:
    """Accuracy, balanced accuracy, per-class precision/recall/F1/support, confusion matrix,
    and ROC-AUC (binary: of the positive class ``labels[1]``; multiclass: one-vs-rest macro).
    ``threshold`` (binary): the positive class from that probability on, not from 0.5."""
    y_true = np.asarray(y_true).astype(int).ravel()
    p = to_class_probabilities(probabilities)
    y_pred = p.argmax(axis=1) if threshold is None else (p[:, 1] >= threshold).astype(int)
    indices = list(range(len(labels)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    result: dict = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=indices).tolist(),
        "n": int(len(y_true)),
    }
    present = np.unique(y_true)
    if len(labels) == 2 and len(present) == 2:
        result["roc_auc"] = float(metrics.roc_auc_score(y_true, p[:, 1]))
        result["roc_curve"] = roc_points(y_true, p[:, 1])
    elif len(labels) > 2 and len(present) == len(labels):
        result["roc_auc_ovr_macro"] = float(
            metrics.roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=indices)
        )
    return result


def roc_points(y_true: np.ndarray, score: np.ndarray, most: int = 101) -> dict:
    """The ROC curve of the positive class (``labels[1]``) as at most ``most`` points (false and
    true positive rates with their thresholds), for the report and ``roc.png``."""
    fpr, tpr, thresholds = metrics.roc_curve(y_true, score, drop_intermediate=True)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(most, len(fpr))).round().astype(int))
    finite = np.where(np.isfinite(thresholds[keep]), thresholds[keep], 1.0)
    return {
        "fpr": [round(float(v), 5) for v in fpr[keep]],
        "tpr": [round(float(v), 5) for v in tpr[keep]],
        "thresholds": [round(float(v), 5) for v in finite],
    }


def predict_probabilities(model, inputs, batch_size: int = 256) -> np.ndarray:
    """Run the model over inputs (arrays, dicts of arrays, or a tf.data.Dataset) without a bar."""
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))


def accuracy(model, inputs, y_true: np.ndarray) -> float:
    """Share of ``inputs`` whose most probable class is ``y_true`` (to choose on validation)."""
    return float(np.mean(predict_probabilities(model, inputs).argmax(axis=1) == y_true))


def score_test_split(
    name: str, model, inputs, y_true: np.ndarray, labels: list[str], threshold: float | None = None
) -> dict:
    """:func:`classification_metrics` of ``model`` on the held-out test split, with the
    headline figures printed (accuracy, balanced accuracy, ROC-AUC when defined)."""
    probabilities = predict_probabilities(model, inputs)
    metrics = classification_metrics(y_true, probabilities, labels, threshold)
    figures = [f"accuracy {metrics['accuracy']:.4f}"]
    figures.append(f"balanced accuracy {metrics['balanced_accuracy']:.4f}")
    if metrics.get("roc_auc") is not None:
        figures.append(f"ROC-AUC {metrics['roc_auc']:.4f}")
    print(f"{name}: test " + ", ".join(figures))
    return metrics


def balanced_threshold(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """The positive-class probability from which a binary model's balanced accuracy is highest
    (chosen on validation data; ties: the one nearest 0.5)."""
    y_true = np.asarray(y_true).astype(int).ravel()
    positive = to_class_probabilities(probabilities)[:, 1]
    candidates = np.round(np.linspace(0.02, 0.98, 97), 2)
    scores = [
        metrics.balanced_accuracy_score(y_true, (positive >= t).astype(int)) for t in candidates
    ]
    best = max(scores)
    tied = [t for t, score in zip(candidates, scores, strict=True) if score >= best - 1e-12]
    return float(min(tied, key=lambda t: abs(t - 0.5)))


def cross_validated_roc_auc(
    x,
    y: np.ndarray,
    fit_and_score: Callable,
    *,
    folds: int,
    validation_fraction: float,
    seed: int,
    label: str,
) -> dict:
    """ROC-AUC of a whole training procedure over ``folds`` stratified folds of the training
    data (the test split is not passed in): each fold's rest is split again into train and
    validation (early stopping), and ``fit_and_score(x_tr, y_tr, x_val, y_val, x_held)``
    returns P(positive) for the held-out fold. How much one test split can move the figure.
    The fold scores are printed under ``label``."""
    scores = []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_idx, held_idx in splitter.split(x, y):
        x_fit, y_fit = x.iloc[fit_idx], y[fit_idx]
        x_tr, x_val, y_tr, y_val = stratified_split(
            x_fit, y_fit, test_size=validation_fraction, seed=seed, stratify=y_fit
        )
        held = fit_and_score(x_tr, y_tr, x_val, y_val, x.iloc[held_idx])
        scores.append(float(metrics.roc_auc_score(y[held_idx], held)))
    print(f"{label}: {folds}-fold ROC-AUC on the training data {np.round(scores, 4)}")
    return {
        "folds": folds,
        "roc_auc": scores,
        "roc_auc_mean": float(np.mean(scores)),
        "roc_auc_std": float(np.std(scores)),
    }
