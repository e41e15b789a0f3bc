"""Knowledge distillation: softening, the Distiller's training, and mnist's serving choice."""

from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf

from training import mnist
from training.common.distill import Distiller, soften
from training.config import TrainConfig


def test_soften_equals_dividing_the_logits_by_the_temperature():
    logits = np.random.default_rng(0).normal(size=(5, 10)).astype("float32") * 4
    probabilities = keras.ops.softmax(logits, axis=-1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(soften(probabilities, 3.0)),
        keras.ops.convert_to_numpy(keras.ops.softmax(logits / 3.0, axis=-1)),
        atol=1e-5,
    )


def _dense(name: str, seed: int) -> keras.Model:
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(
        16, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(hidden)
    return keras.Model(inputs, outputs, name=name)


def test_the_student_learns_the_teachers_answers_and_the_teacher_stays_frozen():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(512, 4)).astype("float32")
    teacher = _dense("teacher", 1)
    # labels the teacher disagrees with: alpha=0 must still follow the teacher, not them
    y = np.zeros(len(x), dtype="int64")
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student = _dense("student", 2)

    def disagreement() -> float:
        t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
        return float(np.mean(np.abs(t - s)))

    before = disagreement()
    distiller = Distiller(student, teacher, alpha=0.0, temperature=2.0)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    distiller.fit(x, y, epochs=30, batch_size=64, verbose=0)

    assert disagreement() < before / 3
    for kept, now in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)


def test_the_distilled_variant_exports_the_student(data_dir, tmp_path):
    cfg = TrainConfig(
        data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=256, version=1, variant="distilled"
    )
    path = mnist.train(cfg)
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["variant"] == "distilled"
    assert metadata["architecture"].startswith("Conv32") and "distilled" in metadata["architecture"]
    assert {"accuracy", "teachers_accuracy"} <= set(metadata["validation"])
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    assert served(pixels=tf.zeros((2, 28, 28, 1), tf.uint8))["output_0"].shape == (2, 10)
