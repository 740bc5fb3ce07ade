"""A raw HTTP/1.1 client for the differential tests: it sends exactly the bytes a case names.

Requests are built from a case (method, raw target, headers in order, optional body) with an
``X-Diff-Id`` header added, sent on a new connection (plain, or TLS with the case's SNI), and
the response is read: status, headers and body; after a ``101``, the first WebSocket frame.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any

IO_TIMEOUT = 10.0
#: The same key for both proxies, so that the backends see the same head (RFC 6455's sample).
SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@dataclass(frozen=True)
class Answer:
    """What the client got back."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: After a 101: the payload of the first data frame (None if none arrived).
    ws_message: bytes | None = None
    error: str | None = None

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None


def build_request(request: dict[str, Any], diff_id: str) -> bytes:
    """The request bytes: the case's head in its order, ``X-Diff-Id`` appended."""
    method = request.get("method", "GET")
    target = request.get("target", "/")
    # A header whose value is null is left out (a case removing one of the batch defaults).
    headers: list[tuple[str, str]] = [(str(n), str(v)) for n, v in request.get("headers", [])
                                      if v is not None]
    names = {n.lower() for n, _ in headers}
    if "host" not in names and not request.get("no_host"):
        headers.insert(0, ("Host", request.get("host", "diff.test")))
    if request.get("websocket"):
        defaults = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", SAMPLE_KEY),
                    ("Sec-WebSocket-Version", "13")]
        headers += [(n, v) for n, v in defaults if n.lower() not in names]
    body = str(request.get("body", "")).encode()
    if body and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    headers.append(("X-Diff-Id", diff_id))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            if len(self.buf) > 1 << 20 or not self.fill():
                raise ConnectionError(f"EOF before {sep!r}: {self.buf[:200]!r}")
        part, _, self.buf = self.buf.partition(sep)
        return part

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise ConnectionError("EOF in a body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def rest(self) -> bytes:
        for _ in range(10000):  # bounded: at most ~640 MiB, far beyond any test body
            if not self.fill():
                break
        data, self.buf = self.buf, b""
        return data


def _read_frame(conn: _Conn) -> tuple[int, bytes]:
    first, second = conn.exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(conn.exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(conn.exactly(8), "big")
    mask = conn.exactly(4) if second & 0x80 else b""
    payload = conn.exactly(length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return first & 0x0F, payload


def _masked_close() -> bytes:
    mask = os.urandom(4)
    payload = b"\x03\xe8"
    return b"\x88\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def send(port: int, request: dict[str, Any], diff_id: str) -> Answer:
    """Send one request to 127.0.0.1:``port`` and read the answer."""
    data = build_request(request, diff_id)
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    except OSError as exc:
        return Answer(0, (), b"", error=f"{type(exc).__name__}: {exc}")
    try:
        if request.get("tls"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the proxies' certificates are not under test here
            ctx.set_alpn_protocols(["http/1.1"])
            sni = request.get("sni", request.get("host", "diff.test"))
            sock = ctx.wrap_socket(sock, server_hostname=sni or None)
        sock.sendall(data)
        conn = _Conn(sock)
        head = conn.until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = tuple((n, v.strip()) for n, _, v in (line.partition(":") for line in lines[1:]))
        if status == 101:
            opcode, payload = _read_frame(conn)
            sock.sendall(_masked_close())
            return Answer(status, headers, b"", ws_message=payload if opcode == 1 else None)
        lowered = {n.lower(): v for n, v in headers}
        if request.get("method", "GET") == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in lowered.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(conn.until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    break
                chunks.append(conn.exactly(size))
                conn.until(b"\r\n")
            body = b"".join(chunks)
        elif "content-length" in lowered:
            body = conn.exactly(int(lowered["content-length"]))
        else:
            body = conn.rest()
        return Answer(status, headers, body)
    except (OSError, ConnectionError, ValueError, IndexError) as exc:
        return Answer(0, (), b"", error=f"{type(exc).__name__}: {exc}")
    finally:
        sock.close()
