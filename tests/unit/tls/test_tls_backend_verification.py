"""TLS to backends without sockets: Twisted's TLS protocol on both ends of an in-memory pipe.

The client side is what wsgate uses for https/wss servers (a serversTransport's connection
creator); the server side stands for the backend. Every refusal must say why, and no request
byte may reach a backend whose certificate was refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim

from tests.tlspki import PKI, Issued
from wsgate.config.dynamic import SAN, Certificate, ClientAuth, ServersTransport, TLSOptions
from wsgate.proxy.errors import UpstreamError
from wsgate.tls.client import BackendTLS, ClientTLSSettings
from wsgate.tls.contexts import build_server_context, resolve_options
from wsgate.tls.material import load_key_pair
from wsgate.tls.server import ServerTLSTransport, server_tls_factory

REQUEST = b"GET /ws HTTP/1.1\r\nHost: backend\r\n\r\n"


class Backend(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # type: ignore[union-attr]


class Proxy(Protocol):
    """Writes its request at once, as the exchange does before the handshake is over."""

    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None

    def connectionMade(self) -> None:
        self.transport.write(REQUEST)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.reason = reason


class Result:
    def __init__(self, backend: Backend, proxy: Proxy, server_tls: Any, client_tls: Any) -> None:
        self.backend = backend
        self.proxy = proxy
        self.server_tls = server_tls
        self.client_tls = client_tls

    @property
    def ok(self) -> bool:
        return self.proxy.received.startswith(b"HTTP/1.1 204")

    @property
    def why(self) -> str:
        assert self.proxy.reason is not None
        error = self.proxy.reason.value
        assert isinstance(error, UpstreamError), repr(error)
        assert error.status == 502
        return error.reason


def exchange(issued: Issued, transport: ServersTransport, host: str = "127.0.0.1",
             *, options: TLSOptions | None = None) -> Result:
    pair = load_key_pair(str(issued.cert_path), str(issued.key_path), "backend")
    context = build_server_context(resolve_options("backend", options or TLSOptions()), pair)
    backend, proxy = Backend(), Proxy()
    clock = Clock()
    server_factory = server_tls_factory(Factory.forProtocol(lambda: backend), clock)
    server = ServerTLSTransport(server_factory, backend, context)
    tls = BackendTLS(ClientTLSSettings.from_transport("t@file", transport))
    client_factory = TLSMemoryBIOFactory(tls.creator_for(host, 8443), True,
                                         Factory.forProtocol(lambda: proxy), clock=clock)
    client = client_factory.buildProtocol(None)
    pump = iosim.connect(server, iosim.FakeTransport(server, True),
                         client, iosim.FakeTransport(client, False), greet=False)
    for _ in range(20):
        clock.advance(0)
        pump.flush()
    return Result(backend, proxy, server, client)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def trusted(pki: PKI) -> ServersTransport:
    return ServersTransport(root_cas=(str(pki.ca_path),))


def test_a_good_certificate_for_the_ip_address(pki: PKI, trusted: ServersTransport) -> None:
    result = exchange(pki.issue("good", ["127.0.0.1", "backend.test"]), trusted)
    assert result.ok and result.backend.received == REQUEST
    # No SNI for an IP address; only HTTP/1.1 offered.
    assert result.server_tls.getHandle().get_servername() is None


@pytest.mark.parametrize(("kind", "words"), [
    ("wrong host", ["wrong host", "other.test", "not 127.0.0.1"]),
    ("expired", ["certificate has expired", "notAfter"]),
    ("self-signed", ["self-signed certificate"]),
    ("unknown CA", ["unknown certificate authority", "stranger CA"]),
])
def test_refusals_say_why_and_send_nothing(pki: PKI, trusted: ServersTransport, tmp_path: Path,
                                           kind: str, words: list[str]) -> None:
    issued = {
        "wrong host": lambda: pki.issue("wrong", ["other.test"]),
        "expired": lambda: pki.expired("expired", ["127.0.0.1"]),
        "self-signed": lambda: pki.self_signed("selfsigned", ["127.0.0.1"]),
        "unknown CA": lambda: PKI(tmp_path, "stranger CA").issue("s", ["127.0.0.1"]),
    }[kind]()
    result = exchange(issued, trusted)
    assert not result.ok
    for word in words:
        assert word in result.why
    assert result.backend.received == b""
    assert "127.0.0.1:8443" in str(result.proxy.reason.value)  # type: ignore[union-attr]
    # ... unless this transport says not to verify.
    insecure = exchange(issued, ServersTransport(insecure_skip_verify=True))
    assert insecure.ok


def test_system_trust_store_when_no_root_cas(pki: PKI) -> None:
    result = exchange(pki.issue("good2", ["127.0.0.1"]), ServersTransport())
    assert "unknown certificate authority" in result.why


def test_server_name_is_verified_and_sent(pki: PKI) -> None:
    issued = pki.issue("named", ["backend.internal"])
    named = ServersTransport(root_cas=(pki.ca_pem,), server_name="backend.internal")
    result = exchange(issued, named)
    assert result.ok
    assert result.server_tls.getHandle().get_servername() == b"backend.internal"
    # Without serverName the URL host is checked.
    plain = exchange(issued, ServersTransport(root_cas=(pki.ca_pem,)), host="localhost")
    assert "wrong host" in plain.why and "not localhost" in plain.why


def test_peer_cert_sans_replace_the_host_check(pki: PKI) -> None:
    issued = pki.issue("spiffe", ["spiffe://example.org/backend", "svc.internal"])
    by_uri = ServersTransport(root_cas=(pki.ca_pem,), peer_cert_sans=(
        SAN("URI", "spiffe://example.org/other"), SAN("URI", "spiffe://example.org/backend")))
    assert exchange(issued, by_uri).ok
    by_dns = ServersTransport(root_cas=(pki.ca_pem,),
                              peer_cert_sans=(SAN("DNSName", "svc.internal"),))
    assert exchange(issued, by_dns).ok
    legacy = ServersTransport(root_cas=(pki.ca_pem,),
                              peer_cert_uri="spiffe://example.org/backend")
    assert exchange(issued, legacy).ok
    wrong = ServersTransport(root_cas=(pki.ca_pem,),
                             peer_cert_sans=(SAN("URI", "spiffe://example.org/nope"),))
    assert "none of peerCertSANs" in exchange(issued, wrong).why
    # The chain is still verified.
    stranger = PKI(pki.directory / "stranger2", "stranger two").issue(
        "s2", ["spiffe://example.org/backend"])
    assert "unknown certificate authority" in exchange(stranger, by_uri).why


def test_client_certificate_for_mutual_tls(pki: PKI) -> None:
    issued = pki.issue("mtls-backend", ["127.0.0.1"])
    proxy_cert = pki.issue("proxy-client", ["wsgate proxy"], client=True)
    requiring = TLSOptions(client_auth=ClientAuth(ca_files=(str(pki.ca_path),)))
    with_cert = ServersTransport(root_cas=(pki.ca_pem,), certificates=(
        Certificate(str(proxy_cert.cert_path), str(proxy_cert.key_path)),))
    assert exchange(issued, with_cert, options=requiring).ok
    without = exchange(issued, ServersTransport(root_cas=(pki.ca_pem,)), options=requiring)
    assert not without.ok and without.backend.received == b""


def test_versions_and_ciphers(pki: PKI) -> None:
    issued = pki.issue("versions", ["127.0.0.1"])
    tls12 = ServersTransport(root_cas=(pki.ca_pem,), max_version="VersionTLS12",
                             cipher_suites=("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",))
    result = exchange(issued, tls12)
    assert result.ok
    handle = result.client_tls.getHandle()
    assert handle.get_protocol_version_name() == "TLSv1.2"
    assert handle.get_cipher_name() == "ECDHE-ECDSA-CHACHA20-POLY1305"
    modern_only = TLSOptions(min_version="VersionTLS13")
    assert not exchange(issued, tls12, options=modern_only).ok


def test_alpn_offers_http11_only(pki: PKI, trusted: ServersTransport) -> None:
    result = exchange(pki.issue("alpn", ["127.0.0.1"]), trusted)
    assert result.client_tls.getHandle().get_alpn_proto_negotiated() == b"http/1.1"


def test_a_broken_transport_fails_its_connections(pki: PKI, tmp_path: Path) -> None:
    broken = ServersTransport(root_cas=(str(tmp_path / "missing.pem"),))
    result = exchange(pki.issue("any", ["127.0.0.1"]), broken)
    assert "rootCAs[0]" in result.why and result.backend.received == b""


def test_insecure_skip_verify_warns_once_per_transport(pki: PKI) -> None:
    from twisted.logger import formatEvent, globalLogPublisher

    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        tls = BackendTLS(ClientTLSSettings.from_transport(
            "insecureTransport@file", ServersTransport(insecure_skip_verify=True)))
        tls.creator_for("127.0.0.1", 1)
        tls.creator_for("127.0.0.2", 1)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert sum("insecureTransport@file: insecureSkipVerify" in line for line in lines) == 1
