"""The Docker and Swarm providers: container (or Swarm service) labels through the Docker
Engine API.

Docker (``providers.docker``): list the containers (``/containers/json?all=1``, then
``/containers/{id}/json`` for each), then follow ``/events`` (container events only) and list
again, debounced, after every event that can change routing (start, stop, die, destroy,
health changes...). When the event stream ends or the API cannot be reached, the provider
reconnects with exponential backoff and lists everything again, so nothing missed while
disconnected survives. Podman's Docker-compatible API works the same way.

Swarm (``providers.swarm``): poll ``/services``, ``/tasks`` and ``/networks`` every
``refreshSeconds``; a service's labels apply to its running tasks (or, with
``traefik.swarm.lbswarm=true``, to its virtual IP).

The API answers become :class:`wsgate.providers.labels.Container` values (the pure
functions :func:`container_from_inspect` and :func:`swarm_containers`, tested on recorded
answers) and :func:`wsgate.providers.labels.build_configuration` does the rest.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import ConfigError, Diagnostic, Mark
from wsgate.config.schema import Decoded
from wsgate.providers.http_api import APIClient, APIError, Stream, TLSFiles
from wsgate.providers.labels import (
    Container,
    LabelSettings,
    ProviderKind,
    build_configuration,
    extra_labels,
)

log = Logger()

__all__ = ["DockerProvider", "SwarmProvider", "container_from_inspect", "swarm_containers"]

#: Container events after which the containers are listed again.
RESYNC_ACTIONS = frozenset({
    "create", "start", "restart", "stop", "die", "kill", "oom", "destroy", "remove",
    "pause", "unpause", "rename", "update",
})
#: The newest Engine API version wsgate asks for (the server's own, when older, is used).
MAX_API_VERSION = (1, 47)

OnChange = Callable[[Decoded[DynamicConfig]], None]


# =========================================================================== API answers

def _port_number(spec: str) -> int | None:
    number = spec.partition("/")[0]
    return int(number) if number.isdigit() else None


def container_from_inspect(data: Mapping[str, Any]) -> Container:
    """A container from ``GET /containers/{id}/json``."""
    config = data.get("Config") or {}
    state = data.get("State") or {}
    settings = data.get("NetworkSettings") or {}
    networks = {}
    for name, net in (settings.get("Networks") or {}).items():
        net = net or {}
        networks[name] = str(net.get("IPAddress") or net.get("GlobalIPv6Address") or "")
    ports: set[int] = set()
    bindings: dict[int, tuple[tuple[str, str], ...]] = {}
    for spec, binds in (settings.get("Ports") or {}).items():
        number = _port_number(spec)
        if number is None:
            continue
        ports.add(number)
        if binds:
            bindings[number] = tuple((str(b.get("HostIp") or ""), str(b.get("HostPort") or ""))
                                     for b in binds)
    for spec in (config.get("ExposedPorts") or {}):
        number = _port_number(spec)
        if number is not None:
            ports.add(number)
    name = str(data.get("Name") or "").lstrip("/")
    return Container(
        id=str(data.get("Id") or ""), name=name, labels=dict(config.get("Labels") or {}),
        service_name=name, status=str(state.get("Status") or ""),
        health=str((state.get("Health") or {}).get("Status") or ""),
        network_mode=str((data.get("HostConfig") or {}).get("NetworkMode") or ""),
        networks=networks, ports=tuple(sorted(ports)), port_bindings=bindings)


def _address(cidr: str) -> str:
    try:
        return str(ipaddress.ip_interface(cidr).ip)
    except ValueError:
        return ""


def swarm_containers(services: Iterable[Mapping[str, Any]], tasks: Iterable[Mapping[str, Any]],
                     networks: Iterable[Mapping[str, Any]], *, network: str = "",
                     exposed_by_default: bool = True
                     ) -> tuple[list[Container], list[Diagnostic]]:
    """What the label decoding sees of a swarm: one container per running task, or one per
    service with ``traefik.swarm.lbswarm=true`` (its virtual IPs)."""
    names = {str(n.get("Id") or n.get("ID") or ""): str(n.get("Name") or "") for n in networks}
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for t in tasks:
        by_service.setdefault(str(t.get("ServiceID") or ""), []).append(t)
    out: list[Container] = []
    problems: list[Diagnostic] = []
    for svc in services:
        spec = svc.get("Spec") or {}
        name = str(spec.get("Name") or "")
        labels = dict(spec.get("Labels") or {})
        sid = str(svc.get("ID") or "")
        try:
            extra = extra_labels(labels, "swarm", exposed_by_default, network)
        except ConfigError as exc:
            problems.append(Diagnostic(f"{exc} (service left out)", "",
                                       Mark(f"swarm service {name}")))
            continue
        mode = str((spec.get("EndpointSpec") or {}).get("Mode") or "")
        if extra.lb_swarm and mode == "dnsrr":
            problems.append(Diagnostic(
                "traefik.swarm.lbswarm is ignored for a dnsrr service: its tasks are used",
                "", Mark(f"swarm service {name}"), "warning"))
        if extra.lb_swarm and mode != "dnsrr":
            vips = {}
            if mode == "vip":
                for vip in (svc.get("Endpoint") or {}).get("VirtualIPs") or []:
                    net_name = names.get(str(vip.get("NetworkID") or ""))
                    address = _address(str(vip.get("Addr") or ""))
                    if net_name and address:
                        vips[net_name] = address
            if vips:
                out.append(Container(id=sid, name=name, labels=labels, service_name=name,
                                     networks=vips))
            continue
        is_global = "Global" in (spec.get("Mode") or {})
        for t in by_service.get(sid, []):
            if (t.get("Status") or {}).get("State") != "running":
                continue
            nets = {}
            for attachment in t.get("NetworksAttachments") or []:
                net_name = names.get(str((attachment.get("Network") or {}).get("ID") or ""))
                for cidr in attachment.get("Addresses") or []:
                    if net_name:
                        nets[net_name] = _address(str(cidr))
            if not nets:
                continue
            suffix = t.get("ID") if is_global else t.get("Slot")
            out.append(Container(id=str(t.get("ID") or ""), name=f"{name}.{suffix}",
                                 labels=labels, service_name=name, networks=nets))
    return out, problems


def api_prefix(version: Mapping[str, Any]) -> str:
    """The versioned path prefix: the server's API version, capped at the newest wsgate
    knows (an older server gets its own version)."""
    text = str(version.get("ApiVersion") or "")
    try:
        major, minor = (int(x) for x in text.split(".")[:2])
    except ValueError:
        return ""
    chosen = min((major, minor), MAX_API_VERSION)
    return f"/v{chosen[0]}.{chosen[1]}"


# =========================================================================== providers

def _ignore_cancel(failure: Failure) -> None:
    failure.trap(defer.CancelledError)


def _gone_is_none(failure: Failure) -> Failure | None:
    """A container removed between the list and its inspection is simply gone."""
    if isinstance(failure.value, APIError) and failure.value.status == 404:
        return None
    return failure


def make_client(reactor: Any, settings: Any) -> APIClient:
    """The Engine API client for a provider's endpoint, TLS and basic auth settings."""
    endpoint = settings.endpoint
    if endpoint.startswith(("ssh://", "npipe://")):
        raise ConfigError(f"endpoint {endpoint!r}: ssh:// and npipe:// are not supported by "
                          f"wsgate (use unix:// or tcp://)")
    tls = None
    if settings.tls is not None:
        tls = TLSFiles(ca=settings.tls.ca, cert=settings.tls.cert, key=settings.tls.key_,
                       insecure_skip_verify=settings.tls.insecure_skip_verify)
    headers: dict[str, str] = {}
    if settings.username and settings.password:
        token = base64.b64encode(f"{settings.username}:{settings.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    timeout = float(settings.http_client_timeout) or 30.0
    return APIClient(reactor, endpoint, tls=tls, headers=lambda: headers, timeout=timeout)


class _LabelsProvider:
    """What the Docker and Swarm providers share: building, deduplicated logging, backoff."""

    name: ProviderKind = "docker"
    #: Backoff between reconnection attempts: doubled from the first to the last.
    backoff = (0.5, 30.0)

    def __init__(self, reactor: Any, settings: Any, *, on_change: OnChange,
                 strict: bool = False, client: APIClient | None = None) -> None:
        self.reactor = reactor
        self.settings = settings
        self.on_change = on_change
        self.current: Decoded[DynamicConfig] | None = None
        self.disabled = ""
        try:
            self.labels = LabelSettings.from_static(self.name, settings, strict=strict)
            self.client = client or make_client(reactor, settings)
        except (ConfigError, ValueError) as exc:
            self.disabled = str(exc)
        self._stopping = False
        self._sleeping: defer.Deferred[Any] | None = None
        self._failures = 0
        self._logged_notices: set[str] = set()
        self._last_errors: set[str] = set()
        self._last_error = ""
        self._running: defer.Deferred[Any] | None = None

    def describe(self) -> str:
        return f"{self.name} provider ({self.settings.endpoint})"

    def load(self) -> bool:
        """The API is asked asynchronously from start(): nothing to load synchronously."""
        return False

    def start(self) -> None:
        if self.disabled:
            log.error("{name} provider disabled: {why}", name=self.name, why=self.disabled)
            return
        if self._running is None:
            self._stopping = False
            self._running = self._run()
            self._running.addErrback(self._crashed)

    def _crashed(self, failure: Failure) -> None:
        log.failure("{name} provider stopped unexpectedly", failure, name=self.name)

    def stop(self) -> None:
        self._stopping = True
        if self._sleeping is not None and not self._sleeping.called:
            self._sleeping.cancel()
        self._running = None

    def _run(self) -> defer.Deferred[Any]:
        raise NotImplementedError

    def _pause(self) -> defer.Deferred[Any]:
        low, high = self.backoff
        delay = min(high, low * (2 ** min(self._failures, 16)))
        self._failures += 1
        return self._sleep(delay)

    def _sleep(self, seconds: float) -> defer.Deferred[Any]:
        self._sleeping = task.deferLater(self.reactor, seconds, lambda: None)
        self._sleeping.addErrback(_ignore_cancel)
        return self._sleeping

    def _report_failure(self, what: str, exc: BaseException) -> None:
        message = f"{what}: {exc}"
        if message != self._last_error:
            log.error("{name} provider: {message}; retrying with backoff", name=self.name,
                      message=message)
        self._last_error = message

    def _apply(self, containers: list[Container],
               problems: Iterable[Diagnostic] = ()) -> None:
        result = build_configuration(containers, self.labels)
        for key, message in result.notices:
            if key not in self._logged_notices:
                self._logged_notices.add(key)
                log.info("{message}", message=message)
        errors = {str(d) for d in (*problems, *result.errors)}
        for line in sorted(errors - self._last_errors):
            log.error("{name} provider: {error}", name=self.name, error=line)
        self._last_errors = errors
        self._failures = 0
        self._last_error = ""
        decoded = result.decoded
        if self.current is not None and self.current.value == decoded.value:
            return
        for warning in decoded.warnings:
            log.warn("{name} provider: {warning}", name=self.name, warning=str(warning))
        self.current = decoded
        http = decoded.value.http
        log.info("{name} provider: configuration updated ({containers} containers, "
                 "{routers} routers, {services} services)", name=self.name,
                 containers=len(containers), routers=len(http.routers),
                 services=len(http.services))
        self.on_change(decoded)


class DockerProvider(_LabelsProvider):
    """Containers' labels, followed through the event stream."""

    name: ProviderKind = "docker"

    def __init__(self, reactor: Any, settings: Any, *, on_change: OnChange,
                 strict: bool = False, client: APIClient | None = None,
                 debounce: float = 0.1, inspect_concurrency: int = 8) -> None:
        super().__init__(reactor, settings, on_change=on_change, strict=strict, client=client)
        self.debounce = debounce
        self.inspect_concurrency = inspect_concurrency
        self._prefix = ""
        self._stream: Stream | None = None
        self._pending: Any = None
        self._syncing = False
        self._dirty = False

    def stop(self) -> None:
        super().stop()
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    @defer.inlineCallbacks
    def _run(self) -> Any:
        while not self._stopping:
            try:
                version = yield self.client.get_json("/version")
                self._prefix = api_prefix(version)
                stream = None
                if self.settings.watch:
                    stream = self.client.stream_json(
                        f"{self._prefix}/events",
                        {"filters": json.dumps({"type": ["container"]})}, self._on_event)
                    self._stream = stream
                    yield stream.connected
                yield self._sync()
                if stream is None:
                    return
                log.info("docker provider: following container events on {endpoint}",
                         endpoint=self.settings.endpoint)
                yield stream.done
                if self._stopping:
                    return
                log.warn("docker provider: the event stream ended; reconnecting")
            except Exception as exc:  # every failure is retried after a pause
                if self._stopping:
                    return
                self._report_failure(f"cannot follow {self.settings.endpoint}", exc)
            finally:
                if self._stream is not None:
                    self._stream.cancel()
                    self._stream = None
            if not self._stopping:
                yield self._pause()

    def _on_event(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("Type") or event.get("type")
        action = str(event.get("Action") or event.get("status") or "")
        if kind == "container" and (action in RESYNC_ACTIONS or
                                    action.startswith("health_status")):
            self._schedule()

    def _schedule(self) -> None:
        if self._stopping:
            return
        if self._pending is not None and self._pending.active():
            self._pending.reset(self.debounce)
        else:
            self._pending = self.reactor.callLater(self.debounce, self._kick)

    def _kick(self) -> None:
        self._pending = None
        self._sync().addErrback(self._sync_failed)

    def _sync_failed(self, failure: Failure) -> None:
        self._report_failure("cannot list containers", failure.value or Exception("?"))

    @defer.inlineCallbacks
    def _sync(self) -> Any:
        """List and inspect every container and apply the result (one at a time)."""
        if self._syncing:
            self._dirty = True
            return
        self._syncing = True
        try:
            containers = yield self._list()
            if not self._stopping:
                self._apply(containers)
        finally:
            self._syncing = False
        if self._dirty and not self._stopping:
            self._dirty = False
            self._schedule()

    @defer.inlineCallbacks
    def _list(self) -> Any:
        summary = yield self.client.get_json(f"{self._prefix}/containers/json", {"all": "1"})
        semaphore = defer.DeferredSemaphore(self.inspect_concurrency)

        def inspect(cid: str) -> defer.Deferred[Any]:
            d = semaphore.run(self.client.get_json, f"{self._prefix}/containers/{cid}/json")
            d.addErrback(_gone_is_none)
            return d

        ids = [str(c.get("Id") or "") for c in summary or [] if isinstance(c, dict)]
        details = yield defer.gatherResults([inspect(cid) for cid in ids if cid],
                                            consumeErrors=True)
        return [container_from_inspect(d) for d in details if d]


class SwarmProvider(_LabelsProvider):
    """Swarm services' labels, polled every ``refreshSeconds``."""

    name: ProviderKind = "swarm"

    @defer.inlineCallbacks
    def _run(self) -> Any:
        interval = float(self.settings.refresh_seconds) or 15.0
        while not self._stopping:
            try:
                version = yield self.client.get_json("/version")
                prefix = api_prefix(version)
                services = yield self.client.get_json(f"{prefix}/services")
                networks = yield self.client.get_json(
                    f"{prefix}/networks", {"filters": json.dumps({"scope": ["swarm"]})})
                tasks = yield self.client.get_json(
                    f"{prefix}/tasks", {"filters": json.dumps({"desired-state": ["running"]})})
                containers, problems = swarm_containers(
                    services or [], tasks or [], networks or [],
                    network=self.settings.network,
                    exposed_by_default=self.settings.exposed_by_default)
                if not self._stopping:
                    self._apply(containers, problems)
            except Exception as exc:  # every failure is retried after a pause
                if self._stopping:
                    return
                self._report_failure(f"cannot poll {self.settings.endpoint}", exc)
                yield self._pause()
                continue
            if not self.settings.watch:
                return
            yield self._sleep(interval)
