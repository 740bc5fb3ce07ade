"""Live state for the dashboard: open connections and WebSockets, server health, reloads.

:class:`LiveState` is an observer that keeps counts (a few dict updates per session, nothing
per frame) and tells its listeners that something changed. :class:`LiveHub` is the listener
behind the dashboard's WebSocket (``<basePath>/api/ws``): it sends a JSON snapshot to every
connected dashboard when the snapshot changed, at most once per ``interval`` seconds, so a
burst of sessions costs one message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.logger import Logger

from wsgate.ops.observer import Observer, SessionRecord

if TYPE_CHECKING:
    from wsgate.config.runtime import RuntimeConfig

log = Logger()

#: Seconds between two snapshots pushed to dashboards.
DEFAULT_PUSH_INTERVAL = 0.5


def _bump(counts: dict[str, int], key: str, delta: int) -> None:
    value = counts.get(key, 0) + delta
    if value > 0:
        counts[key] = value
    else:
        counts.pop(key, None)


class LiveState(Observer):
    """Counts what is open now, and the health and reload news the API and dashboard show."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.connections: dict[str, int] = {}
        self.ws_entrypoints: dict[str, int] = {}
        self.ws_routers: dict[str, int] = {}
        self.ws_services: dict[str, int] = {}
        self.ws_servers: dict[str, dict[str, int]] = {}
        self.ws_total = 0
        #: service -> {url: "UP" | "DOWN"} as last reported by health checks.
        self.health: dict[str, dict[str, str]] = {}
        self.generation = 0
        self.last_reload_success: bool | None = None
        self.last_reload_time: float | None = None
        self.listeners: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    # -- observer -------------------------------------------------------------------------------
    def connection_opened(self, entrypoint: str) -> None:
        _bump(self.connections, entrypoint, 1)
        self._changed()

    def connection_closed(self, entrypoint: str) -> None:
        _bump(self.connections, entrypoint, -1)
        self._changed()

    def websocket_opened(self, session: SessionRecord) -> None:
        self._count(session, 1)

    def websocket_closed(self, session: SessionRecord) -> None:
        self._count(session, -1)

    def _count(self, session: SessionRecord, delta: int) -> None:
        self.ws_total = max(self.ws_total + delta, 0)
        _bump(self.ws_entrypoints, session.entrypoint, delta)
        if session.router:
            _bump(self.ws_routers, session.router, delta)
        if session.service:
            _bump(self.ws_services, session.service, delta)
            if session.server_url:
                servers = self.ws_servers.setdefault(session.service, {})
                _bump(servers, session.server_url, delta)
                if not servers:
                    del self.ws_servers[session.service]
        self._changed()

    def config_reloaded(self, success: bool) -> None:
        self.last_reload_success = success
        self.last_reload_time = self.clock()
        self._changed()

    def runtime_changed(self, runtime: RuntimeConfig) -> None:
        self.generation += 1
        alive = set(runtime.services)
        for service in [s for s in self.health if s not in alive]:
            del self.health[service]
        self._changed()

    def server_up(self, service: str, url: str, up: bool) -> None:
        self.health.setdefault(service, {})[url] = "UP" if up else "DOWN"
        self._changed()

    # -- reading --------------------------------------------------------------------------------
    def server_status(self, service: str) -> Mapping[str, str] | None:
        """Health as the API's ``serverStatus`` wants it (see wsgate.ops.api)."""
        return self.health.get(service)

    def snapshot(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "connections": dict(self.connections),
            "websockets": {
                "total": self.ws_total,
                "entryPoints": dict(self.ws_entrypoints),
                "routers": dict(self.ws_routers),
                "services": dict(self.ws_services),
                "servers": {s: dict(urls) for s, urls in self.ws_servers.items()},
            },
            "serverStatus": {s: dict(urls) for s, urls in self.health.items()},
            "lastReloadSuccess": self.last_reload_success,
            "lastReloadTime": self.last_reload_time,
        }


class LiveProtocol(WebSocketServerProtocol):  # type: ignore[misc]
    """One dashboard listening for snapshots; what it sends is ignored."""

    hub: LiveHub

    def onConnect(self, request: ConnectionRequest) -> None:
        origin = request.headers.get("origin")
        if origin and not same_origin(origin, request.headers.get("host", "")):
            # Browsers let any page open a WebSocket anywhere; only the dashboard's own page
            # (same host and port) may read the live counts.
            raise ConnectionDeny(403, "cross-origin dashboards are not allowed")

    def onOpen(self) -> None:
        self.factory.hub.add(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Dashboards have nothing to say."""

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.hub.discard(self)


def same_origin(origin: str, host: str) -> bool:
    """Whether an Origin header names the host (and port) the request was sent to."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme)
    origin_port = parts.port or default
    if host.startswith("["):
        end = host.find("]")
        name, port_text = host[1:end], host[end + 2:]
    else:
        name, _, port_text = host.partition(":")
    host_port = int(port_text) if port_text.isdigit() else default
    return parts.hostname.lower() == name.lower() and origin_port == host_port


class LiveHub:
    """Pushes :meth:`LiveState.snapshot` to connected dashboards when it changes."""

    def __init__(self, state: LiveState, reactor: Any,
                 interval: float = DEFAULT_PUSH_INTERVAL) -> None:
        self.state = state
        self.reactor = reactor
        self.interval = interval
        self.clients: set[LiveProtocol] = set()
        self._call: Any = None
        self._last_sent = 0.0
        self._last_payload = b""
        state.listeners.append(self.changed)

    def factory(self) -> WebSocketServerFactory:
        factory = WebSocketServerFactory()
        factory.protocol = LiveProtocol
        factory.hub = self  # type: ignore[attr-defined]
        factory.setProtocolOptions(maxMessagePayloadSize=4096, maxFramePayloadSize=4096,
                                   autoPingInterval=30.0, autoPingTimeout=10.0)
        return factory

    def add(self, client: LiveProtocol) -> None:
        self.clients.add(client)
        client.sendMessage(self._payload())

    def discard(self, client: LiveProtocol) -> None:
        self.clients.discard(client)

    def changed(self) -> None:
        """Called by the state on every change: schedule one push, rate-limited."""
        if not self.clients or self._call is not None:
            return
        wait = max(0.0, self._last_sent + self.interval - self.reactor.seconds())
        self._call = self.reactor.callLater(wait, self._push)

    def _payload(self) -> bytes:
        return json.dumps(self.state.snapshot(), separators=(",", ":")).encode("utf-8")

    def _push(self) -> None:
        self._call = None
        self._last_sent = self.reactor.seconds()
        payload = self._payload()
        if payload == self._last_payload:
            return
        self._last_payload = payload
        for client in list(self.clients):
            client.sendMessage(payload)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        for client in list(self.clients):
            # autobahn's sendClose only takes 1000 and 3000-4999; 1001 (going away) is what a
            # server that stops sends, so the frame is sent with the lower-level call.
            client.sendCloseFrame(1001, b"wsgate is stopping")


__all__ = ["DEFAULT_PUSH_INTERVAL", "LiveHub", "LiveProtocol", "LiveState", "same_origin"]
