"""wsgate.maxConnectionsPerServer: an upgrade skips a server that holds its most WebSocket
sessions (counted from the pick until release), for every strategy and through sticky
cookies; plain requests never look at the limit."""

from __future__ import annotations

import random

import pytest

from wsgate.proxy.balancer import (
    Backend,
    HighestRandomWeight,
    PowerOfTwoChoices,
    WeightedRoundRobin,
)
from wsgate.proxy.routing import LeafService
from wsgate.proxy.session_limits import ServerSessionCounts
from wsgate.proxy.sticky import StickyCookie, cookie_value

URLS = ["http://10.0.0.1", "http://10.0.0.2", "http://10.0.0.3"]
CLIENT = "192.0.2.7"


class _Pool:
    """LeafService wants a pool and a connector; the choice never touches them."""


def leaf(balancer: object, limit: int, counts: ServerSessionCounts | None = None
         ) -> LeafService:
    return LeafService("svc@file", balancer, {}, pass_host_header=True,  # type: ignore[arg-type]
                       pool=_Pool(), connector=_Pool(),  # type: ignore[arg-type]
                       dial_timeout=1.0, response_header_timeout=0.0,
                       sessions=counts or ServerSessionCounts(), max_sessions=limit)


def open_sessions(service: LeafService, n: int) -> list[str]:
    """Pick and hold ``n`` upgrades; the URLs they went to (None: 503)."""
    out = []
    for _ in range(n):
        picked = service.pick_leaf(CLIENT, upgrade=True)
        if picked is None:
            out.append(None)
            continue
        service.acquire(picked.backend, upgrade=True)
        out.append(picked.backend.url)
    return out


@pytest.mark.parametrize("make", [
    lambda: WeightedRoundRobin([Backend(u) for u in URLS]),
    lambda: PowerOfTwoChoices([Backend(u) for u in URLS], rng=random.Random(3)),
    lambda: HighestRandomWeight([Backend(u) for u in URLS]),
], ids=["wrr", "p2c", "hrw"])
def test_full_servers_are_skipped_then_503(make: object) -> None:
    service = leaf(make(), 2)  # type: ignore[operator]
    opened = open_sessions(service, 7)
    assert sorted(u for u in opened if u) == sorted(URLS * 2)
    assert opened[-1] is None
    # Plain requests still reach every server.
    assert service.pick_leaf(CLIENT) is not None
    # One session ends: its server takes the next upgrade.
    server = next(b for b in service.balancer.backends  # type: ignore[attr-defined]
                  if b.url == URLS[1])
    service.release(server, upgrade=True)
    assert open_sessions(service, 2) == [URLS[1], None]


def test_no_limit_means_no_skipping() -> None:
    service = leaf(WeightedRoundRobin([Backend(URLS[0])]), 0)
    assert open_sessions(service, 50) == [URLS[0]] * 50
    assert service.sessions.count("svc@file", URLS[0]) == 50


def test_sticky_server_that_is_full_is_replaced_and_the_cookie_rewritten() -> None:
    sticky = StickyCookie("s")
    service = leaf(WeightedRoundRobin([Backend(u) for u in URLS[:2]], sticky=sticky), 1)
    cookies = {"s": cookie_value(URLS[0])}
    first = service.pick_leaf(CLIENT, cookies, upgrade=True)
    assert first is not None and first.backend.url == URLS[0] and first.set_cookies == ()
    service.acquire(first.backend, upgrade=True)
    second = service.pick_leaf(CLIENT, cookies, upgrade=True)
    assert second is not None and second.backend.url == URLS[1]
    assert second.set_cookies == (f"s={cookie_value(URLS[1])}; Path=/",)
    # A plain request keeps its sticky server.
    plain = service.pick_leaf(CLIENT, cookies)
    assert plain is not None and plain.backend.url == URLS[0]


def test_counts_outlive_the_service_object() -> None:
    """A reload builds a new LeafService; the sessions opened before still count."""
    counts = ServerSessionCounts()
    old = leaf(WeightedRoundRobin([Backend(URLS[0])]), 1, counts)
    assert open_sessions(old, 1) == [URLS[0]]
    new = leaf(WeightedRoundRobin([Backend(URLS[0])]), 1, counts)
    assert open_sessions(new, 1) == [None]
    counts.release("svc@file", URLS[0])
    assert open_sessions(new, 1) == [URLS[0]]


def test_release_of_plain_requests_does_not_touch_session_counts() -> None:
    service = leaf(WeightedRoundRobin([Backend(URLS[0])]), 1)
    picked = service.pick_leaf(CLIENT)
    assert picked is not None
    service.acquire(picked.backend)
    assert service.sessions.count("svc@file", URLS[0]) == 0
    service.release(picked.backend)
    assert picked.backend.in_flight == 0
