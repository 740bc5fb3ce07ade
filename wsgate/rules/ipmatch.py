"""ClientIP: a precompiled set of addresses and networks, compared as integers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .request import IPAddress

__all__ = ["IPSet"]


def _parse_spec(spec: str) -> IPAddress | ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IP or CIDR as Go's net.ParseIP / net.ParseCIDR accept them; ValueError otherwise."""
    if "%" in spec:
        raise ValueError("zones are not allowed")
    addr_text, slash, prefix = spec.partition("/")
    if not slash:
        addr = ipaddress.ip_address(spec)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        return addr
    if not prefix.isascii() or not prefix.isdigit():
        raise ValueError("the prefix length must be a decimal number")
    ipaddress.ip_address(addr_text)  # Go rejects a malformed address even with host bits
    net = ipaddress.ip_network(f"{addr_text}/{int(prefix)}", strict=False)
    if isinstance(net, ipaddress.IPv6Network):
        mapped = net.network_address.ipv4_mapped
        if mapped is not None and net.prefixlen >= 96:
            # Go treats an IPv4-mapped network as the IPv4 network it embeds.
            return ipaddress.IPv4Network((mapped, net.prefixlen - 96), strict=False)
    return net


class IPSet:
    """Addresses and networks; ``contains`` takes an already parsed (normalised) address."""

    __slots__ = ("_exact", "_nets4", "_nets6")

    def __init__(self, specs: Iterable[str]) -> None:
        exact: set[IPAddress] = set()
        nets4: list[tuple[int, int]] = []
        nets6: list[tuple[int, int]] = []
        for spec in specs:
            try:
                parsed = _parse_spec(spec)
            except ValueError as exc:
                raise ValueError(f"invalid IP or CIDR {spec!r}: {exc}") from None
            if isinstance(parsed, ipaddress.IPv4Network):
                nets4.append((int(parsed.network_address), int(parsed.netmask)))
            elif isinstance(parsed, ipaddress.IPv6Network):
                nets6.append((int(parsed.network_address), int(parsed.netmask)))
            else:
                exact.add(parsed)
        self._exact = frozenset(exact)
        self._nets4 = tuple(nets4)
        self._nets6 = tuple(nets6)

    def contains(self, addr: IPAddress | None) -> bool:
        if addr is None:
            return False
        if addr in self._exact:
            return True
        nets = self._nets4 if addr.version == 4 else self._nets6
        if nets:
            value = int(addr)
            for network, mask in nets:
                if value & mask == network:
                    return True
        return False
