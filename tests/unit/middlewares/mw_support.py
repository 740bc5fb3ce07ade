"""Helpers for the middleware unit tests: contexts, configuration from YAML, a fake clock,
and a synchronous runner for deferred decisions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.http import parse_request_head
from wsgate.middlewares import (
    PASS,
    Answer,
    AuthRequest,
    Blocking,
    Decision,
    Defer,
    Middleware,
    ReadBody,
    RequestContext,
    Sleep,
    build_middleware,
)

CLIENT = "203.0.113.7"
WS_HEADERS = (
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_ctx(target: str = "/", *, method: str = "GET",
             headers: Iterable[tuple[str, str]] = (), host: str = "example.com",
             client_ip: str = CLIENT, tls: bool = False, websocket: bool = False,
             body: bytes | None = None, start: float = 0.0) -> RequestContext:
    """A context parsed from a real request head (so it is what the data path would give)."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host:
        lines.append(f"Host: {host}")
    all_headers = list(headers)
    if websocket:
        all_headers = [*WS_HEADERS, *all_headers]
    if body is not None:
        all_headers.append(("Content-Length", str(len(body))))
    lines += [f"{n}: {v}" for n, v in all_headers]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    head = parse_request_head(raw)
    return RequestContext.from_head(head, client_ip=client_ip, tls=tls, entry_point="web",
                                    router="r@file", start=start)


def dynamic(middlewares: dict[str, Any], routers: dict[str, Any] | None = None,
            services: dict[str, Any] | None = None) -> DynamicConfig:
    tree = {"http": {"middlewares": middlewares}}
    if routers is not None:
        tree["http"]["routers"] = routers
    if services is not None:
        tree["http"]["services"] = services
    return decode(DynamicConfig, load_yaml(json.dumps(tree), "test.yml"), strict=True).value


def build(section: dict[str, Any], name: str = "m@file", **kw: Any) -> Middleware:
    """A middleware from its YAML section, e.g. ``{"addPrefix": {"prefix": "/api"}}``."""
    config = dynamic({"m": section}).http.middlewares["m"]
    return build_middleware(name, config, **kw)


def runtime_of(middlewares: dict[str, Any], router_middlewares: list[str]) -> RuntimeConfig:
    config = dynamic(
        middlewares,
        routers={"r": {"rule": "PathPrefix(`/`)", "service": "s",
                       "middlewares": router_middlewares}},
        services={"s": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}},
                  "errors-svc": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}})
    return build_runtime({"file": config}, entry_points=["web"])


Handler = Callable[[object], object]


def settle(decision: Decision, *, auth: Callable[[AuthRequest], object] | None = None,
           body: bytes | object | None = None, slept: list[float] | None = None) -> Decision:
    """Resolve deferred work synchronously: Sleep is recorded, Blocking is called, ReadBody
    gets ``body``, AuthRequest goes to ``auth``."""
    while isinstance(decision, Defer):
        work = decision.work
        if isinstance(work, Sleep):
            if slept is not None:
                slept.append(work.seconds)
            result: object = None
        elif isinstance(work, Blocking):
            result = work.call()
        elif isinstance(work, ReadBody):
            result = body
        elif isinstance(work, AuthRequest):
            assert auth is not None, "unexpected auth request"
            result = auth(work)
        else:  # pragma: no cover
            raise AssertionError(work)
        decision = decision.resume(result)
    return decision


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for n, v in headers:
        if n.lower() == name.lower():
            return v
    return None


def headers_named(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name.lower()]


__all__ = ["CLIENT", "PASS", "WS_HEADERS", "Answer", "FakeClock", "build", "dynamic",
           "header", "headers_named", "make_ctx", "runtime_of", "settle"]
