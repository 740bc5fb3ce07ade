"""Shared peers and one shared wsgate for the data-path integration tests, and ``port``: the
plain entryPoint of a module's own wsgate (its ``gw`` fixture), for one test.

Starting a process costs about half a second on the test machine, so the peers and the main
wsgate live for the whole session; routing is by Host (``ws.test``, ``ab.test``...), one router
per scenario, which keeps each test independent of the others' traffic. Tests that need a
peer of their own (one they kill) use the ``victim`` ports, routed in advance.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.harness import (
    Proc,
    RecordingBackend,
    Wsgate,
    free_port,
    lb,
    start_ab_backend,
    start_http_backend,
    start_ws_backends,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: moves tens of MiB (still run by default; deselect with -m 'not slow')")


@dataclass
class Peers:
    ws: Proc
    ws_ports: list[int]
    ab: Proc
    ab_port: int
    http_a: Proc
    http_a_port: int
    http_b: Proc
    http_b_port: int
    recorder: RecordingBackend
    #: Answers one request per connection, then drops the connection on the next one.
    flaky: RecordingBackend
    #: Ports routed in advance for peers a test starts and kills itself.
    victim_ws_port: int
    victim_raw_port: int
    #: A listening socket whose accept queue is full: connecting to it hangs.
    blackhole: socket.socket
    blackhole_fillers: list[socket.socket] = field(default_factory=list)
    refused_port: int = 0


def _full_backlog_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener that never accepts, its queue filled so that new SYNs are dropped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    return listener, fillers


@pytest.fixture(scope="session")
def peers() -> Iterator[Peers]:
    ws, ws_ports = start_ws_backends(2)
    ab, ab_port = start_ab_backend()
    http_a, http_a_port = start_http_backend("a")
    http_b, http_b_port = start_http_backend("b")
    recorder = RecordingBackend()
    flaky = RecordingBackend(requests_per_connection=1)
    blackhole, fillers = _full_backlog_listener()
    p = Peers(ws, ws_ports, ab, ab_port, http_a, http_a_port, http_b, http_b_port, recorder,
              flaky,
              victim_ws_port=free_port(), victim_raw_port=free_port(), blackhole=blackhole,
              blackhole_fillers=fillers, refused_port=free_port())
    try:
        yield p
    finally:
        for proc in (ws, ab, http_a, http_b):
            proc.stop()
        recorder.close()
        flaky.close()
        for s in fillers:
            s.close()
        blackhole.close()


def gateway_config(p: Peers) -> tuple[dict[str, Any], dict[str, Any]]:
    static = {
        "log": {"level": "DEBUG"},
        "entryPoints": {
            "web": {"address": "127.0.0.1:0"},
            "trusted": {"address": "127.0.0.1:0",
                        "forwardedHeaders": {"trustedIPs": ["127.0.0.1/32"]}},
            "insecure": {"address": "127.0.0.1:0", "forwardedHeaders": {"insecure": True}},
            "short": {"address": "127.0.0.1:0", "transport": {"respondingTimeouts": {
                "readTimeout": "1s", "idleTimeout": "1s"}}},
        },
    }
    hosts = {
        "ws.test": "ws",
        "ws2.test": "ws2",
        "ab.test": "ab",
        "http.test": "http-a",
        "nohost.test": "nohost",
        "ws-nohost.test": "ws-nohost",
        "wrr.test": "wrr",
        "weighted.test": "weighted",
        "p2c.test": "p2c",
        "empty.test": "empty",
        "allzero.test": "allzero",
        "refused.test": "refused",
        "dial.test": "dial",
        "silent.test": "silent",
        "victim.test": "victim",
        "raw.test": "raw",
        "recorder.test": "recorder",
        "flaky.test": "flaky",
        "echo.test": "echo@internal",
        "prefixed.test": "prefixed",
        "wzero.test": "weighted-zero",
    }
    routers = {
        name: {"rule": f"Host(`{host}`)", "service": service}
        for host, service in hosts.items()
        for name in [host.replace(".", "-")]
    }
    services: dict[str, Any] = {
        "ws": lb(p.ws_ports[0]),
        "ws2": lb(p.ws_ports[1]),
        "ab": lb(p.ab_port),
        "http-a": lb(p.http_a_port),
        "http-b": lb(p.http_b_port),
        "nohost": lb(p.http_a_port, passHostHeader=False),
        "ws-nohost": lb(p.ws_ports[0], passHostHeader=False),
        "wrr": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{p.http_a_port}", "weight": 3},
            {"url": f"http://127.0.0.1:{p.http_b_port}", "weight": 1}]}},
        "weighted": {"weighted": {"services": [{"name": "http-a", "weight": 3},
                                               {"name": "http-b", "weight": 1}]}},
        "weighted-zero": {"weighted": {"services": [{"name": "http-a", "weight": 0}]}},
        "p2c": lb(*p.ws_ports, strategy="p2c"),
        "empty": {"loadBalancer": {"servers": []}},
        "allzero": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{p.http_a_port}", "weight": 0}]}},
        "refused": lb(p.refused_port),
        "dial": lb(p.blackhole.getsockname()[1], serversTransport="fast-dial"),
        "silent": lb(p.http_a_port, serversTransport="impatient"),
        "victim": lb(p.victim_ws_port),
        "raw": lb(p.victim_raw_port),
        "recorder": lb(p.recorder.port),
        "flaky": lb(p.flaky.port),
        "prefixed": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{p.http_a_port}/base/"}]}},
    }
    dynamic = {
        "http": {
            "routers": routers,
            "services": services,
            "serversTransports": {
                "fast-dial": {"forwardingTimeouts": {"dialTimeout": "1s"}},
                "impatient": {"forwardingTimeouts": {"responseHeaderTimeout": "1s"}},
            },
        },
    }
    return static, dynamic


@pytest.fixture(scope="session")
def gateway(peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wsgate]:
    static, dynamic = gateway_config(peers)
    with Wsgate(tmp_path_factory.mktemp("gateway"), static, dynamic) as gw:
        yield gw


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def web_port(gate: Wsgate, request: pytest.FixtureRequest) -> Iterator[int]:
    """The plain entryPoint of ``gate`` for one test; wsgate's log lines of the test are shown
    when it failed."""
    start = len(gate.proc.lines)
    yield gate.ports["web"]
    if request.node.stash.get(_FAILED, False):
        print("wsgate log during the test:\n" + "\n".join(gate.proc.lines[start:][-80:]))


@pytest.fixture
def gw_port(gateway: Wsgate, request: pytest.FixtureRequest) -> Iterator[int]:
    """The plain entryPoint of the shared gateway."""
    yield from web_port(gateway, request)


@pytest.fixture
def port(gw: Wsgate, request: pytest.FixtureRequest) -> Iterator[int]:
    """The plain entryPoint of a module's own wsgate, which that module provides as ``gw``."""
    yield from web_port(gw, request)
