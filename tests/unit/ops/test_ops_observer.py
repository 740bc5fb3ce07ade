"""The observer interface: no-op default, fan-out binding, protocol detection, records."""

from __future__ import annotations

import io

from twisted.logger import capturedLogs

from wsgate.http.parser import RequestHeadParser
from wsgate.ops.accesslog import AccessLog, AccessLogSettings
from wsgate.ops.observer import (
    NOOP_OBSERVER,
    OBSERVER_METHODS,
    FanOut,
    Observer,
    RequestRecord,
    SessionRecord,
    request_protocol,
)


class Recorder(Observer):
    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name = name
        self.calls = calls

    def request_done(self, record: RequestRecord) -> None:
        self.calls.append((self.name, record.path))


class Broken(Observer):
    def request_done(self, record: RequestRecord) -> None:
        raise RuntimeError("boom")


def record(path: str = "/") -> RequestRecord:
    return RequestRecord("web", "GET", path, status=200)


def test_noop_observer_accepts_every_call() -> None:
    session = SessionRecord(record())
    NOOP_OBSERVER.connection_opened("web")
    NOOP_OBSERVER.request_done(record())
    NOOP_OBSERVER.websocket_opened(session)
    NOOP_OBSERVER.websocket_closed(session)
    NOOP_OBSERVER.handshake_failed("web", "", "", "no_router")
    NOOP_OBSERVER.config_reloaded(True)
    NOOP_OBSERVER.server_up("s@file", "http://a", False)
    NOOP_OBSERVER.tls_cert_not_after("cn", ["a"], "1", 0.0)
    NOOP_OBSERVER.close()
    assert set(OBSERVER_METHODS) <= set(dir(Observer))


def test_fanout_calls_each_listener_in_order() -> None:
    calls: list[tuple[str, str]] = []
    fan = FanOut([Recorder("a", calls), Observer(), Recorder("b", calls)])
    fan.request_done(record("/x"))
    assert calls == [("a", "/x"), ("b", "/x")]


def test_fanout_binds_nobody_for_calls_nobody_overrides() -> None:
    fan = FanOut([Recorder("a", [])])
    # connection_opened is overridden by nobody: bound to the shared no-op function
    assert fan.connection_opened.__name__ == "_noop"  # type: ignore[attr-defined]
    assert fan.request_done.__name__ == "call"  # type: ignore[attr-defined]


def test_a_failing_observer_is_logged_and_does_not_stop_the_others() -> None:
    calls: list[tuple[str, str]] = []
    fan = FanOut([Broken(), Recorder("after", calls)])
    with capturedLogs() as events:
        fan.request_done(record("/y"))
    assert calls == [("after", "/y")]
    assert any("request_done" in str(e.get("log_format", "")) or e.get("name") == "request_done"
               for e in events)
    assert any(e.get("log_failure") is not None for e in events)


def test_fanout_find_searches_nested_fanouts() -> None:
    inner = Recorder("x", [])
    fan = FanOut([Observer(), FanOut([inner])])
    assert fan.find(Recorder) is inner
    assert fan.find(Broken) is None


def test_request_protocol_follows_traefik() -> None:
    assert request_protocol([("Connection", "keep-alive, Upgrade"),
                             ("Upgrade", "websocket")]) == "websocket"
    assert request_protocol([("Upgrade", "websocket")]) == "http"
    assert request_protocol([("connection", "upgrade"), ("upgrade", "h2c")]) == "http"
    assert request_protocol([("Accept", "text/event-stream")]) == "sse"
    assert request_protocol([("Content-Type", "application/grpc-web+proto")]) == "grpc-web"
    assert request_protocol([("Content-Type", "application/grpc")]) == "grpc"
    assert request_protocol([]) == "http"


def test_record_for_head() -> None:
    parser = RequestHeadParser(65536, 100)
    found = parser.feed(b"GET /chat?room=1 HTTP/1.1\r\nHost: ws.example:8000\r\n"
                        b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert found is not None
    head, _ = found
    rec = RequestRecord.for_head("web", head, client_ip="10.0.0.1", client_port=4242,
                                 tls=True, start=12.5)
    assert (rec.entrypoint, rec.method, rec.path, rec.host) == (
        "web", "GET", "/chat?room=1", "ws.example:8000")
    assert rec.protocol == "websocket"
    assert rec.http_version == "1.1"
    assert rec.tls and rec.start == 12.5 and rec.client_port == 4242
    assert rec.headers == head.headers


def test_session_record_reads_through_to_its_handshake() -> None:
    rec = RequestRecord("web", "GET", "/", router="r@file", service="s@file",
                        server_url="http://a")
    session = SessionRecord(rec)
    assert (session.entrypoint, session.router, session.service, session.server_url) == (
        "web", "r@file", "s@file", "http://a")


def test_session_headers_are_kept_only_when_an_access_log_reads_them() -> None:
    """The data path drops a session's handshake headers at the 101 unless an observer reads
    them at the session's end (memory per idle WebSocket)."""
    calls: list[tuple[str, str]] = []
    assert not NOOP_OBSERVER.keeps_session_headers
    assert not FanOut([Recorder("a", calls)]).keeps_session_headers
    log = AccessLog(AccessLogSettings(), stream=io.StringIO())
    assert FanOut([Recorder("a", calls), log]).keeps_session_headers
    assert FanOut([FanOut([log])]).keeps_session_headers
