"""Pneumonia in chest X-rays with a small CNN, augmentation and class weights (course 000, ex.3).

The course's network is a binary CNN on 150x150x3 images with augmentation. Here the input is
128x128x1: X-rays are gray (three equal channels carry no extra information) and 128 px keeps an
epoch to a few minutes on two shared CPU cores while the opacities pneumonia causes stay visible.
Scaling and augmentation live in the graph, so the served model takes raw uint8 pixels. PNEUMONIA
outnumbers NORMAL about 3:1, so the loss is weighted by inverse class frequency.

Splits are **by patient** (the Kaggle file names carry it: ``personNNN_...``, ``IM-NNNN-...``,
``NORMAL2-IM-NNNN-...``): an image-level split puts the same patient's X-rays on both sides and
overstates accuracy. The decision threshold is the one with the best balanced accuracy on the
validation patients; it is stored in ``metadata.json`` (``decision_threshold``) and the server's
typed endpoint decides with it. The exported version carries the explanation signatures
(``training/explain.py``).

Data (the Kaggle "Chest X-Ray Images (Pneumonia)" layout):
``<data-dir>/chest-xray-pneumonia/chest_xray/train/{NORMAL,PNEUMONIA}/*.jpeg``; when ``test/``
(and ``val/``) exist next to ``train/`` (the full Kaggle download), the official test split is used
as the test set and ``val/`` joins the training pool. Otherwise the test split is about 15 % of the
patients of ``train/`` (stratified by class). The validation split (early stopping, model
selection, the threshold) always comes out of the training pool, never out of the test split.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from training.common.data import limit_rows, require_path, set_seed
from training.common.evaluate import balanced_threshold, predict_probabilities, score_test_split
from training.common.export import export_model, split_sizes
from training.common.images import image_dataset, labelled_images
from training.config import TrainConfig
from training.explain import explain_functions, explain_metadata

NAME = "chest_xray"
DATASET = Path("chest-xray-pneumonia") / "chest_xray"
LABELS = ["NORMAL", "PNEUMONIA"]
LAYOUT = """
<data-dir>/chest-xray-pneumonia/chest_xray/train/NORMAL/*.jpeg
<data-dir>/chest-xray-pneumonia/chest_xray/train/PNEUMONIA/*.jpeg
optional (the full Kaggle download): .../chest_xray/val/{NORMAL,PNEUMONIA}/
                                      .../chest_xray/test/{NORMAL,PNEUMONIA}/
"""
DATA_NOTE = {
    "source": "Kermany, Zhang, Goldbaum, 'Labeled Optical Coherence Tomography (OCT) and Chest "
    "X-Ray Images for Classification', Mendeley Data / Cell 2018; the Kaggle 'chest_xray' "
    "train split (1,341 NORMAL, 3,875 PNEUMONIA, resized to 224x224)",
    "license": "CC BY 4.0",
    "stand_in": False,
}

# Hyper-parameters
IMAGE_SIZE = (128, 128)
CHANNELS = 1
EPOCHS = 30
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
TEST_FRACTION = 0.15  # of train/, only when the data has no test/ folder
VALIDATION_FRACTION = 0.15  # of the training pool


# ---- Data -------------------------------------------------------------------------------------
def patient_of(path: str) -> str:
    """The patient a Kaggle file name belongs to (``person1000_bacteria_2931`` -> ``person1000``,
    ``IM-0115-0001`` -> ``IM-0115``, ``NORMAL2-IM-0007-0001`` -> ``NORMAL2-IM-0007``)."""
    match = _PATIENT.match(Path(path).name)
    return match.group(1) if match else Path(path).stem


_PATIENT = re.compile(r"(person\d+|NORMAL\d*-IM-\d+|IM-\d+)[-_]")


def patient_split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """``(x_rest, x_held, y_rest, y_held)``: about ``fraction`` of the patients held out, both
    classes in proportion, no patient on both sides."""
    folds = StratifiedGroupKFold(n_splits=round(1 / fraction), shuffle=True, random_state=seed)
    groups = np.array([patient_of(p) for p in x])
    rest, held = next(folds.split(x, y, groups))
    return x[rest], x[held], y[rest], y[held]


def load_splits(data_dir: Path, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Paths and labels of the train / validation / test splits (by patient, stratified)."""
    root = require_path(data_dir / DATASET / "train", LAYOUT).parent
    for label in LABELS:
        require_path(root / "train" / label, LAYOUT)
    pool_x, pool_y = labelled_images(root / "train", LABELS)
    if (root / "val").is_dir():
        val_x, val_y = labelled_images(root / "val", LABELS)
        pool_x, pool_y = np.concatenate([pool_x, val_x]), np.concatenate([pool_y, val_y])
    if official_test(data_dir):
        test_x, test_y = labelled_images(root / "test", LABELS)
    else:
        pool_x, test_x, pool_y, test_y = patient_split(pool_x, pool_y, TEST_FRACTION, seed)
    train_x, val_x, train_y, val_y = patient_split(pool_x, pool_y, VALIDATION_FRACTION, seed)
    return {"train": (train_x, train_y), "validation": (val_x, val_y), "test": (test_x, test_y)}


def official_test(data_dir: Path) -> bool:
    return (data_dir / DATASET / "test").is_dir()


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights, so both classes weigh the same in the loss."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(float)
    return {i: float(len(y) / (len(LABELS) * c)) for i, c in enumerate(counts) if c > 0}


# ---- Model ------------------------------------------------------------------------------------
ARCHITECTURE = (
    "CNN: stem Conv3x3/2 16-BatchNorm-ReLU-MaxPool, 3 x (Conv3x3-BatchNorm-ReLU-MaxPool) "
    "32-64-128, GlobalAvgPool, Dropout 0.4, Dense 64, sigmoid; augmentation (rotation, shift, "
    "zoom, strong contrast and brightness), inverse-frequency class weights, Adam, decision "
    "threshold chosen on the validation patients (course 000 ex.3: one Conv 32 "
    "block, Dense 64, 150x150x3)"
)


def conv_block(x, filters: int):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    return keras.layers.MaxPooling2D()(x)


def make_model() -> keras.Model:
    """Raw uint8 pixels (None, 128, 128, 1) in, P(PNEUMONIA) (None, 1) out."""
    inputs = keras.Input(shape=(*IMAGE_SIZE, CHANNELS), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    # Augmentation for other hospitals' machines and framing: X-rays are taken upright and
    # centred, so rotations, shifts and zooms stay small and nothing is flipped (the heart is on
    # the left); exposure and contrast vary more between machines than framing does.
    x = keras.layers.RandomRotation(0.05, fill_mode="constant")(x)
    x = keras.layers.RandomTranslation(0.06, 0.06, fill_mode="constant")(x)
    x = keras.layers.RandomZoom(0.15, 0.15, fill_mode="constant")(x)
    x = keras.layers.RandomContrast(0.4)(x)
    x = keras.layers.RandomBrightness(0.2, value_range=(0, 1))(x)
    # Strided stem: 128 px -> 32 px feature maps cheaply; the later blocks carry the capacity.
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    for filters in (32, 64, 128):
        x = conv_block(x, filters)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.4)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    model = keras.Model(inputs, outputs, name="chest_xray_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


# ---- Train, evaluate, export ------------------------------------------------------------------
def train(cfg: TrainConfig) -> Path:
    set_seed(cfg.seed)
    splits = load_splits(cfg.data_dir, cfg.seed)
    splits = {  # smoke runs (--limit): a small slice of every split, both classes kept
        k: limit_rows(cfg.limit, x, y, strata=y, seed=cfg.seed) for k, (x, y) in splits.items()
    }
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        splits["train"],
        splits["validation"],
        splits["test"],
    )
    data = {"size": IMAGE_SIZE, "channels": CHANNELS, "batch_size": BATCH_SIZE}
    train_ds = image_dataset(train_x, train_y, shuffle_seed=cfg.seed, **data)
    val_ds = image_dataset(val_x, val_y, **data)

    model = make_model()
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        shuffle=False,  # the dataset shuffles itself (Keras ignores shuffle for a Dataset)
        epochs=cfg.epochs_or(EPOCHS),
        class_weight=class_weights(train_y),
        verbose=2 if cfg.limit is None else 0,
        callbacks=[
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3),
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=7, restore_best_weights=True
            ),
        ],
    )

    threshold = balanced_threshold(val_y, predict_probabilities(model, val_ds))
    print(f"{NAME}: decision threshold {threshold:.2f} (best balanced accuracy on validation)")
    test_ds = image_dataset(test_x, test_y, **data)
    metrics = score_test_split(NAME, model, test_ds, test_y, LABELS, threshold=threshold)
    explain = explain_functions(model)
    return export_model(
        model,
        name=NAME,
        cfg=cfg,
        history=history.history,
        task="image_classification",
        labels=LABELS,
        data={
            **DATA_NOTE,
            "test_split": "official Kaggle test/"
            if official_test(cfg.data_dir)
            else f"{TEST_FRACTION:.0%} of the patients of train/ (stratified by class, seeded), "
            "never tuned on",
        },
        splits=split_sizes(train=train_x, validation=val_x, test=test_x),
        metrics=metrics,
        extra_endpoints=explain,
        metadata={
            "architecture": ARCHITECTURE,
            "image": {
                "height": IMAGE_SIZE[0],
                "width": IMAGE_SIZE[1],
                "channels": CHANNELS,
                "background": "natural",
                "note": "128x128 grayscale instead of the course's 150x150x3: X-rays are gray, and "
                "the smaller input keeps training to minutes per epoch on 2 CPU cores",
            },
            "class_weights": class_weights(train_y),
            "split_method": "by patient (personNNN, IM-NNNN, NORMAL2-IM-NNNN from the file "
            "names) with StratifiedGroupKFold: no patient in two splits",
            "decision_threshold": threshold,
            "threshold_selection": "the P(PNEUMONIA) from which PNEUMONIA is answered: best "
            "balanced accuracy on the validation patients; the test metrics use it",
            "explain": explain_metadata(explain),
            "course_baseline": {
                "accuracy": None,
                "note": "course 000 ex.3 (CNN 150x150x3, augmentation) reports no test figure",
            },
        },
    )
