"""The server name and ALPN list of a TLS ClientHello, read before any TLS library sees it.

One port serves TLS and plain HTTP, as in Traefik: the first byte tells them apart (0x16 opens
a TLS handshake record; 0x80 an SSLv2-style hello, which is treated as TLS so that the TLS
library refuses it properly). The ClientHello's server name then chooses the TLS options and
the certificate *before* the handshake starts, because OpenSSL fixes the protocol versions,
ciphers and client-certificate policy of a connection when it is created: switching contexts
from an SNI callback changes the certificate but not those.

Sans-I/O: :func:`read_client_hello` is fed everything received so far and says whether it
needs more bytes, or what the hello contains. The bytes themselves are not consumed; the
caller replays them into the TLS engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Union

__all__ = [
    "MAX_HELLO_BYTES",
    "NEED_MORE",
    "ClientHello",
    "NeedMore",
    "Unreadable",
    "looks_like_tls",
    "read_client_hello",
]

_HANDSHAKE_RECORD = 0x16
_SSLV2_HELLO = 0x80
_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_HOST_NAME = 0
_RECORD_HEADER = 5
#: The largest record a TLS 1.2/1.3 peer may send (2^14 plus the 1.2 expansion allowance).
_MAX_RECORD = 2**14 + 2048
#: Bytes buffered while waiting for the whole ClientHello. Real hellos are a few hundred bytes
#: (under 2 KiB with post-quantum key shares); beyond this the hello is not read and the
#: connection is handed to the TLS engine with the default options, as Traefik does.
MAX_HELLO_BYTES: Final = 64 * 1024


def looks_like_tls(first_byte: int) -> bool:
    """Whether a connection whose first byte is ``first_byte`` opens a TLS handshake."""
    return first_byte in (_HANDSHAKE_RECORD, _SSLV2_HELLO)


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What routing needs from a ClientHello.

    ``server_name`` is lower-cased without trailing dots, empty when the client sent none;
    ``alpn`` is the client's protocol list in its order.
    """

    server_name: str
    alpn: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The bytes do not hold a ClientHello this reader understands; ``reason`` says why.

    The connection still goes to the TLS engine (with the default options), which answers a
    malformed handshake with an alert rather than a silent close.
    """

    reason: str


class NeedMore:
    """More bytes are needed before anything can be said."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Final = NeedMore()

HelloResult = Union[ClientHello, Unreadable, NeedMore]


class _Malformed(Exception):
    pass


def read_client_hello(data: bytes) -> HelloResult:
    """Read the ClientHello at the start of ``data`` (everything received so far).

    The handshake message may span several records; it is reassembled up to
    :data:`MAX_HELLO_BYTES`.
    """
    if not data:
        return NEED_MORE
    if data[0] == _SSLV2_HELLO:
        return Unreadable("SSLv2-style hello")
    if data[0] != _HANDSHAKE_RECORD:
        return Unreadable(f"first byte 0x{data[0]:02x} is not a TLS handshake record")
    handshake = bytearray()
    offset = 0
    needed: int | None = None
    while needed is None or len(handshake) < needed:
        if offset + _RECORD_HEADER > len(data):
            return _need_more_or_too_big(data)
        kind = data[offset]
        length = int.from_bytes(data[offset + 3:offset + 5], "big")
        if kind != _HANDSHAKE_RECORD:
            return Unreadable(f"record type {kind} inside the ClientHello")
        if length == 0 or length > _MAX_RECORD:
            return Unreadable(f"handshake record of {length} bytes")
        end = offset + _RECORD_HEADER + length
        if end > len(data):
            return _need_more_or_too_big(data)
        handshake += data[offset + _RECORD_HEADER:end]
        offset = end
        if needed is None and len(handshake) >= 4:
            if handshake[0] != _CLIENT_HELLO:
                return Unreadable(f"handshake message type {handshake[0]} is not ClientHello")
            needed = 4 + int.from_bytes(handshake[1:4], "big")
            if needed > MAX_HELLO_BYTES:
                return Unreadable(f"ClientHello of {needed} bytes")
    try:
        return _parse_body(bytes(handshake[4:needed]))
    except _Malformed as exc:
        return Unreadable(str(exc))


def _need_more_or_too_big(data: bytes) -> HelloResult:
    if len(data) >= MAX_HELLO_BYTES:
        return Unreadable(f"no complete ClientHello in the first {MAX_HELLO_BYTES} bytes")
    return NEED_MORE


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise _Malformed(f"ClientHello truncated in {what}")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def number(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, size: int, what: str) -> bytes:
        return self.take(self.number(size, what), what)

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _parse_body(body: bytes) -> ClientHello:
    r = _Reader(body)
    r.take(2 + 32, "version and random")
    r.vector(1, "session id")
    r.vector(2, "cipher suites")
    r.vector(1, "compression methods")
    if r.left == 0:
        return ClientHello("")
    extensions = _Reader(r.vector(2, "extensions"))
    server_name = ""
    alpn: tuple[str, ...] = ()
    seen: set[int] = set()
    while extensions.left:
        kind = extensions.number(2, "extension type")
        payload = extensions.vector(2, "extension data")
        if kind in seen:
            raise _Malformed(f"extension {kind} appears twice")
        seen.add(kind)
        if kind == _EXT_SERVER_NAME:
            server_name = _server_name(payload)
        elif kind == _EXT_ALPN:
            alpn = _alpn(payload)
    return ClientHello(server_name, alpn)


def _server_name(payload: bytes) -> str:
    names = _Reader(_Reader(payload).vector(2, "server name list"))
    while names.left:
        kind = names.number(1, "server name type")
        name = names.vector(2, "server name")
        if kind != _HOST_NAME:
            continue
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError:
            raise _Malformed("server name is not ASCII") from None
        if not text or any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7e for c in text):
            raise _Malformed(f"invalid server name {text!r}")
        return text.lower().rstrip(".")
    return ""


def _alpn(payload: bytes) -> tuple[str, ...]:
    protocols = _Reader(_Reader(payload).vector(2, "ALPN list"))
    out = []
    while protocols.left:
        raw = protocols.vector(1, "ALPN protocol")
        if not raw:
            raise _Malformed("empty ALPN protocol name")
        out.append(raw.decode("latin-1"))
    return tuple(out)
