"""Answers wsgate makes itself (no router, no server) follow the request's method."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.integration.harness import Wsgate


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_head_gets_no_body_and_get_does(tmp_path: Path) -> None:
    gate = Wsgate(tmp_path, {"entryPoints": {"web": {"address": "127.0.0.1:0"}}},
                  {"http": {"routers": {"r": {"rule": "Host(`empty.test`)", "service": "s"}},
                            "services": {"s": {"loadBalancer": {"servers": []}}}}})
    try:
        port = gate.ports["web"]
        for host, status in (("nowhere.test", b"404"), ("empty.test", b"503")):
            got = _exchange(port, b"GET / HTTP/1.1\r\nHost: " + host.encode() +
                            b"\r\nConnection: close\r\n\r\n")
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 " + status), got
            assert body, got
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert len(body) == length
            got = _exchange(port, b"HEAD / HTTP/1.1\r\nHost: " + host.encode() +
                            b"\r\nConnection: close\r\n\r\n")
            head, sep, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 " + status) and sep, got
            assert body == b"", got
            assert b"content-length: " + str(length).encode() in head.lower()
    finally:
        gate.stop()
