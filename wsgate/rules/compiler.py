"""Compile a rule into a matcher: validate every matcher once, build closures once."""

from __future__ import annotations

from .errors import RuleSyntaxError
from .matchers import V2_MATCHERS, V3_MATCHERS, ArgumentError, Leaf, MatcherSpec, MatchFn
from .parser import parse_rule
from .request import RouteRequest
from .tree import And, Expr, Matcher, Not, Or

__all__ = ["CompiledRule", "compile_rule", "matcher_names"]

_TABLES: dict[str, dict[str, MatcherSpec]] = {"v3": V3_MATCHERS, "v2": V2_MATCHERS}


def _spellings(table: dict[str, MatcherSpec]) -> dict[str, str]:
    # Traefik accepts each matcher name as written, in lower case, in upper case and with
    # only the first letter upper-cased ("HostRegexp", "hostregexp", "HOSTREGEXP",
    # "Hostregexp").
    names: dict[str, str] = {}
    for name in table:
        for spelling in (name, name.lower(), name.upper(), name.lower().capitalize()):
            names[spelling] = name
    return names


_NAMES = {syntax: _spellings(table) for syntax, table in _TABLES.items()}


def matcher_names(syntax: str = "v3") -> tuple[str, ...]:
    """The matcher names of a syntax, sorted."""
    return tuple(sorted(_TABLES[syntax]))


class CompiledRule:
    """A validated rule, ready to be matched against requests.

    ``matches(req)`` is a plain closure call; nothing is parsed or compiled per request.
    ``host_keys`` is the set of request host keys outside which the rule cannot match, or
    None when the rule does not pin the host (used by the muxer's host index).
    """

    __slots__ = ("expr", "host_keys", "matches", "rule", "syntax")

    rule: str
    syntax: str
    expr: Expr
    host_keys: frozenset[str] | None
    matches: MatchFn

    def __init__(
        self, rule: str, syntax: str, expr: Expr, matches: MatchFn, host_keys: frozenset[str] | None
    ) -> None:
        self.rule = rule
        self.syntax = syntax
        self.expr = expr
        self.matches = matches
        self.host_keys = host_keys

    def __repr__(self) -> str:
        return f"CompiledRule({self.rule!r}, syntax={self.syntax!r})"


def _and(fns: list[MatchFn]) -> MatchFn:
    if len(fns) == 2:
        a, b = fns
        return lambda req: a(req) and b(req)
    if len(fns) == 3:
        a, b, c = fns
        return lambda req: a(req) and b(req) and c(req)
    all_fns = tuple(fns)

    def match(req: RouteRequest) -> bool:
        for fn in all_fns:
            if not fn(req):
                return False
        return True

    return match


def _or(fns: list[MatchFn]) -> MatchFn:
    if len(fns) == 2:
        a, b = fns
        return lambda req: a(req) or b(req)
    if len(fns) == 3:
        a, b, c = fns
        return lambda req: a(req) or b(req) or c(req)
    all_fns = tuple(fns)

    def match(req: RouteRequest) -> bool:
        for fn in all_fns:
            if fn(req):
                return True
        return False

    return match


class _Compiler:
    def __init__(self, rule: str, syntax: str) -> None:
        self.rule = rule
        self.syntax = syntax
        self.table = _TABLES[syntax]
        self.names = _NAMES[syntax]

    def fail(self, node: Matcher, detail: str) -> RuleSyntaxError:
        return RuleSyntaxError(self.rule, node.position, detail)

    def build(self, expr: Expr) -> Leaf:
        if isinstance(expr, Matcher):
            return self.matcher(expr)
        if isinstance(expr, Not):
            inner = self.build(expr.operand).fn
            return Leaf(lambda req: not inner(req))
        leaves = [self.build(op) for op in expr.operands]
        fns = [leaf.fn for leaf in leaves]
        keys = [leaf.host_keys for leaf in leaves]
        if isinstance(expr, And):
            pinned = [k for k in keys if k is not None]
            host_keys = frozenset.intersection(*pinned) if pinned else None
            return Leaf(_and(fns), host_keys)
        if isinstance(expr, Or):
            union = None if any(k is None for k in keys) else frozenset().union(*keys)  # type: ignore[arg-type]
            return Leaf(_or(fns), union)
        raise TypeError(f"not a rule expression: {expr!r}")

    def matcher(self, node: Matcher) -> Leaf:
        name = self.names.get(node.name)
        if name is None:
            raise self.fail(node, self.unknown(node.name))
        spec = self.table[name]
        args = node.args
        if not args:
            raise self.fail(node, f"{name} needs at least one argument")
        if any(a == "" for a in args):
            raise self.fail(node, f"{name} does not accept an empty argument")
        if spec.arities is not None and len(args) not in spec.arities:
            expected = " or ".join(str(n) for n in spec.arities)
            plural = "" if spec.arities == (1,) else "s"
            hint = ""
            if self.syntax == "v3" and name in V2_MATCHERS and len(args) > max(spec.arities):
                hint = " (several values need '||' between matchers, or ruleSyntax v2)"
            raise self.fail(
                node, f"{name} expects {expected} argument{plural}, got {len(args)}{hint}"
            )
        try:
            return spec.build(args)
        except ArgumentError as exc:
            raise self.fail(node, f"{name}: {exc}") from None

    def unknown(self, written: str) -> str:
        valid = ", ".join(sorted(self.table))
        detail = (
            f"unknown matcher {written!r} for rule syntax {self.syntax}; valid matchers: {valid}"
        )
        other = "v2" if self.syntax == "v3" else "v3"
        canonical = _NAMES[other].get(written)
        if canonical is not None:
            detail += f" ({canonical} exists only in rule syntax {other})"
        return detail


def compile_rule(rule: str, syntax: str = "v3") -> CompiledRule:
    """Parse and validate ``rule`` for ``syntax`` ("v3" or "v2") and compile it.

    Raises :class:`RuleSyntaxError` (with the position of the offending token or matcher)
    for a malformed rule, an unknown matcher, a wrong number of arguments or an invalid
    argument (regexp, IP/CIDR, path without leading "/", non-ASCII host); ValueError for an
    unknown ``syntax``.
    """
    expr = parse_rule(rule, syntax)
    leaf = _Compiler(rule, syntax).build(expr)
    return CompiledRule(rule, syntax, expr, leaf.fn, leaf.host_keys)
