"""An entryPoint at run time: its settings, its connections, and its protocol factory."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Sequence

from twisted.internet.protocol import Factory
from twisted.logger import Logger

from wsgate.http.forwarding import is_trusted, parse_trusted_ips
from wsgate.proxy.frontend import FrontendConnection
from wsgate.rules import RouteRequest

if TYPE_CHECKING:
    from wsgate.proxy.gateway import Gateway
    from wsgate.proxy.relay import WebSocketRelay
    from wsgate.proxy.routing import RouteDecision

log = Logger()

#: Header fields per request head; RFC 9110 sets no number, Go's server has none either but
#: bounds the bytes. A generous count keeps pathological heads cheap to reject.
DEFAULT_MAX_HEADERS = 256


class EntryPointRuntime:
    """What a connection needs from its entryPoint, looked up once per connection."""

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

    def route(self, request: RouteRequest) -> RouteDecision | None:
        return self.gateway.routing.route(self.name, request)

    def trusts(self, ip: str) -> bool:
        return self.insecure or (bool(self.trusted) and is_trusted(ip, self.trusted))

    def connection_opened(self, conn: FrontendConnection) -> None:
        self.connections.add(conn)

    def connection_closed(self, conn: FrontendConnection) -> None:
        self.connections.discard(conn)

    def websocket_closed(self, exchange: Any, relay: WebSocketRelay) -> None:
        stats = relay.stats
        log.debug("WebSocket on {ep} closed: code={code} by={by} in={cin}B out={cout}B",
                  ep=self.name, code=stats.close_code, by=stats.closed_by,
                  cin=stats.client_bytes, cout=stats.backend_bytes)


class EntryPointFactory(Factory):
    """Builds one FrontendConnection per accepted connection."""

    noisy = False

    def __init__(self, runtime: EntryPointRuntime) -> None:
        self.runtime = runtime

    def buildProtocol(self, addr: Any) -> FrontendConnection:
        return FrontendConnection(self.runtime)
