"""Load-balancing decisions: which server (or child service) takes the next connection.

Sans-I/O and single-threaded: the reactor thread owns every balancer, so there are no
locks. Each balancer holds the per-service state Traefik holds: server health, fencing
(a terminating Kubernetes endpoint gets sticky traffic only) and open connections per
server (an open WebSocket counts until it closes).

Cost of a pick: O(log n) for wrr and weighted services, O(1) for p2c, and for hrw O(n)
on a client's first connection, then O(1) from a cache that is dropped whenever the set
of usable servers changes. Health and fencing changes are rare and may cost O(n).

Services made of services (weighted, highestRandomWeight, failover) are groups over their
children's balancers: a child with no usable server leaves the choice until it has one
again, and the group tells its own parents when it has none left (``watch``). A WebSocket
upgrade may also skip servers that hold their most sessions (``room``, from
``wsgate.maxConnectionsPerServer``); a group then tries its other children.
"""

from __future__ import annotations

import heapq
import math
import random
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from wsgate.proxy.sticky import StickyCookie, StickyTable, cookie_value

__all__ = [
    "STRATEGIES",
    "Backend",
    "Balancer",
    "Choice",
    "FailoverBalancer",
    "GroupChild",
    "HighestRandomWeight",
    "HighestRandomWeightServices",
    "PowerOfTwoChoices",
    "ServiceGroup",
    "UnsupportedStrategyError",
    "WeightedChild",
    "WeightedRoundRobin",
    "WeightedServices",
    "build_load_balancer",
    "fnv1a_64",
    "strategy_problem",
]

# loadBalancer.strategy values Traefik accepts; "" is what providers that skip defaults send.
STRATEGIES = frozenset({"wrr", "p2c", "hrw", "leasttime"})
_SUPPORTED = ("wrr", "p2c", "hrw")

_NO_COOKIES: Mapping[str, str] = MappingProxyType({})

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
_TWO_TO_MINUS_64 = 2.0**-64

# hrw remembers this many clients' servers before starting over.
_HRW_CACHE_SIZE = 4096


class UnsupportedStrategyError(ValueError):
    """A loadBalancer.strategy wsgate cannot honour; config validation reports the message."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        super().__init__(strategy_problem(strategy) or f"strategy {strategy!r}")


def strategy_problem(strategy: str) -> str | None:
    """Why `strategy` cannot be used, or None when it can (for config validation)."""
    if strategy in _SUPPORTED or strategy == "":
        return None
    if strategy == "leasttime":
        return "strategy leasttime is not supported by wsgate yet"
    return f"unsupported load-balancer strategy {strategy!r} (expected wrr, p2c or hrw)"


def fnv1a_64(data: bytes, state: int = _FNV64_OFFSET) -> int:
    """64-bit FNV-1a, as Go's hash/fnv.New64a; pass `state` to continue a hash."""
    h = state
    for byte in data:
        h = ((h ^ byte) * _FNV64_PRIME) & _MASK64
    return h


class Backend:
    """One server of one balancer, with the runtime state the balancer keeps about it.

    `healthy` and `fenced` change only through the owning balancer's `set_healthy` and
    `set_fenced`, so that its schedule stays in step; `in_flight` through `acquire` and
    `release`. Create one Backend per balancer: a balancer refuses a borrowed one.
    """

    __slots__ = (
        "_fenced",
        "_healthy",
        "_index",
        "_owner",
        "cookie_value",
        "in_flight",
        "key",
        "url",
        "weight",
    )

    def __init__(
        self,
        url: str,
        weight: int | None = None,
        *,
        fenced: bool = False,
        key: str | None = None,
    ) -> None:
        if weight is None:
            weight = 1
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise TypeError(f"server {url!r}: weight must be an int, not {weight!r}")
        self.url = url
        self.key = url if key is None else key
        self.weight = weight
        self.cookie_value = cookie_value(url)
        self.in_flight = 0
        self._healthy = True
        self._fenced = fenced
        self._index = -1
        self._owner: object | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def fenced(self) -> bool:
        return self._fenced

    @property
    def usable(self) -> bool:
        """Whether a non-sticky pick may return this server."""
        return self._healthy and not self._fenced

    def __repr__(self) -> str:
        return (
            f"Backend({self.url!r}, weight={self.weight}, healthy={self._healthy}, "
            f"fenced={self._fenced}, in_flight={self.in_flight})"
        )


class Choice(NamedTuple):
    """A decision for one request: the server, and the Set-Cookie values to send back."""

    backend: Backend
    set_cookies: tuple[str, ...]


class _EarliestDeadlineFirst:
    """Weighted round robin by earliest deadline, over item indices.

    Item i advances its deadline by period/weight_i when picked, so over one period it
    is picked exactly weight_i times, interleaved with the others. Deadlines are exact
    integers (period = lcm of the weights): no float drift, so every period has exact
    proportions. At equal deadlines the lighter item goes first, which keeps a heavy
    item's run from straddling the end of a period; then the lower index.
    """

    __slots__ = ("_heap", "_now", "_steps", "rebase_at")

    def __init__(self, weights: list[int]) -> None:
        period = math.lcm(*weights)
        self._steps = [period // w for w in weights]
        self._heap: list[tuple[int, int, int]] = []
        self._now = 0
        self.rebase_at = 1 << 62

    def add(self, index: int) -> None:
        """Schedule `index` one step after the current time (fair against the others)."""
        step = self._steps[index]
        heapq.heappush(self._heap, (self._now + step, -step, index))

    def remove(self, index: int) -> None:
        self._heap = [entry for entry in self._heap if entry[2] != index]
        heapq.heapify(self._heap)

    def next(self) -> int:
        """The index due next, or -1 when nothing is scheduled."""
        heap = self._heap
        if not heap:
            return -1
        deadline, neg_step, index = heap[0]
        heapq.heapreplace(heap, (deadline - neg_step, neg_step, index))
        self._now = deadline
        if deadline >= self.rebase_at:
            self._rebase()
        return index

    def _rebase(self) -> None:
        # Keeps the integers small; shifting every deadline equally keeps the heap valid.
        now = self._now
        self._heap = [(d - now, s, i) for d, s, i in self._heap]
        self._now = 0


class Balancer(ABC):
    """What the proxy asks a service for a server.

    `pick` is the single-level decision. `choose` is what the proxy calls per request: it
    reads this balancer's sticky cookie (and those of nested weighted services) from the
    request's cookies and says which Set-Cookie values go on the response, including the
    101 of a WebSocket upgrade. Both return None when no server can take the request;
    the proxy then answers 503. `upgrade` says the request opens a WebSocket: servers
    without room for one more session (see `_ServerBalancer.room`) are then skipped.
    """

    #: Whether a server may take one more WebSocket session (``wsgate.maxConnectionsPerServer``):
    #: upgrade picks skip the servers it refuses, plain requests never ask. Set by the service
    #: that keeps the counts; only balancers of servers use it.
    room: Callable[[Backend], bool] | None = None

    def __init__(self, sticky: StickyCookie | None) -> None:
        self.sticky = sticky
        self._watchers: list[Callable[[bool], None]] = []
        self._available = False

    @property
    def available(self) -> bool:
        """Whether a non-sticky pick would find a server right now."""
        return self._available

    def watch(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(available)` whenever `available` flips (parents use this)."""
        self._watchers.append(callback)

    def watch_weakly(self, owner: object, callback: Callable[[object, bool], None]) -> None:
        """Like `watch`, without keeping `owner` alive: `callback(owner, available)` runs while
        `owner` exists, and is forgotten after. A reload builds new parents over the balancers
        it keeps, so old parents must not stay registered (and alive) forever."""
        self._prune_watchers()
        self._watchers.append(_WeakWatcher(owner, callback))

    def _set_available(self, available: bool) -> None:
        if available != self._available:
            self._available = available
            for callback in tuple(self._watchers):
                callback(available)
            self._prune_watchers()

    def _prune_watchers(self) -> None:
        self._watchers = [w for w in self._watchers
                          if not isinstance(w, _WeakWatcher) or w.alive]

    @property
    def watcher_count(self) -> int:
        """Watchers whose owner still exists (for tests and diagnostics)."""
        self._prune_watchers()
        return len(self._watchers)

    @abstractmethod
    def pick(self, client_ip: str, sticky_key: str | None = None, *,
             upgrade: bool = False) -> Backend | None:
        """A server for a request from `client_ip`.

        `sticky_key` is the value of this balancer's sticky cookie, when the request
        carried one: if it designates a healthy server (fenced or not), that server.
        """

    @abstractmethod
    def set_healthy(self, key: str, healthy: bool) -> None:
        """Mark the server (or child service) `key` up or down for new requests."""

    def choose(self, client_ip: str, cookies: Mapping[str, str] = _NO_COOKIES, *,
               upgrade: bool = False) -> Choice | None:
        """The server for a request, with the sticky cookies to set on the response."""
        set_cookies: list[str] = []
        backend = self._choose(client_ip, cookies, set_cookies, upgrade)
        if backend is None:
            return None
        return Choice(backend, tuple(set_cookies))

    @abstractmethod
    def _choose(
        self, client_ip: str, cookies: Mapping[str, str], set_cookies: list[str],
        upgrade: bool = False,
    ) -> Backend | None: ...

    def acquire(self, backend: Backend) -> None:
        """Count a connection to `backend` as open (until `release`)."""
        backend.in_flight += 1

    def release(self, backend: Backend) -> None:
        if backend.in_flight <= 0:
            raise ValueError(f"release of {backend.key!r} without a matching acquire")
        backend.in_flight -= 1


class _WeakWatcher:
    """A `watch_weakly` registration: calls back while its owner lives."""

    __slots__ = ("_callback", "_ref")

    def __init__(self, owner: object, callback: Callable[[object, bool], None]) -> None:
        self._ref = weakref.ref(owner)
        self._callback = callback

    @property
    def alive(self) -> bool:
        return self._ref() is not None

    def __call__(self, available: bool) -> None:
        owner = self._ref()
        if owner is not None:
            self._callback(owner, available)


class _ServerBalancer(Balancer):
    """Shared bookkeeping of the loadBalancer strategies: servers, keys, health, sticky."""

    def __init__(
        self,
        servers: Iterable[Backend],
        sticky: StickyCookie | None,
        rng: random.Random | None,
    ) -> None:
        super().__init__(sticky)
        kept = [server for server in servers if server.weight > 0]
        if rng is not None:
            rng.shuffle(kept)
        seen: set[int] = set()
        for server in kept:
            if server._owner is not None or id(server) in seen:
                raise ValueError(
                    f"server {server.key!r} already belongs to a balancer; "
                    "create one Backend per balancer"
                )
            seen.add(id(server))
        by_key: dict[str, list[Backend]] = {}
        for index, server in enumerate(kept):
            server._owner = self
            server._index = index
            by_key.setdefault(server.key, []).append(server)
        self.backends: tuple[Backend, ...] = tuple(kept)
        self._by_key = by_key
        self._sticky_table: StickyTable[Backend] | None = None
        self._usable_count = sum(1 for server in kept if server.usable)
        self._set_available(self._usable_count > 0)

    def set_healthy(self, key: str, healthy: bool) -> None:
        self._update(key, healthy, None)

    def set_fenced(self, key: str, fenced: bool) -> None:
        """Fence (terminating, sticky traffic only) or unfence the server `key`."""
        self._update(key, None, fenced)

    def _update(self, key: str, healthy: bool | None, fenced: bool | None) -> None:
        try:
            servers = self._by_key[key]
        except KeyError:
            raise KeyError(f"no server {key!r} in this load balancer") from None
        for server in servers:
            was_usable = server.usable
            if healthy is not None:
                server._healthy = healthy
            if fenced is not None:
                server._fenced = fenced
            if server.usable != was_usable:
                self._usable_count += 1 if server.usable else -1
                self._usability_changed(server)
        self._set_available(self._usable_count > 0)

    @abstractmethod
    def _usability_changed(self, server: Backend) -> None: ...

    @abstractmethod
    def _next(self, client_ip: str, room: Callable[[Backend], bool] | None = None
              ) -> Backend | None:
        """The next usable server; with `room`, the next one `room` accepts."""

    def pick(self, client_ip: str, sticky_key: str | None = None, *,
             upgrade: bool = False) -> Backend | None:
        room = self.room if upgrade else None
        if sticky_key is not None:
            table = self._sticky_table
            if table is None:
                table = self._sticky_table = StickyTable(
                    (server.url, server) for server in self.backends
                )
            server = table.lookup(sticky_key)
            if server is not None and server._healthy and (room is None or room(server)):
                return server
        return self._next(client_ip, room)

    def _choose(
        self, client_ip: str, cookies: Mapping[str, str], set_cookies: list[str],
        upgrade: bool = False,
    ) -> Backend | None:
        sticky = self.sticky
        if sticky is None:
            return self._next(client_ip, self.room if upgrade else None)
        received = cookies.get(sticky.name)
        server = self.pick(client_ip, received, upgrade=upgrade)
        # Set (or rewrite a legacy-format) cookie unless the client already holds this one.
        if server is not None and received != server.cookie_value:
            set_cookies.append(sticky.set_cookie(server.cookie_value))
        return server


class WeightedRoundRobin(_ServerBalancer):
    """Traefik's default `wrr`: smooth weighted round robin, earliest deadline first.

    Unhealthy servers leave the schedule and rejoin one step after the current time;
    fenced servers are reached only through their sticky cookie.
    `rng`, when given, shuffles the initial order as Traefik does, so that proxies
    started together do not send their first requests to the same server.
    """

    def __init__(
        self,
        servers: Iterable[Backend],
        *,
        sticky: StickyCookie | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(servers, sticky, rng)
        self._schedule = _EarliestDeadlineFirst([s.weight for s in self.backends])
        for server in self.backends:
            if server.usable:
                self._schedule.add(server._index)

    def _usability_changed(self, server: Backend) -> None:
        if server.usable:
            self._schedule.add(server._index)
        else:
            self._schedule.remove(server._index)

    def _next(self, client_ip: str, room: Callable[[Backend], bool] | None = None
              ) -> Backend | None:
        index = self._schedule.next()
        if index < 0:
            return None
        server = self.backends[index]
        if room is None or room(server):
            return server
        # A full server loses its turn; each usable server is offered at most once.
        for _ in range(self._usable_count - 1):
            server = self.backends[self._schedule.next()]
            if room(server):
                return server
        return None


class PowerOfTwoChoices(_ServerBalancer):
    """`p2c`: of two distinct random usable servers, the one with fewer open connections.

    With WebSockets an open connection is in flight until it closes, so this is close to
    least-connections at O(1). On a tie the first of the two (a uniformly random one) wins.
    Weights only decide whether a server is kept (weight > 0), as in Traefik.
    """

    def __init__(
        self,
        servers: Iterable[Backend],
        *,
        sticky: StickyCookie | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(servers, sticky, None)
        self._rng = rng if rng is not None else random.Random()
        self._pool = [server for server in self.backends if server.usable]

    def _usability_changed(self, server: Backend) -> None:
        self._pool = [s for s in self.backends if s.usable]

    def _next(self, client_ip: str, room: Callable[[Backend], bool] | None = None
              ) -> Backend | None:
        pool = self._pool if room is None else [s for s in self._pool if room(s)]
        n = len(pool)
        if n < 2:
            return pool[0] if pool else None
        # One draw gives a uniform ordered pair of distinct indices.
        draw = self._rng.randrange(n * (n - 1))
        i, j = divmod(draw, n - 1)
        if j >= i:
            j += 1
        first, second = pool[i], pool[j]
        return second if second.in_flight < first.in_flight else first


class HighestRandomWeight(_ServerBalancer):
    """`hrw`: weighted rendezvous hashing of the client address; affinity without cookies.

    Each usable server scores weight / -ln(h / 2**64), h = FNV-1a-64(client_ip + url),
    and the highest score wins. That is Traefik's own formula and hash, so a client maps
    to the server Traefik would give it. Removing a server only moves that server's
    clients. Like Traefik's, this strategy has no sticky cookie and never picks a fenced
    server.
    """

    def __init__(self, servers: Iterable[Backend]) -> None:
        super().__init__(servers, None, None)
        self._pool: list[tuple[bytes, float, Backend]] = []
        self._cache: dict[str, Backend] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        self._pool = [
            (server.url.encode(), float(server.weight), server)
            for server in self.backends
            if server.usable
        ]
        self._cache.clear()

    def _usability_changed(self, server: Backend) -> None:
        self._rebuild()

    def pick(self, client_ip: str, sticky_key: str | None = None, *,
             upgrade: bool = False) -> Backend | None:
        return self._next(client_ip, self.room if upgrade else None)

    def _next(self, client_ip: str, room: Callable[[Backend], bool] | None = None
              ) -> Backend | None:
        cache = self._cache
        best = cache.get(client_ip)
        if best is not None and (room is None or room(best)):
            return best
        prefix = fnv1a_64(client_ip.encode())
        best = None
        best_score = -math.inf
        for key, weight, server in self._pool:
            if room is not None and not room(server):
                continue
            score = _rendezvous_score(fnv1a_64(key, prefix), weight)
            if best is None or score > best_score:
                best, best_score = server, score
        if best is not None and room is None:
            if len(cache) >= _HRW_CACHE_SIZE:
                cache.clear()
            cache[client_ip] = best
        return best


def _rendezvous_score(h: int, weight: float) -> float:
    # Edges follow Go's float rules, as Traefik computes them: h == 0 gives 1/+Inf = 0,
    # and h rounding to 2**64 gives 1/-0.0 = -Inf.
    x = h * _TWO_TO_MINUS_64
    if x == 0.0:
        return 0.0
    if x >= 1.0:
        return -math.inf
    return (1.0 / -math.log(x)) * weight


class WeightedChild(NamedTuple):
    """One entry of weighted.services: a child service's name, weight and balancer."""

    name: str
    weight: int | None
    balancer: Balancer


class GroupChild:
    """A child service of a group, as the group sees it.

    `position` is the child's place in the list the group was given (before weights of 0
    or less were dropped and the rest shuffled): callers map it back to their own objects.
    `eligible` means up (not marked down with `set_healthy`) and available.
    """

    __slots__ = ("balancer", "cookie_value", "eligible", "index", "key", "name", "position",
                 "up", "weight")

    def __init__(self, name: str, weight: int, balancer: Balancer, index: int,
                 position: int) -> None:
        self.name = name
        self.weight = weight
        self.balancer = balancer
        self.cookie_value = cookie_value(name)
        self.key = name.encode()
        self.index = index
        self.position = position
        self.up = True
        self.eligible = balancer.available

    def __repr__(self) -> str:
        return f"GroupChild({self.name!r}, weight={self.weight}, eligible={self.eligible})"


def _weight_of(name: str, weight: object) -> int:
    weight = 1 if weight is None else weight
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise TypeError(f"child service {name!r}: weight must be an int, not {weight!r}")
    return weight


class ServiceGroup(Balancer):
    """Shared bookkeeping of services over services: children, their eligibility, health.

    Subclasses say which eligible child comes next (`_next_child`). `choose_child` is the
    one-level decision the proxy's service tree walks with (it applies this group's sticky
    cookie, if any); `pick` and `_choose` walk the balancers alone. When the chosen child
    cannot take an upgrade (every server full), the next one is tried.
    """

    def __init__(self, children: list[GroupChild], sticky: StickyCookie | None) -> None:
        super().__init__(sticky)
        self._children = children
        self._by_name: dict[str, GroupChild] = {}
        for child in children:
            self._by_name.setdefault(child.name, child)
        self._sticky_table = StickyTable((child.name, child) for child in children)
        self._eligible_count = sum(1 for child in children if child.eligible)
        for child in children:
            child.balancer.watch_weakly(self, _child_watcher(child))
        self._set_available(self._eligible_count > 0)

    @property
    def children(self) -> tuple[str, ...]:
        return tuple(child.name for child in self._children)

    @property
    def members(self) -> tuple[GroupChild, ...]:
        return tuple(self._children)

    def _refresh(self, child: GroupChild) -> None:
        eligible = child.up and child.balancer.available
        if eligible == child.eligible:
            return
        child.eligible = eligible
        self._eligible_count += 1 if eligible else -1
        self._eligibility_changed(child)
        self._set_available(self._eligible_count > 0)

    def _eligibility_changed(self, child: GroupChild) -> None:
        """Hook for subclasses that keep a schedule or a cache of eligible children."""

    def set_healthy(self, key: str, healthy: bool) -> None:
        try:
            child = self._by_name[key]
        except KeyError:
            raise KeyError(f"no child service {key!r} in this {self.kind}") from None
        child.up = healthy
        self._refresh(child)

    kind = "group"

    @abstractmethod
    def _next_child(self, client_ip: str, exclude: frozenset[int]) -> GroupChild | None:
        """The eligible child due next, other than those whose index is in `exclude`."""

    def _pick_child(self, client_ip: str, sticky_key: str | None,
                    exclude: frozenset[int]) -> GroupChild | None:
        if sticky_key is not None:
            child = self._sticky_table.lookup(sticky_key)
            if child is not None and child.eligible and child.index not in exclude:
                return child
        return self._next_child(client_ip, exclude)

    def choose_child(self, client_ip: str, cookies: Mapping[str, str] = _NO_COOKIES,
                     set_cookies: list[str] | None = None,
                     exclude: frozenset[int] = frozenset()) -> GroupChild | None:
        """The child for a request, appending this group's sticky Set-Cookie (if any) to
        `set_cookies`; None when no eligible child is left outside `exclude`."""
        sticky = self.sticky
        received = cookies.get(sticky.name) if sticky is not None else None
        child = self._pick_child(client_ip, received, exclude)
        if child is not None and sticky is not None and received != child.cookie_value \
                and set_cookies is not None:
            set_cookies.append(sticky.set_cookie(child.cookie_value))
        return child

    def pick(self, client_ip: str, sticky_key: str | None = None, *,
             upgrade: bool = False) -> Backend | None:
        tried: frozenset[int] = frozenset()
        for _ in range(len(self._children)):
            child = self._pick_child(client_ip, sticky_key, tried)
            if child is None:
                return None
            server = child.balancer.pick(client_ip, upgrade=upgrade)
            if server is not None:
                return server
            tried |= {child.index}
        return None

    def _choose(
        self, client_ip: str, cookies: Mapping[str, str], set_cookies: list[str],
        upgrade: bool = False,
    ) -> Backend | None:
        tried: frozenset[int] = frozenset()
        for _ in range(len(self._children)):
            mine: list[str] = []
            child = self.choose_child(client_ip, cookies, mine, tried)
            if child is None:
                return None
            theirs: list[str] = []
            server = child.balancer._choose(client_ip, cookies, theirs, upgrade)
            if server is not None:
                set_cookies.extend(mine)
                set_cookies.extend(theirs)
                return server
            tried |= {child.index}
        return None


def _child_watcher(child: GroupChild) -> Callable[[object, bool], None]:
    def on_change(group: object, available: bool) -> None:
        assert isinstance(group, ServiceGroup)
        group._refresh(child)

    return on_change


def _group_children(children: Iterable[WeightedChild | tuple[str, int | None, Balancer]],
                    rng: random.Random | None) -> list[GroupChild]:
    kept: list[tuple[int, str, int, Balancer]] = []
    for position, (name, weight, balancer) in enumerate(children):
        checked = _weight_of(name, weight)
        if checked > 0:
            kept.append((position, name, checked, balancer))
    if rng is not None:
        rng.shuffle(kept)
    return [GroupChild(name, weight, balancer, index, position)
            for index, (position, name, weight, balancer) in enumerate(kept)]


class WeightedServices(ServiceGroup):
    """The `weighted` service: earliest-deadline-first over child services.

    A child with no usable server (or marked down with `set_healthy`) leaves the
    schedule until it has one again; children report that through `watch`. The sticky
    cookie, if any, designates a child by name; the child then applies its own.
    """

    kind = "weighted service"

    def __init__(
        self,
        children: Iterable[WeightedChild | tuple[str, int | None, Balancer]],
        *,
        sticky: StickyCookie | None = None,
        rng: random.Random | None = None,
    ) -> None:
        members = _group_children(children, rng)
        self._schedule = _EarliestDeadlineFirst([child.weight for child in members])
        for child in members:
            if child.eligible:
                self._schedule.add(child.index)
        super().__init__(members, sticky)

    def _eligibility_changed(self, child: GroupChild) -> None:
        if child.eligible:
            self._schedule.add(child.index)
        else:
            self._schedule.remove(child.index)

    def _next_child(self, client_ip: str, exclude: frozenset[int]) -> GroupChild | None:
        index = self._schedule.next()
        if index < 0:
            return None
        if exclude:
            # An excluded child loses its turn; each eligible child is offered once.
            for _ in range(self._eligible_count):
                if index not in exclude:
                    break
                index = self._schedule.next()
            else:
                return None
        return self._children[index]


class HighestRandomWeightServices(ServiceGroup):
    """The `highestRandomWeight` service: rendezvous hashing of the client address over
    child services, with `hrw`'s formula and hash (the key is the child's name as the
    configuration writes it), so a client gets the child Traefik would give it. Children
    with no usable server are skipped; a client keeps its child while that child is
    eligible. No sticky cookie (Traefik has none here)."""

    kind = "highestRandomWeight service"

    def __init__(
        self,
        children: Iterable[WeightedChild | tuple[str, int | None, Balancer]],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._cache: dict[str, GroupChild] = {}
        super().__init__(_group_children(children, rng), None)

    def _eligibility_changed(self, child: GroupChild) -> None:
        self._cache.clear()

    def _next_child(self, client_ip: str, exclude: frozenset[int]) -> GroupChild | None:
        cache = self._cache
        if not exclude:
            best = cache.get(client_ip)
            if best is not None:
                return best
        prefix = fnv1a_64(client_ip.encode())
        best = None
        best_score = -math.inf
        for child in self._children:
            if not child.eligible or child.index in exclude:
                continue
            score = _rendezvous_score(fnv1a_64(child.key, prefix), float(child.weight))
            if best is None or score > best_score:
                best, best_score = child, score
        if best is not None and not exclude:
            if len(cache) >= _HRW_CACHE_SIZE:
                cache.clear()
            cache[client_ip] = best
        return best


class FailoverBalancer(ServiceGroup):
    """The `failover` service's choice: its service while that one is available, else its
    fallback; unavailable only when both are. Traefik fails over the same way on the
    health its children report. No sticky cookie of its own (its children may have one).
    """

    kind = "failover service"

    def __init__(self, main: tuple[str, Balancer], fallback: tuple[str, Balancer]) -> None:
        members = [GroupChild(main[0], 1, main[1], 0, 0),
                   GroupChild(fallback[0], 1, fallback[1], 1, 1)]
        super().__init__(members, None)

    @property
    def main(self) -> GroupChild:
        return self._children[0]

    @property
    def fallback(self) -> GroupChild:
        return self._children[1]

    def _next_child(self, client_ip: str, exclude: frozenset[int]) -> GroupChild | None:
        for child in self._children:
            if child.eligible and child.index not in exclude:
                return child
        return None


def build_load_balancer(
    strategy: str,
    servers: Iterable[Backend],
    *,
    sticky: StickyCookie | None = None,
    rng: random.Random | None = None,
) -> Balancer:
    """The balancer for a loadBalancer service.

    Raises UnsupportedStrategyError for leasttime and unknown strategies. With hrw the
    sticky cookie is ignored, as Traefik ignores it.
    """
    if strategy in ("wrr", ""):
        return WeightedRoundRobin(servers, sticky=sticky, rng=rng)
    if strategy == "p2c":
        return PowerOfTwoChoices(servers, sticky=sticky, rng=rng)
    if strategy == "hrw":
        return HighestRandomWeight(servers)
    raise UnsupportedStrategyError(strategy)
