"""Building the services made of services (weighted, highestRandomWeight, failover,
mirroring) from their configuration, over children the gateway has built.

A child that cannot be built (a loadBalancer with an unsupported strategy...) is left out of
a weighted or highestRandomWeight service and out of a mirroring's mirrors; a failover or a
mirroring without its service cannot be used (its routers answer 503). Each case is logged.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from twisted.logger import Logger

from wsgate.config.dynamic import Service
from wsgate.proxy.failover import parse_failover_status
from wsgate.proxy.routing import (
    FailoverService,
    HighestRandomWeightService,
    MirroringService,
    ProxyService,
    WeightedService,
)
from wsgate.proxy.sticky import StickyCookie

__all__ = ["build_composite", "sticky_cookie"]

log = Logger()

ChildBuilder = Callable[[str], "ProxyService | None"]


def sticky_cookie(service: str, sticky: Any) -> StickyCookie | None:
    """The sticky cookie of a service (its name derives from the qualified service name)."""
    if sticky is None or sticky.cookie is None:
        return None
    cookie = sticky.cookie
    return StickyCookie.for_service(
        service, name=cookie.name or None, secure=cookie.secure, http_only=cookie.http_only,
        same_site=cookie.same_site or None, max_age=cookie.max_age, path=cookie.path,
        domain=cookie.domain or None)


def build_composite(name: str, config: Service, references: Sequence[str],
                    child: ChildBuilder) -> ProxyService | None:
    """The service ``name`` of a kind other than loadBalancer; ``references`` are its
    qualified children in the order of :meth:`Service.references`, ``child`` builds one."""
    if config.weighted is not None:
        children = _children(name, references, config.weighted.services, child)
        if not children:
            return None
        return WeightedService(name, [(ref, weight, svc) for ref, _, weight, svc in children],
                               rng=random.Random(),
                               sticky=sticky_cookie(name, config.weighted.sticky))
    if config.highest_random_weight is not None:
        children = _children(name, references, config.highest_random_weight.services, child)
        if not children:
            return None
        # Traefik hashes each child's name as written in the configuration.
        return HighestRandomWeightService(
            name, [(written, weight, svc) for _, written, weight, svc in children],
            rng=random.Random())
    if config.failover is not None:
        return _failover(name, config, references, child)
    if config.mirroring is not None:
        return _mirroring(name, config, references, child)
    log.error("service {name}: no kind wsgate can serve; its routers answer 503", name=name)
    return None


def _children(name: str, references: Sequence[str], entries: Sequence[Any],
              child: ChildBuilder) -> list[tuple[str, str, int, ProxyService]]:
    out = []
    for ref, entry in zip(references, entries):
        if entry.weight <= 0:
            continue
        built = child(ref)
        if built is None:
            log.error("service {name}: child service {child} cannot be used; it is left out",
                      name=name, child=ref)
            continue
        out.append((ref, entry.name, entry.weight, built))
    return out


def _failover(name: str, config: Service, references: Sequence[str],
              child: ChildBuilder) -> ProxyService | None:
    failover = config.failover
    assert failover is not None
    main_ref, fallback_ref = references[0], references[1]
    main, fallback = child(main_ref), child(fallback_ref)
    if main is None or fallback is None:
        log.error("service {name}: failover {which} {ref} cannot be used; its routers answer "
                  "503", name=name, which="service" if main is None else "fallback",
                  ref=main_ref if main is None else fallback_ref)
        return None
    errors = None
    if failover.errors is not None and failover.errors.status:
        try:
            ranges = parse_failover_status(failover.errors.status)
        except ValueError as exc:
            log.error("service {name}: {error}; its routers answer 503", name=name,
                      error=str(exc))
            return None
        errors = (ranges, failover.errors.max_request_body_bytes)
    return FailoverService(name, (main_ref, main), (fallback_ref, fallback), errors)


def _mirroring(name: str, config: Service, references: Sequence[str],
               child: ChildBuilder) -> ProxyService | None:
    mirroring = config.mirroring
    assert mirroring is not None
    main = child(references[0])
    if main is None:
        log.error("service {name}: mirroring service {ref} cannot be used; its routers answer "
                  "503", name=name, ref=references[0])
        return None
    mirrors = []
    for ref, entry in zip(references[1:], mirroring.mirrors):
        built = child(ref)
        if built is None:
            log.error("service {name}: mirror {ref} cannot be used; it gets no copies",
                      name=name, ref=ref)
            continue
        mirrors.append((ref, entry.percent, built))
    return MirroringService(name, main, mirrors, mirror_body=mirroring.mirror_body,
                            max_body_size=mirroring.max_body_size)
