"""From the dynamic configurations of every provider to the one immutable configuration the
proxy runs.

:func:`build_runtime` qualifies every object name as ``name@provider``, merges the providers,
resolves references (a bare reference names an object of the referencing object's provider),
checks them as Traefik does, compiles every router rule once, and lays the routers out per
entryPoint. A broken reference never stops the rest: the object concerned is disabled with an
error attached (file, key path and line when the provider's decoding marks are given), and
everything else runs. The API shows these statuses as Traefik's does.

What comes from the static configuration is passed in as plain values (:class:`EntryPointSpec`,
the default rule syntax, the internal services), so this module does not depend on the static
model.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from wsgate.config.dynamic import (
    MAX_USER_PRIORITY,
    DynamicConfig,
    Middleware,
    Router,
    RouterTLS,
    ServersTransport,
    Service,
    TLSCertificate,
    TLSOptions,
    TLSStore,
)
from wsgate.config.errors import Diagnostic, Mark
from wsgate.config.schema import Decoded

Status = Literal["enabled", "disabled", "warning"]
ENABLED: Status = "enabled"
DISABLED: Status = "disabled"
WARNING: Status = "warning"

#: The TLS options and store used when a router names none; never qualified by a provider.
DEFAULT_TLS_NAME = "default"
#: The serversTransport of a load balancer that names none (built from the static config).
DEFAULT_SERVERS_TRANSPORT = "default@internal"
#: EntryPoint reserved for the API, dashboard, ping and metrics; never a default one.
INTERNAL_ENTRY_POINT = "traefik"
#: Traefik's default provider precedence: on equal priority, the first listed wins.
DEFAULT_PROVIDERS_PRECEDENCE = (
    "kubernetesgateway", "kubernetescrd", "kubernetes", "kubernetesingressnginx", "swarm",
    "docker", "file", "redis", "knative", "consul", "consulcatalog", "nomad", "etcd", "ecs",
    "http", "zookeeper", "rest",
)

RuleCompiler = Callable[[str, str], object]
PriorityFunction = Callable[[str], int]
ProviderInput = DynamicConfig | Decoded[DynamicConfig]


# =========================================================================== names

def qualify(name: str, provider: str) -> str:
    """``name`` as a reference made from ``provider``: bare names resolve in that provider."""
    return name if "@" in name else f"{name}@{provider}"


def provider_of(qualified: str) -> str:
    """The provider part of ``name@provider`` (empty for a bare name)."""
    return qualified.rpartition("@")[2] if "@" in qualified else ""


def default_entry_point_names(entry_points: Iterable[EntryPointSpec]) -> tuple[str, ...]:
    """The entryPoints of a router that names none, as Traefik chooses them.

    Those marked ``asDefault`` if any are, else all of them except the internal ``traefik``
    one; sorted. Give only TCP entryPoints: HTTP routers never run on UDP ones.
    """
    eps = list(entry_points)
    chosen = [ep for ep in eps if ep.as_default] or eps
    return tuple(sorted(ep.name for ep in chosen if ep.name != INTERNAL_ENTRY_POINT))


# =========================================================================== inputs

@dataclass(frozen=True)
class EntryPointSpec:
    """What the routing needs to know about one (TCP) entryPoint of the static config.

    ``middlewares`` and ``tls`` are the entryPoint's ``http.middlewares`` (prepended to the
    middlewares of every router on it) and ``http.tls`` (applied to routers without ``tls``).
    """

    name: str
    middlewares: tuple[str, ...] = ()
    tls: RouterTLS | None = None
    as_default: bool = False


# =========================================================================== outputs

@dataclass(frozen=True)
class RouterInfo:
    """A router as it runs: its configuration, resolved references and status."""

    name: str
    provider: str
    config: Router
    status: Status
    errors: tuple[Diagnostic, ...]
    #: The entryPoints asked for (the router's own or the defaults).
    entry_points: tuple[str, ...]
    #: The entryPoints it actually runs on, sorted.
    using: tuple[str, ...]
    service: str | None
    middlewares: tuple[str, ...]
    tls_options: str | None
    rule_syntax: str
    priority: int
    parent_refs: tuple[str, ...] = ()
    child_refs: tuple[str, ...] = ()

    @property
    def tls(self) -> bool:
        return self.config.tls is not None

    @property
    def error_messages(self) -> tuple[str, ...]:
        return tuple(d.message for d in self.errors)


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    provider: str
    #: None for internal services (api@internal, ...), which have no configuration.
    config: Service | None
    kind: str
    status: Status
    errors: tuple[Diagnostic, ...]
    used_by: tuple[str, ...]
    #: Qualified serversTransport of a load balancer (default@internal when unnamed).
    servers_transport: str | None = None
    #: Qualified services a weighted/mirroring/failover/highestRandomWeight one forwards to.
    references: tuple[str, ...] = ()
    middlewares: tuple[str, ...] = ()

    @property
    def error_messages(self) -> tuple[str, ...]:
        return tuple(d.message for d in self.errors)


@dataclass(frozen=True)
class MiddlewareInfo:
    name: str
    provider: str
    config: Middleware
    kind: str
    status: Status
    errors: tuple[Diagnostic, ...]
    used_by: tuple[str, ...]
    #: Qualified middlewares of a chain.
    references: tuple[str, ...] = ()
    #: Qualified service of an errors middleware.
    service: str | None = None

    @property
    def error_messages(self) -> tuple[str, ...]:
        return tuple(d.message for d in self.errors)


@dataclass(frozen=True)
class ServersTransportInfo:
    name: str
    provider: str
    config: ServersTransport
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class ProvidedCertificate:
    provider: str
    certificate: TLSCertificate


@dataclass(frozen=True)
class Route:
    """One router on one entryPoint: what the data path turns into a muxer entry."""

    router: str
    provider: str
    entry_point: str
    rule: str
    rule_syntax: str
    #: The compiled rule (wsgate.rules.CompiledRule), compiled once per configuration.
    matcher: object
    priority: int
    #: True: matches TLS connections only; False: plain ones only.
    tls: bool
    #: Qualified TLS options name when ``tls`` (``default`` stays unqualified).
    tls_options: str | None
    #: The effective router TLS settings (the router's, else the entryPoint's).
    tls_config: RouterTLS | None
    #: Qualified middlewares in order: the entryPoint's first, then the router's.
    middlewares: tuple[str, ...]
    service: str | None
    config: Router
    #: Child routers (parentRefs) tried, in order, once this route matched.
    children: tuple[Route, ...] = ()


@dataclass(frozen=True)
class RuntimeConfig:
    """The one configuration the proxy runs; a new configuration is a new object."""

    routers: Mapping[str, RouterInfo] = field(default_factory=lambda: _frozen({}))
    services: Mapping[str, ServiceInfo] = field(default_factory=lambda: _frozen({}))
    middlewares: Mapping[str, MiddlewareInfo] = field(default_factory=lambda: _frozen({}))
    servers_transports: Mapping[str, ServersTransportInfo] = field(
        default_factory=lambda: _frozen({}))
    tls_options: Mapping[str, TLSOptions] = field(default_factory=lambda: _frozen({}))
    tls_stores: Mapping[str, TLSStore] = field(default_factory=lambda: _frozen({}))
    tls_certificates: tuple[ProvidedCertificate, ...] = ()
    #: Per entryPoint (every known one is present), routes sorted as they are tried.
    routes: Mapping[str, tuple[Route, ...]] = field(default_factory=lambda: _frozen({}))
    entry_points: tuple[str, ...] = ()
    default_entry_points: tuple[str, ...] = ()
    #: Problems not tied to one object (decoding warnings, conflicting defaults).
    diagnostics: tuple[Diagnostic, ...] = ()

    def routes_for(self, entry_point: str, tls: bool) -> tuple[Route, ...]:
        """The routes tried for a connection on ``entry_point``, TLS or plain."""
        return tuple(r for r in self.routes.get(entry_point, ()) if r.tls == tls)


def _frozen(d: dict[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(d)


# =========================================================================== working state

class _Obj:
    """A mutable record of one object while the runtime is being built."""

    def __init__(self, kind: str, name: str, provider: str, path: str,
                 marks: Mapping[str, Mark]) -> None:
        self.kind = kind
        self.name = name
        self.provider = provider
        self.path = path
        self.marks = marks
        self.errors: list[Diagnostic] = []
        self.disabled = False
        self.in_cycle = False
        self.used_by: list[str] = []

    def error(self, message: str, key: str = "", *, critical: bool = True) -> None:
        if any(d.message == message for d in self.errors):
            return
        path = f"{self.path}.{key}" if key else self.path
        mark = self.marks.get(path) or self._nearest_mark(path)
        self.errors.append(Diagnostic(message, path, mark, "error" if critical else "warning"))
        if critical:
            self.disabled = True

    def _nearest_mark(self, path: str) -> Mark | None:
        while path:
            if path in self.marks:
                return self.marks[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                break
            path = path[:cut]
        return None

    @property
    def status(self) -> Status:
        if self.disabled:
            return DISABLED
        return WARNING if self.errors else ENABLED

    def use(self, user: str) -> None:
        if user not in self.used_by:
            self.used_by.append(user)

    def reason(self) -> str:
        return "; ".join(d.message for d in self.errors if d.level == "error")


_NodeKey = tuple[str, str]  # ("service" | "middleware", qualified name)


class _Builder:
    def __init__(self, providers: Mapping[str, ProviderInput], *,
                 entry_points: Sequence[EntryPointSpec], default_entry_points: Sequence[str],
                 default_rule_syntax: str, internal_services: Iterable[str],
                 default_servers_transport: ServersTransport,
                 providers_precedence: Sequence[str], compile_rule: RuleCompiler,
                 default_priority: PriorityFunction) -> None:
        self.entry_points = {ep.name: ep for ep in entry_points}
        self.default_entry_points = tuple(default_entry_points)
        self.default_rule_syntax = default_rule_syntax
        self.precedence = {name: i for i, name in enumerate(providers_precedence)}
        self.compile_rule = compile_rule
        self.default_priority = default_priority
        self.diagnostics: list[Diagnostic] = []

        self.configs: dict[str, tuple[DynamicConfig, Mapping[str, Mark]]] = {}
        for provider in sorted(providers):
            if not provider or "@" in provider:
                raise ValueError(f"invalid provider name {provider!r}")
            config, marks, warnings = _unpack(providers[provider])
            self.configs[provider] = (config, marks)
            self.diagnostics.extend(warnings)

        self.routers: dict[str, _Obj] = {}
        self.router_configs: dict[str, Router] = {}
        self.services: dict[str, _Obj] = {}
        self.service_configs: dict[str, Service | None] = {}
        self.middlewares: dict[str, _Obj] = {}
        self.middleware_configs: dict[str, Middleware] = {}
        self.transports: dict[str, tuple[str, ServersTransport, list[str]]] = {}
        self.tls_options: dict[str, TLSOptions] = {}
        self.tls_stores: dict[str, TLSStore] = {}
        self.certificates: list[ProvidedCertificate] = []

        # resolved references, filled while checking
        self.router_service: dict[str, str | None] = {}
        self.router_middlewares: dict[str, list[str]] = {}
        self.router_tls_options: dict[str, str | None] = {}
        self.router_syntax: dict[str, str] = {}
        self.router_priority: dict[str, int] = {}
        self.router_eps: dict[str, tuple[str, ...]] = {}
        self.router_parents: dict[str, list[str]] = {}
        self.router_children: dict[str, list[str]] = {}
        self.child_using: dict[str, set[str]] = {}
        self.service_refs: dict[str, list[str]] = {}
        self.service_transport: dict[str, str] = {}
        self.service_middlewares: dict[str, list[str]] = {}
        self.middleware_refs: dict[str, list[str]] = {}
        self.middleware_service: dict[str, str] = {}

        self._collect(internal_services, default_servers_transport)

    # ----------------------------------------------------------------------- merge

    def _collect(self, internal_services: Iterable[str],
                 default_servers_transport: ServersTransport) -> None:
        default_options_from: list[str] = []
        default_store_from: list[str] = []
        for provider, (config, marks) in self.configs.items():
            http = config.http
            for name, router in http.routers.items():
                if self._bad_name(name, f"http.routers.{name}", marks):
                    continue
                q = qualify(name, provider)
                self.routers[q] = _Obj("router", q, provider, f"http.routers.{name}", marks)
                self.router_configs[q] = router
            for name, service in http.services.items():
                if self._bad_name(name, f"http.services.{name}", marks):
                    continue
                q = qualify(name, provider)
                self.services[q] = _Obj("service", q, provider, f"http.services.{name}", marks)
                self.service_configs[q] = service
            for name, middleware in http.middlewares.items():
                if self._bad_name(name, f"http.middlewares.{name}", marks):
                    continue
                q = qualify(name, provider)
                self.middlewares[q] = _Obj("middleware", q, provider,
                                           f"http.middlewares.{name}", marks)
                self.middleware_configs[q] = middleware
            for name, transport in http.servers_transports.items():
                if self._bad_name(name, f"http.serversTransports.{name}", marks):
                    continue
                self.transports[qualify(name, provider)] = (provider, transport, [])

            tls = config.tls
            self.certificates.extend(ProvidedCertificate(provider, c) for c in tls.certificates)
            for name, options in tls.options.items():
                if self._bad_name(name, f"tls.options.{name}", marks):
                    continue
                if name == DEFAULT_TLS_NAME:
                    default_options_from.append(provider)
                    self.tls_options[name] = options
                else:
                    self.tls_options[qualify(name, provider)] = options
            for name, store in tls.stores.items():
                if self._bad_name(name, f"tls.stores.{name}", marks):
                    continue
                if name == DEFAULT_TLS_NAME:
                    default_store_from.append(provider)
                    self.tls_stores[name] = store
                else:
                    self.tls_stores[qualify(name, provider)] = store

        if not default_options_from:
            self.tls_options[DEFAULT_TLS_NAME] = TLSOptions()
        elif len(default_options_from) > 1:
            del self.tls_options[DEFAULT_TLS_NAME]
            self.diagnostics.append(Diagnostic(
                "the default TLS options are defined by several providers ("
                + ", ".join(default_options_from) + "): none of them is used",
                f"tls.options.{DEFAULT_TLS_NAME}"))
        if len(default_store_from) > 1:
            del self.tls_stores[DEFAULT_TLS_NAME]
            self.diagnostics.append(Diagnostic(
                "the default TLS store is defined by several providers ("
                + ", ".join(default_store_from) + "): none of them is used",
                f"tls.stores.{DEFAULT_TLS_NAME}"))

        if DEFAULT_SERVERS_TRANSPORT not in self.transports:
            self.transports[DEFAULT_SERVERS_TRANSPORT] = ("internal", default_servers_transport,
                                                          [])
        for name in internal_services:
            q = qualify(name, "internal")
            if q not in self.services:
                self.services[q] = _Obj("service", q, provider_of(q), "", {})
                self.service_configs[q] = None

    def _bad_name(self, name: str, path: str, marks: Mapping[str, Mark]) -> bool:
        if "@" not in name:
            return False
        self.diagnostics.append(Diagnostic(
            f"a name cannot contain '@' where it is defined: {name!r} is ignored", path,
            marks.get(path)))
        return True

    # ----------------------------------------------------------------------- services

    def check_services_and_middlewares(self) -> None:
        edges: dict[_NodeKey, list[tuple[_NodeKey, str]]] = {}
        for q, obj in self.services.items():
            config = self.service_configs[q]
            out: list[tuple[_NodeKey, str]] = []
            edges[("service", q)] = out
            if config is None:
                continue
            refs = []
            for rel, ref in config.references():
                target = qualify(ref, obj.provider)
                refs.append(target)
                if target not in self.services:
                    obj.error(f'the service "{target}" does not exist', rel)
                else:
                    self.services[target].use(q)
                    out.append((("service", target), rel))
            self.service_refs[q] = refs
            mids = []
            for i, ref in enumerate(config.middlewares):
                target = qualify(ref, obj.provider)
                mids.append(target)
                rel = f"middlewares[{i}]"
                if target not in self.middlewares:
                    obj.error(f'middleware "{target}" does not exist', rel)
                else:
                    self.middlewares[target].use(q)
                    out.append((("middleware", target), rel))
            self.service_middlewares[q] = mids
            self._check_health_reports(obj, config)
            lb = config.load_balancer
            if lb is not None:
                if lb.servers_transport:
                    transport = qualify(lb.servers_transport, obj.provider)
                else:
                    transport = DEFAULT_SERVERS_TRANSPORT
                self.service_transport[q] = transport
                if transport not in self.transports:
                    obj.error(f'serversTransport "{transport}" does not exist',
                              "loadBalancer.serversTransport")
                else:
                    self.transports[transport][2].append(q)
                if lb.health_check is not None and lb.health_check.mode == "grpc":
                    obj.error("healthCheck.mode grpc is not supported by wsgate (the gRPC "
                              "health protocol needs HTTP/2): its servers are not actively "
                              "checked", "loadBalancer.healthCheck.mode", critical=False)

        for q, obj in self.middlewares.items():
            mconfig = self.middleware_configs[q]
            out = []
            edges[("middleware", q)] = out
            if mconfig.plugin is not None:
                obj.error("plugins are not supported by wsgate", "plugin")
            if mconfig.chain is not None:
                refs = []
                for i, ref in enumerate(mconfig.chain.middlewares):
                    target = qualify(ref, obj.provider)
                    refs.append(target)
                    rel = f"chain.middlewares[{i}]"
                    if target not in self.middlewares:
                        obj.error(f'middleware "{target}" does not exist', rel)
                    else:
                        self.middlewares[target].use(q)
                        out.append((("middleware", target), rel))
                self.middleware_refs[q] = refs
            if mconfig.errors is not None:
                target = qualify(mconfig.errors.service, obj.provider)
                self.middleware_service[q] = target
                if target not in self.services:
                    obj.error(f'the service "{target}" does not exist', "errors.service")
                else:
                    self.services[target].use(q)
                    out.append((("service", target), "errors.service"))

        self._propagate(edges)

    def _reports_health(self, q: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether service ``q`` tells its parents when it has no server left, as Traefik's
        services do: a loadBalancer with a healthCheck, a weighted, highestRandomWeight or
        failover service with one, a mirroring service with one whose service reports."""
        config = self.service_configs.get(q)
        if config is None or q in seen:
            return False
        if config.load_balancer is not None:
            return config.load_balancer.health_check is not None
        if config.weighted is not None:
            return config.weighted.health_check is not None
        if config.highest_random_weight is not None:
            return config.highest_random_weight.health_check is not None
        if config.failover is not None:
            return config.failover.health_check is not None
        if config.mirroring is not None:
            if config.mirroring.health_check is None:
                return False
            provider = self.services[q].provider
            return self._reports_health(qualify(config.mirroring.service, provider), seen | {q})
        return False

    def _check_health_reports(self, obj: _Obj, config: Service) -> None:
        """Traefik refuses a service that needs its children's health from a child that
        does not report it: a weighted or highestRandomWeight service with a healthCheck, a
        failover's service (unless errors.status sends failures on anyway), and a failover's
        fallback when the failover has a healthCheck."""
        def check(ref: str, rel: str, why: str) -> None:
            target = qualify(ref, obj.provider)
            if target in self.services and not self._reports_health(target):
                obj.error(f'the service "{target}" does not report its health (it needs a '
                          f'healthCheck), which {why}', rel)

        groups = ((config.weighted, "weighted"), (config.highest_random_weight,
                                                  "highestRandomWeight"))
        for group, kind in groups:
            if group is not None and group.health_check is not None:
                for i, child in enumerate(group.services):
                    check(child.name, f"{kind}.services[{i}].name",
                          "this service's healthCheck needs")
        failover = config.failover
        if failover is not None:
            if failover.errors is None or not failover.errors.status:
                check(failover.service, "failover.service",
                      "a failover needs to know when to use its fallback (or errors.status)")
            if failover.health_check is not None:
                check(failover.fallback, "failover.fallback", "this service's healthCheck needs")

    def _node(self, node: _NodeKey) -> _Obj:
        return self.services[node[1]] if node[0] == "service" else self.middlewares[node[1]]

    def _propagate(self, edges: Mapping[_NodeKey, list[tuple[_NodeKey, str]]]) -> None:
        """Disable what depends on a disabled object; detect reference cycles."""
        state: dict[_NodeKey, int] = {}
        stack: list[_NodeKey] = []

        def visit(node: _NodeKey) -> None:
            state[node] = 1
            stack.append(node)
            obj = self._node(node)
            for target, rel in edges[node]:
                seen = state.get(target, 0)
                if seen == 1:
                    cycle = [*stack[stack.index(target):], target]
                    text = " -> ".join(name for _, name in cycle)
                    for member in cycle[:-1]:
                        member_obj = self._node(member)
                        member_obj.in_cycle = True
                        member_obj.error(f"recursion detected: {text}")
                    continue
                if seen == 0:
                    visit(target)
                target_obj = self._node(target)
                if target_obj.disabled and not (obj.in_cycle and target_obj.in_cycle):
                    label = "the service" if target[0] == "service" else "middleware"
                    obj.error(f'{label} "{target[1]}" is disabled ({target_obj.reason()})',
                              rel)
            stack.pop()
            state[node] = 2

        for node in edges:
            if state.get(node, 0) == 0:
                visit(node)

    # ----------------------------------------------------------------------- routers

    def check_routers(self) -> dict[str, object]:
        """Check every router; returns the compiled rule of each router that compiled."""
        compiled: dict[str, object] = {}
        self.router_children = {q: [] for q in self.routers}

        for q, obj in self.routers.items():
            config = self.router_configs[q]
            parents = [qualify(p, obj.provider) for p in config.parent_refs]
            self.router_parents[q] = parents

            service: str | None = None
            if config.service:
                service = qualify(config.service, obj.provider)
                self._check_service_ref(obj, service, "service")
            self.router_service[q] = service

            mids = []
            for i, ref in enumerate(config.middlewares):
                target = qualify(ref, obj.provider)
                mids.append(target)
                self._check_middleware_ref(obj, target, f"middlewares[{i}]")
            self.router_middlewares[q] = mids

            options = None
            if config.tls is not None:
                options = self._tls_options_name(config.tls, obj.provider)
                if options not in self.tls_options:
                    obj.error(f"unknown TLS options: {options}", "tls.options")
            self.router_tls_options[q] = options

            syntax = config.rule_syntax or self.default_rule_syntax
            if syntax == "default":
                syntax = "v3"
            self.router_syntax[q] = syntax
            try:
                compiled[q] = self.compile_rule(config.rule, syntax)
            except ValueError as exc:
                obj.error(f"invalid rule: {exc}", "rule")

            priority = config.priority or self.default_priority(config.rule)
            self.router_priority[q] = priority
            if priority > MAX_USER_PRIORITY and obj.provider != "internal":
                obj.error(f"the router priority {priority} exceeds the max user-defined "
                          f"priority {MAX_USER_PRIORITY}", "priority")

            if parents:
                self.router_eps[q] = ()
                for parent in parents:
                    if parent not in self.routers:
                        obj.error(f'parent router "{parent}" does not exist', "parentRefs")
                    else:
                        self.router_children[parent].append(q)
                if config.tls is not None:
                    obj.error("a child router (with parentRefs) cannot have tls", "tls")
                if config.observability is not None:
                    obj.error("a child router (with parentRefs) cannot have observability",
                              "observability")
                if config.entry_points:
                    obj.error("a child router (with parentRefs) cannot have entryPoints",
                              "entryPoints")
            else:
                eps = config.entry_points or self.default_entry_points
                self.router_eps[q] = tuple(eps)

        self._check_router_tree()
        return compiled

    def _check_service_ref(self, obj: _Obj, service: str, rel: str) -> None:
        target = self.services.get(service)
        if target is None:
            obj.error(f'the service "{service}" does not exist', rel)
            return
        target.use(obj.name)
        if target.disabled:
            obj.error(f'the service "{service}" is disabled ({target.reason()})', rel)

    def _check_middleware_ref(self, obj: _Obj, middleware: str, rel: str, *,
                              critical: bool = True, origin: str = "") -> bool:
        target = self.middlewares.get(middleware)
        if target is None:
            obj.error(f'middleware "{middleware}" does not exist{origin}', rel,
                      critical=critical)
            return False
        target.use(obj.name)
        if target.disabled:
            obj.error(f'middleware "{middleware}" is disabled ({target.reason()}){origin}',
                      rel, critical=critical)
            return False
        return True

    @staticmethod
    def _tls_options_name(tls: RouterTLS, provider: str) -> str:
        if not tls.options or tls.options == DEFAULT_TLS_NAME:
            return DEFAULT_TLS_NAME
        return qualify(tls.options, provider)

    def _check_router_tree(self) -> None:
        roots = sorted(q for q, parents in self.router_parents.items() if not parents)
        visited: set[str] = set()
        on_path: list[str] = []

        def walk(q: str) -> None:
            if q in on_path:
                cycle = [*on_path[on_path.index(q):], q]
                text = " -> ".join(cycle)
                for member in cycle[:-1]:
                    self.routers[member].error(f"cycle detected in parentRefs: {text}")
                return
            if q in visited:
                return
            visited.add(q)
            on_path.append(q)
            for child in sorted(self.router_children[q]):
                walk(child)
            on_path.pop()

        for root in roots:
            walk(root)
        for q, obj in self.routers.items():
            children = self.router_children[q]
            if q not in visited:
                obj.error("router is not reachable from a root router", "parentRefs")
            elif self.router_service[q] is None and not children:
                obj.error("router has no service and no child routers", "service")
            elif self.router_service[q] is not None and children:
                obj.error("router has both a service and child routers", "service")

    # ----------------------------------------------------------------------- routes

    def lay_out_routes(self, compiled: Mapping[str, object]
                       ) -> tuple[dict[str, list[Route]], dict[str, list[str]]]:
        routes: dict[str, list[Route]] = {ep: [] for ep in self.entry_points}
        using: dict[str, list[str]] = {q: [] for q in self.routers}
        for q in sorted(self.routers):
            obj = self.routers[q]
            if self.router_parents[q]:
                continue
            valid_eps = []
            for i, ep_name in enumerate(self.router_eps[q]):
                if ep_name not in self.entry_points:
                    rel = f"entryPoints[{i}]" if self.router_configs[q].entry_points else ""
                    obj.error(f'entryPoint "{ep_name}" doesn\'t exist', rel, critical=False)
                else:
                    valid_eps.append(ep_name)
            if not valid_eps:
                obj.error("no valid entryPoint for this router", "entryPoints")
            if obj.disabled:
                continue
            for ep_name in valid_eps:
                route = self._route(q, self.entry_points[ep_name], compiled)
                if route is not None:
                    routes[ep_name].append(route)
                    using[q].append(ep_name)
            if not using[q] and not obj.disabled:
                obj.error("the router runs on no entryPoint")
        for ep_name, ep_routes in routes.items():
            ep_routes.sort(key=self._route_order)
            routes[ep_name] = ep_routes
        return routes, using

    def _route_order(self, route: Route) -> tuple[int, int, str]:
        rank = self.precedence.get(route.provider, len(self.precedence))
        return (-route.priority, rank, route.router)

    def _route(self, q: str, ep: EntryPointSpec, compiled: Mapping[str, object]
               ) -> Route | None:
        obj = self.routers[q]
        config = self.router_configs[q]
        ok = True
        ep_mids = []
        for ref in ep.middlewares:
            target = qualify(ref, obj.provider)
            ep_mids.append(target)
            if not self._check_middleware_ref(
                    obj, target, "", critical=False,
                    origin=f" (from entryPoint {ep.name} http.middlewares)"):
                ok = False
        tls_config = config.tls if config.tls is not None else ep.tls
        options = self.router_tls_options[q]
        if config.tls is None and ep.tls is not None:
            options = self._tls_options_name(ep.tls, obj.provider)
            if options not in self.tls_options:
                obj.error(f"unknown TLS options: {options} (from entryPoint {ep.name} "
                          "http.tls)", "", critical=False)
                ok = False
        if not ok:
            return None
        children = self._child_routes(q, ep, tls_config is not None, options, tls_config,
                                      compiled, frozenset({q}))
        return Route(
            router=q, provider=obj.provider, entry_point=ep.name, rule=config.rule,
            rule_syntax=self.router_syntax[q], matcher=compiled[q],
            priority=self.router_priority[q], tls=tls_config is not None,
            tls_options=options if tls_config is not None else None, tls_config=tls_config,
            middlewares=(*ep_mids, *self.router_middlewares[q]),
            service=self.router_service[q], config=config, children=children)

    def _child_routes(self, q: str, ep: EntryPointSpec, tls: bool, options: str | None,
                      tls_config: RouterTLS | None, compiled: Mapping[str, object],
                      seen: frozenset[str]) -> tuple[Route, ...]:
        out = []
        for child in sorted(self.router_children[q]):
            child_obj = self.routers[child]
            if child in seen or child_obj.disabled:
                continue
            child_config = self.router_configs[child]
            self.child_using.setdefault(child, set()).add(ep.name)
            out.append(Route(
                router=child, provider=child_obj.provider, entry_point=ep.name,
                rule=child_config.rule, rule_syntax=self.router_syntax[child],
                matcher=compiled[child], priority=self.router_priority[child], tls=tls,
                tls_options=options if tls else None, tls_config=tls_config,
                middlewares=tuple(self.router_middlewares[child]),
                service=self.router_service[child], config=child_config,
                children=self._child_routes(child, ep, tls, options, tls_config, compiled,
                                            seen | {child})))
        out.sort(key=self._route_order)
        return tuple(out)

    # ----------------------------------------------------------------------- freeze

    def freeze(self, routes: Mapping[str, list[Route]],
               using: Mapping[str, list[str]]) -> RuntimeConfig:
        routers = {}
        for q, obj in sorted(self.routers.items()):
            config = self.router_configs[q]
            used = sorted(set(using.get(q, [])) | self.child_using.get(q, set()))
            routers[q] = RouterInfo(
                name=q, provider=obj.provider, config=config, status=obj.status,
                errors=tuple(obj.errors), entry_points=self.router_eps[q],
                using=tuple(used) if not obj.disabled else (),
                service=self.router_service[q], middlewares=tuple(self.router_middlewares[q]),
                tls_options=self.router_tls_options[q], rule_syntax=self.router_syntax[q],
                priority=self.router_priority[q], parent_refs=tuple(self.router_parents[q]),
                child_refs=tuple(sorted(self.router_children[q])))
        services = {}
        for q, obj in sorted(self.services.items()):
            sconfig = self.service_configs[q]
            services[q] = ServiceInfo(
                name=q, provider=obj.provider, config=sconfig,
                kind=sconfig.kind if sconfig is not None else "internal", status=obj.status,
                errors=tuple(obj.errors), used_by=tuple(sorted(obj.used_by)),
                servers_transport=self.service_transport.get(q),
                references=tuple(self.service_refs.get(q, ())),
                middlewares=tuple(self.service_middlewares.get(q, ())))
        middlewares = {}
        for q, obj in sorted(self.middlewares.items()):
            mconfig = self.middleware_configs[q]
            middlewares[q] = MiddlewareInfo(
                name=q, provider=obj.provider, config=mconfig, kind=mconfig.kind,
                status=obj.status, errors=tuple(obj.errors),
                used_by=tuple(sorted(obj.used_by)),
                references=tuple(self.middleware_refs.get(q, ())),
                service=self.middleware_service.get(q))
        transports = {
            q: ServersTransportInfo(q, provider, transport, tuple(sorted(users)))
            for q, (provider, transport, users) in sorted(self.transports.items())}
        return RuntimeConfig(
            routers=_frozen(routers), services=_frozen(services),
            middlewares=_frozen(middlewares), servers_transports=_frozen(transports),
            tls_options=_frozen(dict(sorted(self.tls_options.items()))),
            tls_stores=_frozen(dict(sorted(self.tls_stores.items()))),
            tls_certificates=tuple(self.certificates),
            routes=_frozen({ep: tuple(rs) for ep, rs in routes.items()}),
            entry_points=tuple(self.entry_points),
            default_entry_points=self.default_entry_points,
            diagnostics=tuple(self.diagnostics))


def _unpack(value: ProviderInput
            ) -> tuple[DynamicConfig, Mapping[str, Mark], tuple[Diagnostic, ...]]:
    if isinstance(value, DynamicConfig):
        return value, {}, ()
    if isinstance(value, Decoded) and isinstance(value.value, DynamicConfig):
        return value.value, value.marks, value.warnings
    raise TypeError(f"expected a DynamicConfig or a Decoded[DynamicConfig], got "
                    f"{type(value).__name__}")


# =========================================================================== entry point

def build_runtime(providers: Mapping[str, ProviderInput], *,
                  entry_points: Iterable[EntryPointSpec | str] = (),
                  default_entry_points: Sequence[str] | None = None,
                  default_rule_syntax: str = "v3",
                  internal_services: Iterable[str] = ("noop@internal",),
                  default_servers_transport: ServersTransport | None = None,
                  providers_precedence: Sequence[str] = DEFAULT_PROVIDERS_PRECEDENCE,
                  compile_rule: RuleCompiler | None = None,
                  default_priority: PriorityFunction | None = None) -> RuntimeConfig:
    """Merge the providers' dynamic configurations into the configuration the proxy runs.

    ``providers`` maps a provider name (``file``, ``docker``, ``swarm``, ``kubernetescrd``,
    ``internal``) to its decoded configuration; pass the :class:`Decoded` result to keep its
    positions for error messages. ``entry_points`` are the static TCP entryPoints (names or
    :class:`EntryPointSpec`); ``default_entry_points`` defaults to
    :func:`default_entry_point_names`. ``internal_services`` are the services wsgate provides
    itself (``api@internal``, ``ping@internal``, ``echo@internal``...).
    ``default_servers_transport`` is the static ``serversTransport`` (``default@internal``).
    ``compile_rule(rule, syntax)`` and ``default_priority(rule)`` default to the rule engine's;
    a rule that fails to compile must raise ValueError (RuleSyntaxError is one).
    """
    if default_rule_syntax not in ("v2", "v3"):
        raise ValueError(f"default rule syntax must be v2 or v3, got {default_rule_syntax!r}")
    specs = [ep if isinstance(ep, EntryPointSpec) else EntryPointSpec(ep)
             for ep in entry_points]
    if compile_rule is None or default_priority is None:
        # imported here: the rule engine is only needed once a configuration is built
        rules = importlib.import_module("wsgate.rules")
        compile_rule = compile_rule or rules.compile_rule
        default_priority = default_priority or rules.default_priority
    builder = _Builder(
        providers, entry_points=specs,
        default_entry_points=(default_entry_points if default_entry_points is not None
                              else default_entry_point_names(specs)),
        default_rule_syntax=default_rule_syntax, internal_services=internal_services,
        default_servers_transport=default_servers_transport or ServersTransport(),
        providers_precedence=providers_precedence, compile_rule=compile_rule,
        default_priority=default_priority)
    builder.check_services_and_middlewares()
    compiled = builder.check_routers()
    routes, using = builder.lay_out_routes(compiled)
    return builder.freeze(routes, using)
