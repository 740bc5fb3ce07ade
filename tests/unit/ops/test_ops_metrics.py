"""Prometheus metrics: Traefik's families and labels, wsgate's WebSocket families, checked by
parsing the exposition text after feeding records."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.config.static import Prometheus
from wsgate.ops.metrics import PrometheusMetrics, metric_method
from wsgate.ops.observer import RequestRecord, SessionRecord
from wsgate.ops.scope import Scope


def metrics(**kwargs: Any) -> PrometheusMetrics:
    scope = kwargs.pop("scope", None)
    return PrometheusMetrics(Prometheus(**kwargs), scope=scope, process_metrics=False)


def samples(m: PrometheusMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, frozenset(labels.items())))


def names(m: PrometheusMetrics) -> set[str]:
    return {name for name, _ in samples(m)}


def http(status: int = 200, **kwargs: Any) -> RequestRecord:
    base: dict[str, Any] = {"router": "web-r@file", "service": "app@file",
                            "server_url": "http://10.0.0.1:80", "duration": 0.2}
    base.update(kwargs)
    return RequestRecord("web", base.pop("method", "GET"), "/", status=status, **base)


def session(**kwargs: Any) -> SessionRecord:
    handshake = RequestRecord("web", "GET", "/ws", status=101, router="ws@file",
                              service="echo@file", server_url="http://10.0.0.2:80",
                              protocol="websocket", duration=0.004)
    return SessionRecord(handshake, **kwargs)


def test_requests_are_counted_per_entrypoint_and_service_by_default() -> None:
    m = metrics()
    m.request_done(http(200, request_bytes=10, response_bytes=100))
    m.request_done(http(200, response_bytes=50))
    m.request_done(http(404, router="", service="", server_url="", response_bytes=19))
    lbl = {"code": "200", "method": "GET", "protocol": "http"}
    assert value(m, "traefik_entrypoint_requests_total", entrypoint="web", **lbl) == 2
    assert value(m, "traefik_entrypoint_requests_total", entrypoint="web",
                 **{**lbl, "code": "404"}) == 1
    assert value(m, "traefik_entrypoint_requests_bytes_total", entrypoint="web", **lbl) == 10
    assert value(m, "traefik_entrypoint_responses_bytes_total", entrypoint="web", **lbl) == 150
    assert value(m, "traefik_entrypoint_request_duration_seconds_count", entrypoint="web",
                 **lbl) == 2
    assert value(m, "traefik_entrypoint_request_duration_seconds_bucket", entrypoint="web",
                 le="0.3", **lbl) == 2
    assert value(m, "traefik_entrypoint_request_duration_seconds_bucket", entrypoint="web",
                 le="0.1", **lbl) == 0
    assert value(m, "traefik_service_requests_total", service="app@file", **lbl) == 2
    # routers only with addRoutersLabels (Traefik's default is false)
    assert not any(n.startswith(("traefik_router_", "wsgate_router_")) for n in names(m))


def test_router_and_switches() -> None:
    m = metrics(add_routers_labels=True, add_services_labels=False,
                add_entry_points_labels=False)
    m.request_done(http(502))
    assert value(m, "traefik_router_requests_total", code="502", method="GET",
                 protocol="http", router="web-r@file", service="app@file") == 1
    found = names(m)
    assert not any(n.startswith(("traefik_entrypoint_", "traefik_service_")) for n in found)
    assert "traefik_service_server_up" not in found


def test_configured_buckets_and_no_created_series() -> None:
    m = metrics(buckets=(0.05, 2.0))
    m.request_done(http(200, duration=0.01))
    found = samples(m)
    les = {dict(lbl).get("le") for (n, lbl) in found
           if n == "traefik_entrypoint_request_duration_seconds_bucket"}
    assert les == {"0.05", "2.0", "+Inf"}
    assert not any(n.endswith("_created") for n, _ in found)


def test_methods_outside_the_standard_set_are_extension_method() -> None:
    assert metric_method("PROPFIND") == "EXTENSION_METHOD"
    assert metric_method("PATCH") == "PATCH"
    m = metrics()
    m.request_done(http(405, method="BREW"))
    assert value(m, "traefik_entrypoint_requests_total", code="405",
                 method="EXTENSION_METHOD", protocol="http", entrypoint="web") == 1


def test_header_labels_extend_requests_total() -> None:
    m = metrics(header_labels={"useragent": "User-Agent"})
    m.request_done(http(200, headers=[("user-agent", "curl/8")]))
    assert value(m, "traefik_entrypoint_requests_total", code="200", method="GET",
                 protocol="http", entrypoint="web", useragent="curl/8") == 1
    m.request_done(http(200))
    assert value(m, "traefik_entrypoint_requests_total", code="200", method="GET",
                 protocol="http", entrypoint="web", useragent="") == 1


def test_tls_requests_and_retries() -> None:
    m = metrics()
    m.request_done(http(200, tls=True, tls_version="1.3",
                        tls_cipher="TLS_AES_128_GCM_SHA256", retry_attempts=2))
    assert value(m, "traefik_entrypoint_requests_tls_total", tls_version="1.3",
                 tls_cipher="TLS_AES_128_GCM_SHA256", entrypoint="web") == 1
    assert value(m, "traefik_service_retries_total", service="app@file") == 2


def test_websocket_session_lifecycle() -> None:
    m = metrics(add_routers_labels=True)
    s = session()
    m.websocket_opened(s)
    ws = {"code": "101", "method": "GET", "protocol": "websocket"}
    assert value(m, "traefik_entrypoint_requests_total", entrypoint="web", **ws) == 1
    assert value(m, "wsgate_entrypoint_open_websockets", entrypoint="web") == 1
    assert value(m, "wsgate_router_open_websockets", router="ws@file",
                 service="echo@file") == 1
    assert value(m, "wsgate_service_open_websockets", service="echo@file") == 1
    assert value(m, "wsgate_service_server_open_websockets", service="echo@file",
                 url="http://10.0.0.2:80") == 1
    # the handshake time, not the session, is in the request duration histogram
    assert value(m, "traefik_entrypoint_request_duration_seconds_sum", entrypoint="web",
                 **ws) == pytest.approx(0.004)

    s.duration = 120.0
    s.client_messages, s.backend_messages = 3, 5
    s.client_bytes, s.backend_bytes = 300, 5000
    s.close_code, s.closed_by = 1000, "client"
    m.websocket_closed(s)
    assert value(m, "wsgate_entrypoint_open_websockets", entrypoint="web") == 0
    assert value(m, "wsgate_service_server_open_websockets", service="echo@file",
                 url="http://10.0.0.2:80") == 0
    for level, lbl in (("entrypoint", {"entrypoint": "web"}),
                       ("router", {"router": "ws@file", "service": "echo@file"}),
                       ("service", {"service": "echo@file"})):
        assert value(m, f"wsgate_{level}_websocket_messages_total",
                     direction="client_to_backend", **lbl) == 3
        assert value(m, f"wsgate_{level}_websocket_messages_total",
                     direction="backend_to_client", **lbl) == 5
        assert value(m, f"wsgate_{level}_websocket_bytes_total",
                     direction="backend_to_client", **lbl) == 5000
        assert value(m, f"wsgate_{level}_websocket_closes_total", code="1000",
                     closed_by="client", **lbl) == 1
        assert value(m, f"wsgate_{level}_websocket_session_duration_seconds_sum",
                     **lbl) == 120
        assert value(m, f"wsgate_{level}_websocket_session_duration_seconds_bucket",
                     le="60.0", **lbl) == 0
        assert value(m, f"traefik_{level}_requests_bytes_total", **ws, **lbl) == 300
        assert value(m, f"traefik_{level}_responses_bytes_total", **ws, **lbl) == 5000
    # still one request: the session is not counted again when it ends
    assert value(m, "traefik_entrypoint_requests_total", entrypoint="web", **ws) == 1
    assert value(m, "traefik_entrypoint_request_duration_seconds_count", entrypoint="web",
                 **ws) == 1


def test_session_without_close_frame_counts_as_1006() -> None:
    m = metrics()
    s = session()
    m.websocket_opened(s)
    m.websocket_closed(s)
    assert value(m, "wsgate_service_websocket_closes_total", service="echo@file",
                 code="1006", closed_by="unknown") == 1


def test_handshake_failures_by_reason() -> None:
    m = metrics(add_routers_labels=True)
    m.handshake_failed("web", "ws@file", "echo@file", "backend_refused")
    m.handshake_failed("web", "ws@file", "echo@file", "backend_refused")
    m.handshake_failed("web", "", "", "no_router")
    assert value(m, "wsgate_entrypoint_websocket_handshake_failures_total", entrypoint="web",
                 reason="backend_refused") == 2
    assert value(m, "wsgate_entrypoint_websocket_handshake_failures_total", entrypoint="web",
                 reason="no_router") == 1
    assert value(m, "wsgate_router_websocket_handshake_failures_total", router="ws@file",
                 service="echo@file", reason="backend_refused") == 2
    assert value(m, "wsgate_service_websocket_handshake_failures_total",
                 service="echo@file", reason="backend_refused") == 2


def test_connections_reloads_servers_and_certificates() -> None:
    m = metrics()
    for _ in range(3):
        m.connection_opened("web")
    m.connection_closed("web")
    assert value(m, "traefik_open_connections", entrypoint="web", protocol="TCP") == 2
    m.config_reloaded(True)
    m.config_reloaded(False)
    assert value(m, "traefik_config_reloads_total") == 2
    assert value(m, "traefik_config_last_reload_success") == 0
    m.server_up("app@file", "http://10.0.0.1:80", True)
    m.server_up("app@file", "http://10.0.0.3:80", False)
    assert value(m, "traefik_service_server_up", service="app@file",
                 url="http://10.0.0.1:80") == 1
    assert value(m, "traefik_service_server_up", service="app@file",
                 url="http://10.0.0.3:80") == 0
    m.tls_cert_not_after("example.com", ["example.com", "www.example.com"], "1234",
                         1893456000.0)
    assert value(m, "traefik_tls_certs_not_after", cn="example.com", serial="1234",
                 sans="example.com,www.example.com") == 1893456000.0


def runtime(text: str) -> RuntimeConfig:
    dyn = decode(DynamicConfig, load_yaml(textwrap.dedent(text), "dyn.yml"))
    return build_runtime({"file": dyn}, entry_points=["web"])


ROUTED = """
http:
  routers:
    web-r: {rule: "PathPrefix(`/`)", service: app}
    quiet: {rule: "Path(`/health`)", service: app, observability: {metrics: false}}
  services:
    app:
      loadBalancer: {servers: [{url: "http://10.0.0.1:80"}]}
"""


def test_router_observability_and_internals() -> None:
    m = metrics(scope=Scope({"web": True}, add_internals=False, switch="metrics"))
    m.runtime_changed(runtime(ROUTED))
    m.request_done(http(200, router="quiet@file"))
    m.request_done(http(200, router="api@internal", service="api@internal"))
    m.request_done(http(200))
    assert value(m, "traefik_entrypoint_requests_total", code="200", method="GET",
                 protocol="http", entrypoint="web") == 1


def test_entrypoint_observability_switch() -> None:
    m = metrics(scope=Scope({"web": False}, add_internals=True, switch="metrics"))
    m.runtime_changed(runtime(ROUTED))
    m.request_done(http(200))
    assert "traefik_entrypoint_requests_total" not in names(m)


def test_removed_objects_lose_their_series_but_live_sessions_keep_their_gauge() -> None:
    m = metrics(add_routers_labels=True)
    m.runtime_changed(runtime(ROUTED))
    m.request_done(http(200, router="gone@file", service="old@file"))
    s = session()
    m.websocket_opened(s)
    m.server_up("old@file", "http://10.9.9.9:80", True)
    m.runtime_changed(runtime(ROUTED))
    found = samples(m)
    assert not any(dict(lbl).get("router") == "gone@file" for _, lbl in found)
    assert not any(dict(lbl).get("service") == "old@file" for _, lbl in found)
    # ws@file / echo@file are not configured either, but a session is still open on them
    assert value(m, "wsgate_router_open_websockets", router="ws@file",
                 service="echo@file") == 1
    assert value(m, "wsgate_service_open_websockets", service="echo@file") == 1
    # entrypoint series stay
    assert value(m, "traefik_entrypoint_requests_total", code="200", method="GET",
                 protocol="http", entrypoint="web") == 1


def test_process_metrics_and_openmetrics_negotiation() -> None:
    m = PrometheusMetrics(Prometheus())
    body, _ = m.render()
    assert b"process_" in body or b"python_info" in body
    body, content_type = m.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_each_exporter_has_its_own_registry() -> None:
    a, b = metrics(), metrics()
    a.request_done(http(200))
    assert "traefik_entrypoint_requests_total" not in names(b)
