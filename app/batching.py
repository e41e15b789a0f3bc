"""Dynamic batching: concurrent requests to one model version merged into one model call.

In the spirit of TF Serving's batcher and Ray Serve's ``@serve.batch``: callers
``await batcher.submit(inputs)``; a worker task takes queued requests until ``max_batch_size``
instances are gathered or ``max_wait`` has passed since the oldest queued request (0, the
default: at once; requests that arrive during a model call form the next batch), concatenates
them per input, runs the model in a dedicated thread (off the event loop, one call at a time per
model), and splits the outputs back to the callers in order.

- Inputs must be validated before ``submit``: a batch only ever holds well-formed requests.
  Should a batched call fail anyway, each of its requests is re-run alone, so only the request
  that causes the failure gets it.
- The queue is bounded: a full queue raises :class:`QueueFullError` at once (callers check
  :meth:`DynamicBatcher.check_room` before they even read a request's body).
- A request larger than ``max_batch_size`` is run in ``max_batch_size`` slices (TF Serving's
  large batch splitting), each queued like a request of its own: one big request never makes
  one huge model call, and its slices interleave with other requests.
- **Two lanes, taken in turn.** Requests of at least ``max_batch_size`` instances (bulk: each
  of their slices is a batch of its own) queue apart from smaller ones (interactive), and when
  both lanes have work the worker takes a batch from each in turn. First in, first out over one
  queue, a one-text request behind sixteen 256-text requests waited for 128 model calls; now it
  waits for at most the call running and one bulk batch, and bulk requests still get every
  other call however many small requests come (no starvation either way).
- Every request has a deadline (counted from its arrival, see ``app.admission``): past it the
  caller gets :class:`DeadlineExceededError`, and work for a request that cannot finish in time
  (its deadline is nearer than the model's recent call time) is never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from app import admission, metrics
from app.concurrency import ConcurrencyLimit
from app.errors import (
    DeadlineExceededError,
    InferenceError,
    ModelNotReadyError,
    QueueFullError,
    ServingError,
)

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]
ADMISSION_SHARE = 0.75  # of a request's deadline that queued work may take when it is admitted


def _batches(instances: int, max_batch_size: int) -> int:
    return -(-instances // max_batch_size)


class _Lane:
    """Queued requests (or slices) of one kind, first in, first out."""

    __slots__ = ("items", "queued", "call_time_s")

    def __init__(self) -> None:
        self.items: deque[_Pending] = deque()
        self.queued = 0  # instances queued, answered ones included until the next batch
        # Its recent model call time (moving average), apart from the other lane's: a batch
        # of one short text and one of 32 long ones differ tenfold, and one average of both
        # would admit bulk work that then times out.
        self.call_time_s = 0.0


ModelCall = Callable[[Arrays], Mapping[str, np.ndarray]]


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9) * count

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatcherStats:
    """Triton's statistics extension, per model version: request outcomes and times, and
    model calls by batch size."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    inference_count: int = 0  # instances
    execution_count: int = 0  # model calls
    last_inference_ms: int = 0
    batches: dict[int, Duration] = field(default_factory=dict)


@dataclass(eq=False)
class _Pending:
    inputs: Arrays
    size: int
    deadline: float
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)

    def signature(self) -> tuple:
        """Requests can share a batch only when their non-batch dims and dtypes agree."""
        return tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(self.inputs.items()))


class DynamicBatcher:
    """Batches requests for one model callable; one worker task and one thread per batcher."""

    def __init__(
        self,
        call: ModelCall,
        *,
        name: str,
        version: str = "",
        max_batch_size: int = 32,
        max_wait_s: float = 0.0,
        max_queue_size: int = 256,
        timeout_s: float = 5.0,
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1:
            raise ValueError("max_batch_size and max_queue_size must be >= 1")
        self.call = call
        self.name = name
        self.version = version
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue_size = max_queue_size
        self.timeout_s = timeout_s
        self._interactive = _Lane()  # requests of fewer than max_batch_size instances
        self._bulk = _Lane()  # slices of requests of max_batch_size instances or more
        self._lanes = (self._interactive, self._bulk)
        self._bulk_turn = False  # with both lanes queued, the next batch is bulk's
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._queue_gauge = metrics.QUEUE_DEPTH.labels(name, version)
        self._batch_size = metrics.BATCH_SIZE.labels(name)
        self._inference_time = metrics.INFERENCE_TIME.labels(name, version)
        self._queue_wait = metrics.QUEUE_WAIT.labels(name)
        self._running: _Lane | None = None  # the lane of the model call running
        self._closed = False  # stopped for good (the version was unloaded)
        # Requests admitted at their headers (python -m app) and not answered yet, in two
        # lanes (app.admission.quick_admission): bodies cheap to read, and the rest. Each cap
        # adapts to its own lane's latency, so that slow bulk requests, refused for being
        # late, do not lock out small ones that the turn-taking answers in time.
        self.concurrency = ConcurrencyLimit(
            timeout_s,
            maximum=max_queue_size,
            gauge=metrics.ADMISSION_LIMIT.labels(name, version, "interactive"),
        )
        self.bulk_concurrency = ConcurrencyLimit(
            timeout_s,
            maximum=max_queue_size,
            gauge=metrics.ADMISSION_LIMIT.labels(name, version, "bulk"),
            bulk=True,
        )
        self.stats = BatcherStats()

    # ---- lifecycle
    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        """Start the worker on the running event loop (idempotent)."""
        if self.running:
            return
        self._wakeup = asyncio.Event()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"model-{self.name}")
        self._worker = asyncio.get_running_loop().create_task(
            self._run(), name=f"batcher-{self.name}-{self.version}"
        )

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every queued request has been answered (or ``timeout_s`` passed)."""
        end = time.monotonic() + timeout_s
        while (self._running or self._queued_instances()) and self.running:
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        """Stop the worker for good; requests still queued fail with 503-like errors."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for lane in self._lanes:
            while lane.items:
                item = lane.items.popleft()
                if not item.future.done():
                    item.future.set_exception(InferenceError("server is shutting down"))
            lane.queued = 0
        self._queue_gauge.set(0)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def queue_depth(self) -> int:
        return len(self._interactive.items) + len(self._bulk.items)

    # ---- callers
    def check_room(self, size: int = 1) -> None:
        """:class:`QueueFullError` unless a request of ``size`` instances fits in the queue:
        fewer than ``max_queue_size`` requests (or slices) are waiting, and the work ahead of
        it can be done before its deadline (at the model's recent call time). Admitting a
        request that would only time out in the queue wastes its slot, and the client learns
        later."""
        slices = _batches(size, self.max_batch_size)
        if self.queue_depth + slices > self.max_queue_size:
            self.refuse(f"{self.max_queue_size} requests waiting")
        own, other = self._lanes_for(size)
        own_call_s = own.call_time_s or other.call_time_s
        if own_call_s and (own.queued or other.queued):
            # The model call running, the batches of its lane up to its own, and as many of
            # the other lane's (taken in turn) must fit in a share of its deadline: the rest is
            # for reading, parsing and answering it. (An empty queue always admits: the
            # estimate must not lock out.)
            mine = _batches(own.queued + size, self.max_batch_size)
            theirs = min(mine, _batches(other.queued, self.max_batch_size))
            ahead_s = mine * own_call_s + theirs * (other.call_time_s or own_call_s)
            if self._running is not None:
                ahead_s += self._running.call_time_s
            if ahead_s > self.timeout_s * ADMISSION_SHARE:
                self.refuse(
                    f"the queued work would take {ahead_s * 1000:.0f} ms, too much of a new "
                    f"request's deadline of {self.timeout_s * 1000:.0f} ms"
                )

    def _lanes_for(self, size: int) -> tuple[_Lane, _Lane]:
        """(the lane of a request of ``size`` instances, the other lane)."""
        if size >= self.max_batch_size:
            return self._bulk, self._interactive
        return self._interactive, self._bulk

    def refuse(self, why: str) -> None:
        """Raise :class:`QueueFullError` (429) saying ``why``, and count it."""
        metrics.REJECTED.labels(self.name, "queue_full").inc()
        raise QueueFullError(f"model '{self.name}' queue is full ({why}); retry later")

    async def submit(
        self,
        inputs: Arrays,
        size: int | None = None,
        *,
        timeout_s: float | None = None,
        deadline: float | None = None,
    ) -> Arrays:
        """Queue ``inputs`` (arrays sharing a leading batch dim of ``size``) and await outputs.

        ``deadline`` (``time.monotonic()``) wins over ``timeout_s`` (from now), which wins over
        the batcher's own timeout."""
        if not self.running:
            if self._closed:
                raise ModelNotReadyError(f"model '{self.name}' version {self.version} was unloaded")
            self.start()
        if size is None:
            size = len(next(iter(inputs.values())))
        if deadline is None:
            deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        self.check_room(size)
        lane, _ = self._lanes_for(size)
        if lane is self._bulk:
            admission.note_bulk()  # (its body may have been small enough for the other lane)
        if size <= self.max_batch_size:
            return await self._enqueue(lane, inputs, size, deadline)
        # Large batch splitting: slices of max_batch_size, queued together, answered together.
        parts = [
            asyncio.ensure_future(
                self._enqueue(
                    lane,
                    {k: v[start : start + self.max_batch_size] for k, v in inputs.items()},
                    min(self.max_batch_size, size - start),
                    deadline,
                )
            )
            for start in range(0, size, self.max_batch_size)
        ]
        try:
            answers = await asyncio.gather(*parts)
        except BaseException:
            for part in parts:
                part.cancel()
            raise
        return {
            k: np.concatenate([answer[k] for answer in answers])
            if answers[0][k].ndim and sum(len(a[k]) for a in answers) == size
            else answers[0][k]
            for k in answers[0]
        }

    async def _enqueue(self, lane: _Lane, inputs: Arrays, size: int, deadline: float) -> Arrays:
        loop = asyncio.get_running_loop()
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            metrics.REJECTED.labels(self.name, "deadline").inc()
            raise DeadlineExceededError(
                f"model '{self.name}': the request's deadline passed before it was queued"
            )
        future = loop.create_future()
        # (The queue-depth gauge is set by the worker at each batch: per request it would
        # take the metric's lock on every call.)
        lane.items.append(_Pending(inputs, size, deadline, future))
        lane.queued += size
        # Wake the worker only when it has something to do: a first request (its max_wait
        # clock starts) or a full batch. Waking it per request costs more than the batching.
        if self.queue_depth == 1 or lane.queued >= self.max_batch_size:
            assert self._wakeup is not None
            self._wakeup.set()
        # One timer per request fails the future at its deadline (the worker then skips the
        # request); lighter than asyncio.wait_for, which wraps the future in a second one.
        timer = loop.call_later(timeout, self._expire, future, timeout)
        start = time.monotonic()
        try:
            result = await future
            self.stats.success.add(time.monotonic() - start)
            return result
        except Exception:
            self.stats.fail.add(time.monotonic() - start)
            raise
        finally:
            timer.cancel()
            if not future.done():  # the caller was cancelled: the worker skips it
                future.cancel()

    def _expire(self, future: asyncio.Future, timeout: float) -> None:
        if future.done():
            return
        metrics.REJECTED.labels(self.name, "deadline").inc()
        future.set_exception(
            DeadlineExceededError(
                f"model '{self.name}' did not answer within {timeout * 1000:.0f} ms (the "
                "request's deadline)"
            )
        )

    # ---- worker
    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue_depth:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._wait_for_batch()
            lane, batch = self._take_batch()
            self._queue_gauge.set(self.queue_depth)
            if not batch:
                continue
            now = time.monotonic()
            for item in batch:
                self._queue_wait.observe(now - item.enqueued)
                self.stats.queue.add(now - item.enqueued)
            self._running = lane
            try:
                await self._execute(loop, lane, batch)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(InferenceError("server is shutting down"))
                raise
            finally:
                self._running = None

    async def _wait_for_batch(self) -> None:
        """Wait until a full batch is queued or the oldest request has waited ``max_wait``."""
        wakeup = self._wakeup
        assert wakeup is not None
        loop = asyncio.get_running_loop()
        flush_at = (
            min(lane.items[0].enqueued for lane in self._lanes if lane.items) + self.max_wait_s
        )
        while self._queued_instances() < self.max_batch_size:
            remaining = flush_at - time.monotonic()
            if remaining <= 0:
                return
            wakeup.clear()
            timer = loop.call_later(remaining, wakeup.set)  # a timer, not a task per wait
            try:
                await wakeup.wait()
            finally:
                timer.cancel()

    def _queued_instances(self) -> int:
        return sum(
            item.size for lane in self._lanes for item in lane.items if not item.future.done()
        )

    def _take_batch(self) -> tuple[_Lane, list[_Pending]]:
        """The next batch and its lane: the lane whose turn it is when both have work (else
        the one that has), or the other when all of the first's requests were dropped."""
        first, second = self._interactive, self._bulk
        if (self._bulk_turn and first.items and second.items) or not first.items:
            first, second = second, first
        self._bulk_turn = first is self._interactive and bool(second.items)
        batch = self._take_from(first)
        return (first, batch) if batch else (second, self._take_from(second))

    def _take_from(self, lane: _Lane) -> list[_Pending]:
        """Up to ``max_batch_size`` instances of compatible requests of ``lane``, oldest first.

        Requests already answered (timed out, cancelled) or past their deadline are dropped;
        requests of another shape stay queued for the next batch.
        """
        batch: list[_Pending] = []
        kept: deque[_Pending] = deque()
        total = 0
        signature = None
        # A request whose deadline comes before a model call would end is not run: its answer
        # would come too late, and the call would delay every request behind it.
        cutoff = time.monotonic() + lane.call_time_s
        queue = lane.items
        while queue:
            item = queue.popleft()
            if item.future.done():
                continue
            if item.deadline <= cutoff:
                metrics.REJECTED.labels(self.name, "deadline").inc()
                item.future.set_exception(
                    DeadlineExceededError(
                        f"model '{self.name}': the request's deadline would pass before its "
                        "model call ends; not run"
                    )
                )
                continue
            if signature is None:
                signature = item.signature()
            elif total + item.size > self.max_batch_size or item.signature() != signature:
                kept.append(item)
                continue
            batch.append(item)
            total += item.size
            if total >= self.max_batch_size:
                break
        kept.extend(queue)
        lane.items = kept
        lane.queued = sum(item.size for item in kept)
        return batch

    async def _execute(
        self, loop: asyncio.AbstractEventLoop, lane: _Lane, batch: list[_Pending]
    ) -> None:
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = {
                k: np.concatenate([item.inputs[k] for item in batch]) for k in batch[0].inputs
            }
        total = sum(item.size for item in batch)
        try:
            outputs, elapsed = await loop.run_in_executor(
                self._executor, self._timed_call, inputs, total, lane
            )
        except Exception as exc:
            if len(batch) > 1:
                # Isolate the culprit: each request of the failed batch runs on its own.
                for item in batch:
                    if not item.future.done():
                        await self._execute(loop, lane, [item])
                return
            self._fail(batch[0], exc)
            return
        stats = self.stats
        stats.compute_infer.add(elapsed, len(batch))
        stats.inference_count += total
        stats.execution_count += 1
        stats.last_inference_ms = int(time.time() * 1000)
        stats.batches.setdefault(total, Duration()).add(elapsed)
        offset = 0
        for item in batch:
            part = {k: _slice(v, offset, item.size, total) for k, v in outputs.items()}
            offset += item.size
            if not item.future.done():
                item.future.set_result(part)

    def _timed_call(
        self, inputs: Arrays, total: int, lane: _Lane
    ) -> tuple[Mapping[str, np.ndarray], float]:
        """The model's outputs and the seconds the call took (one measurement for the lane's
        moving average, the Prometheus histogram and the Triton statistics)."""
        start = time.perf_counter()
        outputs = self.call(inputs)
        elapsed = time.perf_counter() - start
        lane.call_time_s += (elapsed - lane.call_time_s) * 0.2
        self._inference_time.observe(elapsed)
        self._batch_size.observe(total)
        return outputs, elapsed

    def _fail(self, item: _Pending, exc: Exception) -> None:
        if item.future.done():
            return
        if not isinstance(exc, ServingError):
            logger.error("model '%s' call failed: %s", self.name, exc)
            exc = InferenceError(f"model '{self.name}' failed on this input: {exc}")
        item.future.set_exception(exc)


def _slice(value: np.ndarray, offset: int, size: int, total: int) -> np.ndarray:
    """This request's rows of a batched output (outputs without a batch dim go to everyone)."""
    if value.ndim and value.shape[0] == total:
        return value[offset : offset + size]
    return value
