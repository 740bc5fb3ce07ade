"""Recording backends for the differential tests, in threads of the test process.

Each named backend listens on its own 127.0.0.1 port (plain or TLS) and records, for every
request, the head exactly as it arrived: request line, raw target, headers in order with their
casing, and the body length. Records are keyed by the ``X-Diff-Id`` header the client sends, so
the test finds which backend (if any) saw a given request and what it saw.

Answers: a plain request gets ``200`` (or the status named by an ``X-Diff-Status`` header) with
the backend's name as body. A WebSocket upgrade gets a real ``101`` (the accept key computed
from the request's, the first offered subprotocol selected), then one text frame carrying the
backend's name and a close frame; so a client can check that bytes flow through the tunnel.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
from dataclasses import dataclass

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 65536
IO_TIMEOUT = 10.0


@dataclass(frozen=True)
class Seen:
    """One request as a backend received it."""

    backend: str
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body_length: int
    tls: bool

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name, value.strip(" \t")))
    return method, target, version, headers


def _frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def _is_upgrade(headers: list[tuple[str, str]]) -> bool:
    def tokens(name: str) -> set[str]:
        return {t.strip().lower() for n, v in headers if n.lower() == name
                for t in v.split(",")}
    return "websocket" in tokens("upgrade") and "upgrade" in tokens("connection")


class _Reader:
    """Buffered reads from a socket, bounded in size and time."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buf = b""

    def _fill(self) -> bool:
        data = self.conn.recv(65536)
        self.buf += data
        return bool(data)

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD or not self._fill():
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("EOF in a body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD or not self._fill():
                raise ConnectionError("EOF in a chunk line")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def chunked(self) -> int:
        total = 0
        while True:
            size = int(self.line().split(b";")[0], 16)
            if size == 0:
                while self.line():
                    pass
                return total
            total += len(self.exactly(size))
            self.line()


class RecordingBackends:
    """Named backends, each on a port of its own; ``records`` maps X-Diff-Id to what was seen."""

    def __init__(self, names: list[str], *, tls_names: list[str] | None = None,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.records: dict[str, Seen] = {}
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.ports: dict[str, int] = {}
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._tls_context = tls_context
        for name in names:
            self._listen(name, tls=name in (tls_names or []))

    def _listen(self, name: str, *, tls: bool) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self.ports[name] = int(listener.getsockname()[1])
        self._listeners.append(listener)
        thread = threading.Thread(target=self._accept, args=(name, listener, tls), daemon=True,
                                  name=f"backend-{name}")
        thread.start()
        self._threads.append(thread)

    def _accept(self, name: str, listener: socket.socket, tls: bool) -> None:
        while not self._closing:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(name, conn, tls), daemon=True).start()

    def _serve(self, name: str, conn: socket.socket, tls: bool) -> None:
        conn.settimeout(IO_TIMEOUT)
        try:
            if tls:
                assert self._tls_context is not None
                conn = self._tls_context.wrap_socket(conn, server_side=True)
            with conn:
                reader = _Reader(conn)
                for _ in range(1000):  # bounded keep-alive
                    head = reader.head()
                    if head is None:
                        return
                    if not self._answer(name, conn, reader, head, tls):
                        return
        except (OSError, ssl.SSLError, ConnectionError, ValueError):
            return  # the proxy went away or spoke garbage: the test sees the missing record

    def _answer(self, name: str, conn: socket.socket, reader: _Reader, head: bytes,
                tls: bool) -> bool:
        method, target, version, headers = _parse_head(head)
        lowered = {n.lower(): v for n, v in headers}
        body_length = 0
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            body_length = reader.chunked()
        elif lowered.get("content-length"):
            body_length = len(reader.exactly(int(lowered["content-length"])))
        seen = Seen(name, method, target, version, tuple(headers), body_length, tls)
        with self.arrived:
            self.records[lowered.get("x-diff-id", f"anonymous-{len(self.records)}")] = seen
            self.arrived.notify_all()
        status = int(lowered.get("x-diff-status", "0") or 0)
        if _is_upgrade(headers) and status == 0:
            key = lowered.get("sec-websocket-key", "").encode()
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            extra = b""
            if lowered.get("sec-websocket-protocol"):
                chosen = lowered["sec-websocket-protocol"].split(",")[0].strip()
                extra = b"Sec-WebSocket-Protocol: " + chosen.encode() + b"\r\n"
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
                         + extra + b"X-Backend: " + name.encode() + b"\r\n\r\n"
                         + _frame(0x1, name.encode()) + _frame(0x8, b"\x03\xe8"))
            # Wait for the client's close frame or EOF, bounded by the socket timeout.
            reader._fill()
            return False
        status = status or 200
        body = name.encode()
        conn.sendall(f"HTTP/1.1 {status} Diff\r\nContent-Length: {len(body)}\r\n"
                     f"Content-Type: text/plain\r\nX-Backend: {name}\r\n\r\n".encode()
                     + (b"" if method == "HEAD" else body))
        return lowered.get("connection", "").lower() != "close"

    def seen(self, diff_id: str, timeout: float = 0.0) -> Seen | None:
        """The record for ``diff_id``; waits up to ``timeout`` for it to arrive."""
        with self.arrived:
            self.arrived.wait_for(lambda: diff_id in self.records, timeout=timeout)
            return self.records.get(diff_id)

    def close(self) -> None:
        self._closing = True
        for listener in self._listeners:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # never connected: close() below is enough
            listener.close()
        for thread in self._threads:
            thread.join(5)

