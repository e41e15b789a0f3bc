"""training/explain.py: explanation signatures exported beside serving_default."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.common.export import serving_model, write_saved_model
from training.explain import check_same_answers, conv_blocks, explain_functions


def small_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(6, 3, activation="relu", padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_blocks_end_after_their_norm_and_activation():
    model = small_cnn()
    assert [type(layer).__name__ for layer in conv_blocks(model)] == ["Activation", "Conv2D"]


def test_exported_signatures(tmp_path):
    model = small_cnn()
    write_saved_model(
        serving_model(model), tmp_path / "1", extra_endpoints=explain_functions(model)
    )
    loaded = tf.saved_model.load(str(tmp_path / "1"))
    assert {"serving_default", "activations", "gradcam"} <= set(loaded.signatures)
    pixels = tf.constant(np.random.default_rng(1).integers(0, 256, (5, 12, 12, 1), np.uint8))
    probabilities = loaded.signatures["serving_default"](pixels=pixels)["output_0"].numpy()
    gradcam = loaded.signatures["gradcam"](pixels=pixels)
    np.testing.assert_array_equal(gradcam["class_index"].numpy(), probabilities.argmax(axis=1))
    np.testing.assert_allclose(gradcam["probability"].numpy(), probabilities.max(axis=1), rtol=1e-5)
    heatmap = gradcam["heatmap"].numpy()
    assert heatmap.shape == (5, 6, 6) and heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6
    activations = loaded.signatures["activations"](pixels=pixels)
    assert {k: tuple(v.shape) for k, v in activations.items()} == {
        "conv_1": (5, 12, 12, 4),
        "conv_2": (5, 6, 6, 6),
        "dense": (5, 8),
    }
    assert check_same_answers(model, tmp_path / "1") < 1e-6
    other = small_cnn()
    other.layers[-1].kernel.assign(other.layers[-1].kernel * 3)  # not the exported weights
    with pytest.raises(ValueError, match="differs"):
        check_same_answers(other, tmp_path / "1")
