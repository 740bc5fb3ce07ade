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

A second SIGTERM or SIGINT does not shorten the drain (``SignalsWhileStopping``).
"""

from __future__ import annotations

import functools
import signal
from types import FrameType
from typing import Any, Callable, Iterable

from twisted.internet import defer, task
from twisted.logger import Logger

log = Logger()

#: How often the drain looks at what is left (connections close by themselves meanwhile).
_POLL = 0.05


#: Reactor turns the drain waits, after cutting what is left, for the losses to be reported.
_ABORT_TURNS = 5


def _connections(count: int) -> str:
    return f"{count} connection" if count == 1 else f"{count} connections"


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
        #: Where the drain is, for the line logged when a signal comes during it.
        self.phase = "not started"
        self.deadline: float | None = None

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self.on_phase(phase)

    def describe(self) -> str:
        """Where the drain is, in words, for an operator who signals again."""
        left = _connections(self.open_connections())
        if self.phase == "accept-grace":
            return (f"already draining: still accepting for requestAcceptGraceTimeout "
                    f"({self.accept_grace:g}s), then up to {self.grace:g}s (graceTimeOut) "
                    f"for {left}")
        if self.phase == "draining" and self.deadline is not None:
            remaining = max(0.0, self.deadline - self.clock.seconds())
            return f"already draining: {left} left, at most {remaining:.1f}s more (graceTimeOut)"
        if self.phase == "done":
            return "the drain is over, exiting"
        return f"already draining: up to {self.grace:g}s (graceTimeOut) for {left}"

    def open_connections(self) -> int:
        """Client connections still open, plus WebSocket sessions whose client is gone but
        whose backend connection is still closing (their access log line and metrics come
        when that ends, and must come before the log is flushed)."""
        return sum(len(ep.connections) for ep in self.entrypoints) + \
            sum(1 for relay in self._relays() if relay.client_gone)

    def _relays(self) -> list[Any]:
        gateways = {id(ep.gateway): ep.gateway for ep in self.entrypoints}
        return [relay for gw in gateways.values() for relay in gw.open_relays]

    @defer.inlineCallbacks
    def run(self) -> Any:
        if self.accept_grace > 0:
            log.info("shutting down: still accepting for {s:g}s (requestAcceptGraceTimeout)",
                     s=self.accept_grace)
            self._enter("accept-grace")
            yield task.deferLater(self.clock, self.accept_grace, lambda: None)
        self._enter("stop-listening")
        yield defer.maybeDeferred(self.stop_listening)
        count = self.open_connections()
        log.info("shutting down: {n} connections to drain within {s:g}s (graceTimeOut)",
                 n=count, s=self.grace)
        self._enter("draining")
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
        self.deadline = deadline = self.clock.seconds() + self.grace
        while self.open_connections() and self.clock.seconds() < deadline:
            yield task.deferLater(self.clock, _POLL, lambda: None)
        left = self.open_connections()
        if left:
            log.warn("shutting down: graceTimeOut reached; closing {n} connections hard",
                     n=left)
            for ep in self.entrypoints:
                for conn in list(ep.connections):
                    conn.transport.abortConnection()
            for relay in self._relays():
                relay.abort()
            # Aborted connections report their loss on the next reactor turns; their sessions'
            # log lines and metrics come then.
            for _ in range(_ABORT_TURNS):
                if not self.open_connections():
                    break
                yield task.deferLater(self.clock, 0, lambda: None)
        self._enter("done")
        log.info("shutdown complete")


#: The signals whose reactor handlers stop the reactor, with the reactor method handling each.
_STOP_SIGNALS = ((signal.SIGTERM, "sigTerm"), (signal.SIGINT, "sigInt"))


class SignalsWhileStopping:
    """Twisted's SIGTERM and SIGINT handlers call ``reactor.stop()`` for every signal; once the
    reactor is stopping that raises ReactorNotRunning, which the reactor logs as a traceback
    in the middle of the drain. The first signal still goes to Twisted's handler (it stops the
    reactor and sets the exit signal twistd re-raises); every later one is one log line.

    Only the reactor's own handlers are wrapped: a handler the application installed, or none
    (``installSignalHandlers=False``), is left as it is.
    """

    def __init__(self, reactor: Any, describe: Callable[[], str]) -> None:
        self.reactor = reactor
        self.describe = describe
        #: Set by the first signal, or when the reactor starts stopping for another reason.
        self.stopping = False
        self.wrapped: list[signal.Signals] = []

    def install(self) -> None:
        """Wrap the reactor's handlers; call it once the reactor runs (it installs them then)."""
        for signum, method in _STOP_SIGNALS:
            own = getattr(self.reactor, method, None)
            if own is None or signal.getsignal(signum) != own:
                continue
            signal.signal(signum, functools.partial(self.received, own))
            self.wrapped.append(signum)
        if self.wrapped:
            self.reactor.addSystemEventTrigger("before", "shutdown", self._reactor_stopping)

    def _reactor_stopping(self) -> None:
        self.stopping = True

    def received(self, own: Callable[[int, FrameType | None], None], number: int,
                 frame: FrameType | None) -> None:
        """The signal handler: the first signal to Twisted's own, the later ones logged."""
        if not self.stopping:
            self.stopping = True
            own(number, frame)
            return
        # Logged from the reactor, not here: a signal handler can interrupt a log write.
        self.reactor.callFromThread(self._again, number)

    def _again(self, number: int) -> None:
        log.warn("Received {signal} while shutting down: {state}; a second signal does not "
                 "shorten the drain (SIGKILL stops at once)",
                 signal=signal.Signals(number).name, state=self.describe())
