"""The SavedModel every peer serves, loaded the same way in each peer's venv (no code of ours)."""

from __future__ import annotations

import os

import numpy as np

BATCH_SIZE = int(os.environ.get("PEER_MAX_BATCH_SIZE", "256"))
WAIT_MS = float(os.environ.get("PEER_MAX_WAIT_MS", "3"))
PORT = int(os.environ.get("PEER_PORT", "8000"))
HOST = "127.0.0.1"


class Model:
    """``serving_default`` of the SavedModel in ``$PEER_MODEL_DIR``: uint8 digits in,
    ``(N, 10)`` probabilities out."""

    def __init__(self, model_dir: str | None = None) -> None:
        import tensorflow as tf

        loaded = tf.saved_model.load(model_dir or os.environ["PEER_MODEL_DIR"])
        self._loaded = loaded  # keeps the variables alive
        self._signature = loaded.signatures["serving_default"]
        (self._input,) = self._signature.structured_input_signature[1].keys()
        self._tf = tf
        self(np.zeros((1, 28, 28, 1), np.uint8))  # warm-up (graph tracing)

    def __call__(self, digits: np.ndarray) -> np.ndarray:
        tensor = self._tf.constant(np.asarray(digits, dtype=np.uint8))
        return self._signature(**{self._input: tensor})["output_0"].numpy()


def as_digits(instances) -> np.ndarray:
    """TF Serving-style ``instances`` (nested lists) as a uint8 ``(N, 28, 28, 1)`` array."""
    return np.asarray(instances, dtype=np.uint8).reshape(-1, 28, 28, 1)
