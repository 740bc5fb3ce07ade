"""Response bodies reshaped on their way to the client (sans-I/O): content coding (gzip,
brotli, zstd) streamed chunk by chunk, and whole bodies held back under a size limit.

A shaper is fed the *payload* of the backend's body (chunked coding already removed) and
returns the bytes to send; ``finish()`` gives the last ones. :class:`StreamShaper` compresses
as the body flows, in chunked coding when the length changes (or close-delimited for a client
that cannot take chunks); :class:`HeldBody` keeps the whole body (the buffering middleware's
``maxResponseBodyBytes``) and gives head and body together at the end, so that a body over
the limit can still be answered with an error instead.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["LAST_CHUNK", "Encoder", "HeldBody", "StreamShaper", "chunk", "make_encoder"]

#: The end of a chunked body without trailers.
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of chunked coding (nothing for no data: an empty chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


class Encoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Gzip:
    __slots__ = ("_flush", "_z")

    def __init__(self, flush: bool) -> None:
        self._z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 31)
        self._flush = flush

    def feed(self, data: bytes) -> bytes:
        out = self._z.compress(data)
        if self._flush:
            out += self._z.flush(zlib.Z_SYNC_FLUSH)
        return out

    def finish(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


class _Brotli:
    __slots__ = ("_c", "_flush")

    def __init__(self, module: Any, flush: bool) -> None:
        self._c = module.Compressor()
        self._flush = flush

    def feed(self, data: bytes) -> bytes:
        out: bytes = self._c.process(data)
        if self._flush:
            out += self._c.flush()
        return out

    def finish(self) -> bytes:
        out: bytes = self._c.finish()
        return out


class _Zstd:
    __slots__ = ("_c", "_flush", "_module")

    def __init__(self, module: Any, flush: bool) -> None:
        self._module = module
        self._c = module.ZstdCompressor().compressobj()
        self._flush = flush

    def feed(self, data: bytes) -> bytes:
        out: bytes = self._c.compress(data)
        if self._flush:
            out += self._c.flush(self._module.COMPRESSOBJ_FLUSH_BLOCK)
        return out

    def finish(self) -> bytes:
        out: bytes = self._c.flush(self._module.COMPRESSOBJ_FLUSH_FINISH)
        return out


def make_encoder(encoding: str, *, flush: bool = False) -> Encoder:
    """A streaming encoder for ``gzip``, ``br`` (needs ``brotli``) or ``zstd`` (needs
    ``zstandard``). ``flush``: every ``feed`` returns all it was given, compressed (for a
    body of unknown length, which may be a stream the client reads as it comes)."""
    if encoding == "gzip":
        return _Gzip(flush)
    if encoding == "br":
        return _Brotli(importlib.import_module("brotli"), flush)
    if encoding == "zstd":
        return _Zstd(importlib.import_module("zstandard"), flush)
    raise ValueError(f"unsupported content coding {encoding!r}")


class StreamShaper:
    """Compresses a body as it flows; ``chunked``: in chunked coding (else the client reads
    to the close of the connection)."""

    __slots__ = ("chunked", "encoder", "failed")

    def __init__(self, encoder: Encoder, *, chunked: bool) -> None:
        self.encoder = encoder
        self.chunked = chunked
        #: Never set: a stream has no limit (the attribute is shared with HeldBody).
        self.failed = False

    def feed(self, payload: bytes) -> bytes:
        out = self.encoder.feed(payload)
        return chunk(out) if self.chunked else out

    def finish(self) -> bytes:
        out = self.encoder.finish()
        return chunk(out) + LAST_CHUNK if self.chunked else out


class HeldBody:
    """Holds a whole body (at most ``limit`` bytes) and gives ``head(length)`` and the body
    at the end, compressed by ``encoder`` if given. A body past the limit sets ``failed``:
    nothing of it was sent, the caller answers an error instead."""

    __slots__ = ("_parts", "encoder", "failed", "head", "limit", "size")

    def __init__(self, limit: int, head: Callable[[int], bytes],
                 encoder: Encoder | None = None) -> None:
        self.limit = limit
        self.head = head
        self.encoder = encoder
        self._parts: list[bytes] = []
        self.size = 0
        self.failed = False

    def feed(self, payload: bytes) -> bytes:
        if self.failed:
            return b""
        self.size += len(payload)
        if self.size > self.limit:
            self.failed = True
            self._parts = []
        else:
            self._parts.append(payload)
        return b""

    def finish(self) -> bytes:
        body = b"".join(self._parts)
        self._parts = []
        if self.encoder is not None:
            body = self.encoder.feed(body) + self.encoder.finish()
        return self.head(len(body)) + body
