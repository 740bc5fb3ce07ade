"""The gateway: the current routing table and the long-lived objects behind it.

A new runtime configuration becomes a new RoutingTable, assigned in one statement. Services
whose configuration did not change keep their balancer (health, round-robin position, open
connection counts) and transports keep their idle pools, so a reload disturbs nothing that
it does not change. Live relays hold their own references and never notice.
"""

from __future__ import annotations

import dataclasses
import random
import types
from typing import Any

from twisted.internet.interfaces import IReactorTCP
from twisted.logger import Logger

from wsgate.config.dynamic import RouterExtension, Service
from wsgate.config.dynamic import ServersTransport as DynamicServersTransport
from wsgate.config.errors import Diagnostic
from wsgate.config.runtime import RuntimeConfig, ServiceInfo
from wsgate.config.static import ServersTransport as StaticServersTransport
from wsgate.internal.registry import ServiceRegistry
from wsgate.middlewares import MiddlewareError, build_chain
from wsgate.ops.observer import NOOP_OBSERVER, Observer
from wsgate.proxy.backend import BackendAddress, BackendPool, Connector, parse_backend_url
from wsgate.proxy.balancer import Backend, UnsupportedStrategyError, build_load_balancer
from wsgate.proxy.composite import build_composite, sticky_cookie
from wsgate.proxy.dataplan import plan_for
from wsgate.proxy.health import HealthChecks
from wsgate.proxy.routing import (
    LeafService,
    ProxyService,
    RouteDecision,
    RoutingTable,
)
from wsgate.proxy.session_limits import RouterSessionCounts, ServerSessionCounts
from wsgate.proxy.sessions import OpenRelays
from wsgate.rules import Route, build_muxer
from wsgate.tls.client import BackendTLS, ClientTLSSettings
from wsgate.tls.material import KeyPair, generate_default_key_pair
from wsgate.tls.server import ServerTLS, build_server_tls

log = Logger()

DEFAULT_TRANSPORT = "default@internal"
#: The close sent to both sides of a session whose server a reload removed.
SERVER_REMOVED_CODE = 1001
SERVER_REMOVED_REASON = "server removed"


class TransportRuntime:
    """A serversTransport at run time: timeouts, its idle pool and its client TLS."""

    def __init__(self, name: str, config: Any, reactor: Any) -> None:
        self.name = name
        self.config = config
        timeouts = config.forwarding_timeouts
        self.dial_timeout = float(timeouts.dial_timeout)
        self.response_header_timeout = float(timeouts.response_header_timeout)
        max_idle = config.max_idle_conns_per_host
        if isinstance(config, DynamicServersTransport):
            max_idle = config.effective_max_idle_conns_per_host
        self.pool = BackendPool(reactor, max_idle_per_host=max(0, max_idle),
                                idle_timeout=float(timeouts.idle_conn_timeout))
        self.tls = BackendTLS(ClientTLSSettings.from_transport(name, config))

    def tls_context(self, address: BackendAddress) -> Any:
        """The connection creator for an https/wss server (None for a plain one)."""
        if not address.tls:
            return None
        return self.tls.creator_for(address.host, address.port)


def _disable_routers(runtime: RuntimeConfig, errors: dict[str, str]) -> RuntimeConfig:
    """The runtime configuration with routers whose middlewares failed marked disabled."""
    if not errors:
        return runtime
    routers = dict(runtime.routers)
    for name, message in errors.items():
        info = routers.get(name)
        if info is not None:
            routers[name] = dataclasses.replace(
                info, status="disabled",
                errors=(*info.errors, Diagnostic(message, f"http.routers.{name}")))
    return dataclasses.replace(runtime, routers=types.MappingProxyType(routers))


class Gateway:
    """Holds what the data path reads; ``apply`` swaps in a new configuration."""

    def __init__(self, reactor: IReactorTCP, registry: ServiceRegistry,
                 default_transport: StaticServersTransport | DynamicServersTransport) -> None:
        self.reactor = reactor
        self.registry = registry
        self.connector = Connector(reactor)
        self.routing = RoutingTable.empty()
        #: Told about every request and WebSocket session (metrics, access log, dashboard).
        self.observer: Observer = NOOP_OBSERVER
        self._auth_client: Any = None
        self.runtime: RuntimeConfig | None = None
        self._transports: dict[str, TransportRuntime] = {
            DEFAULT_TRANSPORT: TransportRuntime(DEFAULT_TRANSPORT, default_transport, reactor)}
        self._services: dict[str, tuple[Service | None, ProxyService]] = {}
        #: Stateful middlewares (rate limits, in-flight counts, breakers) kept across reloads
        #: when their configuration is unchanged.
        self._middleware_cache: dict[Any, Any] = {}
        #: What TLS connections are served with; swapped with the routing table.
        self.server_tls = ServerTLS.empty()
        self._generated_pair: KeyPair | None = None
        #: Open WebSocket relays by (service, server URL), kept by the data path.
        self.open_relays = OpenRelays()
        #: Open WebSocket sessions per router (wsgate.maxConnections), kept by the data path.
        self.router_sessions = RouterSessionCounts()
        #: Open WebSocket sessions per server (wsgate.maxConnectionsPerServer), kept by the
        #: data path through the leaf services.
        self.server_sessions = ServerSessionCounts()
        #: Health checkers of loadBalancer services; the data path reports attempts here.
        self.health = HealthChecks(reactor, observer=lambda: self.observer,
                                   sessions=self.open_relays)

    def default_key_pair(self) -> KeyPair:
        """The self-signed certificate served when nothing else matches, made on first need
        and kept for the life of the process (reloads do not change it)."""
        if self._generated_pair is None:
            self._generated_pair = generate_default_key_pair()
            log.info("generated the default TLS certificate (CN {cn})",
                     cn="WSGATE DEFAULT CERT")
        return self._generated_pair

    # -- building -------------------------------------------------------------------------------
    def apply(self, runtime: RuntimeConfig) -> None:
        """Build a routing table for ``runtime`` and make it current in one assignment."""
        transports = self._build_transports(runtime)
        #: Routers disabled because a middleware cannot be built (shown by the API).
        self._chain_errors: dict[str, str] = {}
        services: dict[str, tuple[Service | None, ProxyService]] = {}
        decisions: dict[tuple[str, tuple[str, ...]], RouteDecision | None] = {}
        muxers = {}
        for ep, routes in runtime.routes.items():
            for tls in (False, True):
                entries = []
                for route in routes:
                    if route.tls != tls or route.service is None:
                        continue
                    key = (route.router, route.middlewares)
                    if key in decisions:
                        decision = decisions[key]
                    else:
                        decision = self._decision(runtime, route.router, route.service,
                                                  services, transports,
                                                  ws=route.config.wsgate)
                        if decision is not None and route.middlewares:
                            decision = self._with_chain(runtime, decision, route.middlewares,
                                                        services, transports)
                        decisions[key] = decision
                    if decision is None:
                        continue
                    entries.append(Route(route.router, route.matcher,  # type: ignore[arg-type]
                                         route.priority, decision))
                if entries:
                    muxers[(ep, tls)] = build_muxer(entries)
        server_tls = build_server_tls(runtime, default_pair=self.default_key_pair,
                                      previous=self.server_tls)
        previous = self.runtime
        self._transports = transports
        self._services = services
        self.runtime = _disable_routers(runtime, self._chain_errors)
        self.server_tls = server_tls
        self.routing = RoutingTable(muxers)
        self.health.update(services)
        if previous is not None:
            self._close_removed_servers(previous, runtime)

    def _close_removed_servers(self, previous: RuntimeConfig, runtime: RuntimeConfig) -> None:
        """wsgate.closeOnServerRemoval: close (1001) the WebSockets of servers that the new
        configuration removed; the new configuration's flag decides, or the previous one's
        when the load balancer is gone. Without it sessions keep flowing (as in Traefik)."""
        for name, info in previous.services.items():
            old_lb = info.config.load_balancer if info.config is not None else None
            if old_lb is None:
                continue
            new_info = runtime.services.get(name)
            new_lb = None
            if new_info is not None and new_info.config is not None:
                new_lb = new_info.config.load_balancer
            policy = new_lb if new_lb is not None else old_lb
            if not policy.wsgate.close_on_server_removal:
                continue
            kept = {server.url for server in new_lb.servers} if new_lb is not None else set()
            for url in dict.fromkeys(server.url for server in old_lb.servers):
                if url in kept:
                    continue
                closed = self.open_relays.close_server(name, url, SERVER_REMOVED_CODE,
                                                       SERVER_REMOVED_REASON)
                if closed:
                    log.info("service {name}: server {url} removed; closing its {n} "
                             "WebSocket session(s) (closeOnServerRemoval)",
                             name=name, url=url, n=closed)

    def _build_transports(self, runtime: RuntimeConfig) -> dict[str, TransportRuntime]:
        out = {DEFAULT_TRANSPORT: self._transports[DEFAULT_TRANSPORT]}
        for name, info in runtime.servers_transports.items():
            old = self._transports.get(name)
            if old is not None and old.config == info.config:
                out[name] = old
            else:
                out[name] = TransportRuntime(name, info.config, self.reactor)
        return out

    @property
    def auth_client(self) -> Any:
        """The forwardAuth HTTP client, made on first use (keeps its own connection pool)."""
        if self._auth_client is None:
            from wsgate.middlewares.forward_auth_client import ForwardAuthClient
            self._auth_client = ForwardAuthClient(self.reactor)
        return self._auth_client

    def _with_chain(self, runtime: RuntimeConfig, decision: RouteDecision,
                    names: tuple[str, ...],
                    services: dict[str, tuple[Service | None, ProxyService]],
                    transports: dict[str, TransportRuntime]) -> RouteDecision | None:
        """The decision with its middleware chain and what the data path must do for it
        (:mod:`wsgate.proxy.dataplan`); None disables the router (as Traefik)."""
        try:
            chain = build_chain(names, runtime, router=decision.router,
                                clock=self.reactor.seconds,  # type: ignore[attr-defined]
                                cache=self._middleware_cache)
        except MiddlewareError as exc:
            self._chain_errors[decision.router] = str(exc)
            log.error("router {router} disabled: {error}", router=decision.router,
                      error=str(exc))
            return None
        for warning in chain.warnings:
            log.warn("router {router}: {warning}", router=decision.router, warning=warning)

        def resolve(name: str) -> ProxyService | None:
            service = self._service(runtime, name, services, transports, depth=0)
            if service is None:
                log.warn("router {router}: error page service {service} is not usable; its "
                         "errors middleware catches nothing", router=decision.router,
                         service=name)
            return service

        return dataclasses.replace(decision, chain=chain, plan=plan_for(chain, resolve))

    def _decision(self, runtime: RuntimeConfig, router: str, service_name: str,
                  services: dict[str, tuple[Service | None, ProxyService]],
                  transports: dict[str, TransportRuntime], *,
                  ws: RouterExtension | None = None) -> RouteDecision:
        factory = self.registry.get(service_name)
        if factory is not None:
            return RouteDecision(router, service_name, internal_factory=factory, ws=ws)
        service = self._service(runtime, service_name, services, transports, depth=0)
        return RouteDecision(router, service_name, service=service, ws=ws)

    def _service(self, runtime: RuntimeConfig, name: str,
                 services: dict[str, tuple[Service | None, ProxyService]],
                 transports: dict[str, TransportRuntime], depth: int) -> ProxyService | None:
        if name in services:
            return services[name][1]
        info: ServiceInfo | None = runtime.services.get(name)
        if info is None or info.config is None or depth > 16:
            return None
        config = info.config
        pools = {t.pool for t in transports.values()}
        previous = self._services.get(name)
        if previous is not None and previous[0] == config and \
                isinstance(previous[1], LeafService) and previous[1].pool in pools:
            services[name] = previous
            return previous[1]
        built: ProxyService | None = None
        if config.load_balancer is not None:
            built = self._leaf(name, info, transports)
        else:
            def child(ref: str) -> ProxyService | None:
                return self._service(runtime, ref, services, transports, depth + 1)

            built = build_composite(name, config, info.references, child)
        if built is not None:
            services[name] = (config, built)
        return built

    def _leaf(self, name: str, info: ServiceInfo,
              transports: dict[str, TransportRuntime]) -> LeafService | None:
        assert info.config is not None and info.config.load_balancer is not None
        lb = info.config.load_balancer
        addresses: dict[str, BackendAddress] = {}
        backends: list[Backend] = []
        for server in lb.servers:
            if server.effective_weight <= 0:
                continue
            try:
                address = parse_backend_url(server.url)
            except ValueError as exc:
                log.error("service {name}: {exc}", name=name, exc=exc)
                continue
            if server.url in addresses:
                continue
            addresses[server.url] = address
            backends.append(Backend(server.url, server.effective_weight))
        transport = transports.get(info.servers_transport or DEFAULT_TRANSPORT)
        if transport is None:
            transport = transports[DEFAULT_TRANSPORT]
        try:
            balancer = build_load_balancer(lb.strategy, backends, rng=random.Random(),
                                           sticky=sticky_cookie(name, lb.sticky))
        except (UnsupportedStrategyError, ValueError) as exc:
            log.error("service {name} cannot be used: {error}; its routers answer 503",
                      name=name, error=str(exc))
            return None
        return LeafService(name, balancer, addresses, pass_host_header=lb.pass_host_header,
                           pool=transport.pool, connector=self.connector,
                           dial_timeout=transport.dial_timeout,
                           response_header_timeout=transport.response_header_timeout,
                           tls_context=transport.tls_context, sessions=self.server_sessions,
                           max_sessions=lb.wsgate.max_connections_per_server)

    def close_idle(self) -> None:
        for transport in self._transports.values():
            transport.pool.close_all()


