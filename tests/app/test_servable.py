"""The served model's own rules (no model needed)."""

from __future__ import annotations

from app.servable import warmup_batch_sizes


def test_warmup_covers_every_power_of_two_up_to_the_maximum():
    assert warmup_batch_sizes(32) == [1, 2, 4, 8, 16, 32]
    assert warmup_batch_sizes(12) == [1, 2, 4, 8, 12]
    assert warmup_batch_sizes(1) == [1]
