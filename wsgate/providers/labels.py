"""Container labels to a dynamic configuration, as Traefik's Docker and Swarm providers read them.

Pure: the providers turn API answers into :class:`Container` values and call
:func:`build_configuration`; everything Traefik does with labels happens here.

- ``traefik.http.{routers,services,middlewares}.<name>.<path>`` (and
  ``traefik.tls.stores.default.*``) map onto the dynamic model: keys are case-insensitive,
  lists comma-separated, arrays indexed (``tls.domains[0].main``). A load balancer's one server
  is written in the singular: ``loadbalancer.server.{port,scheme,url,weight,preservepath}``.
- ``traefik.enable`` overrides ``exposedByDefault``; ``constraints`` filter containers;
  stopped (unless ``traefik.docker.allownonrunning``) and unhealthy (unless
  ``allowEmptyServices``) containers are skipped.
- A container without service labels gets a load balancer named after it (or
  ``<compose service>_<project>``, normalized); a container without routers gets a router of
  that name whose rule is ``defaultRule`` rendered for it; a router without ``service`` is
  linked to the container's lone service.
- The server is ``scheme://ip:port``: ip 127.0.0.1 for host networking, else the address on
  ``traefik.docker.network`` (or the provider's ``network``, else the first network); port
  the label, else the lowest exposed port, else an error; scheme ``http``.
- Containers are merged as Traefik merges them: a service defined alike by several containers
  gets all their servers; routers, middlewares and transports must be defined identically,
  or they are dropped with an error.

wsgate extensions: ``traefik.http.serversTransports.<name>.*`` labels are read (Traefik
ignores them), and a server with no scheme is ``https`` when its service names a
serversTransport or its port is 443 or 8443 (reported through ``notices``, to be logged once).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wsgate.config.dynamic import (
    DynamicConfig,
    HTTPConfig,
    Middleware,
    Router,
    ServersTransport,
    Service,
    TLSConfig,
    TLSStore,
)
from wsgate.config.errors import ConfigError, Diagnostic, Mark
from wsgate.config.schema import Decoded, decode
from wsgate.config.sources import flat_to_tree, split_flat_key
from wsgate.config.tree import Mapping as TreeMapping
from wsgate.config.tree import Node, Scalar, Sequence
from wsgate.providers.templates import (
    Constraints,
    Template,
    Value,
    compile_constraints,
    compile_template,
    normalize,
)

__all__ = [
    "COMPOSE_PROJECT", "COMPOSE_SERVICE", "Container", "LabelSettings", "LabelsResult",
    "build_configuration", "container_service_name", "extra_labels",
]

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
#: Scheme inferred (wsgate extension) for servers on these ports when no scheme is given.
HTTPS_PORTS = (443, 8443)

ProviderKind = Literal["docker", "swarm"]


@dataclass(frozen=True)
class Container:
    """What the label decoding needs to know about one container (or one Swarm task/service).

    ``name`` is the container's name without the leading ``/``; ``service_name`` the name its
    implicit service gets before normalization (the container name, or the Swarm service
    name). ``networks`` maps a network name to the container's address on it, in the API's
    order; ``ports`` are its exposed ports; ``port_bindings`` map a container port to its
    published ``(host ip, host port)`` pairs (for ``useBindPortIP``).
    """

    id: str
    name: str
    labels: Mapping[str, str]
    service_name: str = ""
    status: str = "running"
    health: str = ""
    network_mode: str = ""
    networks: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    port_bindings: Mapping[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    node_ip: str = ""


@dataclass(frozen=True)
class ExtraConf:
    """The provider's own labels of a container."""

    enable: bool
    network: str
    allow_non_running: bool = False
    lb_swarm: bool = False


@dataclass(frozen=True)
class LabelSettings:
    """The static settings of a Docker or Swarm provider that the decoding uses."""

    provider: ProviderKind = "docker"
    exposed_by_default: bool = True
    default_rule: Template = field(
        default_factory=lambda: compile_template("Host(`{{ normalize .Name }}`)"))
    constraints: Constraints = field(default_factory=lambda: compile_constraints(""))
    network: str = ""
    use_bind_port_ip: bool = False
    allow_empty_services: bool = False
    strict: bool = False

    @classmethod
    def from_static(cls, provider: ProviderKind, settings: Any, *,
                    strict: bool = False) -> LabelSettings:
        """From a static DockerProvider/SwarmProvider; ConfigError for a bad defaultRule or
        constraints expression."""
        return cls(provider=provider, exposed_by_default=settings.exposed_by_default,
                   default_rule=compile_template(settings.default_rule),
                   constraints=compile_constraints(settings.constraints),
                   network=settings.network, use_bind_port_ip=settings.use_bind_port_ip,
                   allow_empty_services=settings.allow_empty_services, strict=strict)


@dataclass(frozen=True)
class LabelsResult:
    """The provider's configuration, the containers left out and why, and one-time notices.

    ``notices`` are ``(key, message)`` pairs for inferences worth logging once per key.
    """

    decoded: Decoded[DynamicConfig]
    errors: tuple[Diagnostic, ...]
    notices: tuple[tuple[str, str], ...] = ()


class _Skip(Exception):
    """This container contributes nothing (already reported when it is an error)."""


# =========================================================================== helpers

def container_service_name(container: Container) -> str:
    """The implicit service (and router) name: ``<service>_<project>`` for Compose
    containers, else the container's (service) name; normalized."""
    project = container.labels.get(COMPOSE_PROJECT, "")
    service = container.labels.get(COMPOSE_SERVICE, "")
    if project and service:
        return normalize(f"{service}_{project}")
    return normalize(container.service_name or container.name)


def _parse_bool(value: str, label: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise ConfigError(f"label {label}={value!r}: expected true or false")


def extra_labels(labels: Mapping[str, str], provider: ProviderKind, exposed_by_default: bool,
                 network: str, warnings: list[str] | None = None) -> ExtraConf:
    """``traefik.enable`` and the provider's own labels; ConfigError for unknown ones."""
    enable = exposed_by_default
    values: dict[str, dict[str, tuple[str, str]]] = {"docker": {}, "swarm": {}}
    known = {"docker": ("network", "allownonrunning", "lbswarm"),
             "swarm": ("network", "lbswarm")}
    for key, value in labels.items():
        low = key.lower()
        if low == "traefik.enable":
            enable = _parse_bool(value, key)
            continue
        for family in ("docker", "swarm"):
            prefix = f"traefik.{family}."
            if not low.startswith(prefix):
                continue
            if family == "swarm" and provider == "docker":
                continue
            rest = low[len(prefix):]
            if rest not in known[family]:
                raise ConfigError(f"unknown label {key} (known: "
                                  f"{', '.join(prefix + k for k in known[family])})")
            values[family][rest] = (key, value)
    docker, swarm = values["docker"], values["swarm"]
    if provider == "docker":
        allow = _parse_bool(*reversed(docker["allownonrunning"])) \
            if "allownonrunning" in docker else False
        net = docker["network"][1] if "network" in docker else network
        return ExtraConf(enable, net, allow_non_running=allow)
    if docker and swarm:
        raise ConfigError("both traefik.docker.* and traefik.swarm.* labels are defined")
    chosen = swarm or docker
    if docker and warnings is not None:
        warnings.append("traefik.docker.* labels are deprecated for Swarm services; use "
                        "traefik.swarm.*")
    if "allownonrunning" in chosen:
        raise ConfigError(f"label {chosen['allownonrunning'][0]} is only for the Docker "
                          f"provider")
    lb_swarm = _parse_bool(*reversed(chosen["lbswarm"])) if "lbswarm" in chosen else False
    net = chosen["network"][1] if "network" in chosen else network
    return ExtraConf(enable, net, lb_swarm=lb_swarm)


def _child(node: TreeMapping, key: str) -> tuple[str, Node] | None:
    low = key.lower()
    for k, v in node.items.items():
        if k.lower() == low:
            return k, v
    return None


def _child_value(node: TreeMapping, key: str) -> Node | None:
    found = _child(node, key)
    return None if found is None else found[1]


def _child_map(node: TreeMapping, key: str) -> TreeMapping | None:
    found = _child(node, key)
    if found is None:
        return None
    if not isinstance(found[1], TreeMapping):
        raise ConfigError(f"{key} must be a section (labels under it), not a value",
                          mark=found[1].mark)
    return found[1]


def _pop(node: TreeMapping, key: str) -> Node | None:
    found = _child(node, key)
    if found is None:
        return None
    node.key_marks.pop(found[0], None)
    return node.items.pop(found[0])


def _scalar_text(node: Node | None, what: str) -> str:
    if node is None:
        return ""
    if not isinstance(node, Scalar):
        raise ConfigError(f"{what} must be a value", mark=node.mark)
    return "" if node.value is None else str(node.value).strip()


def _join_host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


# =========================================================================== one container

class _ContainerBuilder:
    def __init__(self, container: Container, settings: LabelSettings, extra: ExtraConf,
                 lookup: Callable[[str], Container | None],
                 notices: list[tuple[str, str]]) -> None:
        self.c = container
        self.settings = settings
        self.extra = extra
        self.lookup = lookup
        self.notices = notices
        self.service_name = container_service_name(container)
        self.mark = Mark(f"{settings.provider} container {container.name}")

    def tree(self) -> TreeMapping | None:
        """The container's labels as a tree rooted at the dynamic configuration, or None when
        they only describe TCP/UDP routing."""
        pairs = []
        tcp_udp = False
        for key, value in self.c.labels.items():
            low = key.lower()
            if low.startswith(("traefik.tcp.", "traefik.udp.")):
                tcp_udp = True
                continue
            if not low.startswith(("traefik.http.", "traefik.tls.stores.default.")):
                continue
            segments = split_flat_key(key)[1:]
            pairs.append((segments, value, Mark(f"{self.mark.source}: label {key}")))
        root = flat_to_tree(pairs, self.mark)
        if tcp_udp and not pairs:
            return None
        return root

    def build(self, running: bool) -> TreeMapping:
        root = self.tree()
        if root is None:
            raise _Skip("only TCP/UDP labels, which wsgate does not route")
        http = _child_map(root, "http")
        if http is None:
            http = TreeMapping({}, self.mark)
            root.items["http"] = http
        services = _child_map(http, "services")
        if services is None or not services.items:
            services = TreeMapping({}, self.mark)
            http.items["services"] = services
            services.items[self.service_name] = TreeMapping(
                {"loadBalancer": TreeMapping({}, self.mark)}, self.mark)
        for name, svc in services.items.items():
            if not isinstance(svc, TreeMapping):
                raise ConfigError(f"service {name}: expected labels under it", mark=svc.mark)
            self._service(name, svc, running)
        self._routers(http, services)
        return root

    # -- services ------------------------------------------------------------------------------
    def _service(self, name: str, svc: TreeMapping, running: bool) -> None:
        for key in svc.items:
            if key.lower() not in ("loadbalancer", "middlewares"):
                raise ConfigError(f"service {name}: {key} services cannot be declared with "
                                  f"labels (only loadBalancer); declare them with the file "
                                  f"provider", mark=svc.items[key].mark)
        lb = _child_map(svc, "loadBalancer")
        if lb is None:
            raise ConfigError(f"service {name}: the load balancer is not defined",
                              mark=svc.mark)
        if _child(lb, "servers") is not None:
            raise ConfigError(f"service {name}: labels give the server in the singular: "
                              f"loadbalancer.server.port, .scheme, .url or .weight",
                              mark=lb.mark)
        server_node = _pop(lb, "server")
        server = server_node if isinstance(server_node, TreeMapping) else TreeMapping({}, lb.mark)
        if server_node is not None and not isinstance(server_node, TreeMapping):
            raise ConfigError(f"service {name}: loadbalancer.server needs keys such as "
                              f"port", mark=server_node.mark)
        url = _scalar_text(_pop(server, "url"), "server url")
        port_label = _scalar_text(_pop(server, "port"), "server port")
        scheme = _scalar_text(_pop(server, "scheme"), "server scheme")
        if not running:
            lb.items["servers"] = Sequence([], lb.mark)
            return
        if url:
            if port_label or scheme:
                raise ConfigError(f"service {name}: loadbalancer.server.url excludes "
                                  f"loadbalancer.server.port and .scheme", mark=server.mark)
        else:
            host, port = self._address(name, port_label)
            if not scheme:
                scheme = self._infer_scheme(name, lb, port)
            url = f"{scheme}://{_join_host_port(host, port)}"
        server.items["url"] = Scalar(url, server.mark, textual=True)
        lb.items["servers"] = Sequence([server], server.mark)

    def _infer_scheme(self, name: str, lb: TreeMapping, port: int) -> str:
        transport = _scalar_text(_child_value(lb, "serversTransport"), "serversTransport")
        if transport:
            reason = f"it names the serversTransport {transport!r}"
        elif port in HTTPS_PORTS:
            reason = f"its port is {port}"
        else:
            return "http"
        self.notices.append((
            f"{self.settings.provider}:{name}:{reason}",
            f"{self.settings.provider} provider: service {name} (container {self.c.name}): no "
            f"scheme given and {reason}: using https (set loadbalancer.server.scheme to "
            f"override)"))
        return "https"

    def _address(self, service: str, port_label: str) -> tuple[str, int]:
        port_text = port_label
        host = ""
        if self.settings.use_bind_port_ip:
            binding = self._binding(port_label)
            if binding is not None:
                host, port_text = binding
        if not host:
            host = self._ip(self.c, self.extra.network, depth=0)
            port_text = port_label or (str(min(self.c.ports)) if self.c.ports else "")
        if not port_text:
            raise ConfigError(
                f"service {service}: port is missing: the container exposes no port; set "
                f"traefik.http.services.{service}.loadbalancer.server.port")
        try:
            port = int(port_text)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise ConfigError(f"service {service}: invalid port {port_text!r} (1-65535)")
        return host, port

    def _binding(self, port_label: str) -> tuple[str, str] | None:
        wanted = int(port_label) if port_label.isdigit() else \
            (min(self.c.ports) if self.c.ports else None)
        bindings = self.c.port_bindings.get(wanted, ()) if wanted is not None else ()
        if not bindings:
            return None
        host_ip, host_port = bindings[0]
        if not host_ip or host_ip == "0.0.0.0":
            return None
        return host_ip, host_port

    def _ip(self, c: Container, network: str, depth: int) -> str:
        if network and c.networks:
            if network in c.networks:
                return self._non_empty(c.networks[network])
            self.notices.append((
                f"net:{c.name}:{network}",
                f"{self.settings.provider} provider: container {c.name} is not on network "
                f"{network!r}; using its first network"))
        if c.network_mode == "host":
            return c.node_ip or "127.0.0.1"
        if c.network_mode.startswith("container:"):
            ref = c.network_mode.partition(":")[2]
            other = self.lookup(ref)
            if other is None or depth > 3:
                raise ConfigError(f"unable to find the IP address: the container whose "
                                  f"network it shares ({ref}) is unknown")
            try:
                other_extra = extra_labels(other.labels, self.settings.provider,
                                           self.settings.exposed_by_default, "")
            except ConfigError:
                other_extra = ExtraConf(True, "")
            return self._ip(other, other_extra.network or network, depth + 1)
        for address in c.networks.values():
            return self._non_empty(address)
        raise ConfigError("unable to find the IP address of the container (no network)")

    @staticmethod
    def _non_empty(address: str) -> str:
        if not address:
            raise ConfigError("unable to find the IP address of the container on its network")
        return address

    # -- routers -------------------------------------------------------------------------------
    def _routers(self, http: TreeMapping, services: TreeMapping) -> None:
        routers = _child_map(http, "routers")
        if routers is None or not routers.items:
            if len(services.items) > 1:
                self.notices.append((
                    f"norouter:{self.c.id}",
                    f"{self.settings.provider} provider: container {self.c.name}: no router "
                    f"created: it has several services"))
                return
            routers = TreeMapping({}, self.mark)
            http.items["routers"] = routers
            routers.items[self.service_name] = TreeMapping({}, self.mark)
        for name in list(routers.items):
            router = routers.items[name]
            if not isinstance(router, TreeMapping):
                raise ConfigError(f"router {name}: expected labels under it",
                                  mark=router.mark)
            if not _scalar_text(_child_value(router, "rule"), "rule"):
                model: dict[str, Value] = {
                    "Name": self.service_name, "ContainerName": self.c.name,
                    "Labels": types.MappingProxyType(dict(self.c.labels))}
                rule = self.settings.default_rule.render(model)
                if not rule.strip():
                    raise ConfigError(f"router {name}: the defaultRule gives an empty rule")
                _pop(router, "rule")
                router.items["rule"] = Scalar(rule, Mark(f"{self.mark.source}: defaultRule"),
                                              textual=True)
            if not _scalar_text(_child_value(router, "service"), "service"):
                if len(services.items) > 1:
                    raise ConfigError(
                        f"router {name} names no service and cannot be linked automatically: "
                        f"the container has several services "
                        f"({', '.join(sorted(services.items))})")
                _pop(router, "service")
                router.items["service"] = Scalar(next(iter(services.items)), self.mark,
                                                  textual=True)


# =========================================================================== all containers

def _keep(c: Container, extra: ExtraConf, settings: LabelSettings) -> tuple[bool, bool]:
    """(keep the container, give it servers)."""
    if not extra.enable or not settings.constraints(c.labels):
        return False, False
    running = c.status in ("", "running")
    healthy = c.health in ("", "healthy")
    if extra.allow_non_running:
        return True, running and healthy
    if not running:
        return False, False
    if not healthy and not settings.allow_empty_services:
        return False, False
    return True, healthy


def build_configuration(containers: Iterable[Container],
                        settings: LabelSettings) -> LabelsResult:
    """The provider's configuration from every container it sees (running or not)."""
    all_containers = list(containers)
    by_ref: dict[str, Container] = {}
    for c in all_containers:
        by_ref[c.id] = c
        by_ref[c.name] = c
    errors: list[Diagnostic] = []
    notices: list[tuple[str, str]] = []
    warnings: list[Diagnostic] = []
    decoded: list[tuple[str, Decoded[DynamicConfig]]] = []
    for c in all_containers:
        source = f"{settings.provider} container {c.name}"
        try:
            deprecations: list[str] = []
            extra = extra_labels(c.labels, settings.provider, settings.exposed_by_default,
                                 settings.network, deprecations)
            keep, running = _keep(c, extra, settings)
            if not keep:
                continue
            warnings.extend(Diagnostic(w, "", Mark(source), "warning") for w in deprecations)
            builder = _ContainerBuilder(c, settings, extra,
                                        lambda ref: by_ref.get(ref), notices)
            tree = builder.build(running)
            one = decode(DynamicConfig, tree, strict=settings.strict)
        except _Skip as skip:
            warnings.append(Diagnostic(f"ignored: {skip}", "", Mark(source), "warning"))
            continue
        except ConfigError as exc:
            for d in exc.diagnostics:
                errors.append(Diagnostic(f"{d.message} (container left out)", d.path,
                                         d.mark or Mark(source)))
            continue
        warnings.extend(one.warnings)
        decoded.append((f"{container_service_name(c)}-{c.id}", one))
    decoded.sort(key=lambda item: item[0])
    merged, merge_errors = _merge([d for _, d in decoded], settings.provider)
    errors.extend(merge_errors)
    return LabelsResult(Decoded(merged.value, tuple(warnings), merged.marks), tuple(errors),
                        tuple(notices))


def _lb_without_servers(service: Service) -> Service | None:
    if service.load_balancer is None:
        return None
    return dataclasses.replace(
        service, load_balancer=dataclasses.replace(service.load_balancer, servers=()))


def _merge(configs: list[Decoded[DynamicConfig]], provider: str
           ) -> tuple[Decoded[DynamicConfig], list[Diagnostic]]:
    """Traefik's merge of per-container configurations (sorted by container)."""
    routers: dict[str, Router] = {}
    services: dict[str, Service] = {}
    middlewares: dict[str, Middleware] = {}
    transports: dict[str, ServersTransport] = {}
    stores: dict[str, TLSStore] = {}
    conflicts: dict[tuple[str, str], list[str]] = {}
    marks: dict[str, Mark] = {}
    for one in configs:
        cfg = one.value
        for path, mark in one.marks.items():
            marks.setdefault(path, mark)

        def add(kind: str, table: dict[str, Any], name: str, value: Any,
                *, where: Mark | None = None) -> None:
            if name not in table:
                table[name] = value
                return
            existing = table[name]
            if kind == "services" and existing.load_balancer is not None \
                    and value.load_balancer is not None \
                    and _lb_without_servers(existing) == _lb_without_servers(value):
                urls = {s.url for s in existing.load_balancer.servers}
                extra = tuple(s for s in value.load_balancer.servers if s.url not in urls)
                table[name] = dataclasses.replace(existing, load_balancer=dataclasses.replace(
                    existing.load_balancer, servers=existing.load_balancer.servers + extra))
                return
            if existing != value:
                conflicts.setdefault((kind, name), []).append(str(where or ""))

        for name, router in cfg.http.routers.items():
            add("routers", routers, name, router, where=one.marks.get(f"http.routers.{name}"))
        for name, service in cfg.http.services.items():
            add("services", services, name, service,
                where=one.marks.get(f"http.services.{name}"))
        for name, mw in cfg.http.middlewares.items():
            add("middlewares", middlewares, name, mw,
                where=one.marks.get(f"http.middlewares.{name}"))
        for name, transport in cfg.http.servers_transports.items():
            add("serversTransports", transports, name, transport,
                where=one.marks.get(f"http.serversTransports.{name}"))
        for name, store in cfg.tls.stores.items():
            add("stores", stores, name, store, where=one.marks.get(f"tls.stores.{name}"))
    errors = []
    tables: dict[str, dict[str, Any]] = {
        "routers": routers, "services": services, "middlewares": middlewares,
        "serversTransports": transports, "stores": stores}
    for (kind, name), _where in sorted(conflicts.items()):
        tables[kind].pop(name, None)
        singular = {"routers": "router", "services": "service", "middlewares": "middleware",
                    "serversTransports": "serversTransport", "stores": "TLS store"}[kind]
        errors.append(Diagnostic(
            f"{singular} {name} is defined differently by several containers; it is left "
            f"out", f"{'tls' if kind == 'stores' else 'http'}.{kind}.{name}",
            Mark(f"{provider} provider")))
    config = DynamicConfig(
        http=HTTPConfig(routers=types.MappingProxyType(routers),
                        services=types.MappingProxyType(services),
                        middlewares=types.MappingProxyType(middlewares),
                        servers_transports=types.MappingProxyType(transports)),
        tls=TLSConfig(stores=types.MappingProxyType(stores)))
    return Decoded(config, (), types.MappingProxyType(marks)), errors
