"""Graceful shutdown: stop taking work, close WebSockets properly, let requests finish.

The order follows Traefik's lifeCycle, with one thing Traefik does not do: every live
WebSocket gets a close frame (1001, going away) at a frame boundary, to the client and to the
backend, instead of a TCP cut that both peers see as 1006.

1. /ping answers its terminatingStatusCode (the caller flips it before draining);
2. requestAcceptGraceTimeout passes while the listeners still accept (load balancers in front
   notice the failing /ping and stop sending);
3. the listeners stop; idle keep-alive connections close; WebSockets get 1001; requests in
   flight finish and their connections then close;
4. when every connection is gone, or lifeCycle.graceTimeOut has passed, the rest are aborted.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet import defer, task
from twisted.logger import Logger

log = Logger()

#: How often the drain looks at what is left (connections close by themselves meanwhile).
_POLL = 0.05


class Drain:
    """One shutdown of a set of entryPoints."""

    def __init__(self, clock: Any, entrypoints: Iterable[Any], *, accept_grace: float,
                 grace: float, stop_listening: Callable[[], defer.Deferred[Any] | None],
                 on_phase: Callable[[str], None] | None = None) -> None:
        self.clock = clock
        self.entrypoints = list(entrypoints)
        self.accept_grace = max(0.0, accept_grace)
        self.grace = max(0.0, grace)
        self.stop_listening = stop_listening
        self.on_phase = on_phase or (lambda phase: None)

    def open_connections(self) -> int:
        return sum(len(ep.connections) for ep in self.entrypoints)

    @defer.inlineCallbacks
    def run(self) -> Any:
        if self.accept_grace > 0:
            log.info("shutting down: still accepting for {s:g}s (requestAcceptGraceTimeout)",
                     s=self.accept_grace)
            self.on_phase("accept-grace")
            yield task.deferLater(self.clock, self.accept_grace, lambda: None)
        self.on_phase("stop-listening")
        yield defer.maybeDeferred(self.stop_listening)
        count = self.open_connections()
        log.info("shutting down: {n} connections to drain within {s:g}s (graceTimeOut)",
                 n=count, s=self.grace)
        self.on_phase("draining")
        for ep in self.entrypoints:
            for conn in list(ep.connections):
                try:
                    conn.drain()
                except Exception:
                    # One connection that cannot be drained must not leave the others
                    # without their close frames: this one is cut now.
                    log.failure("shutting down: draining a connection on {ep} failed; "
                                "closing it", ep=getattr(ep, "name", "?"))
                    conn.transport.abortConnection()
        deadline = self.clock.seconds() + self.grace
        while self.open_connections() and self.clock.seconds() < deadline:
            yield task.deferLater(self.clock, _POLL, lambda: None)
        left = self.open_connections()
        if left:
            log.warn("shutting down: graceTimeOut reached; closing {n} connections hard",
                     n=left)
            for ep in self.entrypoints:
                for conn in list(ep.connections):
                    conn.transport.abortConnection()
        self.on_phase("done")
        log.info("shutdown complete")
