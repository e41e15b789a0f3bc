"""A classifier's outputs as classes: probabilities, names, ranking."""

from __future__ import annotations

import numpy as np

from app.classification import as_class_probabilities, class_names, decide, rank_classes


def test_sigmoid_outputs_become_two_class_probabilities():
    np.testing.assert_allclose(as_class_probabilities(np.array([[0.25]])), [[0.75, 0.25]])
    softmax = np.array([[0.1, 0.2, 0.7]], dtype=np.float32)
    np.testing.assert_array_equal(as_class_probabilities(softmax), softmax)


def test_unnamed_classes_are_their_index():
    assert class_names(["cat", "dog"], 3) == ["cat", "dog", "2"]
    assert class_names(None, 2) == ["0", "1"]


def test_ranking_is_best_first_and_keeps_the_lower_index_on_ties():
    probs = np.array([[0.2, 0.4, 0.4], [0.7, 0.2, 0.1]])
    np.testing.assert_array_equal(rank_classes(probs, 2), [[1, 2], [0, 1]])
    assert rank_classes(probs, 10).shape == (2, 3)


def test_binary_decisions_follow_the_models_threshold():
    probs = np.array([[0.7, 0.3], [0.45, 0.55], [0.1, 0.9]])
    np.testing.assert_array_equal(decide(probs), [0, 1, 1])  # 0.5 by default
    np.testing.assert_array_equal(decide(probs, 0.25), [1, 1, 1])
    np.testing.assert_array_equal(decide(probs, 0.6), [0, 0, 1])
    three = np.array([[0.2, 0.5, 0.3]])
    np.testing.assert_array_equal(decide(three, 0.1), [1])  # only binary models use one
