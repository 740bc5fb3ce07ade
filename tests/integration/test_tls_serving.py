"""Serving TLS on real sockets: the seed's WSS examples, SNI, versions, client certificates,
plain HTTP next to TLS on one port, and a certificate added by a reload under a live session.

Certificates come from a throwaway CA made by the tests (tests/tlspki.py); clients verify
against it. Routing is by host name: clients connect to 127.0.0.1 and send the name as SNI
and Host.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests import seed
from tests.integration.harness import Wsgate, start_ws_backend
from tests.integration.tls_clients import (
    TIMEOUT,
    echo,
    forced_version,
    https_get,
    insecure_client,
    seed_dynamic_file,
    seed_static,
    tls_socket,
    wss,
)
from tests.tlspki import PKI, Issued, peer_common_name, peer_names
from wsgate.tls.material import DEFAULT_CERT_COMMON_NAME

# -- shared fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    proc, port = start_ws_backend()
    yield port
    proc.stop()


def static_config(provider_file: Path, **entry_points: str) -> dict[str, Any]:
    return {
        "entryPoints": {name: {"address": addr} for name, addr in entry_points.items()},
        "providers": {"file": {"filename": str(provider_file), "watch": False}},
        "log": {"level": "DEBUG"},
    }


# -- the seed's WSS examples ----------------------------------------------------------------------

SEED_WSS = [
    ("SSL Termination for WebSockets", "http://my-ws-server:8000"),
    ("WebSocket Secure (WSS) Configuration", "http://my-websocket-server:8000"),
]


@pytest.mark.parametrize("tab", [seed.YAML, seed.TOML])
@pytest.mark.parametrize(("section", "server"), SEED_WSS, ids=["termination", "wss"])
def test_seed_wss_examples(tmp_path: Path, pki: PKI, backend: int, tab: str, section: str,
                           server: str) -> None:
    cert = pki.issue("wss", ["wss.example.com"])
    dynamic = seed_dynamic_file(tmp_path, section, tab,
                                {server: f"http://127.0.0.1:{backend}"}, cert)
    gate = Wsgate(tmp_path, seed_static(dynamic))
    try:
        port = gate.ports["websecure"]
        with wss(port, "wss.example.com", "/headers", pki.client_context()) as conn:
            report = json.loads(conn.recv(timeout=TIMEOUT))
            headers = {k.lower(): v for k, v in report["headers"]}
            assert headers["x-forwarded-proto"] == "wss"
            assert headers["x-forwarded-port"] == str(port)
            assert echo(conn, "over tls") == "over tls"
        # The router has tls: the plain entryPoint does not serve it.
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://wss.example.com:{gate.ports['web']}/",
                    sock=socket.create_connection(("127.0.0.1", gate.ports["web"])),
                    open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 404
    finally:
        gate.stop()


# -- one wsgate for SNI, versions, client certificates and plain HTTP -----------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pki: PKI,
           backend: int) -> Iterator[tuple[Wsgate, dict[str, Issued]]]:
    tmp = tmp_path_factory.mktemp("served")
    certs = {
        "a": pki.issue("a", ["a.test", "mtls.test", "legacy.test"]),
        "wild": pki.issue("wild", ["*.wild.test"]),
        "ip": pki.issue("ip", ["127.0.0.1"]),
        "default": pki.issue("store-default", ["default.test"]),
        "client": pki.issue("client", ["test client"], client=True),
    }
    url = f"http://127.0.0.1:{backend}"

    def router(rule: str, tls: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": rule, "service": "echo"}
        if tls is not None:
            out["tls"] = tls
        return out

    dynamic = {
        "http": {
            "routers": {
                "a": router("Host(`a.test`) || Host(`x.wild.test`) || Host(`127.0.0.1`)", {}),
                "mtls": router("Host(`mtls.test`)", {"options": "mtls"}),
                "legacy": router("Host(`legacy.test`)", {"options": "legacy"}),
                "plain": router("Host(`plain.test`)", None),
            },
            "services": {"echo": {"loadBalancer": {"servers": [{"url": url}]}}},
        },
        "tls": {
            "certificates": [
                {"certFile": str(c.cert_path), "keyFile": str(c.key_path)}
                for c in (certs["a"], certs["wild"])
            ] + [{"certFile": certs["ip"].cert_pem, "keyFile": certs["ip"].key_pem}],
            "options": {
                "mtls": {"clientAuth": {"caFiles": [str(pki.ca_path)],
                                        "clientAuthType": "RequireAndVerifyClientCert"}},
                "legacy": {"minVersion": "VersionTLS10"},
            },
            "stores": {"default": {"defaultCertificate": {
                "certFile": str(certs["default"].cert_path),
                "keyFile": str(certs["default"].key_path)}}},
        },
    }
    provider = tmp / "dynamic.yml"
    provider.write_text(yaml.safe_dump(dynamic))
    gate = Wsgate(tmp, static_config(provider, websecure="127.0.0.1:0"))
    yield gate, certs
    gate.stop()


def test_sni_chooses_among_three_certificates_and_the_default(
        served: tuple[Wsgate, dict[str, Issued]], pki: PKI) -> None:
    gate, _ = served
    port = gate.ports["websecure"]
    verified = pki.client_context()
    with tls_socket(port, "a.test", verified) as sock:
        assert peer_names(sock) == ["a.test", "mtls.test", "legacy.test"]
    with tls_socket(port, "x.wild.test", verified) as sock:
        assert peer_names(sock) == ["*.wild.test"]
    # No SNI at all (an address): the certificate for the address reached.
    by_ip = pki.client_context()
    with tls_socket(port, "127.0.0.1", by_ip) as sock:
        assert peer_names(sock) == ["127.0.0.1"]
    with tls_socket(port, "nobody.test", insecure_client()) as sock:
        assert peer_names(sock) == ["default.test"]
    # And each serves WebSockets through the router of that host.
    for host in ("a.test", "x.wild.test"):
        with wss(port, host, "/", verified) as conn:
            assert echo(conn, host) == host


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1],
                         ids=["TLS1.0", "TLS1.1"])
def test_tls10_and_tls11_refused_by_default(served: tuple[Wsgate, dict[str, Issued]],
                                            version: ssl.TLSVersion) -> None:
    gate, _ = served
    port = gate.ports["websecure"]
    with pytest.raises(ssl.SSLError):
        tls_socket(port, "a.test", forced_version(version)).close()
    # The same client succeeds where tls.options allow it: the refusal is wsgate's.
    with tls_socket(port, "legacy.test", forced_version(version)) as sock:
        assert sock.version() == {ssl.TLSVersion.TLSv1: "TLSv1",
                                  ssl.TLSVersion.TLSv1_1: "TLSv1.1"}[version]


def test_mutual_tls(served: tuple[Wsgate, dict[str, Issued]], pki: PKI) -> None:
    gate, certs = served
    port = gate.ports["websecure"]
    # Required and absent: the handshake fails (TLS 1.3 reports it on the first read).
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_socket(port, "mtls.test", pki.client_context()) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: mtls.test\r\n\r\n")
            sock.recv(1024)
    # Present: a WebSocket session.
    with wss(port, "mtls.test", "/", pki.client_context(cert=certs["client"])) as conn:
        assert echo(conn, "with a certificate") == "with a certificate"


def test_domain_fronting_is_misdirected(served: tuple[Wsgate, dict[str, Issued]],
                                        pki: PKI) -> None:
    gate, _ = served
    port = gate.ports["websecure"]
    # Handshake for a.test (no client certificate needed), request for mtls.test: 421.
    answer = https_get(port, "mtls.test", pki.client_context(), sni="a.test")
    assert answer.startswith(b"HTTP/1.1 421 Misdirected Request")
    # The answer can reach the client before wsgate's log line reaches the test's reader.
    gate.proc.wait_for(r"421 for mtls\.test on websecure")
    # Two hosts with the same options may share a connection.
    assert https_get(port, "x.wild.test", insecure_client(), sni="a.test") \
        .startswith(b"HTTP/1.1 ")


def test_plain_http_and_tls_share_the_port(served: tuple[Wsgate, dict[str, Issued]]) -> None:
    gate, _ = served
    port = gate.ports["websecure"]
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with connect(f"ws://plain.test:{port}/", sock=raw, open_timeout=TIMEOUT) as conn:
        assert echo(conn, "plain") == "plain"
    # TLS routers are not reachable over plain HTTP, nor plain ones over TLS.
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://a.test:{port}/", sock=raw, open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 404
    assert https_get(port, "plain.test", insecure_client()).startswith(b"HTTP/1.1 404")


def test_a_connection_that_sends_nothing_is_closed_at_read_timeout(
        tmp_path: Path, pki: PKI, backend: int) -> None:
    cert = pki.issue("idle", ["idle.test"])
    provider = tmp_path / "dynamic.yml"
    provider.write_text(yaml.safe_dump({
        "http": {"routers": {"r": {"rule": "Host(`idle.test`)", "service": "s", "tls": {}}},
                 "services": {"s": {"loadBalancer": {"servers": [
                     {"url": f"http://127.0.0.1:{backend}"}]}}}},
        "tls": {"certificates": [{"certFile": str(cert.cert_path),
                                  "keyFile": str(cert.key_path)}]}}))
    static = static_config(provider, websecure="127.0.0.1:0")
    static["entryPoints"]["websecure"]["transport"] = {
        "respondingTimeouts": {"readTimeout": "1s"}}
    gate = Wsgate(tmp_path, static)
    try:
        idle = socket.create_connection(("127.0.0.1", gate.ports["websecure"]),
                                        timeout=TIMEOUT)
        with idle:
            assert idle.recv(1) == b""  # closed by wsgate, well before TIMEOUT
    finally:
        gate.stop()


# -- reload ---------------------------------------------------------------------------------------

def test_a_reload_adds_a_certificate_under_a_live_session(tmp_path: Path, pki: PKI,
                                                          backend: int) -> None:
    old = pki.issue("old", ["old.test"])
    new = pki.issue("new", ["new.test"])
    url = f"http://127.0.0.1:{backend}"

    def dynamic(certs: list[Issued]) -> str:
        return yaml.safe_dump({
            "http": {
                "routers": {"r": {"rule": "Host(`old.test`) || Host(`new.test`)",
                                  "service": "s", "tls": {}}},
                "services": {"s": {"loadBalancer": {"servers": [{"url": url}]}}},
            },
            "tls": {"certificates": [{"certFile": str(c.cert_path), "keyFile": str(c.key_path)}
                                     for c in certs]},
        })

    provider = tmp_path / "dynamic.yml"
    provider.write_text(dynamic([old]))
    static = static_config(provider, websecure="127.0.0.1:0")
    static["providers"]["file"]["watch"] = True
    gate = Wsgate(tmp_path, static)
    try:
        port = gate.ports["websecure"]
        with wss(port, "old.test", "/", pki.client_context()) as live:
            assert echo(live, "before") == "before"
            with tls_socket(port, "new.test", insecure_client()) as sock:
                assert peer_common_name(sock) == DEFAULT_CERT_COMMON_NAME
            provider.write_text(dynamic([old, new]))
            gate.proc.wait_for_count(r"configuration applied", 2, timeout=15)
            assert echo(live, "during") == "during"
            with wss(port, "new.test", "/", pki.client_context()) as fresh:
                assert echo(fresh, "new certificate") == "new certificate"
            for i in range(20):
                assert echo(live, f"after {i}") == f"after {i}"
    finally:
        gate.stop()


def test_wsgate_logs_refused_tls_options(tmp_path: Path, pki: PKI, backend: int) -> None:
    """A router naming options whose CA file is missing: its handshakes are refused and the
    log says why; the other routers keep working."""
    cert = pki.issue("cfg", ["good.test", "bad.test"])
    provider = tmp_path / "dynamic.yml"
    provider.write_text(yaml.safe_dump({
        "http": {
            "routers": {"good": {"rule": "Host(`good.test`)", "service": "s", "tls": {}},
                        "bad": {"rule": "Host(`bad.test`)", "service": "s",
                                "tls": {"options": "broken"}}},
            "services": {"s": {"loadBalancer": {"servers": [
                {"url": f"http://127.0.0.1:{backend}"}]}}},
        },
        "tls": {"certificates": [{"certFile": str(cert.cert_path),
                                  "keyFile": str(cert.key_path)}],
                "options": {"broken": {"clientAuth": {
                    "caFiles": [str(tmp_path / "missing-ca.pem")]}}}},
    }))
    gate = Wsgate(tmp_path, static_config(provider, websecure="127.0.0.1:0"))
    try:
        port = gate.ports["websecure"]
        gate.proc.wait_for(r"TLS options broken@file cannot be used.*missing-ca\.pem")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_socket(port, "bad.test", pki.client_context()).close()
        with wss(port, "good.test", "/", pki.client_context()) as conn:
            assert echo(conn, "fine") == "fine"
    finally:
        gate.stop()

