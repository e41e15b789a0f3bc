"""The Simpsons characters from full frames at 64x64 (course 002).

The course trains Conv 32-64-128-256 (each followed by MaxPool) + Dropout + Dense 256 + softmax 18
on 60x60 frames with RMSprop and reached 90.1 % on the Kaggle test set. Here: the course's 18
characters plus lenny_leonard and mayor_quimby (20 classes), every frame squashed to **64x64** RGB
exactly as the server does it (Pillow, box filter), and a CNN sized for a CPU: a stride-2 stem,
three Conv-BatchNorm-ReLU blocks (64, 128x2, 256x2) with max pooling, global average pooling and a
softmax. Augmentation (flip, shift, zoom, contrast, brightness) lives in the graph and is off when
served; class weights balance homer's 2,000 frames against quimby's 166.

**Honest splits.** Frames of one scene are near-copies of each other, and Kaggle's file numbers do
not follow scenes (consecutive frames are no more alike than random ones). So frames are grouped
by a perceptual hash (difference hash of the 9x8 grey image): frames of one character within
``DUPLICATE_BITS`` bits are one group (union-find), and train / validation / test are split by
group, stratified by character. No near-copy of a test frame is trained on; everything (epochs,
width, the validation curve) is chosen on validation. With Kaggle's own test set present
(``kaggle_simpson_testset/``), it is scored too and reported beside the held-out frames.

The served version carries ``activations`` and ``gradcam`` signatures (``training/explain.py``).

Data:
``<data-dir>/simpsons-characters/simpsons_dataset/<character>/*.jpg`` (the Kaggle layout; a nested
``simpsons_dataset/simpsons_dataset/`` also works), optional Kaggle test set
``<data-dir>/simpsons-characters/kaggle_simpson_testset/<character>_<n>.jpg``. Characters outside
``CHARACTERS`` (the full download has 42 folders, most with a few frames) are not used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from training.common.data import limit_rows, require_path, set_seed, stratified_split
from training.common.evaluate import classification_metrics, predict_probabilities
from training.common.export import export_model, split_sizes
from training.common.images import list_images
from training.config import TrainConfig
from training.explain import explain_functions, explain_metadata

NAME = "simpsons"
# The course's 18 characters (the 18 with the most Kaggle frames) and the next two.
CHARACTERS = [
    "abraham_grampa_simpson",
    "apu_nahasapeemapetilon",
    "bart_simpson",
    "charles_montgomery_burns",
    "chief_wiggum",
    "comic_book_guy",
    "edna_krabappel",
    "homer_simpson",
    "kent_brockman",
    "krusty_the_clown",
    "lenny_leonard",
    "lisa_simpson",
    "marge_simpson",
    "mayor_quimby",
    "milhouse_van_houten",
    "moe_szyslak",
    "ned_flanders",
    "nelson_muntz",
    "principal_skinner",
    "sideshow_bob",
]
LAYOUT = """
<data-dir>/simpsons-characters/simpsons_dataset/<character>/*.jpg   Kaggle Simpsons Characters
<data-dir>/simpsons-characters/kaggle_simpson_testset/<character>_<n>.jpg  (optional test set)
<character> is a Kaggle folder name such as bart_simpson; at least one must exist.
"""
DATA_NOTE = {
    "source": "The Simpsons Characters Data (Kaggle, A. Attia): full frames of 20 characters "
    "(the course's 18, lenny_leonard, mayor_quimby), downscaled to <=128 px",
    "license": "CC BY-NC-SA 4.0 (non-commercial use only); frames © Fox",
    "stand_in": False,
}

# ---- Hyper-parameters -------------------------------------------------------------------------
IMAGE_SIZE = (64, 64)
CHANNELS = 3
BATCH_SIZE = 64
EPOCHS = 30
LEARNING_RATE = 2e-3
DROPOUT = 0.3
STEM_FILTERS = 32
BLOCKS = ((64, 1), (128, 2), (256, 2))  # (filters, convolutions) per block, each then MaxPool
TEST_FRACTION = 0.15
VALIDATION_FRACTION = 0.15
DUPLICATE_BITS = 10  # of 64: frames this close (difference hash) are one scene


# ---- Data -------------------------------------------------------------------------------------
@dataclass
class Frames:
    paths: list[str] = field(default_factory=list)
    characters: list[str] = field(default_factory=list)


def kaggle_folder(root: Path, name: str) -> Path | None:
    """``root/name``, or the ``root/name/name`` the Kaggle zip unpacks to; None if absent."""
    folder = root / name
    if (folder / name).is_dir():
        folder = folder / name
    return folder if folder.is_dir() else None


def find_frames(data_dir: Path) -> tuple[Frames, Frames]:
    """The training pool and the official Kaggle test images (empty when absent)."""
    frames_dir = kaggle_folder(data_dir / "simpsons-characters", "simpsons_dataset")
    if frames_dir is None:
        require_path(data_dir / "simpsons-characters" / "simpsons_dataset", LAYOUT)
    pool, test = Frames(), Frames()
    for character in CHARACTERS:
        if (frames_dir / character).is_dir():
            for path in list_images(frames_dir / character):
                pool.paths.append(str(path))
                pool.characters.append(character)
    if not pool.paths:
        require_path(frames_dir / CHARACTERS[0], LAYOUT)
    test_dir = kaggle_folder(data_dir / "simpsons-characters", "kaggle_simpson_testset")
    if test_dir is not None:
        for path in list_images(test_dir):
            character = re.sub(r"_\d+$", "", path.stem)
            if character in CHARACTERS:
                test.paths.append(str(path))
                test.characters.append(character)
    return pool, test


def served_pixels(path: str) -> np.ndarray:
    """One image decoded and squashed to 64x64 RGB exactly as the server does (Pillow; box
    filter when shrinking, bilinear when enlarging)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        size = (IMAGE_SIZE[1], IMAGE_SIZE[0])
        if image.size != size:
            shrinking = image.width >= size[0] and image.height >= size[1]
            resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
            image = image.resize(size, resample)
        return np.asarray(image, dtype=np.uint8)


def load_pixels(paths: list[str]) -> np.ndarray:
    """uint8 ``(N, 64, 64, 3)`` pixels of the files."""
    pixels = np.zeros((len(paths), *IMAGE_SIZE, CHANNELS), dtype=np.uint8)
    for row, path in enumerate(paths):
        pixels[row] = served_pixels(path)
    return pixels


def difference_hash(pixels: np.ndarray) -> np.ndarray:
    """64-bit difference hashes (Krawetz's dHash) of uint8 RGB images: is each pixel of the 9x8
    grey image brighter than its right-hand neighbour. Unchanged by scale and small shifts in
    brightness, so frames of one shot land within a few bits."""
    hashes = np.zeros(len(pixels), dtype=np.uint64)
    for i, image in enumerate(pixels):
        grey = np.asarray(Image.fromarray(image).convert("L").resize((9, 8), Image.BOX), float)
        bits = (grey[:, 1:] > grey[:, :-1]).ravel()
        hashes[i] = np.packbits(bits).view(">u8")[0]
    return hashes


def near_duplicate_groups(hashes: np.ndarray, characters: list[str], bits: int) -> np.ndarray:
    """A group id per frame: frames of one character whose hashes differ in at most ``bits``
    bits are joined (union-find), so a scene never straddles two splits."""
    parent = np.arange(len(hashes))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    names = np.array(characters)
    for character in np.unique(names):
        members = np.flatnonzero(names == character)
        codes = hashes[members]
        for k, i in enumerate(members[:-1]):
            distance = np.bitwise_count(codes[k + 1 :] ^ codes[k])
            for j in members[k + 1 :][distance <= bits]:
                parent[root(int(j))] = root(int(i))
    return np.array([root(i) for i in range(len(hashes))])


def split_by_group(groups: np.ndarray, y: np.ndarray, seed: int):
    """Train / validation / test index arrays: whole groups, stratified by class (where each
    part can hold every class: a smoke run's tiny slice is split at random)."""
    unique, first = np.unique(groups, return_index=True)

    def strata(classes: np.ndarray, fraction: float) -> np.ndarray | None:
        counts = np.bincount(classes)
        enough = fraction * len(classes) >= len(set(classes)) and counts[counts > 0].min() >= 2
        return classes if enough else None

    classes = y[first]
    rest, test = stratified_split(
        unique, test_size=TEST_FRACTION, seed=seed, stratify=strata(classes, TEST_FRACTION)
    )
    rest_classes = classes[np.searchsorted(unique, rest)]
    train, validation = stratified_split(
        rest,
        test_size=VALIDATION_FRACTION,
        seed=seed,
        stratify=strata(rest_classes, VALIDATION_FRACTION),
    )
    return tuple(np.flatnonzero(np.isin(groups, part)) for part in (train, validation, test))


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return {i: float(len(y) / (n_classes * c)) for i, c in enumerate(counts) if c > 0}


# ---- Model ------------------------------------------------------------------------------------
def make_model(n_classes: int, decay_steps: int = 10_000, name: str = "simpsons_cnn"):
    """Raw uint8 pixels ``(None, 64, 64, 3)`` in, class probabilities out."""
    inputs = keras.Input(shape=(*IMAGE_SIZE, CHANNELS), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.RandomFlip("horizontal")(x)
    x = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest")(x)
    x = keras.layers.RandomZoom(0.1, fill_mode="nearest")(x)
    x = keras.layers.RandomContrast(0.2)(x)
    x = keras.layers.RandomBrightness(0.15, value_range=(0, 1))(x)
    # A stride-2 stem: 64 -> 32 px at a quarter of a full-resolution block's cost.
    x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    for filters, convolutions in BLOCKS:  # 32 -> 16 -> 8 -> 4 px
        for _ in range(convolutions):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(DROPOUT)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps)
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def architecture() -> str:
    blocks = ", ".join(f"{c}x Conv3x3 {f}" for f, c in BLOCKS)
    return (
        f"CNN on 64x64 RGB: stem Conv3x3/2 {STEM_FILTERS}, blocks [{blocks}] "
        "(Conv-BatchNorm-ReLU, MaxPool after each block), GlobalAveragePooling, Dropout "
        f"{DROPOUT}, softmax; augmentation (flip, shift, zoom, contrast, brightness), class "
        "weights, Adam with cosine decay (course 002: 32-64-128-256 without BatchNorm, RMSprop, "
        "60x60 input)"
    )


# ---- Train, evaluate, export ------------------------------------------------------------------
def train(cfg: TrainConfig) -> Path:
    set_seed(cfg.seed)
    pool, official = find_frames(cfg.data_dir)
    labels = sorted(set(pool.characters))
    y_all = np.array([labels.index(c) for c in pool.characters])
    keep = limit_rows(cfg.limit, np.arange(len(y_all)), strata=y_all, seed=cfg.seed)
    pixels = load_pixels([pool.paths[i] for i in keep])
    y_all = y_all[keep]
    characters = [pool.characters[i] for i in keep]
    groups = near_duplicate_groups(difference_hash(pixels), characters, DUPLICATE_BITS)
    train_idx, val_idx, test_idx = split_by_group(groups, y_all, cfg.seed)
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = (
        (pixels[i], y_all[i]) for i in (train_idx, val_idx, test_idx)
    )
    print(
        f"{NAME}: {len(pixels)} frames in {len(np.unique(groups))} near-duplicate groups; "
        f"train {len(x_tr)}, validation {len(x_val)}, test {len(x_te)}",
        flush=True,
    )

    epochs = cfg.epochs_or(EPOCHS)
    model = make_model(len(labels), decay_steps=epochs * -(-len(x_tr) // BATCH_SIZE))
    history = model.fit(
        x_tr,
        y_tr,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=BATCH_SIZE,
        class_weight=class_weights(y_tr, len(labels)),
        verbose=2 if cfg.limit is None else 0,
    ).history

    probabilities = predict_probabilities(model, x_te)
    metrics = classification_metrics(y_te, probabilities, labels)
    official_idx = limit_rows(cfg.limit, np.arange(len(official.paths)), seed=cfg.seed)
    if len(official_idx):
        x_off = load_pixels([official.paths[i] for i in official_idx])
        y_off = np.array([labels.index(official.characters[i]) for i in official_idx])
        predicted = predict_probabilities(model, x_off).argmax(axis=1)
        metrics["kaggle_testset"] = {
            "accuracy": float(np.mean(predicted == y_off)),
            "n": len(y_off),
        }
    print(f"{NAME}: test accuracy {metrics['accuracy']:.4f}", flush=True)
    explain = explain_functions(model)
    return export_model(
        model,
        name=NAME,
        cfg=cfg,
        history=history,
        task="image_classification",
        labels=labels,
        data={
            **DATA_NOTE,
            "frames": len(pixels),
            "test_split": f"{TEST_FRACTION:.0%} of the near-duplicate groups (difference hash "
            f"within {DUPLICATE_BITS} bits, per character), stratified by character, seeded; "
            "never tuned on",
            "near_duplicate_groups": len(np.unique(groups)),
        },
        splits=split_sizes(train=x_tr, validation=x_val, test=x_te),
        metrics=metrics,
        extra_endpoints=explain,
        metadata={
            "architecture": architecture(),
            "image": {
                "height": IMAGE_SIZE[0],
                "width": IMAGE_SIZE[1],
                "channels": CHANNELS,
                "background": "natural",
                "note": "whole frames squashed to 64x64 RGB (Pillow box filter, the server's "
                "resize); trained on full Kaggle frames",
            },
            "validation": {"accuracy": float(history["val_accuracy"][-1])},
            "explain": explain_metadata(explain),
            "course_baseline": {
                "accuracy": 0.9011,
                "note": "course 002: 18 characters, 60x60 frames, Kaggle test set (990 images)",
            },
        },
    )
