"""Internal routers as Traefik creates them, internal services, ping and the dashboard page."""

from __future__ import annotations

import textwrap

import pytest
from twisted.web.test.requesthelper import DummyRequest

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.runtime import build_runtime
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.config.static import StaticConfig, finalize_static
from wsgate.config.tree import from_plain
from wsgate.ops.dashboard import DashboardResource, render_page
from wsgate.ops.internal import InternalSite, is_websocket_upgrade
from wsgate.ops.observer import Observer
from wsgate.ops.ping import PingResource
from wsgate.ops.wiring import (
    MAX_INT,
    PingSite,
    build_internal_services,
    build_observer,
    internal_configuration,
    internal_routers,
    internal_service_names,
    set_terminating,
)


def static(text: str) -> StaticConfig:
    return finalize_static(decode(StaticConfig, load_yaml(textwrap.dedent(text),
                                                          "static.yml")).value)


FULL = """
entryPoints: {web: {address: ":8000"}}
api: {insecure: true}
ping: {}
metrics: {prometheus: {}}
"""


def test_internal_routers_as_traefik_creates_them() -> None:
    routers = internal_routers(static(FULL))
    assert routers == {
        "api": {"entryPoints": ["traefik"], "service": "api@internal",
                "priority": MAX_INT - 1, "rule": "PathPrefix(`/api`)",
                "ruleSyntax": "default"},
        "dashboard": {"entryPoints": ["traefik"], "service": "dashboard@internal",
                      "priority": MAX_INT - 2, "rule": "PathPrefix(`/`)",
                      "ruleSyntax": "default"},
        "ping": {"entryPoints": ["traefik"], "service": "ping@internal", "priority": MAX_INT,
                 "rule": "PathPrefix(`/ping`)", "ruleSyntax": "default"},
        "prometheus": {"entryPoints": ["traefik"], "service": "prometheus@internal",
                       "priority": MAX_INT, "rule": "PathPrefix(`/metrics`)",
                       "ruleSyntax": "default"},
    }


def test_internal_routers_follow_the_options() -> None:
    cfg = static("""
    entryPoints: {web: {address: ":8000"}, ops: {address: ":9000"}}
    api: {dashboard: false}
    ping: {entryPoint: ops}
    metrics: {prometheus: {manualRouting: true}}
    """)
    assert set(internal_routers(cfg)) == {"ping"}
    assert internal_routers(cfg)["ping"]["entryPoints"] == ["ops"]
    assert internal_service_names(cfg) == ("api@internal", "ping@internal",
                                           "prometheus@internal")
    cfg = static("""
    entryPoints: {web: {address: ":8000"}}
    api: {insecure: true, dashboard: false}
    """)
    assert set(internal_routers(cfg)) == {"api"}
    assert internal_configuration(static("entryPoints: {web: {address: ':1'}}")) == {}


def test_internal_routers_build_into_a_runtime() -> None:
    cfg = static(FULL)
    tree = from_plain(internal_configuration(cfg), Mark("internal"))
    runtime = build_runtime({"internal": decode(DynamicConfig, tree)},
                            entry_points=list(cfg.entry_points),
                            internal_services=internal_service_names(cfg))
    for name in ("api@internal", "dashboard@internal", "ping@internal",
                 "prometheus@internal"):
        assert runtime.routers[name].status == "enabled", runtime.routers[name].errors
    order = [r.router for r in runtime.routes["traefik"]]
    assert order[-1] == "dashboard@internal" and order[-2] == "api@internal"
    assert runtime.routes["web"] == ()


def test_build_internal_services() -> None:
    cfg = static(FULL)
    observer = build_observer(cfg)
    services = build_internal_services(cfg, lambda: None, observer)
    assert set(services) == {"api@internal", "dashboard@internal", "ping@internal",
                             "prometheus@internal"}
    assert all(isinstance(s, InternalSite) for s in services.values())
    assert "/api/ws" in services["api@internal"].websockets  # type: ignore[attr-defined]
    assert isinstance(services["ping@internal"], PingSite)
    set_terminating(services)
    assert services["ping@internal"].ping.terminating  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="PrometheusMetrics"):
        build_internal_services(cfg, lambda: None, Observer())
    assert build_internal_services(static("entryPoints: {web: {address: ':1'}}"),
                                   lambda: None, Observer()) == {}


def test_observer_parts_follow_the_static_configuration() -> None:
    observer = build_observer(static("entryPoints: {web: {address: ':1'}}"))
    assert observer.metrics is None and observer.access_log is None
    assert observer.live is not None


def get(resource: object, path: bytes, method: bytes = b"GET") -> DummyRequest:
    request = DummyRequest(path.strip(b"/").split(b"/"))
    request.path = path
    request.method = method
    body = resource.render(request)  # type: ignore[attr-defined]
    request.written.append(body)
    return request


def test_ping() -> None:
    ping = PingResource(terminating_status=599)
    request = get(ping, b"/ping")
    assert request.responseCode in (None, 200) and b"".join(request.written) == b"OK"
    assert get(ping, b"/anything", b"HEAD").responseCode in (None, 200)
    ping.set_terminating()
    request = get(ping, b"/ping")
    assert request.responseCode == 599
    ping = PingResource()
    ping.set_terminating()
    request = get(ping, b"/ping")
    assert request.responseCode == 503
    assert b"".join(request.written) == b"Service Unavailable"


def test_dashboard_resource() -> None:
    page = DashboardResource("/", redirect_root=True)
    request = get(page, b"/dashboard/")
    assert request.responseHeaders.getRawHeaders(b"content-type") == [
        b"text/html; charset=utf-8"]
    assert b"<!DOCTYPE html>" in b"".join(request.written)
    for path in (b"/", b"/dashboard"):
        request = get(page, path)
        assert request.responseCode == 301
        assert request.responseHeaders.getRawHeaders(b"location") == [b"/dashboard/"]
    assert get(page, b"/favicon.ico").responseCode == 404
    assert get(DashboardResource("/"), b"/").responseCode == 404
    based = DashboardResource("/ops")
    assert get(based, b"/ops/dashboard").responseHeaders.getRawHeaders(b"location") == [
        b"/ops/dashboard/"]


def test_dashboard_page_is_self_contained() -> None:
    page = render_page("/ops", "My <gate>").decode()
    assert '"base": "/ops/"' in page
    assert "My \\u003cgate>" in page
    # nothing is fetched from elsewhere: no absolute URL, no external script, style or image
    for marker in ("http://", "https://", "src=", "@import", "url(", "//fonts", "<img"):
        assert marker not in page, marker
    assert "<script src" not in page and "<link rel=\"stylesheet\"" not in page
    assert 'href="data:,"' in page


def test_websocket_upgrade_detection() -> None:
    head = (b"GET /api/ws?x=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
            b"Upgrade: websocket")
    assert is_websocket_upgrade(head) == ("/api/ws", True)
    assert is_websocket_upgrade(b"GET /api/ws HTTP/1.1\r\nUpgrade: websocket") == (
        "/api/ws", False)
    assert is_websocket_upgrade(b"GET /x HTTP/1.1") == ("/x", False)
