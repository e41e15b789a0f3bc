"""A stand-in ``mnist`` whose compute is negligible, to measure the serving path on its own.

``python -m bench.tiny_model OUT`` exports ``OUT/mnist/1`` with the committed model's signature
(``pixels`` uint8 (None, 28, 28, 1) -> ``output_0`` float32 (None, 10), softmax) but only
rescaling, a global average pool and one dense layer (untrained: its predictions mean nothing).
Then ``python -m bench --models-dir OUT --no-label-check`` measures HTTP + JSON + batching + the
TF call overhead without the CNN's arithmetic.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def export_tiny_mnist(out_dir: Path) -> Path:
    import keras

    inputs = keras.Input((28, 28, 1), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    version_dir = out_dir / "mnist" / "1"
    model.export(str(version_dir), format="tf_saved_model", verbose=False)
    metadata = {
        "name": "mnist",
        "version": 1,
        "task": "image_classification",
        "labels": [str(d) for d in range(10)],
        "inputs": [{"name": "pixels", "dtype": "uint8", "shape": [None, 28, 28, 1]}],
        "outputs": [{"name": "output_0", "dtype": "float32", "shape": [None, 10]}],
        "image": {"height": 28, "width": 28, "channels": 1, "background": "dark"},
        "architecture": "benchmark stand-in: Rescaling-GlobalAveragePooling-Dense10, untrained",
    }
    (version_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return version_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.tiny_model OUT_DIR")
    print(export_tiny_mnist(Path(sys.argv[1])))
