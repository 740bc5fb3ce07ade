"""Traefik's router rule language (v3 and v2 syntaxes), sans-I/O.

Parse (:func:`parse_rule`), print (:func:`format_rule`), compile (:func:`compile_rule`) and
route (:func:`build_muxer`); see docs/rules.md for the language itself.
"""

from .compiler import CompiledRule, compile_rule, matcher_names
from .errors import RuleSyntaxError
from .formatter import format_rule
from .muxer import Muxer, Route, build_muxer, default_priority, effective_priority
from .parser import SYNTAXES, parse_rule
from .request import RouteRequest, canonical_host, parse_query, routing_path
from .tree import And, Expr, Matcher, Not, Or

__all__ = [
    "SYNTAXES",
    "And",
    "CompiledRule",
    "Expr",
    "Matcher",
    "Muxer",
    "Not",
    "Or",
    "Route",
    "RouteRequest",
    "RuleSyntaxError",
    "build_muxer",
    "canonical_host",
    "compile_rule",
    "default_priority",
    "effective_priority",
    "format_rule",
    "matcher_names",
    "parse_query",
    "parse_rule",
    "routing_path",
]
