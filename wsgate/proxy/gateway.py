"""The gateway: the current routing table and the long-lived objects behind it.

A new runtime configuration becomes a new RoutingTable, assigned in one statement. Services
whose configuration did not change keep their balancer (health, round-robin position, open
connection counts) and transports keep their idle pools, so a reload disturbs nothing that
it does not change. Live relays hold their own references and never notice.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import ssl
from twisted.internet.interfaces import IReactorTCP
from twisted.logger import Logger

from wsgate.config.dynamic import ServersTransport as DynamicServersTransport
from wsgate.config.dynamic import Service
from wsgate.config.runtime import RuntimeConfig, ServiceInfo
from wsgate.config.static import ServersTransport as StaticServersTransport
from wsgate.internal.registry import ServiceRegistry
from wsgate.proxy.backend import BackendAddress, BackendPool, Connector, parse_backend_url
from wsgate.proxy.balancer import Backend, build_load_balancer
from wsgate.proxy.routing import (
    LeafService,
    ProxyService,
    RouteDecision,
    RoutingTable,
    WeightedService,
)
from wsgate.rules import Route, build_muxer

log = Logger()

DEFAULT_TRANSPORT = "default@internal"


class TransportRuntime:
    """A serversTransport at run time: timeouts, its idle pool and TLS settings."""

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

    def tls_context(self, address: BackendAddress) -> Any:
        if not address.tls:
            return None
        # Full verification options (serverName, rootCAs, mTLS, insecureSkipVerify) are built
        # by wsgate.tls; until a transport asks for more, verify against the platform's CAs.
        server_name = getattr(self.config, "server_name", "") or address.host
        return ssl.optionsForClientTLS(server_name)


class Gateway:
    """Holds what the data path reads; ``apply`` swaps in a new configuration."""

    def __init__(self, reactor: IReactorTCP, registry: ServiceRegistry,
                 default_transport: StaticServersTransport) -> None:
        self.reactor = reactor
        self.registry = registry
        self.connector = Connector(reactor)
        self.routing = RoutingTable.empty()
        self.runtime: RuntimeConfig | None = None
        self._transports: dict[str, TransportRuntime] = {
            DEFAULT_TRANSPORT: TransportRuntime(DEFAULT_TRANSPORT, default_transport, reactor)}
        self._services: dict[str, tuple[Service | None, ProxyService]] = {}

    # -- building -------------------------------------------------------------------------------
    def apply(self, runtime: RuntimeConfig) -> None:
        """Build a routing table for ``runtime`` and make it current in one assignment."""
        transports = self._build_transports(runtime)
        services: dict[str, tuple[Service | None, ProxyService]] = {}
        decisions: dict[str, RouteDecision] = {}
        muxers = {}
        for ep, routes in runtime.routes.items():
            for tls in (False, True):
                entries = []
                for route in routes:
                    if route.tls != tls or route.service is None:
                        continue
                    decision = decisions.get(route.router)
                    if decision is None:
                        decision = self._decision(runtime, route.router, route.service,
                                                  services, transports)
                        decisions[route.router] = decision
                    entries.append(Route(route.router, route.matcher,  # type: ignore[arg-type]
                                         route.priority, decision))
                if entries:
                    muxers[(ep, tls)] = build_muxer(entries)
        self._transports = transports
        self._services = services
        self.runtime = runtime
        self.routing = RoutingTable(muxers)

    def _build_transports(self, runtime: RuntimeConfig) -> dict[str, TransportRuntime]:
        out = {DEFAULT_TRANSPORT: self._transports[DEFAULT_TRANSPORT]}
        for name, info in runtime.servers_transports.items():
            old = self._transports.get(name)
            if old is not None and old.config == info.config:
                out[name] = old
            else:
                out[name] = TransportRuntime(name, info.config, self.reactor)
        return out

    def _decision(self, runtime: RuntimeConfig, router: str, service_name: str,
                  services: dict[str, tuple[Service | None, ProxyService]],
                  transports: dict[str, TransportRuntime]) -> RouteDecision:
        factory = self.registry.get(service_name)
        if factory is not None:
            return RouteDecision(router, service_name, internal_factory=factory)
        service = self._service(runtime, service_name, services, transports, depth=0)
        return RouteDecision(router, service_name, service=service)

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
        elif config.weighted is not None:
            children = []
            for ref, child_cfg in zip(info.references, config.weighted.services):
                child = self._service(runtime, ref, services, transports, depth + 1)
                if child is not None and child_cfg.weight > 0:
                    children.append((ref, child_cfg.weight, child))
            if children:
                built = WeightedService(name, children, rng=random.Random())
        else:
            log.error("service {name}: {kind} services are not supported by wsgate yet; its "
                      "routers answer 503", name=name, kind=info.kind)
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
        balancer = build_load_balancer(lb.strategy, backends, rng=random.Random())
        return LeafService(name, balancer, addresses, pass_host_header=lb.pass_host_header,
                           pool=transport.pool, connector=self.connector,
                           dial_timeout=transport.dial_timeout,
                           response_header_timeout=transport.response_header_timeout,
                           tls_context=transport.tls_context)

    def close_idle(self) -> None:
        for transport in self._transports.values():
            transport.pool.close_all()


