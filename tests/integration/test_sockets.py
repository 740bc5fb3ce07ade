"""Write-through TCP transports (wsgate/proxy/sockets.py) on real loopback sockets."""

from __future__ import annotations

import hashlib
import socket
import struct
from typing import Any

import pytest_twisted
from twisted.internet import defer, error, protocol, reactor
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from wsgate.proxy.sockets import WriteThroughClient, WriteThroughServer, connect_tcp, listen_tcp

CHUNK = 64 * 1024
TOTAL = 32 * 1024 * 1024


def _pattern(index: int) -> bytes:
    """Chunk ``index`` of the stream: distinct per chunk, so reordering changes the digest."""
    return struct.pack(">Q", index) * (CHUNK // 8)


class _Recorder(protocol.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.lost: defer.Deferred[Any] = defer.Deferred()
        self.made: defer.Deferred[Any] = defer.Deferred()

    def connectionMade(self) -> None:
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(reason.value)  # the exception, not the Failure: no errback


def _factory(proto: protocol.Protocol) -> protocol.Factory:
    factory = protocol.Factory()
    factory.buildProtocol = lambda addr: proto  # type: ignore[method-assign]
    return factory


class _ClientFactory(protocol.ClientFactory):
    def __init__(self, proto: protocol.Protocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        return self.proto


@pytest_twisted.inlineCallbacks
def test_a_write_on_an_idle_connection_is_sent_at_once() -> Any:
    """No writability registration, nothing queued: the bytes are in the kernel already."""
    server = _Recorder()
    port = listen_tcp(reactor, 0, _factory(server), interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    try:
        yield server.made
        transport = server.transport
        assert isinstance(transport, WriteThroughServer)
        transport.write(b"hello")
        transport.writeSequence([b" ", b"world"])
        assert transport not in reactor.getWriters()
        assert transport._tempDataLen == 0 and transport.dataBuffer == b""
        client.settimeout(5)
        got = b""
        while len(got) < 11:
            got += client.recv(100)
        assert got == b"hello world"
    finally:
        client.close()
        yield server.lost
        yield port.stopListening()


@implementer(IPushProducer)
class _Source:
    """Writes the pattern stream as fast as the transport allows; counts its pauses."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.index = 0
        self.paused = False
        self.pauses = 0
        self.digest = hashlib.sha256()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        self.pump()

    def stopProducing(self) -> None:
        self.paused = True

    def pump(self) -> None:
        while not self.paused and self.index * CHUNK < TOTAL:
            chunk = _pattern(self.index)
            self.digest.update(chunk)
            self.index += 1
            self.transport.write(chunk)
        if self.index * CHUNK >= TOTAL and not self.paused:
            self.transport.unregisterProducer()
            self.transport.loseConnection()


class _SlowSink(_Recorder):
    """Reads nothing at first (the kernel buffers fill), then everything."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()
        self.count = 0

    def connectionMade(self) -> None:
        self.transport.pauseProducing()
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.digest.update(data)
        self.count += len(data)


@pytest_twisted.inlineCallbacks
def test_a_slow_reader_pauses_the_producer_and_the_stream_stays_in_order() -> Any:
    sender = _Recorder()
    port = listen_tcp(reactor, 0, _factory(sender), interface="127.0.0.1")
    sink = _SlowSink()
    connect_tcp(reactor, "127.0.0.1", port.getHost().port, _ClientFactory(sink), timeout=5)
    try:
        yield sender.made
        yield sink.made
        assert isinstance(sink.transport, WriteThroughClient)
        source = _Source(sender.transport)
        sender.transport.registerProducer(source, True)
        source.pump()
        # The kernel took what it could; the rest is queued and the producer paused.
        assert source.paused and source.pauses >= 1
        assert source.index * CHUNK < TOTAL
        sink.transport.resumeProducing()
        yield sink.lost
        assert sink.count == TOTAL
        assert sink.digest.hexdigest() == source.digest.hexdigest()
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_writing_to_a_reset_connection_reports_it_lost() -> Any:
    server = _Recorder()
    port = listen_tcp(reactor, 0, _factory(server), interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    try:
        yield server.made
        server.transport.pauseProducing()  # so that a write, not a read, meets the reset
        # Close with RST: the server's next sends fail with ECONNRESET or EPIPE.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        lost = []
        server.lost.addCallback(lambda reason: lost.append(reason) or reason)

        def keep_writing() -> None:
            if not lost:
                server.transport.write(b"x" * 1000)
                reactor.callLater(0, keep_writing)

        keep_writing()
        reason = yield server.lost
        assert isinstance(reason, error.ConnectionLost), reason
    finally:
        yield port.stopListening()
