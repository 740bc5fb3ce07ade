"""circuitBreaker: stop sending requests to a failing service for a while.

The breaker watches the requests it lets through (status and time to the response head; for
a WebSocket, the time to the 101, not the session) in rolling windows, and every
``checkPeriod`` (default 100ms) evaluates ``expression`` over them, e.g.
``NetworkErrorRatio() > 0.30 || LatencyAtQuantileMS(50.0) > 100``. Functions:

- ``NetworkErrorRatio()``: share of responses that were 502 or 504 (last 10s);
- ``ResponseCodeRatio(a, b, c, d)``: count of codes in [a, b) over count of codes in [c, d);
- ``LatencyAtQuantileMS(q)``: latency in ms at quantile q (percent) over the last minute;
- ``RequestThreshold()``: number of requests in the last 10s.

States: *standby* (all requests pass) → *tripped* when the expression holds: every request is
answered ``responseCode`` (default 503) for ``fallbackDuration`` (10s) → *recovering* for
``recoveryDuration`` (10s), letting a share of requests through that grows linearly to one
half → *standby* at the end, unless the expression holds again (tripped again).
"""

from __future__ import annotations

import time

from wsgate.config.dynamic import CircuitBreaker
from wsgate.middlewares.base import (
    PASS,
    Answer,
    Clock,
    Decision,
    HeaderList,
    Middleware,
    RequestContext,
    text_answer,
)
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.predicate import Function, PredicateError, compile_predicate
from wsgate.middlewares.rolling import RoundTripMetrics

__all__ = ["FUNCTIONS", "CircuitBreakerMiddleware", "RatioController"]

STANDBY = "standby"
TRIPPED = "tripped"
RECOVERING = "recovering"

FUNCTIONS = {
    "NetworkErrorRatio": Function((), "float", lambda m: m.network_error_ratio()),
    "ResponseCodeRatio": Function(("int", "int", "int", "int"), "float",
                                  lambda m, a, b, c, d: m.response_code_ratio(a, b, c, d)),
    "LatencyAtQuantileMS": Function(("float",), "int",
                                    lambda m, q: m.latency_at_quantile_ms(q)),
    "RequestThreshold": Function((), "int", lambda m: m.total_count()),
}


class RatioController:
    """Lets through a share of requests that grows from 0 to 1/2 over ``duration``."""

    __slots__ = ("allowed", "denied", "duration", "start")

    def __init__(self, start: float, duration: float) -> None:
        self.start = start
        self.duration = duration
        self.allowed = 0
        self.denied = 0

    def target(self, now: float) -> float:
        return 0.5 * (now - self.start) / self.duration if self.duration > 0 else 0.5

    def allow(self, now: float) -> bool:
        if (self.allowed + 1) / (self.allowed + self.denied + 1) < self.target(now):
            self.allowed += 1
            return True
        self.denied += 1
        return False


class CircuitBreakerMiddleware(Middleware):
    kind = "circuitBreaker"
    wants_response = True

    def __init__(self, name: str, config: CircuitBreaker, *,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(name)
        try:
            self.condition = compile_predicate(config.expression, FUNCTIONS)
        except PredicateError as exc:
            raise MiddlewareError(name, "circuitBreaker.expression", str(exc)) from None
        code = config.response_code
        if not 100 <= code <= 999:
            raise MiddlewareError(name, "circuitBreaker.responseCode",
                                  f"invalid HTTP status code {code}")
        self.expression = config.expression
        self.clock = clock
        self.check_period = float(config.check_period) if config.check_period > 0 else 0.1
        self.fallback_duration = (float(config.fallback_duration)
                                  if config.fallback_duration > 0 else 10.0)
        self.recovery_duration = (float(config.recovery_duration)
                                  if config.recovery_duration > 0 else 10.0)
        self.fallback: Answer = text_answer(code)
        self.metrics = RoundTripMetrics(clock)
        self.state = STANDBY
        self.until = 0.0
        self.next_check = float("-inf")
        self.ratio: RatioController | None = None

    def _use_fallback(self) -> bool:
        if self.state == STANDBY:
            return False
        now = self.clock()
        if self.state == TRIPPED:
            if now < self.until:
                return True
            self.state = RECOVERING
            self.until = now + self.recovery_duration
            self.ratio = RatioController(now, self.recovery_duration)
        if now > self.until:
            self.state = STANDBY
            return False
        assert self.ratio is not None
        return not self.ratio.allow(now)

    def on_request(self, ctx: RequestContext) -> Decision:
        if self._use_fallback():
            return self.fallback
        ctx.notes[self] = self.clock()
        return PASS

    def on_response(self, ctx: RequestContext, status: int, headers: HeaderList) -> HeaderList:
        start = ctx.notes.pop(self, None)
        if start is not None:
            self.record(status, self.clock() - start)
        return headers

    def record(self, status: int, seconds: float) -> None:
        """Count one response and maybe trip (also usable directly by the data path)."""
        self.metrics.record(status, seconds)
        now = self.clock()
        if not now > self.next_check:
            return
        self.next_check = now + self.check_period
        if self.state == TRIPPED or not self.condition(self.metrics):
            return
        self.state = TRIPPED
        self.until = now + self.fallback_duration
        self.metrics.reset()
