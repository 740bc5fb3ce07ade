"""The routing table the data path reads: per entryPoint muxers and the services they name.

A table is built from a runtime configuration and swapped in whole on reload (one attribute
assignment), so a request always sees one consistent configuration. Connections already
relaying keep the objects they started with.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

from twisted.internet import defer

from wsgate.middlewares.status_ranges import StatusRanges
from wsgate.proxy.backend import BackendAddress, BackendConnection, BackendPool, Connector
from wsgate.proxy.balancer import (
    Backend,
    Balancer,
    FailoverBalancer,
    GroupChild,
    HighestRandomWeightServices,
    ServiceGroup,
    WeightedChild,
    WeightedServices,
)
from wsgate.proxy.failover import FailoverStep
from wsgate.proxy.mirroring import CopyBudget, MirrorSelector
from wsgate.proxy.session_limits import ServerSessionCounts
from wsgate.proxy.sticky import StickyCookie
from wsgate.rules import Muxer, RouteRequest

if TYPE_CHECKING:
    from wsgate.config.dynamic import RouterExtension
    from wsgate.middlewares import Chain
    from wsgate.proxy.dataplan import DataPlan
    from wsgate.proxy.service_hooks import RequestHooks


class Pick(NamedTuple):
    """A request's server: the leaf service that owns it, the server, and the Set-Cookie
    values sticky sessions add to the response (the 101 included)."""

    leaf: LeafService
    backend: Backend
    set_cookies: tuple[str, ...]


class ProxyService:
    """A service as the data path uses it: it picks the leaf service and server for a request.

    ``pick_leaf`` returns the loadBalancer service that owns the chosen server (for a service
    of services, the leaf reached through the children chosen on the way), because
    connections, pools, timeouts and Host handling belong to that service and its
    serversTransport. ``upgrade`` says the request opens a WebSocket (servers at
    ``wsgate.maxConnectionsPerServer`` are skipped). ``hooks``, given for services that are
    ``hooked``, collects what the request needs beyond its server on the way down: copies
    for mirrors, a fallback for failover ``errors`` (see :mod:`wsgate.proxy.service_hooks`).
    """

    name: str
    balancer: Balancer

    #: Whether picks look at the request's cookies (a sticky.cookie is configured).
    sticky: bool = False
    #: Whether a request may need more than a server: mirroring or failover ``errors`` on the
    #: way down (the data path then passes ``hooks``).
    hooked: bool = False

    def pick_leaf(self, client_ip: str, cookies: Mapping[str, str] | None = None, *,
                  upgrade: bool = False, hooks: RequestHooks | None = None) -> Pick | None:
        """The leaf service and server for a request, with the Set-Cookie values that sticky
        sessions add to the response (the 101 included)."""
        raise NotImplementedError

    def leaves(self) -> list[LeafService]:
        raise NotImplementedError


class LeafService(ProxyService):
    """A loadBalancer service: servers behind one balancer, reached over one transport.

    ``sessions`` counts open WebSocket sessions per server across reloads; with
    ``max_sessions`` (``wsgate.maxConnectionsPerServer``) an upgrade skips a server that
    has that many.
    """

    def __init__(self, name: str, balancer: Balancer, addresses: Mapping[str, BackendAddress],
                 *, pass_host_header: bool, pool: BackendPool, connector: Connector,
                 dial_timeout: float, response_header_timeout: float,
                 tls_context: Callable[[BackendAddress], Any] | None = None,
                 sessions: ServerSessionCounts | None = None, max_sessions: int = 0) -> None:
        self.name = name
        self.balancer = balancer
        self.addresses = dict(addresses)
        self.pass_host_header = pass_host_header
        self.pool = pool
        self.connector = connector
        self.dial_timeout = dial_timeout
        self.response_header_timeout = response_header_timeout
        self.tls_context = tls_context
        self.sticky = balancer.sticky is not None
        self.sessions = sessions if sessions is not None else ServerSessionCounts()
        self.max_sessions = max_sessions
        if max_sessions > 0:
            balancer.room = self._has_room

    def _has_room(self, server: Backend) -> bool:
        return self.sessions.count(self.name, server.url) < self.max_sessions

    def pick_leaf(self, client_ip: str, cookies: Mapping[str, str] | None = None, *,
                  upgrade: bool = False, hooks: RequestHooks | None = None) -> Pick | None:
        if not self.sticky:
            server = self.balancer.pick(client_ip, upgrade=upgrade)
            return None if server is None else Pick(self, server, ())
        choice = self.balancer.choose(client_ip, cookies or {}, upgrade=upgrade)
        return None if choice is None else Pick(self, choice.backend, choice.set_cookies)

    def leaves(self) -> list[LeafService]:
        return [self]

    def address_of(self, server: Backend) -> BackendAddress:
        return self.addresses[server.url]

    def acquire(self, server: Backend, upgrade: bool = False) -> None:
        """Count a request (and, for an upgrade, a WebSocket session) on ``server``."""
        self.balancer.acquire(server)
        if upgrade:
            self.sessions.acquire(self.name, server.url)

    def release(self, server: Backend, upgrade: bool = False) -> None:
        self.balancer.release(server)
        if upgrade:
            self.sessions.release(self.name, server.url)

    def connect(self, address: BackendAddress) -> defer.Deferred[BackendConnection]:
        context = self.tls_context(address) if self.tls_context is not None else None
        return self.connector.connect(address, dial_timeout=self.dial_timeout,
                                      tls_context=context)


class _GroupService(ProxyService):
    """A service over services: its group balancer picks a child, the child picks on.

    Walking the services (not only their balancers) lets a mirroring or a failover with
    ``errors`` anywhere below add its work to the request's hooks. When the chosen child
    finds no server (only an upgrade can meet that: every server full), what it added is
    taken back and the next child is tried.
    """

    balancer: ServiceGroup

    def __init__(self, name: str, balancer: ServiceGroup,
                 targets: Sequence[ProxyService]) -> None:
        self.name = name
        self.balancer = balancer
        self._targets = {child.index: targets[child.position] for child in balancer.members}
        self.sticky = balancer.sticky is not None or any(t.sticky for t in targets)
        self.hooked = any(t.hooked for t in targets)

    def _entering(self, child: GroupChild, hooks: RequestHooks) -> None:
        """What going down to ``child`` adds to the request (failover ``errors``)."""

    def pick_leaf(self, client_ip: str, cookies: Mapping[str, str] | None = None, *,
                  upgrade: bool = False, hooks: RequestHooks | None = None) -> Pick | None:
        cookies = cookies or {}
        tried: frozenset[int] = frozenset()
        for _ in range(len(self._targets)):
            mine: list[str] = []
            child = self.balancer.choose_child(client_ip, cookies, mine, tried)
            if child is None:
                return None
            mark = None
            if hooks is not None:
                mark = hooks.mark()
                self._entering(child, hooks)
            got = self._targets[child.index].pick_leaf(client_ip, cookies, upgrade=upgrade,
                                                       hooks=hooks)
            if got is not None:
                if mine:
                    return Pick(got.leaf, got.backend, (*mine, *got.set_cookies))
                return got
            if hooks is not None and mark is not None:
                hooks.reset(mark)
            tried |= {child.index}
        return None

    def leaves(self) -> list[LeafService]:
        return [leaf for target in self._targets.values() for leaf in target.leaves()]


class WeightedService(_GroupService):
    """A weighted service: a child service is chosen by weight, then its server."""

    def __init__(self, name: str, children: list[tuple[str, int, ProxyService]],
                 rng: random.Random | None = None, sticky: StickyCookie | None = None) -> None:
        self.children = children
        balancer = WeightedServices(
            [WeightedChild(child_name, weight, child.balancer)
             for child_name, weight, child in children], sticky=sticky, rng=rng)
        super().__init__(name, balancer, [child for _, _, child in children])


class HighestRandomWeightService(_GroupService):
    """A highestRandomWeight service: the child service is chosen by rendezvous hashing of
    the client address (``children`` name each child as the configuration writes it: that
    name is what is hashed, as in Traefik)."""

    def __init__(self, name: str, children: list[tuple[str, int, ProxyService]],
                 rng: random.Random | None = None) -> None:
        self.children = children
        balancer = HighestRandomWeightServices(
            [WeightedChild(child_name, weight, child.balancer)
             for child_name, weight, child in children], rng=rng)
        super().__init__(name, balancer, [child for _, _, child in children])


class FailoverService(_GroupService):
    """A failover service: its service while that one is available, else its fallback.

    With ``errors`` (a :class:`FailoverStep` whose ``fallback`` is this service's), a request
    that goes to the main side carries the step, so that a listed status sends it on to the
    fallback (see :mod:`wsgate.proxy.service_hooks`).
    """

    def __init__(self, name: str, main: tuple[str, ProxyService],
                 fallback: tuple[str, ProxyService],
                 errors: tuple[StatusRanges, int] | None = None) -> None:
        self.main = main[1]
        self.fallback = fallback[1]
        balancer = FailoverBalancer((main[0], main[1].balancer),
                                    (fallback[0], fallback[1].balancer))
        super().__init__(name, balancer, [main[1], fallback[1]])
        self.step: FailoverStep | None = None
        if errors is not None and errors[0]:
            self.step = FailoverStep(name, fallback[1], errors[0], errors[1])
            self.hooked = True

    def _entering(self, child: GroupChild, hooks: RequestHooks) -> None:
        if self.step is not None and child.index == 0:
            hooks.add_failover(self.step)


class MirroringService(ProxyService):
    """A mirroring service: its service answers; chosen mirrors get a copy afterwards.

    The choice of the server is its service's (availability included); the mirrors are
    chosen per request by Traefik's counters (:class:`MirrorSelector`) and added to the
    request's hooks, which send the copies once the main exchange is over.
    """

    hooked = True

    def __init__(self, name: str, main: ProxyService,
                 mirrors: Sequence[tuple[str, int, ProxyService]], *, mirror_body: bool,
                 max_body_size: int) -> None:
        self.name = name
        self.main = main
        self.balancer = main.balancer
        self.sticky = main.sticky
        self.mirrors = tuple(mirrors)
        self.mirror_body = mirror_body
        self.max_body_size = max_body_size
        self.selector = MirrorSelector([percent for _, percent, _ in self.mirrors])
        self.budget = CopyBudget()
        if not any(percent > 0 for _, percent, _ in self.mirrors):
            self.hooked = main.hooked

    def pick_leaf(self, client_ip: str, cookies: Mapping[str, str] | None = None, *,
                  upgrade: bool = False, hooks: RequestHooks | None = None) -> Pick | None:
        if hooks is not None:
            chosen = self.selector.next()
            if chosen:
                hooks.add_mirrors(self, tuple(self.mirrors[i] for i in chosen))
        return self.main.pick_leaf(client_ip, cookies, upgrade=upgrade, hooks=hooks)

    def leaves(self) -> list[LeafService]:
        return self.main.leaves()


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What a matched router leads to: a proxied service or an in-process protocol factory."""

    router: str
    service_name: str
    service: ProxyService | None = None
    #: The router's middlewares (None when it has none: the fast path).
    chain: Chain | None = None
    #: Why a router that matched cannot be served (answered 503), for the log.
    problem: str = ""
    internal_factory: Any = None
    #: The router's ``wsgate`` section: the WebSocket session policy (maxConnections at the
    #: upgrade, the rest in the relay). None for decisions without a router.
    ws: RouterExtension | None = None
    #: What the chain asks of the data path (retry, buffering, compress, errors), looked up
    #: once per route; None when nothing (the fast path).
    plan: DataPlan | None = None


class RoutingTable:
    """Muxers per (entryPoint, TLS or not); immutable once built."""

    def __init__(self, muxers: Mapping[tuple[str, bool], Muxer]) -> None:
        self._muxers = dict(muxers)

    def route(self, entrypoint: str, request: RouteRequest) -> RouteDecision | None:
        muxer = self._muxers.get((entrypoint, request.tls))
        if muxer is None:
            return None
        found = muxer.match(request)
        if found is None:
            return None
        return found.payload  # type: ignore[return-value]

    @classmethod
    def empty(cls) -> RoutingTable:
        return cls({})
