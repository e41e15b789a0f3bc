"""What to serve of a model: its version policy, version labels and batching values.

Global defaults come from the settings; ``<models_dir>/<name>/config.json`` (optional, beside the
version folders) overrides them for one model, as TF Serving's ``model_config_list`` and
Triton's ``config.pbtxt`` do::

    {
      "version_policy": {"latest": 2},          // or {"all": {}} or {"specific": [1, 3]}
      "labels": {"stable": 2, "canary": 3},      // /v1/models/<name>/labels/stable:predict
      "batching": {"max_batch_size": 64, "max_wait_ms": 5}
    }

Why the default policy is ``all`` (TF Serving's is ``latest 1``): a committed version here is
immutable and clients pin versions (``?version=1``, ``/versions/1``); serving every version
keeps every pin working, and the repository's versions are small. Large models set
``{"latest": 1}`` in their ``config.json`` or ``SERVING_VERSION_POLICY``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from app.config import BatchingOverride

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


class VersionPolicy(BaseModel):
    """Exactly one of ``latest`` (the N highest versions), ``all``, ``specific``."""

    model_config = ConfigDict(extra="forbid")

    latest: PositiveInt | None = None
    all: dict | None = None
    specific: list[PositiveInt] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> VersionPolicy:
        chosen = [k for k in ("latest", "all", "specific") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                'a version policy is exactly one of {"latest": N}, {"all": {}}, '
                '{"specific": [versions]}'
            )
        return self

    def select(self, versions: list[int]) -> list[int]:
        """The versions of ``versions`` this policy serves, ascending."""
        ordered = sorted(versions)
        if self.latest is not None:
            return ordered[-self.latest :]
        if self.specific is not None:
            wanted = set(self.specific)
            return [v for v in ordered if v in wanted]
        return ordered

    def describe(self) -> dict:
        return self.model_dump(exclude_none=True)


class ModelConfig(BaseModel):
    """A model's ``config.json``; every field optional."""

    model_config = ConfigDict(extra="forbid")

    version_policy: VersionPolicy | None = None
    labels: dict[str, PositiveInt] = Field(default_factory=dict)
    batching: BatchingOverride | None = None

    @model_validator(mode="after")
    def _label_names(self) -> ModelConfig:
        for label in self.labels:
            if not label or label.isdigit() or "/" in label or ":" in label:
                raise ValueError(f"label {label!r}: a label is a name, not a number or a path")
        return self


def read_model_config(model_dir: Path) -> tuple[ModelConfig, str | None]:
    """The model's config (defaults when absent) and the error that made it unusable, if any.

    A broken ``config.json`` is reported and ignored, not fatal: the model is still served
    with the defaults, and the error shows in the repository index and the log."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        return ModelConfig(), None
    try:
        return ModelConfig.model_validate(json.loads(path.read_text())), None
    except (OSError, ValueError, ValidationError) as exc:
        message = f"{model_dir.name}/{CONFIG_FILE} ignored: {str(exc).splitlines()[0]}"
        logger.error(message)
        return ModelConfig(), message
