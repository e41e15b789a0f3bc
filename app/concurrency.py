"""An adaptive cap on the requests a model version has admitted and not yet answered.

Why: the queue check (:meth:`app.batching.DynamicBatcher.check_room`) sees only requests that
have reached the queue, at the model's call time. In a burst many requests pass it at their
headers before any of them is queued, and the event loop's own time (reading, parsing,
answering) is not in the model's call time: they are admitted and then wait past their
deadline — a 504 after the work of a whole request. This cap counts each admitted request from
its headers to its last response byte, measures its latency from its last body byte (a slow
upload is the client's time) to its answer, and keeps their number where that latency stays
within a share of the deadline (a gradient limiter, like Netflix's concurrency-limits or Envoy's
adaptive concurrency filter): latency over the target shrinks the cap in proportion; latency
under it while the cap is reached lets the cap grow. With the default 5 s deadline it stays at
its maximum and changes nothing; with a 50 ms deadline under overload it admits what can be
answered in time. Each model version has two, one per admission lane (interactive and bulk
requests, ``app.admission.quick_admission``), each adapting to its own lane's latency.
"""

from __future__ import annotations

import time
from typing import Protocol

TARGET_SHARE = 0.4  # of the deadline: the mean latency aimed at (its tail must fit the rest)
WINDOW_S = 0.05  # seconds of latency samples per adjustment
MAX_GROWTH = 1.25  # per window, so that a burst after a quiet spell is not all admitted at once
MAX_SHRINK = 0.5


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class ConcurrencyLimit:
    """Admitted-and-unanswered requests of one model version, and their adaptive cap
    (published to ``gauge`` when it changes)."""

    def __init__(
        self,
        deadline_s: float,
        *,
        minimum: int = 4,
        maximum: int = 1024,
        gauge: _Gauge | None = None,
        bulk: bool = False,
    ) -> None:
        self.bulk = bulk  # the bulk lane's cap (else the interactive lane's)
        self.target_s = deadline_s * TARGET_SHARE
        self.minimum = minimum
        self.maximum = maximum
        self.gauge = gauge
        self.limit = float(maximum)
        if gauge is not None:
            gauge.set(self.limit)
        self.inflight = 0
        self._window_start = time.monotonic()
        self._latency_sum = 0.0
        self._inflight_sum = 0
        self._samples = 0
        self._reached = False  # the cap refused or was met in this window

    @property
    def full(self) -> bool:
        if self.inflight >= self.limit:
            self._reached = True
            return True
        return False

    def acquire(self) -> None:
        self.inflight += 1

    def release(self, latency_s: float | None) -> None:
        """One admitted request is over; ``latency_s`` from its last body byte to its answer
        (None: its connection was lost, no measurement)."""
        self.inflight -= 1
        if latency_s is None:
            return
        self._latency_sum += latency_s
        self._inflight_sum += self.inflight + 1
        self._samples += 1
        now = time.monotonic()
        if now - self._window_start >= WINDOW_S:
            self._adjust(self._latency_sum / self._samples, self._inflight_sum / self._samples)
            self._window_start = now
            self._latency_sum, self._inflight_sum, self._samples = 0.0, 0, 0
            self._reached = False

    def _adjust(self, mean_latency_s: float, mean_inflight: float) -> None:
        ratio = self.target_s / max(mean_latency_s, 1e-6)
        if ratio < 1:
            # Little's law: the concurrency that would have had the target latency.
            base = min(self.limit, mean_inflight)
            self.limit = max(float(self.minimum), base * max(MAX_SHRINK, ratio))
        elif self._reached:
            self.limit = min(float(self.maximum), self.limit * min(MAX_GROWTH, ratio) + 1)
        else:
            return
        if self.gauge is not None:
            self.gauge.set(round(self.limit))
