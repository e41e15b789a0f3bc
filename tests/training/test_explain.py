"""training/explain.py: explanation signatures exported beside serving_default."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.common.export import serving_model, write_saved_model
from training.explain import (
    check_same_answers,
    conv_blocks,
    explain_functions,
    feature_activations,
)


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


# ---- text and tabular models ------------------------------------------------------------------
def small_text_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    texts = np.array(["free prize now", "call me later", "win a free prize", "see you at home"])
    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_mode="tf_idf")
    vectorizer.adapt(texts)
    inputs = keras.Input(shape=(), dtype="string", name="text")
    x = keras.layers.Dropout(0.5)(vectorizer(inputs))
    x = keras.layers.Dense(4, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def test_text_activations_name_a_bag_by_its_strongest_terms(tmp_path):
    model = small_text_model()
    activations, layers = feature_activations(model)
    assert [(layer["kind"], layer["name"]) for layer in layers] == [
        ("bag", model.layers[1].name),
        ("dense", "dense"),
    ]
    write_saved_model(
        serving_model(model), tmp_path / "1", extra_endpoints={"activations": activations}
    )
    signature = tf.saved_model.load(str(tmp_path / "1")).signatures["activations"]
    out = signature(text=tf.constant(["free prize", "home"]))
    bag = layers[0]["name"]
    terms = out[f"{bag}__terms"].numpy().astype(str)
    values = out[f"{bag}__values"].numpy()
    top = layers[0]["top"]
    assert terms.shape == values.shape == (2, top)
    # The text's own words carry weight, the rest of the vocabulary none; strongest first.
    assert set(terms[0][values[0] > 0]) == {"free", "prize"}
    assert list(terms[1][values[1] > 0]) == ["home"]
    assert np.all(np.diff(values, axis=1) <= 0)
    expected_hidden = keras.Model(model.inputs, model.layers[3].output)(
        tf.constant(["free prize", "home"])
    )
    np.testing.assert_allclose(out["dense"].numpy(), expected_hidden, atol=1e-6)


def test_tabular_activations_show_the_feature_vector_and_hidden_layers(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = {
        "plan": keras.Input(shape=(1,), dtype="string", name="plan"),
        "months": keras.Input(shape=(1,), dtype="float32", name="months"),
    }
    plan = keras.layers.StringLookup(vocabulary=["basic", "pro"], output_mode="one_hot")
    x = keras.layers.Concatenate(name="features")([plan(inputs["plan"]), inputs["months"]])
    x = keras.layers.Dense(5, activation="relu")(x)
    x = keras.layers.Dense(3, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    activations, layers = feature_activations(model)
    assert [(layer["name"], layer["shape"]) for layer in layers] == [
        ("features", [4]),
        ("dense", [5]),
        ("dense_2", [3]),
    ]
    write_saved_model(
        serving_model(model), tmp_path / "1", extra_endpoints={"activations": activations}
    )
    signature = tf.saved_model.load(str(tmp_path / "1")).signatures["activations"]
    out = signature(plan=tf.constant([["pro"]]), months=tf.constant([[7.0]]))
    # one-hot [OOV, basic, pro] then the number as it is
    np.testing.assert_allclose(out["features"].numpy(), [[0, 0, 1, 7]])
    assert out["dense"].shape == (1, 5) and out["dense_2"].shape == (1, 3)


def test_a_model_without_intermediate_layers_is_refused():
    inputs = keras.Input(shape=(3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(ValueError, match="no intermediate layer"):
        feature_activations(model)
