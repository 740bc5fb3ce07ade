"""Matcher builders for the v3 and v2 rule syntaxes.

Each builder validates its arguments once and returns a :class:`Leaf`: a closure over
precomputed values (lower-cased hosts, compiled regexps, integer networks) plus, where the
matcher can only be true for a known set of hosts, those hosts for the muxer's index.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .goregexp import GoRegexpError, compile_go
from .ipmatch import IPSet
from .request import RouteRequest, host_key
from .templates import TemplateError, TemplateKind, compile_template

__all__ = ["V2_MATCHERS", "V3_MATCHERS", "ArgumentError", "Leaf", "MatchFn", "MatcherSpec"]

MatchFn = Callable[[RouteRequest], bool]


class ArgumentError(ValueError):
    """Invalid matcher arguments; the compiler adds the rule and the matcher's position."""


@dataclass(frozen=True, slots=True)
class Leaf:
    fn: MatchFn
    # Request host keys (see request.host_key) outside which this matcher is false;
    # None when the matcher does not constrain the host.
    host_keys: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class MatcherSpec:
    build: Callable[[tuple[str, ...]], Leaf]
    arities: tuple[int, ...] | None  # None: any number (at least one)


def _always(_req: RouteRequest) -> bool:
    return True


def _regexp(pattern: str) -> re.Pattern[str]:
    try:
        return compile_go(pattern)
    except GoRegexpError as exc:
        raise ArgumentError(f"invalid regular expression {pattern!r}: {exc}") from None


def _ascii_host(value: str) -> str:
    if not value.isascii():
        raise ArgumentError(
            f"invalid value {value!r}: non-ASCII characters are not allowed (use punycode)"
        )
    value = value.lower()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]  # the request host is compared without IPv6 brackets
    return value


def _exact_host_keys(expr: str) -> set[str]:
    """Index keys of every request host that the trailing-dot-tolerant comparison accepts."""
    keys = {host_key(expr), expr}
    if expr.endswith("."):
        keys.add(host_key(expr[:-1]))
    return keys


def _exact_hosts(exprs: list[str]) -> Leaf:
    """True if the request host equals one of ``exprs``, a trailing dot ignored on either side."""
    targets = frozenset(exprs) | frozenset(e[:-1] for e in exprs if e.endswith("."))
    plain = frozenset(exprs)

    def match(req: RouteRequest) -> bool:
        h = req.canonical_host
        if not h:
            return False
        return h in targets or (h[-1] == "." and h[:-1] in plain)

    keys: set[str] = set()
    for e in exprs:
        keys |= _exact_host_keys(e)
    return Leaf(match, frozenset(keys))


def _wildcard_label(domain: str) -> str:
    dot = domain.find(".")
    return "*" if dot < 0 else "*" + domain[dot:]


def _wildcard_host(expr: str) -> Leaf:
    """``*.example.com``: exactly one label in place of the ``*``."""
    alt = expr[:-1] if expr.endswith(".") else None

    def match(req: RouteRequest) -> bool:
        h = req.canonical_host
        if not h:
            return False
        masked = _wildcard_label(h)
        if masked == expr or (alt is not None and masked == alt):
            return True
        return h[-1] == "." and _wildcard_label(h[:-1]) == expr

    return Leaf(match)


# ----------------------------------------------------------------------------- v3


def _host(args: tuple[str, ...]) -> Leaf:
    if args[0] == "*":
        return Leaf(_always)
    expr = _ascii_host(args[0])
    if expr.startswith("*"):
        return _wildcard_host(expr)
    return _exact_hosts([expr])


def _host_regexp(args: tuple[str, ...]) -> Leaf:
    if not args[0].isascii():
        raise ArgumentError(
            f"invalid value {args[0]!r}: non-ASCII characters are not allowed (use punycode)"
        )
    search = _regexp(args[0]).search
    return Leaf(lambda req: search(req.canonical_host) is not None)


def _check_path(path: str) -> str:
    if not path.startswith("/"):
        raise ArgumentError(f"path {path!r} does not start with '/'")
    return path


def _path(args: tuple[str, ...]) -> Leaf:
    path = _check_path(args[0])
    return Leaf(lambda req: req.routing_path == path)


def _path_prefix(args: tuple[str, ...]) -> Leaf:
    prefix = _check_path(args[0])
    return Leaf(lambda req: req.routing_path.startswith(prefix))


def _path_regexp(args: tuple[str, ...]) -> Leaf:
    search = _regexp(args[0]).search
    return Leaf(lambda req: search(req.routing_path) is not None)


def _method(args: tuple[str, ...]) -> Leaf:
    method = args[0].upper()
    return Leaf(lambda req: req.method == method)


def _header(args: tuple[str, ...]) -> Leaf:
    name, value = args[0].lower(), args[1]
    return Leaf(lambda req: value in req.headers.get(name, ()))


def _header_regexp(args: tuple[str, ...]) -> Leaf:
    name = args[0].lower()
    search = _regexp(args[1]).search
    return Leaf(lambda req: any(search(v) is not None for v in req.headers.get(name, ())))


def _query(args: tuple[str, ...]) -> Leaf:
    key = args[0]
    value = args[1] if len(args) == 2 else ""
    return Leaf(lambda req: value in req.query_params.get(key, ()))


def _query_regexp(args: tuple[str, ...]) -> Leaf:
    if len(args) == 1:
        return _query(args)
    key = args[0]
    search = _regexp(args[1]).search
    return Leaf(lambda req: any(search(v) is not None for v in req.query_params.get(key, ())))


def _client_ip(args: tuple[str, ...]) -> Leaf:
    try:
        ips = IPSet(args)
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None
    contains = ips.contains
    return Leaf(lambda req: contains(req.client_address))


V3_MATCHERS: dict[str, MatcherSpec] = {
    "ClientIP": MatcherSpec(_client_ip, (1,)),
    "Header": MatcherSpec(_header, (2,)),
    "HeaderRegexp": MatcherSpec(_header_regexp, (2,)),
    "Host": MatcherSpec(_host, (1,)),
    "HostRegexp": MatcherSpec(_host_regexp, (1,)),
    "Method": MatcherSpec(_method, (1,)),
    "Path": MatcherSpec(_path, (1,)),
    "PathPrefix": MatcherSpec(_path_prefix, (1,)),
    "PathRegexp": MatcherSpec(_path_regexp, (1,)),
    "Query": MatcherSpec(_query, (1, 2)),
    "QueryRegexp": MatcherSpec(_query_regexp, (1, 2)),
}


# ----------------------------------------------------------------------------- v2


def _template(tpl: str, kind: TemplateKind) -> re.Pattern[str]:
    try:
        return compile_template(tpl, kind)[0]
    except TemplateError as exc:
        raise ArgumentError(str(exc)) from None


def _host_v2(args: tuple[str, ...]) -> Leaf:
    # No wildcard in v2: "*.example.com" is compared literally.
    return _exact_hosts([_ascii_host(a) for a in args])


def _host_regexp_v2(args: tuple[str, ...]) -> Leaf:
    for a in args:
        if not a.isascii():
            raise ArgumentError(
                f"invalid value {a!r}: non-ASCII characters are not allowed (use punycode)"
            )
    searches = tuple(_template(a, "host").search for a in args)
    return Leaf(lambda req: any(s(req.canonical_host) is not None for s in searches))


def _paths_v2(
    args: tuple[str, ...], kind: TemplateKind
) -> tuple[frozenset[str], tuple[Callable[[str], object], ...]]:
    literal: set[str] = set()
    regexps = []
    for a in args:
        if not a.startswith("/"):
            raise ArgumentError(f"path must start with a slash, got {a!r}")
        if "{" in a or "}" in a:
            regexps.append(_template(a, kind).search)
        else:
            literal.add(a)
    return frozenset(literal), tuple(regexps)


def _path_v2(args: tuple[str, ...]) -> Leaf:
    literal, searches = _paths_v2(args, "path")

    def match(req: RouteRequest) -> bool:
        path = req.routing_path
        return path in literal or any(s(path) is not None for s in searches)

    return Leaf(match)


def _path_prefix_v2(args: tuple[str, ...]) -> Leaf:
    literal, searches = _paths_v2(args, "prefix")
    prefixes = tuple(literal)

    def match(req: RouteRequest) -> bool:
        path = req.routing_path
        return path.startswith(prefixes) or any(s(path) is not None for s in searches)

    return Leaf(match)


def _method_v2(args: tuple[str, ...]) -> Leaf:
    methods = frozenset(a.upper() for a in args)
    return Leaf(lambda req: req.method in methods)


def _pairs(args: tuple[str, ...], what: str) -> dict[str, str]:
    if len(args) % 2:
        raise ArgumentError(f"{what} expects key/value pairs, got {len(args)} arguments")
    pairs: dict[str, str] = {}
    for i in range(0, len(args), 2):
        pairs[args[i]] = args[i + 1]  # a repeated key keeps its last value, as in gorilla/mux
    return pairs


def _headers_v2(args: tuple[str, ...]) -> Leaf:
    checks = tuple((k.lower(), v) for k, v in _pairs(args, "Headers").items())

    def match(req: RouteRequest) -> bool:
        headers = req.headers
        for name, value in checks:
            if value not in headers.get(name, ()):
                return False
        return True

    return Leaf(match)


def _headers_regexp_v2(args: tuple[str, ...]) -> Leaf:
    checks = tuple((k.lower(), _regexp(v).search) for k, v in _pairs(args, "HeadersRegexp").items())

    def match(req: RouteRequest) -> bool:
        headers = req.headers
        for name, search in checks:
            if not any(search(v) is not None for v in headers.get(name, ())):
                return False
        return True

    return Leaf(match)


def _query_v2(args: tuple[str, ...]) -> Leaf:
    # Each argument is "key=value"; all pieces are flattened then paired, as Traefik does.
    flat: list[str] = []
    for a in args:
        key, eq, value = a.partition("=")
        flat.extend((key, value) if eq else (key,))
    if len(flat) % 2:
        raise ArgumentError(
            f"Query expects key=value arguments, got {', '.join(repr(a) for a in args)}"
        )
    checks = []
    seen: set[str] = set()
    for i in range(0, len(flat), 2):
        tpl = f"{flat[i]}={flat[i + 1]}"
        try:
            regexp, names = compile_template(tpl, "query")
        except TemplateError as exc:
            raise ArgumentError(str(exc)) from None
        for name in names:
            if name in seen:
                raise ArgumentError(f"duplicated route variable {name!r}")
            seen.add(name)
        checks.append((tpl.partition("=")[0], regexp.search))

    def match(req: RouteRequest) -> bool:
        params = req.query_params
        for key, search in checks:
            values = params.get(key)
            subject = f"{key}={values[0]}" if values else ""
            if search(subject) is None:
                return False
        return True

    return Leaf(match)


V2_MATCHERS: dict[str, MatcherSpec] = {
    "ClientIP": MatcherSpec(_client_ip, None),
    "Headers": MatcherSpec(_headers_v2, None),
    "HeadersRegexp": MatcherSpec(_headers_regexp_v2, None),
    "Host": MatcherSpec(_host_v2, None),
    "HostHeader": MatcherSpec(_host_v2, None),
    "HostRegexp": MatcherSpec(_host_regexp_v2, None),
    "Method": MatcherSpec(_method_v2, None),
    "Path": MatcherSpec(_path_v2, None),
    "PathPrefix": MatcherSpec(_path_prefix_v2, None),
    "Query": MatcherSpec(_query_v2, None),
}
