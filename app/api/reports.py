"""Model reports: the evaluation a version was exported with (course 000, exercise 9), as JSON
and as the plots its folder holds.

- ``GET /v1/models/{name}[/versions/{v}]/report``: task, the data and split it was measured on,
  the metrics, per-class precision / recall / F1, the confusion matrix, the ROC points of binary
  models (where the export recorded them) and the URLs of its plots.
- ``GET /v1/models/{name}[/versions/{v}]/report/{plot}.png``: one plot that ``metadata.json``
  lists (``history``, ``confusion_matrix``, ``roc``, ...). Only those: the file name comes from
  the metadata, never from the client, and must be a plain name inside the version folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from app.api.deps import RepositoryDep
from app.api.status_replies import NOT_FOUND, PROTOCOL_ERROR_CONTENT, ModelReport
from app.codec import json_response
from app.errors import ModelNotFoundError
from app.servable import ServedModel

router = APIRouter(prefix="/v1/models", tags=["model reports"])

# A plot route answers PNG, its 404 JSON: declared as is (FastAPI would give the 404 the
# route's own media type).
PLOT_NOT_FOUND = {
    "responses": {
        "404": {
            "description": "No such model, version or plot",
            "content": PROTOCOL_ERROR_CONTENT,
        }
    }
}

_SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "roc_auc_ovr_macro")


def _report(model: ServedModel, base_url: str) -> dict[str, Any]:
    metadata = model.metadata
    metrics = dict(metadata.get("metrics") or {})
    labels = metadata.get("labels") or []
    report: dict[str, Any] = {
        "model": model.name,
        "version": model.version,
        "task": model.task,
        "measured_on": {
            "split": "test: held out, never used for training or model selection",
            "splits": metadata.get("splits"),
            "data": metadata.get("data"),
        },
        "metrics": {k: metrics.pop(k) for k in _SUMMARY_METRICS if k in metrics},
        "per_class": metrics.pop("per_class", None),
        "confusion_matrix": (
            {"labels": labels, "rows_true_columns_predicted": metrics.pop("confusion_matrix")}
            if "confusion_matrix" in metrics
            else None
        ),
        "roc": metrics.pop("roc_curve", None),
        "decision_threshold": metadata.get("decision_threshold"),
        "plots": {key: f"{base_url}/report/{key}.png" for key in _plots(model)},
    }
    if report["roc"] is None and len(labels) == 2:
        report["roc_note"] = "this version's export did not record ROC points (see roc_auc)"
    intervals = _intervals(report["metrics"], report["per_class"], metrics.pop("n", None))
    if intervals:
        report["intervals"] = intervals
    if metrics:
        report["other_metrics"] = metrics  # task-specific figures (forecast errors, ...)
    spread = _spread(metadata)
    if spread is not None:
        report["spread"] = spread
    return report


_Z95 = 1.959964  # the normal quantile of a two-sided 95 % interval


def _intervals(
    summary: dict[str, Any], per_class: dict[str, Any] | None, n: int | None
) -> dict[str, list[float]]:
    """95 % intervals of the test split's figures from its size alone (its sampling error, not
    the model's): accuracy by Wilson's score interval; a binary model's ROC-AUC by Hanley and
    McNeil's (1982) standard error, from the two classes' counts."""
    intervals: dict[str, list[float]] = {}
    accuracy = summary.get("accuracy")
    if accuracy is not None and n:
        centre = (accuracy + _Z95**2 / (2 * n)) / (1 + _Z95**2 / n)
        half = (
            _Z95
            / (1 + _Z95**2 / n)
            * math.sqrt(accuracy * (1 - accuracy) / n + _Z95**2 / (4 * n * n))
        )
        intervals["accuracy"] = [centre - half, centre + half]
    auc = summary.get("roc_auc")
    supports = [c.get("support") for c in (per_class or {}).values()]
    if auc is not None and len(supports) == 2 and all(supports):
        negatives, positives = supports
        q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
        variance = (
            auc * (1 - auc)
            + (positives - 1) * (q1 - auc * auc)
            + (negatives - 1) * (q2 - auc * auc)
        ) / (positives * negatives)
        half = _Z95 * math.sqrt(max(variance, 0.0))
        intervals["roc_auc"] = [max(auc - half, 0.0), min(auc + half, 1.0)]
    return intervals


def _spread(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The figure on other held-out data than the test split, where the export recorded one:
    ``cross_validation`` (tabular models) or ``metrics.backtest`` (the forecaster)."""
    folds = metadata.get("cross_validation") or {}
    if folds.get("roc_auc"):
        return {
            "metric": "roc_auc",
            "value": folds["roc_auc_mean"],
            "std": folds["roc_auc_std"],
            "values": folds["roc_auc"],
            "method": f"{folds['folds']}-fold cross-validation of the same procedure on the "
            "training data",
        }
    backtest = (metadata.get("metrics") or {}).get("backtest") or {}
    if backtest.get("per_origin"):
        values = [origin["mase_vs_seasonal_naive"] for origin in backtest["per_origin"]]
        return {
            "metric": "mase_vs_seasonal_naive",
            "value": backtest["mase_vs_seasonal_naive"],
            "std": float(np.std(values)),
            "values": values,
            "method": f"rolling-origin backtest: the model retrained before each of "
            f"{backtest['origins']} earlier origins, a year apart, forecasting the next 12 months",
        }
    return None


class PngResponse(FileResponse):
    """A plot file; documented as ``image/png`` in the OpenAPI schema."""

    media_type = "image/png"


def _report_reply(model: ServedModel, request: Request) -> Response:
    """The report, its plot URLs naming the version that answered."""
    root = request.scope.get("root_path", "")
    return json_response(_report(model, f"{root}/v1/models/{model.name}/versions/{model.version}"))


def _plots(model: ServedModel) -> dict[str, Path]:
    """The plot files ``metadata.json`` lists that are plain PNG names in the version folder."""
    found = {}
    for key, name in (model.metadata.get("plots") or {}).items():
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".png"):
            continue
        path = model.path / name
        if path.is_file():
            found[key] = path
    return found


def _plot(model: ServedModel, plot: str) -> Response:
    path = _plots(model).get(plot.removesuffix(".png")) if plot.endswith(".png") else None
    if path is None:
        raise ModelNotFoundError(
            f"model '{model.name}' version {model.version} has no plot '{plot}'; it has "
            f"{sorted(f'{k}.png' for k in _plots(model))}"
        )
    return PngResponse(path)


@router.get(
    "/{name}/report",
    summary="Evaluation report of the default version",
    response_model=ModelReport,
    responses=NOT_FOUND,
)
async def report(name: str, request: Request, repository: RepositoryDep) -> Response:
    return _report_reply(repository.get(name, ready=False), request)


@router.get(
    "/{name}/versions/{version}/report",
    summary="Evaluation report (one version)",
    response_model=ModelReport,
    responses=NOT_FOUND,
)
async def version_report(
    name: str, version: str, request: Request, repository: RepositoryDep
) -> Response:
    return _report_reply(repository.get(name, version, ready=False), request)


@router.get(
    "/{name}/report/{plot}",
    summary="A plot of the default version's report",
    response_class=PngResponse,
    openapi_extra=PLOT_NOT_FOUND,
)
async def report_plot(name: str, plot: str, repository: RepositoryDep) -> Response:
    return _plot(repository.get(name, ready=False), plot)


@router.get(
    "/{name}/versions/{version}/report/{plot}",
    summary="A plot of a version's report",
    response_class=PngResponse,
    openapi_extra=PLOT_NOT_FOUND,
)
async def version_report_plot(
    name: str, version: str, plot: str, repository: RepositoryDep
) -> Response:
    return _plot(repository.get(name, version, ready=False), plot)
