"""The adaptive cap on admitted requests: it follows their latency against the deadline."""

from __future__ import annotations

import pytest

from app import concurrency
from app.concurrency import ConcurrencyLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(concurrency.time, "monotonic", clock)
    return clock


def _window(limit: ConcurrencyLimit, clock: Clock, offered: int, latency_s: float) -> None:
    """One window of steady load: ``offered`` clients, those the cap admits in progress (each
    answer followed by a new request, as closed-loop clients do), each answered in
    ``latency_s``."""
    while limit.inflight < offered and not limit.full:  # the admission check of app.admission
        limit.acquire()
    inflight = limit.inflight
    for answered in range(1, inflight + 1):
        if answered == inflight:  # the window ends with its last answer
            clock.now += concurrency.WINDOW_S * 1.01
        limit.release(latency_s)
        if answered < inflight and not limit.full:
            limit.acquire()
    while limit.inflight > 0:  # the load stops
        limit.release(None)


def test_the_cap_starts_open_and_stays_open_while_answers_come_in_time(clock):
    limit = ConcurrencyLimit(5.0, maximum=512)
    for _ in range(20):
        _window(limit, clock, 300, 0.2)  # 0.2 s against a 5 s deadline
    assert limit.limit == 512 and not limit.full


def test_late_answers_shrink_the_cap_to_what_would_have_been_in_time(clock):
    limit = ConcurrencyLimit(0.050, maximum=512)  # target: 20 ms mean
    _window(limit, clock, 200, 0.080)  # 200 in progress took 80 ms: 4x the target
    assert limit.limit == pytest.approx(200 * concurrency.MAX_SHRINK)  # at most halved at once
    _window(limit, clock, 100, 0.040)
    assert limit.limit == pytest.approx(50)  # Little's law: 100 x 20/40
    for _ in range(10):
        _window(limit, clock, 50, 1.0)
    assert limit.limit == limit.minimum  # never locks every request out


def test_the_cap_grows_back_only_when_it_is_reached_and_answers_are_early(clock):
    limit = ConcurrencyLimit(0.050, maximum=512)
    _window(limit, clock, 100, 0.040)
    assert limit.limit == pytest.approx(50)
    _window(limit, clock, 10, 0.005)  # quick answers, but far from the cap: no growth
    assert limit.limit == pytest.approx(50)
    # 60 clients, 50 admitted: the cap is reached, and answers take half the target.
    _window(limit, clock, 60, 0.010)
    assert limit.limit == pytest.approx(50 * concurrency.MAX_GROWTH + 1)
    assert limit.inflight == 0


def test_a_lost_connection_frees_its_slot_without_a_measurement(clock):
    limit = ConcurrencyLimit(0.050, maximum=512)
    limit.acquire()
    clock.now += 1
    limit.release(None)
    assert limit.inflight == 0 and limit.limit == 512


def test_the_cap_is_published_when_it_changes(clock):
    class Gauge:
        def __init__(self) -> None:
            self.values: list[float] = []

        def set(self, value: float) -> None:
            self.values.append(value)

    gauge = Gauge()
    limit = ConcurrencyLimit(0.050, maximum=512, gauge=gauge)
    _window(limit, clock, 10, 0.005)  # nothing to change
    _window(limit, clock, 100, 0.040)
    assert gauge.values == [512, 50]
