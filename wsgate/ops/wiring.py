"""Putting operations together from the static configuration.

- :func:`build_observer`: the observer the data path calls (metrics, access log, live state);
- :func:`build_internal_services`: ``api@internal``, ``dashboard@internal``, ``ping@internal``
  and ``prometheus@internal`` as protocol factories for the service registry;
- :func:`internal_routers`: the routers Traefik creates for them unless ``manualRouting``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

from twisted.internet.interfaces import IProtocolFactory

from wsgate.ops.accesslog import AccessLog
from wsgate.ops.api import ApiContext, ApiResource, RuntimeGetter, ServerStatus
from wsgate.ops.dashboard import DashboardResource
from wsgate.ops.internal import InternalSite, PathDispatch
from wsgate.ops.live import LiveHub, LiveState
from wsgate.ops.metrics import MetricsResource, PrometheusMetrics
from wsgate.ops.observer import FanOut, Observer
from wsgate.ops.ping import PingResource

if TYPE_CHECKING:
    from wsgate.config.static import StaticConfig

#: Go's math.MaxInt on 64-bit platforms: the priority of Traefik's ping and metrics routers.
MAX_INT = (1 << 63) - 1
INTERNAL_ENTRYPOINT = "traefik"
API = "api@internal"
DASHBOARD = "dashboard@internal"
PING = "ping@internal"
PROMETHEUS = "prometheus@internal"
#: Path of the dashboard's live WebSocket, under the API's basePath.
LIVE_PATH = "api/ws"


class OpsObserver(FanOut):
    """The data path's observer, with handles on the parts the internal services read."""

    def __init__(self, *, live: LiveState, metrics: PrometheusMetrics | None = None,
                 access_log: AccessLog | None = None,
                 extra: tuple[Observer, ...] = ()) -> None:
        parts: list[Observer] = [live]
        if metrics is not None:
            parts.append(metrics)
        if access_log is not None:
            parts.append(access_log)
        super().__init__([*parts, *extra])
        self.live = live
        self.metrics = metrics
        self.access_log = access_log


def build_observer(static: StaticConfig, *, access_log_stream: IO[str] | None = None,
                   reactor: Any = None, extra: tuple[Observer, ...] = ()) -> OpsObserver:
    """Metrics (``metrics.prometheus``), access log (``accessLog``) and live state."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor
        reactor = default_reactor
    return OpsObserver(
        live=LiveState(),
        metrics=PrometheusMetrics.from_static(static),
        access_log=AccessLog.from_static(static, stream=access_log_stream, reactor=reactor),
        extra=extra)


class PingSite(InternalSite):
    """``ping@internal``; ``set_terminating()`` switches it to terminatingStatusCode."""

    def __init__(self, resource: PingResource) -> None:
        super().__init__(resource)
        self.ping = resource

    def set_terminating(self) -> None:
        self.ping.set_terminating()


def _live_state(observer: Observer) -> LiveState | None:
    if isinstance(observer, LiveState):
        return observer
    if isinstance(observer, FanOut):
        found: LiveState | None = observer.find(LiveState)
        return found
    return None


def _metrics(observer: Observer) -> PrometheusMetrics | None:
    if isinstance(observer, PrometheusMetrics):
        return observer
    if isinstance(observer, FanOut):
        found: PrometheusMetrics | None = observer.find(PrometheusMetrics)
        return found
    return None


def build_internal_services(static: StaticConfig, runtime_getter: RuntimeGetter,
                            observer: Observer, *, server_status: ServerStatus | None = None,
                            reactor: Any = None, start_time: float | None = None
                            ) -> dict[str, IProtocolFactory]:
    """The internal services the static configuration asks for, by qualified name.

    ``runtime_getter`` returns the RuntimeConfig in force (None before the first one).
    ``observer`` is what :func:`build_observer` made (its live state feeds the dashboard and
    ``serverStatus``, its metrics ``prometheus@internal``). ``server_status`` overrides the
    health shown by the API (service name -> {url: "UP"/"DOWN"}).
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor
        reactor = default_reactor
    services: dict[str, IProtocolFactory] = {}
    live = _live_state(observer)
    if static.api is not None:
        base = static.api.base_path or "/"
        status = server_status or (live.server_status if live is not None else None)
        ctx = ApiContext(static=static, runtime=runtime_getter, server_status=status,
                         start_time=time.time() if start_time is None else start_time,
                         live=live.snapshot if live is not None else None)
        prefix = base.rstrip("/")
        routes: list[tuple[Callable[[str], bool], Any]] = [
            (lambda p: p.startswith(prefix + "/api/") or p == prefix + "/api",
             ApiResource(ctx))]
        websockets: dict[str, IProtocolFactory] = {}
        if live is not None:
            websockets[f"{prefix}/{LIVE_PATH}"] = LiveHub(live, reactor).factory()
        if static.api.dashboard:
            page = DashboardResource(base, static.api.dashboard_name)
            routes.append((lambda p: p.startswith(prefix + "/dashboard"), page))
            services[DASHBOARD] = InternalSite(
                PathDispatch([(lambda p: True,
                               DashboardResource(base, static.api.dashboard_name,
                                                 redirect_root=True))]))
        services[API] = InternalSite(PathDispatch(routes), websockets=websockets)
    if static.ping is not None:
        services[PING] = PingSite(PingResource(static.ping.terminating_status_code))
    prometheus = static.metrics.prometheus if static.metrics is not None else None
    if prometheus is not None:
        metrics = _metrics(observer)
        if metrics is None:
            raise ValueError("metrics.prometheus is configured but the observer has no "
                             "PrometheusMetrics (build it with wsgate.ops.wiring.build_observer)")
        services[PROMETHEUS] = InternalSite(MetricsResource(metrics))
    return services


def set_terminating(services: Mapping[str, IProtocolFactory]) -> None:
    """Make ``ping@internal`` (if any) answer terminatingStatusCode from now on."""
    ping = services.get(PING)
    if isinstance(ping, PingSite):
        ping.set_terminating()


def stop_internal_services(services: Mapping[str, IProtocolFactory]) -> None:
    """Close the dashboards' live WebSockets with 1001 (they are served in-process, so the
    proxy's drain of relayed sessions does not reach them)."""
    for factory in services.values():
        for ws in getattr(factory, "websockets", {}).values():
            hub = getattr(ws, "hub", None)
            if isinstance(hub, LiveHub):
                hub.stop()


def _router(entry_point: str, service: str, priority: int, rule: str) -> dict[str, Any]:
    return {"entryPoints": [entry_point], "service": service, "priority": priority,
            "rule": rule, "ruleSyntax": "default"}


def internal_routers(static: StaticConfig) -> dict[str, dict[str, Any]]:
    """The routers Traefik's internal provider adds (names within the ``internal``
    provider, in Traefik's configuration spelling)."""
    routers: dict[str, dict[str, Any]] = {}
    api = static.api
    if api is not None and api.insecure:
        routers["api"] = _router(INTERNAL_ENTRYPOINT, API, MAX_INT - 1, "PathPrefix(`/api`)")
        if api.dashboard:
            # Traefik adds redirect and strip-prefix middlewares here; dashboard@internal does
            # both itself.
            routers["dashboard"] = _router(INTERNAL_ENTRYPOINT, DASHBOARD, MAX_INT - 2,
                                           "PathPrefix(`/`)")
    ping = static.ping
    if ping is not None and not ping.manual_routing:
        routers["ping"] = _router(ping.entry_point, PING, MAX_INT, "PathPrefix(`/ping`)")
    prometheus = static.metrics.prometheus if static.metrics is not None else None
    if prometheus is not None and not prometheus.manual_routing:
        routers["prometheus"] = _router(prometheus.entry_point, PROMETHEUS, MAX_INT,
                                        "PathPrefix(`/metrics`)")
    return routers


def internal_configuration(static: StaticConfig) -> dict[str, Any]:
    """:func:`internal_routers` as a dynamic configuration tree (for the ``internal``
    provider; decode it with ``decode(DynamicConfig, from_plain(...))``)."""
    routers = internal_routers(static)
    return {"http": {"routers": routers}} if routers else {}


def internal_service_names(static: StaticConfig) -> tuple[str, ...]:
    """The internal services the static configuration creates (even with manualRouting)."""
    names = []
    if static.api is not None:
        names.append(API)
        if static.api.dashboard:
            names.append(DASHBOARD)
    if static.ping is not None:
        names.append(PING)
    if static.metrics is not None and static.metrics.prometheus is not None:
        names.append(PROMETHEUS)
    return tuple(names)


__all__ = [
    "API", "DASHBOARD", "LIVE_PATH", "MAX_INT", "PING", "PROMETHEUS", "OpsObserver",
    "PingSite", "build_internal_services", "build_observer", "internal_configuration",
    "internal_routers", "internal_service_names", "set_terminating", "stop_internal_services",
]
