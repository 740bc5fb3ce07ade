"""BodyReader(decode_chunked=True): chunk data alone, for recipients that cannot take chunked
coding (an HTTP/1.0 client)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate.http import BodyKind, BodyReader


def encode(chunks: list[bytes], trailer: bytes = b"") -> bytes:
    out = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    return out + b"0\r\n" + trailer + b"\r\n"


def test_decodes_chunks_and_drops_trailers() -> None:
    reader = BodyReader(BodyKind.CHUNKED, decode_chunked=True)
    forward, done, rest = reader.feed(encode([b"hello ", b"world"], b"X-T: 1\r\n") + b"NEXT")
    assert (forward, done, rest) == (b"hello world", True, b"NEXT")
    assert reader.body_bytes == 11


def test_default_still_passes_the_coding_through() -> None:
    data = encode([b"abc"])
    assert BodyReader(BodyKind.CHUNKED).feed(data) == (data, True, b"")


def test_other_kinds_are_unaffected() -> None:
    reader = BodyReader(BodyKind.LENGTH, 3, decode_chunked=True)
    assert reader.feed(b"abcdef") == (b"abc", True, b"def")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6),
       st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_split(chunks: list[bytes], cuts: list[int]) -> None:
    data = encode(chunks) + b"after"
    points = sorted({min(c, len(data)) for c in cuts})
    parts = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    reader = BodyReader(BodyKind.CHUNKED, decode_chunked=True)
    got = b""
    rest = b""
    for part in parts:
        if reader.done:
            rest += part
            continue
        forward, _, extra = reader.feed(part)
        got += forward
        rest += extra
    assert reader.done
    assert got == b"".join(chunks)
    assert rest == b"after"
