"""RequestHeadParser: incremental parsing, leftovers, pipelining and every rejection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate.http import (
    BodyKind,
    HTTPParseError,
    RequestHead,
    RequestHeadParser,
    parse_request_head,
)

WS_HEAD = (
    b"GET /ws/chat?room=42 HTTP/1.1\r\n"
    b"Host: app.example.com:8000\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: https://app.example.com\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Cookie: a=1; b=2\r\n"
    b"\r\n"
)
EARLY_FRAME = b"\x81\x85\x01\x02\x03\x04hello"


def parse(raw: bytes, **kw: int) -> RequestHead:
    got = RequestHeadParser(**kw).feed(raw)
    assert got is not None
    return got[0]


def reject(raw: bytes, **kw: int) -> HTTPParseError:
    p = RequestHeadParser(**kw)
    with pytest.raises(HTTPParseError) as info:
        got = p.feed(raw)
        assert got is None, "head accepted"
        p.feed(b"\r\n\r\n")  # for heads fed without their end
    return info.value


# -- the happy path -------------------------------------------------------------------------------


def test_websocket_head_fields() -> None:
    head, leftover = RequestHeadParser().feed(WS_HEAD + EARLY_FRAME)  # type: ignore[misc]
    assert leftover == EARLY_FRAME
    assert head.method == "GET"
    assert head.target == "/ws/chat?room=42"
    assert head.raw_target == b"/ws/chat?room=42"
    assert head.version == "1.1"
    assert head.headers[0] == ("Host", "app.example.com:8000")
    assert head.headers[4] == ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    assert [n for n, _ in head.headers] == [
        "Host",
        "Connection",
        "Upgrade",
        "Origin",
        "sec-websocket-key",
        "Sec-WebSocket-Version",
        "Cookie",
    ]
    assert head.host == "app.example.com:8000"
    assert head.connection == ("keep-alive", "upgrade")
    assert head.is_upgrade and head.upgrade_protocol == "websocket"
    assert head.keep_alive
    assert head.path == "/ws/chat" and head.query == "room=42"
    assert head.content_length is None and not head.chunked
    assert head.body_kind is BodyKind.NONE
    assert head.target_form == "origin"
    assert not head.expects_continue


def test_accessors_are_case_insensitive() -> None:
    head = parse(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n"
        b"Cache-Control: no-cache, No-Store\r\n\r\n"
    )
    assert head.get("SEC-WEBSOCKET-KEY") is None
    assert head.get("x-A") == "1"
    assert head.get_all("X-a") == ["1", "2"]
    assert head.get("missing", "d") == "d"
    assert head.has_token("cache-control", "no-store")
    assert not head.has_token("cache-control", "private")


def test_heads_are_immutable() -> None:
    head = parse(WS_HEAD)
    with pytest.raises(AttributeError):
        head.method = "POST"  # type: ignore[misc]


def test_optional_whitespace_is_trimmed_and_obs_text_kept() -> None:
    head = parse(b"GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a  b \t\r\nX-B:\r\nX-C: caf\xe9\r\n\r\n")
    assert head.headers == (("Host", "h"), ("X-A", "a  b"), ("X-B", ""), ("X-C", "caf\xe9"))


def test_target_kept_byte_for_byte() -> None:
    raw = b"GET /ws/http%3A%2F%2Ftest;x?a=1;b=%2F&c HTTP/1.1\r\nHost: h\r\n\r\n"
    head = parse(raw)
    assert head.raw_target == b"/ws/http%3A%2F%2Ftest;x?a=1;b=%2F&c"
    assert head.path == "/ws/http%3A%2F%2Ftest;x"
    assert head.decoded_path == "/ws/http://test;x"


def test_no_headers_http10() -> None:
    head = parse(b"GET / HTTP/1.0\r\n\r\n")
    assert head.headers == () and head.host == "" and head.version == "1.0"


def test_leading_empty_lines_are_skipped() -> None:
    assert parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").method == "GET"
    p = RequestHeadParser()
    assert p.feed(b"\r") is None
    assert p.feed(b"\n") is None
    assert p.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") is not None


def test_minor_versions_above_one_are_treated_as_1_1() -> None:
    assert parse(b"GET / HTTP/1.7\r\nHost: h\r\n\r\n").version == "1.1"


# -- incremental feeding and leftovers ----------------------------------------------------------


def test_split_at_every_offset() -> None:
    raw = WS_HEAD + EARLY_FRAME
    whole, left = RequestHeadParser().feed(raw)  # type: ignore[misc]
    for i in range(len(raw) + 1):
        p = RequestHeadParser()
        got = p.feed(raw[:i])
        if got is None:
            assert p.buffered == i or raw[:i].startswith(b"\r\n")
            got = p.feed(raw[i:])
            assert got == (whole, left), i
        else:
            assert i >= len(WS_HEAD)
            assert got[0] == whole and got[1] + raw[i:] == left


def test_byte_by_byte() -> None:
    p = RequestHeadParser()
    results = [p.feed(WS_HEAD[i : i + 1]) for i in range(len(WS_HEAD))]
    assert all(r is None for r in results[:-1])
    assert results[-1] == (parse(WS_HEAD), b"")


def test_pipelined_heads_in_one_feed() -> None:
    second = b"GET /two HTTP/1.1\r\nHost: h\r\n\r\n"
    p = RequestHeadParser()
    first, rest = p.feed(WS_HEAD + second + b"tail")  # type: ignore[misc]
    assert first.target == "/ws/chat?room=42"
    assert rest == second + b"tail"
    head, rest = p.feed(rest)  # type: ignore[misc]
    assert head.target == "/two" and rest == b"tail"


def _drain(stream_parts: list[bytes]) -> list[tuple[str, bytes]]:
    """Heads (target) with the bytes that followed each until the next head (GETs only)."""
    p = RequestHeadParser()
    out: list[tuple[str, bytes]] = []
    pending = b""
    for part in stream_parts:
        pending += part
        while pending:
            got = p.feed(pending)
            pending = b""
            if got is None:
                break
            head, pending = got
            out.append((head.target, b""))
    assert p.buffered == 0
    return out


PIPELINE = b"".join(f"GET /{i} HTTP/1.1\r\nHost: h\r\nX-N: {i}\r\n\r\n".encode() for i in range(3))


def test_pipeline_split_at_every_offset() -> None:
    expected = [(f"/{i}", b"") for i in range(3)]
    for i in range(len(PIPELINE) + 1):
        assert _drain([PIPELINE[:i], PIPELINE[i:]]) == expected, i


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(PIPELINE)), max_size=12))
def test_pipeline_any_chunking(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    parts = [PIPELINE[a:b] for a, b in zip([0, *points], [*points, len(PIPELINE)])]
    assert _drain(parts) == [(f"/{i}", b"") for i in range(3)]


def test_parser_resets_after_a_head() -> None:
    p = RequestHeadParser()
    assert p.feed(WS_HEAD) is not None
    assert p.buffered == 0
    assert p.feed(b"GET /x HTTP/1.1\r\nHo") is None
    assert p.buffered > 0


# -- target forms and Host ----------------------------------------------------------------------


def test_absolute_form_authority_overrides_host() -> None:
    head = parse(b"GET http://user@example.org:81/a%2Fb?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert head.target_form == "absolute"
    assert head.host == "example.org:81"
    assert head.path == "/a%2Fb" and head.query == "q=1"
    assert head.origin_form == "/a%2Fb?q=1"
    assert head.get("Host") == "other"


def test_absolute_form_without_path() -> None:
    head = parse(b"GET https://example.org?x HTTP/1.1\r\nHost: example.org\r\n\r\n")
    assert head.origin_form == "/?x" and head.path == "/" and head.host == "example.org"


def test_connect_and_asterisk_forms() -> None:
    head = parse(b"CONNECT example.org:443 HTTP/1.1\r\n\r\n")
    assert head.target_form == "authority" and head.host == "example.org:443"
    head = parse(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head.target_form == "asterisk" and head.path == "*"


def test_http10_may_omit_host() -> None:
    assert parse(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n").host == ""


def test_empty_host_is_allowed() -> None:
    assert parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").host == ""


# -- connection semantics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", None, True),
        ("1.1", "close", False),
        ("1.1", "Keep-Alive", True),
        ("1.1", "foo, CLOSE", False),
        ("1.0", None, False),
        ("1.0", "keep-alive", True),
        ("1.0", "Keep-Alive, close", False),
    ],
)
def test_keep_alive(version: str, connection: str | None, keep_alive: bool) -> None:
    raw = f"GET / HTTP/{version}\r\nHost: h\r\n"
    if connection is not None:
        raw += f"Connection: {connection}\r\n"
    assert parse((raw + "\r\n").encode()).keep_alive is keep_alive


def test_upgrade_needs_connection_token_and_http11() -> None:
    base = "GET / HTTP/{v}\r\nHost: h\r\n{c}Upgrade: websocket\r\n\r\n"
    assert parse(base.format(v="1.1", c="Connection: Upgrade\r\n").encode()).is_upgrade
    assert not parse(base.format(v="1.1", c="").encode()).is_upgrade
    assert not parse(base.format(v="1.1", c="Connection: keep-alive\r\n").encode()).is_upgrade
    assert not parse(base.format(v="1.0", c="Connection: Upgrade\r\n").encode()).is_upgrade
    no_upgrade = parse(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n")
    assert not no_upgrade.is_upgrade and no_upgrade.upgrade_protocol is None


def test_upgrade_split_over_connection_fields() -> None:
    head = parse(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n"
    )
    assert head.is_upgrade


def test_expect_continue() -> None:
    head = parse(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n")
    assert head.expects_continue
    head = parse(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert not head.expects_continue


# -- body framing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "length"),
    [
        ("Content-Length: 5", 5),
        ("Content-Length: 0", 0),
        ("Content-Length:  7 ", 7),
        ("Content-Length: 5\r\nContent-Length: 5", 5),
        ("Content-Length: 5, 5", 5),
        ("Content-Length: 005", 5),
    ],
)
def test_content_length(fields: str, length: int) -> None:
    head = parse(f"POST / HTTP/1.1\r\nHost: h\r\n{fields}\r\n\r\n".encode())
    assert head.content_length == length
    assert head.body_kind is (BodyKind.LENGTH if length else BodyKind.NONE)


def test_chunked() -> None:
    head = parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n")
    assert head.chunked and head.content_length is None
    assert head.body_kind is BodyKind.CHUNKED


# -- rejections ---------------------------------------------------------------------------------

H = b"Host: h\r\n"

REJECTIONS = [
    # framing
    (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "both Content-Length and Transfer-Encoding",
    ),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400,
        "both Content-Length and Transfer-Encoding",
    ),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
        400,
        "conflicting Content-Length",
    ),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\n", 400, "conflicting"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 05\r\n\r\n", 400, "conflicting"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400, "invalid Content-Length"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400, "invalid Content-Length"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +1\r\n\r\n", 400, "invalid Content-Length"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\n", 400, "invalid Content-Length"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n", 400, "invalid Content-Length"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \xb2\r\n\r\n", 400, "invalid Content-Length"),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n",
        400,
        "too large",
    ),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400, "final coding"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "final coding"),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
        400,
        "final coding",
    ),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n\r\n", 400, "final coding"),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n",
        400,
        "more than once",
    ),
    (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
        501,
        "unsupported transfer coding",
    ),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"),
    # field syntax
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400, "obsolete line folding"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n\tc\r\n\r\n", 400, "obsolete line folding"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400, "whitespace between header name"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n", 400, "whitespace between header name"),
    (b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400, "invalid character in header name"),
    (b"GET / HTTP/1.1\r\n" + H + b"X\xe9: b\r\n\r\n", 400, "invalid character in header name"),
    (b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400, "empty header name"),
    (b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400, "without a colon"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n", 400, "control character"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x1bc\r\n\r\n", 400, "control character"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x7fc\r\n\r\n", 400, "control character"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n", 400, "bare CR"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\r\n\r\n", 400, "bare CR"),
    # line endings
    (b"GET / HTTP/1.1\nHost: h\n\n", 400, "bare LF"),
    (b"GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n", 400, "bare LF"),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX-A: b\n\r\n", 400, "bare LF"),
    (b"GET / HTTP/1.1\r\nHost: h\r\n\n", 400, "bare LF"),
    (b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bare LF"),
    (b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bare CR"),
    (b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bare LF"),
    (b"\x00GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "method"),
    # request line
    (b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400, "method SP target SP version"),
    (b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400, "method SP target SP version"),
    (b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400, "method SP target SP version"),
    (b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400, "method SP target SP version"),
    (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400, "invalid method token"),
    (b"GET /\x01 HTTP/1.1\r\n" + H + b"\r\n", 400, "invalid character in request target"),
    (b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400, "malformed HTTP version"),
    (b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400, "malformed HTTP version"),
    (b"GET / http/1.1\r\n" + H + b"\r\n", 400, "malformed HTTP version"),
    (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505, "not supported"),
    (b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505, "not supported"),
    (b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505, "not supported"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "not supported"),
    (b"GET / HTTP/10.0\r\n" + H + b"\r\n", 505, "not supported"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "TLS handshake"),
    # targets
    (b"GET foo HTTP/1.1\r\n" + H + b"\r\n", 400, "invalid request target"),
    (b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400, "only valid for OPTIONS"),
    (b"GET /a%zz HTTP/1.1\r\n" + H + b"\r\n", 400, "percent-encoding"),
    (b"GET /a%2 HTTP/1.1\r\n" + H + b"\r\n", 400, "percent-encoding"),
    (b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", 400, "fragment"),
    (b"GET http:///x HTTP/1.1\r\n" + H + b"\r\n", 400, "invalid authority"),
    (b"CONNECT example.org HTTP/1.1\r\n\r\n", 400, "invalid CONNECT target"),
    # Host
    (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "more than one Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "more than one Host"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"),
    # Expect
    (b"GET / HTTP/1.1\r\n" + H + b"Expect: foo\r\n\r\n", 417, "unsupported expectation"),
]


@pytest.mark.parametrize(("raw", "status", "reason"), REJECTIONS)
def test_rejections(raw: bytes, status: int, reason: str) -> None:
    err = reject(raw)
    assert err.status == status
    assert reason.lower() in err.reason.lower(), err.reason


@pytest.mark.parametrize(("raw", "status", "reason"), REJECTIONS)
def test_rejections_when_fed_byte_by_byte(raw: bytes, status: int, reason: str) -> None:
    p = RequestHeadParser()
    with pytest.raises(HTTPParseError) as info:
        for i in range(len(raw)):
            p.feed(raw[i : i + 1])
        p.feed(b"\r\n\r\n")
    assert info.value.status == status


def test_error_is_sticky() -> None:
    p = RequestHeadParser()
    with pytest.raises(HTTPParseError):
        p.feed(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n")
    with pytest.raises(HTTPParseError):
        p.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")


def test_bare_lf_is_rejected_before_the_head_ends() -> None:
    p = RequestHeadParser()
    with pytest.raises(HTTPParseError, match="bare LF"):
        p.feed(b"GET / HTTP/1.1\nHost: h")


def test_str_names_status_and_rule() -> None:
    err = reject(b"GET / HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n")
    assert str(err).startswith("400: whitespace between header name and colon")


# -- limits -------------------------------------------------------------------------------------


def test_head_at_the_size_limit_is_accepted() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    assert parse(raw, max_head_bytes=len(raw)).method == "GET"
    assert reject(raw, max_head_bytes=len(raw) - 1).status == 431


def test_head_too_large_incrementally() -> None:
    p = RequestHeadParser(max_head_bytes=64)
    assert p.feed(b"GET / HTTP/1.1\r\nHost: h\r\n") is None
    with pytest.raises(HTTPParseError) as info:
        for _ in range(10):
            p.feed(b"X-Padding: aaaaaaaaaa\r\n")
    assert info.value.status == 431


def test_unterminated_head_is_rejected_at_the_limit() -> None:
    p = RequestHeadParser(max_head_bytes=100)
    assert p.feed(b"G" * 100) is None
    with pytest.raises(HTTPParseError) as info:
        p.feed(b"G")
    assert info.value.status == 431


def test_default_limits() -> None:
    p = RequestHeadParser()
    assert p.max_head_bytes == 1 << 20 and p.max_headers == 100
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    assert reject(big).status == 431


def test_header_count_limit() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(9))
    raw = b"GET / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n"
    assert len(parse(raw, max_headers=10).headers) == 10
    err = reject(raw, max_headers=9)
    assert err.status == 431 and "header fields" in err.reason


def test_leftover_is_not_counted_in_the_head_size() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    got = RequestHeadParser(max_head_bytes=len(raw)).feed(raw + b"x" * 1000)
    assert got is not None and got[1] == b"x" * 1000


def test_parse_request_head_accepts_the_terminator() -> None:
    a = parse_request_head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    b = parse_request_head(b"GET / HTTP/1.1\r\nHost: h\r\n")
    assert a == b
