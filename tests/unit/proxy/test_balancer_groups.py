"""Services over services: failover's choice, highestRandomWeight over child services, the
retry of another child when an upgrade finds every server full, and the weak registration
of parents (a reload's old parents are not kept alive by the children they watched)."""

from __future__ import annotations

import gc
from collections import Counter

from wsgate.proxy.balancer import (
    Backend,
    FailoverBalancer,
    HighestRandomWeightServices,
    WeightedRoundRobin,
    WeightedServices,
)

CLIENT = "192.0.2.1"


def service(*urls: str) -> WeightedRoundRobin:
    return WeightedRoundRobin([Backend(u) for u in urls])


def urls(balancer: object, n: int, client: str = CLIENT, **kw: bool) -> list[str]:
    out = []
    for _ in range(n):
        server = balancer.pick(client, **kw)  # type: ignore[attr-defined]
        out.append(server.url if server is not None else None)
    return out


# -- failover -------------------------------------------------------------------------------------

def test_failover_uses_its_service_while_available_then_its_fallback() -> None:
    main, fallback = service("m1", "m2"), service("f")
    failover = FailoverBalancer(("main", main), ("fallback", fallback))
    assert Counter(urls(failover, 4)) == {"m1": 2, "m2": 2}
    main.set_healthy("m1", False)
    assert set(urls(failover, 4)) == {"m2"}
    main.set_healthy("m2", False)
    assert set(urls(failover, 4)) == {"f"}
    main.set_healthy("m1", True)
    assert set(urls(failover, 4)) == {"m1"}


def test_failover_is_unavailable_only_when_both_sides_are_and_tells_its_parents() -> None:
    main, fallback = service("m"), service("f")
    failover = FailoverBalancer(("main", main), ("fallback", fallback))
    seen: list[bool] = []
    failover.watch(seen.append)
    main.set_healthy("m", False)
    assert failover.available and seen == []
    fallback.set_healthy("f", False)
    assert not failover.available and seen == [False]
    assert failover.pick(CLIENT) is None
    fallback.set_healthy("f", True)
    assert seen == [False, True]
    assert urls(failover, 1) == ["f"]


def test_failover_children_can_be_marked_down_by_name() -> None:
    failover = FailoverBalancer(("main", service("m")), ("fallback", service("f")))
    failover.set_healthy("main", False)
    assert urls(failover, 2) == ["f", "f"]
    assert failover.choose_child(CLIENT) is failover.fallback


def test_failover_sends_an_upgrade_to_the_fallback_when_every_main_server_is_full() -> None:
    main, fallback = service("m"), service("f")
    main.room = lambda server: False
    failover = FailoverBalancer(("main", main), ("fallback", fallback))
    assert urls(failover, 1) == ["m"]                    # plain requests ignore the limit
    assert urls(failover, 1, upgrade=True) == ["f"]
    fallback.room = lambda server: False
    assert urls(failover, 1, upgrade=True) == [None]


# -- highestRandomWeight over services ----------------------------------------------------------

# Recorded from Traefik 3.7.15: clients bound to 127.0.0.x asking a highestRandomWeight service
# over "blue", "green@file" and "legacy-v1" (weight 2). The child's name as written in the
# configuration is what is hashed.
TRAEFIK_HRW = {
    "127.0.0.2": "legacy-v1", "127.0.0.9": "legacy-v1", "127.0.0.16": "green",
    "127.0.0.23": "green", "127.0.0.30": "legacy-v1", "127.0.0.37": "legacy-v1",
    "127.0.0.44": "blue", "127.0.0.51": "green", "127.0.0.58": "blue",
    "127.0.0.65": "legacy-v1", "127.0.0.72": "blue", "127.0.0.79": "green",
    "127.0.0.86": "legacy-v1", "127.0.0.93": "green", "127.0.0.100": "legacy-v1",
    "127.0.0.107": "legacy-v1", "127.0.0.114": "green", "127.0.0.121": "green",
    "127.0.0.128": "legacy-v1", "127.0.0.135": "green", "127.0.0.142": "legacy-v1",
    "127.0.0.149": "legacy-v1", "127.0.0.156": "green", "127.0.0.163": "blue",
    "127.0.0.170": "blue", "127.0.0.177": "blue", "127.0.0.184": "blue",
    "127.0.0.191": "blue", "127.0.0.198": "blue",
}


def test_hrw_services_map_clients_as_traefik_does() -> None:
    group = HighestRandomWeightServices([
        ("blue", 1, service("blue")), ("green@file", 1, service("green")),
        ("legacy-v1", 2, service("legacy-v1"))])
    got = {ip: group.pick(ip).url for ip in TRAEFIK_HRW}  # type: ignore[union-attr]
    assert got == TRAEFIK_HRW


def test_hrw_services_skip_an_unavailable_child_and_move_only_its_clients() -> None:
    children = {name: service(name) for name in ("blue", "green", "red")}
    group = HighestRandomWeightServices([(n, 1, b) for n, b in children.items()])
    clients = [f"10.0.{i}.{j}" for i in range(4) for j in range(25)]
    before = {ip: group.pick(ip).url for ip in clients}  # type: ignore[union-attr]
    assert set(before.values()) == {"blue", "green", "red"}
    children["green"].set_healthy("green", False)
    after = {ip: group.pick(ip).url for ip in clients}  # type: ignore[union-attr]
    assert "green" not in after.values()
    assert all(after[ip] == before[ip] for ip in clients if before[ip] != "green")
    children["green"].set_healthy("green", True)
    assert {ip: group.pick(ip).url for ip in clients} == before  # type: ignore[union-attr]


def test_hrw_services_try_the_next_best_child_for_a_full_upgrade() -> None:
    a, b = service("a"), service("b")
    group = HighestRandomWeightServices([("a", 1, a), ("b", 1, b)])
    first = group.pick(CLIENT)
    assert first is not None
    full, other = (a, "b") if first.url == "a" else (b, "a")
    full.room = lambda server: False
    assert urls(group, 3, upgrade=True) == [other] * 3
    assert urls(group, 1) == [first.url]


def test_hrw_services_weights_of_zero_or_less_leave_the_child_out() -> None:
    group = HighestRandomWeightServices([("a", 0, service("a")), ("b", None, service("b"))])
    assert group.children == ("b",)


# -- weighted, with full servers ----------------------------------------------------------------

def test_weighted_upgrade_goes_to_a_child_with_room() -> None:
    a, b = service("a"), service("b")
    group = WeightedServices([("a", 1, a), ("b", 1, b)])
    a.room = lambda server: False
    assert urls(group, 4, upgrade=True) == ["b"] * 4
    assert Counter(urls(group, 4)) == {"a": 2, "b": 2}
    b.room = lambda server: False
    assert urls(group, 1, upgrade=True) == [None]
    choice = group.choose(CLIENT, upgrade=True)
    assert choice is None


# -- weak watchers --------------------------------------------------------------------------------

def test_parents_do_not_outlive_the_configuration_that_built_them() -> None:
    child = service("a")
    for _ in range(50):
        WeightedServices([("a", 1, child)])
        FailoverBalancer(("a", child), ("b", service("b")))
    gc.collect()
    assert child.watcher_count == 0
    kept = WeightedServices([("a", 1, child)])
    assert child.watcher_count == 1
    child.set_healthy("a", False)
    assert not kept.available
