"""Unit tests for training/common/evaluate.py on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.common.evaluate import (
    accuracy,
    classification_metrics,
    cross_validated_roc_auc,
    to_class_probabilities,
)


def test_sigmoid_column_becomes_two_class_probabilities():
    p = to_class_probabilities(np.array([[0.2], [0.9]]))
    np.testing.assert_allclose(p, [[0.8, 0.2], [0.1, 0.9]])


def test_binary_sigmoid_metrics():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    p_positive = np.array([[0.1], [0.4], [0.7], [0.8], [0.3], [0.9]])  # one FP, one FN
    m = classification_metrics(y_true, p_positive, ["ham", "spam"])

    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["per_class"]["spam"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["spam"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["ham"]["support"] == 3
    # 9 positive/negative pairs; ranked correctly: 0.8 and 0.9 beat all 3 negatives (6),
    # 0.3 beats only 0.1 (1) -> AUC 7/9.
    assert m["roc_auc"] == pytest.approx(7 / 9)
    assert m["n"] == 6


def test_binary_with_one_class_present_has_no_roc_auc():
    m = classification_metrics(np.array([1, 1]), np.array([[0.9], [0.2]]), ["ham", "spam"])
    assert "roc_auc" not in m
    assert m["accuracy"] == pytest.approx(0.5)


def test_two_column_softmax_matches_sigmoid():
    y_true = np.array([0, 1, 1, 0])
    p1 = np.array([0.3, 0.6, 0.8, 0.55])
    sigmoid = classification_metrics(y_true, p1[:, None], ["a", "b"])
    softmax = classification_metrics(y_true, np.stack([1 - p1, p1], axis=1), ["a", "b"])
    assert sigmoid["roc_auc"] == pytest.approx(softmax["roc_auc"]) == pytest.approx(1.0)
    assert sigmoid["confusion_matrix"] == softmax["confusion_matrix"] == [[1, 1], [0, 2]]


def test_multiclass_metrics():
    y_true = np.array([0, 1, 2, 2])
    probabilities = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.2, 0.7],
            [0.5, 0.3, 0.2],  # class 2 predicted as 0
        ]
    )
    m = classification_metrics(y_true, probabilities, ["x", "y", "z"])

    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["per_class"]["x"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["z"]["recall"] == pytest.approx(0.5)
    assert "roc_auc" not in m
    assert 0.0 <= m["roc_auc_ovr_macro"] <= 1.0


def test_absent_class_gets_zero_scores_not_an_error():
    probabilities = np.array([[0.9, 0.1, 0.0]] * 3)
    m = classification_metrics(np.array([0, 0, 1]), probabilities, ["x", "y", "z"])
    assert m["per_class"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert "roc_auc_ovr_macro" not in m


def test_accuracy_counts_the_most_probable_class():
    class Fixed:
        def predict(self, inputs, batch_size=None, verbose=0):
            return np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])

    assert accuracy(Fixed(), np.zeros((4, 1)), np.array([0, 1, 1, 1])) == 0.75


def test_binary_metrics_record_a_bounded_roc_curve():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    score = np.clip(y * 0.3 + rng.random(5000) * 0.7, 0, 1)
    m = classification_metrics(y, score[:, None], ["no", "yes"])
    curve = m["roc_curve"]
    assert 2 < len(curve["fpr"]) <= 101 and len(curve["fpr"]) == len(curve["tpr"])
    assert (curve["fpr"][0], curve["tpr"][0]) == (0.0, 0.0)
    assert (curve["fpr"][-1], curve["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(curve["fpr"]) >= 0) and np.all(np.diff(curve["tpr"]) >= 0)
    # The area under the recorded points stays close to the exact ROC-AUC.
    assert np.trapezoid(curve["tpr"], curve["fpr"]) == pytest.approx(m["roc_auc"], abs=0.01)


def test_cross_validation_holds_out_every_row_once_and_never_trains_on_it():
    x = pd.DataFrame({"row": np.arange(100)})
    y = np.array([0, 1] * 50)
    held_rows = []

    def fit_and_score(x_tr, y_tr, x_val, y_val, x_held):
        seen = set(x_tr["row"]) | set(x_val["row"])
        assert not seen & set(x_held["row"])  # the held-out fold is never trained on
        assert len(seen) + len(x_held) == 100
        held_rows.extend(x_held["row"])
        return y[x_held["row"].to_numpy()].astype(float)  # a perfect scorer

    result = cross_validated_roc_auc(
        x, y, fit_and_score, folds=5, validation_fraction=0.2, seed=0, label="rows"
    )
    assert sorted(held_rows) == list(range(100))
    assert result["roc_auc"] == [1.0] * 5 and result["roc_auc_mean"] == 1.0
    assert result["folds"] == 5 and result["roc_auc_std"] == 0.0
