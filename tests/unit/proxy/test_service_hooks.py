"""Services over services as the gateway builds them, and what a request collects on its way
down (mirrors, failover steps), then what the hooks do with it at each point of an exchange.
The exchange and the network are stand-ins: no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock, StringTransport

from wsgate.config import dynamic
from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.runtime import build_runtime
from wsgate.config.schema import decode
from wsgate.config.tree import from_plain
from wsgate.http.body import BodyReader
from wsgate.http.parser import RequestHeadParser
from wsgate.internal.registry import ServiceRegistry
from wsgate.proxy import service_hooks
from wsgate.proxy.backend import BackendConnection, parse_backend_url
from wsgate.proxy.failover import TOO_LARGE_BODY
from wsgate.proxy.gateway import Gateway
from wsgate.proxy.mirror_client import MirrorCopy
from wsgate.proxy.routing import (
    FailoverService,
    HighestRandomWeightService,
    LeafService,
    MirroringService,
    ProxyService,
    WeightedService,
)
from wsgate.proxy.service_hooks import RequestHooks

A, B, C = "http://10.0.0.1:80", "http://10.0.0.2:80", "http://10.0.0.3:80"
CLIENT = "192.0.2.1"


def lb(*urls: str, **extra: Any) -> dict[str, Any]:
    return {"loadBalancer": {"servers": [{"url": u} for u in urls], **extra}}


def built(services: dict[str, Any]) -> dict[str, ProxyService]:
    config = {"http": {
        "routers": {name: {"rule": f"Host(`{name}.test`)", "service": name}
                    for name in services},
        "services": services}}
    decoded = decode(DynamicConfig, from_plain(config, Mark("test")))
    runtime = build_runtime({"file": decoded}, entry_points=["web"])
    for name, info in runtime.services.items():
        assert info.status != "disabled", (name, info.error_messages)
    gw = Gateway(MemoryReactorClock(), ServiceRegistry(), dynamic.ServersTransport())
    gw.apply(runtime)
    return {name.removesuffix("@file"): svc for name, (_, svc) in gw._services.items()}


SERVICES = {
    "a": lb(A), "b": lb(B), "c": lb(C),
    "fo": {"failover": {"service": "a", "fallback": "b",
                        "errors": {"status": ["500-599"], "maxRequestBodyBytes": 10}}},
    "mir": {"mirroring": {"service": "a", "maxBodySize": 100,
                          "mirrors": [{"name": "b", "percent": 50},
                                      {"name": "c", "percent": 100}]}},
    "w": {"weighted": {"services": [{"name": "mir"}, {"name": "c"}]}},
    "h": {"highestRandomWeight": {"services": [{"name": "a"}, {"name": "b", "weight": 3}]}},
}


def test_each_kind_is_built_and_flags_what_requests_need() -> None:
    svc = built(SERVICES)
    assert isinstance(svc["fo"], FailoverService) and svc["fo"].hooked
    assert isinstance(svc["mir"], MirroringService) and svc["mir"].hooked
    assert isinstance(svc["w"], WeightedService) and svc["w"].hooked
    assert isinstance(svc["h"], HighestRandomWeightService) and not svc["h"].hooked
    assert not svc["a"].hooked


def test_failover_step_is_collected_on_the_main_side_only() -> None:
    svc = built(SERVICES)
    fo = svc["fo"]
    hooks = RequestHooks()
    picked = fo.pick_leaf(CLIENT, hooks=hooks)
    assert picked is not None and picked.backend.url == A
    assert [step.service for step in hooks.failovers] == ["fo@file"]
    assert hooks.failovers[0].fallback is svc["b"]
    svc["a"].balancer.set_healthy(A, False)
    hooks = RequestHooks()
    picked = fo.pick_leaf(CLIENT, hooks=hooks)
    assert picked is not None and picked.backend.url == B and not hooks.active


def test_mirrors_follow_the_counters_and_only_when_the_mirroring_child_is_chosen() -> None:
    svc = built(SERVICES)
    mirrored = []
    for _ in range(8):
        hooks = RequestHooks()
        picked = svc["w"].pick_leaf(CLIENT, hooks=hooks)
        assert picked is not None
        names = [name for job in hooks.mirrors for name, _, _ in job.mirrors]
        mirrored.append((picked.backend.url, names))
    via_mirroring = [names for url, names in mirrored if url == A]
    assert len(via_mirroring) == 4
    assert via_mirroring == [["b@file", "c@file"], ["c@file"]] * 2
    assert all(names == [] for url, names in mirrored if url == C)


def test_a_child_that_cannot_take_an_upgrade_takes_back_its_mirrors() -> None:
    svc = built(SERVICES)
    leaf_a = svc["a"]
    assert isinstance(leaf_a, LeafService)
    leaf_a.balancer.room = lambda server: False
    for _ in range(4):
        hooks = RequestHooks()
        picked = svc["w"].pick_leaf(CLIENT, upgrade=True, hooks=hooks)
        assert picked is not None and picked.backend.url == C
        assert not hooks.active


def test_hrw_is_built_over_the_names_as_written() -> None:
    svc = built(SERVICES)
    h = svc["h"]
    assert isinstance(h, HighestRandomWeightService)
    assert [name for name, _, _ in h.children] == ["a", "b"]


# -- the hooks at work, on a stand-in exchange ----------------------------------------------------

class FakeEP:
    name = "web"
    hostname = "gw"
    not_append_xff = False

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.gateway = type("G", (), {"health": None})()

    def trusts(self, ip: str) -> bool:
        return False


class FakeConn:
    client_ip = CLIENT
    tls = False

    def __init__(self) -> None:
        self.ep = FakeEP()


class FakeExchange:
    def __init__(self, raw: bytes) -> None:
        found = RequestHeadParser().feed(raw)
        assert found is not None
        self.head = self.forward = found[0]
        self.upgrade = self.head.is_upgrade
        self.body = None if self.upgrade else BodyReader(self.head.body_kind,
                                                         self.head.content_length or 0)
        self.conn = FakeConn()
        self.ctx = None
        self.response: object = None
        self.done = False
        self.page_code = 0
        self.errors: list[Any] = []
        self.redirected: list[Any] = []

    def send_body(self, hooks: RequestHooks, data: bytes) -> None:
        assert self.body is not None
        forward, _, _ = self.body.feed(data)
        hooks.on_body(self, forward)  # type: ignore[arg-type]

    def client_error(self, exc: Any) -> None:
        self.errors.append(exc)
        self.done = True

    def redirect(self, service: Any, picked: Any, body: list[bytes], status: int) -> None:
        self.redirected.append((service, picked, b"".join(body), status))


def hooks_for(service: ProxyService, raw: bytes) -> tuple[RequestHooks, FakeExchange]:
    hooks = RequestHooks()
    exchange = FakeExchange(raw)
    assert service.pick_leaf(CLIENT, upgrade=exchange.upgrade, hooks=hooks) is not None
    return hooks, exchange


def test_announced_body_over_the_failover_limit_is_refused_with_413() -> None:
    fo = built(SERVICES)["fo"]
    hooks, exchange = hooks_for(fo, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    answer = hooks.refusal(exchange.head)
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.endswith(TOO_LARGE_BODY.encode())
    hooks, exchange = hooks_for(fo, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    assert hooks.refusal(exchange.head) is None


def test_chunked_body_over_the_failover_limit_ends_the_exchange_with_413() -> None:
    fo = built(SERVICES)["fo"]
    hooks, exchange = hooks_for(fo, b"POST / HTTP/1.1\r\nHost: x\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    exchange.send_body(hooks, b"8\r\n12345678\r\n")
    assert not exchange.errors
    exchange.send_body(hooks, b"8\r\n12345678\r\n")
    assert [e.status for e in exchange.errors] == [413]


def test_a_caught_status_redirects_with_the_body_held() -> None:
    svc = built(SERVICES)
    hooks, exchange = hooks_for(svc["fo"], b"PUT / HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Length: 5\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    assert not hooks.divert(exchange, 503)  # type: ignore[arg-type]  # body not all in yet
    hooks, exchange = hooks_for(svc["fo"], b"PUT / HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Length: 5\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    exchange.send_body(hooks, b"hello")
    assert not hooks.divert(exchange, 404)  # type: ignore[arg-type]
    assert not hooks.failovers               # the step is spent either way
    hooks, exchange = hooks_for(svc["fo"], b"PUT / HTTP/1.1\r\nHost: x\r\n"
                                           b"Content-Length: 5\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    exchange.send_body(hooks, b"hello")
    assert hooks.divert(exchange, 502)  # type: ignore[arg-type]
    [(service, picked, body, status)] = exchange.redirected
    assert service is svc["b"] and picked.backend.url == B
    assert (body, status) == (b"hello", 502)


def test_copies_go_out_at_the_end_unless_the_client_left(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, tuple[bytes, ...], bool]] = []

    def fake_send(reactor: Any, health: Any, mirroring: Any, mirror: str, target: Any,
                  source: Any, parts: tuple[bytes, ...], *, with_body: bool) -> None:
        sent.append((mirror, parts, with_body))

    monkeypatch.setattr(service_hooks, "send_copy", fake_send)
    mir = built(SERVICES)["mir"]
    hooks, exchange = hooks_for(mir, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    exchange.send_body(hooks, b"abc")
    hooks.finish(exchange)  # type: ignore[arg-type]
    hooks.finish(exchange)  # type: ignore[arg-type]  # once only
    assert sent == [("b@file", (b"abc",), True), ("c@file", (b"abc",), True)]
    sent.clear()
    hooks, exchange = hooks_for(mir, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    hooks.cancel()
    hooks.finish(exchange)  # type: ignore[arg-type]
    assert sent == []
    # Over maxBodySize (100): the main request goes on, no copy (Traefik).
    hooks, exchange = hooks_for(mir, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    assert hooks.refusal(exchange.head) is None
    exchange.send_body(hooks, b"x" * 101)
    hooks.finish(exchange)  # type: ignore[arg-type]
    assert sent == []


def test_mirror_body_false_sends_the_head_only(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[tuple[bytes, ...], bool]] = []
    monkeypatch.setattr(service_hooks, "send_copy",
                        lambda *a, with_body: sent.append((a[6], with_body)))
    mir = built({"a": lb(A), "b": lb(B), "m": {"mirroring": {
        "service": "a", "mirrorBody": False, "mirrors": [{"name": "b", "percent": 100}]}}})["m"]
    hooks, exchange = hooks_for(mir, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
    hooks.attach(exchange)  # type: ignore[arg-type]
    assert hooks.copy is None
    exchange.send_body(hooks, b"abc")
    hooks.finish(exchange)  # type: ignore[arg-type]
    assert sent == [((), False)]


# -- one copy on the wire -------------------------------------------------------------------------

class FakeHealth:
    def __init__(self) -> None:
        self.reports: list[tuple[str, bool]] = []

    def record_success(self, service: str, url: str) -> None:
        self.reports.append((url, True))

    def record_failure(self, service: str, url: str) -> None:
        self.reports.append((url, False))


def copy_to(answer: bytes, *, upgrade: bool = False) -> tuple[MirrorCopy, StringTransport,
                                                            FakeHealth, list[bool]]:
    svc = built({"b": lb(B)})["b"]
    assert isinstance(svc, LeafService)
    picked = svc.pick_leaf(CLIENT)
    assert picked is not None
    health = FakeHealth()
    done: list[bool] = []
    reactor = MemoryReactorClock()
    copy = MirrorCopy(reactor, health, svc, picked.backend, parse_backend_url(B),  # type: ignore[arg-type]
                      [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], "GET", upgrade=upgrade,
                      on_done=lambda: done.append(True), label="m->b")
    conn = BackendConnection(parse_backend_url(B))
    transport = StringTransport()
    conn.makeConnection(transport)
    svc.connect = lambda address: defer.succeed(conn)  # type: ignore[method-assign]
    copy.start()
    conn.dataReceived(answer)
    return copy, transport, health, done


def test_copy_reads_the_answer_and_gives_the_connection_back() -> None:
    copy, transport, health, done = copy_to(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert transport.value() == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert done == [True] and health.reports == [(B, True)]
    assert copy.leaf.pool.idle_count() == 1
    assert copy.server.in_flight == 0


def test_copy_answered_with_101_is_closed_at_once() -> None:
    _, transport, health, done = copy_to(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        upgrade=True)
    assert done == [True] and health.reports == [(B, True)]
    assert transport.disconnecting or transport.disconnected


def test_copy_with_a_server_error_counts_as_a_failure() -> None:
    _, _, health, done = copy_to(b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n")
    assert done == [True] and health.reports == [(B, False)]
