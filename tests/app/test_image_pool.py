"""``app.image_pool``: decoding threads with their own admission, expired jobs skipped, and the
time spent reported."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.errors import DeadlineExceededError, QueueFullError
from app.image_pool import POOL_SECONDS_KEY, ImagePool


def _blocked(gate: threading.Event, ran: list) -> None:
    gate.wait(5)
    ran.append("blocked")


def _sleep(seconds: float, ran: list, label: str) -> str:
    time.sleep(seconds)
    ran.append(label)
    return label


def test_a_job_whose_request_timed_out_is_not_run():
    async def scenario() -> tuple[list, int]:
        pool, gate, ran = ImagePool(1), threading.Event(), []
        blocking = asyncio.ensure_future(
            pool.run(_blocked, gate, ran, model="m", deadline=time.monotonic() + 10)
        )
        await asyncio.sleep(0.02)  # the only thread is taken
        with pytest.raises(DeadlineExceededError):
            await pool.run(_sleep, 0, ran, "late", model="m", deadline=time.monotonic() + 0.1)
        gate.set()
        await blocking
        await asyncio.sleep(0.05)
        pool.shutdown()
        return ran, pool.jobs

    ran, jobs = asyncio.run(scenario())
    assert ran == ["blocked"]  # the timed-out job never ran
    assert jobs == 0


def test_a_request_the_jobs_ahead_would_make_late_is_refused_at_once():
    async def scenario() -> None:
        pool, gate, ran = ImagePool(1), threading.Event(), []
        assert (
            await pool.run(_sleep, 0.2, ran, "timed", model="m", deadline=time.monotonic() + 5)
            == "timed"
        )
        assert pool.job_time_s == pytest.approx(0.2, abs=0.05)
        queued = [
            asyncio.ensure_future(
                pool.run(_blocked, gate, ran, model="m", deadline=time.monotonic() + 10)
            )
            for _ in range(4)
        ]
        await asyncio.sleep(0.02)
        started = time.monotonic()
        with pytest.raises(QueueFullError) as refused:
            # 4 jobs ahead on one thread at ~0.2 s each: ~1 s, more than 3/4 of 0.5 s
            await pool.run(_sleep, 0, ran, "refused", model="m", deadline=time.monotonic() + 0.5)
        assert time.monotonic() - started < 0.3  # at once, not at its deadline (0.5 s)
        assert refused.value.headers["Retry-After"] == "1"
        admitted = asyncio.ensure_future(
            pool.run(_sleep, 0, ran, "admitted", model="m", deadline=time.monotonic() + 5)
        )
        gate.set()
        await asyncio.gather(*queued)
        assert await admitted == "admitted"
        pool.shutdown()
        assert "refused" not in ran

    asyncio.run(scenario())


def test_an_idle_pool_always_admits_and_the_time_spent_is_reported():
    async def scenario() -> dict:
        pool, state = ImagePool(2), {}
        pool.job_time_s = 60.0  # an estimate far over any deadline
        await pool.run(
            _sleep, 0.05, [], "one", model="m", deadline=time.monotonic() + 1, state=state
        )
        await pool.run(
            _sleep, 0.05, [], "two", model="m", deadline=time.monotonic() + 1, state=state
        )
        pool.shutdown()
        return state

    state = asyncio.run(scenario())
    assert 0.1 <= state[POOL_SECONDS_KEY] < 2
