"""Service settings, read from the environment (prefix ``SERVING_``) or a ``.env`` file.

Complex values are JSON, e.g.
``SERVING_MODEL_OVERRIDES='{"mnist": {"max_batch_size": 64, "max_wait_ms": 5}}'``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class BatchingOverride(BaseModel):
    """Per-model values replacing the global batching defaults (unset fields keep them)."""

    max_batch_size: PositiveInt | None = None
    max_wait_ms: float | None = Field(default=None, ge=0)
    max_queue_size: PositiveInt | None = None
    request_timeout_ms: PositiveFloat | None = None


class BatchingConfig(BaseModel):
    """The batching knobs in force for one model."""

    max_batch_size: PositiveInt
    max_wait_ms: float = Field(ge=0)
    max_queue_size: PositiveInt
    request_timeout_ms: PositiveFloat


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVING_", env_file=".env", extra="ignore")

    # ---- repository
    models_dir: Path = Path("models")
    model_names: list[str] = Field(
        default_factory=list, description="Serve only these models (empty: every folder)."
    )
    device: Literal["auto", "cpu", "gpu"] = "auto"
    warmup: bool = True
    intra_op_threads: int = Field(
        default=0, ge=0, description="TensorFlow threads inside one op (0: TensorFlow's default)."
    )
    inter_op_threads: int = Field(
        default=0, ge=0, description="TensorFlow ops run in parallel (0: TensorFlow's default)."
    )
    load_in_background: bool = Field(
        default=False,
        description="Accept requests while models load (readiness 503 until warm) instead of "
        "finishing start-up first.",
    )

    # ---- HTTP server (python -m app)
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "info"
    access_log: bool = Field(
        default=False, description="Keep uvicorn's per-request access log (off: it costs CPU)."
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry request spans, metrics and logs (they need an "
        "OpenTelemetry SDK configured). Off: /metrics (Prometheus) only, and no per-request "
        "OpenTelemetry lookups.",
    )

    # ---- dynamic batching (global defaults; per-model overrides below)
    max_batch_size: PositiveInt = 32
    max_wait_ms: float = Field(default=3.0, ge=0)
    max_queue_size: PositiveInt = Field(
        default=256, description="Requests waiting per model version before 429."
    )
    request_timeout_ms: PositiveFloat = Field(
        default=5000.0, description="Deadline per request: queueing plus inference."
    )
    model_overrides: dict[str, BatchingOverride] = Field(default_factory=dict)

    # ---- payload limits
    max_body_bytes: PositiveInt = 20 * 1024 * 1024
    max_images_per_request: PositiveInt = 16
    max_file_bytes: PositiveInt = 10 * 1024 * 1024
    max_image_pixels: PositiveInt = 25_000_000
    max_text_chars: PositiveInt = 10_000
    max_items_per_request: PositiveInt = 256
    max_history_length: PositiveInt = 1_000

    def batching_for(self, model_name: str) -> BatchingConfig:
        """Global batching defaults with the model's overrides applied."""
        base = {
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait_ms,
            "max_queue_size": self.max_queue_size,
            "request_timeout_ms": self.request_timeout_ms,
        }
        override = self.model_overrides.get(model_name)
        if override is not None:
            base.update(override.model_dump(exclude_none=True))
        return BatchingConfig(**base)


@lru_cache
def get_settings() -> Settings:
    return Settings()
