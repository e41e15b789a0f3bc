"""SMS spam filtering with TextVectorization and the course's small MLP (course 000, exercise 1).

The course's network is Dense 16 relu -> Dense 8 relu -> Dense 1 sigmoid, trained with Adam and
binary cross-entropy on 20 simulated features (no figure reported). Here the features are real:
the served graph takes the raw message and a TextVectorization layer turns it into TF-IDF weights
of words and word pairs (vocabulary and IDF learned from the training split only), which feed the
same 16-8-1 MLP. Dropout on the wide input keeps it from memorizing rare tokens.

Data: ``<data-dir>/sms-spam/SMSSpamCollection``, the UCI file: one message a line, ``ham`` or
``spam``, a tab, the text (UTF-8, no header).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.common.data import holdout_splits, require_path, set_seed
from training.common.evaluate import score_test_split
from training.common.export import export_model, split_sizes
from training.config import TrainConfig
from training.explain import feature_activations, feature_explain_metadata

NAME = "spam"
LABELS = ["ham", "spam"]
LAYOUT = """
<data-dir>/sms-spam/SMSSpamCollection   one message a line: 'ham' or 'spam', a tab, the text
                                        (UTF-8, no header; the UCI SMS Spam Collection v.1)
"""
DATA_NOTE = {
    "source": "SMS Spam Collection v.1 (Almeida & Gómez Hidalgo 2011, UCI Machine Learning "
    "Repository), 4,748 messages",
    "license": "CC BY 4.0",
    "stand_in": False,
}

# Hyper-parameters
MAX_TOKENS = 8000
NGRAMS = 2
EPOCHS = 30
BATCH_SIZE = 32
DROPOUT = 0.5
PATIENCE = 4
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1


# ---- Data -------------------------------------------------------------------------------------
def load_data(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Messages (object array of str) and labels (1 = spam)."""
    path = require_path(data_dir / "sms-spam" / "SMSSpamCollection", LAYOUT)
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, sep, text = line.partition("\t")
        if sep and label in LABELS:
            texts.append(text)
            labels.append(LABELS.index(label))
    return np.array(texts, dtype=object), np.array(labels, dtype="int64")


# ---- Model ------------------------------------------------------------------------------------
def make_vectorizer(train_texts: np.ndarray) -> keras.layers.TextVectorization:
    """TF-IDF over words and word pairs, adapted on the training texts only."""
    vectorizer = keras.layers.TextVectorization(
        max_tokens=MAX_TOKENS, ngrams=NGRAMS, output_mode="tf_idf", name="tfidf"
    )
    vectorizer.adapt(tf.constant(train_texts.astype(str)))
    return vectorizer


def make_model(vectorizer: keras.layers.TextVectorization) -> keras.Model:
    """Raw message strings (None,) in, P(spam) (None, 1) out."""
    inputs = keras.Input(shape=(), dtype="string", name="text")
    x = vectorizer(inputs)
    x = keras.layers.Dropout(DROPOUT)(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="spam_probability")(x)
    model = keras.Model(inputs, outputs, name="spam_mlp")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def to_dataset(
    texts: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    x = tf.constant(texts.astype(str))
    ds = tf.data.Dataset.from_tensor_slices(x if labels is None else (x, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(texts), seed=shuffle_seed)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---- Train, evaluate, export ------------------------------------------------------------------
def train(cfg: TrainConfig) -> Path:
    set_seed(cfg.seed)
    texts, labels = load_data(cfg.data_dir)
    (x_tr, y_tr), (x_val, y_val), (x_test, y_test) = holdout_splits(
        texts,
        labels,
        test_size=TEST_FRACTION,
        validation_size=VALIDATION_FRACTION,
        seed=cfg.seed,
        limit=cfg.limit,
    )

    model = make_model(make_vectorizer(x_tr))
    model.run_eagerly = cfg.limit is not None  # smoke: tracing costs more than steps
    history = model.fit(
        to_dataset(x_tr, y_tr, batch_size=BATCH_SIZE, shuffle_seed=cfg.seed),
        shuffle=False,  # the dataset shuffles itself (Keras ignores shuffle for a Dataset)
        validation_data=to_dataset(x_val, y_val, batch_size=256),
        epochs=cfg.epochs_or(EPOCHS),
        verbose=2 if cfg.limit is None else 0,
        callbacks=[keras.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True)],
    )

    metrics = score_test_split(NAME, model, to_dataset(x_test, batch_size=256), y_test, LABELS)
    activations, explained_layers = feature_activations(model)
    return export_model(
        model,
        name=NAME,
        cfg=cfg,
        history=history.history,
        task="text_classification",
        labels=LABELS,
        data=DATA_NOTE,
        splits=split_sizes(train=x_tr, validation=x_val, test=x_test),
        metrics=metrics,
        extra_endpoints={"activations": activations},
        metadata={
            "explain": feature_explain_metadata(explained_layers),
            "architecture": f"TextVectorization (TF-IDF, 1-{NGRAMS}-grams, {MAX_TOKENS} tokens) "
            f"-> Dropout {DROPOUT} -> Dense16-Dense8-sigmoid (course 000 ex.1 MLP)",
            "course_baseline": {
                "accuracy": None,
                "note": "course 000 ex.1 trains on simulated data "
                "(make_classification) and reports no figure",
            },
        },
    )
