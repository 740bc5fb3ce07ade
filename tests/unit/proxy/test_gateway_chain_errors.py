"""A router whose middleware cannot be built is disabled, and says why, as in Traefik."""

from __future__ import annotations

from twisted.internet.task import Clock

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.runtime import build_runtime
from wsgate.config.schema import decode
from wsgate.config.static import ServersTransport
from wsgate.config.tree import from_plain
from wsgate.internal.registry import ServiceRegistry
from wsgate.proxy.gateway import Gateway
from wsgate.rules import RouteRequest


class _Reactor(Clock):
    def connectTCP(self, *args: object, **kwargs: object) -> None:  # pragma: no cover
        raise AssertionError("no connection expected")


def test_bad_middleware_disables_router_in_runtime_and_routing() -> None:
    dynamic = decode(DynamicConfig, from_plain({"http": {
        "routers": {
            "good": {"rule": "Host(`good.test`)", "service": "s"},
            "bad": {"rule": "Host(`bad.test`)", "service": "s", "middlewares": ["broken"]},
        },
        "middlewares": {"broken": {"basicAuth": {"users": ["not a user line"]}}},
        "services": {"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:1"}]}}},
    }}, Mark("test.yml")))
    runtime = build_runtime({"file": dynamic}, entry_points=["web"])
    assert runtime.routers["bad@file"].status == "enabled"  # the model alone cannot tell
    gateway = Gateway(_Reactor(), ServiceRegistry(), ServersTransport())
    gateway.apply(runtime)
    assert gateway.runtime is not None
    bad = gateway.runtime.routers["bad@file"]
    assert bad.status == "disabled"
    assert any("broken@file" in d.message and "basicAuth.users" in d.message
               for d in bad.errors), bad.errors
    assert gateway.runtime.routers["good@file"].status == "enabled"

    def route(host: str) -> object:
        return gateway.routing.route("web", RouteRequest.build("GET", host, "/", [],
                                                                "127.0.0.1"))

    assert route("bad.test") is None
    assert route("good.test") is not None
