"""BodyReader: streaming bodies by length, chunked (validated, forwarded as is) or until close."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate.http import BodyKind, BodyReader, HTTPParseError, RequestHeadParser


def run(reader: BodyReader, parts: list[bytes]) -> tuple[bytes, bool, bytes]:
    """Feed ``parts``; return (forwarded bytes, done, leftover incl. unfed parts)."""
    out = b""
    for i, part in enumerate(parts):
        fwd, done, left = reader.feed(part)
        out += fwd
        if done:
            return out, True, left + b"".join(parts[i + 1 :])
        assert left == b""
    return out, False, b""


def test_length() -> None:
    r = BodyReader(BodyKind.LENGTH, 5)
    assert r.feed(b"he") == (b"he", False, b"")
    assert r.feed(b"llo") == (b"llo", True, b"")
    assert r.done and r.body_bytes == 5
    assert r.feed(b"more") == (b"", True, b"more")


def test_length_with_leftover_and_identity() -> None:
    r = BodyReader(BodyKind.LENGTH, 3)
    data = b"abc"
    fwd, done, left = r.feed(data)
    assert fwd is data and done and left == b""
    r = BodyReader(BodyKind.LENGTH, 3)
    assert r.feed(b"abcGET /") == (b"abc", True, b"GET /")


def test_none_and_zero_length() -> None:
    for r in (BodyReader(BodyKind.NONE), BodyReader(BodyKind.LENGTH, 0)):
        assert r.done
        assert r.feed(b"next") == (b"", True, b"next")


def test_until_close() -> None:
    r = BodyReader(BodyKind.UNTIL_CLOSE, status=502)
    data = b"x" * 100
    fwd, done, _ = r.feed(data)
    assert fwd is data and not done
    r.feed_eof()
    assert r.done and r.body_bytes == 100


def test_eof_truncates_a_framed_body() -> None:
    r = BodyReader(BodyKind.LENGTH, 10, status=502)
    r.feed(b"abc")
    with pytest.raises(HTTPParseError) as info:
        r.feed_eof()
    assert info.value.status == 502
    r = BodyReader(BodyKind.CHUNKED)
    r.feed(b"5\r\nab")
    with pytest.raises(HTTPParseError):
        r.feed_eof()


CHUNKED = (
    b"5\r\nhello\r\n"
    b'1A;name=value;q="a \\" b" ; flag\r\n' + b"z" * 26 + b"\r\n"
    b"000\r\n"
    b"Trailer-One: 1\r\n"
    b"Trailer-Two:  two \r\n"
    b"\r\n"
)
NEXT = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"


def test_chunked_whole() -> None:
    r = BodyReader(BodyKind.CHUNKED)
    data = CHUNKED + NEXT
    fwd, done, left = r.feed(data)
    assert fwd == CHUNKED and done and left == NEXT
    assert r.body_bytes == 31


def test_chunked_passes_the_same_object_when_whole() -> None:
    r = BodyReader(BodyKind.CHUNKED)
    data = CHUNKED[:20]
    assert r.feed(data)[0] is data


def test_chunked_split_at_every_offset() -> None:
    data = CHUNKED + NEXT
    for i in range(len(data) + 1):
        r = BodyReader(BodyKind.CHUNKED)
        assert run(r, [data[:i], data[i:]]) == (CHUNKED, True, NEXT), i


def test_chunked_byte_by_byte() -> None:
    data = CHUNKED + NEXT
    r = BodyReader(BodyKind.CHUNKED)
    assert run(r, [data[i : i + 1] for i in range(len(data))]) == (CHUNKED, True, NEXT)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=0, max_size=40), min_size=0, max_size=6),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_chunked_any_chunks_any_split(chunks: list[bytes], cuts: list[int]) -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    data = body + NEXT
    points = sorted({min(c, len(data)) for c in cuts})
    parts = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    r = BodyReader(BodyKind.CHUNKED)
    assert run(r, parts) == (body, True, NEXT)
    assert r.body_bytes == sum(len(c) for c in chunks)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"5 \r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b" 5\r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b"+5\r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b"0x5\r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b"5\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b"5\r\r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b"\r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b"5;\r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b'5;a="x\r\nhello\r\n0\r\n\r\n', "chunk-size line"),
        (b"5;a b\r\nhello\r\n0\r\n\r\n", "chunk-size line"),
        (b"11111111111111111\r\n", "chunk-size line"),
        (b"5\r\nhelloXY0\r\n\r\n", "CRLF"),
        (b"5\r\nhello\rX0\r\n\r\n", "CRLF"),
        (b"5\r\nhello\n0\r\n\r\n", "CRLF"),
        (b"0\r\nBad Trailer: x\r\n\r\n", "trailer"),
        (b"0\r\nX: a\x00b\r\n\r\n", "trailer"),
        (b"0\r\nX: a\n\r\n", "trailer"),
        (b"0\r\n\n", "trailer"),
        (b"0\r\n foldeded\r\n\r\n", "trailer"),
    ],
)
def test_chunked_rejections(data: bytes, reason: str) -> None:
    for parts in ([data], [data[i : i + 1] for i in range(len(data))]):
        r = BodyReader(BodyKind.CHUNKED, status=400)
        with pytest.raises(HTTPParseError) as info:
            run(r, parts)
        assert info.value.status == 400
        assert reason.lower() in info.value.reason.lower(), info.value.reason


def test_chunk_line_limit() -> None:
    r = BodyReader(BodyKind.CHUNKED, max_line=16)
    with pytest.raises(HTTPParseError, match="too long"):
        r.feed(b"5;" + b"a" * 20)
    r = BodyReader(BodyKind.CHUNKED, max_line=16)
    r.feed(b"5;aaaaaa")
    with pytest.raises(HTTPParseError, match="too long"):
        r.feed(b"aaaaaaaaaa")
    r = BodyReader(BodyKind.CHUNKED, max_line=16)
    assert r.feed(b"5;aaaaaaaaaaa\r\n")[1] is False  # exactly 16


def test_trailer_limit() -> None:
    r = BodyReader(BodyKind.CHUNKED, max_trailer_bytes=20)
    with pytest.raises(HTTPParseError, match="trailer section too large"):
        r.feed(b"0\r\nX-A: 1234567\r\nX-B: 1234567\r\n\r\n")


def test_large_chunk_payload_is_skipped_arithmetically() -> None:
    r = BodyReader(BodyKind.CHUNKED)
    r.feed(b"100000\r\n")
    block = b"x" * 65536
    for _ in range(16):
        fwd, done, _ = r.feed(block)
        assert fwd is block and not done
    assert r.feed(b"\r\n0\r\n\r\n") == (b"\r\n0\r\n\r\n", True, b"")
    assert r.body_bytes == 1 << 20


def test_parser_and_reader_share_a_pipelined_stream() -> None:
    stream = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    for i in range(len(stream) + 1):
        got = _requests([stream[:i], stream[i:]])
        assert got == [
            ("/a", b"abc"),
            ("/b", b"3\r\nxyz\r\n0\r\n\r\n"),
            ("/c", b""),
        ], i


def _requests(parts: list[bytes]) -> list[tuple[str, bytes]]:
    parser = RequestHeadParser()
    reader: BodyReader | None = None
    target = ""
    body = b""
    out: list[tuple[str, bytes]] = []
    for part in parts:
        data = part
        while data:
            if reader is None:
                got = parser.feed(data)
                if got is None:
                    break
                head, data = got
                target, body = head.target, b""
                reader = BodyReader(head.body_kind, head.content_length or 0)
                if reader.done:
                    out.append((target, b""))
                    reader = None
                continue
            fwd, done, data = reader.feed(data)
            body += fwd
            if done:
                out.append((target, body))
                reader = None
    return out
