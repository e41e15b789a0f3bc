"""The served model's own rules (no model needed)."""

from __future__ import annotations

from app.config import BatchingConfig
from app.servable import ModelState, ServedModel, warmup_batch_sizes


def test_warmup_covers_every_power_of_two_up_to_the_maximum():
    assert warmup_batch_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert warmup_batch_sizes(12) == [1, 2, 4, 8, 12]
    assert warmup_batch_sizes(1) == [1]


def test_readiness_follows_the_state(tmp_path):
    model = ServedModel(
        "missing", 1, tmp_path / "missing", device="/CPU:0", batching=BatchingConfig()
    )
    assert model.state is ModelState.START and not model.ready
    model.load()
    assert model.state is ModelState.FAILED and not model.ready
    assert "failed to load" in model.not_ready_reason()
    model.state = ModelState.AVAILABLE
    assert model.ready
    model.state = ModelState.UNLOADING  # leaving: still finishes the requests that chose it
    assert model.ready
    model.state = ModelState.END
    assert not model.ready
