"""Active health checks end to end: a real wsgate probing real backends takes a failing
server out of the rotation and puts it back when it recovers, for mode http (the backend's
/health answers 500, then 200) and for wsgate's mode websocket (the backend refuses upgrades
with 503, then accepts them again). Transitions are awaited on wsgate's log lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    Proc,
    Wsgate,
    free_port,
    request,
    start_http_backend,
    start_ws_backends,
    ws_connect,
)

#: Probes every 100 ms: a transition shows within a few tenths of a second.
CHECK = {"interval": "100ms", "timeout": "2s"}


@pytest.fixture(scope="module")
def http_peers() -> Iterator[tuple[int, int]]:
    a, a_port = start_http_backend("a")
    b, b_port = start_http_backend("b")
    try:
        yield a_port, b_port
    finally:
        a.stop()
        b.stop()


@pytest.fixture(scope="module")
def ws_peers() -> Iterator[list[int]]:
    proc, ports = start_ws_backends(2)
    try:
        yield ports
    finally:
        proc.stop()


def start(tmp_path: Path, services: dict[str, Any]) -> Wsgate:
    static = {"log": {"level": "INFO"}, "entryPoints": {"web": {"address": "127.0.0.1:0"}}}
    routers = {name: {"rule": f"Host(`{name}.test`)", "service": name} for name in services}
    return Wsgate(tmp_path, static, {"http": {"routers": routers, "services": services}})


def transition(url: str, service: str, state: str, reason: str = "") -> str:
    return (rf"health check: server {re.escape(url)} of service {re.escape(service)} is "
            rf"{state}\b.*{re.escape(reason)}")


def http_backends(port: int, host: str, n: int = 12) -> list[str]:
    seen = []
    for _ in range(n):
        response = request(port, b"GET /lb HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        assert response.status == 200, response
        seen.append(json.loads(response.body)["backend"])
    return seen


def control(port: int, path: str) -> None:
    response = request(port, b"GET %s HTTP/1.1\r\nHost: control\r\n\r\n" % path.encode())
    assert response.status == 200, response


def test_http_mode_takes_a_failing_server_out_and_puts_it_back(
        tmp_path: Path, http_peers: tuple[int, int]) -> None:
    a_port, b_port = http_peers
    refused = free_port()
    a, b, dead = (f"http://127.0.0.1:{p}" for p in (a_port, b_port, refused))
    gw = start(tmp_path, {"hc": {"loadBalancer": {
        "servers": [{"url": a}, {"url": b}, {"url": dead}],
        "healthCheck": {"path": "/health", **CHECK}}}})
    log: Proc = gw.proc
    try:
        port = gw.ports["web"]
        # Probed at start: a server that refuses connections is out before any traffic.
        log.wait_for(transition(dead, "hc@file", "DOWN", "connection refused"))
        assert sorted(set(http_backends(port, "hc.test"))) == ["a", "b"]

        control(a_port, "/set-health/500")
        log.wait_for(transition(a, "hc@file", "DOWN", "status 500 (expected 200-399)"))
        assert http_backends(port, "hc.test") == ["b"] * 12

        control(a_port, "/set-health/200")
        log.wait_for(transition(a, "hc@file", "UP", "status 200"))
        assert http_backends(port, "hc.test").count("a") == 6
        # Probes went on failing while it was down: one line per transition, not per probe.
        assert log.count(transition(a, "hc@file", "DOWN")) == 1

        # No healthy server at all: the proxy answers 503 itself.
        control(a_port, "/set-health/503")
        control(b_port, "/set-health/503")
        log.wait_for(transition(b, "hc@file", "DOWN", "status 503"))
        log.wait_for_count(transition(a, "hc@file", "DOWN"), 2)
        response = request(port, b"GET /lb HTTP/1.1\r\nHost: hc.test\r\n\r\n")
        assert response.status == 503
    finally:
        control(a_port, "/set-health/200")
        control(b_port, "/set-health/200")
        gw.stop()


def _ws_port(gw_port: int, held: list[tuple[Any, int]], stack: ExitStack) -> int:
    """Open a session through wsgate (kept open in ``held``); the backend port it is on."""
    ws = stack.enter_context(ws_connect(gw_port, "wshc.test", "/id"))
    message = ws.recv(timeout=10)
    assert message.startswith("id ")
    backend = int(message.split()[1])
    held.append((ws, backend))
    return backend


def test_websocket_mode_takes_a_server_refusing_upgrades_out_and_puts_it_back(
        tmp_path: Path, ws_peers: list[int]) -> None:
    one, two = ws_peers
    url_one, url_two = f"http://127.0.0.1:{one}", f"http://127.0.0.1:{two}"
    gw = start(tmp_path, {"wshc": {"loadBalancer": {
        "servers": [{"url": url_one}, {"url": url_two}],
        "healthCheck": {"mode": "websocket", "path": "/health", **CHECK}}}})
    held: list[tuple[Any, int]] = []
    stack = ExitStack()
    try:
        port = gw.ports["web"]
        assert sorted({_ws_port(port, held, stack) for _ in range(4)}) == sorted(ws_peers)
        on_one = next(ws for ws, backend in held if backend == one)

        control(one, "/set-upgrades/off")
        gw.proc.wait_for(transition(url_one, "wshc@file", "DOWN",
                                    "status 503 (expected 101)"))
        assert [_ws_port(port, held, stack) for _ in range(6)] == [two] * 6
        plain = [request(port, b"GET /id HTTP/1.1\r\nHost: wshc.test\r\n\r\n").body
                 for _ in range(4)]
        assert plain == [str(two).encode()] * 4
        # Without wsgate.closeOnUnhealthy (Traefik's behaviour) a live session stays open.
        on_one.send("still here")
        assert on_one.recv(timeout=10) == "still here"

        control(one, "/set-upgrades/on")
        gw.proc.wait_for(transition(url_one, "wshc@file", "UP", "status 101"))
        assert sorted({_ws_port(port, held, stack) for _ in range(4)}) == sorted(ws_peers)
        assert gw.proc.count(transition(url_one, "wshc@file", "DOWN")) == 1
    finally:
        control(one, "/set-upgrades/on")
        stack.close()
        gw.stop()
