"""Health probes: what they send and how they judge answers, on in-memory transports.

HTTPProbe is fed through BackendConnections on StringTransports (the connector is faked);
UpgradeProbe runs the real autobahn client against a MemoryReactor.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from twisted.internet import defer, error
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from wsgate.config.dynamic import ServerHealthCheck
from wsgate.proxy.backend import BackendAddress, BackendConnection
from wsgate.proxy.errors import UpstreamError
from wsgate.proxy.probes import (
    USER_AGENT,
    HTTPProbe,
    ProbeResult,
    UpgradeProbe,
    build_probe_target,
    status_is_healthy,
)

# -- targets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("server", "path", "expected"), [
    ("http://h:8080", "/health", "/health"),
    ("http://h:8080", "", "/"),
    ("http://h:8080/base/", "health", "/base/health"),
    ("http://h:8080/base", "health", "/health"),
    ("http://h:8080/base/", "/health", "/health"),
    ("http://h:8080/api", "", "/api"),
    ("http://h:8080", "/health?deep=1&x=a b", "/health?deep=1&x=a%20b"),
    ("http://h:8080", "/he alth", "/he%20alth"),
    ("h2c://h:8080/base/", "ping", "/base/ping"),
])
def test_path_is_resolved_against_the_server_url(server: str, path: str, expected: str) -> None:
    target = build_probe_target(server, ServerHealthCheck(path=path))
    assert target.target == expected
    assert target.url == server


def test_defaults_come_from_the_server_url() -> None:
    target = build_probe_target("https://app.internal:8443", ServerHealthCheck())
    address = target.address
    assert (address.scheme, address.host, address.port, address.tls) == \
        ("https", "app.internal", 8443, True)
    assert (target.host, target.method, target.headers) == ("app.internal:8443", "GET", ())
    assert target.probe_url == "https://app.internal:8443/"


def test_a_url_without_port_gives_a_host_without_port() -> None:
    target = build_probe_target("http://app.internal", ServerHealthCheck())
    assert (target.address.port, target.host) == (80, "app.internal")


def test_scheme_port_and_hostname_override_the_server_url() -> None:
    check = ServerHealthCheck(scheme="https", port=9443, hostname="health.example.com",
                              path="/ready", method="HEAD")
    target = build_probe_target("http://10.0.0.1:8080", check)
    assert (target.address.scheme, target.address.host, target.address.port) == \
        ("https", "10.0.0.1", 9443)
    assert target.address.tls
    assert target.host == "health.example.com"  # only the Host header: same address
    assert target.method == "HEAD"
    assert target.probe_url == "https://10.0.0.1:9443/ready"


def test_port_override_on_ipv6() -> None:
    target = build_probe_target("http://[::1]:8080", ServerHealthCheck(port=9000))
    assert (target.address.host, target.address.port, target.host) == ("::1", 9000,
                                                                       "[::1]:9000")


def test_headers_are_kept_but_host_is_left_to_hostname() -> None:
    check = ServerHealthCheck(headers={"X-Probe": "yes", "Host": "ignored"})
    assert build_probe_target("http://h:1", check).headers == (("X-Probe", "yes"),)


@pytest.mark.parametrize("check", [
    ServerHealthCheck(scheme="ftp"),
    ServerHealthCheck(method="GE T"),
    ServerHealthCheck(headers={"X-Bad": "a\r\nInjected: 1"}),
    ServerHealthCheck(headers={"Bad Name": "a"}),
    ServerHealthCheck(hostname="a b"),
])
def test_unsendable_probes_are_refused(check: ServerHealthCheck) -> None:
    with pytest.raises(ValueError):
        build_probe_target("http://h:1", check)


@pytest.mark.parametrize(("status", "expected", "healthy"), [
    (200, 0, True), (204, 0, True), (302, 0, True), (399, 0, True), (199, 0, False),
    (400, 0, False), (500, 0, False), (204, 204, True), (200, 204, False),
    (503, 503, True),
])
def test_status_rule(status: int, expected: int, healthy: bool) -> None:
    assert status_is_healthy(status, expected) is healthy


# -- http ---------------------------------------------------------------------------------------


class FakeConnector:
    """Hands out BackendConnections on StringTransports; ``pending`` holds the dials the test
    has not completed yet (``auto``: complete at once)."""

    def __init__(self, auto: bool = True) -> None:
        self.auto = auto
        self.dials: list[BackendAddress] = []
        self.conns: list[BackendConnection] = []
        self.pending: list[tuple[BackendAddress, defer.Deferred[BackendConnection]]] = []
        self.failure: Exception | None = None

    def __call__(self, address: BackendAddress) -> defer.Deferred[BackendConnection]:
        self.dials.append(address)
        if self.failure is not None:
            return defer.fail(self.failure)
        d: defer.Deferred[BackendConnection] = defer.Deferred()
        if self.auto:
            self.complete(address, d)
        else:
            self.pending.append((address, d))
        return d

    def complete(self, address: BackendAddress, d: defer.Deferred[BackendConnection]) -> None:
        conn = BackendConnection(address)
        conn.connected_d = None  # type: ignore[assignment]
        conn.makeConnection(StringTransport())
        self.conns.append(conn)
        d.callback(conn)

    @property
    def last(self) -> BackendConnection:
        return self.conns[-1]

    def sent(self, index: int = -1) -> bytes:
        return bytes(self.conns[index].transport.value())


def run(probe: HTTPProbe, server: str = "http://10.0.0.1:8080",
        **check: Any) -> defer.Deferred[ProbeResult]:
    return probe(build_probe_target(server, ServerHealthCheck(**check)))


def result_of(d: defer.Deferred[ProbeResult]) -> ProbeResult:
    results: list[ProbeResult] = []
    d.addCallback(results.append)
    assert results, "the probe has not finished"
    return results[0]


def test_the_request_is_http11_with_host_agent_headers_and_close() -> None:
    connector = FakeConnector()
    run(HTTPProbe(connector), path="/health", hostname="app.test",
        headers={"X-Check": "1"})
    assert connector.sent() == (
        b"GET /health HTTP/1.1\r\nHost: app.test\r\nUser-Agent: " + USER_AGENT.encode() +
        b"\r\nX-Check: 1\r\nConnection: close\r\n\r\n")


def test_configured_headers_replace_the_defaults() -> None:
    connector = FakeConnector()
    run(HTTPProbe(connector), method="POST",
        headers={"User-Agent": "mine", "Connection": "keep-alive"})
    assert connector.sent() == (b"POST / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: mine"
                                b"\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize(("answer", "expected_status", "result"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, ProbeResult(True, "status 200")),
    (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", 0,
     ProbeResult(False, "status 503 (expected 200-399)")),
    (b"HTTP/1.1 200 OK\r\n\r\n", 204, ProbeResult(False, "status 200 (expected 204)")),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 204, ProbeResult(True, "status 204")),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 0,
     ProbeResult(True, "status 200")),
    (b"HTTP/1.0 200 OK\r\n\r\n", 0, ProbeResult(True, "status 200")),
])
def test_the_status_decides(answer: bytes, expected_status: int, result: ProbeResult) -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector, expected_status=expected_status))
    connector.last.dataReceived(answer)
    assert result_of(d) == result
    assert connector.last.transport.disconnecting  # closed after the head


def test_the_head_may_arrive_in_pieces() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector))
    for byte in b"HTTP/1.1 200 OK\r\n\r\n":
        assert not d.called
        connector.last.dataReceived(bytes([byte]))
    assert result_of(d).healthy


def test_an_invalid_response_fails() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector))
    connector.last.dataReceived(b"HTTP/1.1 200 OK\nbare: lf\r\n\r\n")
    result = result_of(d)
    assert not result.healthy and result.reason.startswith("invalid response: ")


def test_connect_failures_name_the_cause() -> None:
    connector = FakeConnector()
    connector.failure = UpstreamError(502, "connection refused", backend="10.0.0.1:8080")
    assert result_of(run(HTTPProbe(connector))) == ProbeResult(False, "connection refused")
    connector.failure = UpstreamError(504, "dial timeout after 1s", backend="x")
    assert result_of(run(HTTPProbe(connector))) == ProbeResult(False, "dial timeout after 1s")


def test_a_tls_verification_failure_is_the_reason() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector), server="https://10.0.0.1:8443")
    connector.last.connectionLost(Failure(UpstreamError(
        502, "TLS verification failed: certificate has expired", backend="10.0.0.1:8443")))
    assert result_of(d) == ProbeResult(False, "TLS verification failed: certificate has expired")


def test_a_tls_error_is_named() -> None:
    from OpenSSL import SSL

    connector = FakeConnector()
    d = run(HTTPProbe(connector), server="https://10.0.0.1:8443")
    connector.last.connectionLost(Failure(SSL.Error([("SSL routines", "", "wrong version")])))
    result = result_of(d)
    assert not result.healthy and result.reason.startswith("TLS error: ")


def test_a_connection_closed_before_the_answer_fails() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector))
    connector.last.connectionLost(Failure(error.ConnectionDone()))
    assert result_of(d) == ProbeResult(False, "connection closed before a response")


def test_redirects_are_followed_on_new_connections() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector), path="/health", hostname="app.test",
            headers={"Authorization": "Bearer x", "X-Check": "1"})
    connector.last.dataReceived(b"HTTP/1.1 302 Found\r\nLocation: /ready?x=1\r\n\r\n")
    assert not d.called
    assert connector.sent().startswith(b"GET /ready?x=1 HTTP/1.1\r\nHost: app.test\r\n")
    assert b"Authorization: Bearer x" in connector.sent()  # same host: kept
    connector.last.dataReceived(
        b"HTTP/1.1 301 Moved\r\nLocation: https://other.test:8443/final\r\n\r\n")
    address = connector.dials[-1]
    assert (address.scheme, address.host, address.port) == ("https", "other.test", 8443)
    sent = connector.sent()
    assert sent.startswith(b"GET /final HTTP/1.1\r\nHost: other.test:8443\r\n")
    assert b"Authorization" not in sent and b"X-Check: 1" in sent
    connector.last.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")
    assert result_of(d) == ProbeResult(True, "status 200")
    assert len(connector.conns) == 3


@pytest.mark.parametrize(("status", "method", "then"), [
    (301, "POST", "GET"), (302, "POST", "GET"), (303, "POST", "GET"), (303, "HEAD", "HEAD"),
    (307, "POST", "POST"), (308, "PUT", "PUT"), (302, "HEAD", "HEAD"),
])
def test_redirect_methods_follow_go(status: int, method: str, then: str) -> None:
    connector = FakeConnector()
    run(HTTPProbe(connector), method=method)
    connector.last.dataReceived(b"HTTP/1.1 %d X\r\nLocation: /next\r\n\r\n" % status)
    assert connector.sent().startswith(then.encode() + b" /next HTTP/1.1\r\n")


def test_redirects_stop_after_ten() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector))
    for _ in range(11):
        connector.last.dataReceived(b"HTTP/1.1 302 Found\r\nLocation: /again\r\n\r\n")
    assert result_of(d) == ProbeResult(False, "stopped after 10 redirects")
    assert len(connector.conns) == 11


def test_without_follow_redirects_the_3xx_itself_is_judged() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector, follow_redirects=False))
    connector.last.dataReceived(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n")
    assert result_of(d) == ProbeResult(True, "status 302")
    d = run(HTTPProbe(connector, follow_redirects=False, expected_status=200))
    connector.last.dataReceived(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n")
    assert result_of(d) == ProbeResult(False, "status 302 (expected 200)")


def test_a_redirect_without_location_is_the_answer() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector))
    connector.last.dataReceived(b"HTTP/1.1 302 Found\r\n\r\n")
    assert result_of(d) == ProbeResult(True, "status 302")


def test_a_redirect_to_an_unusable_url_fails() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector))
    connector.last.dataReceived(b"HTTP/1.1 302 Found\r\nLocation: ftp://files/x\r\n\r\n")
    result = result_of(d)
    assert not result.healthy
    assert result.reason.startswith("status 302 redirects to an unusable URL")


def test_cancel_aborts_the_connection() -> None:
    connector = FakeConnector()
    d = run(HTTPProbe(connector))
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    d.cancel()
    assert connector.last.transport.disconnecting
    connector.last.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")  # late bytes are dropped


def test_cancel_while_dialling_closes_the_late_connection() -> None:
    connector = FakeConnector(auto=False)
    d = run(HTTPProbe(connector))
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    d.cancel()
    connector.complete(*connector.pending[0])
    assert connector.last.transport.disconnecting
    assert connector.sent() == b""


# -- websocket ------------------------------------------------------------------------------


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(request: bytes) -> bytes:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + GUID).digest())
    raise AssertionError(f"no key in {request!r}")


def ws_probe(server: str = "http://10.0.0.1:8080", tls: Any = None, **check: Any
             ) -> tuple[MemoryReactorClock, defer.Deferred[ProbeResult], Any]:
    reactor = MemoryReactorClock()
    probe = UpgradeProbe(reactor, dial_timeout=2.0, tls_context=tls)
    d = probe(build_probe_target(server, ServerHealthCheck(mode="websocket", **check)))
    return reactor, d, probe


class LenientTransport(StringTransport):
    """Real transports accept an unregisterProducer with none registered (autobahn does it)."""

    def unregisterProducer(self) -> None:
        self.producer = None
        self.streaming = None


def connect(reactor: MemoryReactorClock, ssl: bool = False
            ) -> tuple[Any, StringTransport]:
    clients = reactor.sslClients if ssl else reactor.tcpClients
    factory = clients[-1][2]
    proto = factory.buildProtocol(None)
    transport = LenientTransport()
    proto.makeConnection(transport)
    return proto, transport


def test_websocket_probe_handshakes_and_closes_cleanly() -> None:
    reactor, d, _ = ws_probe(path="/ws/health", hostname="chat.test",
                             headers={"X-Check": "1"})
    host, port, _, timeout, _ = reactor.tcpClients[0]
    assert (host, port, timeout) == ("10.0.0.1", 8080, 2.0)
    proto, transport = connect(reactor)
    request = bytes(transport.value())
    assert request.startswith(b"GET /ws/health HTTP/1.1\r\n")
    assert b"Host: chat.test:80\r\n" in request
    assert b"X-Check: 1\r\n" in request and b"Upgrade: WebSocket\r\n" in request
    assert b"User-Agent: " + USER_AGENT.encode() in request
    transport.clear()
    proto.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                       accept_for(request) + b"\r\n\r\n")
    assert result_of(d) == ProbeResult(True, "status 101")
    frame = bytes(transport.value())
    assert frame[0] == 0x88  # a close frame (FIN + opcode 8) follows at once


def test_websocket_probe_fails_on_another_status() -> None:
    reactor, d, _ = ws_probe()
    proto, _ = connect(reactor)
    proto.dataReceived(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    assert result_of(d) == ProbeResult(False, "status 503 (expected 101)")


def test_websocket_probe_fails_on_a_bad_accept_key() -> None:
    reactor, d, _ = ws_probe()
    proto, _ = connect(reactor)
    proto.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n")
    result = result_of(d)
    assert not result.healthy and result.reason.startswith("invalid handshake response: ")


def test_websocket_probe_refused() -> None:
    reactor, d, _ = ws_probe()
    factory = reactor.tcpClients[0][2]
    factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
    assert result_of(d) == ProbeResult(False, "connection refused")


def test_websocket_probe_closed_before_101() -> None:
    reactor, d, _ = ws_probe()
    proto, _ = connect(reactor)
    proto.connectionLost(Failure(error.ConnectionDone()))
    assert result_of(d) == ProbeResult(False, "connection closed before a 101")


def test_websocket_probe_uses_the_transport_tls_for_https_servers() -> None:
    contexts: list[BackendAddress] = []

    def tls_context(address: BackendAddress) -> object:
        contexts.append(address)
        return "creator"

    reactor, _, _ = ws_probe("https://10.0.0.1:8443", tls=tls_context)
    assert [(a.host, a.port) for a in contexts] == [("10.0.0.1", 8443)]
    host, port, _, context, timeout, _ = reactor.sslClients[0]
    assert (host, port, context, timeout) == ("10.0.0.1", 8443, "creator", 2.0)
    assert reactor.tcpClients == []


def test_websocket_probe_without_tls_settings_fails_rather_than_going_plain() -> None:
    reactor, d, _ = ws_probe("https://10.0.0.1:8443")
    assert not result_of(d).healthy
    assert reactor.tcpClients == [] and reactor.sslClients == []


def test_websocket_probe_cancel() -> None:
    reactor, d, _ = ws_probe()
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    connector = reactor.connectors[0]
    d.cancel()
    assert connector.stoppedConnecting
    reactor, d, _ = ws_probe()
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    _, transport = connect(reactor)
    d.cancel()
    assert transport.disconnecting
