"""The public surface of wsgate.rules: exports, tree values, printing, priorities."""

from __future__ import annotations

import dataclasses

import pytest

import wsgate.rules as rules
from wsgate.rules import (
    And,
    Matcher,
    Not,
    Or,
    Route,
    RouteRequest,
    build_muxer,
    compile_rule,
    default_priority,
    effective_priority,
    format_rule,
    matcher_names,
    parse_rule,
)


def test_exports() -> None:
    for name in rules.__all__:
        assert hasattr(rules, name), name
    assert issubclass(rules.RuleSyntaxError, ValueError)


def test_parse_tree_shape() -> None:
    tree = parse_rule("Host(`a`) && !Path(`/x`) || (Method(`GET`) && Query(`k`, `v`))")
    assert tree == Or(
        (
            And((Matcher("Host", ("a",)), Not(Matcher("Path", ("/x",))))),
            And((Matcher("Method", ("GET",)), Matcher("Query", ("k", "v")))),
        )
    )
    # Chains are flat whatever the parentheses; positions do not take part in equality.
    assert parse_rule("(Host(`a`) || Host(`b`)) || Host(`c`)") == parse_rule(
        "Host(`a`)||Host(`b`)||Host(`c`)"
    )
    assert parse_rule("  Host(`a`)").position == 2  # type: ignore[union-attr]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.operands = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "tree,text",
    [
        (Matcher("Host", ("a.com",)), "Host(`a.com`)"),
        (Matcher("Header", ("X", "a`b")), 'Header(`X`, "a`b")'),
        (Matcher("Path", ('/"\\\r\n\t\x00é\u2028',)), 'Path("/\\"\\\\\\r\\n\\t\\x00é\\u2028")'),
        (Matcher("Path", ("/a\nb",)), "Path(`/a\nb`)"),
        (Matcher("X", ()), "X()"),
        (Not(And((Matcher("A", ()), Matcher("B", ())))), "!(A() && B())"),
        (And((Or((Matcher("A", ()), Matcher("B", ()))), Matcher("C", ()))), "(A() || B()) && C()"),
        (Or((And((Matcher("A", ()), Matcher("B", ()))), Matcher("C", ()))), "A() && B() || C()"),
        (Not(Not(Matcher("A", ()))), "!!A()"),
    ],
)
def test_format_rule(tree: rules.Expr, text: str) -> None:
    assert format_rule(tree) == text
    assert parse_rule(text) == tree


def test_compiled_rule_attributes() -> None:
    compiled = compile_rule("Host(`A.com`) && Path(`/`)", "v3")
    assert compiled.rule == "Host(`A.com`) && Path(`/`)"
    assert compiled.syntax == "v3"
    assert compiled.host_keys == frozenset({"a.com"})
    assert compile_rule("Host(`a.com`) || PathPrefix(`/`)").host_keys is None
    assert compile_rule("Host(`a.com`) || Host(`b.com.`)").host_keys == {"a.com", "b.com", "b.com."}
    assert compile_rule("Host(`a.com`) && Host(`b.com`)").host_keys == frozenset()
    assert compile_rule("!Host(`a.com`)").host_keys is None
    assert compile_rule("Host(`*.a.com`)").host_keys is None
    assert "Host(`A.com`)" in repr(compiled)


def test_matcher_names() -> None:
    assert "PathRegexp" in matcher_names("v3") and "PathRegexp" not in matcher_names("v2")
    assert "HostHeader" in matcher_names("v2") and "HostHeader" not in matcher_names("v3")


def test_priorities() -> None:
    assert default_priority("Host(`foobar.traefik.com`)") == 26
    assert default_priority("Path(`/é`)") == 11  # bytes, as Go's len()
    rule = compile_rule("Path(`/`)")
    assert effective_priority(Route("a", rule)) == 9
    assert effective_priority(Route("a", rule, 7)) == 7
    assert effective_priority(Route("a", rule, -3)) == -3


def test_muxer_order_and_container() -> None:
    a = Route("b", compile_rule("PathPrefix(`/`)"), 5)
    b = Route("a", compile_rule("PathPrefix(`/`)"), 5)
    c = Route("c", compile_rule("PathPrefix(`/long/prefix`)"))
    muxer = build_muxer([a, b, c])
    assert [r.name for r in muxer] == ["c", "a", "b"]
    assert len(muxer) == 3 and muxer.routes == (c, b, a)
    # Same name and priority: insertion order is kept.
    d = Route("same", compile_rule("PathPrefix(`/`)"), 1, payload=1)
    e = Route("same", compile_rule("PathPrefix(`/`)"), 1, payload=2)
    assert build_muxer([d, e]).match(RouteRequest.build("GET", "h", "/", [], "::1")) is d


def test_replace_gets_fresh_views() -> None:
    r = RouteRequest.build("GET", "a.com", "/api/x", [], "10.0.0.1")
    assert r.routing_path == "/api/x"
    stripped = dataclasses.replace(r, path="/x")
    assert stripped.routing_path == "/x"
    assert r.routing_path == "/api/x"
