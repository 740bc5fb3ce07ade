"""Health checkers in the gateway: created per loadBalancer service with a health check, kept
across reloads that keep the service, stopped with it; the data path's reports; the open
relay registry; the grpc configuration warning. A MemoryReactorClock stands in for sockets."""

from __future__ import annotations

from typing import Any

from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from tests.unit.helpers import FakeRelay, UpRecorder
from wsgate.config import dynamic
from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import decode
from wsgate.config.tree import from_plain
from wsgate.internal.registry import ServiceRegistry
from wsgate.proxy.gateway import Gateway
from wsgate.proxy.health import CLOSE_CODE, CLOSE_REASON
from wsgate.proxy.routing import LeafService
from wsgate.proxy.sessions import OpenRelays

A = "http://10.0.0.1:8080"
B = "http://10.0.0.2:8080"


def lb(*urls: str, **extra: Any) -> dict[str, Any]:
    return {"loadBalancer": {"servers": [{"url": u} for u in urls], **extra}}


def runtime(services: dict[str, Any], routed: tuple[str, ...] | None = None) -> RuntimeConfig:
    routed = tuple(services) if routed is None else routed
    config = {"http": {
        "routers": {name: {"rule": f"Host(`{name}.test`)", "service": name}
                    for name in routed},
        "services": services,
    }}
    decoded = decode(DynamicConfig, from_plain(config, Mark("test")))
    return build_runtime({"file": decoded}, entry_points=["web"])


def gateway() -> tuple[Gateway, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    return Gateway(reactor, ServiceRegistry(), dynamic.ServersTransport()), reactor


def leaf(gw: Gateway, name: str) -> LeafService:
    checker = gw.health.get(name)
    assert checker is not None
    service = gw._services[name][1]
    assert isinstance(service, LeafService)
    return service


HC = {"healthCheck": {"path": "/health", "interval": "10s"}}
SERVICES = {
    "hc": lb(A, B, **HC),
    "passive": lb(A, passiveHealthCheck={"maxFailedAttempts": 2}),
    "plain": lb(A),
}


def test_a_checker_per_load_balancer_with_a_health_check_and_a_router() -> None:
    gw, reactor = gateway()
    gw.apply(runtime({**SERVICES, "unused": lb(A, **HC)},
                     routed=("hc", "passive", "plain")))
    assert gw.health.get("hc@file") is not None
    assert gw.health.get("passive@file") is not None
    assert gw.health.get("plain@file") is None
    assert gw.health.get("unused@file") is None  # built only when a router uses it
    assert len(gw.health) == 2
    reactor.advance(0)
    dialled = sorted((host, port) for host, port, *_ in reactor.tcpClients)
    assert dialled == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]  # hc's probes only


def test_reload_keeps_unchanged_checkers_and_replaces_changed_ones() -> None:
    gw, reactor = gateway()
    gw.apply(runtime(SERVICES))
    first = gw.health.get("hc@file")
    passive = gw.health.get("passive@file")
    assert first is not None and first.running
    reactor.advance(0)
    probes = len(reactor.tcpClients)
    gw.apply(runtime(SERVICES))  # unchanged: same service, same checker, no new probes
    assert gw.health.get("hc@file") is first and first.running
    assert gw.health.get("passive@file") is passive
    reactor.advance(0)
    assert len(reactor.tcpClients) == probes
    changed = dict(SERVICES, hc=lb(A, B, healthCheck={"path": "/ready", "interval": "10s"}))
    gw.apply(runtime(changed))
    second = gw.health.get("hc@file")
    assert second is not None and second is not first
    assert not first.running and second.running
    assert gw.health.get("passive@file") is passive
    gw.apply(runtime({"plain": lb(A)}))  # removed services: their checkers stop
    assert not second.running and not passive.running
    assert len(gw.health) == 0


def test_checker_drives_the_service_balancer_and_reports_to_the_gateway_observer() -> None:
    gw, reactor = gateway()
    observer = UpRecorder()
    gw.observer = observer  # set after construction, as the service does
    gw.apply(runtime(SERVICES))
    service = leaf(gw, "hc@file")
    reactor.advance(0)
    for host, _, factory, *_ in reactor.tcpClients:
        if host == "10.0.0.1":
            factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
    assert [service.balancer.pick("192.0.2.1").url for _ in range(4)] == [B] * 4
    assert ("hc@file", A, False) in observer.ups
    assert ("hc@file", B, True) in observer.ups


def test_data_path_reports_reach_the_passive_check() -> None:
    gw, _ = gateway()
    gw.apply(runtime(SERVICES))
    checker = gw.health.get("passive@file")
    assert checker is not None
    gw.health.record_failure("passive@file", A)
    gw.health.record_success("passive@file", A)
    gw.health.record_failure("passive@file", A)
    assert checker.is_healthy(A)
    gw.health.record_failure("passive@file", A)
    assert not checker.is_healthy(A)
    assert leaf(gw, "passive@file").balancer.pick("192.0.2.1") is None
    # Reports for services without a checker, or unknown servers, are no-ops.
    gw.health.record_failure("plain@file", A)
    gw.health.record_failure("gone@file", A)
    gw.health.record_failure("passive@file", "http://elsewhere:1")


def test_close_on_unhealthy_closes_the_server_sessions() -> None:
    gw, reactor = gateway()
    services = dict(SERVICES, hc=lb(A, B, wsgate={"closeOnUnhealthy": True}, **HC))
    gw.apply(runtime(services))
    on_a, on_b, other = FakeRelay(), FakeRelay(), FakeRelay()
    gw.open_relays.add("hc@file", A, on_a)
    gw.open_relays.add("hc@file", B, on_b)
    gw.open_relays.add("plain@file", A, other)
    reactor.advance(0)
    for host, _, factory, *_ in reactor.tcpClients:
        if host == "10.0.0.1":
            factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
    assert on_a.closed == [(CLOSE_CODE, CLOSE_REASON)] == [(1001, "server unhealthy")]
    assert on_b.closed == [] and other.closed == []


def test_without_close_on_unhealthy_sessions_stay() -> None:
    gw, reactor = gateway()
    gw.apply(runtime(SERVICES))
    relay = FakeRelay()
    gw.open_relays.add("hc@file", A, relay)
    reactor.advance(0)
    for _, _, factory, *_ in reactor.tcpClients:
        factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
    checker = gw.health.get("hc@file")
    assert checker is not None and not checker.is_healthy(A)
    assert relay.closed == []


def test_stop_stops_every_checker() -> None:
    gw, _ = gateway()
    gw.apply(runtime(SERVICES))
    checkers = [gw.health.get("hc@file"), gw.health.get("passive@file")]
    gw.health.stop()
    assert all(c is not None and not c.running for c in checkers)
    assert len(gw.health) == 0


def test_grpc_mode_is_a_service_warning() -> None:
    rt = runtime({"g": lb(A, healthCheck={"mode": "grpc"})})
    info = rt.services["g@file"]
    assert info.status == "warning"
    assert info.error_messages == (
        "healthCheck.mode grpc is not supported by wsgate (the gRPC health protocol needs "
        "HTTP/2): its servers are not actively checked",)
    assert info.errors[0].path.endswith("loadBalancer.healthCheck.mode")


def test_open_relays_registry() -> None:
    relays = OpenRelays()
    one, two = FakeRelay(), FakeRelay()
    relays.add("s", A, one)
    relays.add("s", A, two)
    assert relays.count("s", A) == 2
    relays.discard("s", A, one)
    relays.discard("s", A, one)  # twice is fine
    relays.discard("other", A, one)
    assert relays.count("s", A) == 1
    assert relays.close_server("s", A, 1001, "bye") == 1
    assert two.closed == [(1001, "bye")]
    assert relays.count("s", A) == 1  # until the relay's own end discards it
    relays.discard("s", A, two)
    assert relays.count("s", A) == 0 and relays._open == {}
    assert relays.close_server("s", B, 1001, "bye") == 0
