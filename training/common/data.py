"""Locating datasets and splitting them reproducibly."""

from __future__ import annotations

import random
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import train_test_split


class MissingTrainingInputError(FileNotFoundError):
    """Something a training run needs is not on this machine (the CLI prints it, exit code 2)."""


class DatasetNotFoundError(MissingTrainingInputError):
    """Raised when a dataset folder or file is missing; the message says the expected layout."""


def require_path(path: Path, layout: str) -> Path:
    """Return ``path`` if it exists, else fail with a message naming it and its expected layout."""
    if not path.exists():
        raise DatasetNotFoundError(
            f"Dataset not found: {path}\nExpected layout:\n{layout.strip()}\n"
            "Pass the folder that holds the datasets with --data-dir (or TRAINING_DATA_DIR)."
        )
    return path


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def stratified_split(*arrays, test_size: float, seed: int, stratify=None):
    """``sklearn...train_test_split`` with a fixed seed and optional stratification."""
    return train_test_split(*arrays, test_size=test_size, random_state=seed, stratify=stratify)


def validation_split(x, y, *, validation_size: float, seed: int, limit: int | None = None):
    """The training pool cut for a smoke run (``limit``), then split into train / validation,
    stratified by class (not when limited: a tiny slice may hold a class once). Returns
    ``(x_tr, y_tr), (x_val, y_val)``."""
    x, y = limit_rows(limit, x, y, strata=y, seed=seed)
    x_tr, x_val, y_tr, y_val = stratified_split(
        x, y, test_size=validation_size, seed=seed, stratify=y if limit is None else None
    )
    return (x_tr, y_tr), (x_val, y_val)


def holdout_splits(
    x, y, *, test_size: float, validation_size: float, seed: int, limit: int | None = None
):
    """Stratified test split of all rows, then :func:`validation_split` of the rest.
    Returns ``(x_tr, y_tr), (x_val, y_val), (x_test, y_test)``."""
    x_train, x_test, y_train, y_test = stratified_split(
        x, y, test_size=test_size, seed=seed, stratify=y
    )
    train, validation = validation_split(
        x_train, y_train, validation_size=validation_size, seed=seed, limit=limit
    )
    return train, validation, (x_test, y_test)


def smoke_indices(limit: int | None, n: int, *, strata=None, seed: int = 0) -> np.ndarray:
    """The rows a smoke run (``--limit``) keeps of ``n``: all of them when ``limit`` is None,
    else at most ``limit`` (at least one per stratum), drawn with ``seed`` and spread evenly
    over the values of ``strata`` (class labels, language and class, ...) so that every class
    is trained and scored. The one rule for "a small slice" in every training module."""
    if limit is None or limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if strata is None:
        return np.sort(rng.permutation(n)[:limit])
    strata = np.asarray(strata)
    values = np.unique(strata)
    per_stratum = max(1, limit // len(values))
    picked = [rng.permutation(np.flatnonzero(strata == v))[:per_stratum] for v in values]
    return np.sort(np.concatenate(picked))


def limit_rows(limit: int | None, *arrays, strata=None, seed: int = 0):
    """Each array (NumPy or pandas) cut to the rows :func:`smoke_indices` keeps."""
    keep = smoke_indices(limit, len(arrays[0]), strata=strata, seed=seed)
    cut = tuple(a.iloc[keep] if hasattr(a, "iloc") else a[keep] for a in arrays)
    return cut if len(cut) > 1 else cut[0]
