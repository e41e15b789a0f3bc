"""The churn ceiling study: same features as the served graph, same folds as churn's CV, and every
family scored on held-out folds only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from training import churn, churn_ceiling
from training.common.data import stratified_split


def training_rows(data_dir, rows: int):
    frame, labels = churn.load_data(data_dir)
    x_train, _, y_train, _ = stratified_split(
        frame, labels, test_size=churn.TEST_FRACTION, seed=42, stratify=labels
    )
    return x_train.iloc[:rows], y_train[:rows]


def test_billing_features_follow_the_graph():
    frame = pd.DataFrame(
        {"tenure": [0.0, 10.0], "MonthlyCharges": [70.0, 50.0], "TotalCharges": [0.0, 400.0]}
    )
    out = churn_ceiling.with_billing_features(frame)
    # Not billed yet: average 0, so the ratio is the monthly charge (as in churn.billing_features).
    assert out["average_charge"].tolist() == [0.0, 40.0]
    assert out["charge_ratio"].tolist() == [70.0, 50.0 / 41.0]
    assert out["tenure_bucket"].tolist() == ["0", "3"]  # below 1 month; 7 <= 10 < 13
    assert np.allclose(out["log_tenure"], np.log1p(frame["tenure"]))


def test_repeat_zero_is_the_networks_fold_split():
    labels = np.array([0, 1] * 50)
    ours = list(churn_ceiling.fold_splits(labels, seed=42, folds=5, repeats=2))
    theirs = StratifiedKFold(5, shuffle=True, random_state=42).split(np.zeros(100), labels)
    assert len(ours) == 10
    for (fit_a, held_a), (fit_b, held_b) in zip(ours[:5], theirs, strict=True):
        assert fit_a.tolist() == fit_b.tolist() and held_a.tolist() == held_b.tolist()
    assert ours[5][1].tolist() != ours[0][1].tolist()  # repeat 1 draws other folds


def test_every_family_ranks_held_out_customers(data_dir):
    x_train, y_train = training_rows(data_dir, 900)
    results = churn_ceiling.ceiling(x_train, y_train, folds=3, repeats=1)
    assert len(results) == len(churn_ceiling.model_families([]))
    for name, result in results.items():
        assert len(result["scores"]) == 3, name
        # Real signal on customers each fit never saw, far from chance (0.5) and from perfect.
        assert 0.7 < result["roc_auc_mean"] < 0.95, (name, result)
