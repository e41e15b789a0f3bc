"""Helpers shared by the task-endpoint tests (imported as ``task_helpers``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.config import Settings
from tests.paths import DATASETS_DIR, REPO_ROOT
from tests.paths import make_settings as make_clean_settings

# The committed models; SERVING_MODELS_DIR points the suite at another folder (trial exports).
MODELS_DIR = Path(os.environ.get("SERVING_MODELS_DIR", REPO_ROOT / "models"))

TEST_LIMITS = {
    "max_body_bytes": 3 * 1024 * 1024,
    "max_images_per_request": 4,
    "max_file_bytes": 1024 * 1024,
    "max_image_pixels": 4_000_000,
    "max_text_chars": 2_000,
    "max_items_per_request": 64,
    "max_history_length": 240,
}


def make_settings() -> Settings:
    return make_clean_settings(
        models_dir=MODELS_DIR, model_names=[], warmup=False, max_batch_size=16, **TEST_LIMITS
    )


def has_model(name: str) -> bool:
    return any(p.is_dir() and p.name.isdigit() for p in (MODELS_DIR / name).glob("*"))


def require_dataset(relative: str) -> Path:
    """``DATASETS_DIR / relative``; skip when it is not on this machine."""
    path = DATASETS_DIR / relative
    if not path.exists():
        pytest.skip(f"dataset file not found: {path} (set TRAINING_DATA_DIR)")
    return path


def require_model(name: str) -> None:
    """Skip until ``models/<name>`` is committed."""
    if not has_model(name):
        pytest.skip(f"models/{name} is not in the repository yet")


def assert_problem(
    response,
    status: int,
    *,
    field: str | None = None,
    file: str | None = None,
    detail: str | None = None,
) -> dict:
    """An RFC 9457 problem+json answer with ``status`` (and the offending field/file)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if field is not None:
        assert field in body.get("field", ""), body
    if file is not None:
        assert body.get("file") == file, body
    if detail is not None:
        assert detail.lower() in body["detail"].lower(), body
    return body
