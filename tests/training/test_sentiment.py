"""Smoke test of the bilingual sentiment model: tiny training run, export, reload, raw strings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from training import sentiment
from training.config import TrainConfig

COMMITTED_MODEL = Path(__file__).resolve().parents[2] / "models" / "sentiment" / "3"


def test_standardize_lowercases_strips_punctuation_keeps_accents():
    out = sentiment.standardize(tf.constant(["¡ME ENCANTÓ! ¿Señor, qué tal?"])).numpy()[0]
    assert out.decode().split() == ["me", "encantó", "señor", "qué", "tal"]


def test_character_ngrams_stay_inside_words():
    grams = sentiment.character_ngrams(tf.constant(["no ok"])).to_list()[0]
    assert {g.decode() for g in grams} == {
        " n",
        "no",
        "o ",
        " no",
        "no ",
        " no ",
        " o",
        "ok",
        "k ",
        " ok",
        "ok ",
        " ok ",
    }


def test_sublinear_tfidf_is_unit_norm_and_damps_repeats():
    layer = sentiment.SublinearTfIdf(np.array([0.0, 1.0, 2.0], dtype="float32"))
    out = np.asarray(layer(np.array([[5, np.e, 1], [0, 0, 0]], dtype="float32")))
    expected = np.array([0.0, 2.0, 2.0]) / np.sqrt(8.0)  # OOV bucket has idf 0; 1 + log(e) = 2
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)
    np.testing.assert_allclose(out[1], 0.0)  # an empty text stays finite


def test_balanced_weights_give_each_language_class_equal_weight():
    df = pd.DataFrame({"language": ["es"] * 10 + ["en"] * 4, "label": [1] * 9 + [0] + [0, 1] * 2})
    weights = sentiment.balanced_weights(df)
    totals = pd.Series(weights).groupby([df["language"], df["label"]]).sum()
    np.testing.assert_allclose(totals.to_numpy(), totals.iloc[0])
    assert weights.mean() == pytest.approx(1.0)


def test_loaders_read_both_languages(data_dir):
    df = sentiment.load_data(data_dir)
    assert set(df["language"]) == {"es", "en"}
    assert set(df["label"]) == {0, 1}
    # cp1252 files decoded as such: accents intact, no replacement characters (one UTF-8 SFU
    # file carries a literal U+FFFD of its own).
    assert df["text"].str.contains("\ufffd").sum() <= 1
    assert df.loc[df["source"] == "sfu", "text"].str.contains("ñ").any()
    assert not (df["label"][df["source"] == "restmex"] == 1).all()
    train, test = sentiment.split_per_language(df, seed=0)
    assert len(train) + len(test) == len(df)
    # Stratified per language, source and class: every stratum is in the test split.
    for column in ["language", "source", "label"]:
        assert set(test[column]) == set(df[column])


def test_train_export_reload_accepts_raw_strings(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=60, version=1)
    path = sentiment.train(cfg)

    meta = json.loads((path / "metadata.json").read_text())
    assert meta["task"] == "text_classification"
    assert meta["labels"] == ["negative", "positive"]
    assert set(meta["metrics"]["by_language"]) == {"es", "en"}
    assert set(meta["splits"]["by_language"]) == {"es", "en"}
    assert (path / "confusion_matrix.png").is_file()
    # Each language's expert: its settings chosen by cross-validation for its language.
    head = meta["training"]["head_fit"]
    assert set(head["chosen"]) == {"es", "en"}
    for lang, chosen in head["chosen"].items():
        assert chosen["char_weight"] in sentiment.CHAR_WEIGHTS
        assert chosen["C"] in sentiment.GATED_C_GRID and chosen["nb"] in sentiment.NB_SCALING
        best = max(p["cv_balanced_accuracy"][lang] for p in head["path"])
        assert chosen["cv_balanced_accuracy"] == best
    assert len(head["path"]) == (
        len(sentiment.GATED_C_GRID) * len(sentiment.CHAR_WEIGHTS) * len(sentiment.NB_SCALING)
    )
    assert (
        meta["splits"]["validation"] == 0 and "cross-validation" in meta["splits"]["validation_by"]
    )
    assert [layer["name"] for layer in meta["explain"]["layers"]] == [
        "word_bigram_tfidf",
        "char_ngram_tfidf",
        "language_gate",
        "expert_es",
        "expert_en",
    ]

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    texts = ["Me encantó el producto, excelente", "Awful, a complete waste of money", ""]
    probabilities = serve(text=tf.constant(texts))["output_0"].numpy()
    assert probabilities.shape == (3, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    # The served probability is the language gate's mixture of the two experts.
    layers = tf.saved_model.load(str(path)).signatures["activations"](text=tf.constant(texts))
    gate, es, en = (layers[k].numpy() for k in ("language_gate", "expert_es", "expert_en"))
    np.testing.assert_allclose(probabilities, gate * es + (1 - gate) * en, atol=1e-6)


@pytest.mark.skipif(not COMMITTED_MODEL.is_dir(), reason="models/sentiment/3 not present")
def test_committed_model_gets_clear_reviews_right_in_both_languages():
    serve = tf.saved_model.load(str(COMMITTED_MODEL)).signatures["serving_default"]
    positive = ["Me encantó el producto, excelente", "I loved it, great product"]
    negative = ["Terrible servicio, nunca vuelvo", "Awful, a complete waste of money"]
    p = serve(text=tf.constant(positive + negative))["output_0"].numpy()[:, 0]
    assert (p[:2] > 0.5).all() and (p[2:] < 0.5).all(), p
