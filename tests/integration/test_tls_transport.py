"""wsgate's TLS layer (wsgate/tls/transport.py) on real loopback sockets: one delivery per
read whatever the number of records in it, writes not held back, close_notify after data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, error, protocol, reactor
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS

from tests.tlspki import PKI
from wsgate.proxy.sockets import connect_tls, listen_tcp
from wsgate.tls.transport import CoalescingTLSFactory, CoalescingTLSProtocol

RECORDS = 50


class Recorder(protocol.Protocol):
    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.made: defer.Deferred[Any] = defer.Deferred()
        self.lost: defer.Deferred[Any] = defer.Deferred()
        self.waiting: tuple[int, defer.Deferred[Any]] | None = None

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.calls.append(data)
        if self.waiting is not None and sum(map(len, self.calls)) >= self.waiting[0]:
            d = self.waiting[1]
            self.waiting = None
            d.callback(None)

    def until(self, n: int) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.waiting = (n, d)
        return d

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(reason.value)


class _One(protocol.ClientFactory):
    def __init__(self, proto: protocol.Protocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        return self.proto


@pytest.fixture
def pair(tmp_path: Path) -> Any:
    """A TLS server (wsgate's layer) and a TLS client (the same layer, as towards backends)."""
    pki = PKI(tmp_path)
    issued = pki.issue("server", ["localhost"])
    server_cert = PrivateCertificate.loadPEM(issued.cert_pem + issued.key_pem)
    ports: list[Any] = []

    @defer.inlineCallbacks
    def make() -> Any:
        server, client = Recorder(), Recorder()
        inner = protocol.Factory()
        inner.buildProtocol = lambda addr: server  # type: ignore[method-assign]
        port = listen_tcp(reactor, 0, CoalescingTLSFactory(server_cert.options(), False, inner),
                          interface="127.0.0.1")
        ports.append(port)
        creator = optionsForClientTLS("localhost", Certificate.loadPEM(pki.ca_pem))
        connect_tls(reactor, "127.0.0.1", port.getHost().port, _One(client), creator)
        yield defer.gatherResults([server.made, client.made])
        # connectionMade comes before the handshake: one round trip completes it.
        client.transport.write(b"hello")
        yield server.until(5)
        server.calls.clear()
        return server, client

    yield make
    for port in ports:
        port.stopListening()


@pytest_twisted.inlineCallbacks
def test_many_records_in_one_read_are_delivered_once(pair: Any) -> Any:
    server, client = yield pair()
    assert isinstance(server.transport, CoalescingTLSProtocol)
    assert isinstance(client.transport, CoalescingTLSProtocol)
    server.transport.pauseProducing()  # the records pile up in the server's socket
    messages = [b"message %03d;" % i for i in range(RECORDS)]
    for message in messages:
        client.transport.write(message)  # one TLS record each: no write aggregation
    # Nothing held back on the client: all records are in the kernel already.
    tcp = client.transport.transport
    assert not tcp.has_queued()
    done = server.until(sum(map(len, messages)))
    server.transport.resumeProducing()
    yield done
    assert b"".join(server.calls) == b"".join(messages)
    # Twisted's own layer would have made one call per record.
    assert len(server.calls) <= 2, [len(c) for c in server.calls]
    client.transport.loseConnection()
    yield server.lost


@pytest_twisted.inlineCallbacks
def test_data_before_close_notify_arrives_before_the_end(pair: Any) -> Any:
    server, client = yield pair()
    server.transport.pauseProducing()
    client.transport.write(b"last words")
    client.transport.loseConnection()  # close_notify right behind the data
    tcp = client.transport.transport
    assert not tcp.has_queued()  # both records are in the server's socket
    server.transport.resumeProducing()
    reason = yield server.lost
    yield client.lost
    assert b"".join(server.calls) == b"last words"
    assert isinstance(reason, error.ConnectionDone), reason
