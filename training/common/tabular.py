"""Tabular models with named raw columns: column metadata, default filling, in-graph encoding.

A served tabular model takes one input per CSV column, shape ``(None,)``: ``string`` for
categories, ``float32`` for numbers. Encoding (StringLookup one-hot / multi-hot, optional log1p,
Normalization) lives in the graph. ``metadata.json["columns"]`` (docs/CONTRACTS.md) says, per
column, its type, the known category values, and the default the server fills a null with.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import tensorflow as tf


def numeric_column(series: pd.Series, *, log_scale: bool = False) -> dict:
    """Numeric column metadata; the default (fills missing values) is the training median."""
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    spec = {"type": "numeric", "default": float(np.nanmedian(values))}
    if log_scale:
        spec["log_scale"] = True  # log1p(max(x, 0)) before normalization: heavy-tailed counts
    return spec


def categorical_column(
    series: pd.Series, *, min_count: int = 1, separator: str | None = None
) -> dict:
    """Categorical column metadata: its values seen at least ``min_count`` times in training and
    the most frequent one as default. Values below ``min_count`` and unseen ones go to the lookup's
    out-of-vocabulary bucket, so such a column is ``open`` (any string is accepted).
    With ``separator`` the column holds several values in one string (``"Action|Drama"``)."""
    strings = series.dropna().astype(str)
    parts = strings.str.split(separator).explode() if separator else strings
    counts = parts.value_counts()
    spec: dict = {
        "type": "categorical",
        "values": sorted(counts[counts >= min_count].index.tolist()),
        "default": str(strings.value_counts().index[0]),
    }
    if separator:
        spec["separator"] = separator
    if min_count > 1 or separator:
        spec["open"] = True
    return spec


def fill_defaults(frame: pd.DataFrame, columns: dict[str, dict]) -> pd.DataFrame:
    """The served columns only, typed as served, missing values replaced by their default."""
    out = pd.DataFrame(index=frame.index)
    for name, spec in columns.items():
        if spec["type"] == "numeric":
            values = pd.to_numeric(frame[name], errors="coerce")
            out[name] = values.fillna(spec["default"]).astype("float32")
        else:
            values = frame[name].astype("string").str.strip().replace("", pd.NA)
            out[name] = values.fillna(spec["default"]).astype(str)
    return out


def to_inputs(frame: pd.DataFrame, columns: dict[str, dict]) -> dict[str, np.ndarray]:
    """Model inputs (one 1-D array per column) from a frame that went through ``fill_defaults``."""
    return {
        name: frame[name].to_numpy(np.float32 if spec["type"] == "numeric" else object)
        for name, spec in columns.items()
    }


def to_dataset(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """A batched tf.data pipeline of (inputs, labels); shuffled when ``shuffle_seed`` is given."""
    tensors = {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in inputs.items()}
    ds = tf.data.Dataset.from_tensor_slices(tensors if labels is None else (tensors, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(next(iter(inputs.values()))), seed=shuffle_seed)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_inputs(columns: dict[str, dict]) -> dict[str, keras.KerasTensor]:
    """One named Keras input per column, shape ``(None,)``: float32 numbers, raw strings."""
    return {
        name: keras.Input(
            shape=(), name=name, dtype="float32" if spec["type"] == "numeric" else "string"
        )
        for name, spec in columns.items()
    }


class SplitMultiHot(keras.layers.Layer):
    """``"Action|Drama"`` -> multi-hot over ``vocabulary`` (plus one out-of-vocabulary slot)."""

    def __init__(self, vocabulary: list[str], separator: str, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        self.separator = separator
        self.lookup = keras.layers.StringLookup(vocabulary=self.vocabulary, output_mode="multi_hot")

    def call(self, inputs):
        return self.lookup(tf.strings.split(inputs, sep=self.separator))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.vocabulary) + 1)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "separator": self.separator}


def encode_columns(
    inputs: dict[str, keras.KerasTensor], columns: dict[str, dict], train: pd.DataFrame
) -> keras.KerasTensor:
    """Concatenated numeric features from raw inputs. Numeric columns: NaN -> default, optional
    log1p, then standardized with the training frame's mean and variance; categorical columns:
    one-hot (multi-hot with a separator) over the known values plus an out-of-vocabulary slot."""
    features = []
    for name, spec in columns.items():
        x = inputs[name]
        if spec["type"] == "numeric":
            values = train[name].to_numpy(np.float64)
            x = keras.ops.where(keras.ops.isnan(x), spec["default"], x)  # NaN never reaches Dense
            if spec.get("log_scale"):
                x = keras.ops.log1p(keras.ops.maximum(x, 0.0))
                values = np.log1p(np.maximum(values, 0.0))
            x = keras.ops.expand_dims(x, -1)
            norm = keras.layers.Normalization(
                mean=[values.mean()], variance=[max(values.var(), 1e-6)], name=f"{name}_norm"
            )
            features.append(norm(x))
        elif "separator" in spec:
            multi_hot = SplitMultiHot(spec["values"], spec["separator"], name=f"{name}_multi_hot")
            features.append(multi_hot(x))
        else:
            lookup = keras.layers.StringLookup(
                vocabulary=spec["values"], output_mode="one_hot", name=f"{name}_lookup"
            )
            features.append(lookup(x))
    return keras.layers.Concatenate(name="features")(features)
