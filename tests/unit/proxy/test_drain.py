"""The shutdown drain (wsgate.proxy.drain) on a fake clock: phases in order, one connection
whose drain fails does not keep the others from theirs, and a second stop signal is a log line
instead of a second ``reactor.stop()``."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from wsgate.proxy.drain import Drain, SignalsWhileStopping


class FakeTransport:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.conn.ep.connections.discard(self.conn)


class FakeConn:
    def __init__(self, ep: FakeEntryPoint, *, fails: bool = False) -> None:
        self.ep = ep
        self.fails = fails
        self.drained = False
        self.transport = FakeTransport(self)
        ep.connections.add(self)

    def drain(self) -> None:
        if self.fails:
            raise RuntimeError("cannot drain")
        self.drained = True
        self.ep.connections.discard(self)


class FakeEntryPoint:
    def __init__(self, name: str) -> None:
        self.name = name
        self.connections: set[Any] = set()
        self.gateway = FakeGateway()


def test_a_failing_connection_is_cut_and_the_others_drained() -> None:
    clock = Clock()
    ep = FakeEntryPoint("web")
    conns = [FakeConn(ep), FakeConn(ep, fails=True), FakeConn(ep)]
    phases: list[str] = []
    done = Drain(clock, [ep], accept_grace=1.0, grace=5.0, stop_listening=lambda: None,
                 on_phase=phases.append).run()
    assert phases == ["accept-grace"]
    clock.advance(1.0)
    assert phases == ["accept-grace", "stop-listening", "draining", "done"]
    assert done.called
    assert [c.drained for c in conns] == [True, False, True]
    assert conns[1].transport.aborted
    assert not ep.connections


def test_describe_follows_the_phases() -> None:
    clock = Clock()
    ep = FakeEntryPoint("web")
    conn = FakeConn(ep)
    conn.drain = lambda: None  # type: ignore[method-assign]  # a session slow to close
    drain = Drain(clock, [ep], accept_grace=2.0, grace=10.0, stop_listening=lambda: None)
    drain.run()
    assert drain.describe() == ("already draining: still accepting for "
                                "requestAcceptGraceTimeout (2s), then up to 10s (graceTimeOut) "
                                "for 1 connection")
    clock.advance(2.0)
    clock.advance(4.0)
    assert drain.describe() == ("already draining: 1 connection left, at most 6.0s more "
                                "(graceTimeOut)")
    ep.connections.discard(conn)
    clock.advance(0.05)
    assert drain.phase == "done"
    assert drain.describe() == "the drain is over, exiting"


class FakeReactor:
    """The parts of a reactor SignalsWhileStopping uses; its handlers record their calls."""

    def __init__(self) -> None:
        self.stops: list[int] = []
        self.from_thread: list[Callable[..., Any]] = []
        self.triggers: list[tuple[str, str, Callable[[], None]]] = []

    def sigTerm(self, number: int, frame: FrameType | None = None) -> None:
        self.stops.append(number)

    def sigInt(self, number: int, frame: FrameType | None = None) -> None:
        self.stops.append(number)

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.from_thread.append(lambda: f(*args))

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], None]) -> None:
        self.triggers.append((phase, event, f))


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> dict[int, Any]:
    """The process's signal handlers, as a dictionary the test owns (nothing is installed)."""
    table: dict[int, Any] = {}
    monkeypatch.setattr(signal, "getsignal", lambda signum: table.get(signum))
    monkeypatch.setattr(signal, "signal", table.__setitem__)
    return table


def _application_handler(number: int, frame: FrameType | None) -> None:
    raise AssertionError("the application's own handler is never called here")


def test_only_the_reactors_own_handlers_are_wrapped(handlers: dict[int, Any]) -> None:
    reactor = FakeReactor()
    handlers[signal.SIGTERM] = reactor.sigTerm
    handlers[signal.SIGINT] = _application_handler
    signals = SignalsWhileStopping(reactor, lambda: "state")
    signals.install()
    assert signals.wrapped == [signal.SIGTERM]
    assert handlers[signal.SIGINT] is _application_handler
    assert [(phase, event) for phase, event, _ in reactor.triggers] == [("before", "shutdown")]


def test_nothing_is_wrapped_without_the_reactors_handlers(handlers: dict[int, Any]) -> None:
    reactor = FakeReactor()
    signals = SignalsWhileStopping(reactor, lambda: "state")
    signals.install()
    assert signals.wrapped == []
    assert handlers == {}
    assert reactor.triggers == []


def test_the_first_signal_stops_the_reactor_and_the_next_ones_are_logged(
        handlers: dict[int, Any]) -> None:
    reactor = FakeReactor()
    handlers[signal.SIGTERM] = reactor.sigTerm
    handlers[signal.SIGINT] = reactor.sigInt
    SignalsWhileStopping(reactor, lambda: "already draining: 1 connection left").install()
    handlers[signal.SIGTERM](signal.SIGTERM, None)
    assert reactor.stops == [signal.SIGTERM]
    assert reactor.from_thread == []
    handlers[signal.SIGTERM](signal.SIGTERM, None)
    handlers[signal.SIGINT](signal.SIGINT, None)
    assert reactor.stops == [signal.SIGTERM]
    with capturedLogs() as events:
        for call in reactor.from_thread:
            call()
    assert [formatEvent(e) for e in events] == [
        f"Received {name} while shutting down: already draining: 1 connection left; a second "
        "signal does not shorten the drain (SIGKILL stops at once)"
        for name in ("SIGTERM", "SIGINT")]


def test_a_signal_after_the_reactor_began_stopping_is_logged(handlers: dict[int, Any]) -> None:
    """reactor.stop() called by code, not by a signal: the first signal is already a second."""
    reactor = FakeReactor()
    handlers[signal.SIGTERM] = reactor.sigTerm
    SignalsWhileStopping(reactor, lambda: "state").install()
    [(_, _, stopping)] = reactor.triggers
    stopping()
    handlers[signal.SIGTERM](signal.SIGTERM, None)
    assert reactor.stops == []
    assert len(reactor.from_thread) == 1


class FakeRelay:
    """A session whose client is gone while its backend connection still closes."""

    def __init__(self) -> None:
        self.client_gone = True
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class FakeGateway:
    def __init__(self, *relays: FakeRelay) -> None:
        self.open_relays = set(relays)


def test_a_session_whose_backend_is_still_closing_keeps_the_drain_waiting() -> None:
    """The session's access log line comes when it ends; the log is flushed after the drain."""
    clock = Clock()
    ep = FakeEntryPoint("web")
    relay = FakeRelay()
    ep.gateway = FakeGateway(relay)
    other = FakeEntryPoint("websecure")
    other.gateway = ep.gateway  # one gateway, counted once
    drain = Drain(clock, [ep, other], accept_grace=0.0, grace=5.0,
                  stop_listening=lambda: None)
    done = drain.run()
    assert not done.called and drain.open_connections() == 1
    clock.advance(1.0)
    assert not done.called
    ep.gateway.open_relays.discard(relay)  # the session ended
    clock.advance(1.0)
    assert done.called and not relay.aborted


def test_a_session_still_closing_at_grace_time_out_is_cut() -> None:
    clock = Clock()
    ep = FakeEntryPoint("web")
    relay = FakeRelay()
    ep.gateway = FakeGateway(relay)
    done = Drain(clock, [ep], accept_grace=0.0, grace=2.0, stop_listening=lambda: None).run()
    clock.advance(2.5)
    for _ in range(6):  # the turns the drain gives aborted connections to report their loss
        clock.advance(0)
    assert relay.aborted and done.called
