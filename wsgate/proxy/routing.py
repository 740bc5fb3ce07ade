"""The routing table the data path reads: per entryPoint muxers and the services they name.

A table is built from a runtime configuration and swapped in whole on reload (one attribute
assignment), so a request always sees one consistent configuration. Connections already
relaying keep the objects they started with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from twisted.internet import defer

from wsgate.proxy.backend import BackendAddress, BackendConnection, BackendPool, Connector
from wsgate.proxy.balancer import Backend, Balancer, WeightedChild, WeightedServices
from wsgate.proxy.sticky import StickyCookie
from wsgate.rules import Muxer, RouteRequest

if TYPE_CHECKING:
    from wsgate.config.dynamic import RouterExtension
    from wsgate.middlewares import Chain
    from wsgate.proxy.dataplan import DataPlan


class ProxyService:
    """A service as the data path uses it: it picks the leaf service and server for a request.

    ``pick_leaf`` returns the loadBalancer service that owns the chosen server (for a weighted
    service, the child that was chosen), because connections, pools, timeouts and Host
    handling belong to that service and its serversTransport.
    """

    name: str
    balancer: Balancer

    #: Whether picks look at the request's cookies (a sticky.cookie is configured).
    sticky: bool = False

    def pick_leaf(self, client_ip: str, cookies: Mapping[str, str] | None = None
                  ) -> tuple[LeafService, Backend, tuple[str, ...]] | None:
        """The leaf service and server for a request, with the Set-Cookie values that sticky
        sessions add to the response (the 101 included)."""
        raise NotImplementedError

    def leaves(self) -> list[LeafService]:
        raise NotImplementedError


class LeafService(ProxyService):
    """A loadBalancer service: servers behind one balancer, reached over one transport."""

    def __init__(self, name: str, balancer: Balancer, addresses: Mapping[str, BackendAddress],
                 *, pass_host_header: bool, pool: BackendPool, connector: Connector,
                 dial_timeout: float, response_header_timeout: float,
                 tls_context: Callable[[BackendAddress], Any] | None = None) -> None:
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

    def pick_leaf(self, client_ip: str, cookies: Mapping[str, str] | None = None
                  ) -> tuple[LeafService, Backend, tuple[str, ...]] | None:
        if not self.sticky:
            server = self.balancer.pick(client_ip)
            return None if server is None else (self, server, ())
        choice = self.balancer.choose(client_ip, cookies or {})
        return None if choice is None else (self, choice.backend, choice.set_cookies)

    def leaves(self) -> list[LeafService]:
        return [self]

    def address_of(self, server: Backend) -> BackendAddress:
        return self.addresses[server.url]

    def acquire(self, server: Backend) -> None:
        self.balancer.acquire(server)

    def release(self, server: Backend) -> None:
        self.balancer.release(server)

    def connect(self, address: BackendAddress) -> defer.Deferred[BackendConnection]:
        context = self.tls_context(address) if self.tls_context is not None else None
        return self.connector.connect(address, dial_timeout=self.dial_timeout,
                                      tls_context=context)


class WeightedService(ProxyService):
    """A weighted service: a child service is chosen by weight, then its server."""

    def __init__(self, name: str, children: list[tuple[str, int, ProxyService]],
                 rng: random.Random | None = None, sticky: StickyCookie | None = None) -> None:
        self.name = name
        self.children = children
        self.balancer = WeightedServices(
            [WeightedChild(child_name, weight, child.balancer)
             for child_name, weight, child in children], sticky=sticky, rng=rng)
        self.sticky = self.balancer.sticky is not None or any(
            leaf.sticky for leaf in self.leaves())
        self._owner: dict[int, LeafService] = {}
        for leaf in self.leaves():
            for backend in getattr(leaf.balancer, "backends", ()):
                self._owner[id(backend)] = leaf

    def leaves(self) -> list[LeafService]:
        return [leaf for _, _, child in self.children for leaf in child.leaves()]

    def pick_leaf(self, client_ip: str, cookies: Mapping[str, str] | None = None
                  ) -> tuple[LeafService, Backend, tuple[str, ...]] | None:
        choice = self.balancer.choose(client_ip, cookies or {})
        if choice is None:
            return None
        return self._owner[id(choice.backend)], choice.backend, choice.set_cookies


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
