"""The documented shapes of the status, metadata and repository replies: the service's own,
TF Serving's, KServe's and Triton's extensions.

The routes write their replies as plain data (``json_response``); these models are what the
OpenAPI schema and Swagger UI show (``response_model``), and what
``tests/app/test_openapi_replies.py`` validates real replies against.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.servable import ModelState


class ProtocolError(BaseModel):
    """The error body of ``/v1/models/...`` and ``/v2/...``, as TF Serving and KServe answer."""

    error: str = Field(description="What is wrong.")


# That body as an OpenAPI content map, for the routes whose replies are documented by hand.
PROTOCOL_ERROR_CONTENT = {"application/json": {"schema": ProtocolError.model_json_schema()}}

# A route that names a model: 404 when there is no such model, version or label.
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProtocolError, "description": "No such model, version or label"}
}


# ---- the service ------------------------------------------------------------------------------
class TensorSpecReply(BaseModel):
    dtype: str = Field(description="NumPy name: float32, uint8, string, ...")
    shape: list[int | None] = Field(description="null: any size (the batch dimension).")


class VersionStatus(BaseModel):
    name: str
    version: int
    state: ModelState
    ready: bool
    error: str | None = Field(description="Why the version failed to load, when it did.")
    device: str | None
    task: str | None
    labels: list[str] | None
    inputs: dict[str, TensorSpecReply]
    outputs: dict[str, TensorSpecReply]
    batching: dict[str, Any] = Field(description="The version's batching settings.")
    load_seconds: float | None


class ModelSummary(BaseModel):
    name: str
    default_version: int | None = Field(description="The version served without `?version`.")
    ready: bool
    device: str | None
    task: str | None
    labels: list[str] | None
    versions: list[VersionStatus]


class ModelList(BaseModel):
    models: list[ModelSummary]


class Health(BaseModel):
    live: bool
    ready: bool = Field(
        description="Every model has a ready version and the server is not draining (503 when not)."
    )
    reasons: list[str] = Field(description="Why it is not ready.")
    device: str
    models: dict[str, str] = Field(description="`name/version`: its state.")
    empty_model_folders: list[str]


# ---- TF Serving -------------------------------------------------------------------------------
class TFServingStatus(BaseModel):
    error_code: str = Field(description="OK, or UNKNOWN when the version failed to load.")
    error_message: str


class TFServingVersionStatus(BaseModel):
    version: str
    state: Literal["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]
    status: TFServingStatus


class TFServingModelStatus(BaseModel):
    model_version_status: list[TFServingVersionStatus] = Field(description="Newest version first.")


class TFServingModelSpec(BaseModel):
    name: str
    signature_name: str
    version: str


class TFServingMetadata(BaseModel):
    """TF Serving's GetModelMetadata reply, plus what a client needs to build inputs."""

    model_spec: TFServingModelSpec
    metadata: dict[str, Any] = Field(
        description="`signature_def.signature_def.serving_default`: the inputs and outputs "
        "(dtype, tensor_shape, name), as TF Serving answers."
    )
    device: str | None
    task: str | None
    labels: list[str] | None
    columns: dict[str, Any] | None = Field(
        default=None, description="Tabular models: each column's type, values and default."
    )
    image: dict[str, Any] | None = Field(
        default=None, description="Image models: input size, channels and background."
    )
    forecast: dict[str, Any] | None = Field(
        default=None, description="Forecasting models: the window and horizon."
    )


# ---- KServe v2 --------------------------------------------------------------------------------
class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Liveness(BaseModel):
    live: bool


class Readiness(BaseModel):
    ready: bool
    reasons: list[str] | None = Field(default=None, description="Why not (with the 503).")


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size.")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(description="version, device, task, labels.")


class ModelReadiness(BaseModel):
    name: str
    version: str
    ready: bool
    error: str | None = Field(default=None, description="Why it failed to load, when it did.")


# ---- Triton's repository, configuration and statistics extensions ----------------------------
class RepositoryIndexEntry(BaseModel):
    name: str
    version: str
    state: Literal["READY", "LOADING", "UNAVAILABLE"]
    reason: str = Field(description="Why it is not ready, when it is not.")


class Empty(BaseModel):
    """Triton's reply to a load or unload: an empty object (errors are 4xx)."""


class ModelConfig(BaseModel):
    """Triton's model configuration, as JSON (``model_config.proto``)."""

    name: str
    platform: str
    backend: str
    version_policy: dict[str, Any]
    max_batch_size: int
    input: list[dict[str, Any]]
    output: list[dict[str, Any]]
    dynamic_batching: dict[str, Any]
    parameters: dict[str, Any]


class ModelStatistics(BaseModel):
    """Triton's statistics extension: per version, counts and cumulative times (ns)."""

    model_stats: list[dict[str, Any]]


# ---- model reports ----------------------------------------------------------------------------
class ReportSource(BaseModel):
    split: str
    splits: dict[str, Any] | None = Field(
        description="Sizes of the train / validation / test splits."
    )
    data: Any = Field(description="The data's source, license and notes, from the export.")


class ConfusionMatrix(BaseModel):
    labels: list[str]
    rows_true_columns_predicted: list[list[int]]


class ReportSpread(BaseModel):
    """The same procedure scored on other held-out data than the test split: how far one
    split's figure may fall from what data never seen gives."""

    metric: str = Field(description="`roc_auc` or `mase_vs_seasonal_naive`.")
    value: float = Field(
        description="Over all folds or origins: the folds' mean; the backtest's pooled ratio."
    )
    std: float = Field(description="Between folds or origins.")
    values: list[float] = Field(description="Per fold or per forecast origin.")
    method: str


class ModelReport(BaseModel):
    """The evaluation a version was exported with, on its held-out test split."""

    model: str
    version: int
    task: str | None
    measured_on: ReportSource
    metrics: dict[str, float | None] = Field(
        description="accuracy, balanced_accuracy, macro_f1, roc_auc, ... (those recorded)."
    )
    per_class: dict[str, Any] | None = Field(description="Precision, recall, F1 and support.")
    confusion_matrix: ConfusionMatrix | None
    roc: dict[str, Any] | None = Field(description="ROC points (fpr, tpr) of a binary model.")
    decision_threshold: float | None
    plots: dict[str, str] = Field(description="Each plot's URL (a PNG).")
    roc_note: str | None = None
    other_metrics: dict[str, Any] | None = Field(
        default=None, description="Task-specific figures (forecast errors, ...)."
    )
    intervals: dict[str, list[float]] | None = Field(
        default=None,
        description="95 % intervals of `accuracy` (Wilson) and a binary model's `roc_auc` "
        "(Hanley and McNeil) from the test split's size: how far another split of that size "
        "may land.",
    )
    spread: ReportSpread | None = Field(
        default=None,
        description="Where the export recorded one: the cross-validated ROC-AUC on the training "
        "data, or a forecaster's rolling-origin backtest.",
    )
