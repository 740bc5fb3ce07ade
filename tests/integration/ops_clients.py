"""Clients for the end-to-end operations tests (test_ops_end_to_end*.py): plain requests that
wait until wsgate has closed the connection, WebSocket sessions with known frame sizes, a
Prometheus scrape parsed into exact series, and readiness of a wsgate that logs nothing.

Every request sends ``Connection: close`` and reads until the server's EOF. wsgate closes the
socket and runs its connection-closed observer in the same reactor turn, so the next request
(a scrape) is accepted only after the counts of the previous one are final: the tests compare
counters exactly without waiting for anything else.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Proc, RawHTTP, Response, ws_connect

#: Client frames are masked: 2 header bytes and a 4-byte mask before a short payload.
CLIENT_FRAME_OVERHEAD = 6
#: Server frames are not masked.
SERVER_FRAME_OVERHEAD = 2
#: A client close frame with a code and no reason; the backend's echo of it.
CLIENT_CLOSE_BYTES = CLIENT_FRAME_OVERHEAD + 2
SERVER_CLOSE_BYTES = SERVER_FRAME_OVERHEAD + 2


def http(port: int, path: str, *, method: str = "GET", host: str = "app.test",
         headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
         timeout: float = 10.0) -> Response:
    """One request on a new connection; returns after wsgate closed that connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers)]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    with RawHTTP(port, timeout) as conn:
        conn.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        response = conn.response(method)
        assert conn.at_eof(), f"{method} {path}: wsgate kept the connection open"
    return response


def echo_session(port: int, path: str, messages: Iterable[str], *,
                 host: str = "app.test", **options: Any) -> tuple[int, int]:
    """A WebSocket session with an echo backend, closed by the client with 1000.

    Returns the bytes the client sent and the bytes the backend sent after the 101, frame
    headers included (messages shorter than 126 bytes, no pings, no compression)."""
    sent = received = 0
    with ws_connect(port, host, path, ping_interval=None, **options) as ws:
        for message in messages:
            ws.send(message)
            assert ws.recv(timeout=10) == message
            size = len(message.encode())
            assert size < 126
            sent += CLIENT_FRAME_OVERHEAD + size
            received += SERVER_FRAME_OVERHEAD + size
    assert ws.close_code == 1000
    return sent + CLIENT_CLOSE_BYTES, received + SERVER_CLOSE_BYTES


def refused_upgrade(port: int, path: str, *, host: str = "app.test") -> Response:
    """An upgrade request that wsgate (or the backend) answers without a 101."""
    response = http(port, path, host=host, headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
    assert response.status != 101
    return response


class Scrape:
    """One exposition, as samples: ``value(name, **labels)`` matches the labels exactly."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]

    def series(self, name: str, **where: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of ``name`` whose labels include ``where``, keyed by the sorted
        labels left once ``where`` is removed."""
        out = {}
        for sample, labels, value in self.samples:
            if sample != name or any(labels.get(k) != v for k, v in where.items()):
                continue
            rest = tuple(sorted((k, v) for k, v in labels.items() if k not in where))
            out[rest] = value
        return out

    def value(self, name: str, **labels: str) -> float | None:
        for sample, found, value in self.samples:
            if sample == name and found == labels:
                return value
        return None

    def names(self) -> set[str]:
        return {sample for sample, _, _ in self.samples}


def scrape(port: int, path: str = "/metrics") -> Scrape:
    response = http(port, path)
    assert response.status == 200, response
    return Scrape(response.body.decode())


def connect_when_listening(proc: Proc, port: int, timeout: float = 20.0) -> None:
    """Wait until wsgate accepts on ``port``, for a wsgate whose log level prints no line to
    wait for. Each refused attempt waits on the process's exit (so a crash fails at once)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listening on {port} within {timeout}s; "
                                     f"output:\n{proc.output()}") from None
            try:
                code = proc.popen.wait(0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"wsgate exited ({code}); output:\n{proc.output()}") \
                from None
