"""The shutdown drain (wsgate.proxy.drain) on a fake clock: phases in order, and one connection
whose drain fails does not keep the others from theirs."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from wsgate.proxy.drain import Drain


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
