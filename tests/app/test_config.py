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


def test_every_setting_is_documented_with_its_default():
    # docs/configuration.md's table: | name | `SERVING_NAME` | `default` | what it does |
    import re
    from pathlib import Path

    table = Path(__file__).parents[2] / "docs" / "configuration.md"
    rows = {}
    for line in table.read_text().splitlines():
        cells = line.split(" | ")
        env = re.match(r"`(SERVING_[A-Z0-9_]+)`", cells[1]) if len(cells) > 3 else None
        if line.startswith("| ") and env:
            default = re.match(r"`([^`]*)`", cells[2].strip())
            rows[env[1]] = default[1] if default else None  # None: described in words
    defaults = Settings.model_construct()
    for name in Settings.model_fields:
        env = f"SERVING_{name.upper()}"
        assert env in rows, f"{name} is not in docs/configuration.md"
        value = getattr(defaults, name)
        if rows[env] is not None and isinstance(value, int | float) and not isinstance(value, bool):
            assert float(rows[env].replace("_", "")) == value, (name, rows[env], value)
