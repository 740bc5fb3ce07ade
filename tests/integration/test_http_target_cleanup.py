"""The entryPoint's request-target clean-up, as Traefik's, with sanitizePath on and off."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.integration.harness import Wsgate, start_http_backend


def _target_seen(port: int, target: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:200]
    return str(json.loads(body)["target"])


def test_sanitize_path_on_and_off(tmp_path: Path) -> None:
    backend, backend_port = start_http_backend("b")
    static = {"entryPoints": {
        "clean": {"address": "127.0.0.1:0"},
        "raw": {"address": "127.0.0.1:0", "http": {"sanitizePath": False,
                                                   "encodeQuerySemicolons": True}},
    }}
    dynamic = {"http": {
        "routers": {"r": {"rule": "Host(`t.test`)", "service": "s"}},
        "services": {"s": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{backend_port}"}]}}},
    }}
    gate = Wsgate(tmp_path, static, dynamic)
    try:
        target = "/a/./b/../c//d/%65%2f?x=1;y=2"
        # escapes normalised on both (unreserved decoded, hex upper-cased, %2F kept)
        assert _target_seen(gate.ports["clean"], target) == "/a/c/d/e%2F?x=1&y=2"
        assert _target_seen(gate.ports["raw"], target) == "/a/./b/../c//d/e%2F?x=1%3By=2"
        # an already clean target passes untouched
        assert _target_seen(gate.ports["clean"], "/p%3Aq?z=%2F") == "/p%3Aq?z=%2F"
    finally:
        gate.stop()
        backend.stop()
