"""ResponseHeadParser: backend heads, framing by status and method, interim responses."""

from __future__ import annotations

import pytest

from wsgate.http import BodyKind, HTTPParseError, ResponseHead, ResponseHeadParser

SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Set-Cookie: sticky=abc\r\n"
    b"\r\n"
)


def parse(raw: bytes, method: str = "GET") -> ResponseHead:
    got = ResponseHeadParser(method).feed(raw)
    assert got is not None
    return got[0]


def test_switching_protocols_and_early_frames() -> None:
    frame = b"\x81\x02hi"
    head, left = ResponseHeadParser().feed(SWITCH + frame)  # type: ignore[misc]
    assert head.status == 101 and head.reason == "Switching Protocols"
    assert head.is_switching_protocols and not head.is_informational
    assert head.upgrade == "websocket" and head.connection == ("upgrade",)
    assert head.body_kind is BodyKind.NONE
    assert head.get("set-cookie") == "sticky=abc"
    assert head.headers[2] == ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    assert left == frame


def test_split_at_every_offset() -> None:
    raw = SWITCH + b"\x81\x02hi"
    whole = ResponseHeadParser().feed(raw)
    for i in range(len(raw) + 1):
        p = ResponseHeadParser()
        got = p.feed(raw[:i])
        if got is None:
            assert p.feed(raw[i:]) == whole, i
        else:
            assert got[0] == whole[0] and got[1] + raw[i:] == whole[1]  # type: ignore[index]


def test_interim_responses_then_final() -> None:
    stream = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    p = ResponseHeadParser("POST")
    seen = []
    rest = stream
    while True:
        got = p.feed(rest)
        assert got is not None
        head, rest = got
        seen.append(head.status)
        assert head.is_informational == (head.status < 200)
        if not head.is_informational:
            break
    assert seen == [100, 103, 200]
    assert head.body_kind is BodyKind.LENGTH and head.content_length == 2
    assert rest == b"ok"


@pytest.mark.parametrize(
    ("status_line", "fields", "method", "kind"),
    [
        ("200 OK", "Content-Length: 10", "GET", BodyKind.LENGTH),
        ("200 OK", "Content-Length: 0", "GET", BodyKind.NONE),
        ("200 OK", "Transfer-Encoding: chunked", "GET", BodyKind.CHUNKED),
        ("200 OK", "", "GET", BodyKind.UNTIL_CLOSE),
        ("200 OK", "Content-Length: 10", "HEAD", BodyKind.NONE),
        ("200 OK", "Transfer-Encoding: chunked", "HEAD", BodyKind.NONE),
        ("204 No Content", "Content-Length: 10", "GET", BodyKind.NONE),
        ("304 Not Modified", "Content-Length: 10", "GET", BodyKind.NONE),
        ("304 Not Modified", "", "GET", BodyKind.NONE),
        ("100 Continue", "", "GET", BodyKind.NONE),
        ("101 Switching Protocols", "", "GET", BodyKind.NONE),
        ("200 Connection established", "", "CONNECT", BodyKind.NONE),
        ("404 Not Found", "", "CONNECT", BodyKind.UNTIL_CLOSE),
        ("500 Oops", "Content-Length: 3", "GET", BodyKind.LENGTH),
    ],
)
def test_body_kind(status_line: str, fields: str, method: str, kind: BodyKind) -> None:
    raw = f"HTTP/1.1 {status_line}\r\n" + (f"{fields}\r\n" if fields else "") + "\r\n"
    assert parse(raw.encode(), method).body_kind is kind


def test_keep_alive() -> None:
    assert parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert not parse(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    ).keep_alive
    assert not parse(b"HTTP/1.1 200 OK\r\n\r\n").keep_alive  # read until close
    assert not parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert parse(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
    ).keep_alive


def test_reason_phrase_is_optional() -> None:
    assert parse(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").reason == ""
    assert parse(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").reason == ""
    assert parse(b"HTTP/1.1 418 I'm a teapot\r\n\r\n").reason == "I'm a teapot"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported"),
        (b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", "obsolete line folding"),
        (b"HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n", "whitespace"),
        (b"HTTP/1.1 200 OK\nX-A: b\n\n", "bare LF"),
        (b"HTTP/1.1 200 OK\r\nX-A: b\x00\r\n\r\n", "control character"),
        (b"HTTP/2 200\r\n\r\n", "malformed status line"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "version"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 099 Low\r\n\r\n", "invalid status code"),
        (b"http/1.1 200 OK\r\n\r\n", "malformed status line"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed status line"),
    ],
)
def test_rejections_are_502(raw: bytes, reason: str) -> None:
    with pytest.raises(HTTPParseError) as info:
        ResponseHeadParser().feed(raw)
    assert info.value.status == 502
    assert reason.lower() in info.value.reason.lower(), info.value.reason


def test_too_large_is_502() -> None:
    p = ResponseHeadParser(max_head_bytes=32)
    with pytest.raises(HTTPParseError) as info:
        p.feed(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 40)
    assert info.value.status == 502
