"""Processes for integration tests: wsgate itself and test peers, on 127.0.0.1 only.

Every process is started by the test, waited for on an event (a line it prints when it is
ready), and stopped by its own PID when the test ends.

Also the raw clients and backends that need control no library gives: ``RawHTTP`` (any bytes
in, responses read one at a time), ``RawWSClient`` (the `websockets` sans-I/O protocol on a
socket the test owns: read when it wants, cut TCP when it wants), ``RecordingBackend`` (records
every byte it gets) and ``OneShotWebSocketBackend`` (a scripted 101 and frames, then close).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process whose output lines are collected and can be awaited."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, name: str = "") -> None:
        self.name = name or Path(args[1] if len(args) > 1 else args[0]).name
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      env=full_env, cwd=cwd, text=True, bufsize=1)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until a line matches; fail with the output so far if the process exits."""
        rx = re.compile(pattern)
        for line in list(self.lines):
            m = rx.search(line)
            if m:
                return m
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{self.name}: no line matching {pattern!r} within "
                                     f"{timeout}s; output:\n" + self.output()) from None
            if line is None:
                raise AssertionError(f"{self.name} exited ({self.popen.wait()}) before "
                                     f"{pattern!r}; output:\n" + self.output())
            m = rx.search(line)
            if m:
                return m

    def wait_for_count(self, pattern: str, count: int, timeout: float = 20.0) -> list[str]:
        """Wait until ``count`` lines match ``pattern`` (counting lines already printed)."""
        rx = re.compile(pattern)
        now = list(self.lines)
        seen = [line for line in now if rx.search(line)]
        consumed = len(now)
        deadline = time.monotonic() + timeout
        while len(seen) < count:
            # Lines may arrive between the snapshot and the queue: re-scan the list instead
            # of trusting the queue alone, and use the queue only as the wake-up signal.
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: {len(seen)} of {count} lines matching "
                                     f"{pattern!r} within {timeout}s; output:\n"
                                     + self.output())
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._queue.put(None)
                raise AssertionError(f"{self.name} exited ({self.popen.wait()}) with "
                                     f"{len(seen)} of {count} lines matching {pattern!r}; "
                                     "output:\n" + self.output())
            now = list(self.lines)
            seen += [line for line in now[consumed:] if rx.search(line)]
            consumed = len(now)
        return seen

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(1 for line in list(self.lines) if rx.search(line))

    def output(self) -> str:
        return "\n".join(self.lines)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._reader.join(5)
        return int(self.popen.returncode)


def lb(*ports: int, **extra: Any) -> dict[str, Any]:
    """A loadBalancer service over backends on 127.0.0.1 (``extra``: its other fields)."""
    return {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{p}"} for p in ports],
                             **extra}}


def start_ws_backend(port: int = 0) -> tuple[Proc, int]:
    """The `websockets`-library echo backend (peers/ws_backend.py)."""
    proc, ports = start_ws_backends(1, port)
    return proc, ports[0]


def start_ws_backends(count: int, port: int = 0) -> tuple[Proc, list[int]]:
    """One ws_backend process listening on ``count`` ports."""
    proc = Proc([sys.executable, str(PEERS / "ws_backend.py"), "--port", str(port),
                 "--count", str(count)], name="ws_backend")
    bound = proc.wait_for(r"listening on ([\d ]+)").group(1).split()
    return proc, [int(p) for p in bound]


def start_ab_backend(port: int = 0) -> tuple[Proc, int]:
    """The autobahn/Twisted echo backend (peers/ab_backend.py)."""
    proc = Proc([sys.executable, str(PEERS / "ab_backend.py"), "--port", str(port)],
                name="ab_backend")
    bound = int(proc.wait_for(r"listening on (\d+)").group(1))
    return proc, bound


def start_http_backend(name: str = "backend", port: int = 0) -> tuple[Proc, int]:
    proc = Proc([sys.executable, str(PEERS / "http_backend.py"), "--port", str(port),
                 "--name", name], name=f"http_backend:{name}")
    bound = int(proc.wait_for(r"listening on (\d+)").group(1))
    return proc, bound


def start_wss_backends(specs: dict[str, str]) -> tuple[Proc, dict[str, int]]:
    """One wss_backend process (peers/wss_backend.py) with a TLS listener per spec,
    ``NAME: CERT,KEY[,alpn=...][,client_ca=...]``; the port of each NAME."""
    args = [sys.executable, str(PEERS / "wss_backend.py")]
    for name, spec in specs.items():
        args += ["--tls", f"{name}={spec}"]
    proc = Proc(args, name="wss_backend")
    proc.wait_for(r"^ready$")
    ports = {m.group(1): int(m.group(2)) for line in proc.lines
             if (m := re.match(r"listening (\S+) (\d+)", line))}
    return proc, ports


class Wsgate:
    """wsgate run as users run it: ``twistd -n wsgate --configFile FILE``."""

    def __init__(self, tmp: Path, static: dict[str, Any], dynamic: dict[str, Any] | None = None,
                 *, extra_args: list[str] | None = None, wait: bool = True) -> None:
        self.tmp = tmp
        self.static = dict(static)
        # Traefik's default log level is ERROR; the harness waits for INFO lines.
        self.static.setdefault("log", {"level": "INFO"})
        if dynamic is not None:
            dyn_path = tmp / "dynamic.yml"
            dyn_path.write_text(yaml.safe_dump(dynamic, sort_keys=False))
            self.static.setdefault("providers", {})["file"] = {"filename": str(dyn_path),
                                                               "watch": False}
        self.config_path = tmp / "traefik.yml"
        self.config_path.write_text(yaml.safe_dump(self.static, sort_keys=False))
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "wsgate", "--configFile", str(self.config_path),
                *(extra_args or [])]
        # The plugin is found on sys.path: the source tree first, else the installed package.
        self.proc = Proc(args, cwd=tmp, name="wsgate",
                         env={"PYTHONPATH": str(ROOT) + os.pathsep +
                              os.environ.get("PYTHONPATH", "")})
        self.ports: dict[str, int] = {}
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        for name in self.static.get("entryPoints", {}):
            m = self.proc.wait_for(rf"entryPoint {re.escape(name)} listening on "
                                   r".*port=(\d+)")
            self.ports[name] = int(m.group(1))
        self.proc.wait_for(r"wsgate ready")

    def stop(self) -> int:
        return self.proc.stop()

    def __enter__(self) -> Wsgate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- raw clients and backends ---------------------------------------------------------------------


class Response(NamedTuple):
    status: int
    reason: str
    version: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_names(self) -> list[str]:
        return [n.lower() for n, _ in self.headers]


class _KeptFile:
    """The socket's buffered reader, shared by successive responses and never closed by them."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def close(self) -> None:
        """http.client closes its file after a response that ends the connection: keep ours."""


class _FileSock:
    def __init__(self, file: _KeptFile) -> None:
        self.file = file

    def makefile(self, *args: Any, **kwargs: Any) -> _KeptFile:
        return self.file


class RawHTTP:
    """A client connection on a plain socket: send any bytes, read responses one at a time
    with the standard library's response parser (which skips interim 100 responses)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = _KeptFile(self.sock.makefile("rb"))

    def __enter__(self) -> RawHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, method: str = "GET") -> Response:
        r = http.client.HTTPResponse(_FileSock(self.file), method=method)  # type: ignore[arg-type]
        r.begin()
        body = r.read()
        return Response(r.status, r.reason, r.version, r.getheaders(), body)

    def readline(self) -> bytes:
        return bytes(self.file.readline())

    def read_head(self) -> bytes:
        """The raw bytes of the next head, through its empty line."""
        lines = []
        while True:
            line = self.readline()
            if not line:
                raise AssertionError(f"connection closed in a head: {b''.join(lines)!r}")
            lines.append(line)
            if line == b"\r\n":
                return b"".join(lines)

    def at_eof(self) -> bool:
        """True when the server closed the connection (waits for data or EOF)."""
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file._file.close()
        self.sock.close()


def request(port: int, data: bytes, method: str = "GET", timeout: float = 10.0) -> Response:
    """One raw request on a new connection."""
    with RawHTTP(port, timeout) as conn:
        conn.send(data)
        return conn.response(method)


class RecordingBackend:
    """A raw TCP backend in threads of the test process: records every byte each connection
    sends and answers each request head with ``200 ok`` (for requests without a body).

    With ``requests_per_connection``, a connection that already answered that many requests
    closes without answering the next one: a keep-alive connection the server dropped just as
    the proxy reused it."""

    def __init__(self, requests_per_connection: int | None = None) -> None:
        self.requests_per_connection = requests_per_connection
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.connections: list[bytearray] = []
        self.heads: list[bytes] = []
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            received = bytearray()
            with self.lock:
                self.connections.append(received)
            threading.Thread(target=self._serve, args=(conn, received), daemon=True).start()

    def _serve(self, conn: socket.socket, received: bytearray) -> None:
        pending = b""
        answered = 0
        with conn:
            conn.settimeout(30)
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    received += data
                pending += data
                while b"\r\n\r\n" in pending:
                    head, _, pending = pending.partition(b"\r\n\r\n")
                    if answered == self.requests_per_connection:
                        return
                    with self.lock:
                        self.heads.append(head + b"\r\n\r\n")
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    answered += 1

    def snapshot(self) -> tuple[int, list[bytes]]:
        with self.lock:
            return len(self.connections), list(self.heads)

    def close(self) -> None:
        self._closing = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the pending accept
        except OSError:
            pass  # already closed
        self.listener.close()
        self._thread.join(5)


def ws_connect(port: int, host: str, path: str, **kwargs: Any) -> Any:
    """A `websockets` (sync) client through the proxy at 127.0.0.1:``port``; ``host`` goes in
    the URL, so in the Host header, and picks the router. No compression unless asked."""
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    options: dict[str, Any] = {"max_size": None, "compression": None, "open_timeout": 10,
                               "close_timeout": 10}
    options.update(kwargs)
    return connect(f"ws://{host}:{port}{path}", sock=sock, **options)


_ASCII = bytes(0x21 + (i % 94) for i in range(256))


def make_payload(kind: str, size: int, seed: int = 0) -> bytes:
    """Random bytes, or random printable ASCII for text (valid UTF-8, poorly compressible)."""
    data = random.Random(seed).randbytes(size)
    return data.translate(_ASCII) if kind == "text" else data


#: RFC 6455's fixed GUID, hashed with the client's key into Sec-WebSocket-Accept.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_head(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """What a raw backend reads first: the request head through its empty line, and any bytes
    that came after it; None when the peer closes before the head ends."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def websocket_accept(head: bytes) -> bytes:
    """The Sec-WebSocket-Accept value that answers the Sec-WebSocket-Key of ``head``."""
    key = ""
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())


class OneShotWebSocketBackend:
    """A hand-written backend for one connection: accepts the upgrade with a correct 101 (or
    sends ``response``, where ``{accept}`` stands for the accept key), sends ``frames`` (raw
    bytes, possibly ending inside a frame), then closes its socket.
    Runs in a thread of the test process; ``port`` must be free (a pre-routed one)."""

    SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")

    def __init__(self, port: int, frames: bytes, response: bytes = SWITCH) -> None:
        self.frames = frames
        self.response = response
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(1)
        self.received = b""
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.listener.settimeout(30)
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(30)
                received = read_head(conn)
                if received is None:
                    return
                head, rest = received
                self.received = head + rest
                accept = websocket_accept(head)
                conn.sendall(self.response.replace(b"{accept}", accept) + self.frames)
        finally:
            self.listener.close()
            self.done.set()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a pending accept
        except OSError:
            pass  # never listened or already closed
        self.listener.close()
        self._thread.join(5)


class RawWSClient:
    """A WebSocket client on a socket the test owns, driven by the `websockets` library's
    sans-I/O protocol: the test decides when to read, and can cut the TCP connection."""

    def __init__(self, port: int, host: str, path: str, *, rcvbuf: int | None = None,
                 timeout: float = 10.0) -> None:
        from websockets.client import ClientProtocol
        from websockets.protocol import State
        from websockets.uri import parse_uri

        self.proto = ClientProtocol(parse_uri(f"ws://{host}:{port}{path}"), max_size=None)
        self.sock = socket.socket()
        if rcvbuf is not None:
            # Before connect, so that the window is small from the start (no autotuning).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.events: list[Any] = []
        self.proto.send_request(self.proto.connect())
        self.flush()
        while self.proto.state is State.CONNECTING:
            self._receive()
        if self.proto.handshake_exc is not None:
            raise self.proto.handshake_exc

    def flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.sock.sendall(data)

    def _receive(self) -> bool:
        data = self.sock.recv(262144)
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        self.flush()  # pongs and close replies
        from websockets.frames import Frame

        # Frames only: the handshake response is an event too.
        self.events.extend(e for e in self.proto.events_received() if isinstance(e, Frame))
        return bool(data)

    def next_frame(self) -> Any:
        """The next frame received (data or control), or None at EOF."""
        while not self.events:
            if not self._receive():
                if not self.events:
                    return None
        return self.events.pop(0)

    def send_text(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self.flush()

    def cut(self, reset: bool = False) -> None:
        """Close the TCP connection without a WebSocket close (RST with ``reset``)."""
        if reset:
            import struct

            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
