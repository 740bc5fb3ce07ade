"""Power of two choices (`p2c`): the less busy of two random servers."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from wsgate.proxy.balancer import Backend, PowerOfTwoChoices


def p2c(*names: str, seed: int = 1) -> PowerOfTwoChoices:
    return PowerOfTwoChoices([Backend(n) for n in names], rng=random.Random(seed))


def by_url(balancer: PowerOfTwoChoices, url: str) -> Backend:
    return next(b for b in balancer.backends if b.url == url)


def test_prefers_the_idle_server_of_two() -> None:
    balancer = p2c("busy", "idle")
    balancer.acquire(by_url(balancer, "busy"))
    # The two candidates are always distinct, so the idle one always wins.
    assert {balancer.pick("192.0.2.1").url for _ in range(200)} == {"idle"}  # type: ignore[union-attr]


def test_busiest_of_three_is_never_picked() -> None:
    balancer = p2c("a", "b", "c")
    for _ in range(3):
        balancer.acquire(by_url(balancer, "a"))
    balancer.acquire(by_url(balancer, "b"))
    counts = Counter(balancer.pick("192.0.2.1").url for _ in range(3000))  # type: ignore[union-attr]
    assert counts["a"] == 0
    # c wins every pair it is in (2 of 3 pairs); b wins only the (a, b) pair.
    assert 1850 < counts["c"] < 2150
    assert 850 < counts["b"] < 1150


def test_release_makes_a_server_attractive_again() -> None:
    balancer = p2c("a", "b")
    a, b = by_url(balancer, "a"), by_url(balancer, "b")
    balancer.acquire(a)
    assert balancer.pick("192.0.2.1") is b
    balancer.acquire(b)
    balancer.acquire(b)
    assert balancer.pick("192.0.2.1") is a
    balancer.release(b)
    balancer.release(b)
    assert balancer.pick("192.0.2.1") is b


def test_ties_are_broken_at_random() -> None:
    balancer = p2c("a", "b", "c", seed=3)
    counts = Counter(balancer.pick("192.0.2.1").url for _ in range(3000))  # type: ignore[union-attr]
    assert all(900 < counts[n] < 1100 for n in "abc")


def test_open_connections_stay_balanced() -> None:
    # Every pick opens a WebSocket that stays open: p2c behaves like least-connections.
    balancer = p2c("a", "b", "c", "d", "e")
    for _ in range(500):
        chosen = balancer.pick("192.0.2.1")
        assert chosen is not None
        balancer.acquire(chosen)
    loads = [b.in_flight for b in balancer.backends]
    assert sum(loads) == 500
    assert max(loads) - min(loads) <= 3


def test_same_seed_same_decisions() -> None:
    def run() -> list[str]:
        balancer = p2c("a", "b", "c", "d", seed=42)
        return [balancer.pick("192.0.2.1").url for _ in range(50)]  # type: ignore[union-attr]

    assert run() == run()


def test_one_server_is_always_it_even_when_busy() -> None:
    balancer = p2c("only")
    only = balancer.backends[0]
    for _ in range(5):
        balancer.acquire(only)
    assert balancer.pick("192.0.2.1") is only


def test_unhealthy_and_fenced_servers_are_left_out() -> None:
    fenced = Backend("fenced", fenced=True)
    balancer = PowerOfTwoChoices([Backend("a"), Backend("down"), fenced], rng=random.Random(5))
    balancer.set_healthy("down", False)
    assert {balancer.pick("192.0.2.1").url for _ in range(50)} == {"a"}  # type: ignore[union-attr]
    assert balancer.pick("192.0.2.1", fenced.cookie_value) is fenced
    balancer.set_healthy("a", False)
    assert balancer.pick("192.0.2.1") is None
    balancer.set_healthy("down", True)
    assert balancer.pick("192.0.2.1").url == "down"  # type: ignore[union-attr]


def test_non_positive_weights_are_skipped() -> None:
    balancer = PowerOfTwoChoices([Backend("a", 0), Backend("b", -1), Backend("c", 5)])
    assert [b.url for b in balancer.backends] == ["c"]


def test_release_without_acquire_is_an_error() -> None:
    balancer = p2c("a")
    with pytest.raises(ValueError, match="without a matching acquire"):
        balancer.release(balancer.backends[0])
