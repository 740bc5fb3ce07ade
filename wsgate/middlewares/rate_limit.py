"""rateLimit: a token bucket per source (Traefik's, i.e. golang.org/x/time/rate's).

Each source (by default the peer address; see ``sourceCriterion``) has a bucket of ``burst``
tokens (default 1) refilled at ``average / period`` tokens per second (period default 1s;
``average: 0`` means no limit). A request takes one token. When the bucket is empty the request
may wait for the next token if that is close (at most 1/(2·rate), or 0.5s for rates under
1/s): the decision is then a :class:`~wsgate.middlewares.base.Sleep`. Farther than that it is
answered 429 with ``Retry-After`` (whole seconds, rounded up) and ``X-Retry-In`` (Go duration).

A WebSocket counts once, at its handshake. A bucket unused for 2 seconds (1 + 1/rate seconds
for rates under 1/s) is dropped, so its source starts again with a full bucket, as in Traefik;
at most ``max_sources`` are kept (the least recently used goes first), so memory stays bounded
whatever the number of clients. Each wsgate worker process has its own buckets.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from wsgate.config.dynamic import RateLimit
from wsgate.middlewares.base import (
    PASS,
    Clock,
    Decision,
    Defer,
    Middleware,
    RequestContext,
    Sleep,
    text_answer,
)
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import format_duration
from wsgate.middlewares.ipstrategy import build_source

__all__ = ["MAX_SOURCES", "RateLimitMiddleware"]

#: Traefik's bound on the number of sources tracked by one rate limiter.
MAX_SOURCES = 65536


class _Bucket:
    __slots__ = ("expires", "last", "tokens")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.last = now
        self.expires = now


def _resume_pass(_: object) -> Decision:
    return PASS


class RateLimitMiddleware(Middleware):
    kind = "rateLimit"

    def __init__(self, name: str, config: RateLimit, *, clock: Clock = time.monotonic,
                 max_sources: int = MAX_SOURCES) -> None:
        super().__init__(name)
        if config.redis is not None:
            raise MiddlewareError(name, "rateLimit.redis",
                                  "a Redis-backed rate limit is not supported by wsgate: "
                                  "remove redis to limit in memory")
        if config.period < 0:
            raise MiddlewareError(name, "rateLimit.period",
                                  f"negative value not valid for period: {config.period}s")
        if config.average < 0:
            raise MiddlewareError(name, "rateLimit.average", "average must not be negative")
        self.source = build_source(name, "rateLimit.sourceCriterion", config.source_criterion,
                                   default="ip")
        self.clock = clock
        self.burst = max(config.burst, 1)
        period = float(config.period) or 1.0
        self.rate = config.average / period if config.average > 0 else math.inf
        if self.rate < 1:
            self.max_delay = 0.5
        elif math.isinf(self.rate):
            self.max_delay = 0.0
        else:
            self.max_delay = (1_000_000_000 // (int(self.rate) * 2)) / 1e9
        ttl = 1
        if self.rate >= 1:
            ttl += 1
        elif self.rate > 0:
            ttl += int(1 / self.rate)
        self.ttl = float(ttl)
        self.max_sources = max_sources
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> _Bucket:
        buckets = self.buckets
        bucket = buckets.get(key)
        if bucket is None or bucket.expires < now:
            bucket = _Bucket(float(self.burst), now)
            buckets[key] = bucket
        buckets.move_to_end(key)
        bucket.expires = now + self.ttl
        # Least recently used first: drop the expired ones, then any over the bound.
        while buckets:
            first = next(iter(buckets.values()))
            if first.expires >= now and len(buckets) <= self.max_sources:
                break
            buckets.popitem(last=False)
        return bucket

    def on_request(self, ctx: RequestContext) -> Decision:
        if math.isinf(self.rate):
            return PASS
        now = self.clock()
        bucket = self._bucket(self.source(ctx), now)
        elapsed = max(0.0, now - bucket.last)
        tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.last = now
        if tokens >= 1:
            bucket.tokens = tokens - 1
            return PASS
        delay_ns = int((1 - tokens) / self.rate * 1e9)
        delay = delay_ns / 1e9
        if delay > self.max_delay:
            bucket.tokens = tokens  # the reservation is cancelled: nothing taken
            return text_answer(429, headers=(("Retry-After", str(math.ceil(delay))),
                                             ("X-Retry-In", format_duration(delay))))
        bucket.tokens = tokens - 1
        return Defer(Sleep(delay), _resume_pass)
