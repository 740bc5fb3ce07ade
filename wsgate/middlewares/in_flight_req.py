"""inFlightReq: at most ``amount`` requests at once per source; the next ones get 429.

The source is the request host by default (Traefik's default for this middleware; see
``sourceCriterion``). A slot is taken by ``on_request`` and given back by ``on_close``, which
the data path calls when the response is over or, for a WebSocket, when the connection
closes: an open WebSocket holds its slot for its whole life, so this caps concurrent
WebSockets per source. ``amount: 0`` rejects every request, as in Traefik.
"""

from __future__ import annotations

from wsgate.config.dynamic import InFlightReq
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext, text_answer
from wsgate.middlewares.ipstrategy import build_source

__all__ = ["InFlightReqMiddleware"]


class InFlightReqMiddleware(Middleware):
    kind = "inFlightReq"
    wants_close = True

    def __init__(self, name: str, config: InFlightReq) -> None:
        super().__init__(name)
        self.amount = config.amount
        if self.amount <= 0:
            self.warnings.append(f"amount is {self.amount}: every request is rejected with "
                                 "429, as in Traefik")
        self.source = build_source(name, "inFlightReq.sourceCriterion",
                                   config.source_criterion, default="host")
        self.counts: dict[str, int] = {}
        self._full = text_answer(429, f"max connections reached: {self.amount}")

    @property
    def in_flight(self) -> int:
        return sum(self.counts.values())

    def on_request(self, ctx: RequestContext) -> Decision:
        key = self.source(ctx)
        current = self.counts.get(key, 0)
        if current >= self.amount:
            return self._full
        self.counts[key] = current + 1
        ctx.notes[self] = key
        return PASS

    def on_close(self, ctx: RequestContext) -> None:
        key = ctx.notes.pop(self, None)
        if key is None:
            return
        left = self.counts.get(key, 0) - 1
        if left > 0:
            self.counts[key] = left
        else:
            self.counts.pop(key, None)
