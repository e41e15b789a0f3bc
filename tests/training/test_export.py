"""``write_saved_model``: the serving signature of ``model.export``, each weight stored once."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from training import mnist
from training.common.export import add_plot, serving_model, write_metadata, write_saved_model


def test_saved_model_serves_the_model_and_stores_each_weight_once(tmp_path):
    model = serving_model(mnist.make_model("convnet"))
    write_saved_model(model, tmp_path)

    loaded = tf.saved_model.load(str(tmp_path))
    serve = loaded.signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "pixels": (tf.uint8, [None, 28, 28, 1])
    }
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_allclose(
        serve(pixels=tf.constant(pixels))["output_0"].numpy(),
        model.predict(pixels, verbose=0),
        rtol=1e-6,
    )
    # .variables lists the weights in the model's order (load_exported_weights relies on it)...
    assert [v.shape for v in loaded.variables] == [v.shape for v in model.variables]
    # ...and the checkpoint holds them once (model.export writes two copies).
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.variables)
    stored = sum(f.stat().st_size for f in (tmp_path / "variables").iterdir())
    assert weight_bytes <= stored < 1.2 * weight_bytes


def test_add_plot_records_an_extra_plot_in_the_metadata(tmp_path):
    write_metadata(tmp_path, {"name": "m", "plots": {"history": "history.png"}, "label": "Σ"})
    add_plot(tmp_path, "forecasts", tmp_path / "forecasts.png")
    metadata = json.loads((tmp_path / "metadata.json").read_text(encoding="utf-8"))
    assert metadata == {
        "name": "m",
        "plots": {"history": "history.png", "forecasts": "forecasts.png"},
        "label": "Σ",
    }
