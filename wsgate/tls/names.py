"""Names on the TLS side: which certificate serves a server name, which TLS options a host uses.

Sans-I/O. Traefik's rules, followed here:

- A certificate serves the names in its subject common name and subject alternative names
  (DNS names and IP addresses). A server name is matched exactly first, then against a
  wildcard name (``*.example.com`` covers one label). The first certificate loaded for a name
  keeps it.
- The TLS options of a connection are those of the routers whose ``Host`` rules name the
  server name; routers without a ``Host`` use the ``default`` options, and a host that two
  routers give different options falls back to ``default`` (with a warning).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wsgate.rules import And, Expr, Matcher, Not, Or, RuleSyntaxError, parse_rule

__all__ = [
    "DEFAULT_OPTIONS",
    "HostOptions",
    "NameIndex",
    "build_host_options",
    "normalize_name",
    "rule_hosts",
    "wildcard_of",
]

DEFAULT_OPTIONS = "default"
_HOST_MATCHERS = frozenset({"host", "hostheader"})

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """A DNS name or IP address as compared here: trimmed, lower-cased, no trailing dot."""
    name = name.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.startswith("::ffff:"):
        # An IPv4 client of a dual-stack listener: its address as the IPv4 it is.
        try:
            mapped = ipaddress.IPv6Address(name).ipv4_mapped
        except ValueError:
            mapped = None
        if mapped is not None:
            return str(mapped)
    return name


def wildcard_of(name: str) -> str | None:
    """The wildcard name that would cover ``name`` (``a.b.c`` → ``*.b.c``), if any."""
    head, dot, rest = name.partition(".")
    if not dot or not head or not rest or _is_ip(name):
        return None
    return "*." + rest


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class NameIndex(Generic[T]):
    """Items by the names they serve; lookups try the exact name, then its wildcard."""

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: dict[str, T] = {}

    def add(self, names: Iterable[str], item: T) -> list[str]:
        """Register ``item`` for ``names``; returns the names already taken (kept as they are)."""
        taken = []
        for raw in names:
            name = normalize_name(raw)
            if not name:
                continue
            if name in self._names:
                if self._names[name] is not item:
                    taken.append(name)
                continue
            self._names[name] = item
        return taken

    def lookup(self, server_name: str) -> T | None:
        name = normalize_name(server_name)
        if not name:
            return None
        found = self._names.get(name)
        if found is not None:
            return found
        wildcard = wildcard_of(name)
        return None if wildcard is None else self._names.get(wildcard)

    def __len__(self) -> int:
        return len(self._names)

    def names(self) -> list[str]:
        return sorted(self._names)


def rule_hosts(rule: str | Expr, syntax: str = "v3") -> tuple[str, ...]:
    """The host names a rule's ``Host`` matchers name (not those under ``!``), normalized.

    ``Host(`*`)`` names no particular host and is left out.
    """
    if isinstance(rule, str):
        try:
            rule = parse_rule(rule, syntax)
        except RuleSyntaxError:
            return ()
    found: list[str] = []
    _collect_hosts(rule, found)
    out: list[str] = []
    for host in found:
        name = normalize_name(host)
        if name and name != "*" and name not in out:
            out.append(name)
    return tuple(out)


def _collect_hosts(expr: Expr, out: list[str]) -> None:
    if isinstance(expr, Matcher):
        if expr.name.lower() in _HOST_MATCHERS:
            out.extend(expr.args)
    elif isinstance(expr, (And, Or)):
        for operand in expr.operands:
            _collect_hosts(operand, out)
    elif isinstance(expr, Not):
        return


@dataclass(frozen=True)
class RouterTLSInput:
    """One TLS router on an entryPoint, as the host-options mapping needs it."""

    router: str
    hosts: tuple[str, ...]
    options: str


@dataclass(frozen=True)
class HostOptions:
    """The TLS options per host of one entryPoint, and what the configuration got wrong.

    ``conflicts`` maps a host to the routers that asked for different options on it (the
    host uses ``default``); ``hostless`` lists the routers that name options other than
    ``default`` but no host, so their options depend on other routers' hosts.
    """

    by_host: Mapping[str, str] = field(default_factory=dict)
    conflicts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hostless: tuple[str, ...] = ()

    def options_for(self, server_name: str) -> str:
        """The options of a connection or request for ``server_name`` (may be empty)."""
        name = normalize_name(server_name)
        if not name:
            return DEFAULT_OPTIONS
        found = self.by_host.get(name)
        if found is None:
            wildcard = wildcard_of(name)
            if wildcard is not None:
                found = self.by_host.get(wildcard)
        return DEFAULT_OPTIONS if found is None else found

    def used(self) -> frozenset[str]:
        return frozenset(self.by_host.values()) | {DEFAULT_OPTIONS}


def build_host_options(routers: Iterable[RouterTLSInput]) -> HostOptions:
    """Map every host named by a TLS router to its options, resolving conflicts to default."""
    wanted: dict[str, dict[str, list[str]]] = {}
    hostless: list[str] = []
    for r in routers:
        if not r.hosts:
            if r.options != DEFAULT_OPTIONS:
                hostless.append(r.router)
            continue
        for host in r.hosts:
            wanted.setdefault(host, {}).setdefault(r.options, []).append(r.router)
    by_host: dict[str, str] = {}
    conflicts: dict[str, tuple[str, ...]] = {}
    for host, options in sorted(wanted.items()):
        if len(options) == 1:
            by_host[host] = next(iter(options))
        else:
            by_host[host] = DEFAULT_OPTIONS
            conflicts[host] = tuple(sorted(r for names in options.values() for r in names))
    return HostOptions(by_host, conflicts, tuple(sorted(set(hostless))))
