"""Which address a request comes from: Traefik's ipStrategy and sourceCriterion.

- no ipStrategy, or one with neither ``depth`` nor ``excludedIPs``: the peer address
  (``RemoteAddr``), optionally grouped by ``ipv6Subnet``;
- ``depth: n``: the n-th entry of X-Forwarded-For from the right ("" when there are fewer);
  ``depth`` wins over ``excludedIPs``;
- ``excludedIPs``: the right-most X-Forwarded-For entry not in the list ("" if none).

X-Forwarded-For is read as Go's ``Header.Get`` does: the first field only. The header must
already have been cleaned of untrusted values by the entryPoint (forwardedHeaders), and must not
yet carry the peer address that the forwarding step appends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from wsgate.config.dynamic import IPStrategy, SourceCriterion
from wsgate.middlewares.base import RequestContext
from wsgate.middlewares.errors import MiddlewareError
from wsgate.rules.ipmatch import IPSet
from wsgate.rules.request import parse_client_ip, split_host_port

__all__ = ["SourceExtractor", "build_ip_strategy", "build_source", "ip_in"]

SourceExtractor = Callable[[RequestContext], str]


def _subnet(ip: str, bits: int | None) -> str:
    """The first address of the ``bits`` IPv6 subnet of ``ip``; IPv4 and junk unchanged."""
    if bits is None:
        return ip
    try:
        addr = ipaddress.ip_address(ip.partition("%")[0])
    except ValueError:
        return ip
    if addr.version != 6:
        return ip
    return str(ipaddress.IPv6Network((int(addr), bits), strict=False).network_address)


def _xff_entries(ctx: RequestContext) -> list[str]:
    return (ctx.get("X-Forwarded-For") or "").split(",")


def build_ip_strategy(middleware: str, field: str, config: IPStrategy | None
                      ) -> SourceExtractor:
    """The address-picking function of an ipStrategy (None: the peer address)."""
    if config is None:
        return lambda ctx: ctx.client_ip
    subnet = config.ipv6_subnet
    if subnet is not None and not 0 < subnet <= 128 and (config.depth > 0
                                                          or not config.excluded_ips):
        raise MiddlewareError(middleware, f"{field}.ipv6Subnet",
                              f"invalid IPv6 subnet {subnet}: it must be between 1 and 128")
    if config.depth < 0:
        raise MiddlewareError(middleware, f"{field}.depth", "depth must not be negative")
    if config.depth > 0:
        depth = config.depth

        def by_depth(ctx: RequestContext) -> str:
            entries = _xff_entries(ctx)
            if len(entries) < depth:
                return ""
            return _subnet(entries[len(entries) - depth].strip(), subnet)

        return by_depth
    if config.excluded_ips:
        try:
            excluded = IPSet(e.strip() for e in config.excluded_ips)
        except ValueError as exc:
            raise MiddlewareError(middleware, f"{field}.excludedIPs", str(exc)) from None

        def by_pool(ctx: RequestContext) -> str:
            for entry in reversed(_xff_entries(ctx)):
                entry = entry.strip()
                if not entry:
                    continue
                addr = parse_client_ip(entry) if "[" not in entry else None
                if addr is None or not excluded.contains(addr):
                    return entry
            return ""

        return by_pool
    if subnet is None:
        return lambda ctx: ctx.client_ip
    return lambda ctx: _subnet(ctx.client_ip, subnet)


def build_source(middleware: str, field: str, criterion: SourceCriterion | None, *,
                 default: str) -> SourceExtractor:
    """The source key of a request for rateLimit/inFlightReq.

    ``default`` is what an unset criterion means: ``"ip"`` (rateLimit: the peer address) or
    ``"host"`` (inFlightReq: the request host).
    """
    if criterion is not None:
        set_ = [n for n, on in (("ipStrategy", criterion.ip_strategy is not None),
                                ("requestHeaderName", bool(criterion.request_header_name)),
                                ("requestHost", criterion.request_host)) if on]
        if len(set_) > 1:
            raise MiddlewareError(middleware, field,
                                  f"{set_[0]} and {set_[1]} are mutually exclusive")
        if criterion.ip_strategy is not None:
            return build_ip_strategy(middleware, f"{field}.ipStrategy", criterion.ip_strategy)
        if criterion.request_header_name:
            name = criterion.request_header_name
            return lambda ctx: ctx.get(name) or ""
        if criterion.request_host:
            return lambda ctx: ctx.host
    if default == "host":
        return lambda ctx: ctx.host
    return lambda ctx: ctx.client_ip


def ip_in(networks: IPSet, address: str) -> bool:
    """Whether ``address`` (an IP, or IP:port as an X-Forwarded-For entry may be) is in
    ``networks``; an empty or unparsable address is not."""
    if not address:
        return False
    host = address
    if ":" in address:
        try:
            host = split_host_port(address)[0]
        except ValueError:
            host = address
    if host.startswith("["):
        return False
    addr = parse_client_ip(host)
    return addr is not None and networks.contains(addr)
