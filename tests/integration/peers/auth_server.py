"""A forwardAuth server for tests, run in a thread of the test process on 127.0.0.1.

It records every request it gets (method, target, headers in order, body) and decides from them:

- ``Authorization: Bearer good`` or a ``session=ok`` cookie: 200 with ``X-Auth-User: alice``,
  ``X-Auth-Extra: not-listed`` (a header the middleware must not copy) and the cookies
  ``auth_session=abc`` and ``auth_other=1``;
- ``Authorization: Bearer slow``: sets ``slow_arrived``, waits for ``release`` (at most 30 s),
  then answers as for ``Bearer good``;
- ``Authorization: Bearer forbidden``: 403 with ``X-Auth-Reason: forbidden`` and the body
  ``forbidden by auth``;
- anything else: 401 with ``WWW-Authenticate: Bearer realm="auth"`` and the body
  ``login first``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple


class AuthCall(NamedTuple):
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def names(self) -> set[str]:
        return {n.lower() for n, _ in self.headers}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``calls``."""

    def _decide(self) -> tuple[int, list[tuple[str, str]], bytes]:
        auth = self.headers.get("Authorization", "")
        cookie = self.headers.get("Cookie", "")
        if auth == "Bearer slow":
            self.server.slow_arrived.set()
            self.server.release.wait(30)
            auth = "Bearer good"
        if auth == "Bearer good" or "session=ok" in cookie:
            return 200, [("X-Auth-User", "alice"), ("X-Auth-Extra", "not-listed"),
                         ("Set-Cookie", "auth_session=abc; Path=/"),
                         ("Set-Cookie", "auth_other=1")], b"ok"
        if auth == "Bearer forbidden":
            return 403, [("X-Auth-Reason", "forbidden")], b"forbidden by auth\n"
        return 401, [("WWW-Authenticate", 'Bearer realm="auth"')], b"login first\n"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.record(AuthCall(self.command, self.path, list(self.headers.items()), body))
        status, headers, body = self._decide()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.calls: list[AuthCall] = []
        self.slow_arrived = threading.Event()
        self.release = threading.Event()

    def record(self, call: AuthCall) -> None:
        with self.lock:
            self.calls.append(call)


class AuthServer:
    """Start with ``AuthServer()``; ``url`` is its /verify address; ``close()`` stops it."""

    def __init__(self) -> None:
        self._server = _Server()
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/verify"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def calls(self) -> list[AuthCall]:
        with self._server.lock:
            return list(self._server.calls)

    @property
    def slow_arrived(self) -> threading.Event:
        return self._server.slow_arrived

    @property
    def release(self) -> threading.Event:
        return self._server.release

    def close(self) -> None:
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
