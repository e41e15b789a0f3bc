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


def holdout_splits(
    x, y, *, test_size: float, validation_size: float, seed: int, limit: int | None = None
):
    """Stratified test split of all rows, then a train / validation split of the rest.

    ``limit`` caps the training pool (smoke runs) before the validation split, which is then not
    stratified (a tiny slice may lack a class). Returns ``(x_tr, y_tr), (x_val, y_val),
    (x_test, y_test)``.
    """
    x_train, x_test, y_train, y_test = stratified_split(
        x, y, test_size=test_size, seed=seed, stratify=y
    )
    x_train, y_train = take(limit, x_train, y_train)
    x_tr, x_val, y_tr, y_val = stratified_split(
        x_train,
        y_train,
        test_size=validation_size,
        seed=seed,
        stratify=y_train if limit is None else None,
    )
    return (x_tr, y_tr), (x_val, y_val), (x_test, y_test)


def take(limit: int | None, *arrays):
    """The first ``limit`` rows of each array (all of them when ``limit`` is None)."""
    if limit is None:
        return arrays if len(arrays) > 1 else arrays[0]
    cut = tuple(a[:limit] for a in arrays)
    return cut if len(cut) > 1 else cut[0]
