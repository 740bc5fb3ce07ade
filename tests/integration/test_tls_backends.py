"""TLS to backends on real sockets: verification on by default, its refusals answered 502 and
logged with the reason and the backend's address, insecureSkipVerify per transport, rootCAs,
serverName, client certificates, a backend offering h2, and the seed's end-to-end example.

The client side (client to wsgate) is plain ws:// here except in the seed example, so that
everything observed is about the backend leg.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests import seed
from tests.integration.harness import Proc, Wsgate, start_wss_backends
from tests.integration.tls_clients import TIMEOUT, echo, seed_dynamic_file, seed_static, wss
from tests.tlspki import PKI, Issued


@dataclass
class Backends:
    proc: Proc
    ports: dict[str, int]
    certs: dict[str, Issued]

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.ports[name]}"

    def requests(self, name: str) -> int:
        return self.proc.count(rf"^request {re.escape(name)} ")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def backends(pki: PKI) -> Iterator[Backends]:
    certs = {
        "good": pki.issue("good", ["127.0.0.1", "backend.test"]),
        "wrong": pki.issue("wrong", ["other.test"]),
        "expired": pki.expired("expired", ["127.0.0.1"]),
        "selfsigned": pki.self_signed("selfsigned", ["127.0.0.1"]),
        "named": pki.issue("named", ["backend.internal"]),
        "mtls": pki.issue("mtls", ["127.0.0.1"]),
        "proxy": pki.issue("proxy", ["wsgate"], client=True),
    }
    specs = {name: f"{c.cert_path},{c.key_path}" for name, c in certs.items()
             if name != "proxy"}
    specs["good"] += ",alpn=h2+http/1.1"
    specs["mtls"] += f",client_ca={pki.ca_path}"
    proc, ports = start_wss_backends(specs)
    yield Backends(proc, ports, certs)
    proc.stop()


# host -> (backend, serversTransport or None for the static default)
ROUTES = {
    "good.test": ("good", "verified"),
    "wrong.test": ("wrong", "verified"),
    "expired.test": ("expired", "verified"),
    "selfsigned.test": ("selfsigned", "verified"),
    "unknownca.test": ("good", None),
    "insecure-wrong.test": ("wrong", "insecure"),
    "insecure-expired.test": ("expired", "insecure"),
    "insecure-selfsigned.test": ("selfsigned", "insecure"),
    "named.test": ("named", "named"),
    "named-without.test": ("named", "verified"),
    "mtls.test": ("mtls", "mtls"),
    "mtls-missing.test": ("mtls", "verified"),
}


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, pki: PKI,
         backends: Backends) -> Iterator[Wsgate]:
    tmp = tmp_path_factory.mktemp("backends")
    proxy = backends.certs["proxy"]
    routers, services = {}, {}
    for i, (host, (backend, transport)) in enumerate(ROUTES.items()):
        lb: dict[str, Any] = {"servers": [{"url": backends.url(backend)}]}
        if transport is not None:
            lb["serversTransport"] = transport
        services[f"s{i}"] = {"loadBalancer": lb}
        routers[f"r{i}"] = {"rule": f"Host(`{host}`)", "service": f"s{i}"}
    dynamic = {"http": {
        "routers": routers,
        "services": services,
        "serversTransports": {
            "verified": {"rootCAs": [str(pki.ca_path)]},
            "insecure": {"insecureSkipVerify": True},
            "named": {"rootCAs": [pki.ca_pem], "serverName": "backend.internal"},
            "mtls": {"rootCAs": [str(pki.ca_path)], "certificates": [
                {"certFile": str(proxy.cert_path), "keyFile": str(proxy.key_path)}]},
        },
    }}
    provider = tmp / "dynamic.yml"
    provider.write_text(yaml.safe_dump(dynamic))
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"}},
              "providers": {"file": {"filename": str(provider), "watch": False}},
              "log": {"level": "DEBUG"}}
    wsgate = Wsgate(tmp, static)
    yield wsgate
    wsgate.stop()


def ws(gate: Wsgate, host: str, path: str = "/") -> ClientConnection:
    port = gate.ports["web"]
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return connect(f"ws://{host}:{port}{path}", sock=raw, open_timeout=TIMEOUT,
                   close_timeout=2)


def refused(gate: Wsgate, host: str) -> int:
    with pytest.raises(InvalidStatus) as info:
        ws(gate, host).close()
    return info.value.response.status_code


def test_a_verified_backend_that_also_offers_h2_still_upgrades(gate: Wsgate) -> None:
    with ws(gate, "good.test", "/tls") as conn:
        seen = json.loads(conn.recv(timeout=TIMEOUT))
        assert seen["alpn"] == "http/1.1"
        assert seen["sni"] is None  # the URL host is an IP address: no SNI
        assert echo(conn, "end to end") == "end to end"


@pytest.mark.parametrize(("host", "backend", "why"), [
    ("wrong.test", "wrong", r"wrong host: the certificate is for other\.test, not 127\.0\.0\.1"),
    ("expired.test", "expired", r"certificate has expired"),
    ("selfsigned.test", "selfsigned", r"self-signed certificate"),
    ("unknownca.test", "good", r"unknown certificate authority"),
    ("named-without.test", "named", r"wrong host"),
])
def test_verification_failures_answer_502_and_log_why(gate: Wsgate, backends: Backends,
                                                      host: str, backend: str,
                                                      why: str) -> None:
    before = backends.requests(backend)
    assert refused(gate, host) == 502
    address = re.escape(f"127.0.0.1:{backends.ports[backend]}")
    line = gate.proc.wait_for(rf"502 .*{address}.*TLS verification failed: {why}")
    assert "GET /" in line.string
    # Nothing of the request reached the refused backend.
    assert backends.requests(backend) == before


@pytest.mark.parametrize("host", ["insecure-wrong.test", "insecure-expired.test",
                                  "insecure-selfsigned.test"])
def test_insecure_skip_verify_only_where_configured(gate: Wsgate, host: str) -> None:
    with ws(gate, host) as conn:
        assert echo(conn, host) == host


def test_insecure_skip_verify_is_warned_once_at_load(gate: Wsgate) -> None:
    assert gate.proc.count(r"serversTransport insecure@file: insecureSkipVerify is set") == 1
    assert gate.proc.count(r"insecureSkipVerify is set") == 1


def test_server_name_overrides_the_host_for_verification_and_sni(gate: Wsgate) -> None:
    with ws(gate, "named.test", "/tls") as conn:
        assert json.loads(conn.recv(timeout=TIMEOUT))["sni"] == "backend.internal"


def test_client_certificate_to_the_backend(gate: Wsgate) -> None:
    with ws(gate, "mtls.test") as conn:
        assert echo(conn, "mutual") == "mutual"
    assert refused(gate, "mtls-missing.test") == 502


def test_plain_http_over_https(gate: Wsgate) -> None:
    port = gate.ports["web"]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: good.test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello\n")


# -- the seed's end-to-end example ----------------------------------------------------------------

@pytest.mark.parametrize("tab", [seed.YAML, seed.TOML])
def test_seed_end_to_end_with_insecure_skip_verify(tmp_path: Path, pki: PKI,
                                                   backends: Backends, tab: str) -> None:
    cert = pki.issue("e2e", ["wss.example.com"])
    dynamic = seed_dynamic_file(tmp_path, "End-to-End WebSocket Secure (WSS)", tab,
                                {"https://my-wss-server:8443": backends.url("selfsigned")},
                                cert)
    gate = Wsgate(tmp_path, seed_static(dynamic))
    try:
        with wss(gate.ports["websecure"], "wss.example.com", "/tls",
                 pki.client_context()) as conn:
            assert json.loads(conn.recv(timeout=TIMEOUT))["alpn"] is None
            assert echo(conn, "wss all the way") == "wss all the way"
        assert gate.proc.count(r"insecureTransport@file: insecureSkipVerify is set") == 1
    finally:
        gate.stop()
