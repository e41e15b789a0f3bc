"""Model reports: the exported evaluation as JSON and its plots, with safe file serving."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.paths import make_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


@pytest.fixture(scope="module")
def report_client(tiny_models_dir, tmp_path_factory):
    """tiny_text/1 with a binary classifier's metrics, a ROC curve, two real plots and three
    plot entries that try to leave the folder."""
    root = tmp_path_factory.mktemp("reported")
    version = root / "tiny_text" / "1"
    shutil.copytree(tiny_models_dir / "tiny_text" / "1", version)
    (root / "secret.png").write_bytes(PNG)
    (version / "history.png").write_bytes(PNG)
    (version / "roc.png").write_bytes(PNG)
    metadata = json.loads((version / "metadata.json").read_text())
    metadata.update(
        labels=["neg", "pos"],
        splits={"train": 80, "validation": 10, "test": 10},
        data={"source": "hand-made"},
        metrics={
            "accuracy": 0.9,
            "balanced_accuracy": 0.875,
            "macro_f1": 0.88,
            "per_class": {"neg": {"precision": 1.0, "recall": 0.75, "f1": 0.86, "support": 4}},
            "confusion_matrix": [[3, 1], [0, 6]],
            "n": 10,
            "roc_auc": 0.95,
            "roc_curve": {"fpr": [0, 0.25, 1], "tpr": [0, 0.9, 1], "thresholds": [1, 0.5, 0]},
        },
        plots={
            "history": "history.png",
            "roc": "roc.png",
            "escape": "../../secret.png",
            "absolute": str(root / "secret.png"),
            "missing": "confusion_matrix.png",
        },
    )
    (version / "metadata.json").write_text(json.dumps(metadata))
    app = create_app(make_settings(models_dir=root, log_level="warning"))
    with TestClient(app) as client:
        yield client


def test_report_has_the_evaluation(report_client):
    report = report_client.get("/v1/models/tiny_text/report").json()
    assert report["version"] == 1 and report["task"] == "text_classification"
    assert report["metrics"] == {
        "accuracy": 0.9,
        "balanced_accuracy": 0.875,
        "macro_f1": 0.88,
        "roc_auc": 0.95,
    }
    assert report["confusion_matrix"]["labels"] == ["neg", "pos"]
    assert report["confusion_matrix"]["rows_true_columns_predicted"] == [[3, 1], [0, 6]]
    assert report["roc"]["tpr"] == [0, 0.9, 1]
    assert report["measured_on"]["splits"]["test"] == 10
    # Only the plots that are plain names in the version folder and exist.
    assert set(report["plots"]) == {"history", "roc"}
    assert report == report_client.get("/v1/models/tiny_text/versions/1/report").json()


def test_plots_are_served_and_nothing_else(report_client):
    reply = report_client.get("/v1/models/tiny_text/report/roc.png")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.content == PNG
    assert (
        report_client.get("/v1/models/tiny_text/versions/1/report/history.png").status_code == 200
    )
    for plot in ("escape.png", "absolute.png", "missing.png", "metadata.json", "..%2Fsecret.png"):
        reply = report_client.get(f"/v1/models/tiny_text/report/{plot}")
        assert reply.status_code == 404, plot
    assert report_client.get("/v1/models/nope/report").status_code == 404


def test_the_served_mnist_reports_its_test_split(mnist_client):
    report = mnist_client.get("/v1/models/mnist/report").json()
    assert report["measured_on"]["splits"]["test"] == 10_000
    assert report["metrics"]["accuracy"] >= 0.993
    assert len(report["confusion_matrix"]["rows_true_columns_predicted"]) == 10
    assert mnist_client.get(report["plots"]["confusion_matrix"]).status_code == 200


def test_every_committed_version_reports_in_the_documented_shape():
    """Each committed metadata.json, through the report builder, fits ModelReport (the schema
    /openapi.json shows): binary models with ROC points, forecasting with other metrics."""
    from types import SimpleNamespace

    from app.api.reports import _report
    from app.api.status_replies import ModelReport
    from tests.paths import REPO_ROOT

    versions = sorted((REPO_ROOT / "models").glob("*/*/metadata.json"))
    assert len(versions) >= 10
    for path in versions:
        metadata = json.loads(path.read_text())
        model = SimpleNamespace(
            name=path.parent.parent.name,
            version=int(path.parent.name),
            task=metadata.get("task"),
            metadata=metadata,
            path=path.parent,
        )
        report = json.loads(json.dumps(_report(model, "/v1/models/x/versions/1")))
        ModelReport.model_validate(report, strict=False)
        assert report["plots"], path  # every export drew its plots


def test_the_report_shows_the_spread_the_export_recorded():
    """churn and movie_profit carry a cross-validated ROC-AUC, sales 3 its backtest; the report
    gives each as ``spread``, and a version with neither has none."""
    from types import SimpleNamespace

    from app.api.reports import _report
    from tests.paths import REPO_ROOT

    def report(name: str, version: int) -> dict:
        path = REPO_ROOT / "models" / name / str(version)
        metadata = json.loads((path / "metadata.json").read_text())
        model = SimpleNamespace(name=name, version=version, task=None, metadata=metadata, path=path)
        return _report(model, "/v1/models/x")

    folds = json.loads((REPO_ROOT / "models/movie_profit/3/metadata.json").read_text())
    spread = report("movie_profit", 3)["spread"]
    assert spread["metric"] == "roc_auc"
    assert spread["values"] == folds["cross_validation"]["roc_auc"]
    assert spread["value"] == pytest.approx(sum(spread["values"]) / 5)
    assert "5-fold" in spread["method"]

    sales = report("sales", 3)["spread"]
    assert sales["metric"] == "mase_vs_seasonal_naive" and len(sales["values"]) == 3
    assert min(sales["values"]) < sales["value"] < max(sales["values"])
    assert "3 earlier origins" in sales["method"]

    assert "spread" not in report("sales", 2)  # exported before the backtest
    assert "spread" not in report("mnist", 3)


def test_the_report_gives_the_test_splits_sampling_intervals():
    """Wilson's interval for accuracy and Hanley-McNeil's for a binary ROC-AUC, from the split's
    size: a 10,000-digit split pins mnist's accuracy to about +-0.15 points; churn's 1,200
    customers leave its ROC-AUC about +-3 points."""
    from types import SimpleNamespace

    from app.api.reports import _intervals, _report
    from tests.paths import REPO_ROOT

    # Known values: Wilson's interval for 90 of 100; at AUC 0.5 Hanley-McNeil's variance is the
    # Mann-Whitney statistic's exact null variance, (n1 + n2 + 1) / (12 n1 n2).
    wilson = _intervals({"accuracy": 0.9}, None, 100)["accuracy"]
    assert wilson == pytest.approx([0.8256, 0.9448], abs=1e-4)
    per_class = {"neg": {"support": 50}, "pos": {"support": 50}}
    auc = _intervals({"roc_auc": 0.5}, per_class, 100)["roc_auc"]
    half = 1.959964 * (101 / (12 * 50 * 50)) ** 0.5
    assert auc == pytest.approx([0.5 - half, 0.5 + half], abs=1e-9)
    skewed = _intervals({"roc_auc": 0.9}, {"neg": {"support": 90}, "pos": {"support": 10}}, 100)
    assert skewed["roc_auc"][1] - skewed["roc_auc"][0] > 0.1  # few positives: a wide interval
    assert _intervals({"roc_auc": 0.9}, {"a": {"support": 5}}, 5) == {}  # not binary

    def report(name: str, version: int) -> dict:
        path = REPO_ROOT / "models" / name / str(version)
        metadata = json.loads((path / "metadata.json").read_text())
        model = SimpleNamespace(name=name, version=version, task=None, metadata=metadata, path=path)
        return _report(model, "/v1/models/x")

    mnist = report("mnist", 3)
    low, high = mnist["intervals"]["accuracy"]
    assert low < mnist["metrics"]["accuracy"] < high and high - low < 0.004
    churn = report("churn", 2)
    low, high = churn["intervals"]["roc_auc"]
    assert low < churn["metrics"]["roc_auc"] < high and 0.05 < high - low < 0.07
    assert "intervals" not in report("sales", 3)  # a forecaster: no accuracy, no ROC-AUC
