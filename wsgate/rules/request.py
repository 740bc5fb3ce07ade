"""The request as routing sees it, and the derived views matchers need.

Derived views (canonical host, routing path, parsed query, parsed client address) are computed
on first use and at most once per request: a request routed by ``Host`` rules never parses
its query string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "IPAddress",
    "RouteRequest",
    "canonical_host",
    "host_key",
    "parse_client_ip",
    "parse_query",
    "routing_path",
    "split_host_port",
]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_HEXDIGITS = frozenset("0123456789abcdefABCDEF")

# RFC 3986 reserved characters (gen-delims and sub-delims) plus "%" itself: their escapes
# keep their meaning in a path, so routing keeps them escaped. Every other escape is decoded.
_KEPT_ESCAPES = frozenset(f"{ord(c):02X}" for c in ":/?#[]@!$&'()*+,;=%")


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def routing_path(raw_path: str) -> str:
    """The path that Path, PathPrefix and PathRegexp see.

    Percent-escapes of reserved characters (``%2F``, ``%3F``, ``%25`` ...) are kept, with
    their hex digits upper-cased; all other escapes are decoded (``%41`` → ``A``,
    ``%20`` → space, ``%C3%A9`` → ``é``). A malformed escape (``%zz``, a trailing ``%``) is
    kept as it is: the HTTP layer is expected to have rejected it with 400 already.
    """
    if "%" not in raw_path:
        return raw_path
    parts = raw_path.split("%")
    out = [_to_bytes(parts[0])]
    for part in parts[1:]:
        if len(part) >= 2 and part[0] in _HEXDIGITS and part[1] in _HEXDIGITS:
            code = part[:2].upper()
            if code in _KEPT_ESCAPES:
                out.append(b"%" + code.encode("ascii"))
            else:
                out.append(bytes((int(code, 16),)))
            out.append(_to_bytes(part[2:]))
        else:
            out.append(b"%")
            out.append(_to_bytes(part))
    return b"".join(out).decode("utf-8", "surrogateescape")


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``; raises ValueError where Go returns an error."""
    i = hostport.rfind(":")
    if i < 0:
        raise ValueError("missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if end + 1 == len(hostport):
            raise ValueError("missing port in address")
        if end + 1 != i:
            raise ValueError(
                "too many colons in address"
                if hostport[end + 1] == ":"
                else "missing port in address"
            )
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise ValueError("too many colons in address")
    if "[" in hostport[j:]:
        raise ValueError("unexpected '[' in address")
    if "]" in hostport[k:]:
        raise ValueError("unexpected ']' in address")
    return host, hostport[i + 1 :]


def canonical_host(raw_host: str) -> str:
    """The request host without its port, trimmed and lower-cased (as Traefik computes it).

    ``example.com:8080`` → ``example.com``; ``[::1]:80`` and ``[::1]`` → ``::1``; a bare
    IPv6 literal stays as it is.
    """
    host = raw_host
    if ":" in host:
        try:
            host = split_host_port(host)[0]
        except ValueError:
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
    return host.strip().lower()


def host_key(canonical: str) -> str:
    """The muxer's index key for a canonical host: one trailing dot removed."""
    return canonical[:-1] if canonical.endswith(".") else canonical


def _unescape_query(text: str) -> str | None:
    """Go's ``url.QueryUnescape``; None where Go reports an error (the pair is dropped)."""
    if "%" not in text:
        return text.replace("+", " ") if "+" in text else text
    parts = text.replace("+", " ").split("%")
    out = [_to_bytes(parts[0])]
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEXDIGITS or part[1] not in _HEXDIGITS:
            return None
        out.append(bytes((int(part[:2], 16),)))
        out.append(_to_bytes(part[2:]))
    return b"".join(out).decode("utf-8", "surrogateescape")


def parse_query(raw_query: str) -> dict[str, tuple[str, ...]]:
    """Parse a raw query string like Go's ``url.ParseQuery``, with ``;`` treated as ``&``.

    Traefik entry points treat ``;`` as a separator by default (Go's AllowQuerySemicolons).
    Pairs with a malformed escape are dropped, as Go drops them.
    """
    values: dict[str, list[str]] = {}
    if not raw_query:
        return {}
    for pair in raw_query.replace(";", "&").split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = _unescape_query(raw_key)
        value = _unescape_query(raw_value)
        if key is None or value is None:
            continue
        values.setdefault(key, []).append(value)
    return {k: tuple(v) for k, v in values.items()}


def parse_client_ip(text: str) -> IPAddress | None:
    """The peer address as an IP (IPv4-mapped IPv6 folded to IPv4), or None if invalid."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.partition("%")[0]  # an IPv6 zone does not take part in matching
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class _Views:
    """Per-request cache of derived views; a fresh one per RouteRequest."""

    __slots__ = ("canonical_host", "client", "client_done", "host_key", "query", "routing_path")

    def __init__(self) -> None:
        self.canonical_host: str | None = None
        self.host_key: str | None = None
        self.routing_path: str | None = None
        self.query: dict[str, tuple[str, ...]] | None = None
        self.client: IPAddress | None = None
        self.client_done = False


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What routing knows about a request.

    ``host`` is the host as received (Host header or absolute-form authority, maybe with a
    port, any case, maybe a trailing dot); ``path`` is the raw path without the query,
    exactly as on the request line; ``query`` is the raw query without ``?``; ``headers``
    maps lower-cased names to their values in order; ``client_ip`` is the TCP peer address.
    """

    method: str
    host: str
    path: str
    query: str
    headers: Mapping[str, tuple[str, ...]]
    client_ip: str
    tls: bool
    sni: str = ""
    _views: _Views = field(default_factory=_Views, init=False, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        method: str,
        target_host: str,
        path_and_query: str,
        headers: Iterable[tuple[str, str]],
        client_ip: str,
        tls: bool = False,
        sni: str = "",
    ) -> RouteRequest:
        """Build from request-line and header parts: splits the query off the path, groups
        headers by lower-cased name and trims optional whitespace around values."""
        path, _, query = path_and_query.partition("?")
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name.lower(), []).append(value.strip(" \t"))
        return cls(
            method=method,
            host=target_host,
            path=path,
            query=query,
            headers={k: tuple(v) for k, v in grouped.items()},
            client_ip=client_ip,
            tls=tls,
            sni=sni,
        )

    @property
    def canonical_host(self) -> str:
        views = self._views
        value = views.canonical_host
        if value is None:
            value = views.canonical_host = canonical_host(self.host)
        return value

    @property
    def host_key(self) -> str:
        views = self._views
        value = views.host_key
        if value is None:
            value = views.host_key = host_key(self.canonical_host)
        return value

    @property
    def routing_path(self) -> str:
        views = self._views
        value = views.routing_path
        if value is None:
            value = views.routing_path = routing_path(self.path)
        return value

    @property
    def query_params(self) -> Mapping[str, tuple[str, ...]]:
        views = self._views
        value = views.query
        if value is None:
            value = views.query = parse_query(self.query)
        return value

    @property
    def client_address(self) -> IPAddress | None:
        views = self._views
        if not views.client_done:
            views.client = parse_client_ip(self.client_ip)
            views.client_done = True
        return views.client
