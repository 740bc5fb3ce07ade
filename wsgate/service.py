"""The twisted.application service tree of a running wsgate.

``WsgateService`` is what ``twistd wsgate`` runs and what a library user mounts in their own
application: it owns the gateway (routing state), one listening port per entryPoint, and the
providers that feed it configuration.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from wsgate.config import dynamic
from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import ConfigError, Mark
from wsgate.config.runtime import EntryPointSpec, RuntimeConfig, build_runtime
from wsgate.config.schema import Decoded, decode
from wsgate.config.static import EntryPoint, Log, StaticConfig
from wsgate.config.static_sources import LoadedStatic
from wsgate.config.tree import from_plain
from wsgate.internal.registry import ServiceRegistry, default_registry
from wsgate.ops.logs import make_log_observer
from wsgate.ops.wiring import (
    build_internal_services,
    build_observer,
    internal_configuration,
    set_terminating,
    stop_internal_services,
)
from wsgate.providers.file import FileProvider
from wsgate.providers.registry import Provider, api_providers
from wsgate.proxy.drain import Drain, SignalsWhileStopping
from wsgate.proxy.entrypoint import EntryPointFactory, EntryPointRuntime
from wsgate.proxy.gateway import Gateway
from wsgate.proxy.listener import ListenerService

log = Logger()

#: With no configuration at all, wsgate serves this so that a first run does something useful.
EMBEDDED_ADDRESS = "127.0.0.1:8000"
EMBEDDED_DYNAMIC = {
    "http": {
        "routers": {
            "echo": {"rule": "PathPrefix(`/echo`)", "service": "echo@internal",
                     "entryPoints": ["web"]},
        },
    },
}


def embedded_static() -> StaticConfig:
    # A first run with nothing configured shows what it does (Traefik's default is ERROR).
    return StaticConfig(entry_points={"web": EntryPoint(address=EMBEDDED_ADDRESS)},
                        log=Log(level="INFO"))


def redirection_configuration(static: StaticConfig, ports: dict[str, int] | None = None
                              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Routers and middlewares for ``entryPoints.<name>.http.redirections``, as Traefik makes
    them: a catch-all router on the entryPoint, at the configured priority, whose
    redirectScheme middleware sends the client to the target entryPoint's port."""
    routers: dict[str, Any] = {}
    middlewares: dict[str, Any] = {}
    for name, ep in static.entry_points.items():
        redirections = ep.http.redirections
        if redirections is None or redirections.entry_point is None:
            continue
        target = redirections.entry_point
        if target.to.startswith(":"):
            port = target.to[1:]
        else:
            port = str((ports or {}).get(target.to) or static.entry_points[target.to].listen.port)
        suffix = target.to.lstrip(":")
        middleware = f"redirect-{name}-to-{suffix}"
        middlewares[middleware] = {"redirectScheme": {
            "scheme": target.scheme, "port": port, "permanent": target.permanent}}
        routers[f"{name}-to-{suffix}"] = {
            "rule": "HostRegexp(`^.+$`)", "entryPoints": [name],
            "middlewares": [middleware], "service": "noop@internal",
            "priority": target.priority}
    return routers, middlewares


def to_dynamic_transport(static: Any) -> dynamic.ServersTransport:
    """The static serversTransport as the default@internal dynamic transport."""
    timeouts = static.forwarding_timeouts
    return dynamic.ServersTransport(
        insecure_skip_verify=static.insecure_skip_verify,
        root_cas=tuple(static.root_cas),
        max_idle_conns_per_host=static.max_idle_conns_per_host,
        forwarding_timeouts=dynamic.ForwardingTimeouts(
            dial_timeout=timeouts.dial_timeout,
            response_header_timeout=timeouts.response_header_timeout,
            idle_conn_timeout=timeouts.idle_conn_timeout))


class WsgateService(MultiService):
    """A whole wsgate: entryPoints, providers and the gateway between them."""

    def __init__(self, static: StaticConfig, *, reactor: Any = None,
                 registry: ServiceRegistry | None = None, strict: bool = False,
                 embedded: bool = False) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        self.static = static
        self.strict = strict
        self.registry = registry or default_registry()
        # The static serversTransport is default@internal, in the same dynamic form the
        # runtime configuration gives it, so that the first reload keeps it (and its idle
        # pool and client TLS) instead of rebuilding it.
        self.gateway = Gateway(reactor, self.registry,
                               to_dynamic_transport(static.servers_transport))
        self.provided: dict[str, Decoded[DynamicConfig]] = {}
        self.entrypoints: dict[str, EntryPointRuntime] = {}
        self.listeners: dict[str, ListenerService] = {}
        self.providers: list[Provider] = []
        self.drain: Drain | None = None
        self.signals: SignalsWhileStopping | None = None
        # Operations: metrics, access log and live counts see every request and session;
        # api, dashboard, ping and prometheus are in-process services on their entryPoints.
        self.observer = build_observer(static, reactor=reactor)
        self.gateway.observer = self.observer
        self.ops_services = build_internal_services(
            static, lambda: self.gateway.runtime, self.observer, reactor=reactor)
        for name, factory in self.ops_services.items():
            self.registry.register(name, factory)
        internal_routers: dict[str, Any] = dict(internal_configuration(static).get(
            "http", {}).get("routers", {}))
        if embedded:
            internal_routers.update(EMBEDDED_DYNAMIC["http"]["routers"])
        self._internal_routers = internal_routers
        self._internal_mark = Mark("embedded default" if embedded else "internal routers")
        self._set_internal_provider()
        self._build_entrypoints()
        self._build_providers()

    def _set_internal_provider(self, ports: dict[str, int] | None = None) -> None:
        """wsgate's own routers (ops endpoints, embedded default, entryPoint redirections)."""
        routers = dict(self._internal_routers)
        redirect_routers, redirect_middlewares = redirection_configuration(self.static, ports)
        routers.update(redirect_routers)
        if not routers:
            return
        decoded = decode(DynamicConfig, from_plain(
            {"http": {"routers": routers, "middlewares": redirect_middlewares}},
            self._internal_mark))
        # Traefik's internal routers carry ruleSyntax "default", which the decoder flags as
        # deprecated: a warning about wsgate's own routers, which no user can act on, would be
        # logged at every start and listed by the API and dashboard.
        self.provided["internal"] = dataclasses.replace(decoded, warnings=())

    # -- construction ---------------------------------------------------------------------------
    def _build_entrypoints(self) -> None:
        for name, ep in self.static.entry_points.items():
            if ep.is_udp:
                log.warn("entryPoint {name}: UDP is not served by wsgate; skipped", name=name)
                continue
            listen = ep.listen
            timeouts = ep.transport.responding_timeouts
            headers = ep.forwarded_headers
            runtime = EntryPointRuntime(
                self.gateway, name, max_header_bytes=ep.http.max_header_bytes,
                read_timeout=float(timeouts.read_timeout),
                idle_timeout=float(timeouts.idle_timeout),
                trusted_ips=headers.trusted_ips, insecure=headers.insecure,
                not_append_xff=headers.not_append_x_forwarded_for)
            runtime.sanitize_path = ep.http.sanitize_path
            runtime.encode_query_semicolons = ep.http.encode_query_semicolons
            self.entrypoints[name] = runtime
            listener = ListenerService(self.reactor, name, listen.host, listen.port,
                                       EntryPointFactory(runtime), reuse_port=ep.reuse_port)
            listener.setServiceParent(self)
            self.listeners[name] = listener

    def _build_providers(self) -> None:
        file_cfg = self.static.providers.file
        if file_cfg is not None:
            self.providers.append(FileProvider(
                self.reactor, file_cfg.filename, file_cfg.directory, watch=file_cfg.watch,
                on_change=lambda decoded: self._provider_changed("file", decoded),
                strict=self.strict))
        self.providers.extend(api_providers(self.static.providers, self.reactor,
                                            self._provider_changed, strict=self.strict))

    # -- configuration --------------------------------------------------------------------------
    def _entrypoint_specs(self) -> list[EntryPointSpec]:
        specs = []
        for name, ep in self.static.entry_points.items():
            if ep.is_udp:
                continue
            tls = None
            if ep.http.tls is not None:
                tls = dynamic.RouterTLS(options=ep.http.tls.options or "default",
                                        cert_resolver=ep.http.tls.cert_resolver)
            specs.append(EntryPointSpec(name, middlewares=tuple(ep.http.middlewares), tls=tls,
                                        as_default=ep.as_default))
        return specs

    def build_runtime(self) -> RuntimeConfig:
        return build_runtime(
            dict(self.provided),
            entry_points=self._entrypoint_specs(),
            default_rule_syntax=self.static.core.default_rule_syntax,
            internal_services=("noop@internal", *self.registry.names()),
            default_servers_transport=to_dynamic_transport(self.static.servers_transport))

    def _provider_changed(self, provider: str, decoded: Decoded[DynamicConfig]) -> None:
        self.provided[provider] = decoded
        if self.running or self._configured:
            self.reconfigure()

    _configured = False

    def reconfigure(self) -> None:
        """Merge what every provider gave and swap it in."""
        try:
            runtime = self.build_runtime()
        except ConfigError as exc:
            log.error("configuration rejected; keeping the previous one:\n{errors}",
                      errors=str(exc))
            self.observer.config_reloaded(False)
            return
        for router in runtime.routers.values():
            for diag in router.errors:
                log.error("router {name} ({status}): {diag}", name=router.name,
                          status=router.status, diag=str(diag))
        for service in runtime.services.values():
            for diag in service.errors:
                log.error("service {name} ({status}): {diag}", name=service.name,
                          status=service.status, diag=str(diag))
        for diag in runtime.diagnostics:
            log.warn("{diag}", diag=str(diag))
        self.gateway.apply(runtime)
        self.observer.runtime_changed(runtime)
        self.observer.config_reloaded(True)
        self._configured = True
        log.info("configuration applied: {routers} routers, {services} services",
                 routers=len(runtime.routers), services=len(runtime.services))

    def register_service(self, name: str, factory: IProtocolFactory) -> None:
        """Serve ``name@internal`` with ``factory``; routers can name it right away."""
        self.registry.register(name, factory)
        if self._configured:
            self.reconfigure()

    # -- lifecycle ------------------------------------------------------------------------------
    def privilegedStartService(self) -> None:
        self._load_configuration()
        super().privilegedStartService()

    def startService(self) -> None:
        if not self._configured:
            self._load_configuration()
        super().startService()
        # A redirection to an entryPoint bound to port 0 learns its real port only now.
        if any(ep.listen.port == 0 for ep in self.static.entry_points.values()
               if not ep.is_udp) and any(
                ep.http.redirections is not None for ep in self.static.entry_points.values()):
            self._set_internal_provider({name: listener.bound_port
                                         for name, listener in self.listeners.items()
                                         if listener.listening is not None})
            self.reconfigure()
        for provider in self.providers:
            provider.start()
        if self.signals is None:
            # The reactor installs its signal handlers as it starts running: wrap them then.
            self.signals = SignalsWhileStopping(self.reactor, self._shutdown_state)
            self.reactor.callWhenRunning(self.signals.install)
        log.info("wsgate ready")

    def _shutdown_state(self) -> str:
        return self.drain.describe() if self.drain is not None else "already shutting down"

    def _load_configuration(self) -> None:
        for provider in self.providers:
            provider.load()
        self.reconfigure()

    def setServiceParent(self, parent: Any) -> None:
        # Under twistd the application's log observer is used unless --logger is given:
        # wsgate's own (log.level, log.format, log.filePath).
        if isinstance(parent, Componentized) and parent.getComponent(ILogObserver) is None:
            parent.setComponent(ILogObserver, make_log_observer(self.static.log))
        super().setServiceParent(parent)

    def stopService(self) -> Any:
        """Graceful shutdown (see wsgate.proxy.drain): /ping fails first, WebSockets get
        1001, requests in flight finish, within each entryPoint's lifeCycle."""
        for provider in self.providers:
            provider.stop()
        set_terminating(self.ops_services)
        life = [ep.transport.life_cycle for ep in self.static.entry_points.values()]
        self.drain = Drain(
            self.reactor, self.entrypoints.values(),
            accept_grace=max((float(lc.request_accept_grace_timeout) for lc in life),
                             default=0.0),
            grace=max((float(lc.grace_time_out) for lc in life), default=10.0),
            stop_listening=lambda: MultiService.stopService(self))

        def finished(result: Any) -> Any:
            self.gateway.health.stop()
            stop_internal_services(self.ops_services)
            self.gateway.close_idle()
            self.observer.close()
            return result

        return self.drain.run().addBoth(finished)

    def port_of(self, entrypoint: str) -> int:
        """The bound port of an entryPoint (for addresses given with port 0)."""
        return self.listeners[entrypoint].bound_port


def build_service(loaded: LoadedStatic, *, reactor: Any = None,
                  registry: ServiceRegistry | None = None) -> WsgateService:
    """The service for a loaded static configuration (the embedded default when none)."""
    for warning in loaded.warnings:
        log.warn("{warning}", warning=str(warning))
    embedded = loaded.kind == "defaults"
    static = embedded_static() if embedded else loaded.config
    if embedded:
        log.info("no configuration found: serving the embedded default on {addr} "
                 "(PathPrefix(`/echo`) -> echo@internal)", addr=EMBEDDED_ADDRESS)
    else:
        log.info("static configuration from {source}", source=loaded.source)
    return WsgateService(static, reactor=reactor, registry=registry, strict=loaded.strict,
                         embedded=embedded)


__all__ = ["WsgateService", "build_service"]
