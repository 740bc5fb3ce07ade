"""wsgate.closeOnServerRemoval: which sessions a reload closes (Gateway.apply)."""

from __future__ import annotations

from tests.unit.proxy.test_health_lifecycle import A, B, FakeRelay, gateway, lb, runtime
from wsgate.proxy.gateway import SERVER_REMOVED_CODE, SERVER_REMOVED_REASON, Gateway

CLOSE = {"wsgate": {"closeOnServerRemoval": True}}
CLOSED = [(SERVER_REMOVED_CODE, SERVER_REMOVED_REASON)]


def sessions(gw: Gateway, service: str) -> dict[str, FakeRelay]:
    relays = {A: FakeRelay(), B: FakeRelay()}
    for url, relay in relays.items():
        gw.open_relays.add(service, url, relay)
    return relays


def test_removed_server_sessions_are_closed_with_1001() -> None:
    gw, _ = gateway()
    gw.apply(runtime({"chat": lb(A, B, **CLOSE)}))
    relays = sessions(gw, "chat@file")
    gw.apply(runtime({"chat": lb(A, **CLOSE)}))
    assert SERVER_REMOVED_CODE == 1001
    assert relays[B].closed == CLOSED
    assert relays[A].closed == []


def test_without_the_flag_sessions_keep_flowing() -> None:
    gw, _ = gateway()
    gw.apply(runtime({"chat": lb(A, B)}))
    relays = sessions(gw, "chat@file")
    gw.apply(runtime({"chat": lb(A)}))
    gw.apply(runtime({}))
    assert relays[A].closed == relays[B].closed == []


def test_removed_service_uses_its_last_setting() -> None:
    gw, _ = gateway()
    gw.apply(runtime({"chat": lb(A, B, **CLOSE), "other": lb(A)}))
    relays = sessions(gw, "chat@file")
    others = sessions(gw, "other@file")
    gw.apply(runtime({"other": lb(A)}))
    assert relays[A].closed == relays[B].closed == CLOSED
    assert others[A].closed == others[B].closed == []


def test_the_new_configuration_decides() -> None:
    gw, _ = gateway()
    gw.apply(runtime({"chat": lb(A, B)}))
    relays = sessions(gw, "chat@file")
    gw.apply(runtime({"chat": lb(A, **CLOSE)}))  # the flag arrives with the removal
    assert relays[B].closed == CLOSED
    gw.apply(runtime({"chat": lb(B, **CLOSE)}))
    assert relays[A].closed == CLOSED


def test_unrouted_and_unchanged_services_close_nothing() -> None:
    gw, _ = gateway()
    gw.apply(runtime({"chat": lb(A, B, **CLOSE)}))
    relays = sessions(gw, "chat@file")
    gw.apply(runtime({"chat": lb(B, A, **CLOSE)}))  # same servers, another order
    gw.apply(runtime({"chat": lb(A, B, **CLOSE)}, routed=()))  # defined, no router
    assert relays[A].closed == relays[B].closed == []
