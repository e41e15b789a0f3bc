"""Shared fixtures: a models folder of tiny Keras models exported with ``model.export``.

``tiny_models_dir`` (session scope) holds, in TF Serving layout with a ``metadata.json`` each:

- ``tiny_image/1`` and ``tiny_image/2``: uint8 pixels ``(None, 8, 8, 1)`` -> 3-class softmax;
  version 2 answers the opposite of version 1 (so tests can tell versions apart).
- ``tiny_text/1``: one string per row ``(None, 1)`` -> binary sigmoid ``(None, 1)``.
- ``tiny_tabular/1``: two inputs, ``color`` (string) and ``size`` (float32), ``(None, 1)`` each.
- ``tiny_multi/1``: float32 ``(None, 4)`` -> two outputs ``output_0 (None, 2)`` and
  ``output_1 (None, 1)``.
- ``broken/1``: a folder whose SavedModel is garbage (must be reported, not stop the others).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.paths import DATASETS_DIR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMAGE_LABELS = ["zero", "one", "two"]


def _write_version(model, root: Path, name: str, version: int, metadata: dict) -> Path:
    path = root / name / str(version)
    model.export(str(path), format="tf_saved_model", verbose=False)
    meta = {"name": name, "version": version, **metadata}
    (path / "metadata.json").write_text(json.dumps(meta, indent=2))
    return path


def _image_model(flip: bool):
    """Class = brightness band of the image (mean pixel < 85, < 170, else), or its mirror."""
    import keras
    import numpy as np

    inputs = keras.Input(shape=(8, 8, 1), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # Three fixed "distance to band centre" logits: no training needed, deterministic answers.
    dense = keras.layers.Dense(3, activation="softmax")
    outputs = dense(x)
    model = keras.Model(inputs, outputs)
    centres = np.array([1 / 6, 1 / 2, 5 / 6], dtype=np.float32)
    if flip:
        centres = centres[::-1].copy()
    # softmax(w*x + b) peaking at the nearest centre: logits = -k (x - c)^2 expanded, linear in x
    # up to a constant: 2kc x - k c^2.
    k = 60.0
    dense.set_weights([(2 * k * centres)[None, :], (-k * centres**2)])
    return model


def _text_model():
    """P(positive) from the counts of "good" and "bad" (fixed weights)."""
    import keras
    import numpy as np

    vocab = ["good", "bad"]
    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    vectorize = keras.layers.TextVectorization(
        vocabulary=vocab, output_mode="count", standardize="lower_and_strip_punctuation"
    )
    x = vectorize(inputs)
    dense = keras.layers.Dense(1, activation="sigmoid")
    outputs = dense(x)
    model = keras.Model(inputs, outputs)
    # Columns: [OOV, good, bad]
    dense.set_weights([np.array([[0.0], [3.0], [-3.0]], dtype=np.float32), np.zeros(1)])
    return model


def _tabular_model():
    import keras

    color = keras.Input(shape=(1,), dtype="string", name="color")
    size = keras.Input(shape=(1,), dtype="float32", name="size")
    onehot = keras.layers.StringLookup(vocabulary=["red", "green"], output_mode="one_hot")(color)
    x = keras.layers.Concatenate()([onehot, size])
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model({"color": color, "size": size}, outputs)


def _multi_model():
    import keras

    inputs = keras.Input(shape=(4,), dtype="float32", name="x")
    first = keras.layers.Dense(2, activation="softmax")(inputs)
    second = keras.layers.Dense(1)(inputs)
    return keras.Model(inputs, [first, second])


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("models")
    image_meta = {
        "task": "image_classification",
        "labels": IMAGE_LABELS,
        "image": {"height": 8, "width": 8, "channels": 1, "background": "dark"},
    }
    _write_version(_image_model(flip=False), root, "tiny_image", 1, image_meta)
    _write_version(_image_model(flip=True), root, "tiny_image", 2, image_meta)
    _write_version(
        _text_model(),
        root,
        "tiny_text",
        1,
        {"task": "text_classification", "labels": ["negative", "positive"]},
    )
    _write_version(
        _tabular_model(),
        root,
        "tiny_tabular",
        1,
        {
            "task": "tabular_classification",
            "labels": ["stay", "churn"],
            "columns": {
                "color": {"type": "categorical", "values": ["red", "green"], "default": "red"},
                "size": {"type": "numeric", "default": 1.0},
            },
        },
    )
    _write_version(_multi_model(), root, "tiny_multi", 1, {"task": "regression"})
    broken = root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    return root


@pytest.fixture(scope="session")
def mnist_test_digits():
    """``(x, y)`` of the MNIST test split, or skip when the dataset is not on this machine."""
    import numpy as np

    path = DATASETS_DIR / "mnist" / "mnist.npz"
    if not path.exists():
        pytest.skip(f"MNIST not found at {path} (set TRAINING_DATA_DIR)")
    with np.load(path) as f:
        return f["x_test"], f["y_test"]


@pytest.fixture
def moto_s3():
    """``(endpoint URL, boto3 client)`` of a real S3 API on 127.0.0.1 (moto's server) with an
    empty bucket ``models``; skip without moto[server] and boto3."""
    pytest.importorskip("moto.server")
    pytest.importorskip("boto3")
    from deploy.scaleout import moto_s3

    with moto_s3() as server:
        yield server
