"""Serialising heads, the proxy's error responses, and the 101 check."""

from __future__ import annotations

import pytest

from wsgate.http import (
    HTTPParseError,
    ResponseHeadParser,
    check_switching_protocols,
    error_response,
    parse_request_head,
    parse_response_head,
    serialize_request,
    serialize_response,
)


def test_serialize_request() -> None:
    raw = serialize_request("GET", "/a%2Fb?x", [("Host", "h"), ("x-Custom", "v v")])
    assert raw == b"GET /a%2Fb?x HTTP/1.1\r\nHost: h\r\nx-Custom: v v\r\n\r\n"
    assert serialize_request("GET", "/", []) == b"GET / HTTP/1.1\r\n\r\n"


def test_serialize_response() -> None:
    raw = serialize_response(101, "Switching Protocols", [("Upgrade", "websocket")])
    assert raw == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    assert serialize_response(204, "No Content", []) == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_serialize_keeps_latin1_bytes() -> None:
    raw = serialize_request("GET", "/caf\xe9", [("X", "\xe9")])
    assert raw == b"GET /caf\xe9 HTTP/1.1\r\nX: \xe9\r\n\r\n"


@pytest.mark.parametrize("value", ["a\r\nInjected: yes", "a\nb", "a\u20acb"])
def test_serialize_refuses_injection_and_non_latin1(value: str) -> None:
    with pytest.raises(ValueError):
        serialize_request("GET", "/", [("X", value)])


@pytest.mark.parametrize(
    ("status", "body", "close"),
    [
        (400, b"400 Bad Request", True),
        (404, b"404 page not found\n", False),
        (413, b"413 Request Entity Too Large", True),
        (429, b"Too Many Requests", False),
        (431, b"431 Request Header Fields Too Large", True),
        (502, b"Bad Gateway", False),
        (503, b"Service Unavailable", False),
        (504, b"Gateway Timeout", False),
        (505, b"505 HTTP Version Not Supported", True),
    ],
)
def test_error_responses(status: int, body: bytes, close: bool) -> None:
    raw = error_response(status)
    head, rest = ResponseHeadParser().feed(raw)  # type: ignore[misc]
    assert head.status == status
    assert rest == body
    assert head.content_length == len(body)
    assert head.get("Content-Type") == "text/plain; charset=utf-8"
    assert ("close" in head.connection) is close


def test_error_response_overrides() -> None:
    raw = error_response(502, "backend down", close=True, headers=[("Retry-After", "1")])
    head, rest = ResponseHeadParser().feed(raw)  # type: ignore[misc]
    assert rest == b"backend down" and head.get("Retry-After") == "1"
    assert "close" in head.connection
    head, _ = ResponseHeadParser().feed(error_response(400, close=False))  # type: ignore[misc]
    assert "close" not in head.connection


# -- 101 check ----------------------------------------------------------------------------------

REQ = parse_request_head(
    b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
)


def resp(fields: str, status: str = "101 Switching Protocols") -> object:
    return parse_response_head(f"HTTP/1.1 {status}\r\n{fields}\r\n".encode())


@pytest.mark.parametrize(
    "fields",
    [
        "Connection: Upgrade\r\nUpgrade: websocket\r\n",
        "connection: upgrade\r\nupgrade: WebSocket\r\n",
        "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n",
    ],
)
def test_accepted_101(fields: str) -> None:
    check_switching_protocols(REQ, resp(fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ("Connection: Upgrade\r\nUpgrade: h2c\r\n", "101 Switching Protocols", "switch protocol"),
        ("Upgrade: websocket\r\n", "101 Switching Protocols", "lacks"),
        ("Connection: Upgrade\r\n", "101 Switching Protocols", "lacks"),
        ("Connection: Upgrade\r\nUpgrade:\r\n", "101 Switching Protocols", "switch protocol"),
        ("Content-Length: 0\r\n", "200 OK", "expected 101"),
    ],
)
def test_refused_101(fields: str, status: str, reason: str) -> None:
    with pytest.raises(HTTPParseError) as info:
        check_switching_protocols(REQ, resp(fields, status))  # type: ignore[arg-type]
    assert info.value.status == 502 and reason in info.value.reason


def test_101_without_upgrade_request() -> None:
    req = parse_request_head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(HTTPParseError, match="without an upgrade request"):
        check_switching_protocols(req, resp("Connection: Upgrade\r\nUpgrade: websocket\r\n"))  # type: ignore[arg-type]


def test_101_picks_one_of_several_offers() -> None:
    req = parse_request_head(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: foo/2, websocket\r\n\r\n"
    )
    check_switching_protocols(req, resp("Connection: Upgrade\r\nUpgrade: websocket\r\n"))  # type: ignore[arg-type]
