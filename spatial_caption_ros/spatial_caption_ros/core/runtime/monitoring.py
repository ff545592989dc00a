"""Counters and timing statistics a stage reports in diagnostics (ROS-free)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
import math
import threading
import time


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = now - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class TimingStats:
    """Recent per-stage timings (milliseconds): last value, mean and max over a window."""

    def __init__(self, window: int = 100) -> None:
        self._values: dict[str, deque[float]] = {}
        self._window = window
        self._lock = threading.Lock()

    def add(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            for key, value in timings_ms.items():
                self._values.setdefault(key, deque(maxlen=self._window)).append(float(value))

    def summary(self) -> dict[str, tuple[float, float, float]]:
        """Stage -> (last, mean, max)."""
        with self._lock:
            return {k: (v[-1], sum(v) / len(v), max(v)) for k, v in self._values.items() if v}


@dataclass
class StageCounters:
    """What happened to a stage's inputs; the totals add up, so nothing goes unaccounted.

    Every message of the main (latest-only) input is received, then processed, dropped as
    stale (replaced in the one-message slot), rejected or failed; until then it is in flight
    (at most the one in the slot and the one being processed). `in_flight` is that one formula
    (diagnostics, soak and tests all read it). Rejections and errors that are not about a
    main-input message (a side input such as camera_info, a file of the image source) are
    counted and reported, but kept out of it (`main_input=False`).
    """

    received: int = 0
    processed: int = 0
    dropped_stale: int = 0
    rejected: Counter = field(default_factory=Counter)     # reason -> count
    errors: Counter = field(default_factory=Counter)       # kind -> count
    input_rejected: int = 0      # of `rejected`: main-input messages
    input_errors: int = 0        # of `errors`: main-input messages
    # topic -> messages a publisher sent that never reached the callback: a newer one replaced
    # them in the middleware's newest-only history first (known from sequence-number gaps)
    superseded: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reject(self, reason: str, main_input: bool = True) -> None:
        with self.lock:
            self.rejected[reason] += 1
            self.input_rejected += main_input

    def error(self, kind: str, main_input: bool = True) -> None:
        with self.lock:
            self.errors[kind] += 1
            self.input_errors += main_input

    @property
    def finished(self) -> int:
        """Main-input messages done with: processed, dropped as stale, rejected or failed."""
        return self.processed + self.dropped_stale + self.input_rejected + self.input_errors

    @property
    def in_flight(self) -> int:
        """Main-input messages received and not finished yet (waiting or being processed)."""
        return self.received - self.finished

    def supersede(self, topic: str, count: int) -> None:
        with self.lock:
            self.superseded[topic] += count

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            out = {'received': self.received, 'processed': self.processed,
                   'dropped_stale': self.dropped_stale,
                   'rejected': sum(self.rejected.values()), 'errors': sum(self.errors.values()),
                   'superseded': sum(self.superseded.values()), 'in_flight': self.in_flight}
            out.update({f'rejected.{k}': v for k, v in self.rejected.items()})
            out.update({f'errors.{k}': v for k, v in self.errors.items()})
            out.update({f'superseded.{k}': v for k, v in self.superseded.items()})
            return out


class SequenceGaps:
    """Counts messages lost between a publisher and a callback from sequence-number gaps.

    Each publisher numbers its messages 1, 2, 3...; a jump from n to n + k means k - 1 messages
    were replaced in a newest-only history before the callback took them. A publisher that
    restarts (a new id, or numbers going back) starts a new count. The first message seen from
    a publisher is the baseline: what it sent before may predate this subscription.
    """

    # Publishers remembered per topic; more is a node storm, and forgetting one only loses the
    # gap count of its next message.
    MAX_PUBLISHERS = 64

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def gap(self, publisher: bytes, sequence: int | None) -> int:
        """Messages missed from `publisher` before the one numbered `sequence`."""
        if not sequence or sequence <= 0:
            return 0
        last = self._last.get(publisher)
        if len(self._last) >= self.MAX_PUBLISHERS and last is None:
            self._last.clear()
        self._last[publisher] = sequence
        if last is None or sequence <= last:
            return 0
        return sequence - last - 1


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank q-th percentile (q in 0..100) of `values`; NaN when there are none.

    Nearest rank: the smallest value with at least q % of the values at or below it, i.e. the
    ceil(q/100 * n)-th smallest (the first for q = 0). Always one of the values, never an
    interpolation; the one rule of every reported percentile (soak, evaluations, benchmarks).
    """
    ordered = sorted(values)
    if not ordered:
        return float('nan')
    rank = math.ceil(q / 100.0 * len(ordered) - 1e-9)   # 0.9 * 10 is 9.000000000000002
    return ordered[min(len(ordered), max(1, rank)) - 1]
