"""An entryPoint at run time: its settings, its connections, and its protocol factory.

One port serves plain HTTP and TLS, as in Traefik: each connection starts with a
:class:`ConnectionSniffer` that reads the first bytes. A TLS ClientHello (on an entryPoint
that has TLS routers) chooses the TLS options and certificate from its server name and the
connection continues as TLS; anything else goes to the HTTP parser as it is. Either way the
sniffer then hands the socket to the chosen protocol and is gone from the data path.
"""

from __future__ import annotations

import copy
import socket
from typing import TYPE_CHECKING, Any, Sequence

from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsgate.http.forwarding import is_trusted, parse_trusted_ips
from wsgate.http.serialize import serialize_response
from wsgate.proxy.frontend import FrontendConnection
from wsgate.proxy.routing import RouteDecision
from wsgate.rules import RouteRequest
from wsgate.tls.clienthello import NEED_MORE, ClientHello, looks_like_tls, read_client_hello
from wsgate.tls.server import Refusal, ServerTLSTransport, server_tls_factory

if TYPE_CHECKING:
    from wsgate.ops.observer import Observer
    from wsgate.proxy.gateway import Gateway
    from wsgate.proxy.relay import WebSocketRelay

log = Logger()

#: Header fields per request head; RFC 9110 sets no number, Go's server has none either but
#: bounds the bytes. A generous count keeps pathological heads cheap to reject.
DEFAULT_MAX_HEADERS = 256


class EntryPointRuntime:
    """What a connection needs from its entryPoint, looked up once per connection.

    TLS connections see a view of it (:meth:`for_tls`) that also knows the TLS options their
    handshake used. Views are shallow copies sharing every attribute by reference: keep
    mutable state in objects (the ``connections`` set), never in rebound attributes.
    """

    #: The TLS options of the handshake of the connections using this view; None: plain.
    tls_options: str | None = None
    #: entryPoints.<name>.http.sanitizePath: remove dot segments and repeated slashes.
    sanitize_path = True
    #: entryPoints.<name>.http.encodeQuerySemicolons: ';' in queries as %3B instead of '&'.
    encode_query_semicolons = False

    def __init__(self, gateway: Gateway, name: str, *, max_header_bytes: int,
                 read_timeout: float, idle_timeout: float, trusted_ips: Sequence[str] = (),
                 insecure: bool = False, not_append_xff: bool = False,
                 max_headers: int = DEFAULT_MAX_HEADERS, hostname: str | None = None) -> None:
        self.gateway = gateway
        self.reactor: Any = gateway.reactor
        self.name = name
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.insecure = insecure
        self.trusted = parse_trusted_ips(trusted_ips)
        self.not_append_xff = not_append_xff
        self.hostname = hostname or socket.gethostname()
        self.connections: set[FrontendConnection] = set()
        self._tls_views: dict[str, EntryPointRuntime] = {}

    def for_tls(self, options: str) -> EntryPointRuntime:
        """This entryPoint as seen by TLS connections whose handshake used ``options``."""
        view = self._tls_views.get(options)
        if view is None:
            view = copy.copy(self)
            view.tls_options = options
            self._tls_views[options] = view
        return view

    def route(self, request: RouteRequest) -> RouteDecision | None:
        if self.tls_options is not None:
            # Domain fronting (Traefik's SNI check): a request for a host whose TLS options
            # differ from those of the handshake would skip them (a client certificate, a
            # minimum version...); it is answered 421 Misdirected Request.
            needed = self.gateway.server_tls.options_for_host(self.name,
                                                              request.canonical_host)
            if needed != self.tls_options:
                log.info("421 for {host} on {ep}: it needs TLS options {needed}, the "
                         "connection's handshake used {used}", host=request.canonical_host,
                         ep=self.name, needed=needed, used=self.tls_options)
                return MISDIRECTED
        return self.gateway.routing.route(self.name, request)

    def trusts(self, ip: str) -> bool:
        return self.insecure or (bool(self.trusted) and is_trusted(ip, self.trusted))

    @property
    def observer(self) -> Observer:
        """Metrics, access log and live counts (the gateway's; a no-op unless configured)."""
        return self.gateway.observer

    def connection_opened(self, conn: FrontendConnection) -> None:
        self.connections.add(conn)
        self.gateway.observer.connection_opened(self.name)

    def connection_closed(self, conn: FrontendConnection) -> None:
        self.connections.discard(conn)
        self.gateway.observer.connection_closed(self.name)

    def websocket_closed(self, exchange: Any, relay: WebSocketRelay) -> None:
        stats = relay.stats
        log.debug("WebSocket on {ep} closed: code={code} by={by} in={cin}B out={cout}B",
                  ep=self.name, code=stats.close_code, by=stats.closed_by,
                  cin=stats.client_bytes, cout=stats.backend_bytes)


class _MisdirectedAnswer(Protocol):
    """Answers 421 to the request it is handed and closes the connection."""

    transport: Any

    def connectionMade(self) -> None:
        body = b"Misdirected Request\n"
        self.transport.write(serialize_response(421, "Misdirected Request", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]) + body)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """The request (and anything after it) is not read."""


class _MisdirectedFactory(Factory):
    noisy = False
    protocol = _MisdirectedAnswer


MISDIRECTED = RouteDecision("", "", internal_factory=_MisdirectedFactory())


class ConnectionSniffer(Protocol):
    """The first protocol of every connection: TLS or plain, decided by the first bytes."""

    transport: Any

    def __init__(self, factory: EntryPointFactory) -> None:
        self.factory = factory
        self.received = b""
        self.timer: Any = None

    def connectionMade(self) -> None:
        ep = self.factory.runtime
        if ep.read_timeout > 0:
            self.timer = ep.reactor.callLater(ep.read_timeout, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        log.debug("closing {peer} on {ep}: nothing usable received within readTimeout",
                  peer=_peer(self.transport), ep=self.factory.runtime.name)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        ep = self.factory.runtime
        server_tls = ep.gateway.server_tls
        if not looks_like_tls(self.received[0]) or not server_tls.serves(ep.name):
            self._hand_over(FrontendConnection(ep))
            return
        hello = read_client_hello(self.received)
        if hello is NEED_MORE:
            return
        server_name = ""
        if isinstance(hello, ClientHello):
            server_name = hello.server_name
        else:
            log.debug("TLS connection from {peer} on {ep}: ClientHello not read ({reason}); "
                      "default TLS options", peer=_peer(self.transport), ep=ep.name,
                      reason=getattr(hello, "reason", ""))
        local = getattr(self.transport.getHost(), "host", "")
        choice = server_tls.choose(ep.name, server_name, local)
        if isinstance(choice, Refusal):
            log.info("refusing TLS connection from {peer} on {ep}: {reason}",
                     peer=_peer(self.transport), ep=ep.name, reason=choice.reason)
            if choice.context is None:
                self._cancel_timer()
                self.transport.loseConnection()
                return
            # The handshake fails on a context without a certificate: the client gets an
            # alert rather than a bare close.
            self._hand_over(ServerTLSTransport(self.factory.tls_factory, Protocol(),
                                               choice.context))
            return
        frontend = FrontendConnection(ep.for_tls(choice.options), tls=True)
        self._hand_over(ServerTLSTransport(self.factory.tls_factory, frontend, choice.context))

    def _hand_over(self, protocol: Any) -> None:
        """Make ``protocol`` the connection's protocol and replay what was received.

        The TCP transport calls ``transport.protocol`` for every event, so after this the
        sniffer is no longer on the data path at all.
        """
        self._cancel_timer()
        transport, received = self.transport, self.received
        self.received = b""
        transport.protocol = protocol
        logstr = getattr(transport, "logstr", None)
        if isinstance(logstr, str):  # the log prefix names the protocol in charge
            transport.logstr = logstr.replace(type(self).__name__, type(protocol).__name__, 1)
        protocol.makeConnection(transport)
        protocol.dataReceived(received)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_timer()


def _peer(transport: Any) -> str:
    return str(getattr(transport.getPeer(), "host", "")) if transport is not None else ""


class EntryPointFactory(Factory):
    """Starts every accepted connection with a :class:`ConnectionSniffer`."""

    noisy = False

    def __init__(self, runtime: EntryPointRuntime) -> None:
        self.runtime = runtime
        self.tls_factory = server_tls_factory(self, runtime.reactor)

    def buildProtocol(self, addr: Any) -> ConnectionSniffer:
        return ConnectionSniffer(self)
