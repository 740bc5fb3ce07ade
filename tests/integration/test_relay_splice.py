"""Large frame payloads spliced in the kernel (wsgate/proxy/splice.py), on real sockets.

A WebSocketRelay joins two write-through transports exactly as the frontend does after a 101:
client → [proxy] → backend over loopback, all in this process, so the tests can look at the
relay's pumps and trackers while raw frames of several MiB go through in both directions.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor

from wsgate.proxy import splice
from wsgate.proxy.relay import WebSocketRelay
from wsgate.proxy.sockets import connect_tcp, listen_tcp, splice_capable

pytestmark = pytest.mark.skipif(not splice.available(), reason="no splice(2) here")

BIG = 4 * 1024 * 1024


def frame(payload: bytes, *, opcode: int = 2, masked: bool, fin: bool = True) -> bytes:
    """A raw frame; the mask key is fixed and the payload is sent as is (the relay never
    unmasks data frames, so the test compares bytes, not meaning)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask = 0x80 if masked else 0
    if n < 126:
        head = struct.pack(">BB", b0, mask | n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, mask | 126, n)
    else:
        head = struct.pack(">BBQ", b0, mask | 127, n)
    return head + (b"\x01\x02\x03\x04" if masked else b"") + payload


class Peer(protocol.Protocol):
    """One end (client or backend): records what arrives, says when enough has."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.made: defer.Deferred[Any] = defer.Deferred()
        self.lost: defer.Deferred[Any] = defer.Deferred()
        self.want = 0
        self.enough: defer.Deferred[Any] | None = None

    def expect(self, n: int) -> defer.Deferred[Any]:
        self.want = n
        self.enough = defer.Deferred()
        self._check()
        return self.enough

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._check()

    def _check(self) -> None:
        if self.enough is not None and len(self.received) >= self.want:
            d, self.enough = self.enough, None
            d.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


class ProxySide(protocol.Protocol):
    """The proxy's protocol on either leg: hands bytes and ends to the relay."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.relay: WebSocketRelay | None = None
        self.made: defer.Deferred[Any] = defer.Deferred()

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        assert self.relay is not None
        if self.name == "client":
            self.relay.from_client(data)
        else:
            self.relay.from_backend(data)

    def connectionLost(self, reason: Any = None) -> None:
        if self.relay is not None:
            self.relay.side_lost(self.name)


def _one(proto: protocol.Protocol) -> protocol.Factory:
    factory = protocol.Factory()
    factory.buildProtocol = lambda addr: proto  # type: ignore[method-assign]
    return factory


class _Client(protocol.ClientFactory):
    def __init__(self, proto: protocol.Protocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        return self.proto


@pytest.fixture
def wired() -> Any:
    """client → proxy (relay) → backend, connected; yields a namespace once ready."""
    ports: list[Any] = []

    @defer.inlineCallbacks
    def make() -> Any:
        backend, proxy_backend = Peer(), ProxySide("backend")
        client, proxy_client = Peer(), ProxySide("client")
        ports.append(listen_tcp(reactor, 0, _one(backend), interface="127.0.0.1"))
        ports.append(listen_tcp(reactor, 0, _one(proxy_client), interface="127.0.0.1"))
        connect_tcp(reactor, "127.0.0.1", ports[1].getHost().port, _Client(client))
        yield defer.gatherResults([client.made, proxy_client.made])
        connect_tcp(reactor, "127.0.0.1", ports[0].getHost().port, _Client(proxy_backend))
        yield defer.gatherResults([backend.made, proxy_backend.made])
        relay = WebSocketRelay(proxy_client.transport, proxy_backend.transport)
        proxy_client.relay = proxy_backend.relay = relay
        return type("Wired", (), {"client": client, "backend": backend, "relay": relay})

    yield make
    for port in ports:
        port.stopListening()


def _digest(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest_twisted.inlineCallbacks
def test_large_frames_are_spliced_both_ways_and_stay_in_order(wired: Any) -> Any:
    w = yield wired()
    assert splice_capable(w.relay.client) and splice_capable(w.relay.backend)
    up = frame(os.urandom(BIG), masked=True) + frame(b"small after", masked=True)
    down = frame(os.urandom(BIG), masked=False) + frame(b"and back", opcode=1, masked=False)
    arrived = defer.gatherResults([w.backend.expect(len(up)), w.client.expect(len(down))])
    w.client.transport.write(up)
    w.backend.transport.write(down)
    yield arrived
    assert _digest(w.backend.received) == _digest(up)
    assert _digest(w.client.received) == _digest(down)
    relay = w.relay
    # Most of each big payload went through the kernel pipe, none of it through Python.
    assert relay._up_pump is not None and relay._up_pump.spliced > BIG // 2
    assert relay._down_pump is not None and relay._down_pump.spliced > BIG // 2
    # The trackers stayed in step: both messages of each direction counted, at a boundary.
    assert relay.upstream.messages == 2 and relay.downstream.messages == 2
    assert relay.upstream.at_frame_boundary and relay.downstream.at_frame_boundary
    assert relay.stats.client_bytes == len(up) and relay.stats.backend_bytes == len(down)
    w.client.transport.loseConnection()
    w.backend.transport.loseConnection()
    yield defer.gatherResults([w.client.lost, w.backend.lost])


@pytest_twisted.inlineCallbacks
def test_a_destination_that_does_not_read_stalls_the_pump_without_loss(wired: Any) -> Any:
    w = yield wired()
    w.client.transport.pauseProducing()  # the client reads nothing for now
    down = frame(os.urandom(BIG), masked=False) + frame(b"tail", masked=False)
    w.backend.transport.write(down)
    # Wait until the pump has filled the client's socket and stopped reading the backend.
    pump = yield _pump_when(w.relay, "_down_pump", "stalled")
    assert pump is not None and pump.stalled and pump.pending > 0
    arrived = w.client.expect(len(down))
    w.client.transport.resumeProducing()
    yield arrived
    assert _digest(w.client.received) == _digest(down)
    assert not pump.stalled and pump.pending == 0
    assert w.relay.downstream.messages == 2


@pytest_twisted.inlineCallbacks
def test_a_close_during_a_spliced_frame_follows_that_frame(wired: Any) -> Any:
    """The proxy's close frame (here a shutdown's 1001) waits for the end of the frame being
    spliced, and comes right after it."""
    w = yield wired()
    w.client.transport.pauseProducing()  # keep the frame in flight while the close is asked
    # Larger than the pipe and both loopback sockets' buffers together, so that part of it
    # is still to come when the close is asked.
    big = frame(os.urandom(4 * BIG), masked=False)
    w.backend.transport.write(big)
    pump = yield _pump_when(w.relay, "_down_pump", "spliced")
    assert pump is not None and pump.spliced and not w.relay.downstream.at_frame_boundary
    w.relay.close(1001, "server shutting down")
    close_frame = b"\x88\x16" + struct.pack(">H", 1001) + b"server shutting down"
    arrived = w.client.expect(len(big) + len(close_frame))
    w.client.transport.resumeProducing()
    yield arrived
    assert bytes(w.client.received[: len(big)]) == big
    assert bytes(w.client.received[len(big):]) == close_frame


@defer.inlineCallbacks
def _pump_when(relay: WebSocketRelay, which: str, state: str) -> Any:
    """The relay's pump ``which`` once its ``state`` is true (nothing signals it: looked at
    every millisecond, for at most two seconds); None if that never happened."""
    for _ in range(2000):
        pump = getattr(relay, which)
        if pump is not None and getattr(pump, state):
            return pump
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(0.001, d.callback, None)
        yield d
    return None


@pytest_twisted.inlineCallbacks
def test_a_client_gone_mid_frame_leaves_the_backend_every_byte_then_fin(wired: Any) -> Any:
    """What the client sent before it left reaches the backend (out of the pipe first), then
    the backend's connection is closed: no close frame, since the frame was cut short."""
    w = yield wired()
    w.backend.transport.pauseProducing()  # the backend reads nothing for now
    whole = frame(os.urandom(4 * BIG), masked=True)
    sent = whole[: 2 * BIG]  # more than loopback's socket buffers hold: the pump stalls
    w.client.transport.write(sent)
    pump = yield _pump_when(w.relay, "_up_pump", "stalled")
    assert pump is not None and pump.stalled
    w.client.transport.loseConnection()
    yield w.client.lost
    w.backend.transport.resumeProducing()
    yield w.backend.lost
    assert _digest(w.backend.received) == _digest(sent)
    assert w.relay.upstream.messages == 0


@pytest_twisted.inlineCallbacks
def test_a_client_lost_while_the_pump_waits_for_it_releases_the_pump(wired: Any) -> Any:
    """The pipe's bytes for a client that is gone are dropped, the backend is read again and
    then closed by the relay; nothing is written to the dead connection."""
    w = yield wired()
    w.client.transport.pauseProducing()
    w.backend.transport.write(frame(os.urandom(4 * BIG), masked=False))
    pump = yield _pump_when(w.relay, "_down_pump", "stalled")
    assert pump is not None and pump.pending > 0
    w.client.transport.abortConnection()
    yield w.backend.lost
    assert w.relay.client._pipe is None
    assert not pump.stalled and not pump.armed and pump.pending == 0
