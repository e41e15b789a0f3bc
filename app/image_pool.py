"""The threads that decode and fit uploaded pictures too large for the event loop, as a resource
with its own admission (TF Serving's batch queues and their deadlines, for decoding):

- **A job whose request's deadline has passed is skipped**, not run: under a flood of costly
  pictures, work for requests already answered 504 would otherwise take the threads from the
  ones that can still be answered (congestion collapse).
- **A request is refused at once (429 + ``Retry-After``) when the jobs ahead of it would take
  more than :data:`ADMISSION_SHARE` of its remaining deadline**, at the recent job time (a
  moving average): better than a 504 after waiting for it. An idle pool always admits.
- **The time a request spends here is reported** (``scope["state"]``) so that a model's
  adaptive concurrency cap (``app.concurrency``), which measures a request from its last body
  byte to its answer, leaves it out: a model's cap is about the model, and a flood of costly
  pictures must not shrink it for the small ones that never wait for these threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from app import metrics
from app.batching import ADMISSION_SHARE  # the jobs ahead may take as much as queued batches
from app.errors import DeadlineExceededError, QueueFullError

T = TypeVar("T")

SMOOTHING = 0.2  # weight of the latest job in the moving average of job times
POOL_SECONDS_KEY = "serving.image_pool_seconds"  # in scope["state"]: time spent here


class ImagePool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="image")
        self.jobs = 0  # submitted and not finished (queued or running)
        self.job_time_s = 0.0  # moving average of the jobs run (0: none yet)

    async def run(
        self,
        work: Callable[..., T],
        *args: Any,
        model: str,
        deadline: float,
        state: dict | None = None,
    ) -> T:
        """``work(*args)`` for a request to ``model``, in a thread, answered by ``deadline``
        (``time.monotonic()``): :class:`QueueFullError` at once when it could not be;
        :class:`DeadlineExceededError` when it was not. The seconds spent are added to
        ``state[POOL_SECONDS_KEY]``."""
        submitted = time.monotonic()
        remaining = deadline - submitted
        self.check_room(model, remaining)
        self.jobs += 1
        loop = asyncio.get_running_loop()
        future = self.executor.submit(self._job, work, args, deadline)
        future.add_done_callback(lambda done: self._finished_soon(loop, done))
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                result, _ = await asyncio.wrap_future(future)
                return result
        except (TimeoutError, _Skipped):
            raise DeadlineExceededError(
                "the images could not be decoded within the request's deadline"
            ) from None
        finally:
            if state is not None:
                spent = time.monotonic() - submitted
                state[POOL_SECONDS_KEY] = state.get(POOL_SECONDS_KEY, 0.0) + spent

    def check_room(self, model: str, remaining_s: float) -> None:
        """:class:`QueueFullError` (counted for ``model``) when the jobs ahead would take more than
        :data:`ADMISSION_SHARE` of ``remaining_s`` (at the recent job time; an idle pool, or
        one that has run nothing yet, admits)."""
        if not (self.jobs and self.job_time_s):
            return
        ahead_s = (self.jobs // self.workers + 1) * self.job_time_s
        if ahead_s > remaining_s * ADMISSION_SHARE:
            metrics.REJECTED.labels(model, "image_pool_full").inc()
            raise QueueFullError(
                f"the pictures being decoded ({self.jobs} requests' at about "
                f"{self.job_time_s * 1000:.0f} ms each on {self.workers} image_workers) would "
                f"take {ahead_s * 1000:.0f} ms, too much of the request's "
                f"{max(remaining_s, 0) * 1000:.0f} ms deadline; retry later",
                retry_after_s=max(1, round(ahead_s)),
            )

    @staticmethod
    def _job(work: Callable[..., T], args: tuple, deadline: float) -> tuple[T, float]:
        if time.monotonic() >= deadline:
            raise _Skipped  # its request has been answered 504 already
        started = time.perf_counter()
        return work(*args), time.perf_counter() - started

    def _finished_soon(self, loop: asyncio.AbstractEventLoop, future: Future) -> None:
        """In the job's thread: count it finished on the event loop (gone at shutdown)."""
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finished, future)

    def _finished(self, future: Future) -> None:
        """On the event loop, when a job has run or been skipped (counted until then: a job
        whose request gave up still holds a thread while it runs)."""
        self.jobs -= 1
        if future.cancelled() or future.exception() is not None:
            return
        _, took_s = future.result()
        average = self.job_time_s
        self.job_time_s = took_s if not average else average + SMOOTHING * (took_s - average)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class _Skipped(Exception):
    """A job not run: its deadline had passed when a thread came to it."""
