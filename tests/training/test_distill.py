"""Knowledge distillation: softening, the Distiller's training, and mnist's serving choice."""

from __future__ import annotations

import keras
import numpy as np

from training import mnist
from training.common.distill import Distiller, soften


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


class _Answers:
    """A stand-in model answering fixed class probabilities."""

    def __init__(self, predicted: np.ndarray) -> None:
        self.probabilities = np.eye(10, dtype="float32")[predicted]

    def predict(self, x, verbose=0):
        return self.probabilities


def test_the_student_is_served_unless_it_misses_more_validation_digits_than_allowed():
    y_val = np.arange(700) % 10
    ensemble_answers = y_val.copy()
    ensemble_answers[:3] = (y_val[:3] + 1) % 10  # the ensemble misses 3

    def student_missing(n: int) -> _Answers:
        answers = y_val.copy()
        answers[: 3 + n] = (y_val[: 3 + n] + 1) % 10
        return _Answers(answers)

    allowed = mnist.MAX_EXTRA_VALIDATION_ERRORS
    for extra, expected in [(0, "student"), (allowed, "student"), (allowed + 1, "ensemble")]:
        served, scores = mnist.choose_served_model(
            {"student": student_missing(extra), "ensemble": _Answers(ensemble_answers)},
            None,
            y_val,
        )
        assert served == expected, (extra, scores)
        assert scores["ensemble"] == 697 / 700
