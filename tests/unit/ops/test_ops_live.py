"""Live counts for the dashboard and the rate-limited push of snapshots."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from twisted.internet.task import Clock

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.runtime import build_runtime
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.ops.live import LiveHub, LiveState, same_origin
from wsgate.ops.observer import RequestRecord, SessionRecord


def session(router: str = "ws@file", service: str = "echo@file",
            server: str = "http://10.0.0.1:80") -> SessionRecord:
    return SessionRecord(RequestRecord("web", "GET", "/ws", status=101, router=router,
                                       service=service, server_url=server))


def test_counts_follow_sessions_and_connections() -> None:
    state = LiveState()
    a, b = session(), session(server="http://10.0.0.2:80")
    state.connection_opened("web")
    state.websocket_opened(a)
    state.websocket_opened(b)
    snap = state.snapshot()
    assert snap["connections"] == {"web": 1}
    assert snap["websockets"] == {
        "total": 2, "entryPoints": {"web": 2}, "routers": {"ws@file": 2},
        "services": {"echo@file": 2},
        "servers": {"echo@file": {"http://10.0.0.1:80": 1, "http://10.0.0.2:80": 1}}}
    state.websocket_closed(a)
    state.websocket_closed(b)
    state.connection_closed("web")
    snap = state.snapshot()
    assert snap["websockets"]["total"] == 0
    assert snap["websockets"]["routers"] == {} and snap["websockets"]["servers"] == {}
    assert snap["connections"] == {}


def test_health_reloads_and_generations() -> None:
    state = LiveState(clock=lambda: 42.0)
    state.server_up("echo@file", "http://10.0.0.1:80", False)
    assert state.server_status("echo@file") == {"http://10.0.0.1:80": "DOWN"}
    state.config_reloaded(True)
    dyn = decode(DynamicConfig, load_yaml(textwrap.dedent("""
    http:
      services:
        other: {loadBalancer: {servers: [{url: "http://10.0.0.9:80"}]}}
    """), "dyn.yml"))
    state.runtime_changed(build_runtime({"file": dyn}, entry_points=["web"]))
    snap = state.snapshot()
    assert snap["generation"] == 1
    assert snap["lastReloadSuccess"] is True and snap["lastReloadTime"] == 42.0
    # health of a service that is gone is forgotten
    assert state.server_status("echo@file") is None


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def sendMessage(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload))


def test_hub_pushes_changes_at_most_once_per_interval() -> None:
    clock = Clock()
    clock.advance(100)
    state = LiveState()
    hub = LiveHub(state, clock, interval=0.5)
    state.websocket_opened(session())  # nobody listens: nothing scheduled
    assert not clock.getDelayedCalls()
    client = FakeClient()
    hub.add(client)  # type: ignore[arg-type]
    assert client.sent[-1]["websockets"]["total"] == 1
    for _ in range(5):
        state.websocket_opened(session())
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert client.sent[-1]["websockets"]["total"] == 6 and len(client.sent) == 2
    state.websocket_opened(session())
    clock.advance(0.2)
    assert len(client.sent) == 2  # rate-limited
    clock.advance(0.3)
    assert client.sent[-1]["websockets"]["total"] == 7 and len(client.sent) == 3
    # a change that changes nothing visible sends nothing
    state.connection_opened("web")
    state.connection_closed("web")
    clock.advance(1)
    assert len(client.sent) == 3
    hub.discard(client)  # type: ignore[arg-type]
    state.websocket_opened(session())
    assert not clock.getDelayedCalls()


def test_same_origin() -> None:
    assert same_origin("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert same_origin("https://ops.example", "ops.example")
    assert same_origin("http://OPS.example", "ops.example:80")
    assert same_origin("http://[::1]:8080", "[::1]:8080")
    assert not same_origin("http://evil.example", "ops.example")
    assert not same_origin("http://ops.example:81", "ops.example")
    assert not same_origin("null", "ops.example")
