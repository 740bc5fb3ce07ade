"""Weighted round robin (Traefik's default `wrr` strategy)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate.proxy.balancer import Backend, WeightedRoundRobin


def wrr(*weights: int | None, rng: random.Random | None = None) -> WeightedRoundRobin:
    names = "abcdefghijklmnop"
    return WeightedRoundRobin([Backend(names[i], w) for i, w in enumerate(weights)], rng=rng)


def picks(balancer: WeightedRoundRobin, n: int) -> list[str]:
    out = []
    for _ in range(n):
        backend = balancer.pick("192.0.2.1")
        assert backend is not None
        out.append(backend.url)
    return out


def test_weights_honoured_within_two_percent_over_10000_picks() -> None:
    counts = Counter(picks(wrr(1, 2, 7), 10_000))
    for name, weight in (("a", 1), ("b", 2), ("c", 7)):
        assert abs(counts[name] / 10_000 - weight / 10) < 0.02
    # Integer deadlines make it exact, not just close.
    assert counts == {"a": 1000, "b": 2000, "c": 7000}


def test_sequence_for_1_2_7_is_interleaved() -> None:
    assert "".join(picks(wrr(1, 2, 7), 10)) == "cccbcccabc"


def test_same_start_sequence_as_traefik_bias_test() -> None:
    # Traefik's TestBalancerBias: weights 11 and 3 over 14 requests.
    balancer = WeightedRoundRobin([Backend("A", 11), Backend("B", 3)])
    assert "".join(picks(balancer, 14)) == "AAABAAAABAAABA"


def test_equal_weights_rotate_strictly() -> None:
    assert "".join(picks(wrr(1, 1, 1), 9)) == "abcabcabc"
    assert "".join(picks(wrr(5, 5), 6)) == "ababab"


weight_lists = st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=7)


@settings(max_examples=150, deadline=None)
@given(weight_lists)
def test_every_cycle_has_exact_proportions(weights: list[int]) -> None:
    balancer = wrr(*weights)
    total = sum(weights)
    sequence = picks(balancer, 3 * total)
    for cycle in range(3):
        counts = Counter(sequence[cycle * total : (cycle + 1) * total])
        assert [counts["abcdefg"[i]] for i in range(len(weights))] == weights


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=2, max_size=7))
def test_runs_are_short(weights: list[int]) -> None:
    """No server is picked more than ceil(w / heaviest other w) times in a row."""
    balancer = wrr(*weights)
    sequence = picks(balancer, 3 * sum(weights))
    for name, run in itertools.groupby(sequence):
        i = "abcdefg".index(name)
        heaviest_other = max(w for j, w in enumerate(weights) if j != i)
        assert len(list(run)) <= math.ceil(weights[i] / heaviest_other)


def test_weight_zero_and_negative_are_skipped_and_none_means_one() -> None:
    balancer = wrr(0, None, -3, 1)
    assert [b.url for b in balancer.backends] == ["b", "d"]
    assert Counter(picks(balancer, 100)) == {"b": 50, "d": 50}


def test_only_non_positive_weights_means_no_server() -> None:
    balancer = wrr(0, -1)
    assert balancer.backends == ()
    assert not balancer.available
    assert balancer.pick("192.0.2.1") is None


def test_no_servers_at_all() -> None:
    balancer = WeightedRoundRobin([])
    assert balancer.pick("192.0.2.1") is None
    assert balancer.choose("192.0.2.1") is None


def test_unhealthy_server_skipped_then_restored() -> None:
    balancer = wrr(1, 2, 7)
    balancer.set_healthy("c", False)
    assert Counter(picks(balancer, 300)) == {"a": 100, "b": 200}
    balancer.set_healthy("c", True)
    counts = Counter(picks(balancer, 1000))
    assert all(abs(counts[n] - 100 * w) <= 2 for n, w in (("a", 1), ("b", 2), ("c", 7)))


def test_restored_server_rejoins_without_a_burst() -> None:
    balancer = wrr(1, 1, 1)
    balancer.set_healthy("a", False)
    picks(balancer, 50)
    balancer.set_healthy("a", True)
    # It competes from "now", not from where it left off: no catch-up run.
    assert Counter(picks(balancer, 3)) == {"a": 1, "b": 1, "c": 1}


def test_all_down_gives_none_and_flips_available() -> None:
    balancer = wrr(1, 2)
    seen: list[bool] = []
    balancer.watch(seen.append)
    balancer.set_healthy("a", False)
    assert balancer.available
    balancer.set_healthy("b", False)
    assert not balancer.available
    assert balancer.pick("192.0.2.1") is None
    balancer.set_healthy("b", True)
    assert balancer.pick("192.0.2.1").url == "b"  # type: ignore[union-attr]
    assert seen == [False, True]


def test_setting_same_health_twice_is_harmless() -> None:
    balancer = wrr(1, 1)
    balancer.set_healthy("a", False)
    balancer.set_healthy("a", False)
    balancer.set_healthy("a", True)
    balancer.set_healthy("a", True)
    assert Counter(picks(balancer, 10)) == {"a": 5, "b": 5}


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        wrr(1).set_healthy("nope", False)


def test_fenced_servers_get_no_normal_traffic() -> None:
    balancer = WeightedRoundRobin([Backend("a"), Backend("b"), Backend("c", fenced=True)])
    assert set(picks(balancer, 20)) == {"a", "b"}


def test_fenced_server_still_gets_its_sticky_traffic() -> None:
    fenced = Backend("c", fenced=True)
    balancer = WeightedRoundRobin([Backend("a"), Backend("b"), fenced])
    # Traefik's TestSticky_Fenced: alternating sticky and plain requests.
    got = []
    for _ in range(4):
        got.append(balancer.pick("192.0.2.1", fenced.cookie_value).url)  # type: ignore[union-attr]
        got.append(balancer.pick("192.0.2.1").url)  # type: ignore[union-attr]
    assert Counter(got) == {"c": 4, "a": 2, "b": 2}


def test_all_fenced_gives_none_unless_sticky() -> None:
    first = Backend("a", fenced=True)
    balancer = WeightedRoundRobin([first, Backend("b", fenced=True)])
    assert not balancer.available
    assert balancer.pick("192.0.2.1") is None
    assert balancer.pick("192.0.2.1", first.cookie_value) is first


def test_fencing_can_change_at_runtime() -> None:
    balancer = wrr(1, 1)
    balancer.set_fenced("a", True)
    assert set(picks(balancer, 10)) == {"b"}
    balancer.set_fenced("a", False)
    assert set(picks(balancer, 10)) == {"a", "b"}


def test_unhealthy_fenced_server_is_not_reached_even_sticky() -> None:
    fenced = Backend("c", fenced=True)
    balancer = WeightedRoundRobin([Backend("a"), fenced])
    balancer.set_healthy("c", False)
    assert balancer.pick("192.0.2.1", fenced.cookie_value).url == "a"  # type: ignore[union-attr]


def test_duplicate_urls_share_health() -> None:
    balancer = WeightedRoundRobin([Backend("a"), Backend("a"), Backend("b")])
    assert Counter(picks(balancer, 30)) == {"a": 20, "b": 10}
    balancer.set_healthy("a", False)
    assert set(picks(balancer, 5)) == {"b"}


def test_rebasing_deadlines_does_not_change_the_sequence() -> None:
    plain = wrr(3, 5, 7)
    rebased = wrr(3, 5, 7)
    rebased._schedule.rebase_at = 50  # force frequent rebasing
    assert picks(plain, 500) == picks(rebased, 500)


def test_rng_shuffles_the_start_deterministically() -> None:
    first = picks(wrr(1, 1, 1, 1, rng=random.Random(7)), 8)
    again = picks(wrr(1, 1, 1, 1, rng=random.Random(7)), 8)
    assert first == again
    assert Counter(first) == {"a": 2, "b": 2, "c": 2, "d": 2}


def test_a_backend_belongs_to_one_balancer() -> None:
    shared = Backend("a")
    WeightedRoundRobin([shared])
    with pytest.raises(ValueError, match="one Backend per balancer"):
        WeightedRoundRobin([shared])


def test_weight_must_be_an_integer() -> None:
    with pytest.raises(TypeError, match="weight"):
        Backend("a", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="weight"):
        Backend("a", True)


def test_the_same_backend_twice_is_refused_and_nothing_is_claimed() -> None:
    mine, twice = Backend("a"), Backend("b")
    with pytest.raises(ValueError, match="one Backend per balancer"):
        WeightedRoundRobin([mine, twice, twice])
    WeightedRoundRobin([mine])  # the failed construction did not take it
