"""Unit tests of the dynamic batcher with a plain numpy "model" (no TensorFlow)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import numpy as np
import pytest

from app.batching import DynamicBatcher
from app.errors import DeadlineExceededError, InferenceError, QueueFullError

pytestmark = pytest.mark.anyio


class RecordingModel:
    """Doubles its input; records every call's rows; fails on negative values; can be held."""

    def __init__(self, *, held: bool = False) -> None:
        self.calls: list[np.ndarray] = []
        self.release = threading.Event()
        if not held:
            self.release.set()
        self.started = threading.Event()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.started.set()
        self.release.wait(10)
        x = inputs["x"]
        self.calls.append(x.copy())
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2, "scalar": np.float32(1.0)}

    @property
    def batch_sizes(self) -> list[int]:
        return [len(c) for c in self.calls]


def rows(start: int, n: int, width: int = 3) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)[:, None].repeat(width, axis=1)


async def stop(batcher: DynamicBatcher) -> None:
    await batcher.stop()


async def occupy(batcher: DynamicBatcher, model: RecordingModel) -> asyncio.Task:
    """Submit one request (row 0) and return once the held model is running it."""
    running = asyncio.create_task(batcher.submit({"x": rows(0, 1)}))
    await asyncio.to_thread(model.started.wait, 5)
    return running


async def test_results_go_back_to_their_callers_in_order():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=64, max_wait_s=0.05)
    sizes = [1, 3, 2, 5, 1, 4]
    starts = np.cumsum([0, *sizes[:-1]]) * 10
    try:
        results = await asyncio.gather(
            *[batcher.submit({"x": rows(int(s), n)}) for s, n in zip(starts, sizes, strict=True)]
        )
    finally:
        await stop(batcher)
    assert model.batch_sizes == [sum(sizes)]  # one merged call
    for result, start, n in zip(results, starts, sizes, strict=True):
        np.testing.assert_array_equal(result["y"], rows(int(start), n) * 2)
        assert result["scalar"] == 1.0  # outputs without a batch dim go to everyone


async def test_flushes_as_soon_as_max_batch_size_instances_are_queued():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=4, max_wait_s=30)
    start = time.monotonic()
    try:
        await asyncio.gather(*[batcher.submit({"x": rows(i, 1)}) for i in range(8)])
    finally:
        await stop(batcher)
    assert time.monotonic() - start < 5  # never waited for the 30 s max_wait
    assert model.batch_sizes == [4, 4]


async def test_a_batch_filling_while_the_worker_waits_is_flushed_at_once():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=4, max_wait_s=30)
    start = time.monotonic()
    try:
        calls = [asyncio.create_task(batcher.submit({"x": rows(0, 1)}))]
        for i in range(1, 4):
            await asyncio.sleep(0.02)  # the worker is already waiting on its max_wait timer
            calls.append(asyncio.create_task(batcher.submit({"x": rows(i, 1)})))
        await asyncio.gather(*calls)
    finally:
        await stop(batcher)
    assert time.monotonic() - start < 5
    assert model.batch_sizes == [4]


async def test_flushes_after_max_wait_when_the_batch_is_not_full():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=100, max_wait_s=0.2)
    start = time.monotonic()
    try:
        await asyncio.gather(*[batcher.submit({"x": rows(i, 1)}) for i in range(3)])
    finally:
        await stop(batcher)
    elapsed = time.monotonic() - start
    assert model.batch_sizes == [3]
    assert 0.15 <= elapsed < 5


async def test_a_failing_request_does_not_fail_the_others_of_its_batch():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=16, max_wait_s=0.05)
    try:
        results = await asyncio.gather(
            batcher.submit({"x": rows(1, 2)}),
            batcher.submit({"x": -rows(1, 1)}),
            batcher.submit({"x": rows(5, 1)}),
            return_exceptions=True,
        )
    finally:
        await stop(batcher)
    np.testing.assert_array_equal(results[0]["y"], rows(1, 2) * 2)
    assert isinstance(results[1], InferenceError)
    np.testing.assert_array_equal(results[2]["y"], rows(5, 1) * 2)
    assert model.batch_sizes[0] == 4  # tried together first, then one by one
    assert sorted(model.batch_sizes[1:]) == [1, 1, 2]


async def test_a_full_queue_is_refused_at_once():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=1, max_wait_s=0, max_queue_size=2)
    try:
        running = await occupy(batcher, model)
        queued = [asyncio.create_task(batcher.submit({"x": rows(i, 1)})) for i in (1, 2)]
        await asyncio.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(QueueFullError) as refused:
            await batcher.submit({"x": rows(3, 1)})
        assert time.monotonic() - start < 0.1
        assert refused.value.headers["Retry-After"] == "1"
        model.release.set()
        done = await asyncio.gather(running, *queued)
    finally:
        model.release.set()
        await stop(batcher)
    assert [float(r["y"][0, 0]) for r in done] == [0.0, 2.0, 4.0]


async def test_a_request_past_its_deadline_gets_504_and_is_dropped_from_the_batch():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=8, max_wait_s=0, timeout_s=5)
    try:
        blocker = await occupy(batcher, model)
        with pytest.raises(DeadlineExceededError):
            await batcher.submit({"x": rows(7, 1)}, timeout_s=0.05)
        patient = asyncio.create_task(batcher.submit({"x": rows(9, 1)}))
        await asyncio.sleep(0.01)
        model.release.set()
        await asyncio.gather(blocker, patient)
    finally:
        model.release.set()
        await stop(batcher)
    seen = np.concatenate(model.calls)[:, 0].tolist()
    assert 7.0 not in seen  # the expired request never reached the model
    assert seen == [0.0, 9.0]


async def test_a_deadline_passing_while_its_batch_runs_fails_only_that_request():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=2, max_wait_s=0.2, timeout_s=5)
    try:
        hurried = asyncio.create_task(batcher.submit({"x": rows(1, 1)}, timeout_s=0.05))
        patient = asyncio.create_task(batcher.submit({"x": rows(2, 1)}))
        await asyncio.to_thread(model.started.wait, 5)  # both are in the running batch
        with pytest.raises(DeadlineExceededError, match="within 50 ms"):
            await hurried
        model.release.set()
        assert (await patient)["y"][0, 0] == 4.0
    finally:
        model.release.set()
        await stop(batcher)
    assert model.batch_sizes == [2]


async def test_a_caller_that_goes_away_is_skipped():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=8, max_wait_s=0, timeout_s=5)
    try:
        blocker = await occupy(batcher, model)
        gone = asyncio.create_task(batcher.submit({"x": rows(5, 1)}))
        await asyncio.sleep(0.01)
        gone.cancel()  # e.g. the client disconnected
        model.release.set()
        await blocker
        assert await batcher.submit({"x": rows(6, 1)})
    finally:
        model.release.set()
        await stop(batcher)
    assert 5.0 not in np.concatenate(model.calls)[:, 0].tolist()


async def test_requests_of_different_shapes_are_not_merged():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=16, max_wait_s=0.05)
    try:
        a, b = await asyncio.gather(
            batcher.submit({"x": rows(1, 2, width=3)}), batcher.submit({"x": rows(1, 1, width=5)})
        )
    finally:
        await stop(batcher)
    assert a["y"].shape == (2, 3) and b["y"].shape == (1, 5)
    assert sorted(model.batch_sizes) == [1, 2]


async def test_a_request_larger_than_max_batch_size_runs_in_slices():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=4, max_wait_s=0.05)
    try:
        big, small = await asyncio.gather(
            batcher.submit({"x": rows(0, 10)}), batcher.submit({"x": rows(100, 1)})
        )
    finally:
        await stop(batcher)
    # TF Serving's large batch splitting: no model call above max_batch_size, answers in order.
    assert max(model.batch_sizes) <= 4 and sum(model.batch_sizes) == 11
    np.testing.assert_array_equal(big["y"], rows(0, 10) * 2)
    np.testing.assert_array_equal(small["y"], rows(100, 1) * 2)


async def test_a_sliced_request_needs_queue_room_for_every_slice():
    model = RecordingModel()
    batcher = DynamicBatcher(model, name="t", max_batch_size=4, max_queue_size=2)
    try:
        with pytest.raises(QueueFullError):
            await batcher.submit({"x": rows(0, 9)})  # 3 slices, room for 2
        assert model.calls == []
    finally:
        await stop(batcher)


async def test_work_that_cannot_finish_before_the_deadline_is_not_started():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=8, max_wait_s=0, timeout_s=5)
    try:
        batcher._interactive.call_time_s = 0.2  # small batches have recently taken 200 ms
        blocker = await occupy(batcher, model)
        short = asyncio.create_task(batcher.submit({"x": rows(3, 1)}, timeout_s=0.1))
        await asyncio.sleep(0.01)
        model.release.set()
        await blocker
        with pytest.raises(DeadlineExceededError, match="not run"):
            await short
    finally:
        model.release.set()
        await stop(batcher)
    assert 3.0 not in np.concatenate(model.calls)[:, 0].tolist()


@contextlib.asynccontextmanager
async def held(batcher: DynamicBatcher, model: RecordingModel):
    """The held model runs a first request (row 0) while the block queues more with the
    ``queue(inputs)`` it gets; then the model is released, every request is answered and the
    batcher is stopped."""
    tasks = [await occupy(batcher, model)]

    def queue(inputs: dict[str, np.ndarray]) -> None:
        tasks.append(asyncio.create_task(batcher.submit(inputs)))

    try:
        yield queue
        await asyncio.sleep(0.01)
        model.release.set()
        await asyncio.gather(*tasks)
    finally:
        model.release.set()
        await stop(batcher)


async def test_a_small_request_queued_behind_bulk_work_runs_in_the_next_batch():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=4, max_wait_s=0)
    async with held(batcher, model) as queue:
        queue({"x": rows(100, 24)})  # 6 slices
        await asyncio.sleep(0.01)
        queue({"x": rows(7, 1)})
    # First in, first out, it would have waited for the six slices; it runs next.
    assert [float(call[0, 0]) for call in model.calls[:3]] == [0.0, 7.0, 100.0]
    assert model.batch_sizes == [1, 1, 4, 4, 4, 4, 4, 4]


async def test_bulk_work_gets_every_other_batch_however_many_small_requests_come():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=4, max_wait_s=0)
    async with held(batcher, model) as queue:
        queue({"x": rows(100, 12)})  # 3 slices
        for i in range(1, 17):
            queue({"x": rows(i, 1)})
    lanes = ["bulk" if call[0, 0] >= 100 else "small" for call in model.calls[1:]]
    assert lanes == ["small", "bulk", "small", "bulk", "small", "bulk", "small"]


async def test_the_queue_check_counts_the_work_ahead_of_a_request_in_its_lane():
    model = RecordingModel(held=True)
    batcher = DynamicBatcher(model, name="t", max_batch_size=4, max_wait_s=0, timeout_s=4)
    # Recent calls: a bulk batch 1 s, a small one 10 ms. Admission allows 3 s of work.
    batcher._bulk.call_time_s, batcher._interactive.call_time_s = 1.0, 0.01
    async with held(batcher, model) as queue:  # a small batch running
        queue({"x": rows(100, 8)})  # 2 slices: 2 s
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError, match="3010 ms"):  # 2 s ahead, 1 s its own
            batcher.check_room(4)
        with pytest.raises(QueueFullError):
            await batcher.submit({"x": rows(200, 4)})
        batcher.check_room(3)  # a small one: its own batch and one bulk batch, in turn
        queue({"x": rows(7, 3)})
    assert [len(call) for call in model.calls] == [1, 3, 4, 4]


@pytest.mark.parametrize(("rows_sent", "bulk"), [(1, False), (3, False), (4, True), (9, True)])
async def test_a_request_of_a_full_batch_or_more_is_reported_as_bulk_to_the_protocol(
    rows_sent, bulk
):
    """A small body can carry a bulk request (256 short texts): python -m app admitted it in
    the interactive lane, and leaves its latency out of that lane's cap when told."""
    from app.admission import BULK_KEY, AdmissionMiddleware, ServerState

    batcher = DynamicBatcher(RecordingModel(), name="t", max_batch_size=4)

    async def app(scope, receive, send):
        await batcher.submit({"x": rows(0, rows_sent)})

    middleware = AdmissionMiddleware(app, state=ServerState(), max_inflight=10)
    scope = {"type": "http", "path": "/v1/models/t:predict", "headers": [], "state": {}}
    try:
        await middleware(scope, None, None)
    finally:
        await stop(batcher)
    assert scope["state"].get(BULK_KEY, False) is bulk
