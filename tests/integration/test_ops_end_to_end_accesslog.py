"""The access log of a real wsgate process: one line per request, one per WebSocket session
when it ends, in Traefik's common format and in JSON (one log per process, so one process per
format), with the filters and the header field modes.

The log is read once wsgate has exited: its last lines are written by the observer's close at
shutdown (with bufferingSize, every line is), so reading after the exit waits on an event and
also checks the flush.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError

from tests.integration.harness import (
    Wsgate,
    free_port,
    lb,
    start_http_backend,
    start_ws_backend,
    ws_connect,
)
from tests.integration.ops_clients import echo_session, http

K = 3


def _dynamic(http_port: int, ws_port: int, victim_port: int = 0) -> dict[str, Any]:
    routers: dict[str, Any] = {
        "app": {"rule": "PathPrefix(`/app`)", "service": "app"},
        "slow": {"rule": "PathPrefix(`/silent`)", "service": "slow"},
        "chat": {"rule": "PathPrefix(`/chat`)", "service": "chat"},
        "dead": {"rule": "PathPrefix(`/dead`)", "service": "dead"},
    }
    services: dict[str, Any] = {
        "app": lb(http_port), "chat": lb(ws_port), "dead": lb(free_port()),
        "slow": lb(http_port, serversTransport="impatient"),
    }
    if victim_port:
        routers["victim"] = {"rule": "PathPrefix(`/victim`)", "service": "victim"}
        services["victim"] = lb(victim_port)
    return {"http": {
        "routers": routers, "services": services,
        "serversTransports": {"impatient": {"forwardingTimeouts": {
            "responseHeaderTimeout": "1s"}}},
    }}


@pytest.fixture
def backends() -> Any:
    http_proc, http_port = start_http_backend("app")
    ws_proc, ws_port = start_ws_backend()
    yield http_port, ws_port
    http_proc.stop()
    ws_proc.stop()


def _run(tmp_path: Path, access_log: dict[str, Any], dynamic: dict[str, Any]) -> Wsgate:
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"}},
              "accessLog": {"filePath": str(tmp_path / "logs" / "access.log"), **access_log}}
    return Wsgate(tmp_path, static, dynamic)


def _lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "logs" / "access.log").read_text().splitlines()


COMMON = re.compile(
    r'^(?P<client>\S+) - (?P<user>\S+) \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'"(?P<method>\S+) (?P<path>\S+) (?P<proto>\S+)" (?P<status>\d+) (?P<size>\d+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)" (?P<count>\d+) "(?P<router>[^"]*)" '
    r'"(?P<url>[^"]*)" (?P<ms>\d+)ms$')


def test_common_lines_for_requests_and_sessions(tmp_path: Path,
                                                backends: tuple[int, int]) -> None:
    http_port, ws_port = backends
    gate = _run(tmp_path, {"format": "common",
                           "fields": {"headers": {"defaultMode": "keep"}}},
                _dynamic(http_port, ws_port))
    try:
        web = gate.ports["web"]
        ok = http(web, "/app/a?b=1", headers=[("User-Agent", "probe/1.0"),
                                              ("Referer", "http://ref.test/")])
        missing = http(web, "/nowhere")
        sent, received = echo_session(web, "/chat/x", ["hello"] * K)
    finally:
        assert gate.stop() in (0, -signal.SIGTERM)
    lines = _lines(tmp_path)
    assert len(lines) == 3, lines
    parsed = [COMMON.match(line) for line in lines]
    assert all(parsed), lines
    first, second, session = (m.groupdict() for m in parsed if m)
    assert first | {"time": "", "ms": ""} == {
        "client": "127.0.0.1", "user": "-", "time": "", "method": "GET", "path": "/app/a?b=1",
        "proto": "HTTP/1.1", "status": "200", "size": str(len(ok.body)),
        "referer": "http://ref.test/", "agent": "probe/1.0", "count": "1",
        "router": "app@file", "url": f"http://127.0.0.1:{http_port}", "ms": ""}
    assert (second["status"], second["size"], second["router"], second["url"],
            second["agent"], second["count"]) == ("404", str(len(missing.body)), "-", "-",
                                                  "-", "2")
    # the session's line: 101, the bytes the backend sent after the 101, the whole duration
    assert (session["method"], session["path"], session["status"], session["size"],
            session["router"], session["url"], session["count"]) == (
        "GET", "/chat/x", "101", str(received), "chat@file", f"http://127.0.0.1:{ws_port}",
        "3")
    assert sent > 0


def test_json_entries_with_websocket_fields_and_header_modes(
        tmp_path: Path, backends: tuple[int, int]) -> None:
    http_port, ws_port = backends
    victim, victim_port = start_ws_backend()
    gate = _run(tmp_path, {
        "format": "json", "bufferingSize": 50,
        "fields": {"names": {"ClientUsername": "drop"},
                   "headers": {"defaultMode": "drop",
                               "names": {"User-Agent": "keep", "Authorization": "redact"}}},
    }, _dynamic(http_port, ws_port, victim_port))
    try:
        web = gate.ports["web"]
        http(web, "/app/json", method="POST", body=b"12345",
             headers=[("User-Agent", "probe/2.0"), ("Authorization", "Bearer secret"),
                      ("X-Other", "dropped")])
        sessions = [echo_session(web, f"/chat/{i}", [f"msg {i}.{j}" for j in range(K)])
                    for i in range(2)]
        with ws_connect(web, "app.test", "/victim/1", ping_interval=None) as ws:
            ws.send("bye")
            assert ws.recv(timeout=10) == "bye"
            victim.stop(signal.SIGKILL)
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=10)
        # the last entry is written once wsgate saw both connections end: at the latest
        # during the shutdown's drain, before the buffered lines are flushed
    finally:
        victim.stop()
        assert gate.stop() in (0, -signal.SIGTERM)
    entries = [json.loads(line) for line in _lines(tmp_path)]
    assert len(entries) == 4, entries
    post, *ws_entries, lost = entries
    assert post["RequestMethod"] == "POST" and post["DownstreamStatus"] == 200
    assert post["RequestContentSize"] == 5 and post["RequestCount"] == 1
    assert post["request_User-Agent"] == "probe/2.0"
    assert post["request_Authorization"] == "REDACTED"
    assert not any(key in post for key in ("request_X-Other", "request_Host",
                                           "ClientUsername"))
    assert (post["level"], post["msg"], post["entryPointName"]) == ("info", "", "web")
    for i, (entry, (sent, received)) in enumerate(zip(ws_entries, sessions, strict=True)):
        assert entry["RequestPath"] == f"/chat/{i}"
        assert entry["DownstreamStatus"] == entry["OriginStatus"] == 101
        assert (entry["WSClientMessages"], entry["WSBackendMessages"]) == (K, K)
        assert (entry["WSClientBytes"], entry["WSBackendBytes"]) == (sent, received)
        assert (entry["RequestContentSize"], entry["DownstreamContentSize"]) == (sent,
                                                                                received)
        assert (entry["WSCloseCode"], entry["WSClosedBy"]) == (1000, "client")
        assert entry["Duration"] == entry["WSDuration"] + entry["WSHandshakeDuration"]
        assert entry["WSDuration"] > 0 and entry["WSHandshakeDuration"] > 0
        assert (entry["RouterName"], entry["ServiceName"]) == ("chat@file", "chat@file")
        assert entry["ServiceURL"] == f"http://127.0.0.1:{ws_port}"
    assert (lost["WSCloseCode"], lost["WSClosedBy"]) == (1014, "proxy")
    assert (lost["WSClientMessages"], lost["WSBackendMessages"]) == (1, 1)
    assert lost["WSBackendBytes"] == 2 + len("bye")
    assert [e["RequestCount"] for e in entries] == [1, 2, 3, 4]


def test_filters_and_redacted_headers(tmp_path: Path, backends: tuple[int, int]) -> None:
    """statusCodes and minDuration: an entry is kept when either matches; RequestCount still
    counts every request. Headers: redact by default, User-Agent kept."""
    http_port, ws_port = backends
    gate = _run(tmp_path, {
        "format": "json",
        "filters": {"statusCodes": ["404"], "minDuration": "900ms"},
        "fields": {"headers": {"defaultMode": "redact", "names": {"User-Agent": "keep"}}},
    }, _dynamic(http_port, ws_port))
    agent = [("User-Agent", "probe/3.0"), ("X-Other", "hidden")]
    try:
        web = gate.ports["web"]
        assert http(web, "/app/fast", headers=agent).status == 200          # 1: dropped
        assert http(web, "/nowhere", headers=agent).status == 404           # 2: status
        assert http(web, "/dead/x", headers=agent).status == 502            # 3: dropped
        echo_session(web, "/chat/short", ["quick"])                          # 4: dropped
        with ws_connect(web, "app.test", "/chat/long", ping_interval=None) as ws:  # 6: long
            ws.send("held")
            assert ws.recv(timeout=10) == "held"
            # 5: responseHeaderTimeout answers 504 after 1s: slower than minDuration, and
            # it keeps the session above open that long
            assert http(web, "/silent", headers=agent).status == 504
    finally:
        assert gate.stop() in (0, -signal.SIGTERM)
    entries = [json.loads(line) for line in _lines(tmp_path)]
    summary = [(e["RequestCount"], e["DownstreamStatus"], e["RequestPath"]) for e in entries]
    assert summary == [(2, 404, "/nowhere"), (5, 504, "/silent"), (6, 101, "/chat/long")]
    assert entries[1]["Duration"] >= 1_000_000_000
    assert entries[2]["WSDuration"] >= 1_000_000_000
    for entry in entries[:2]:
        assert entry["request_User-Agent"] == "probe/3.0"
        assert entry["request_X-Other"] == entry["request_Host"] == "REDACTED"
