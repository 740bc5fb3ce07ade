"""Highest random weight (`hrw`): rendezvous hashing of the client address."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import wsgate
from wsgate.proxy.balancer import Backend, HighestRandomWeight, fnv1a_64

URLS = [f"http://10.0.0.{i}:8080" for i in range(1, 6)]
CLIENTS = [f"198.51.{i // 256}.{i % 256}" for i in range(4000)]


def hrw(urls: list[str] = URLS, weights: list[int] | None = None) -> HighestRandomWeight:
    weights = weights or [1] * len(urls)
    return HighestRandomWeight([Backend(u, w) for u, w in zip(urls, weights)])


def mapping(balancer: HighestRandomWeight, clients: list[str] = CLIENTS) -> dict[str, str]:
    return {c: balancer.pick(c).url for c in clients}  # type: ignore[union-attr]


def test_fnv1a_64_matches_published_vectors() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8
    # Continuing from a prefix equals hashing the concatenation.
    assert fnv1a_64(b"bar", fnv1a_64(b"foo")) == fnv1a_64(b"foobar")


def test_winner_is_the_highest_weighted_score() -> None:
    weights = [1, 2, 3, 4, 5]
    balancer = hrw(weights=weights)
    for client in CLIENTS[:200]:
        scores = {
            url: w / -math.log(fnv1a_64((client + url).encode()) / 2**64)
            for url, w in zip(URLS, weights)
        }
        assert balancer.pick(client).url == max(scores, key=scores.__getitem__)  # type: ignore[union-attr]


def test_same_client_same_server_across_instances() -> None:
    first = mapping(hrw())
    assert mapping(hrw()) == first
    again = hrw()
    assert all(again.pick(c).url == first[c] for c in CLIENTS[:100])  # type: ignore[union-attr]


def test_spread_is_even_with_equal_weights() -> None:
    counts = Counter(mapping(hrw()).values())
    assert all(abs(counts[u] - 800) < 100 for u in URLS)


def test_removing_a_server_only_remaps_its_clients() -> None:
    before = mapping(hrw())
    gone = URLS[2]
    after = mapping(hrw([u for u in URLS if u != gone]))
    for client in CLIENTS:
        if before[client] != gone:
            assert after[client] == before[client]
        else:
            assert after[client] != gone


def test_marking_a_server_down_only_remaps_its_clients_and_back() -> None:
    balancer = hrw()
    before = mapping(balancer)
    balancer.set_healthy(URLS[0], False)
    during = mapping(balancer)
    assert all(during[c] == before[c] for c in CLIENTS if before[c] != URLS[0])
    assert URLS[0] not in during.values()
    balancer.set_healthy(URLS[0], True)
    assert mapping(balancer) == before


def test_weights_are_roughly_honoured() -> None:
    balancer = hrw(URLS[:2], weights=[1, 3])
    clients = [f"203.0.{i // 256}.{i % 256}" for i in range(20_000)]
    counts = Counter(balancer.pick(c).url for c in clients)  # type: ignore[union-attr]
    assert abs(counts[URLS[1]] / 20_000 - 0.75) < 0.02


def test_fenced_never_picked_and_sticky_ignored() -> None:
    fenced = Backend("http://10.0.0.9:8080", fenced=True)
    balancer = HighestRandomWeight([Backend(URLS[0]), fenced])
    assert {balancer.pick(c).url for c in CLIENTS[:200]} == {URLS[0]}  # type: ignore[union-attr]
    assert balancer.pick("192.0.2.1", fenced.cookie_value).url == URLS[0]  # type: ignore[union-attr]


def test_all_down_gives_none() -> None:
    balancer = hrw(URLS[:2])
    balancer.pick("192.0.2.1")
    balancer.set_healthy(URLS[0], False)
    balancer.set_healthy(URLS[1], False)
    assert balancer.pick("192.0.2.1") is None
    assert not balancer.available


def test_deterministic_across_processes() -> None:
    code = (
        "from wsgate.proxy.balancer import Backend, HighestRandomWeight\n"
        f"b = HighestRandomWeight([Backend(u) for u in {URLS!r}])\n"
        f"print(','.join(b.pick(c).url for c in {CLIENTS[:50]!r}))\n"
    )
    root = str(Path(wsgate.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=root)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    here = hrw()
    assert out.split(",") == [here.pick(c).url for c in CLIENTS[:50]]  # type: ignore[union-attr]
