"""Route selection for one entry point: the highest-priority route whose rule matches.

Routes are sorted once, by priority descending then by name ascending (Traefik breaks ties
by provider precedence; wsgate's names carry the ``@provider`` suffix, and sorting by name
keeps the order deterministic). Routes whose rule pins the request host (a conjunction with
``Host(`exact`)``, or a disjunction of such) are also indexed by host: a request only
evaluates the routes indexed under its host plus the unindexed ones, merged in the same
global order, so the result is always the one a linear scan would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .compiler import CompiledRule
from .matchers import MatchFn
from .request import RouteRequest

__all__ = ["Muxer", "Route", "build_muxer", "default_priority", "effective_priority"]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    rule: CompiledRule
    priority: int = 0
    payload: object = None


def default_priority(rule: str) -> int:
    """Traefik's default priority: the length of the rule in bytes (UTF-8), as Go's len()."""
    return len(rule.encode("utf-8"))


def effective_priority(route: Route) -> int:
    """The explicit priority if non-zero, else the rule's default priority."""
    return route.priority if route.priority != 0 else default_priority(route.rule.rule)


_Entry = tuple[int, MatchFn, Route]


class Muxer:
    """Precompiled routing table; immutable once built (build a new one on reload)."""

    __slots__ = ("_all", "_by_host", "_unindexed", "routes")

    routes: tuple[Route, ...]

    def __init__(self, ordered: tuple[Route, ...]) -> None:
        self.routes = ordered
        by_host: dict[str, list[_Entry]] = {}
        unindexed: list[_Entry] = []
        for rank, route in enumerate(ordered):
            entry = (rank, route.rule.matches, route)
            keys = route.rule.host_keys
            if keys is None:
                unindexed.append(entry)
            else:
                # An empty key set means the rule can never match: it is simply not listed.
                for key in keys:
                    by_host.setdefault(key, []).append(entry)
        self._by_host = {k: tuple(v) for k, v in by_host.items()}
        self._unindexed = tuple(unindexed)
        self._all = tuple((rank, route.rule.matches, route) for rank, route in enumerate(ordered))

    def __len__(self) -> int:
        return len(self.routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def match(self, req: RouteRequest) -> Route | None:
        """The route serving ``req``, or None (Traefik answers 404)."""
        unindexed = self._unindexed
        candidates = self._by_host.get(req.host_key) if self._by_host else None
        if not candidates:
            for _, fn, route in unindexed:
                if fn(req):
                    return route
            return None
        i = j = 0
        n_un, n_cand = len(unindexed), len(candidates)
        while i < n_un or j < n_cand:
            if j >= n_cand or (i < n_un and unindexed[i][0] < candidates[j][0]):
                _, fn, route = unindexed[i]
                i += 1
            else:
                _, fn, route = candidates[j]
                j += 1
            if fn(req):
                return route
        return None

    def match_linear(self, req: RouteRequest) -> Route | None:
        """Reference implementation: every route in order, no index."""
        for _, fn, route in self._all:
            if fn(req):
                return route
        return None


def build_muxer(routes: Iterable[Route]) -> Muxer:
    """Sort ``routes`` (priority descending, then name ascending; stable) and index them."""
    ordered = sorted(routes, key=lambda r: (-effective_priority(r), r.name))
    return Muxer(tuple(ordered))
