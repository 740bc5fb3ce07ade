"""What the middleware integration tests share: their routers and services (``NAME.test`` to
the ws_backend, ``NAME-http.test`` to the http_backend), a WebSocket client that reports what
the ws_backend saw (its /headers page), one that expects a refusal, and plain HTTP requests to
the http_backend (which answers with the request it saw)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import Peers
from tests.integration.harness import Response, Wsgate, lb, request, ws_connect


def scenario_routers(scenarios: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
    """Two routers a scenario, with its middlewares: NAME (Host ``NAME.test``) to the service
    ``ws`` and NAME-http (Host ``NAME-http.test``) to ``http``; ``extra`` in each of them."""
    routers: dict[str, Any] = {}
    for name, middlewares in scenarios.items():
        routers[name] = {"rule": f"Host(`{name}.test`)", "service": "ws",
                         "middlewares": middlewares, **extra}
        routers[f"{name}-http"] = {"rule": f"Host(`{name}-http.test`)", "service": "http",
                                   "middlewares": middlewares, **extra}
    return routers


def peer_dynamic(peers: Peers, routers: dict[str, Any], middlewares: dict[str, Any],
                 **services: Any) -> dict[str, Any]:
    """The dynamic configuration of a module: its routers and middlewares, the services
    ``ws`` (the session's ws_backend) and ``http`` (its http_backend), and ``services``."""
    return {"http": {
        "routers": routers,
        "services": {"ws": lb(peers.ws_ports[0]), "http": lb(peers.http_a_port), **services},
        "middlewares": middlewares,
    }}


class Seen(NamedTuple):
    """What a backend received (``path`` with its query) and what the client got back."""

    path: str
    headers: list[tuple[str, str]]
    #: Headers of the response the client got: the 101, or the plain response.
    response: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def reply(self, name: str) -> str | None:
        values = self.reply_all(name)
        return values[0] if values else None

    def reply_all(self, name: str) -> list[str]:
        return [v for n, v in self.response if n.lower() == name.lower()]


def ws_seen(port: int, host: str, path: str, **kwargs: Any) -> Seen:
    """Open a WebSocket through wsgate to ``path`` (which must reach the ws_backend's
    /headers page after any rewriting), read the head the backend saw, check that the
    connection echoes, and close it."""
    with ws_connect(port, host, path, **kwargs) as ws:
        info = json.loads(ws.recv(timeout=10))
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        response = list(ws.response.headers.raw_items())
    return Seen(info["path"], [(n, v) for n, v in info["headers"]], response)


def ws_echo(port: int, host: str, path: str, **kwargs: Any) -> list[tuple[str, str]]:
    """Open a WebSocket through wsgate, check that it echoes, close it; the 101's headers."""
    with ws_connect(port, host, path, **kwargs) as ws:
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        return list(ws.response.headers.raw_items())


def ws_refused(port: int, host: str, path: str, **kwargs: Any) -> Any:
    """A WebSocket handshake that must not succeed; the response the client got instead
    (``status_code``, ``headers``, ``body``)."""
    with pytest.raises(InvalidStatus) as info:
        with ws_connect(port, host, path, **kwargs):
            pass
    return info.value.response


def ws_redirected(port: int, host: str, path: str, **kwargs: Any) -> tuple[Exception, Any]:
    """A WebSocket handshake answered with a redirect that the client cannot follow: the
    error the client raised and the 3xx response it got.

    The `websockets` client tries to follow redirects; it cannot follow one to an http(s)://
    URL (not a WebSocket URI), nor any on a socket it was given, and fails with the 3xx as the
    cause or context of its error."""
    with pytest.raises(Exception) as info:
        with ws_connect(port, host, path, **kwargs):
            pass
    error: BaseException | None = info.value
    while error is not None and not isinstance(error, InvalidStatus):
        error = error.__cause__ or error.__context__
    assert isinstance(error, InvalidStatus), info.value
    return info.value, error.response


def http_head(method: str, target: str, host: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http(port: int, method: str, target: str, host: str, *headers: str,
         body: bytes = b"") -> Response:
    """One plain request on a new connection; ``headers`` are ``"Name: value"`` lines."""
    return request(port, http_head(method, target, host, *headers, body=body), method)


def http_seen(port: int, target: str, host: str, *headers: str) -> Seen:
    """A GET that must reach the http_backend; what it saw."""
    response = http(port, "GET", target, host, *headers)
    assert response.status == 200, response
    info = json.loads(response.body)
    return Seen(info["target"], [(n, v) for n, v in info["headers"]], response.headers)


@contextmanager
def show_log(gw: Wsgate) -> Iterator[None]:
    """Print wsgate's log lines of a test when it ends (pytest shows them on failure only)."""
    start = len(gw.proc.lines)
    try:
        yield
    finally:
        print("wsgate log during the test:\n" + "\n".join(gw.proc.lines[start:][-100:]))
