"""EntryPoint responding timeouts (the ``short`` entryPoint: readTimeout and idleTimeout 1s)
bound request heads and idle keep-alive connections, never an upgraded WebSocket (reference
§6.5: Traefik clears the deadlines on hijack)."""

from __future__ import annotations

import json
import time

from tests.integration.harness import RawHTTP, Wsgate, ws_connect


def test_incomplete_head_times_out(gateway: Wsgate) -> None:
    port = gateway.ports["short"]
    started = time.monotonic()
    with RawHTTP(port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: http.test\r\n")
        data = conn.file.read()  # until the proxy closes
    assert data == b"" or data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started >= 0.9


def test_idle_keep_alive_connection_is_closed(gateway: Wsgate) -> None:
    port = gateway.ports["short"]
    with RawHTTP(port) as conn:
        conn.send(b"GET /once HTTP/1.1\r\nHost: http.test\r\n\r\n")
        assert json.loads(conn.response().body)["target"] == "/once"
        answered = time.monotonic()
        assert conn.at_eof()
        assert time.monotonic() - answered >= 0.9


def test_websocket_outlives_read_and_idle_timeouts(gateway: Wsgate) -> None:
    port = gateway.ports["short"]
    with ws_connect(port, "ws.test", "/echo") as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        # Wait for the event that proves more than both timeouts went by: a connection
        # opened after the WebSocket's last frame is closed for its idle head.
        with RawHTTP(port) as conn:
            conn.send(b"GET / HTTP/1.1\r\n")
            conn.file.read()
        ws.send("after")
        assert ws.recv(timeout=10) == "after"


def test_incomplete_body_times_out(gateway: Wsgate) -> None:
    """readTimeout covers the whole request, body included (Go's ReadTimeout): a client that
    stops sending its body is answered 408 and the backend request is abandoned."""
    port = gateway.ports["short"]
    started = time.monotonic()
    with RawHTTP(port) as conn:
        conn.send(b"POST /slow HTTP/1.1\r\nHost: http.test\r\nContent-Length: 100\r\n\r\n12345")
        response = conn.response()
        assert response.status == 408
        assert conn.at_eof()
    assert time.monotonic() - started >= 0.9


def test_incomplete_body_to_a_local_answer_times_out(gateway: Wsgate) -> None:
    port = gateway.ports["short"]
    with RawHTTP(port) as conn:
        conn.send(b"POST /x HTTP/1.1\r\nHost: unknown.test\r\nContent-Length: 100\r\n\r\n1")
        assert conn.response().status == 404
        assert conn.at_eof()


def test_slow_but_complete_body_within_the_timeout_is_fine(gateway: Wsgate) -> None:
    port = gateway.ports["short"]
    with RawHTTP(port) as conn:
        conn.send(b"POST /ok HTTP/1.1\r\nHost: http.test\r\nContent-Length: 10\r\n\r\n12345")
        conn.send(b"67890")
        assert json.loads(conn.response().body)["body_length"] == 10
