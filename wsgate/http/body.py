"""Streaming a message body through without buffering it (sans-I/O).

The reader follows the framing and says how many of the bytes fed belong to the body; they are
forwarded as they are (a chunked body keeps its chunked encoding, validated on the way: it is
not re-encoded), so the whole-chunk case returns the very object it was given.
"""

from __future__ import annotations

import re

from wsgate.http.errors import HTTPParseError
from wsgate.http.head import BodyKind

DEFAULT_MAX_CHUNK_LINE = 4096
"""Longest chunk-size line, extensions included (Go uses the same bound)."""

DEFAULT_MAX_TRAILER_BYTES = 64 * 1024

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})"
    rb"(?:[ \t]*;[ \t]*["
    + _TCHAR
    + rb"]+(?:[ \t]*=[ \t]*(?:["
    + _TCHAR
    + rb"]+|"
    + _QUOTED
    + rb"))?)*"
    rb"\r\n"
)
_TRAILER_LINE = re.compile(rb"[" + _TCHAR + rb"]+:[ \t]*[\t\x20-\x7e\x80-\xff]*\r\n")

# Chunked states.
_SIZE = 0
_DATA = 1
_DATA_CR = 2
_DATA_LF = 3
_TRAILER = 4
_DONE = 5


class BodyReader:
    """Delimits one body. ``feed(data)`` returns ``(forward, done, leftover)``: the bytes of
    ``data`` that belong to the body (a prefix of ``data``, passed on as they are), whether the
    body is complete, and the bytes after it (only non-empty once done).

    ``status`` is carried by errors: 400 for a client's body, 502 for a backend's.

    ``decode_chunked``: for a chunked body, ``forward`` is the chunk data alone (chunk lines
    and trailers dropped), for a recipient that cannot take chunked coding (an HTTP/1.0
    client, RFC 9112 §6.1). This copies the payload; the default passes it through.
    """

    __slots__ = (
        "_decoded",
        "_line",
        "_remaining",
        "_state",
        "_trailer_bytes",
        "body_bytes",
        "kind",
        "max_line",
        "max_trailer_bytes",
        "status",
    )

    def __init__(
        self,
        kind: BodyKind,
        length: int = 0,
        *,
        status: int = 400,
        max_line: int = DEFAULT_MAX_CHUNK_LINE,
        max_trailer_bytes: int = DEFAULT_MAX_TRAILER_BYTES,
        decode_chunked: bool = False,
    ) -> None:
        self.kind = kind
        self._decoded: list[bytes] | None = [] if decode_chunked else None
        self.status = status
        self.max_line = max_line
        self.max_trailer_bytes = max_trailer_bytes
        self.body_bytes = 0
        """Payload bytes seen (chunk data only, for chunked)."""
        self._remaining = length if kind is BodyKind.LENGTH else 0
        self._line = b""
        self._trailer_bytes = 0
        if kind is BodyKind.NONE or (kind is BodyKind.LENGTH and length == 0):
            self._state = _DONE
        else:
            self._state = _SIZE

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> tuple[bytes, bool, bytes]:
        if self._state == _DONE:
            return b"", True, data
        kind = self.kind
        if kind is BodyKind.LENGTH:
            n = len(data)
            rem = self._remaining
            if n < rem:
                self._remaining = rem - n
                self.body_bytes += n
                return data, False, b""
            self._remaining = 0
            self.body_bytes += rem
            self._state = _DONE
            if n == rem:
                return data, True, b""
            return data[:rem], True, data[rem:]
        if kind is BodyKind.UNTIL_CLOSE:
            self.body_bytes += len(data)
            return data, False, b""
        pos = self._feed_chunked(data)
        decoded = self._decoded
        if decoded is not None:
            payload = b"".join(decoded)
            decoded.clear()
            if self._state == _DONE:
                return payload, True, data[pos:]
            return payload, False, b""
        if self._state == _DONE:
            if pos == len(data):
                return data, True, b""
            return data[:pos], True, data[pos:]
        return data, False, b""

    def feed_eof(self) -> None:
        """The peer closed: fine for a read-until-close body, an error for any other."""
        if self._state == _DONE:
            return
        if self.kind is BodyKind.UNTIL_CLOSE:
            self._state = _DONE
            return
        raise HTTPParseError(self.status, "connection closed before the end of the body")

    # -- chunked -------------------------------------------------------------------------------

    def _error(self, reason: str) -> HTTPParseError:
        return HTTPParseError(self.status, reason)

    def _take_line(self, data: bytes, pos: int, limit: int) -> tuple[bytes | None, int]:
        """A full line (through LF) starting at ``pos``, joined with a held partial line; or
        None when the line continues in the next feed."""
        i = data.find(b"\n", pos)
        held = self._line
        if i == -1:
            part = data[pos:]
            if len(held) + len(part) > limit:
                raise self._error("chunk-size or trailer line too long")
            self._line = held + part
            return None, len(data)
        line = held + data[pos : i + 1] if held else data[pos : i + 1]
        if len(line) > limit:
            raise self._error("chunk-size or trailer line too long")
        self._line = b""
        return line, i + 1

    def _feed_chunked(self, data: bytes) -> int:
        """Consume ``data`` through the end of the body at most; return bytes consumed."""
        pos = 0
        n = len(data)
        state = self._state
        try:
            while pos < n:
                if state == _DATA:
                    rem = self._remaining
                    take = n - pos
                    if take < rem:
                        self._remaining = rem - take
                        self.body_bytes += take
                        if self._decoded is not None:
                            self._decoded.append(data[pos:])
                        return n
                    self._remaining = 0
                    self.body_bytes += rem
                    if self._decoded is not None:
                        self._decoded.append(data[pos : pos + rem])
                    pos += rem
                    state = _DATA_CR
                elif state == _DATA_CR:
                    if data[pos] != 13:
                        raise self._error("chunk data not followed by CRLF")
                    pos += 1
                    state = _DATA_LF
                elif state == _DATA_LF:
                    if data[pos] != 10:
                        raise self._error("chunk data not followed by CRLF")
                    pos += 1
                    state = _SIZE
                elif state == _SIZE:
                    line, pos = self._take_line(data, pos, self.max_line)
                    if line is None:
                        return n
                    m = _CHUNK_LINE.fullmatch(line)
                    if m is None:
                        raise self._error(f"malformed chunk-size line {line[:40]!r}")
                    size = int(m.group(1), 16)
                    if size:
                        self._remaining = size
                        state = _DATA
                    else:
                        state = _TRAILER
                elif state == _TRAILER:
                    line, pos = self._take_line(data, pos, self.max_line)
                    if line is None:
                        return n
                    if line == b"\r\n":
                        state = _DONE
                        return pos
                    self._trailer_bytes += len(line)
                    if self._trailer_bytes > self.max_trailer_bytes:
                        raise self._error("trailer section too large")
                    if _TRAILER_LINE.fullmatch(line) is None:
                        raise self._error(f"malformed trailer field {line[:40]!r}")
                else:  # pragma: no cover - _DONE is handled by the caller
                    return pos
            return n
        finally:
            self._state = state
