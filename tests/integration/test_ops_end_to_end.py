"""Operations of a real wsgate process (``twistd -n wsgate``), end to end: the API and the
dashboard page on the ``traefik`` entryPoint, /ping (also while shutting down), requests to
the internal services recorded with addInternals, and wsgate's own log (level, format, file).

Metrics and the access log have their own files (test_ops_end_to_end_metrics.py,
test_ops_end_to_end_accesslog.py); the dashboard in a browser is in
test_ops_dashboard_chromium.py.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wsgate
from tests.integration.harness import (
    Wsgate,
    free_port,
    lb,
    start_http_backend,
    start_ws_backend,
    ws_connect,
)
from tests.integration.ops_clients import (
    connect_when_listening,
    echo_session,
    http,
    scrape,
)


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[int, int]]:
    http_proc, http_port = start_http_backend("app")
    ws_proc, ws_port = start_ws_backend()
    yield http_port, ws_port
    http_proc.stop()
    ws_proc.stop()


def _dynamic(http_port: int, ws_port: int, **extra_routers: Any) -> dict[str, Any]:
    return {"http": {
        "routers": {
            "app": {"rule": "PathPrefix(`/app`)", "service": "app", "entryPoints": ["web"]},
            "chat": {"rule": "PathPrefix(`/chat`)", "service": "chat", "entryPoints": ["web"]},
            **extra_routers,
        },
        "services": {"app": lb(http_port), "chat": lb(ws_port)},
    }}


def _json(response: Any) -> Any:
    assert response.status == 200, response
    assert response.header("Content-Type") == "application/json"
    return json.loads(response.body)


# =========================================================================== API and dashboard

def test_api_and_dashboard(tmp_path: Path, backends: tuple[int, int]) -> None:
    http_port, ws_port = backends
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"},
                        "traefik": {"address": "127.0.0.1:0"}},
        "api": {"insecure": True}, "ping": {}, "metrics": {"prometheus": {}},
        "accessLog": {"filePath": str(tmp_path / "access.log")},
    }
    dynamic = _dynamic(http_port, ws_port,
                       nosvc={"rule": "PathPrefix(`/nosvc`)", "service": "missing"},
                       badrule={"rule": "PathPrefix(`/x`", "service": "app"})
    gate = Wsgate(tmp_path, static, dynamic)
    try:
        ops = gate.ports["traefik"]
        listing = http(ops, "/api/http/routers")
        assert listing.header("X-Next-Page") == "1"
        routers = {r["name"]: r for r in _json(listing)}
        assert set(routers) == {"app@file", "chat@file", "nosvc@file", "badrule@file",
                                "api@internal", "dashboard@internal", "ping@internal",
                                "prometheus@internal"}
        assert {n: r["status"] for n, r in routers.items() if r["status"] != "enabled"} == {
            "nosvc@file": "disabled", "badrule@file": "disabled"}
        [missing] = routers["nosvc@file"]["error"]
        assert 'the service "missing@file" does not exist' in missing
        assert "dynamic.yml" in missing and "http.routers.nosvc.service" in missing
        [invalid] = routers["badrule@file"]["error"]
        assert "invalid rule" in invalid and "http.routers.badrule.rule" in invalid
        assert routers["app@file"] | {"priority": 0, "priorityStr": ""} == {
            "rule": "PathPrefix(`/app`)", "service": "app", "entryPoints": ["web"],
            "priority": 0, "status": "enabled", "using": ["web"], "name": "app@file",
            "provider": "file", "priorityStr": ""}
        assert "error" not in routers["app@file"]
        assert routers["ping@internal"]["entryPoints"] == ["traefik"]
        assert _json(http(ops, "/api/http/routers/nosvc%40file"))["status"] == "disabled"
        assert http(ops, "/api/http/routers/nothing%40file").status == 404
        disabled = _json(http(ops, "/api/http/routers?status=disabled"))
        assert sorted(r["name"] for r in disabled) == ["badrule@file", "nosvc@file"]

        services = {s["name"]: s for s in _json(http(ops, "/api/http/services"))}
        assert services["app@file"]["serverStatus"] == {f"http://127.0.0.1:{http_port}": "UP"}
        assert services["chat@file"]["serverStatus"] == {f"http://127.0.0.1:{ws_port}": "UP"}
        assert services["app@file"]["type"] == "loadbalancer"
        assert services["app@file"]["status"] == "enabled"
        assert set(services["app@file"]["usedBy"]) == {"app@file", "badrule@file"}
        assert {"api@internal", "dashboard@internal", "ping@internal",
                "prometheus@internal"} <= set(services)

        overview = _json(http(ops, "/api/overview"))
        assert overview["http"]["routers"] == {"total": 8, "warnings": 0, "errors": 2}
        assert overview["http"]["middlewares"] == {"total": 0, "warnings": 0, "errors": 0}
        assert overview["features"] == {"tracing": "", "metrics": "Prometheus",
                                        "accessLog": True}
        assert overview["providers"] == ["File"]

        entrypoints = {e["name"]: e for e in _json(http(ops, "/api/entrypoints"))}
        assert set(entrypoints) == {"web", "traefik"}
        assert entrypoints["web"]["address"] == "127.0.0.1:0"
        assert _json(http(ops, "/api/entrypoints/web"))["name"] == "web"

        raw = _json(http(ops, "/api/rawdata"))
        assert set(raw["routers"]) == set(routers)
        assert raw["routers"]["nosvc@file"]["status"] == "disabled"
        assert raw["services"]["app@file"]["serverStatus"] == {
            f"http://127.0.0.1:{http_port}": "UP"}

        version = _json(http(ops, "/api/version"))
        assert (version["Version"], version["Codename"]) == (wsgate.__version__, "wsgate")
        assert re.match(r"\d{4}-\d\d-\d\dT", version["startDate"])

        # wsgate's own routers raise no problem of their own
        assert _json(http(ops, "/api/wsgate/diagnostics")) == []

        # the live counts follow a session through the proxy
        assert _json(http(ops, "/api/wsgate/live"))["websockets"]["total"] == 0
        with ws_connect(gate.ports["web"], "app.test", "/chat/live", ping_interval=None):
            live = _json(http(ops, "/api/wsgate/live"))
            assert live["websockets"]["total"] == 1
            assert live["websockets"]["routers"] == {"chat@file": 1}
            assert live["websockets"]["servers"] == {
                "chat@file": {f"http://127.0.0.1:{ws_port}": 1}}
            assert live["connections"]["web"] == 1

        page = http(ops, "/dashboard/")
        assert page.status == 200
        assert page.header("Content-Type") == "text/html; charset=utf-8"
        assert b"<title>wsgate dashboard</title>" in page.body
        root = http(ops, "/")
        assert (root.status, root.header("Location")) == (301, "/dashboard/")
        # the API is on the traefik entryPoint only
        assert http(gate.ports["web"], "/api/overview").status == 404
    finally:
        gate.stop()
    assert "ruleSyntax is deprecated" not in gate.proc.output()


# =========================================================================== ping

def test_ping_ok_and_custom_terminating_status(tmp_path: Path,
                                               backends: tuple[int, int]) -> None:
    """/ping on its own entryPoint answers 200 OK, then terminatingStatusCode during
    requestAcceptGraceTimeout, while the other entryPoints still serve."""
    http_port, ws_port = backends
    life = {"requestAcceptGraceTimeout": "2s", "graceTimeOut": "5s"}
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0", "transport": {"lifeCycle": life}},
                        "ops": {"address": "127.0.0.1:0", "transport": {"lifeCycle": life}}},
        "ping": {"entryPoint": "ops", "terminatingStatusCode": 204},
    }
    gate = Wsgate(tmp_path, static, _dynamic(http_port, ws_port))
    try:
        ops, web = gate.ports["ops"], gate.ports["web"]
        ok = http(ops, "/ping")
        assert (ok.status, ok.body, ok.header("Connection")) == (200, b"OK", "close")
        assert http(ops, "/ping", method="HEAD").status == 200
        assert http(ops, "/ping/anything", method="POST").status == 200
        assert http(web, "/ping").status == 404  # not routed on the other entryPoint
        gate.proc.popen.send_signal(signal.SIGTERM)
        gate.proc.wait_for("still accepting", timeout=10)
        terminating = http(ops, "/ping")
        assert (terminating.status, terminating.body) == (204, b"")
        assert http(web, "/app/during-grace").status == 200
        assert gate.proc.popen.wait(20) in (0, -signal.SIGTERM)
    finally:
        gate.stop()


def _close_code_after_drain(ws: Any) -> int | None:
    """Read until the connection ends (the live feed sends snapshots meanwhile)."""
    from websockets.exceptions import ConnectionClosed

    for _ in range(1000):
        try:
            ws.recv(timeout=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("the connection was never closed")


def test_shutdown_gives_1001_to_in_process_websockets_too(
        tmp_path: Path, backends: tuple[int, int]) -> None:
    """Relayed sessions, echo@internal and the dashboard's live feed all get 1001; one
    in-process session must not keep the others from theirs."""
    http_port, ws_port = backends
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"},
                              "traefik": {"address": "127.0.0.1:0"}},
              "api": {"insecure": True}}
    dynamic = _dynamic(http_port, ws_port,
                       echo={"rule": "PathPrefix(`/echo`)", "service": "echo@internal",
                             "entryPoints": ["web"]})
    gate = Wsgate(tmp_path, static, dynamic)
    try:
        web, ops = gate.ports["web"], gate.ports["traefik"]
        with ws_connect(web, "app.test", "/chat/a", ping_interval=None) as relayed, \
                ws_connect(web, "app.test", "/echo", ping_interval=None) as echo, \
                ws_connect(ops, "127.0.0.1", "/api/ws", ping_interval=None) as live:
            echo.send("ready?")
            assert echo.recv(timeout=10) == "ready?"
            assert json.loads(live.recv(timeout=10))["websockets"]["total"] == 1
            gate.proc.popen.send_signal(signal.SIGTERM)
            codes = [_close_code_after_drain(ws) for ws in (relayed, echo, live)]
        assert codes == [1001, 1001, 1001]
        assert gate.proc.popen.wait(20) in (0, -signal.SIGTERM)
    finally:
        gate.stop()
    assert "shutdown complete" in gate.proc.output()


# =========================================================================== addInternals

def test_internal_requests_recorded_with_add_internals(tmp_path: Path) -> None:
    static = {
        "entryPoints": {"traefik": {"address": "127.0.0.1:0"}},
        "api": {"insecure": True}, "ping": {},
        "metrics": {"addInternals": True, "prometheus": {"addRoutersLabels": True}},
        "accessLog": {"addInternals": True, "filePath": str(tmp_path / "access.log"),
                      "format": "json"},
    }
    gate = Wsgate(tmp_path, static)
    try:
        ops = gate.ports["traefik"]
        assert http(ops, "/ping").status == 200
        version = http(ops, "/api/version")
        assert http(ops, "/nothing-here").status == 404  # dashboard@internal answers
        m = scrape(ops)
    finally:
        gate.stop()
    assert m.series("traefik_entrypoint_requests_total", entrypoint="traefik") == {
        (("code", "200"), ("method", "GET"), ("protocol", "http")): 2,
        (("code", "404"), ("method", "GET"), ("protocol", "http")): 1}
    assert m.series("traefik_router_requests_total", code="200") == {
        (("method", "GET"), ("protocol", "http"), ("router", "ping@internal"),
         ("service", "ping@internal")): 1,
        (("method", "GET"), ("protocol", "http"), ("router", "api@internal"),
         ("service", "api@internal")): 1}
    assert m.value("traefik_service_responses_bytes_total", code="200", method="GET",
                   protocol="http", service="api@internal") == len(version.body)
    entries = [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines()]
    assert [(e["RouterName"], e["DownstreamStatus"], e["DownstreamContentSize"])
            for e in entries[:3]] == [("ping@internal", 200, 2),
                                      ("api@internal", 200, len(version.body)),
                                      ("dashboard@internal", 404, 19)]
    assert entries[3]["RouterName"] == "prometheus@internal"


def test_internal_requests_left_out_by_default(tmp_path: Path) -> None:
    static = {"entryPoints": {"traefik": {"address": "127.0.0.1:0"}}, "ping": {},
              "metrics": {"prometheus": {}},
              "accessLog": {"filePath": str(tmp_path / "access.log")}}
    gate = Wsgate(tmp_path, static)
    try:
        ops = gate.ports["traefik"]
        assert http(ops, "/ping").status == 200
        m = scrape(ops)
    finally:
        gate.stop()
    assert m.series("traefik_entrypoint_requests_total") == {}
    assert (tmp_path / "access.log").read_text() == ""


# =========================================================================== wsgate's log

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) "
                      r"(DBG|INF|WRN|ERR|FTL) ")


def _traffic(port: int) -> None:
    """A session (its end is logged at DEBUG), a 404 (not logged) and a 502 (WARN)."""
    echo_session(port, "/chat/log", ["one"])
    assert http(port, "/nowhere").status == 404
    assert http(port, "/dead").status == 502


def _dynamic_with_dead(http_port: int, ws_port: int) -> dict[str, Any]:
    dynamic = _dynamic(http_port, ws_port,
                       dead={"rule": "PathPrefix(`/dead`)", "service": "dead"},
                       broken={"rule": "PathPrefix(`/broken`)", "service": "missing"})
    dynamic["http"]["services"]["dead"] = lb(free_port())
    return dynamic


def test_log_debug_level(tmp_path: Path, backends: tuple[int, int]) -> None:
    gate = Wsgate(tmp_path, {"log": {"level": "DEBUG"},
                             "entryPoints": {"web": {"address": "127.0.0.1:0"}}},
                  _dynamic_with_dead(*backends))
    try:
        _traffic(gate.ports["web"])
        gate.proc.wait_for(r" DBG WebSocket on web closed: code=1000 by=client")
    finally:
        gate.stop()
    lines = gate.proc.lines
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert any(" WRN 502 for GET /dead" in line for line in lines)
    assert any(" ERR router broken@file (disabled)" in line for line in lines)


def test_log_error_level_filters_the_rest(tmp_path: Path, backends: tuple[int, int]) -> None:
    """At ERROR (Traefik's default) only errors are written: the disabled router's; no debug,
    info or warning line, although the same traffic produces them at DEBUG."""
    port = free_port()
    gate = Wsgate(tmp_path, {"log": {"level": "ERROR"},
                             "entryPoints": {"web": {"address": f"127.0.0.1:{port}"}}},
                  _dynamic_with_dead(*backends), wait=False)
    try:
        gate.proc.wait_for(r" ERR router broken@file \(disabled\)")
        connect_when_listening(gate.proc, port)
        _traffic(port)
    finally:
        assert gate.stop() in (0, -signal.SIGTERM)  # the exit flushes everything
    lines = gate.proc.lines
    assert lines and all(" ERR " in line for line in lines if LOG_LINE.match(line)), lines
    assert not any(re.search(r" (DBG|INF|WRN) ", line) for line in lines), lines


def test_log_json_format(tmp_path: Path, backends: tuple[int, int]) -> None:
    gate = Wsgate(tmp_path, {"log": {"level": "INFO", "format": "json"},
                             "entryPoints": {"web": {"address": "127.0.0.1:0"}}},
                  _dynamic_with_dead(*backends))
    try:
        _traffic(gate.ports["web"])
    finally:
        gate.stop()
    entries = [json.loads(line) for line in gate.proc.lines]
    assert entries and all({"level", "time", "message"} <= set(e) for e in entries)
    assert {e["level"] for e in entries} == {"info", "warn", "error"}
    ready = next(e for e in entries if e["message"] == "wsgate ready")
    assert ready["logger"] == "wsgate.service"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$", ready["time"])
    warn = next(e for e in entries if e["level"] == "warn" and "502" in e["message"])
    assert warn["message"].startswith("502 for GET /dead on web")


def test_log_file_path(tmp_path: Path, backends: tuple[int, int]) -> None:
    """log.filePath: the lines go to the file (its directory created), none to stdout."""
    port = free_port()
    log_file = tmp_path / "logs" / "wsgate.log"
    gate = Wsgate(tmp_path, {"log": {"level": "DEBUG", "filePath": str(log_file)},
                             "entryPoints": {"web": {"address": f"127.0.0.1:{port}"}}},
                  _dynamic_with_dead(*backends), wait=False)
    try:
        connect_when_listening(gate.proc, port)
        _traffic(port)
    finally:
        assert gate.stop() in (0, -signal.SIGTERM)
    assert not [line for line in gate.proc.lines if LOG_LINE.match(line)], gate.proc.lines
    lines = log_file.read_text().splitlines()
    text = "\n".join(lines)
    for expected in ("INF wsgate ready", "DBG WebSocket on web closed: code=1000",
                     "WRN 502 for GET /dead", "ERR router broken@file (disabled)",
                     "INF shutdown complete"):
        assert expected in text, text
    assert all(LOG_LINE.match(line) for line in lines if not line.startswith((" ", "\t")))
