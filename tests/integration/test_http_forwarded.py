"""Forwarded headers as Traefik sets them (reference §6.1–2), Host handling, hop-by-hop request
headers; the http backend answers with the request head it received."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.integration.harness import Wsgate, request, ws_connect

SPOOFED = (b"X-Forwarded-For: 1.2.3.4\r\n"
           b"X-Forwarded-Proto: https\r\n"
           b"X-Forwarded-Host: evil.example\r\n"
           b"X-Forwarded-Port: 8443\r\n"
           b"X-Forwarded-Server: evil-server\r\n"
           b"X-Real-Ip: 9.9.9.9\r\n"
           b"X-Forwarded-Uri: /evil\r\n"
           b"X_Forwarded_For: 5.5.5.5\r\n")


def _seen(port: int, head: bytes) -> tuple[list[tuple[str, str]], dict[str, list[str]], Any]:
    response = request(port, head)
    assert response.status == 200, response
    info = json.loads(response.body)
    pairs = [(n, v) for n, v in info["headers"]]
    by_name: dict[str, list[str]] = {}
    for n, v in pairs:
        by_name.setdefault(n.lower(), []).append(v)
    return pairs, by_name, info


def test_untrusted_client_cannot_set_forwarded_headers(gateway: Wsgate) -> None:
    port = gateway.ports["web"]
    _, seen, _ = _seen(port, b"GET /fwd HTTP/1.1\r\nHost: http.test\r\n" + SPOOFED + b"\r\n")
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == ["http.test"]
    assert seen["x-forwarded-port"] == ["80"]  # no port in Host, plain HTTP
    assert seen["x-forwarded-server"] == [socket.gethostname()]
    assert seen["x-real-ip"] == ["127.0.0.1"]
    assert "x-forwarded-uri" not in seen
    assert "x_forwarded_for" not in seen


def test_forwarded_port_from_host(gateway: Wsgate) -> None:
    port = gateway.ports["web"]
    _, seen, _ = _seen(port, b"GET /fwd HTTP/1.1\r\nHost: http.test:%d\r\n\r\n" % port)
    assert seen["x-forwarded-port"] == [str(port)]
    assert seen["x-forwarded-host"] == [f"http.test:{port}"]


@pytest.mark.parametrize("entrypoint", ["trusted", "insecure"])
def test_trusted_client_forwarded_headers_are_kept(gateway: Wsgate, entrypoint: str) -> None:
    port = gateway.ports[entrypoint]
    _, seen, _ = _seen(port, b"GET /fwd HTTP/1.1\r\nHost: http.test\r\n" + SPOOFED + b"\r\n")
    assert seen["x-forwarded-for"] == ["1.2.3.4, 127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["https"]
    assert seen["x-forwarded-host"] == ["evil.example"]
    assert seen["x-forwarded-port"] == ["8443"]
    assert seen["x-real-ip"] == ["9.9.9.9"]
    assert seen["x-forwarded-uri"] == ["/evil"]
    assert seen["x_forwarded_for"] == ["5.5.5.5"]
    # Always the proxy's own name.
    assert seen["x-forwarded-server"] == [socket.gethostname()]


def test_trusted_client_several_x_forwarded_for_are_folded(gateway: Wsgate) -> None:
    port = gateway.ports["trusted"]
    _, seen, _ = _seen(port, b"GET /fwd HTTP/1.1\r\nHost: http.test\r\n"
                             b"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n"
                             b"\r\n")
    assert seen["x-forwarded-for"] == ["1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"]


@pytest.mark.parametrize("entrypoint", ["web", "trusted"])
def test_websocket_upgrade_forwarded_proto_is_ws(gateway: Wsgate, entrypoint: str) -> None:
    port = gateway.ports[entrypoint]
    with ws_connect(port, "ws.test", "/headers") as ws:
        info = json.loads(ws.recv(timeout=10))
    seen = {k.lower(): v for k, v in info["headers"]}
    assert seen["x-forwarded-proto"] == "ws"
    assert seen["x-forwarded-for"] == "127.0.0.1"


def test_pass_host_header_true_keeps_the_clients_host(gw_port: int) -> None:
    _, seen, _ = _seen(gw_port, b"GET /h HTTP/1.1\r\nHost: http.test:1234\r\n\r\n")
    assert seen["host"] == ["http.test:1234"]


def test_pass_host_header_false_sends_the_servers_authority(gw_port: int,
                                                            peers: Any) -> None:
    pairs, seen, _ = _seen(gw_port, b"GET /h HTTP/1.1\r\nHost: nohost.test\r\n\r\n")
    assert seen["host"] == [f"127.0.0.1:{peers.http_a_port}"]
    assert seen["x-forwarded-host"] == ["nohost.test"]  # the client's Host is not lost
    assert [n.lower() for n, _ in pairs].count("host") == 1


def test_pass_host_header_false_for_websocket(gw_port: int, peers: Any) -> None:
    with ws_connect(gw_port, "ws-nohost.test", "/headers") as ws:
        info = json.loads(ws.recv(timeout=10))
    seen = {k.lower(): v for k, v in info["headers"]}
    assert seen["host"] == f"127.0.0.1:{peers.ws_ports[0]}"
    assert seen["x-forwarded-host"] == f"ws-nohost.test:{gw_port}"
    assert seen["x-forwarded-proto"] == "ws"


def test_hop_by_hop_request_headers_are_removed(gw_port: int) -> None:
    _, seen, info = _seen(
        gw_port,
        b"GET /hop HTTP/1.1\r\nHost: http.test\r\n"
        b"Connection: keep-alive, X-Drop-Me, x-also-dropped\r\n"
        b"X-Drop-Me: 1\r\nX-Also-Dropped: 2\r\nX-Kept: 3\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
        b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
        b"TE: trailers, deflate\r\nTrailer: X-Checksum\r\nUpgrade: h2c\r\n\r\n")
    for hop in ("connection", "keep-alive", "proxy-connection", "proxy-authorization",
                "trailer", "upgrade", "x-drop-me", "x-also-dropped"):
        assert hop not in seen, hop
    assert seen["te"] == ["trailers"]  # kept only as "trailers", as Go's proxy does
    assert seen["x-kept"] == ["3"]
    assert info["version"] == "HTTP/1.1"


def test_header_order_and_casing_are_kept(gw_port: int) -> None:
    pairs, _, _ = _seen(gw_port, b"GET /order HTTP/1.1\r\nHost: http.test\r\n"
                                 b"x-lower: 1\r\nX-UPPER: 2\r\nX-Mixed-Case: 3\r\n"
                                 b"X-Dup: a\r\nX-Dup: b\r\n\r\n")
    names = [n for n, _ in pairs]
    assert names[:6] == ["Host", "x-lower", "X-UPPER", "X-Mixed-Case", "X-Dup", "X-Dup"]
    assert [v for n, v in pairs if n == "X-Dup"] == ["a", "b"]
