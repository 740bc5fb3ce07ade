"""The access log: Traefik's common and genericCLF lines, JSON fields, filters, field modes,
WebSocket session entries and the buffered writer."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from wsgate.config.static import AccessLog as AccessLogConfig
from wsgate.config.static import AccessLogFields, AccessLogFilters, FieldHeaders
from wsgate.ops.accesslog import (
    AccessLog,
    AccessLogSettings,
    canonical_header,
    core_fields,
    format_common,
    format_generic_clf,
    format_json,
    keep_entry,
    parse_status_ranges,
    rfc3339_nano,
    select_fields,
    session_fields,
)
from wsgate.ops.observer import RequestRecord, SessionRecord
from wsgate.ops.scope import Scope

START = 1700000000.5  # 2023-11-14T22:13:20.5Z


def record(**kwargs: Any) -> RequestRecord:
    base: dict[str, Any] = dict(
        status=200, start=START, duration=0.0425, client_ip="10.0.0.7", client_port=51234,
        host="app.example:8000", router="app@file", service="app@file",
        server_url="http://127.0.0.1:9000", response_bytes=12,
        headers=[("User-Agent", "curl/8.5"), ("referer", "http://from.example/"),
                 ("Authorization", "Basic xyz")])
    base.update(kwargs)
    return RequestRecord("web", base.pop("method", "GET"), base.pop("path", "/a?b=1"), **base)


def entry(rec: RequestRecord, settings: AccessLogSettings | None = None,
          count: int = 7) -> dict[str, Any]:
    settings = settings or AccessLogSettings()
    core = core_fields(rec, settings, request_count=count)
    return select_fields(core, settings, request_headers=rec.headers,
                         response_headers=rec.response_headers)


def test_common_line_has_traefiks_exact_shape() -> None:
    line = format_common(entry(record()))
    assert line == ('10.0.0.7 - - [14/Nov/2023:22:13:20 +0000] "GET /a?b=1 HTTP/1.1" 200 12 '
                    '"-" "-" 7 "app@file" "http://127.0.0.1:9000" 42ms')


def test_common_line_with_kept_headers_and_missing_router() -> None:
    settings = AccessLogSettings(header_default_mode="keep")
    rec = record(router="", service="", server_url="", status=404, response_bytes=19,
                 username="alice")
    assert format_common(entry(rec, settings)) == (
        '10.0.0.7 - alice [14/Nov/2023:22:13:20 +0000] "GET /a?b=1 HTTP/1.1" 404 19 '
        '"http://from.example/" "curl/8.5" 7 "-" "-" 42ms')


def test_generic_clf() -> None:
    assert format_generic_clf(entry(record())) == (
        '10.0.0.7 - - [14/Nov/2023:22:13:20 +0000] "GET /a?b=1 HTTP/1.1" 200 12 "-" "-"')


def test_quotes_inside_values_are_escaped() -> None:
    settings = AccessLogSettings(header_default_mode="keep")
    rec = record(headers=[("User-Agent", 'say "hi"')])
    assert '"say \\"hi\\""' in format_common(entry(rec, settings))


def test_json_fields_and_types() -> None:
    rec = record(origin_status=200, origin_duration=0.04, origin_bytes=12, tls=True,
                 tls_version="1.3", tls_cipher="TLS_AES_128_GCM_SHA256")
    data = json.loads(format_json(entry(rec), now=START + 1))
    assert data["ClientAddr"] == "10.0.0.7:51234"
    assert data["ClientHost"] == "10.0.0.7"
    assert data["ClientPort"] == "51234"
    assert data["ClientUsername"] == "-"
    assert data["RequestMethod"] == "GET"
    assert data["RequestPath"] == "/a?b=1"
    assert data["RequestProtocol"] == "HTTP/1.1"
    assert data["RequestScheme"] == "https"
    assert data["RequestAddr"] == "app.example:8000"
    assert (data["RequestHost"], data["RequestPort"]) == ("app.example", "8000")
    assert data["DownstreamStatus"] == 200
    assert data["DownstreamContentSize"] == 12
    assert data["OriginStatus"] == 200
    assert data["OriginContentSize"] == 12
    assert data["Duration"] == 42_500_000
    assert data["OriginDuration"] == 40_000_000
    assert data["Overhead"] == 2_500_000
    assert data["RouterName"] == "app@file"
    assert data["ServiceName"] == "app@file"
    assert data["ServiceURL"] == "http://127.0.0.1:9000"
    assert data["ServiceAddr"] == "127.0.0.1:9000"
    assert data["RequestCount"] == 7
    assert data["RetryAttempts"] == 0
    assert data["TLSVersion"] == "1.3"
    assert data["entryPointName"] == "web"
    assert data["StartUTC"] == "2023-11-14T22:13:20.5Z"
    assert data["level"] == "info" and data["msg"] == "" and "time" in data
    # headers are dropped by default
    assert not any(k.startswith("request_") for k in data)
    assert list(data) == sorted(data)


def test_rfc3339_nano_trims_like_go() -> None:
    assert rfc3339_nano(1700000000.0) == "2023-11-14T22:13:20Z"
    assert rfc3339_nano(1700000000.25) == "2023-11-14T22:13:20.25Z"


def test_host_without_port_and_forwarded_client() -> None:
    data = entry(record(host="app.example", forwarded_for="203.0.113.9, 10.0.0.1"))
    assert data["RequestPort"] == "-"
    assert data["ClientHost"] == "203.0.113.9, 10.0.0.1"
    assert entry(record(host="[::1]:8443"))["RequestHost"] == "::1"


def test_fields_modes() -> None:
    settings = AccessLogSettings(default_mode="drop", names={"clienthost": "keep",
                                                             "downstreamstatus": "keep"})
    data = entry(record(), settings)
    assert set(data) == {"ClientHost", "DownstreamStatus"}
    # common format prints "-" for what was dropped
    assert format_common(data).startswith('10.0.0.7 - - [-] "- - -" 200 "-"')


def test_header_modes() -> None:
    config = AccessLogConfig(fields=AccessLogFields(headers=FieldHeaders(
        default_mode="keep", names={"authorization": "redact", "REFERER": "drop"})))
    settings = AccessLogSettings.from_config(config)
    rec = record(response_headers=[("content-type", "text/plain"), ("Set-Cookie", "a=1"),
                                   ("set-cookie", "b=2")])
    data = entry(rec, settings)
    assert data["request_User-Agent"] == "curl/8.5"
    assert data["request_Authorization"] == "REDACTED"
    assert "request_Referer" not in data
    assert data["downstream_Content-Type"] == "text/plain"
    assert data["downstream_Set-Cookie"] == "a=1,b=2"


def test_query_parameters_can_be_dropped() -> None:
    settings = AccessLogSettings(keep_query=False)
    assert entry(record(), settings)["RequestPath"] == "/a"


def test_canonical_header() -> None:
    assert canonical_header("x-forwarded-FOR") == "X-Forwarded-For"
    assert canonical_header("sec-websocket-key") == "Sec-Websocket-Key"
    assert canonical_header("bad header") == "bad header"


def test_filters() -> None:
    assert parse_status_ranges(["200", " 300 - 302 "]) == ((200, 200), (300, 302))
    with pytest.raises(ValueError):
        parse_status_ranges(["500-400"])
    none = AccessLogSettings()
    assert keep_entry(none, 200, 0, 0.0)
    codes = AccessLogSettings(status_ranges=((500, 599),))
    assert keep_entry(codes, 503, 0, 0.0) and not keep_entry(codes, 200, 0, 0.0)
    retries = AccessLogSettings(retry_attempts=True)
    assert keep_entry(retries, 200, 1, 0.0) and not keep_entry(retries, 200, 0, 0.0)
    slow = AccessLogSettings(min_duration=0.5)
    assert keep_entry(slow, 200, 0, 0.6) and not keep_entry(slow, 200, 0, 0.5)
    both = AccessLogSettings(status_ranges=((404, 404),), min_duration=1.0)
    assert keep_entry(both, 404, 0, 0.0) and keep_entry(both, 200, 0, 2.0)
    assert not keep_entry(both, 200, 0, 0.1)


def test_settings_from_config() -> None:
    config = AccessLogConfig(format="json", buffering_size=50, filters=AccessLogFilters(
        status_codes=("200", "300-302"), retry_attempts=True, min_duration=0.01))
    settings = AccessLogSettings.from_config(config)
    assert settings.format == "json" and settings.buffering_size == 50
    assert settings.status_ranges == ((200, 200), (300, 302))
    assert settings.retry_attempts and settings.min_duration == 0.01
    assert settings.header_default_mode == "drop" and settings.default_mode == "keep"


def ws_session() -> SessionRecord:
    handshake = record(path="/ws", status=101, duration=0.003, protocol="websocket",
                       response_bytes=0, router="ws@file", service="echo@file",
                       server_url="http://127.0.0.1:9100")
    return SessionRecord(handshake, opened_at=START, duration=61.5, client_messages=4,
                         backend_messages=9, client_bytes=120, backend_bytes=4096,
                         close_code=1000, closed_by="backend")


def test_websocket_session_entry() -> None:
    settings = AccessLogSettings()
    data = session_fields(ws_session(), settings, request_count=3)
    assert data["DownstreamStatus"] == 101
    assert data["Duration"] == 61_503_000_000
    assert data["RequestContentSize"] == 120
    assert data["DownstreamContentSize"] == 4096
    assert data["WSClientMessages"] == 4 and data["WSBackendMessages"] == 9
    assert data["WSClientBytes"] == 120 and data["WSBackendBytes"] == 4096
    assert data["WSCloseCode"] == 1000 and data["WSClosedBy"] == "backend"
    assert data["WSDuration"] == 61_500_000_000
    assert data["WSHandshakeDuration"] == 3_000_000
    assert format_common(data) == (
        '10.0.0.7 - - [14/Nov/2023:22:13:20 +0000] "GET /ws HTTP/1.1" 101 4096 "-" "-" 3 '
        '"ws@file" "http://127.0.0.1:9100" 61503ms')


def test_session_without_close_frame() -> None:
    s = ws_session()
    s.close_code, s.closed_by = None, ""
    data = session_fields(s, AccessLogSettings(), request_count=1)
    assert data["WSCloseCode"] == 1006 and data["WSClosedBy"] == "unknown"


def writer(settings: AccessLogSettings, **kwargs: Any) -> tuple[AccessLog, io.StringIO]:
    out = io.StringIO()
    return AccessLog(settings, stream=out, clock=lambda: START, **kwargs), out


def test_writer_one_line_per_request_and_per_session() -> None:
    log, out = writer(AccessLogSettings(format="json"))
    log.request_done(record())
    log.websocket_opened(ws_session())  # nothing at the start of a session
    log.websocket_closed(ws_session())
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["RequestCount"] == 1 and second["RequestCount"] == 2
    assert second["DownstreamStatus"] == 101 and second["WSCloseCode"] == 1000


def test_writer_counts_filtered_requests_too() -> None:
    log, out = writer(AccessLogSettings(format="json", status_ranges=((500, 599),)))
    log.request_done(record(status=200))
    log.request_done(record(status=502))
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["RequestCount"] == 2


def test_writer_buffering() -> None:
    clock = Clock()
    log, out = writer(AccessLogSettings(buffering_size=3), reactor=clock)
    log.request_done(record())
    log.request_done(record())
    assert out.getvalue() == ""
    log.request_done(record())
    assert len(out.getvalue().splitlines()) == 3
    log.request_done(record())
    assert len(out.getvalue().splitlines()) == 3
    clock.advance(1.0)
    assert len(out.getvalue().splitlines()) == 4
    log.request_done(record())
    log.close()
    assert len(out.getvalue().splitlines()) == 5


def test_writer_scope() -> None:
    scope = Scope({"web": True}, add_internals=False, switch="access_logs")
    log, out = writer(AccessLogSettings(), scope=scope)
    log.request_done(record(router="ping@internal", service="ping@internal"))
    assert out.getvalue() == ""


def test_writer_file_path_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "access.log"
    log = AccessLog(AccessLogSettings(file_path=str(path)))
    log.request_done(record())
    rotated = tmp_path / "logs" / "access.log.1"
    path.rename(rotated)
    log.reopen()
    log.request_done(record())
    log.close()
    assert len(rotated.read_text().splitlines()) == 1
    assert len(path.read_text().splitlines()) == 1
