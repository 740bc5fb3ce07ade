"""buffering: read whole requests (and responses) before passing them on, with size limits
and an optional ``retryExpression``.

The decision part here refuses, with 413, a request whose Content-Length is above
``maxRequestBodyBytes``, has a chunked body read whole first (413 when it goes past that
size), and evaluates ``retryExpression`` (functions ``Attempts()``, ``ResponseCode()``,
``RequestMethod()``, ``IsNetworkError()``; e.g. ``IsNetworkError() && Attempts() < 2``) for
the data path, which owns the buffers. Upgrades are never buffered: a 101 passes as is.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsgate.config.dynamic import Buffering
from wsgate.middlewares.base import (
    PASS,
    BodyTooLarge,
    Decision,
    Defer,
    Middleware,
    ReadBody,
    RequestContext,
    text_answer,
)
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.predicate import Function, PredicateError, compile_predicate

__all__ = ["FUNCTIONS", "MAX_RETRY_ATTEMPTS", "BufferingMiddleware", "RetryState"]

#: oxy's bound on the retries of a buffering retryExpression.
MAX_RETRY_ATTEMPTS = 10


@dataclass(frozen=True)
class RetryState:
    method: str
    attempt: int
    status: int


FUNCTIONS = {
    "RequestMethod": Function((), "string", lambda s: s.method),
    "IsNetworkError": Function((), "bool", lambda s: s.status in (502, 504)),
    "Attempts": Function((), "int", lambda s: s.attempt),
    "ResponseCode": Function((), "int", lambda s: s.status),
}


class BufferingMiddleware(Middleware):
    kind = "buffering"

    def __init__(self, name: str, config: Buffering) -> None:
        super().__init__(name)
        self.config = config
        self.max_request_body_bytes = config.max_request_body_bytes
        self.mem_request_body_bytes = config.mem_request_body_bytes
        self.max_response_body_bytes = config.max_response_body_bytes
        self.mem_response_body_bytes = config.mem_response_body_bytes
        self.retry_condition = None
        if config.retry_expression:
            try:
                self.retry_condition = compile_predicate(config.retry_expression, FUNCTIONS)
            except PredicateError as exc:
                raise MiddlewareError(name, "buffering.retryExpression", str(exc)) from None
        self._too_large = text_answer(413)

    def on_request(self, ctx: RequestContext) -> Decision:
        limit = self.max_request_body_bytes
        if limit <= 0 or ctx.is_upgrade:
            return PASS
        if ctx.content_length is not None and ctx.content_length > limit:
            return self._too_large
        if ctx.chunked and ctx.body is None:
            # A chunked body tells its size only at its end: read it whole first.
            return Defer(ReadBody(limit), self._with_body)
        return PASS

    def _with_body(self, got: object) -> Decision:
        return self._too_large if isinstance(got, BodyTooLarge) else PASS

    def should_retry(self, *, method: str, attempt: int, status: int) -> bool:
        """After attempt number ``attempt`` answered ``status`` (502/504 for a network
        error), whether to send the buffered request again."""
        if self.retry_condition is None or attempt > MAX_RETRY_ATTEMPTS:
            return False
        return self.retry_condition(RetryState(method, attempt, status))
