"""The backend leg: connecting to servers, the per-server keep-alive pool."""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol
from urllib.parse import urlsplit

from twisted.internet import defer, error
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsgate.proxy.errors import UpstreamError
from wsgate.proxy.sockets import connect_tcp, connect_tls

log = Logger()


@dataclass(frozen=True, slots=True)
class BackendAddress:
    """Where a server lives, parsed once when the configuration is built."""

    url: str
    scheme: str
    host: str
    port: int
    #: host[:port] as written in the URL: the Host header when passHostHeader is false
    authority: str
    #: path prefix of the server URL (Traefik prepends it to the request path)
    path: str

    @property
    def tls(self) -> bool:
        return self.scheme in ("https", "wss")

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"


def parse_backend_url(url: str) -> BackendAddress:
    """Parse a server URL; the port defaults by scheme as in Go's URL handling."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "h2c", "ws", "wss"):
        raise ValueError(f"unsupported scheme {parts.scheme!r} in server URL {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"server URL {url!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"server URL {url!r} has an invalid port") from None
    if port is None:
        port = 443 if scheme in ("https", "wss") else 80
    return BackendAddress(url=url, scheme=scheme, host=host, port=port,
                          authority=parts.netloc.rpartition("@")[2],
                          path=parts.path.rstrip("/"))


class BackendListener(TypingProtocol):
    """What a backend connection reports to the exchange currently using it."""

    def backend_data(self, data: bytes) -> None: ...

    def backend_lost(self, reason: Failure) -> None: ...


@implementer(IHalfCloseableProtocol)
class BackendConnection(Protocol):
    """One TCP (or TLS) connection to a server, lent to one exchange at a time."""

    transport: Any

    def __init__(self, address: BackendAddress) -> None:
        self.address = address
        self.listener: BackendListener | None = None
        self.connected_d: defer.Deferred[BackendConnection] = defer.Deferred()
        self.pool: BackendPool | None = None
        self.idle_timer: IDelayedCall | None = None
        self.closed = False
        self.used = 0

    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        d, self.connected_d = self.connected_d, None  # type: ignore[assignment]
        if d is not None:
            d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        if self.listener is not None:
            self.listener.backend_data(data)
            return
        # An idle pooled connection must stay silent; anything else is a broken peer.
        log.warn("backend {addr} sent {n} bytes while idle; closing it", addr=self.address,
                 n=len(data))
        self.close()

    def readConnectionLost(self) -> None:
        """The server sent FIN: a relay may still send to it; anything else is over."""
        on_read_closed = getattr(self.listener, "backend_read_closed", None)
        if on_read_closed is not None:
            on_read_closed()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our FIN went out; the relay decides when the whole connection ends."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        if self.idle_timer is not None and self.idle_timer.active():
            self.idle_timer.cancel()
        self.idle_timer = None
        if self.pool is not None:
            self.pool.forget(self)
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.backend_lost(reason)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.abortConnection()


def set_nodelay(transport: Any) -> None:
    """Small WebSocket frames must not wait for delayed ACKs (see docs/performance.md)."""
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except OSError as exc:  # a transport already closing; nothing is lost
            log.debug("TCP_NODELAY not set: {exc}", exc=exc)


class _OneShotFactory(ClientFactory):
    noisy = False  # one per backend connection: "Starting factory" lines would flood the log

    def __init__(self, conn: BackendConnection, timeout_s: float) -> None:
        self.conn = conn
        self.timeout_s = timeout_s

    def buildProtocol(self, addr: Any) -> BackendConnection:
        return self.conn

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        d, self.conn.connected_d = self.conn.connected_d, None  # type: ignore[assignment]
        if d is None:
            return
        addr = str(self.conn.address)
        if reason.check(error.TimeoutError, defer.TimeoutError):
            d.errback(UpstreamError(504, f"dial timeout after {self.timeout_s:g}s",
                                    backend=addr))
        elif reason.check(error.ConnectionRefusedError):
            d.errback(UpstreamError(502, "connection refused", backend=addr))
        elif reason.check(error.DNSLookupError):
            d.errback(UpstreamError(502, f"cannot resolve host {self.conn.address.host!r}",
                                    backend=addr))
        else:
            d.errback(UpstreamError(502, f"cannot connect: {reason.getErrorMessage()}",
                                    backend=addr))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Connector:
    """Opens backend connections; TLS contexts are supplied by the transport configuration."""

    def __init__(self, reactor: IReactorTCP) -> None:
        self.reactor = reactor

    def connect(self, address: BackendAddress, *, dial_timeout: float,
                tls_context: Any = None) -> defer.Deferred[BackendConnection]:
        conn = BackendConnection(address)
        d = conn.connected_d
        factory = _OneShotFactory(conn, dial_timeout)
        timeout = dial_timeout if dial_timeout > 0 else 30.0
        if tls_context is not None:
            connect_tls(self.reactor, address.host, address.port, factory, tls_context,
                        timeout=timeout)
        else:
            connect_tcp(self.reactor, address.host, address.port, factory, timeout=timeout)
        return d


class BackendPool:
    """Idle keep-alive connections per server, bounded and expiring (maxIdleConnsPerHost,
    idleConnTimeout)."""

    def __init__(self, clock: IReactorTime, *, max_idle_per_host: int = 2,
                 idle_timeout: float = 90.0) -> None:
        self.clock = clock
        self.max_idle_per_host = max_idle_per_host
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[str, str, int], deque[BackendConnection]] = {}

    def take(self, address: BackendAddress) -> BackendConnection | None:
        queue = self._idle.get(address.key)
        while queue:
            conn = queue.pop()  # most recently used first: the likeliest to be alive
            conn.pool = None
            if conn.idle_timer is not None and conn.idle_timer.active():
                conn.idle_timer.cancel()
            conn.idle_timer = None
            if not conn.closed:
                return conn
        return None

    def give_back(self, conn: BackendConnection) -> None:
        if conn.closed or self.max_idle_per_host <= 0:
            conn.close()
            return
        queue = self._idle.setdefault(conn.address.key, deque())
        if len(queue) >= self.max_idle_per_host:
            conn.close()
            return
        conn.listener = None
        conn.pool = self
        # The last exchange may have left it paused (its client was slower than the response):
        # an idle connection must read, to notice the server closing it, and its next
        # exchange needs the response.
        conn.transport.resumeProducing()
        if self.idle_timeout > 0:
            conn.idle_timer = self.clock.callLater(self.idle_timeout, conn.close)
        queue.append(conn)

    def forget(self, conn: BackendConnection) -> None:
        queue = self._idle.get(conn.address.key)
        if queue is not None:
            try:
                queue.remove(conn)
            except ValueError:
                log.debug("connection to {addr} was not idle in the pool", addr=conn.address)
        conn.pool = None

    def idle_count(self) -> int:
        return sum(len(q) for q in self._idle.values())

    def close_all(self) -> None:
        for queue in list(self._idle.values()):
            for conn in list(queue):
                conn.close()
        self._idle.clear()
