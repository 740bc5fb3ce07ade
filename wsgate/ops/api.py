"""Traefik's API (``api@internal``): the runtime configuration as Traefik's JSON.

The shapes are Traefik's: an object's configuration under its Traefik keys (empty values
left out, durations as Go duration text), then ``error`` (its problems), ``status``
(``enabled``, ``disabled`` or ``warning``), ``using``/``usedBy``, and in the listings ``name``,
``provider``, ``type`` (services, middlewares), ``priorityStr`` (routers) and ``serverStatus``
(loadBalancer services: ``{url: "UP" | "DOWN"}``). Listings take Traefik's ``page``,
``per_page`` (default 100, ``X-Next-Page`` header), ``search``, ``status``, ``serviceName``,
``middlewareName``, ``sortBy`` and ``direction`` parameters.

Everything up to :class:`ApiResource` is pure: functions from a RuntimeConfig (and the static
configuration) to dicts, tested without sockets. The resource is the thin twisted.web glue.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from twisted.web.resource import Resource
from twisted.web.server import Request

import wsgate
from wsgate.config.schema import Duration, model_fields
from wsgate.ops.accesslog import rfc3339_nano

if TYPE_CHECKING:
    from wsgate.config.runtime import MiddlewareInfo, RouterInfo, RuntimeConfig, ServiceInfo
    from wsgate.config.static import StaticConfig

#: service name -> {server URL: "UP" | "DOWN"}, or None for "no health information".
ServerStatus = Callable[[str], Mapping[str, str] | None]
RuntimeGetter = Callable[[], "RuntimeConfig | None"]

DEFAULT_PER_PAGE = 100
NEXT_PAGE_HEADER = "X-Next-Page"
CODENAME = "wsgate"
UP = "UP"
DOWN = "DOWN"
#: Provider keys of the static configuration and the names Traefik's overview gives them.
PROVIDER_TITLES = (("docker", "Docker"), ("swarm", "Swarm"), ("file", "File"),
                   ("kubernetes_crd", "KubernetesCRD"))


class ApiError(Exception):
    """A request the API answers with an error status and Traefik's ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# =========================================================================== values

def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` writes it: ``0s``, ``100ms``, ``1m30s``."""
    ns = round(seconds * 1_000_000_000)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def _is_duration(tp: Any) -> bool:
    if tp is Duration:
        return True
    return any(arg is Duration for arg in typing.get_args(tp))


def _omitted(raw: Any, f: dataclasses.Field[Any]) -> bool:
    """Go's ``omitempty`` on a configured value, keeping an explicit false or zero that
    differs from a true or non-zero default (``passHostHeader: false``)."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if raw is None:
        return True
    if isinstance(raw, (bool, int, float)) and f.default is None:
        return False  # an optional value that was set, like Go's pointer fields (weight: 0)
    if isinstance(raw, bool):
        return not raw and default is not True
    if isinstance(raw, (int, float)):
        nonzero_default = (isinstance(default, (int, float)) and not isinstance(default, bool)
                           and default != 0)
        return raw == 0 and not nonzero_default
    if isinstance(raw, (str, tuple, list, dict, types.MappingProxyType)):
        return len(raw) == 0
    # A nested model given by a factory (always present) is left out when it says nothing;
    # an optional one that is present is shown even when empty (``tls: {}`` means TLS).
    return f.default_factory is not dataclasses.MISSING and not model_json(raw)


def _is_default(raw: Any, f: dataclasses.Field[Any]) -> bool:
    if f.default is not dataclasses.MISSING:
        return bool(raw == f.default)
    if f.default_factory is not dataclasses.MISSING:
        return bool(raw == f.default_factory())
    return False


def model_json(value: Any, tp: Any = None, *, extension: bool = False) -> Any:
    """A configuration model as Traefik's JSON: keys spelled as in the configuration, empty
    values left out, durations as Go duration text. wsgate's extension keys appear only
    where they differ from their defaults, so a Traefik configuration shows none."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f, ftp in model_fields(type(value)):
            raw = getattr(value, f.name)
            ext = extension or bool(f.metadata.get("wsgate"))
            if _omitted(raw, f) or (ext and _is_default(raw, f)):
                continue
            out[f.metadata["key"]] = model_json(raw, ftp, extension=ext)
        return out
    if isinstance(value, (tuple, list)):
        return [model_json(v, extension=extension) for v in value]
    if isinstance(value, (dict, types.MappingProxyType)):
        return {str(k): model_json(v, extension=extension) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool) and tp is not None \
            and _is_duration(tp):
        return go_duration(float(value))
    return value


def _errors(diagnostics: Sequence[Any]) -> list[str]:
    return [str(d) for d in diagnostics]


def _type_of(kind: str) -> str:
    return kind.lower()


# =========================================================================== objects

def router_json(info: RouterInfo, *, named: bool = True) -> dict[str, Any]:
    """A router as Traefik shows it (``named``: with name, provider and priorityStr)."""
    out = model_json(info.config)
    if info.entry_points:
        out["entryPoints"] = list(info.entry_points)
    else:
        out.pop("entryPoints", None)
    if info.priority:
        out["priority"] = info.priority
    if info.config.tls is not None:
        tls = out.get("tls") or {}
        tls.setdefault("options", info.config.tls.options or "default")
        out["tls"] = tls
    if info.errors:
        out["error"] = _errors(info.errors)
    out["status"] = info.status
    if info.using:
        out["using"] = list(info.using)
    if named:
        out["name"] = info.name
        out["provider"] = info.provider
        out["priorityStr"] = str(info.priority)
    return out


def server_statuses(info: ServiceInfo, known: Mapping[str, str] | None) -> dict[str, str]:
    """``serverStatus`` of a loadBalancer service: every balanced server UP unless health
    information says otherwise (as Traefik, which marks them UP when the service is built)."""
    lb = info.config.load_balancer if info.config is not None else None
    if lb is None:
        return dict(known or {})
    out = {s.url: UP for s in lb.servers if s.effective_weight > 0}
    for url, status in (known or {}).items():
        if url in out:
            out[url] = status
    return out


def service_json(info: ServiceInfo, *, server_status: ServerStatus | None = None,
                 named: bool = True) -> dict[str, Any]:
    out = model_json(info.config) if info.config is not None else {}
    if info.errors:
        out["error"] = _errors(info.errors)
    out["status"] = info.status
    if info.used_by:
        out["usedBy"] = list(info.used_by)
    statuses = server_statuses(info, server_status(info.name) if server_status else None)
    if statuses:
        out["serverStatus"] = statuses
    if named:
        out["name"] = info.name
        out["provider"] = info.provider
        if info.config is not None and info.kind:
            out["type"] = _type_of(info.kind)
    return out


def middleware_json(info: MiddlewareInfo, *, named: bool = True) -> dict[str, Any]:
    out = model_json(info.config)
    if info.errors:
        out["error"] = _errors(info.errors)
    out["status"] = info.status
    if info.used_by:
        out["usedBy"] = list(info.used_by)
    if named:
        out["name"] = info.name
        out["provider"] = info.provider
        if info.kind:
            out["type"] = _type_of(info.kind)
    return out


def rawdata(runtime: RuntimeConfig, *, server_status: ServerStatus | None = None
            ) -> dict[str, Any]:
    """``/api/rawdata``: every router, middleware and service by qualified name."""
    out: dict[str, Any] = {}
    if runtime.routers:
        out["routers"] = {n: router_json(i, named=False) for n, i in runtime.routers.items()}
    if runtime.middlewares:
        out["middlewares"] = {n: middleware_json(i, named=False)
                              for n, i in runtime.middlewares.items()}
    if runtime.services:
        out["services"] = {n: service_json(i, server_status=server_status, named=False)
                           for n, i in runtime.services.items()}
    return out


def _section(statuses: Sequence[str]) -> dict[str, int]:
    return {"total": len(statuses),
            "warnings": sum(1 for s in statuses if s == "warning"),
            "errors": sum(1 for s in statuses if s == "disabled")}


def _zero() -> dict[str, int]:
    return {"total": 0, "warnings": 0, "errors": 0}


def overview(static: StaticConfig, runtime: RuntimeConfig) -> dict[str, Any]:
    """``/api/overview``: counts with warnings and errors, features and providers."""
    prometheus = static.metrics.prometheus if static.metrics is not None else None
    out: dict[str, Any] = {
        "http": {
            "routers": _section([r.status for r in runtime.routers.values()]),
            "services": _section([s.status for s in runtime.services.values()]),
            "middlewares": _section([m.status for m in runtime.middlewares.values()]),
        },
        "tcp": {"routers": _zero(), "services": _zero(), "middlewares": _zero()},
        "udp": {"routers": _zero(), "services": _zero()},
        "features": {"tracing": "", "metrics": "Prometheus" if prometheus is not None else "",
                     "accessLog": static.access_log is not None},
    }
    providers = [title for attr, title in PROVIDER_TITLES
                 if getattr(static.providers, attr, None) is not None]
    if providers:
        out["providers"] = providers
    return out


def entrypoint_json(name: str, entry_point: Any) -> dict[str, Any]:
    out = model_json(entry_point)
    out["name"] = name
    return out


def entrypoints(static: StaticConfig) -> list[dict[str, Any]]:
    return [entrypoint_json(n, ep) for n, ep in sorted(static.entry_points.items())]


def version(static: StaticConfig, start_time: float) -> dict[str, Any]:
    """``/api/version``, with Traefik's key spellings."""
    out: dict[str, Any] = {"Version": wsgate.__version__, "Codename": CODENAME,
                           "startDate": rfc3339_nano(start_time, local=True)}
    if static.api is not None:
        if static.api.disable_dashboard_ad:
            out["disableDashboardAd"] = True
        if static.api.dashboard_name:
            out["dashboardName"] = static.api.dashboard_name
    return out


def diagnostics(runtime: RuntimeConfig) -> list[dict[str, Any]]:
    """wsgate's ``/api/wsgate/diagnostics``: problems not tied to one object."""
    return [{"message": d.message, "path": d.path, "level": d.level,
             "location": str(d.mark) if d.mark is not None else ""}
            for d in runtime.diagnostics]


# =========================================================================== listings

def _query_int(query: Mapping[str, str], key: str, default: int) -> int:
    raw = query.get(key, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ApiError(400, f"invalid request: {key}: {value}")
    return value


def paginate(items: Sequence[Any], query: Mapping[str, str]) -> tuple[list[Any], int]:
    """Traefik's pagination: the page and the number of the next page (1 after the last)."""
    per_page = _query_int(query, "per_page", DEFAULT_PER_PAGE)
    page = _query_int(query, "page", 1)
    start = (page - 1) * per_page
    if start != 0 and start >= len(items):
        raise ApiError(400, f"invalid request: page: {page}, per_page: {per_page}")
    end = min(start + per_page, len(items))
    next_page = page + 1 if page * per_page < len(items) else 1
    return list(items[start:end]), next_page


def _searched(query: Mapping[str, str], *values: str) -> bool:
    search = query.get("search", "").lower()
    return not search or any(search in v.lower() for v in values)


def _status_ok(query: Mapping[str, str], status: str) -> bool:
    wanted = query.get("status", "")
    return not wanted or wanted.lower() == status.lower()


def _service_ok(query: Mapping[str, str], service: str) -> bool:
    wanted = query.get("serviceName", "")
    if not wanted:
        return True
    if "@" in service:
        return wanted == service
    return wanted.partition("@")[0] == service


def _sorted(items: list[dict[str, Any]], query: Mapping[str, str],
            keys: Mapping[str, Callable[[dict[str, Any]], Any]]) -> list[dict[str, Any]]:
    descending = query.get("direction", "asc") == "desc"
    by = keys.get(query.get("sortBy", ""))
    if by is None:
        return sorted(items, key=lambda i: i["name"], reverse=descending)
    key = by
    return sorted(items, key=lambda i: (key(i), i["name"]), reverse=descending)


def list_routers(runtime: RuntimeConfig, query: Mapping[str, str]
                 ) -> tuple[list[dict[str, Any]], int]:
    items = [router_json(info) for name, info in runtime.routers.items()
             if _status_ok(query, info.status) and _searched(query, info.config.rule, name)
             and _service_ok(query, info.config.service)
             and (not query.get("middlewareName")
                  or query["middlewareName"] in info.config.middlewares)]
    items = _sorted(items, query, {
        "provider": lambda i: i["provider"], "priority": lambda i: i.get("priority", 0),
        "status": lambda i: i["status"], "rule": lambda i: i.get("rule", ""),
        "service": lambda i: i.get("service", ""),
        "entryPoints": lambda i: len(i.get("entryPoints", ()))})
    return paginate(items, query)


def list_services(runtime: RuntimeConfig, query: Mapping[str, str], *,
                  server_status: ServerStatus | None = None
                  ) -> tuple[list[dict[str, Any]], int]:
    items = [service_json(info, server_status=server_status)
             for name, info in runtime.services.items()
             if _status_ok(query, info.status) and _searched(query, name)]
    items = _sorted(items, query, {
        "type": lambda i: i.get("type", ""), "provider": lambda i: i["provider"],
        "status": lambda i: i["status"],
        "servers": lambda i: len(i.get("loadBalancer", {}).get("servers", ()))})
    return paginate(items, query)


def list_middlewares(runtime: RuntimeConfig, query: Mapping[str, str]
                     ) -> tuple[list[dict[str, Any]], int]:
    items = [middleware_json(info) for name, info in runtime.middlewares.items()
             if _status_ok(query, info.status) and _searched(query, name)]
    items = _sorted(items, query, {
        "type": lambda i: i.get("type", ""), "provider": lambda i: i["provider"],
        "status": lambda i: i["status"]})
    return paginate(items, query)


# =========================================================================== resource

@dataclasses.dataclass
class ApiContext:
    """What the API reads: the static configuration, the runtime now in force, health."""

    static: StaticConfig
    runtime: RuntimeGetter
    server_status: ServerStatus | None = None
    start_time: float = 0.0
    #: Live counts for ``/api/wsgate/live`` (a callable returning a JSON-able snapshot).
    live: Callable[[], Any] | None = None

    def current(self) -> RuntimeConfig:
        runtime = self.runtime()
        if runtime is None:
            from wsgate.config.runtime import RuntimeConfig

            return RuntimeConfig()
        return runtime


def api_response(ctx: ApiContext, segments: Sequence[str], query: Mapping[str, str]
                 ) -> tuple[Any, dict[str, str]]:
    """The JSON body and extra headers for ``/api/<segments...>``; raises ApiError."""
    runtime = ctx.current()
    headers: dict[str, str] = {}
    match list(segments):
        case ["rawdata"]:
            return rawdata(runtime, server_status=ctx.server_status), headers
        case ["overview"]:
            return overview(ctx.static, runtime), headers
        case ["version"]:
            return version(ctx.static, ctx.start_time), headers
        case ["entrypoints"]:
            page, nxt = paginate(entrypoints(ctx.static), query)
            headers[NEXT_PAGE_HEADER] = str(nxt)
            return page, headers
        case ["entrypoints", name]:
            ep = ctx.static.entry_points.get(name)
            if ep is None:
                raise ApiError(404, f"entry point not found: {name}")
            return entrypoint_json(name, ep), headers
        case ["http", "routers"]:
            page, nxt = list_routers(runtime, query)
            headers[NEXT_PAGE_HEADER] = str(nxt)
            return page, headers
        case ["http", "routers", name]:
            router = runtime.routers.get(name)
            if router is None:
                raise ApiError(404, f"router not found: {name}")
            return router_json(router), headers
        case ["http", "services"]:
            page, nxt = list_services(runtime, query, server_status=ctx.server_status)
            headers[NEXT_PAGE_HEADER] = str(nxt)
            return page, headers
        case ["http", "services", name]:
            service = runtime.services.get(name)
            if service is None:
                raise ApiError(404, f"service not found: {name}")
            return service_json(service, server_status=ctx.server_status), headers
        case ["http", "middlewares"]:
            page, nxt = list_middlewares(runtime, query)
            headers[NEXT_PAGE_HEADER] = str(nxt)
            return page, headers
        case ["http", "middlewares", name]:
            middleware = runtime.middlewares.get(name)
            if middleware is None:
                raise ApiError(404, f"middleware not found: {name}")
            return middleware_json(middleware), headers
        case ["wsgate", "diagnostics"]:
            return diagnostics(runtime), headers
        case ["wsgate", "live"] if ctx.live is not None:
            return ctx.live(), headers
    raise ApiError(404, "404 page not found")


def split_api_path(path: str, base_path: str) -> list[str] | None:
    """The segments after ``<basePath>/api/`` (each percent-decoded), or None elsewhere."""
    prefix = base_path.rstrip("/") + "/api/"
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix):]
    return [unquote(s) for s in rest.split("/")] if rest else []


class ApiResource(Resource):
    """``<basePath>/api/...`` answered from an :class:`ApiContext` (GET and HEAD only)."""

    isLeaf = True

    def __init__(self, ctx: ApiContext) -> None:
        super().__init__()
        self.ctx = ctx

    def render(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            return _json({"message": "method not allowed"})
        path = (request.path or b"/").decode("latin-1")
        base = self.ctx.static.api.base_path if self.ctx.static.api is not None else "/"
        segments = split_api_path(path, base)
        query = {k.decode("latin-1"): v[0].decode("utf-8", "replace")
                 for k, v in (request.args or {}).items() if v}
        try:
            if segments is None:
                raise ApiError(404, "404 page not found")
            body, headers = api_response(self.ctx, segments, query)
        except ApiError as exc:
            request.setResponseCode(exc.status)
            return _json({"message": exc.message})
        for key, value in headers.items():
            request.setHeader(key.encode("latin-1"), value.encode("latin-1"))
        return _json(body)


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")


__all__ = [
    "ApiContext", "ApiError", "ApiResource", "api_response", "diagnostics", "entrypoint_json",
    "entrypoints", "go_duration", "list_middlewares", "list_routers", "list_services",
    "middleware_json", "model_json", "overview", "paginate", "rawdata", "router_json",
    "server_statuses", "service_json", "split_api_path", "version",
]
