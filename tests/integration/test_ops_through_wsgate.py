"""The internal services behind wsgate's own entryPoint: routed by the routers Traefik creates
(internal_routers) and handed the connection by the data path, wired into WsgateService the
way docs/operations.md tells (in-process, on 127.0.0.1, port 0)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor

from tests.integration.test_ops_internal_sites import get, live_client, next_message
from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.config.static import StaticConfig, finalize_static
from wsgate.config.tree import from_plain
from wsgate.internal.registry import default_registry
from wsgate.ops.observer import RequestRecord, SessionRecord
from wsgate.ops.wiring import (
    OpsObserver,
    build_internal_services,
    build_observer,
    internal_configuration,
    set_terminating,
)
from wsgate.service import WsgateService

STATIC = """
entryPoints:
  web: {address: "127.0.0.1:0"}
  traefik: {address: "127.0.0.1:0"}
api: {insecure: true}
ping: {}
metrics: {prometheus: {}}
"""


class Running:
    def __init__(self) -> None:
        static: StaticConfig = finalize_static(decode(
            StaticConfig, load_yaml(textwrap.dedent(STATIC), "static.yml")).value)
        self.observer: OpsObserver = build_observer(static, reactor=reactor)
        registry = default_registry()
        self.service = WsgateService(static, reactor=reactor, registry=registry)
        self.services = build_internal_services(
            static, lambda: self.service.gateway.runtime, self.observer, reactor=reactor)
        for name, factory in self.services.items():
            registry.register(name, factory)
        self.service.provided["internal"] = decode(
            DynamicConfig, from_plain(internal_configuration(static), Mark("internal")))
        self.service.startService()
        self.observer.runtime_changed(self.service.gateway.runtime)  # type: ignore[arg-type]
        self.port = self.service.port_of("traefik")

    def url(self, path: str) -> bytes:
        return f"http://127.0.0.1:{self.port}{path}".encode()


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running()
    yield r
    pytest_twisted.blockon(r.service.stopService())


@pytest_twisted.ensureDeferred
async def test_ping_api_metrics_and_dashboard_through_the_proxy(running: Running) -> None:
    code, _, body = await get(running.url("/ping"))
    assert (code, body) == (200, b"OK")
    code, headers, body = await get(running.url("/api/http/routers"))
    assert code == 200 and headers["connection"] == ["close"]
    names = {r["name"] for r in json.loads(body)}
    assert {"api@internal", "dashboard@internal", "ping@internal",
            "prometheus@internal"} <= names
    code, _, body = await get(running.url("/api/overview"))
    assert json.loads(body)["features"]["metrics"] == "Prometheus"
    running.observer.request_done(RequestRecord("web", "GET", "/x", status=404))
    code, _, body = await get(running.url("/metrics"))
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    requests = families["traefik_entrypoint_requests"].samples
    assert any(s.labels == {"code": "404", "method": "GET", "protocol": "http",
                            "entrypoint": "web"} and s.value == 1 for s in requests)
    code, headers, _ = await get(running.url("/"))
    assert code == 301 and headers["location"] == ["/dashboard/"]
    code, _, body = await get(running.url("/dashboard/"))
    assert code == 200 and b"wsgate" in body
    set_terminating(running.services)
    code, _, body = await get(running.url("/ping"))
    assert (code, body) == (503, b"Service Unavailable")


@pytest_twisted.ensureDeferred
async def test_live_websocket_through_the_proxy(running: Running) -> None:
    client = await live_client(running.port)
    await next_message(client, lambda m: m["websockets"]["total"] == 0)
    session = SessionRecord(RequestRecord("web", "GET", "/chat", status=101,
                                          router="chat@file", service="chat@file"))
    running.observer.websocket_opened(session)
    await next_message(client, lambda m: m["websockets"]["total"] == 1)
    client.instance.sendClose(1000)
    assert await client.closed == 1000
