"""Rolling-window metrics for the circuit breaker, as oxy's memmetrics keeps them.

- counters (requests, network errors, per status code) over 10 one-second buckets;
- latencies in an HDR-style histogram (1 µs to 1 hour, two significant digits) over six
  ten-second buckets, queried by quantile.

Time comes from an injected clock, so a test moves time instead of sleeping.
"""

from __future__ import annotations

from wsgate.middlewares.base import Clock

__all__ = ["LatencyHistogram", "RollingCounter", "RoundTripMetrics"]

COUNTER_BUCKETS = 10
COUNTER_RESOLUTION = 1.0
HIST_BUCKETS = 6
HIST_PERIOD = 10.0
HIST_MAX_US = 3_600_000_000
# Two significant digits: 256 sub-buckets, the upper half of each doubling of values.
_SUB_BUCKET_HALF_MAGNITUDE = 7
_SUB_BUCKET_HALF = 1 << _SUB_BUCKET_HALF_MAGNITUDE
_SUB_BUCKET_MASK = (1 << (_SUB_BUCKET_HALF_MAGNITUDE + 1)) - 1


class RollingCounter:
    """A count over the last ``buckets`` × ``resolution`` seconds."""

    __slots__ = ("_counts", "_slots", "clock", "resolution")

    def __init__(self, clock: Clock, buckets: int = COUNTER_BUCKETS,
                 resolution: float = COUNTER_RESOLUTION) -> None:
        self.clock = clock
        self.resolution = resolution
        self._slots = [-1] * buckets
        self._counts = [0] * buckets

    def inc(self, amount: int = 1) -> None:
        period = int(self.clock() // self.resolution)
        i = period % len(self._slots)
        if self._slots[i] != period:
            self._slots[i] = period
            self._counts[i] = 0
        self._counts[i] += amount

    def count(self) -> int:
        period = int(self.clock() // self.resolution)
        oldest = period - len(self._slots) + 1
        return sum(c for s, c in zip(self._slots, self._counts) if s >= oldest)

    def reset(self) -> None:
        self._slots = [-1] * len(self._slots)
        self._counts = [0] * len(self._counts)


def _bucket_of(value: int) -> tuple[int, int]:
    bucket = (value | _SUB_BUCKET_MASK).bit_length() - (_SUB_BUCKET_HALF_MAGNITUDE + 1)
    return bucket, value >> bucket


def _highest_equivalent(value: int) -> int:
    bucket, sub = _bucket_of(value)
    lowest = sub << bucket
    return lowest + (1 << bucket) - 1


class LatencyHistogram:
    """Latencies in microseconds over the last ``buckets`` × ``period`` seconds."""

    __slots__ = ("_counts", "_slots", "clock", "period")

    def __init__(self, clock: Clock, buckets: int = HIST_BUCKETS,
                 period: float = HIST_PERIOD) -> None:
        self.clock = clock
        self.period = period
        self._slots = [-1] * buckets
        self._counts: list[dict[int, int]] = [{} for _ in range(buckets)]

    def record(self, microseconds: int) -> None:
        if microseconds < 0 or microseconds > HIST_MAX_US:
            return
        period = int(self.clock() // self.period)
        i = period % len(self._slots)
        if self._slots[i] != period:
            self._slots[i] = period
            self._counts[i] = {}
        key = _highest_equivalent(microseconds)
        counts = self._counts[i]
        counts[key] = counts.get(key, 0) + 1

    def quantile(self, q: float) -> int:
        """The latency (µs) at quantile ``q`` in percent (50.0: the median); 0 if empty."""
        period = int(self.clock() // self.period)
        oldest = period - len(self._slots) + 1
        merged: dict[int, int] = {}
        for slot, counts in zip(self._slots, self._counts):
            if slot >= oldest:
                for value, n in counts.items():
                    merged[value] = merged.get(value, 0) + n
        total = sum(merged.values())
        if total == 0:
            return 0
        wanted = max(1, int(min(q, 100.0) / 100.0 * total + 0.5))
        seen = 0
        for value in sorted(merged):
            seen += merged[value]
            if seen >= wanted:
                return value
        return max(merged)  # pragma: no cover - seen reaches total

    def reset(self) -> None:
        self._slots = [-1] * len(self._slots)
        self._counts = [{} for _ in self._slots]


class RoundTripMetrics:
    """Requests, network errors (502 and 504), status codes and latencies."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.total = RollingCounter(clock)
        self.network_errors = RollingCounter(clock)
        self.codes: dict[int, RollingCounter] = {}
        self.latency = LatencyHistogram(clock)

    def record(self, status: int, seconds: float) -> None:
        self.total.inc()
        if status in (502, 504):
            self.network_errors.inc()
        counter = self.codes.get(status)
        if counter is None:
            counter = self.codes[status] = RollingCounter(self.clock)
        counter.inc()
        self.latency.record(int(seconds * 1_000_000))

    def network_error_ratio(self) -> float:
        total = self.total.count()
        return self.network_errors.count() / total if total else 0.0

    def response_code_ratio(self, start_a: int, end_a: int, start_b: int, end_b: int) -> float:
        """count(codes in [start_a, end_a)) / count(codes in [start_b, end_b)); 0 if the
        second is 0."""
        a = b = 0
        for code, counter in self.codes.items():
            n = counter.count()
            if start_a <= code < end_a:
                a += n
            if start_b <= code < end_b:
                b += n
        return a / b if b else 0.0

    def latency_at_quantile_ms(self, q: float) -> int:
        return self.latency.quantile(q) // 1000

    def total_count(self) -> int:
        return self.total.count()

    def reset(self) -> None:
        self.total.reset()
        self.network_errors.reset()
        self.codes = {}
        self.latency.reset()
