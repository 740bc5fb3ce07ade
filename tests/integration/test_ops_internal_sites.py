"""The internal services (api, dashboard, ping, prometheus) on real sockets on 127.0.0.1,
each listening on a port of its own, driven by Twisted clients (pytest-twisted)."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.config.static import StaticConfig, finalize_static
from wsgate.ops.observer import RequestRecord, SessionRecord
from wsgate.ops.wiring import (
    OpsObserver,
    build_internal_services,
    build_observer,
    stop_internal_services,
)

STATIC = """
entryPoints: {web: {address: "127.0.0.1:0"}}
api: {insecure: true}
ping: {}
metrics: {prometheus: {addRoutersLabels: true}}
"""
DYNAMIC = """
http:
  routers:
    chat: {rule: "PathPrefix(`/chat`)", service: chat, entryPoints: [web]}
  services:
    chat: {loadBalancer: {servers: [{url: "http://127.0.0.1:9"}]}}
"""


class Stack:
    def __init__(self) -> None:
        self.static: StaticConfig = finalize_static(decode(
            StaticConfig, load_yaml(textwrap.dedent(STATIC), "static.yml")).value)
        dyn = decode(DynamicConfig, load_yaml(textwrap.dedent(DYNAMIC), "dyn.yml"))
        self.runtime: RuntimeConfig = build_runtime(
            {"file": dyn}, entry_points=list(self.static.entry_points),
            internal_services=("api@internal", "dashboard@internal", "ping@internal",
                               "prometheus@internal"))
        self.observer: OpsObserver = build_observer(self.static, reactor=reactor)
        self.observer.runtime_changed(self.runtime)
        self.services = build_internal_services(self.static, lambda: self.runtime,
                                                self.observer, reactor=reactor)
        self.ports: dict[str, Any] = {}
        for name, factory in self.services.items():
            self.ports[name] = reactor.listenTCP(0, factory, interface="127.0.0.1")

    def url(self, service: str, path: str) -> bytes:
        return f"http://127.0.0.1:{self.ports[service].getHost().port}{path}".encode()

    def stop(self) -> defer.Deferred[Any]:
        return defer.gatherResults([p.stopListening() for p in self.ports.values()])


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    pytest_twisted.blockon(s.stop())


class RawResponse(Protocol):
    """Reads until the server closes: internal services answer one request per connection,
    so this only returns if the server did close."""

    def __init__(self, request: bytes, done: defer.Deferred[bytes]) -> None:
        self.request = request
        self.done = done
        self.data = b""

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(self.data)


async def get(url: bytes, headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, list[str]], bytes]:
    """GET over a raw HTTP/1.1 connection (kept alive as far as the client is concerned)."""
    rest = url.decode().split("://", 1)[1]
    authority, _, path = rest.partition("/")
    host, _, port = authority.partition(":")
    lines = [f"GET /{path} HTTP/1.1", f"Host: {authority}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    done: defer.Deferred[bytes] = defer.Deferred()
    endpoint = TCP4ClientEndpoint(reactor, host, int(port))
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    await endpoint.connect(Factory.forProtocol(lambda: RawResponse(request, done)))
    timeout = reactor.callLater(10, done.errback, TimeoutError(url))
    raw = await done
    if timeout.active():
        timeout.cancel()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[1]), found, body


@pytest_twisted.ensureDeferred
async def test_api_over_http(stack: Stack) -> None:
    code, headers, body = await get(stack.url("api@internal", "/api/http/routers"))
    assert code == 200
    assert headers["content-type"] == ["application/json"]
    assert headers["x-next-page"] == ["1"]
    # one request per connection (the next one must be routed again), no Server header
    assert headers["connection"] == ["close"]
    assert "server" not in headers
    assert [r["name"] for r in json.loads(body)] == ["chat@file"]
    code, _, body = await get(stack.url("api@internal", "/api/rawdata"))
    assert set(json.loads(body)["services"]) >= {"chat@file", "api@internal"}
    code, _, body = await get(stack.url("api@internal", "/api/http/routers/missing"))
    assert code == 404 and json.loads(body) == {"message": "router not found: missing"}
    code, _, body = await get(stack.url("api@internal", "/dashboard/"))
    assert code == 200 and body.startswith(b"<!DOCTYPE html>")


@pytest_twisted.ensureDeferred
async def test_dashboard_service_redirects_root(stack: Stack) -> None:
    code, headers, _ = await get(stack.url("dashboard@internal", "/"))
    assert code == 301 and headers["location"] == ["/dashboard/"]


@pytest_twisted.ensureDeferred
async def test_ping_and_terminating(stack: Stack) -> None:
    code, _, body = await get(stack.url("ping@internal", "/ping"))
    assert (code, body) == (200, b"OK")
    stack.services["ping@internal"].set_terminating()  # type: ignore[attr-defined]
    code, _, body = await get(stack.url("ping@internal", "/ping"))
    assert (code, body) == (503, b"Service Unavailable")


@pytest_twisted.ensureDeferred
async def test_metrics_match_the_recorded_traffic(stack: Stack) -> None:
    obs = stack.observer
    for status in (200, 200, 500):
        obs.request_done(RequestRecord("web", "GET", "/chat", status=status, duration=0.01,
                                       router="chat@file", service="chat@file",
                                       server_url="http://127.0.0.1:9", response_bytes=7))
    session = SessionRecord(RequestRecord("web", "GET", "/chat", status=101,
                                          router="chat@file", service="chat@file",
                                          server_url="http://127.0.0.1:9",
                                          protocol="websocket"))
    obs.websocket_opened(session)
    code, headers, body = await get(stack.url("prometheus@internal", "/metrics"))
    assert code == 200
    assert headers["content-type"][0].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def v(name: str, **labels: str) -> float | None:
        return found.get((name, tuple(sorted(labels.items()))))

    assert v("traefik_router_requests_total", code="200", method="GET", protocol="http",
             router="chat@file", service="chat@file") == 2
    assert v("traefik_service_requests_total", code="500", method="GET", protocol="http",
             service="chat@file") == 1
    assert v("traefik_entrypoint_requests_total", code="101", method="GET",
             protocol="websocket", entrypoint="web") == 1
    assert v("wsgate_router_open_websockets", router="chat@file", service="chat@file") == 1
    obs.websocket_closed(session)


class LiveClient(WebSocketClientProtocol):  # type: ignore[misc]
    def onConnect(self, response: Any) -> None:
        self.factory.connected.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.append(json.loads(payload))
        waiting, self.factory.waiting = self.factory.waiting, []
        for d in waiting:
            d.callback(None)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.connected.called:
            self.factory.connected.errback(ConnectionError(f"closed: {code} {reason}"))
        self.factory.closed.callback(code)


async def live_client(port: int, origin: str | None = None) -> WebSocketClientFactory:
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/api/ws", origin=origin)
    factory.protocol = LiveClient
    factory.connected = defer.Deferred()
    factory.closed = defer.Deferred()
    factory.messages = []
    factory.waiting = []
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    await endpoint.connect(factory)
    factory.instance = await factory.connected
    return factory


async def next_message(factory: WebSocketClientFactory, predicate: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        for message in factory.messages:
            if predicate(message):
                return message  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, factory.messages
        d: defer.Deferred[None] = defer.Deferred()
        factory.waiting.append(d)
        timeout = reactor.callLater(10, d.callback, None)
        await d
        if timeout.active():
            timeout.cancel()


@pytest_twisted.ensureDeferred
async def test_live_counts_are_pushed(stack: Stack) -> None:
    port = stack.ports["api@internal"].getHost().port
    client = await live_client(port, origin=f"http://127.0.0.1:{port}")
    first = await next_message(client, lambda m: True)
    assert first["websockets"]["total"] == 0
    session = SessionRecord(RequestRecord("web", "GET", "/chat", status=101,
                                          router="chat@file", service="chat@file",
                                          server_url="http://127.0.0.1:9"))
    stack.observer.websocket_opened(session)
    pushed = await next_message(client, lambda m: m["websockets"]["total"] == 1)
    assert pushed["websockets"]["routers"] == {"chat@file": 1}
    stack.observer.websocket_closed(session)
    await next_message(client, lambda m: m["websockets"]["total"] == 0
                       and m is not first)
    client.instance.sendClose(1000)
    assert await client.closed == 1000


@pytest_twisted.ensureDeferred
async def test_stopping_closes_dashboards_with_1001(stack: Stack) -> None:
    client = await live_client(stack.ports["api@internal"].getHost().port)
    stop_internal_services(stack.services)
    assert await client.closed == 1001


@pytest_twisted.ensureDeferred
async def test_live_counts_refuse_other_origins(stack: Stack) -> None:
    port = stack.ports["api@internal"].getHost().port
    with pytest.raises(ConnectionError):
        await live_client(port, origin="http://evil.example")
