"""twisted.web sites that the proxy hands connections to (``api@internal`` and the others).

The data path gives an in-process service the client connection right after routing, with
the request head replayed into it (wsgate.internal.registry). Two things follow:

- The site answers one request per connection and then closes it (``Connection: close``).
  Otherwise the next request on a kept-alive connection would reach this site without being
  routed (a browser asking for ``/metrics`` on the connection that fetched ``/ping``).
- A WebSocket upgrade is recognised from the head before twisted.web sees it and goes to an
  autobahn factory directly (autobahn's own twisted.web resource would re-point the raw
  transport at itself, bypassing the proxy's connection bookkeeping).

The same sites can listen on a port of their own (tests do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.interfaces import IAddress, IProtocolFactory
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

#: Request heads larger than this are refused before twisted.web sees them.
MAX_HEAD_BYTES = 64 * 1024
#: Idle seconds before an internal connection is closed.
IDLE_TIMEOUT = 60


#: Told the status and body bytes of the answer (the data path records the request).
AnswerReport = Callable[[int, int], None]


class OneRequestChannel(HTTPChannel):
    """An HTTP channel that answers one request and closes (see the module docstring)."""

    on_answered: AnswerReport | None = None

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        request.responseHeaders.setRawHeaders(b"connection", [b"close"])
        return False


def _head_of(buffer: bytes) -> bytes | None:
    end = buffer.find(b"\r\n\r\n")
    if end == -1:
        end = buffer.find(b"\n\n")
    return None if end == -1 else buffer[:end]


def is_websocket_upgrade(head: bytes) -> tuple[str, bool]:
    """The request path of a head, and whether it asks for a WebSocket upgrade."""
    lines = head.split(b"\n")
    parts = lines[0].strip().split(b" ")
    path = parts[1].decode("latin-1").partition("?")[0] if len(parts) >= 2 else ""
    upgrade = connection = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        tokens = {t.strip().lower() for t in value.split(b",")}
        if key == b"upgrade" and b"websocket" in tokens:
            upgrade = True
        elif key == b"connection" and b"upgrade" in tokens:
            connection = True
    return path, upgrade and connection


class _Dispatch(Protocol):
    """Reads the first request head, then hands the connection to the site's HTTP channel
    or, for a WebSocket upgrade of a known path, to that path's protocol factory."""

    transport: Any
    #: Set by the data path before the request arrives; passed on to the HTTP channel.
    on_answered: AnswerReport | None = None

    def __init__(self, site: InternalSite, addr: Any) -> None:
        self.site = site
        self.addr = addr
        self.buffer = b""
        self.inner: Any = None

    def dataReceived(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        self.buffer += data
        head = _head_of(self.buffer)
        if head is None:
            if len(self.buffer) > MAX_HEAD_BYTES:
                self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                     b"Connection: close\r\nContent-Length: 0\r\n\r\n")
                self.transport.loseConnection()
            return
        path, upgrade = is_websocket_upgrade(head)
        factory = self.site.websockets.get(path) if upgrade else None
        if factory is not None:
            inner = factory.buildProtocol(self.addr)
        else:
            inner = Site.buildProtocol(self.site, self.addr)
            if inner is not None and self.on_answered is not None:
                inner.on_answered = self.on_answered
        if inner is None:
            self.transport.loseConnection()
            return
        self.inner = inner
        inner.makeConnection(self.transport)
        buffered, self.buffer = self.buffer, b""
        inner.dataReceived(buffered)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.inner is not None:
            self.inner.connectionLost(reason)


class InternalRequest(Request):
    """A request without twisted.web's ``Server`` header (Traefik's answers carry none)."""

    def write(self, data: bytes) -> None:
        if not self.startedWriting:
            self.responseHeaders.removeHeader(b"server")
        super().write(data)


class InternalSite(Site):
    """A Site for an internal service: one request per connection, WebSocket paths apart.

    ``websockets`` maps exact request paths to protocol factories (autobahn
    ``WebSocketServerFactory``) that get upgrade requests for that path.
    """

    protocol = OneRequestChannel  # type: ignore[assignment]
    noisy = False

    def __init__(self, resource: Resource, *,
                 websockets: Mapping[str, IProtocolFactory] | None = None) -> None:
        super().__init__(resource, requestFactory=InternalRequest, timeout=IDLE_TIMEOUT)
        self.websockets = dict(websockets or {})

    def buildProtocol(self, addr: IAddress | None) -> _Dispatch:  # type: ignore[override]
        return _Dispatch(self, addr)

    def log(self, request: Any) -> None:
        """Called by twisted.web when a response is complete: the data path records it
        (metrics and wsgate's access log, with ``addInternals``); twisted.web's own access
        log is not written."""
        report = getattr(request.channel, "on_answered", None)
        if report is not None:
            report(int(request.code), int(request.sentLength))


class PathDispatch(Resource):
    """Chooses a leaf resource by path prefix (first match), 404 when none matches."""

    isLeaf = True

    def __init__(self, routes: list[tuple[Callable[[str], bool], Resource]]) -> None:
        super().__init__()
        self.routes = routes

    def render(self, request: Request) -> bytes:
        path = (request.path or b"/").decode("latin-1")
        for matches, resource in self.routes:
            if matches(path):
                return resource.render(request)  # type: ignore[no-any-return]
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"404 page not found\n"


__all__ = ["IDLE_TIMEOUT", "MAX_HEAD_BYTES", "AnswerReport", "InternalSite", "OneRequestChannel",
           "PathDispatch", "is_websocket_upgrade"]
