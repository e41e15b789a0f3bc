"""Telco customer churn with a regularized MLP on named raw columns (course 000, exercise 6).

The course's network is Dense 64 relu -> BatchNorm -> Dropout 0.3 -> Dense 32 relu -> Dropout 0.3
-> Dense 1 sigmoid with EarlyStopping(val_loss, patience 3), on 20 simulated features; it reports
no figure. Here it runs on the IBM Telco CSV: the served graph takes one raw input per CSV column
(strings for categories, float32 for numbers), one-hot encodes categories with StringLookup and
standardizes numbers with Normalization (log1p first for the skewed tenure and TotalCharges);
billing features are computed in the graph too (average monthly charge so far, the current charge
against it, tenure buckets via Discretization): +0.008 ROC-AUC in 5-fold CV. Churners are ~27 %:
balanced class weights make the model pay for missed churners, and early stopping watches
validation ROC-AUC (the goal metric).

The test split (seed 42) scores 0.822 ROC-AUC, below the 0.845 goal, and a plain logistic
regression scores the same on it. ``split_difficulty`` records why in the metadata: that
reference model averages 0.847 over 50 random splits of the same size, and only 4 % of them score
lower than this one. The split is not redrawn (that would be choosing on test).

Data: ``<data-dir>/telco-churn/WA_Fn-UseC_-Telco-Customer-Churn.csv``, the Kaggle CSV with 21
columns ``customerID, gender, SeniorCitizen, ..., MonthlyCharges, TotalCharges, Churn``.
``TotalCharges`` is blank for customers with tenure 0: they have not been billed yet, so it is
read as 0.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from training.common.data import (
    limit_rows,
    require_path,
    set_seed,
    stratified_split,
    validation_split,
)
from training.common.evaluate import (
    cross_validated_roc_auc,
    predict_probabilities,
    score_test_split,
)
from training.common.export import export_model, split_sizes
from training.common.tabular import (
    categorical_column,
    encode_columns,
    fill_defaults,
    make_inputs,
    numeric_column,
    to_dataset,
    to_inputs,
)
from training.config import TrainConfig
from training.explain import feature_activations, feature_explain_metadata

NAME = "churn"
LABELS = ["stay", "churn"]
LAYOUT = """
<data-dir>/telco-churn/WA_Fn-UseC_-Telco-Customer-Churn.csv
    the Kaggle CSV: customerID, gender, SeniorCitizen, Partner, Dependents, tenure, PhoneService,
    MultipleLines, InternetService, OnlineSecurity, OnlineBackup, DeviceProtection, TechSupport,
    StreamingTV, StreamingMovies, Contract, PaperlessBilling, PaymentMethod, MonthlyCharges,
    TotalCharges, Churn (Yes/No)
"""
DATA_NOTE = {
    "source": "IBM Telco Customer Churn sample data "
    "(Kaggle 'WA_Fn-UseC_-Telco-Customer-Churn.csv'), "
    "6,000 customers",
    "license": "IBM sample data (Apache-2.0 repository)",
    "stand_in": False,
}
NUMERIC = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"]
LOG_SCALED = {"tenure", "TotalCharges"}  # skewed: log1p before standardizing
TENURE_BUCKETS = [1, 4, 7, 13, 25, 37, 49, 61]  # months: new, first quarter, ..., 5+ years
NOT_INPUTS = ["customerID", "Churn"]

# How the features were chosen: on validation and CV (training data only); test looks after.
SELECTION = {
    "chosen": "log1p tenure / TotalCharges + billing features, course network",
    "validation_roc_auc": {
        "course network, raw columns (model before)": 0.8461,
        "chosen": 0.8470,
        "ensemble of 5 Dense32/16/64 nets (L2, dropout)": [0.8375, 0.8402, 0.8396],
        "logistic (Dense 1) on the same features": 0.8368,
        "wide & deep": 0.8366,
        "chosen, but tenure-0 average charge = monthly charge": 0.8441,
    },
    "cv_roc_auc_5_fold": {
        "course network, raw columns (model before)": "0.846 +- 0.011",
        "chosen": "0.854 +- 0.010",
        "chosen, but tenure-0 average charge = monthly charge": "0.853 +- 0.010",
    },
    "test_looks": "two: the chosen model 0.8216; the tenure-0 variant (tried for robustness "
    "after it) 0.8121; kept the one validation and CV prefer",
}

# Hyper-parameters
EPOCHS = 60
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
DROPOUT = 0.3
PATIENCE = 8
TEST_FRACTION = 0.2
CV_FOLDS = 5
VALIDATION_FRACTION = 0.15
SPLIT_DRAWS = 50  # random test splits the reference model is scored on (split_difficulty)


# ---- Data -------------------------------------------------------------------------------------
def load_data(data_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The CSV's input columns (raw) and the labels (1 = churn)."""
    path = require_path(data_dir / "telco-churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv", LAYOUT)
    frame = pd.read_csv(path, dtype={"TotalCharges": str})
    blank = frame["TotalCharges"].str.strip() == ""
    # Blank only for tenure 0: nothing billed yet.
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"].mask(blank, "0"), errors="coerce")
    labels = (frame["Churn"].str.strip() == "Yes").astype("int64").to_numpy()
    return frame.drop(columns=NOT_INPUTS), labels


def describe_columns(train: pd.DataFrame) -> dict[str, dict]:
    """``metadata.json["columns"]`` from the training split: CSV order, every CSV value."""
    return {
        name: numeric_column(train[name], log_scale=name in LOG_SCALED)
        if name in NUMERIC
        else categorical_column(train[name])
        for name in train.columns
    }


# ---- Model ------------------------------------------------------------------------------------
def billing_features(inputs: dict, columns: dict[str, dict], train: pd.DataFrame) -> list:
    """Engineered in the graph from the raw columns: average monthly bill so far
    (TotalCharges / tenure), current bill against it (price changes), and tenure buckets."""

    def ratios(tenure, monthly, total):
        # Not billed yet (tenure 0): average 0, so the ratio is the monthly charge itself, far
        # above any billed customer's. No such customer churned in the data (none could yet) and
        # the model scores them as staying. Taking the monthly charge as their average instead
        # scored lower on validation (ROC-AUC 0.844 vs 0.847) and in CV (0.853 vs 0.854).
        average = total / keras.ops.maximum(tenure, 1.0)
        return average, monthly / (average + 1.0)

    names = ["tenure", "MonthlyCharges", "TotalCharges"]
    raw = [
        keras.ops.where(keras.ops.isnan(inputs[n]), columns[n]["default"], inputs[n]) for n in names
    ]
    seen = [np.asarray(v) for v in ratios(*(train[n].to_numpy(np.float64) for n in names))]
    features = [
        keras.layers.Normalization(
            mean=[v.mean()], variance=[max(v.var(), 1e-6)], name=f"{name}_norm"
        )(keras.ops.expand_dims(x, -1))
        for x, v, name in zip(ratios(*raw), seen, ["average_charge", "charge_ratio"], strict=True)
    ]
    features.append(
        keras.layers.Discretization(
            bin_boundaries=TENURE_BUCKETS, output_mode="one_hot", name="tenure_bucket"
        )(raw[0])
    )
    return features


def make_model(columns: dict[str, dict], train: pd.DataFrame) -> keras.Model:
    """Named raw columns in, P(churn) (None, 1) out; the course's ex.6 network on the encoded
    columns plus the billing features."""
    inputs = make_inputs(columns)
    x = keras.layers.Concatenate(name="all_features")(
        [encode_columns(inputs, columns, train), *billing_features(inputs, columns, train)]
    )
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(DROPOUT)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dropout(DROPOUT)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="churn_probability")(x)
    model = keras.Model(inputs, outputs, name="churn_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def logistic_regression_auc(x_tr, y_tr, x_test, y_test) -> float | None:
    """Test ROC-AUC of a plain logistic regression on the same splits (how hard the split is)."""
    if len(np.unique(y_tr)) < 2 or len(np.unique(y_test)) < 2:
        return None
    encoder = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), [c for c in x_tr.columns if c not in NUMERIC]),
        (StandardScaler(), NUMERIC),
    )
    reference = make_pipeline(encoder, LogisticRegression(max_iter=2000, class_weight="balanced"))
    reference.fit(x_tr, y_tr)
    return float(roc_auc_score(y_test, reference.predict_proba(x_test)[:, 1]))


def split_difficulty(frame: pd.DataFrame, labels: np.ndarray, seed: int) -> dict:
    """How hard the test split of ``seed`` is: the reference logistic regression's test ROC-AUC
    on ``SPLIT_DRAWS`` random stratified splits of the same size (seeds 0, 1, ...) against its
    score on this one. Context for the test figure: every draw is only scored, none is chosen."""

    def reference(split_seed: int) -> float | None:
        x_a, x_b, y_a, y_b = stratified_split(
            frame, labels, test_size=TEST_FRACTION, seed=split_seed, stratify=labels
        )
        return logistic_regression_auc(x_a, y_a, x_b, y_b)

    draws = np.array([reference(s) for s in range(SPLIT_DRAWS)])
    this = draws[seed] if seed < SPLIT_DRAWS else reference(seed)  # seed 42 is one of the draws
    return {
        "splits": SPLIT_DRAWS,
        "roc_auc_mean": float(draws.mean()),
        "roc_auc_std": float(draws.std()),
        "roc_auc_min": float(draws.min()),
        "roc_auc_max": float(draws.max()),
        "this_split": this,
        "share_of_splits_scoring_lower": float((draws < this).mean()),
    }


# ---- Train, evaluate, export ------------------------------------------------------------------
def fit_model(x_tr: pd.DataFrame, y_tr, x_val: pd.DataFrame, y_val, cfg: TrainConfig):
    """Describe the columns on ``x_tr``, fit the network with class weights and early stopping on
    ``(x_val, y_val)``; return the model, its columns, its history and the class weights."""
    set_seed(cfg.seed)
    columns = describe_columns(x_tr)
    x_tr, x_val = fill_defaults(x_tr, columns), fill_defaults(x_val, columns)
    weights = (
        compute_class_weight("balanced", classes=np.array([0, 1]), y=y_tr)
        if len(np.unique(y_tr)) == 2
        else np.ones(2)
    )
    model = make_model(columns, x_tr)
    model.run_eagerly = cfg.limit is not None  # smoke: tracing costs more than steps
    history = model.fit(
        to_dataset(to_inputs(x_tr, columns), y_tr, batch_size=BATCH_SIZE, shuffle_seed=cfg.seed),
        shuffle=False,  # the dataset shuffles itself (Keras ignores shuffle for a Dataset)
        validation_data=to_dataset(to_inputs(x_val, columns), y_val, batch_size=256),
        epochs=cfg.epochs_or(EPOCHS),
        class_weight={0: float(weights[0]), 1: float(weights[1])},
        verbose=2 if cfg.limit is None else 0,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_auc", mode="max", patience=PATIENCE, restore_best_weights=True
            )
        ],
    )
    return model, columns, history.history, weights


def cross_validated_auc(x_train: pd.DataFrame, y_train, cfg: TrainConfig) -> dict:
    """ROC-AUC of the same procedure over CV_FOLDS stratified folds of the training data (the test
    split is not touched): how much one 1,200-customer test split can move the figure."""

    def fit_and_score(x_tr, y_tr, x_val, y_val, x_held):
        model, columns, _, _ = fit_model(x_tr, y_tr, x_val, y_val, cfg)
        held = to_dataset(to_inputs(fill_defaults(x_held, columns), columns), batch_size=256)
        return predict_probabilities(model, held)[:, 0]

    return cross_validated_roc_auc(
        x_train,
        y_train,
        fit_and_score,
        folds=CV_FOLDS,
        validation_fraction=VALIDATION_FRACTION,
        seed=cfg.seed,
        label=NAME,
    )


def train(cfg: TrainConfig) -> Path:
    set_seed(cfg.seed)
    frame, labels = load_data(cfg.data_dir)
    x_train, x_test, y_train, y_test = stratified_split(
        frame, labels, test_size=TEST_FRACTION, seed=cfg.seed, stratify=labels
    )
    x_train, y_train = limit_rows(cfg.limit, x_train, y_train, strata=y_train, seed=cfg.seed)
    (x_tr, y_tr), (x_val, y_val) = validation_split(
        x_train, y_train, validation_size=VALIDATION_FRACTION, seed=cfg.seed, limit=cfg.limit
    )
    model, columns, history, weights = fit_model(x_tr, y_tr, x_val, y_val, cfg)
    x_tr, x_val, x_test = (fill_defaults(x, columns) for x in (x_tr, x_val, x_test))

    test_ds = to_dataset(to_inputs(x_test, columns), batch_size=256)
    metrics = score_test_split(NAME, model, test_ds, y_test, LABELS)
    activations, explained_layers = feature_activations(model)
    return export_model(
        model,
        name=NAME,
        cfg=cfg,
        history=history,
        task="tabular_classification",
        labels=LABELS,
        data={**DATA_NOTE, "note": "TotalCharges blank (tenure 0) read as 0"},
        splits=split_sizes(train=x_tr, validation=x_val, test=x_test),
        metrics=metrics,
        extra_endpoints={"activations": activations},
        metadata={
            "explain": feature_explain_metadata(explained_layers),
            "columns": columns,
            "architecture": "MLP on one-hot / standardized raw columns (log1p tenure and "
            "TotalCharges) plus in-graph billing features (average monthly charge, current / "
            "average charge, tenure buckets): Dense64-BatchNorm-Dropout0.3-Dense32-Dropout0.3-"
            "sigmoid (course 000 ex.6), balanced class weights, EarlyStopping on validation "
            "ROC-AUC",
            "selection": SELECTION,
            "class_weight": {LABELS[0]: float(weights[0]), LABELS[1]: float(weights[1])},
            "decision_threshold": 0.5,
            "cross_validation": cross_validated_auc(x_train, y_train, cfg)
            if cfg.limit is None
            else None,
            "reference": {
                "logistic_regression_test_roc_auc": logistic_regression_auc(
                    x_tr, y_tr, x_test, y_test
                ),
                "note": "same splits and columns; for context",
                "logistic_regression_over_random_splits": split_difficulty(frame, labels, cfg.seed)
                if cfg.limit is None
                else None,
            },
            "course_baseline": {
                "roc_auc": None,
                "accuracy": None,
                "note": "course 000 ex.6 trains on simulated data and reports no figure",
            },
        },
    )
