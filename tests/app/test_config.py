"""Settings from the environment, with per-model batching overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import BatchingConfig, Settings


def test_environment_and_per_model_overrides(monkeypatch):
    monkeypatch.setenv("SERVING_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("SERVING_MODEL_NAMES", '["mnist"]')
    monkeypatch.setenv(
        "SERVING_MODEL_OVERRIDES", '{"mnist": {"max_batch_size": 64, "max_wait_ms": 5}}'
    )
    settings = Settings(_env_file=None)
    assert settings.model_names == ["mnist"]
    mnist = settings.batching_for("mnist")
    assert (mnist.max_batch_size, mnist.max_wait_ms) == (64, 5)
    assert mnist.max_queue_size == settings.max_queue_size  # not overridden: global default
    assert settings.batching_for("other").max_batch_size == 16


def test_invalid_values_are_refused(monkeypatch):
    monkeypatch.setenv("SERVING_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_overrides_follow_the_batching_rules(monkeypatch):
    """One declaration: an override is checked like the global value (names and bounds)."""
    for bad in ('{"mnist": {"max_batch": 64}}', '{"mnist": {"max_batch_size": 0}}'):
        monkeypatch.setenv("SERVING_MODEL_OVERRIDES", bad)
        with pytest.raises(ValidationError):
            Settings(_env_file=None)
    monkeypatch.delenv("SERVING_MODEL_OVERRIDES")
    assert set(BatchingConfig.model_fields) <= set(Settings.model_fields)
    assert BatchingConfig().max_batch_size == Settings(_env_file=None).max_batch_size == 32
