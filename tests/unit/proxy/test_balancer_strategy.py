"""Choosing a balancer from loadBalancer.strategy."""

from __future__ import annotations

import pytest

from wsgate.proxy.balancer import (
    STRATEGIES,
    Backend,
    HighestRandomWeight,
    PowerOfTwoChoices,
    UnsupportedStrategyError,
    WeightedRoundRobin,
    build_load_balancer,
    strategy_problem,
)
from wsgate.proxy.sticky import StickyCookie


@pytest.mark.parametrize(
    ("strategy", "kind"),
    [
        ("wrr", WeightedRoundRobin),
        ("", WeightedRoundRobin),
        ("p2c", PowerOfTwoChoices),
        ("hrw", HighestRandomWeight),
    ],
)
def test_supported_strategies(strategy: str, kind: type) -> None:
    assert strategy_problem(strategy) is None
    balancer = build_load_balancer(strategy, [Backend("http://a")])
    assert isinstance(balancer, kind)
    assert balancer.pick("192.0.2.1").url == "http://a"  # type: ignore[union-attr]


def test_leasttime_is_reported_as_unsupported() -> None:
    assert "leasttime" in STRATEGIES
    assert strategy_problem("leasttime") == "strategy leasttime is not supported by wsgate yet"
    with pytest.raises(
        UnsupportedStrategyError, match="strategy leasttime is not supported by wsgate yet"
    ) as info:
        build_load_balancer("leasttime", [Backend("http://a")])
    assert info.value.strategy == "leasttime"


def test_unknown_strategy() -> None:
    assert (
        strategy_problem("random")
        == "unsupported load-balancer strategy 'random' (expected wrr, p2c or hrw)"
    )
    with pytest.raises(UnsupportedStrategyError):
        build_load_balancer("random", [])


def test_hrw_ignores_sticky_like_traefik() -> None:
    balancer = build_load_balancer("hrw", [Backend("http://a")], sticky=StickyCookie("s"))
    assert balancer.sticky is None
    choice = balancer.choose("192.0.2.1", {"s": "whatever"})
    assert choice is not None and choice.set_cookies == ()
