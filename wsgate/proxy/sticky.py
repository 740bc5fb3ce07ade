"""Sticky-session cookie facts, compatible with Traefik's, as pure functions.

A client keeps going to the same server as long as it sends back the cookie we set. The
cookie name and value are derived exactly as Traefik derives them, so clients keep their
affinity when a Traefik deployment is replaced by wsgate (and back).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = [
    "SAME_SITE_VALUES",
    "StickyCookie",
    "StickyTable",
    "cookie_name",
    "cookie_value",
    "default_cookie_name",
    "fnv1_64",
    "format_set_cookie",
    "legacy_cookie_values",
    "parse_cookies",
    "sanitize_cookie_name",
]

T = TypeVar("T")

# RFC 7230 token characters other than letters and digits: what Traefik keeps in a
# configured cookie name (every other character becomes "_").
_NAME_PUNCTUATION = frozenset("!#$%&'*+-.^`|~")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_TOKEN_CHARS = _ASCII_ALNUM | _NAME_PUNCTUATION | frozenset("_")

# sameSite is matched case-insensitively, as Traefik does.
SAME_SITE_VALUES: Mapping[str, str] = {"none": "None", "lax": "Lax", "strict": "Strict"}

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF


def default_cookie_name(service_name: str) -> str:
    """Name used when sticky.cookie.name is empty: "_" and 5 hex digits of a SHA-1.

    Traefik hashes the *qualified* service name (e.g. "app@file"), so pass that.
    """
    digest = hashlib.sha1(("_TRAEFIK_BACKEND_" + service_name).encode()).hexdigest()
    return "_" + digest[:5]


def sanitize_cookie_name(name: str) -> str:
    """A configured name with every non-token character replaced by "_", like Traefik."""
    return "".join(c if c in _TOKEN_CHARS else "_" for c in name)


def cookie_name(configured: str | None, service_name: str) -> str:
    """The cookie name Traefik would use: the configured one sanitized, else the hashed default."""
    if configured:
        return sanitize_cookie_name(configured)
    return default_cookie_name(service_name)


def cookie_value(server_url: str) -> str:
    """Cookie value that designates a server (or child service): 16 hex digits of SHA-256."""
    return hashlib.sha256(server_url.encode()).hexdigest()[:16]


def fnv1_64(data: bytes) -> int:
    """64-bit FNV-1 (multiply, then xor), as Go's hash/fnv.New64."""
    h = _FNV64_OFFSET
    for byte in data:
        h = ((h * _FNV64_PRIME) & _MASK64) ^ byte
    return h


def legacy_cookie_values(server_url: str) -> tuple[str, str, str]:
    """Older value formats Traefik still honours (then rewrites): raw URL, FNV-1 hex, FNV of that.

    Honouring them keeps affinity for clients that carry cookies set by Traefik v2.
    """
    once = format(fnv1_64(server_url.encode()), "x")
    twice = format(fnv1_64(once.encode()), "x")
    return server_url, once, twice


class StickyTable(Generic[T]):
    """Maps any cookie value Traefik accepts to the target it designates.

    Built once per balancer, so a lookup is one dict access. The current SHA-256 format
    wins over the legacy formats should they ever collide.
    """

    __slots__ = ("_by_value",)

    def __init__(self, targets: Iterable[tuple[str, T]]) -> None:
        pairs = list(targets)
        by_value: dict[str, T] = {}
        for name, target in pairs:
            for legacy in legacy_cookie_values(name):
                by_value[legacy] = target
        for name, target in pairs:
            by_value[cookie_value(name)] = target
        self._by_value = by_value

    def lookup(self, value: str | None) -> T | None:
        if value is None:
            return None
        return self._by_value.get(value)


def _is_cookie_domain_name(domain: str) -> bool:
    # Same acceptance rule as Go's net/http (which drops invalid domains): dot-separated
    # labels of letters, digits, "-" and "_", 1..63 long, no label starting or ending
    # with "-", and at least one letter or "_" somewhere.
    if not domain or len(domain) > 255:
        return False
    if domain[0] == ".":
        domain = domain[1:]
    last = "."
    has_letter = False
    part_len = 0
    for c in domain:
        if c.isascii() and (c.isalpha() or c == "_"):
            has_letter = True
            part_len += 1
        elif c.isascii() and c.isdigit():
            part_len += 1
        elif c == "-":
            if last == ".":
                return False
            part_len += 1
        elif c == ".":
            if last in ".-" or part_len > 63 or part_len == 0:
                return False
            part_len = 0
        else:
            return False
        last = c
    return last != "-" and part_len <= 63 and has_letter


def _is_ipv4(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts
    )


def _cookie_domain(domain: str) -> str:
    """The Domain attribute as Go writes it (leading dot dropped); invalid ones are an error."""
    if not (_is_cookie_domain_name(domain) or _is_ipv4(domain)):
        raise ValueError(f"sticky.cookie.domain {domain!r} is not a valid cookie domain")
    return domain[1:] if domain.startswith(".") else domain


def _cookie_path(path: str) -> str:
    # Go drops control characters, non-ASCII and ";" from the Path attribute.
    return "".join(c for c in path if " " <= c < "\x7f" and c != ";")


def _same_site(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return SAME_SITE_VALUES[value.lower()]
    except KeyError:
        raise ValueError(
            f"sticky.cookie.sameSite {value!r} is not one of none, lax, strict"
        ) from None


def _attributes(
    *,
    path: str,
    domain: str | None,
    max_age: int,
    http_only: bool,
    secure: bool,
    same_site: str | None,
) -> str:
    # Attribute order follows Go's http.Cookie.String, which is what Traefik emits.
    parts: list[str] = []
    clean_path = _cookie_path(path)
    if clean_path:
        parts.append("; Path=" + clean_path)
    if domain:
        parts.append("; Domain=" + _cookie_domain(domain))
    if max_age > 0:
        parts.append(f"; Max-Age={max_age}")
    elif max_age < 0:
        parts.append("; Max-Age=0")
    if http_only:
        parts.append("; HttpOnly")
    if secure:
        parts.append("; Secure")
    canonical_same_site = _same_site(same_site)
    if canonical_same_site is not None:
        parts.append("; SameSite=" + canonical_same_site)
    return "".join(parts)


def _check_name(name: str) -> None:
    if not name or any(c not in _TOKEN_CHARS for c in name):
        raise ValueError(f"cookie name {name!r} is not an HTTP token")


def format_set_cookie(
    name: str,
    value: str,
    *,
    path: str = "/",
    domain: str | None = None,
    max_age: int = 0,
    http_only: bool = False,
    secure: bool = False,
    same_site: str | None = None,
) -> str:
    """The Set-Cookie header value for a sticky cookie.

    max_age > 0 sets Max-Age; < 0 expires the cookie at once (Max-Age=0); 0 makes a
    session cookie. same_site is none|lax|strict in any case; empty omits it. An empty
    path omits the attribute.
    """
    _check_name(name)
    if any(not (" " < c < "\x7f") or c in '",;\\' for c in value):
        raise ValueError(f"cookie value {value!r} needs quoting; sticky values are hex")
    return f"{name}={value}" + _attributes(
        path=path,
        domain=domain,
        max_age=max_age,
        http_only=http_only,
        secure=secure,
        same_site=same_site,
    )


@dataclass(frozen=True)
class StickyCookie:
    """A service's sticky.cookie settings, with the name already resolved.

    Validates on construction (bad sameSite or domain raise ValueError) and precomputes
    the attribute suffix, so formatting a Set-Cookie per request is one concatenation.
    """

    name: str
    secure: bool = False
    http_only: bool = False
    same_site: str | None = None
    max_age: int = 0
    path: str = "/"
    domain: str | None = None
    _suffix: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        suffix = _attributes(
            path=self.path,
            domain=self.domain,
            max_age=self.max_age,
            http_only=self.http_only,
            secure=self.secure,
            same_site=self.same_site,
        )
        object.__setattr__(self, "_suffix", suffix)

    @classmethod
    def for_service(
        cls,
        service_name: str,
        *,
        name: str | None = None,
        secure: bool = False,
        http_only: bool = False,
        same_site: str | None = None,
        max_age: int = 0,
        path: str | None = None,
        domain: str | None = None,
    ) -> StickyCookie:
        """Build from the sticky.cookie fields; `path` None means the default "/"."""
        return cls(
            name=cookie_name(name, service_name),
            secure=secure,
            http_only=http_only,
            same_site=same_site,
            max_age=max_age,
            path="/" if path is None else path,
            domain=domain,
        )

    def set_cookie(self, value: str) -> str:
        """The Set-Cookie header value that pins the client to `value`."""
        return f"{self.name}={value}{self._suffix}"


def parse_cookies(cookie_headers: Iterable[str]) -> dict[str, str]:
    """Cookies from the request's Cookie header lines; the first of a repeated name wins.

    Follows Go's reading: pairs split on ";", names must be tokens, one pair of double
    quotes around a value is removed, and pairs with invalid value bytes are skipped.
    """
    cookies: dict[str, str] = {}
    for line in cookie_headers:
        for part in line.split(";"):
            part = part.strip()
            if not part:
                continue
            name, _, value = part.partition("=")
            name = name.strip()
            if not name or name in cookies or any(c not in _TOKEN_CHARS for c in name):
                continue
            if len(value) > 1 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            if any(not (" " <= c < "\x7f") or c in '";\\' for c in value):
                continue
            cookies[name] = value
    return cookies
