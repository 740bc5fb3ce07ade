"""The API's JSON, built from a RuntimeConfig as Traefik shapes it."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from twisted.web.test.requesthelper import DummyRequest

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.config.static import StaticConfig, finalize_static
from wsgate.ops import api
from wsgate.ops.api import ApiContext, ApiError, ApiResource, api_response

DYNAMIC = """
http:
  routers:
    chat:
      rule: PathPrefix(`/chat`)
      service: chat
      entryPoints: [web]
      middlewares: [strip]
    secure:
      rule: Host(`secure.example`)
      service: chat
      tls: {}
    broken:
      rule: Path(`/broken`)
      service: chat
      middlewares: [missing]
    orphan:
      rule: Path(`/orphan`)
      service: nowhere
      priority: 5
  middlewares:
    strip:
      stripPrefix: {prefixes: [/chat]}
    auth:
      basicAuth: {users: ["u:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"]}
  services:
    chat:
      loadBalancer:
        passHostHeader: false
        servers:
          - url: http://127.0.0.1:9001
          - url: http://127.0.0.1:9002
          - url: http://127.0.0.1:9003
            weight: 0
    canary:
      weighted:
        services: [{name: chat, weight: 3}]
"""

STATIC = """
entryPoints:
  web:
    address: ":8000"
    transport:
      respondingTimeouts: {readTimeout: 90s}
  websecure: {address: ":8443"}
api: {insecure: true, dashboardName: Lab}
metrics: {prometheus: {}}
accessLog: {}
providers:
  file: {filename: dyn.yml}
"""


def static_config(text: str = STATIC) -> StaticConfig:
    return finalize_static(decode(StaticConfig, load_yaml(textwrap.dedent(text),
                                                          "static.yml")).value)


def runtime(text: str = DYNAMIC) -> RuntimeConfig:
    dyn = decode(DynamicConfig, load_yaml(textwrap.dedent(text), "dyn.yml"))
    return build_runtime({"file": dyn}, entry_points=["web", "websecure", "traefik"],
                         internal_services=("api@internal",))


@pytest.fixture(scope="module")
def rt() -> RuntimeConfig:
    return runtime()


def test_router_shape(rt: RuntimeConfig) -> None:
    assert api.router_json(rt.routers["chat@file"]) == {
        "entryPoints": ["web"], "middlewares": ["strip"], "service": "chat",
        "rule": "PathPrefix(`/chat`)", "priority": 19, "status": "enabled",
        "using": ["web"], "name": "chat@file", "provider": "file", "priorityStr": "19"}


def test_router_with_tls_and_default_entrypoints(rt: RuntimeConfig) -> None:
    router = api.router_json(rt.routers["secure@file"])
    assert router["tls"] == {"options": "default"}
    assert router["entryPoints"] == ["web", "websecure"]
    assert router["using"] == ["web", "websecure"]


def test_disabled_router_has_errors_and_no_using(rt: RuntimeConfig) -> None:
    router = api.router_json(rt.routers["broken@file"])
    assert router["status"] == "disabled"
    assert "using" not in router
    (error,) = router["error"]
    assert 'middleware "missing@file" does not exist' in error
    orphan = api.router_json(rt.routers["orphan@file"])
    assert orphan["priority"] == 5 and orphan["priorityStr"] == "5"
    assert 'the service "nowhere@file" does not exist' in orphan["error"][0]


def test_service_shape_with_health(rt: RuntimeConfig) -> None:
    health = {"chat@file": {"http://127.0.0.1:9002": "DOWN"}}
    service = api.service_json(rt.services["chat@file"], server_status=health.get)
    assert service["loadBalancer"]["passHostHeader"] is False
    assert service["loadBalancer"]["servers"][0] == {"url": "http://127.0.0.1:9001"}
    assert service["loadBalancer"]["servers"][2] == {"url": "http://127.0.0.1:9003",
                                                     "weight": 0}
    assert service["loadBalancer"]["responseForwarding"] == {"flushInterval": "100ms"}
    # the weight-0 server is not balanced, so it has no status
    assert service["serverStatus"] == {"http://127.0.0.1:9001": "UP",
                                       "http://127.0.0.1:9002": "DOWN"}
    assert service["status"] == "enabled"
    assert service["usedBy"] == ["broken@file", "canary@file", "chat@file", "secure@file"]
    assert (service["name"], service["provider"], service["type"]) == (
        "chat@file", "file", "loadbalancer")
    canary = api.service_json(rt.services["canary@file"])
    assert canary["type"] == "weighted"
    assert canary["weighted"]["services"] == [{"name": "chat", "weight": 3}]
    assert "serverStatus" not in canary


def test_internal_service_shape(rt: RuntimeConfig) -> None:
    assert api.service_json(rt.services["api@internal"]) == {
        "status": "enabled", "name": "api@internal", "provider": "internal"}


def test_middleware_shape(rt: RuntimeConfig) -> None:
    strip = api.middleware_json(rt.middlewares["strip@file"])
    assert strip == {"stripPrefix": {"prefixes": ["/chat"]}, "status": "enabled",
                     "usedBy": ["chat@file"], "name": "strip@file", "provider": "file",
                     "type": "stripprefix"}
    auth = api.middleware_json(rt.middlewares["auth@file"])
    assert auth["type"] == "basicauth" and "usedBy" not in auth


def test_rawdata(rt: RuntimeConfig) -> None:
    raw = api.rawdata(rt)
    assert set(raw) == {"routers", "middlewares", "services"}
    assert set(raw["routers"]) == {"chat@file", "secure@file", "broken@file", "orphan@file"}
    assert "name" not in raw["routers"]["chat@file"]
    assert raw["services"]["chat@file"]["serverStatus"]["http://127.0.0.1:9001"] == "UP"
    assert api.rawdata(RuntimeConfig()) == {}


def test_overview(rt: RuntimeConfig) -> None:
    out = api.overview(static_config(), rt)
    assert out["http"]["routers"] == {"total": 4, "warnings": 0, "errors": 2}
    assert out["http"]["services"]["total"] == 3
    assert out["http"]["middlewares"] == {"total": 2, "warnings": 0, "errors": 0}
    assert out["tcp"]["routers"] == {"total": 0, "warnings": 0, "errors": 0}
    assert set(out["udp"]) == {"routers", "services"}
    assert out["features"] == {"tracing": "", "metrics": "Prometheus", "accessLog": True}
    assert out["providers"] == ["File"]


def test_entrypoints_and_version() -> None:
    static = static_config()
    eps = api.entrypoints(static)
    assert [e["name"] for e in eps] == ["traefik", "web", "websecure"]
    web = eps[1]
    assert web["address"] == ":8000"
    assert web["transport"]["respondingTimeouts"]["readTimeout"] == "1m30s"
    assert web["transport"]["respondingTimeouts"]["idleTimeout"] == "3m0s"
    assert web["transport"]["lifeCycle"]["graceTimeOut"] == "10s"
    version = api.version(static, 1700000000.0)
    assert version["Codename"] == "wsgate" and version["dashboardName"] == "Lab"
    assert set(version) >= {"Version", "Codename", "startDate"}


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.1, "100ms"), (1.5, "1.5s"), (90, "1m30s"), (180, "3m0s"),
    (3600, "1h0m0s"), (3725.5, "1h2m5.5s"), (2e-9, "2ns"), (1.5e-6, "1.5µs"), (-2, "-2s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert api.go_duration(seconds) == text


def test_wsgate_extension_keys_appear_only_when_set() -> None:
    rt = runtime("""
    http:
      routers:
        plain: {rule: "Path(`/a`)", service: s}
        limited: {rule: "Path(`/b`)", service: s, wsgate: {idleTimeout: 30s}}
      services:
        s: {loadBalancer: {servers: [{url: "http://127.0.0.1:1"}]}}
    """)
    assert "wsgate" not in api.router_json(rt.routers["plain@file"])
    assert api.router_json(rt.routers["limited@file"])["wsgate"] == {"idleTimeout": "30s"}


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def test_listing_filters_and_sorting(rt: RuntimeConfig) -> None:
    items, next_page = api.list_routers(rt, {})
    assert names(items) == ["broken@file", "chat@file", "orphan@file", "secure@file"]
    assert next_page == 1
    assert names(api.list_routers(rt, {"status": "disabled"})[0]) == ["broken@file",
                                                                      "orphan@file"]
    assert names(api.list_routers(rt, {"search": "SECURE.example"})[0]) == ["secure@file"]
    assert names(api.list_routers(rt, {"serviceName": "nowhere@file"})[0]) == ["orphan@file"]
    assert names(api.list_routers(rt, {"middlewareName": "strip"})[0]) == ["chat@file"]
    by_priority = api.list_routers(rt, {"sortBy": "priority", "direction": "desc"})[0]
    assert names(by_priority)[-1] == "orphan@file"
    assert names(api.list_services(rt, {"search": "can"})[0]) == ["canary@file"]
    assert names(api.list_middlewares(rt, {"sortBy": "type"})[0]) == ["auth@file",
                                                                     "strip@file"]


def test_pagination(rt: RuntimeConfig) -> None:
    page, next_page = api.list_routers(rt, {"per_page": "3"})
    assert len(page) == 3 and next_page == 2
    page, next_page = api.list_routers(rt, {"per_page": "3", "page": "2"})
    assert names(page) == ["secure@file"] and next_page == 1
    with pytest.raises(ApiError) as err:
        api.list_routers(rt, {"per_page": "3", "page": "3"})
    assert err.value.status == 400
    assert err.value.message == "invalid request: page: 3, per_page: 3"
    with pytest.raises(ApiError):
        api.list_routers(rt, {"per_page": "zero"})


def context(rt: RuntimeConfig) -> ApiContext:
    return ApiContext(static=static_config(), runtime=lambda: rt, start_time=1.0,
                      live=lambda: {"websockets": {"total": 0}})


def test_api_response_routes(rt: RuntimeConfig) -> None:
    ctx = context(rt)
    body, headers = api_response(ctx, ["http", "routers"], {"per_page": "1"})
    assert headers == {"X-Next-Page": "2"} and len(body) == 1
    assert api_response(ctx, ["http", "services", "chat@file"], {})[0]["name"] == "chat@file"
    assert api_response(ctx, ["entrypoints", "web"], {})[0]["name"] == "web"
    assert api_response(ctx, ["wsgate", "live"], {})[0] == {"websockets": {"total": 0}}
    assert api_response(ctx, ["wsgate", "diagnostics"], {})[0] == []
    for segments, message in ((["http", "routers", "nope@file"], "router not found: nope@file"),
                              (["http", "services", "x"], "service not found: x"),
                              (["http", "middlewares", "x"], "middleware not found: x"),
                              (["entrypoints", "x"], "entry point not found: x"),
                              (["tcp", "routers"], "404 page not found")):
        with pytest.raises(ApiError) as err:
            api_response(ctx, segments, {})
        assert (err.value.status, err.value.message) == (404, message)


def test_api_without_runtime_yet() -> None:
    ctx = ApiContext(static=static_config(), runtime=lambda: None)
    assert api_response(ctx, ["http", "routers"], {})[0] == []
    assert api_response(ctx, ["rawdata"], {})[0] == {}


def test_split_api_path() -> None:
    assert api.split_api_path("/api/http/routers/a%2Fb@file", "/") == ["http", "routers",
                                                                      "a/b@file"]
    assert api.split_api_path("/tools/api/rawdata", "/tools") == ["rawdata"]
    assert api.split_api_path("/tools/api/rawdata", "/tools/") == ["rawdata"]
    assert api.split_api_path("/other", "/") is None


def render(resource: ApiResource, path: bytes, args: dict[bytes, list[bytes]] | None = None,
           method: bytes = b"GET") -> tuple[int, dict[bytes, list[bytes]], Any]:
    request = DummyRequest(path.strip(b"/").split(b"/"))
    request.path = path
    request.method = method
    request.args = args or {}
    body = resource.render(request)
    headers = dict(request.responseHeaders.getAllRawHeaders())
    return request.responseCode or 200, headers, json.loads(body)


def test_resource(rt: RuntimeConfig) -> None:
    resource = ApiResource(context(rt))
    code, headers, body = render(resource, b"/api/http/routers", {b"per_page": [b"2"]})
    assert code == 200 and headers[b"Content-Type"] == [b"application/json"]
    assert headers[b"X-Next-Page"] == [b"2"] and len(body) == 2
    code, _, body = render(resource, b"/api/http/routers/chat%40file")
    assert code == 200 and body["name"] == "chat@file"
    code, _, body = render(resource, b"/api/http/routers/none")
    assert (code, body) == (404, {"message": "router not found: none"})
    code, _, body = render(resource, b"/api/http/routers", {b"page": [b"-1"]})
    assert code == 400 and body["message"] == "invalid request: page: -1"
    code, headers, _ = render(resource, b"/api/overview", method=b"POST")
    assert code == 405
