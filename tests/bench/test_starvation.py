"""``python -m bench.starvation``: what each client got, tallied by status."""

from __future__ import annotations

from bench import starvation


def test_outcomes_are_tallied_by_status_with_their_median_and_worst_time():
    outcomes = [(200, 0.008), (429, 0.08), (200, 0.006), (200, 0.031)]
    assert starvation._tally(outcomes) == (
        "200: 3 (p50 8 ms, worst 31 ms); 429: 1 (p50 80 ms, worst 80 ms)"
    )


def test_every_scenario_can_be_chosen_by_name():
    assert set(starvation.SCENARIOS) == {
        "slow_uploads",
        "costly_pictures",
        "plain_pictures",
        "heavy_texts",
        "bulk_in_small_bodies",
        "costly_model",
        "open_gets",
    }
    assert all(callable(run) for run in starvation.SCENARIOS.values())
