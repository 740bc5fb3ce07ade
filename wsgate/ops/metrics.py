"""Prometheus metrics with Traefik's names and labels, plus wsgate's WebSocket metrics.

Traefik's families (``traefik_entrypoint_*``, ``traefik_router_*``, ``traefik_service_*``,
``traefik_open_connections``, ``traefik_config_*``, ``traefik_tls_certs_not_after``) keep their
names, labels and label order, so existing dashboards and alerts work. Where Traefik gets
WebSockets wrong this module does not follow it:

- a session counts once in ``requests_total`` (code 101, protocol websocket) when the 101 is
  relayed, and the duration histograms get the handshake time, not the session's lifetime,
  which goes to ``wsgate_*_websocket_session_duration_seconds`` instead;
- a session's bytes are added to ``requests_bytes_total``/``responses_bytes_total`` when it ends
  (Traefik counts 0 for a hijacked connection).

Beyond Traefik, per level (entrypoint, router, service) as its ``add*Labels`` switch allows:
open WebSockets, messages and bytes per direction, close codes by code and side, handshake
failures by reason and the session length histogram; per server, open WebSockets.

The metrics live in their own registry (never the process-global one). Label children are
cached per label tuple, so recording a request is a few dict lookups and increments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from twisted.web.resource import Resource
from twisted.web.server import Request

from wsgate.ops.observer import Observer, RequestRecord, SessionRecord
from wsgate.ops.scope import Scope

if TYPE_CHECKING:
    from wsgate.config.runtime import RuntimeConfig
    from wsgate.config.static import Prometheus, StaticConfig

#: Traefik's default ``metrics.prometheus.buckets``.
DEFAULT_BUCKETS: tuple[float, ...] = (0.1, 0.3, 1.2, 5.0)
#: Buckets of the WebSocket session length histograms, in seconds (1 s to 1 day).
SESSION_BUCKETS: tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0, 86400.0)
#: Methods reported as themselves; any other is ``EXTENSION_METHOD``, as Traefik does.
KNOWN_METHODS = frozenset({"HEAD", "GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                           "TRACE", "PATCH", "PRI"})
CLIENT_TO_BACKEND = "client_to_backend"
BACKEND_TO_CLIENT = "backend_to_client"
#: Close code label of a session that ended without any close frame (RFC 6455 §7.1.5).
NO_CLOSE_FRAME = "1006"


def metric_method(method: str) -> str:
    return method if method in KNOWN_METHODS else "EXTENSION_METHOD"


def _header(headers: Sequence[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return ""


class _Level:
    """The families of one level: ``entrypoint``, ``router`` (with service) or ``service``.

    Traefik's families put the base labels last (``code, method, protocol, entrypoint``);
    wsgate's put them first.
    """

    def __init__(self, level: str, base: tuple[str, ...], buckets: Sequence[float],
                 header_labels: Mapping[str, str]) -> None:
        self.level = level
        #: ``headerLabels``: extra requests_total labels, each the value of a request header.
        self.header_label_names = tuple(header_labels)
        self.header_names = tuple(h.lower() for h in header_labels.values())
        what = {"entrypoint": "on an entrypoint", "router": "on a router",
                "service": "on a service"}[level]
        req = ("code", "method", "protocol", *base)
        tp = f"traefik_{level}_"
        wp = f"wsgate_{level}_"
        self.requests = Counter(tp + "requests_total",
                                f"How many HTTP requests were processed {what}, by status "
                                f"code, protocol and method.",
                                (*req, *self.header_label_names), registry=None)
        self.requests_tls = Counter(tp + "requests_tls_total",
                                    f"How many HTTP requests with TLS were processed {what}, "
                                    f"by TLS version and cipher.",
                                    ("tls_version", "tls_cipher", *base), registry=None)
        self.duration = Histogram(tp + "request_duration_seconds",
                                  f"How long requests took {what} (for a WebSocket: until "
                                  f"the 101), by status code, protocol and method.",
                                  req, buckets=tuple(buckets), registry=None)
        self.request_bytes = Counter(tp + "requests_bytes_total",
                                     f"Request bytes received {what} (bodies; WebSocket "
                                     f"bytes from the client).", req, registry=None)
        self.response_bytes = Counter(tp + "responses_bytes_total",
                                      f"Response bytes sent {what} (bodies; WebSocket bytes "
                                      f"from the backend).", req, registry=None)
        self.open_ws = Gauge(wp + "open_websockets", f"WebSocket sessions open {what}.",
                             base, registry=None)
        self.ws_messages = Counter(wp + "websocket_messages_total",
                                   f"WebSocket messages relayed {what}, by direction, counted "
                                   f"when the session ends.", (*base, "direction"),
                                   registry=None)
        self.ws_bytes = Counter(wp + "websocket_bytes_total",
                                f"WebSocket bytes relayed {what} after the 101, by direction, "
                                f"counted when the session ends.", (*base, "direction"),
                                registry=None)
        self.ws_closes = Counter(wp + "websocket_closes_total",
                                 f"WebSocket sessions ended {what}, by close code (1006: no "
                                 f"close frame) and by the side that closed first.",
                                 (*base, "code", "closed_by"), registry=None)
        self.ws_sessions = Histogram(wp + "websocket_session_duration_seconds",
                                     f"How long WebSocket sessions lasted {what}.", base,
                                     buckets=SESSION_BUCKETS, registry=None)
        self.ws_failures = Counter(wp + "websocket_handshake_failures_total",
                                   f"Upgrade requests {what} that did not become a session, "
                                   f"by reason.", (*base, "reason"), registry=None)
        self.families: list[MetricWrapperBase] = [
            self.requests, self.requests_tls, self.duration, self.request_bytes,
            self.response_bytes, self.open_ws, self.ws_messages, self.ws_bytes,
            self.ws_closes, self.ws_sessions, self.ws_failures]
        self._traefik_order = {id(f) for f in (self.requests, self.requests_tls, self.duration,
                                                self.request_bytes, self.response_bytes)}
        # (family id, base, rest) -> child; base is this level's own label values.
        self._children: dict[tuple[int, tuple[str, ...], tuple[str, ...]], Any] = {}
        self._tails: dict[tuple[int, tuple[str, ...], tuple[str, ...]], int] = {}
        self._open: dict[tuple[str, ...], int] = {}

    def child(self, family: MetricWrapperBase, base: tuple[str, ...],
              rest: tuple[str, ...] = (), tail: tuple[str, ...] = ()) -> Any:
        """The labelled child; ``tail`` are header label values (after the base labels)."""
        key = (id(family), base, rest + tail)
        found = self._children.get(key)
        if found is None:
            found = family.labels(*self._values(id(family), base, rest, tail))
            self._children[key] = found
            if tail:
                self._tails[key] = len(tail)
        return found

    def _values(self, family_id: int, base: tuple[str, ...], rest: tuple[str, ...],
                tail: tuple[str, ...] = ()) -> tuple[str, ...]:
        if family_id in self._traefik_order:
            return (*rest, *base, *tail)
        return (*base, *rest)

    # -- recording ------------------------------------------------------------------------------
    def request(self, base: tuple[str, ...], record: RequestRecord, code: str, method: str,
                seconds: float, request_bytes: int, response_bytes: int) -> None:
        rest = (code, method, record.protocol)
        if self.header_names:
            extra = tuple(_header(record.headers, h) for h in self.header_names)
            self.child(self.requests, base, rest, extra).inc()
        else:
            self.child(self.requests, base, rest).inc()
        self.child(self.duration, base, rest).observe(seconds)
        if request_bytes:
            self.child(self.request_bytes, base, rest).inc(request_bytes)
        else:
            self.child(self.request_bytes, base, rest)
        if response_bytes:
            self.child(self.response_bytes, base, rest).inc(response_bytes)
        else:
            self.child(self.response_bytes, base, rest)
        if record.tls and record.tls_version:
            self.child(self.requests_tls, base,
                       (record.tls_version, record.tls_cipher)).inc()

    def bytes_only(self, base: tuple[str, ...], rest: tuple[str, ...], request_bytes: int,
                   response_bytes: int) -> None:
        if request_bytes:
            self.child(self.request_bytes, base, rest).inc(request_bytes)
        if response_bytes:
            self.child(self.response_bytes, base, rest).inc(response_bytes)

    def opened(self, base: tuple[str, ...]) -> None:
        self._open[base] = self._open.get(base, 0) + 1
        self.child(self.open_ws, base).inc()

    def closed(self, base: tuple[str, ...], session: SessionRecord, code: str,
               closed_by: str) -> None:
        left = self._open.get(base, 0) - 1
        if left > 0:
            self._open[base] = left
        else:
            self._open.pop(base, None)
        self.child(self.open_ws, base).set(max(left, 0))
        self.child(self.ws_messages, base, (CLIENT_TO_BACKEND,)).inc(session.client_messages)
        self.child(self.ws_messages, base, (BACKEND_TO_CLIENT,)).inc(session.backend_messages)
        self.child(self.ws_bytes, base, (CLIENT_TO_BACKEND,)).inc(session.client_bytes)
        self.child(self.ws_bytes, base, (BACKEND_TO_CLIENT,)).inc(session.backend_bytes)
        self.child(self.ws_closes, base, (code, closed_by)).inc()
        self.child(self.ws_sessions, base).observe(max(session.duration, 0.0))

    def failed(self, base: tuple[str, ...], reason: str) -> None:
        self.child(self.ws_failures, base, (reason,)).inc()

    # -- forgetting -----------------------------------------------------------------------------
    def forget(self, alive: Iterable[str]) -> None:
        """Drop the series of objects no longer configured (first base label not in
        ``alive``), except open-WebSocket gauges of sessions still running."""
        keep = set(alive)
        by_id = {id(f): f for f in self.families}
        for key in list(self._children):
            family_id, base, rest = key
            if base[0] in keep or (family_id == id(self.open_ws) and base in self._open):
                continue
            cut = self._tails.pop(key, 0)
            head, tail = (rest[:-cut], rest[-cut:]) if cut else (rest, ())
            by_id[family_id].remove(*self._values(family_id, base, head, tail))
            del self._children[key]


class _WithoutCreated(Collector):
    """Yields the families without the ``_created`` samples prometheus-client adds (Traefik's
    exposition has none), and without touching the process-global setting that controls them."""

    def __init__(self, families: Iterable[MetricWrapperBase]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        for family in self.families:
            for metric in family.collect():
                if any(s.name.endswith("_created") for s in metric.samples):
                    metric.samples = [s for s in metric.samples
                                      if not s.name.endswith("_created")]
                yield metric


class PrometheusMetrics(Observer):
    """The Prometheus exporter: an observer of the data path and the registry it fills."""

    def __init__(self, config: Prometheus, *, scope: Scope | None = None,
                 process_metrics: bool = True) -> None:
        self.config = config
        self.scope = scope or Scope({}, add_internals=False, switch="metrics")
        buckets = config.buckets or DEFAULT_BUCKETS
        headers = config.header_labels
        self.entrypoint = (_Level("entrypoint", ("entrypoint",), buckets, headers)
                           if config.add_entry_points_labels else None)
        self.router = (_Level("router", ("router", "service"), buckets, headers)
                       if config.add_routers_labels else None)
        self.service = (_Level("service", ("service",), buckets, headers)
                        if config.add_services_labels else None)
        self.open_connections = Gauge(
            "traefik_open_connections",
            "How many open connections exist, by entryPoint and protocol.",
            ("entrypoint", "protocol"), registry=None)
        self.config_reloads = Counter("traefik_config_reloads_total", "Config reloads.",
                                      registry=None)
        self.last_reload_success = Gauge("traefik_config_last_reload_success",
                                         "Last config reload success.", registry=None)
        self.certs_not_after = Gauge("traefik_tls_certs_not_after",
                                     "Certificate expiration timestamp.",
                                     ("cn", "serial", "sans"), registry=None)
        families: list[MetricWrapperBase] = [
            self.config_reloads, self.last_reload_success, self.certs_not_after,
            self.open_connections]
        if self.service is not None:
            self.retries = Counter("traefik_service_retries_total",
                                   "How many request retries happened on a service.",
                                   ("service",), registry=None)
            self.server_up_gauge = Gauge("traefik_service_server_up",
                                         "service server is up, described by gauge value of "
                                         "0 or 1.", ("service", "url"), registry=None)
            self.server_open_ws = Gauge("wsgate_service_server_open_websockets",
                                        "WebSocket sessions open to a server of a service.",
                                        ("service", "url"), registry=None)
            families += [self.retries, self.server_up_gauge, self.server_open_ws]
        for level in self.levels:
            families += level.families
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_WithoutCreated(families))
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._connections: dict[str, Any] = {}
        self._server_children: dict[tuple[str, str], Any] = {}
        self._server_open: dict[tuple[str, str], int] = {}
        self._server_up: dict[tuple[str, str], Any] = {}

    @classmethod
    def from_static(cls, static: StaticConfig, **kwargs: Any) -> PrometheusMetrics | None:
        """The exporter configured by ``metrics.prometheus``, or None when it is absent."""
        metrics = static.metrics
        if metrics is None or metrics.prometheus is None:
            return None
        scope = Scope.from_static(static, add_internals=metrics.add_internals,
                                  switch="metrics")
        return cls(metrics.prometheus, scope=scope, **kwargs)

    @property
    def levels(self) -> list[_Level]:
        return [lv for lv in (self.entrypoint, self.router, self.service) if lv is not None]

    # -- exposition -----------------------------------------------------------------------------
    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition text for an ``Accept`` header, and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    # -- observer -------------------------------------------------------------------------------
    def connection_opened(self, entrypoint: str) -> None:
        self._connection(entrypoint).inc()

    def connection_closed(self, entrypoint: str) -> None:
        self._connection(entrypoint).dec()

    def _connection(self, entrypoint: str) -> Any:
        child = self._connections.get(entrypoint)
        if child is None:
            child = self._connections[entrypoint] = self.open_connections.labels(entrypoint,
                                                                                 "TCP")
        return child

    def request_done(self, record: RequestRecord) -> None:
        if not self.scope.records(record.entrypoint, record.router, record.service):
            return
        code = str(record.status)
        method = metric_method(record.method)
        seconds = max(record.duration, 0.0)
        if self.entrypoint is not None:
            self.entrypoint.request((record.entrypoint,), record, code, method, seconds,
                                    record.request_bytes, record.response_bytes)
        if record.router and self.router is not None:
            self.router.request((record.router, record.service), record, code, method,
                                seconds, record.request_bytes, record.response_bytes)
        if record.service and self.service is not None:
            self.service.request((record.service,), record, code, method, seconds,
                                 record.request_bytes, record.response_bytes)
            if record.retry_attempts:
                self.retries.labels(record.service).inc(record.retry_attempts)

    def websocket_opened(self, session: SessionRecord) -> None:
        record = session.request
        if not self.scope.records(record.entrypoint, record.router, record.service):
            return
        code = str(record.status or 101)
        method = metric_method(record.method)
        seconds = max(record.duration, 0.0)
        base: tuple[str, ...]
        if self.entrypoint is not None:
            base = (record.entrypoint,)
            self.entrypoint.request(base, record, code, method, seconds,
                                    record.request_bytes, record.response_bytes)
            self.entrypoint.opened(base)
        if record.router and self.router is not None:
            base = (record.router, record.service)
            self.router.request(base, record, code, method, seconds, record.request_bytes,
                                record.response_bytes)
            self.router.opened(base)
        if record.service and self.service is not None:
            base = (record.service,)
            self.service.request(base, record, code, method, seconds, record.request_bytes,
                                 record.response_bytes)
            self.service.opened(base)
            if record.server_url:
                key = (record.service, record.server_url)
                self._server_open[key] = self._server_open.get(key, 0) + 1
                self._server_ws(key).inc()

    def websocket_closed(self, session: SessionRecord) -> None:
        record = session.request
        if not self.scope.records(record.entrypoint, record.router, record.service):
            return
        code = str(session.close_code) if session.close_code is not None else NO_CLOSE_FRAME
        closed_by = session.closed_by or "unknown"
        rest = (str(record.status or 101), metric_method(record.method), record.protocol)
        levels: list[tuple[_Level | None, tuple[str, ...]]] = [
            (self.entrypoint, (record.entrypoint,))]
        if record.router:
            levels.append((self.router, (record.router, record.service)))
        if record.service:
            levels.append((self.service, (record.service,)))
        for level, base in levels:
            if level is None:
                continue
            level.bytes_only(base, rest, session.client_bytes, session.backend_bytes)
            level.closed(base, session, code, closed_by)
        if record.service and self.service is not None and record.server_url:
            key = (record.service, record.server_url)
            left = self._server_open.get(key, 0) - 1
            if left > 0:
                self._server_open[key] = left
            else:
                self._server_open.pop(key, None)
            self._server_ws(key).set(max(left, 0))

    def _server_ws(self, key: tuple[str, str]) -> Any:
        child = self._server_children.get(key)
        if child is None:
            child = self._server_children[key] = self.server_open_ws.labels(*key)
        return child

    def handshake_failed(self, entrypoint: str, router: str, service: str,
                         reason: str) -> None:
        if not self.scope.records(entrypoint, router, service):
            return
        if self.entrypoint is not None:
            self.entrypoint.failed((entrypoint,), reason)
        if router and self.router is not None:
            self.router.failed((router, service), reason)
        if service and self.service is not None:
            self.service.failed((service,), reason)

    def config_reloaded(self, success: bool) -> None:
        self.config_reloads.inc()
        self.last_reload_success.set(1 if success else 0)

    def runtime_changed(self, runtime: RuntimeConfig) -> None:
        self.scope.runtime_changed(runtime)
        if self.router is not None:
            self.router.forget(runtime.routers)
        if self.service is not None:
            self.service.forget(runtime.services)
            servers = _server_urls(runtime)
            for key in list(self._server_up):
                if key not in servers:
                    self.server_up_gauge.remove(*key)
                    del self._server_up[key]
            for key in list(self._server_children):
                if key not in servers and key not in self._server_open:
                    self.server_open_ws.remove(*key)
                    del self._server_children[key]

    def server_up(self, service: str, url: str, up: bool) -> None:
        if self.service is None:
            return
        key = (service, url)
        child = self._server_up.get(key)
        if child is None:
            child = self._server_up[key] = self.server_up_gauge.labels(service, url)
        child.set(1 if up else 0)

    def tls_cert_not_after(self, cn: str, sans: Sequence[str], serial: str,
                           not_after: float) -> None:
        self.certs_not_after.labels(cn, serial, ",".join(sans)).set(not_after)


def _server_urls(runtime: RuntimeConfig) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for name, info in runtime.services.items():
        lb = info.config.load_balancer if info.config is not None else None
        if lb is not None:
            out.update((name, s.url) for s in lb.servers)
    return out


class MetricsResource(Resource):
    """``prometheus@internal``: the exposition at any path, in the format the scraper asks."""

    isLeaf = True

    def __init__(self, metrics: PrometheusMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader(b"accept")
        body, content_type = self.metrics.render(accept.decode("latin-1") if accept else "")
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return body

    def render_HEAD(self, request: Request) -> bytes:
        return self.render_GET(request)


__all__ = ["DEFAULT_BUCKETS", "SESSION_BUCKETS", "MetricsResource", "PrometheusMetrics",
           "metric_method"]
