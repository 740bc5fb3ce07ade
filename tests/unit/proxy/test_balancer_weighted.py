"""The `weighted` service: weighted round robin over child services."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from wsgate.proxy.balancer import (
    Backend,
    PowerOfTwoChoices,
    WeightedChild,
    WeightedRoundRobin,
    WeightedServices,
)
from wsgate.proxy.sticky import StickyCookie, cookie_value, parse_cookies


def service(*urls: str) -> WeightedRoundRobin:
    return WeightedRoundRobin([Backend(u) for u in urls])


def urls(balancer: WeightedServices, n: int) -> list[str]:
    return [balancer.pick("192.0.2.1").url for _ in range(n)]  # type: ignore[union-attr]


def test_children_get_traffic_in_proportion() -> None:
    parent = WeightedServices(
        [("v1", 3, service("v1a", "v1b")), WeightedChild("v2", 1, service("v2a"))]
    )
    counts = Counter(urls(parent, 4000))
    assert counts == {"v1a": 1500, "v1b": 1500, "v2a": 1000}


def test_canary_split_90_10() -> None:
    parent = WeightedServices([("stable", 9, service("s")), ("canary", 1, service("c"))])
    seq = urls(parent, 10)
    assert Counter(seq) == {"s": 9, "c": 1}


def test_weight_defaults_to_one_and_non_positive_is_skipped() -> None:
    parent = WeightedServices(
        [
            ("a", None, service("a")),
            ("b", 0, service("b")),
            ("c", -2, service("c")),
            ("d", 1, service("d")),
        ]
    )
    assert parent.children == ("a", "d")
    assert Counter(urls(parent, 10)) == {"a": 5, "d": 5}


def test_child_without_servers_is_skipped_until_it_recovers() -> None:
    blue, green = service("blue"), service("green")
    parent = WeightedServices([("blue", 1, blue), ("green", 1, green)])
    green.set_healthy("green", False)
    assert set(urls(parent, 10)) == {"blue"}
    green.set_healthy("green", True)
    assert Counter(urls(parent, 10)) == {"blue": 5, "green": 5}


def test_child_with_only_fenced_servers_is_skipped() -> None:
    draining = WeightedRoundRobin([Backend("old", fenced=True)])
    parent = WeightedServices([("old", 1, draining), ("new", 1, service("new"))])
    assert set(urls(parent, 10)) == {"new"}


def test_all_children_down_gives_none_and_propagates_up() -> None:
    a, b = service("a"), service("b")
    inner = WeightedServices([("a", 1, a), ("b", 1, b)])
    outer = WeightedServices([("inner", 1, inner), ("c", 1, service("c"))])
    seen: list[bool] = []
    inner.watch(seen.append)
    a.set_healthy("a", False)
    b.set_healthy("b", False)
    assert seen == [False]
    assert inner.pick("192.0.2.1") is None
    assert set(urls(outer, 6)) == {"c"}
    b.set_healthy("b", True)
    assert seen == [False, True]
    assert Counter(urls(outer, 6)) == {"b": 3, "c": 3}


def test_set_healthy_marks_a_child_down() -> None:
    parent = WeightedServices([("a", 1, service("a")), ("b", 1, service("b"))])
    parent.set_healthy("a", False)
    assert set(urls(parent, 6)) == {"b"}
    parent.set_healthy("a", True)
    assert set(urls(parent, 6)) == {"a", "b"}
    with pytest.raises(KeyError, match="zzz"):
        parent.set_healthy("zzz", False)


def test_no_children_means_no_server() -> None:
    parent = WeightedServices([])
    assert not parent.available
    assert parent.pick("192.0.2.1") is None


def test_children_can_use_any_strategy() -> None:
    p2c = PowerOfTwoChoices([Backend("p1"), Backend("p2")], rng=random.Random(1))
    parent = WeightedServices([("p2c", 1, p2c), ("wrr", 1, service("w"))])
    counts = Counter(urls(parent, 100))
    assert counts["w"] == 50 and counts["p1"] + counts["p2"] == 50


def test_sticky_parent_and_sticky_child_set_two_cookies_then_stick() -> None:
    child_cookie = StickyCookie("child")
    parent_cookie = StickyCookie("parent", http_only=True)
    v1 = WeightedRoundRobin([Backend("http://v1a"), Backend("http://v1b")], sticky=child_cookie)
    v2 = WeightedRoundRobin([Backend("http://v2a")], sticky=child_cookie)
    parent = WeightedServices([("v1", 1, v1), ("v2", 1, v2)], sticky=parent_cookie)

    first = parent.choose("192.0.2.1")
    assert first is not None
    assert first.backend.url == "http://v1a"
    assert first.set_cookies == (
        f"parent={cookie_value('v1')}; Path=/; HttpOnly",
        f"child={cookie_value('http://v1a')}; Path=/",
    )
    cookies = parse_cookies(["; ".join(c.split(";")[0] for c in first.set_cookies)])
    for _ in range(5):
        again = parent.choose("192.0.2.1", cookies)
        assert again is not None
        assert again.backend is first.backend
        assert again.set_cookies == ()


def test_sticky_child_that_went_down_falls_back_and_resets_cookie() -> None:
    sticky = StickyCookie("svc")
    a, b = service("a"), service("b")
    parent = WeightedServices([("a", 1, a), ("b", 1, b)], sticky=sticky)
    a.set_healthy("a", False)
    choice = parent.choose("192.0.2.1", {"svc": cookie_value("a")})
    assert choice is not None
    assert choice.backend.url == "b"
    assert choice.set_cookies == (f"svc={cookie_value('b')}; Path=/",)


def test_pick_with_sticky_key_designates_a_child() -> None:
    parent = WeightedServices([("a", 1, service("a")), ("b", 5, service("b"))])
    assert set(urls_with_key(parent, cookie_value("a"))) == {"a"}


def urls_with_key(parent: WeightedServices, key: str) -> list[str]:
    return [parent.pick("192.0.2.1", key).url for _ in range(10)]  # type: ignore[union-attr]
