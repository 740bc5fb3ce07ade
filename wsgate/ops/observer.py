"""What the data path tells operations about: connections, requests, WebSocket sessions.

The data path holds one :class:`Observer` and calls it at a handful of moments: a connection
accepted or closed, an exchange finished, a WebSocket session opened or ended, an upgrade that
failed. Never per frame or per chunk: a session's message and byte counts arrive once, in the
record given to :meth:`Observer.websocket_closed`. Metrics, the access log and the dashboard's
live counts are observers; :class:`FanOut` joins them, binding each method once to the
observers that implement it so that a call costs a few attribute lookups.

Records are mutable slotted dataclasses so that the data path can create one when a request
head is complete and fill in the outcome later without copying. An observer must not keep a
record beyond the call (copy what it needs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from twisted.logger import Logger

if TYPE_CHECKING:
    from wsgate.config.runtime import RuntimeConfig
    from wsgate.http.head import RequestHead

log = Logger()

#: Values of the ``protocol`` label, as Traefik computes them from the request headers.
Protocol = Literal["http", "websocket", "sse", "grpc", "grpc-web"]
#: Who ended a WebSocket session: the side whose close frame came first, the proxy (drain,
#: limits, a lost peer), or "" when the TCP connections ended without any close frame.
ClosedBy = Literal["client", "backend", "proxy", ""]

# Suggested ``reason`` values for :meth:`Observer.handshake_failed` (a label value: keep the
# set small and fixed).
#: No router matched the upgrade request (404).
REASON_NO_ROUTER = "no_router"
#: The router's service has no server available (503).
REASON_NO_SERVER = "no_server"
#: The backend could not be reached (connection refused, dial timeout, TLS failure: 502/504).
REASON_BACKEND_UNREACHABLE = "backend_unreachable"
#: The backend sent no response head within responseHeaderTimeout (504).
REASON_BACKEND_TIMEOUT = "backend_timeout"
#: The backend answered with a status other than 101 (relayed to the client as is).
REASON_BACKEND_REFUSED = "backend_refused"
#: The backend answered 101 with an Upgrade that does not match the request (502).
REASON_BAD_UPGRADE = "bad_upgrade"
#: A middleware answered instead of the backend (auth, allow list, rate limit, redirect...).
REASON_MIDDLEWARE = "middleware"
#: A wsgate WebSocket limit refused the upgrade (maxConnections: 429).
REASON_LIMIT = "limit"
#: The client went away before the backend answered.
REASON_CLIENT_GONE = "client_gone"
#: The service is an in-process one that refused the connection (503).
REASON_INTERNAL = "internal"


@dataclass(slots=True, eq=False)
class RequestRecord:
    """One request and its outcome: what metrics and the access log need.

    Times are seconds (``start`` from ``time.time()``; durations from a monotonic clock).
    ``router`` and ``service`` are qualified names (``name@provider``) or "" when the request
    never got that far (no router matched, a parse error answered by the proxy).
    """

    entrypoint: str
    method: str
    #: The request target as received, in origin-form (path and query, still %-encoded).
    path: str
    #: Status sent to the client (101 for an upgrade, whatever the backend or proxy answered).
    status: int = 0
    start: float = 0.0
    #: Seconds from the complete request head to the end of the response (for an upgrade: to
    #: the 101, the session itself is in :class:`SessionRecord`).
    duration: float = 0.0
    client_ip: str = ""
    client_port: int = 0
    #: The Host header (``RequestAddr`` in the access log).
    host: str = ""
    #: X-Forwarded-For as the client sent it, when forwardedHeaders trusts the client ("" when
    #: untrusted or absent); the access log's ClientHost, as in Traefik.
    forwarded_for: str = ""
    router: str = ""
    service: str = ""
    #: URL of the server the request went to ("" when none was picked).
    server_url: str = ""
    protocol: str = "http"
    #: HTTP version as in the request line, without ``HTTP/`` ("1.1", "1.0").
    http_version: str = "1.1"
    tls: bool = False
    #: Negotiated TLS version ("1.2", "1.3") and cipher name, when ``tls``.
    tls_version: str = ""
    tls_cipher: str = ""
    #: Request body bytes received from the client.
    request_bytes: int = 0
    #: Response body bytes sent to the client.
    response_bytes: int = 0
    #: Request header fields as received (names with their casing, wire order).
    headers: Sequence[tuple[str, str]] = ()
    #: Response header fields as sent to the client.
    response_headers: Sequence[tuple[str, str]] = ()
    #: The backend's status; 0 when the proxy answered itself (404, 502, a middleware...).
    origin_status: int = 0
    #: Seconds from the request written to the backend to its complete response.
    origin_duration: float | None = None
    #: The backend's Content-Length, when it gave one.
    origin_bytes: int | None = None
    retry_attempts: int = 0
    #: The user authenticated by a middleware (basicAuth, forwardAuth), if any.
    username: str = ""

    @classmethod
    def for_head(cls, entrypoint: str, head: RequestHead, *, client_ip: str,
                 client_port: int = 0, tls: bool = False, start: float = 0.0
                 ) -> RequestRecord:
        """A record for a request head just parsed; the outcome is filled in later."""
        return cls(entrypoint=entrypoint, method=head.method, path=head.origin_form,
                   start=start, client_ip=client_ip, client_port=client_port, host=head.host,
                   protocol=request_protocol(head.headers), http_version=head.version,
                   tls=tls, headers=head.headers)


@dataclass(slots=True, eq=False)
class SessionRecord:
    """One WebSocket session, from the relayed 101 to the end of both connections.

    ``request`` is the handshake (status 101, ``duration`` up to the 101). Counts are per
    direction: ``client_*`` is what the client sent (to the backend), ``backend_*`` what the
    backend sent (to the client); bytes are on the wire after the 101, frame headers included.
    The data path creates the record when the 101 is relayed (``websocket_opened``) and fills
    in the counts before ``websocket_closed``.
    """

    request: RequestRecord
    #: ``time.time()`` when the 101 was relayed.
    opened_at: float = 0.0
    #: Seconds from the 101 to the end of the session.
    duration: float = 0.0
    client_messages: int = 0
    backend_messages: int = 0
    client_bytes: int = 0
    backend_bytes: int = 0
    #: Code of the first close frame seen or sent (None: none, a bare TCP end, i.e. 1006).
    close_code: int | None = None
    closed_by: str = ""

    @property
    def entrypoint(self) -> str:
        return self.request.entrypoint

    @property
    def router(self) -> str:
        return self.request.router

    @property
    def service(self) -> str:
        return self.request.service

    @property
    def server_url(self) -> str:
        return self.request.server_url


def _has_token(headers: Sequence[tuple[str, str]], name: str, token: str) -> bool:
    for key, value in headers:
        if key.lower() == name and any(t.strip().lower() == token for t in value.split(",")):
            return True
    return False


def _first(headers: Sequence[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return ""


def request_protocol(headers: Sequence[tuple[str, str]]) -> str:
    """The ``protocol`` label of a request, decided from its headers as Traefik does."""
    if _has_token(headers, "connection", "upgrade") and _has_token(headers, "upgrade",
                                                                     "websocket"):
        return "websocket"
    if _has_token(headers, "accept", "text/event-stream"):
        return "sse"
    content_type = _first(headers, "content-type")
    if content_type.startswith("application/grpc-web"):
        return "grpc-web"
    if content_type.startswith("application/grpc"):
        return "grpc"
    return "http"


class Observer:
    """The calls the data path makes; every method does nothing here (the no-op observer).

    Subclasses override what they need. Calls happen in the reactor thread and must be cheap
    and must not raise (:class:`FanOut` logs and swallows what an observer raises, so that a
    broken observer never breaks proxying).
    """

    #: This observer reads a session's request and response header fields when the session
    #: ends (the access log does); when no observer does, a session's record lets them go at
    #: the 101, so that an idle WebSocket does not hold its handshake's headers.
    keeps_session_headers = False

    def connection_opened(self, entrypoint: str) -> None:
        """A client connection was accepted on ``entrypoint``."""

    def connection_closed(self, entrypoint: str) -> None:
        """A client connection on ``entrypoint`` is closed (whatever it carried)."""

    def request_done(self, record: RequestRecord) -> None:
        """An exchange ended: the response was sent completely, or the proxy answered.

        Not called for an upgrade that the backend accepted (``websocket_opened`` and
        ``websocket_closed`` are); called for an upgrade answered otherwise (the non-101
        status is relayed), together with ``handshake_failed``.
        """

    def websocket_opened(self, session: SessionRecord) -> None:
        """The backend's 101 was relayed; the session starts."""

    def websocket_closed(self, session: SessionRecord) -> None:
        """Both connections of a session are closed; ``session`` has its final counts."""

    def handshake_failed(self, entrypoint: str, router: str, service: str,
                         reason: str) -> None:
        """An upgrade request did not become a session (see the ``REASON_*`` values)."""

    def config_reloaded(self, success: bool) -> None:
        """A new dynamic configuration was applied (True) or rejected (False)."""

    def runtime_changed(self, runtime: RuntimeConfig) -> None:
        """The runtime configuration now in force (routers, services, statuses)."""

    def server_up(self, service: str, url: str, up: bool) -> None:
        """A server of a loadBalancer service is (still) up or down (health checks)."""

    def tls_cert_not_after(self, cn: str, sans: Sequence[str], serial: str,
                           not_after: float) -> None:
        """A certificate in use and its expiry (Unix time)."""

    def close(self) -> None:
        """wsgate is stopping: flush and release files."""


#: The observer that does nothing; the data path's default.
NOOP_OBSERVER = Observer()

#: The methods :class:`FanOut` dispatches.
OBSERVER_METHODS: tuple[str, ...] = (
    "connection_opened", "connection_closed", "request_done", "websocket_opened",
    "websocket_closed", "handshake_failed", "config_reloaded", "runtime_changed",
    "server_up", "tls_cert_not_after", "close",
)


def _overrides(observer: Observer, name: str) -> bool:
    return getattr(type(observer), name, None) is not getattr(Observer, name)


def _noop(*args: Any) -> None:
    """Nobody listens to this call."""


def _guarded(name: str, targets: Sequence[Callable[..., None]]) -> Callable[..., None]:
    def call(*args: Any) -> None:
        for target in targets:
            try:
                target(*args)
            except Exception:
                log.failure("observer {target!r} failed in {name}", target=target, name=name)
    return call


class FanOut(Observer):
    """Passes every call to each of its observers that implements it, in order.

    Each method is bound at construction to the list of observers that override it, so a call
    nobody listens to costs one no-op call.
    """

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers: tuple[Observer, ...] = tuple(observers)
        self.keeps_session_headers = any(o.keeps_session_headers for o in self.observers)
        for name in OBSERVER_METHODS:
            targets = [getattr(o, name) for o in self.observers if _overrides(o, name)]
            setattr(self, name, _guarded(name, targets) if targets else _noop)

    def find(self, kind: type[Any]) -> Any:
        """The first observer of type ``kind`` (searching nested fan-outs), or None."""
        for observer in self.observers:
            if isinstance(observer, kind):
                return observer
            if isinstance(observer, FanOut):
                found = observer.find(kind)
                if found is not None:
                    return found
        return None


__all__ = [
    "NOOP_OBSERVER", "OBSERVER_METHODS", "REASON_BACKEND_REFUSED", "REASON_BACKEND_TIMEOUT",
    "REASON_BACKEND_UNREACHABLE", "REASON_BAD_UPGRADE", "REASON_CLIENT_GONE",
    "REASON_INTERNAL", "REASON_LIMIT", "REASON_MIDDLEWARE", "REASON_NO_ROUTER",
    "REASON_NO_SERVER", "ClosedBy", "FanOut", "Observer", "Protocol", "RequestRecord",
    "SessionRecord", "request_protocol",
]
