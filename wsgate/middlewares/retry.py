"""retry: send a request again when the service could not be reached (or answered a
listed status), with exponential backoff.

This middleware decides nothing on the request itself: the data path asks it, after each
attempt, whether to try again (:meth:`RetryMiddleware.should_retry`) and how long to wait
(:meth:`RetryMiddleware.backoff`). Traefik's rules are kept:

- at most ``attempts`` attempts in all (``attempts`` must be positive);
- a network error is retried only if the request had not started to be written to the
  server (a dial failure), unless ``disableRetryOnNetworkError``;
- a status in ``status`` (ranges such as ``500-599``) is retried for idempotent methods (not
  POST, PATCH, LOCK) unless ``retryNonIdempotentMethod``, and only when the body could be
  kept for a replay (at most ``maxRequestBodyBytes``, default 2 MiB);
- nothing is retried once ``timeout`` has passed since the first attempt, and never after a
  101: an upgraded connection is final;
- waits grow from ``initialInterval`` so that the last one is about twice the first (each
  randomised by ±50%); no ``initialInterval``: retry at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from wsgate.config.dynamic import Retry
from wsgate.middlewares.base import Middleware
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.status_ranges import StatusRanges, parse_status_ranges

__all__ = ["NON_IDEMPOTENT", "RetryMiddleware"]

NON_IDEMPOTENT = frozenset({"POST", "PATCH", "LOCK"})
_RANDOMIZATION = 0.5
_MAX_INTERVAL = 60.0
_MAX_ELAPSED = 15 * 60.0


class RetryMiddleware(Middleware):
    kind = "retry"

    def __init__(self, name: str, config: Retry) -> None:
        super().__init__(name)
        if not config.status and config.disable_retry_on_network_error:
            raise MiddlewareError(name, "retry.status", "retry middleware requires at least "
                                  "HTTP status codes or retry on network errors")
        if config.attempts <= 0:
            raise MiddlewareError(name, "retry.attempts",
                                  f"incorrect (or empty) value for attempts ({config.attempts})")
        self.attempts = config.attempts
        self.initial_interval = float(config.initial_interval)
        self.timeout = float(config.timeout)
        self.max_request_body_bytes = config.max_request_body_bytes
        self.retry_on_network_error = not config.disable_retry_on_network_error
        self.retry_non_idempotent = config.retry_non_idempotent_method
        self.status: StatusRanges = parse_status_ranges(name, "retry.status", config.status)

    def retries_status_for(self, method: str) -> bool:
        """Whether a status can make ``method`` retried (and its body must be kept)."""
        return bool(self.status) and (self.retry_non_idempotent
                                      or method not in NON_IDEMPOTENT)

    def should_retry(self, *, attempt: int, method: str, elapsed: float,
                     status: int | None = None, network_error: bool = False,
                     request_sent: bool = False, body_replayable: bool = True) -> bool:
        """Whether attempt number ``attempt`` (1 for the first) is followed by another.

        Give ``status`` for a response head, or ``network_error`` (with ``request_sent``:
        whether any request byte reached the server) when there was none.
        """
        if attempt >= self.attempts:
            return False
        if self.timeout > 0 and elapsed >= self.timeout:
            return False
        if network_error:
            return self.retry_on_network_error and not request_sent
        if status is None or status == 101 or not body_replayable:
            return False
        return self.retries_status_for(method) and self.status.contains(status)

    def backoff(self, rng: Callable[[], float] = random.random) -> Iterator[float]:
        """The waits before attempts 2, 3, ... (seconds)."""
        if self.attempts < 2 or self.initial_interval <= 0:
            while True:
                yield 0.0
        multiplier = 2 ** (1 / (self.attempts - 1))
        current = self.initial_interval
        elapsed = 0.0
        while True:
            delta = _RANDOMIZATION * current
            low = current - delta
            wait = low + rng() * (current + delta - low)
            if current >= _MAX_INTERVAL / multiplier:
                current = _MAX_INTERVAL
            else:
                current *= multiplier
            elapsed += wait
            if elapsed > _MAX_ELAPSED:
                return
            yield wait
