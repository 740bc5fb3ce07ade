"""Response bodies reshaped on their way out: streaming content coding in chunked framing,
and whole bodies held under a limit (wsgate.http.coding)."""

from __future__ import annotations

import importlib.util
import zlib

import pytest

from wsgate.http.body import BodyReader
from wsgate.http.coding import LAST_CHUNK, HeldBody, StreamShaper, chunk, make_encoder
from wsgate.http.head import BodyKind


def dechunk(data: bytes) -> bytes:
    reader = BodyReader(BodyKind.CHUNKED, 0, decode_chunked=True)
    payload, done, rest = reader.feed(data)
    assert done and rest == b""
    return payload


def test_chunk_framing():
    assert chunk(b"") == b""
    assert chunk(b"abc") == b"3\r\nabc\r\n"
    assert chunk(b"x" * 300) == b"12c\r\n" + b"x" * 300 + b"\r\n"


def test_gzip_stream_in_chunks_decodes_to_the_body():
    parts = [b"hello " * 500, b"", b"world " * 700, bytes(range(256)) * 20]
    shaper = StreamShaper(make_encoder("gzip"), chunked=True)
    wire = b"".join(shaper.feed(p) for p in parts) + shaper.finish()
    assert wire.endswith(LAST_CHUNK)
    compressed = dechunk(wire)
    assert compressed[:2] == b"\x1f\x8b"
    assert zlib.decompress(compressed, 31) == b"".join(parts)
    assert len(compressed) < len(b"".join(parts)) // 3


def test_flushed_gzip_gives_every_piece_at_once():
    """A body of unknown length (perhaps a stream): each piece fed can be decoded at once."""
    encoder = make_encoder("gzip", flush=True)
    d = zlib.decompressobj(31)
    for piece in (b"event: one\n\n", b"event: two\n\n"):
        assert d.decompress(encoder.feed(piece)) == piece
    d.decompress(encoder.finish())
    assert d.eof


def test_close_delimited_stream_is_not_chunked():
    shaper = StreamShaper(make_encoder("gzip"), chunked=False)
    out = shaper.feed(b"abc" * 100) + shaper.finish()
    assert zlib.decompress(out, 31) == b"abc" * 100
    assert not shaper.failed


def test_held_body_gives_head_and_body_at_the_end():
    held = HeldBody(10, lambda n: b"HEAD %d|" % n)
    assert held.feed(b"12345") == b""
    assert held.feed(b"67890") == b""
    assert not held.failed
    assert held.finish() == b"HEAD 10|1234567890"


def test_held_body_over_the_limit_fails_and_keeps_nothing():
    held = HeldBody(10, lambda n: b"")
    held.feed(b"123456")
    held.feed(b"78901")
    assert held.failed
    assert held.feed(b"more") == b""


def test_held_body_compressed():
    held = HeldBody(1 << 20, lambda n: b"%d:" % n, make_encoder("gzip"))
    held.feed(b"a" * 5000)
    out = held.finish()
    size, _, body = out.partition(b":")
    assert int(size) == len(body)
    assert zlib.decompress(body, 31) == b"a" * 5000


def test_unknown_coding():
    with pytest.raises(ValueError):
        make_encoder("compress")


@pytest.mark.skipif(importlib.util.find_spec("brotli") is None, reason="brotli not installed")
def test_brotli_stream():  # pragma: no cover - optional package
    import brotli

    shaper = StreamShaper(make_encoder("br"), chunked=True)
    wire = shaper.feed(b"x" * 4000) + shaper.finish()
    assert brotli.decompress(dechunk(wire)) == b"x" * 4000


@pytest.mark.skipif(importlib.util.find_spec("zstandard") is None,
                    reason="zstandard not installed")
def test_zstd_stream():  # pragma: no cover - optional package
    import zstandard

    shaper = StreamShaper(make_encoder("zstd"), chunked=True)
    wire = shaper.feed(b"x" * 4000) + shaper.finish()
    out = zstandard.ZstdDecompressor().decompressobj().decompress(dechunk(wire))
    assert out == b"x" * 4000
