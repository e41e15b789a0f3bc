"""Smoke test: churn trains on a tiny slice, exports, and the SavedModel takes named raw columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from training import churn
from training.config import TrainConfig


def test_churn_smoke(data_dir, tmp_path):
    cfg = TrainConfig(data_dir=data_dir, out_dir=tmp_path, epochs=1, limit=300, version=1)
    path = churn.train(cfg)

    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["task"] == "tabular_classification"
    assert metadata["labels"] == ["stay", "churn"]
    columns = metadata["columns"]
    assert "customerID" not in columns and "Churn" not in columns
    assert len(columns) == 19
    assert columns["Contract"]["values"] == ["Month-to-month", "One year", "Two year"]
    assert columns["tenure"]["type"] == "numeric"
    assert {spec["name"] for spec in metadata["inputs"]} == set(columns)

    raw = pd.read_csv(
        data_dir / "telco-churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv", dtype=str, nrows=3
    )
    raw.loc[0, "TotalCharges"] = " "  # as for tenure 0: the server fills the column default
    inputs = {}
    for name, spec in columns.items():
        if spec["type"] == "numeric":
            values = pd.to_numeric(raw[name], errors="coerce").fillna(spec["default"])
            inputs[name] = tf.constant(values.to_numpy("float32"))
        else:
            inputs[name] = tf.constant(raw[name].tolist())
    inputs["gender"] = tf.constant(["Female", "Male", "not-a-gender"])  # out of vocabulary

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    probabilities = serve(**inputs)["output_0"].numpy()
    assert probabilities.shape == (3, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))


COMMITTED_MODEL = Path(__file__).resolve().parents[2] / "models" / "churn" / "1"


@pytest.mark.skipif(not COMMITTED_MODEL.is_dir(), reason="models/churn/1 not present")
def test_committed_model_handles_new_customers_and_ranks_risk():
    columns = json.loads((COMMITTED_MODEL / "metadata.json").read_text())["columns"]
    rows = [  # not billed yet (tenure 0; its TotalCharges NaN, the graph fills the default),
        # a two-month month-to-month fiber customer, and a loyal two-year customer
        {"tenure": 0.0, "TotalCharges": float("nan"), "Contract": "Month-to-month"},
        {
            "tenure": 2.0,
            "TotalCharges": 180.0,
            "MonthlyCharges": 90.0,
            "Contract": "Month-to-month",
            "InternetService": "Fiber optic",
            "PaymentMethod": "Electronic check",
        },
        {
            "tenure": 70.0,
            "TotalCharges": 1500.0,
            "MonthlyCharges": 20.0,
            "Contract": "Two year",
            "InternetService": "No",
            "PaymentMethod": "Bank transfer (automatic)",
        },
    ]
    inputs = {
        name: tf.constant(
            [row.get(name, spec["default"]) for row in rows],
            dtype=tf.float32 if spec["type"] == "numeric" else tf.string,
        )
        for name, spec in columns.items()
    }
    serve = tf.saved_model.load(str(COMMITTED_MODEL)).signatures["serving_default"]
    p = serve(**inputs)["output_0"].numpy()[:, 0]
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1)), p
    assert p[1] > 0.5 > p[2], p


def test_split_difficulty_scores_the_reference_on_random_splits(monkeypatch):
    monkeypatch.setattr(churn, "SPLIT_DRAWS", 6)
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "SeniorCitizen": rng.integers(0, 2, n).astype(float),
            "tenure": rng.uniform(0, 72, n),
            "MonthlyCharges": rng.uniform(20, 120, n),
            "TotalCharges": rng.uniform(0, 8000, n),
            "Contract": rng.choice(["Month-to-month", "One year", "Two year"], n),
        }
    )
    churned = (frame["tenure"] + rng.normal(0, 15, n) < 20).astype(int).to_numpy()

    found = churn.split_difficulty(frame, churned, seed=2)
    assert found["splits"] == 6
    assert 0.75 < found["roc_auc_mean"] <= 1.0  # the label follows tenure: easy to rank
    assert found["roc_auc_min"] <= found["this_split"] <= found["roc_auc_max"]  # seed 2 is drawn
    assert found["share_of_splits_scoring_lower"] in {k / 6 for k in range(6)}
