"""Property tests: robust parsing, printing round-trips, Go-regexp translation, muxer index."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgate.rules import (
    And,
    Expr,
    Matcher,
    Not,
    Or,
    Route,
    RouteRequest,
    RuleSyntaxError,
    build_muxer,
    compile_rule,
    format_rule,
    parse_rule,
)
from wsgate.rules.formatter import format_literal
from wsgate.rules.goregexp import GoRegexpError, compile_go

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- (1) any text: parse and compile raise RuleSyntaxError or nothing -----------------

TOKENS = [
    "Host",
    "Path",
    "PathPrefix",
    "HostRegexp",
    "Query",
    "ClientIP",
    "Headers",
    "Method",
    "x",
    "(",
    ")",
    ",",
    "`a.com`",
    "`/p`",
    '"b\\n"',
    '"\\x41"',
    "&&",
    "||",
    "!",
    "&",
    "|",
    " ",
    "\n",
    "'",
    "\\",
    '"',
    "`",
    "1",
    "{",
    "}",
    "`10.0.0.0/8`",
    "`^a+$`",
    "`(`",
    "`{x:[0-9]+}`",
]
token_soup = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
any_text = st.one_of(st.text(max_size=60), token_soup)


@FAST
@given(any_text, st.sampled_from(["v3", "v2"]))
def test_parse_and_compile_raise_only_rule_syntax_errors(text: str, syntax: str) -> None:
    try:
        parse_rule(text, syntax)
    except RuleSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        assert exc.rule == text
    try:
        compile_rule(text, syntax)
    except RuleSyntaxError as exc:
        assert 0 <= exc.position <= len(text)


regexish = st.text(alphabet="ab.*+?|()[]{}^$\\-:,0123456789dDwWsSbBzAQEpPxPi<>=!#U ", max_size=25)


@FAST
@given(regexish, st.text(alphabet="ab0 -.\n", max_size=10))
def test_regexp_arguments_fail_cleanly(pattern: str, subject: str) -> None:
    literal = format_literal(pattern)
    for rule, syntax in (
        (f"PathRegexp({literal})", "v3"),
        (f"HeaderRegexp(`X`, {literal})", "v3"),
        (f"HostRegexp({literal})", "v2"),
        (f"Path(`/`, {format_literal('/' + pattern)})", "v2"),
        (f"Query({format_literal('k=' + pattern)})", "v2"),
    ):
        try:
            compiled = compile_rule(rule, syntax)
        except RuleSyntaxError:
            continue
        request = RouteRequest.build("GET", subject, "/" + subject, [("x", subject)], "10.0.0.1")
        assert compiled.matches(request) in (True, False)


# --- (2) printing: parse_rule(format_rule(tree)) == tree -------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
arg_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
leaves = st.builds(Matcher, names, st.lists(arg_text, max_size=3).map(tuple))


def _compose(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    not_and = children.filter(lambda c: not isinstance(c, And))
    not_or = children.filter(lambda c: not isinstance(c, Or))
    return st.one_of(
        children.map(Not),
        st.lists(not_and, min_size=2, max_size=4).map(lambda ops: And(tuple(ops))),
        st.lists(not_or, min_size=2, max_size=4).map(lambda ops: Or(tuple(ops))),
    )


trees = st.recursive(leaves, _compose, max_leaves=12)


@FAST
@given(trees)
def test_format_round_trips(tree: Expr) -> None:
    text = format_rule(tree)
    assert parse_rule(text) == tree
    assert format_rule(parse_rule(text)) == text


# --- Go regexp translation agrees with Python where both read a pattern alike -----------

_atoms = st.sampled_from(["a", "b", "A", "0", ".", "[ab]", "[^a]", "[a-c0]", "\\d", "\\.", "x"])


def _regex(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    quantified = st.tuples(children, st.sampled_from(["*", "+", "?", "{1,2}", "*?", "{2}", "??"]))
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map("".join),
        st.lists(children, min_size=2, max_size=3).map("|".join),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"(?:{c})"),
        quantified.map(lambda t: f"(?:{t[0]}){t[1]}"),
    )


regexes = st.recursive(_atoms, _regex, max_leaves=8)


@FAST
@given(
    st.sampled_from(["", "^", "(?i)", "(?i)^"]),
    regexes,
    st.sampled_from(["", "$"]),
    st.text(alphabet="abAB0x.", max_size=8),
)
def test_translation_agrees_with_python_on_the_common_subset(
    prefix: str, body: str, suffix: str, subject: str
) -> None:
    pattern = prefix + body + suffix
    try:
        ours = compile_go(pattern)
    except GoRegexpError:
        # Only Go's repeat-size limit can reject this grammar.
        assert "{" in pattern
        return
    assert (ours.search(subject) is None) == (re.search(pattern, subject) is None)


# --- (3) the muxer's host index never changes the result ------------------------------

HOST_EXPRS = ["a.com", "b.com", "A.com", "a.com.", "x.a.com", "[::1]", "::1", "b.com.."]
V3_ATOMS = [f"Host(`{h}`)" for h in HOST_EXPRS] + [
    "Host(`*.a.com`)",
    "Host(`*`)",
    "HostRegexp(`^a`)",
    "Path(`/p`)",
    "PathPrefix(`/`)",
    "Method(`GET`)",
]
V2_ATOMS = [
    "Host(`a.com`, `b.com`)",
    "HostHeader(`x.a.com`)",
    "Host(`*.a.com`)",
    "HostRegexp(`{s:[a-z]+}.com`)",
    "Path(`/p`, `/q`)",
    "Method(`POST`)",
]
REQUEST_HOSTS = [
    "a.com",
    "A.COM",
    "a.com.",
    "a.com:8080",
    "a.com..",
    "b.com",
    "b.com.",
    "b.com..",
    "b.com...",
    "x.a.com",
    "y.a.com.",
    "[::1]:80",
    "::1",
    "",
    "c.com",
]


def _rule_tree(atoms: list[str]) -> st.SearchStrategy[Expr]:
    leaf = st.sampled_from([parse_rule(a, "v2") for a in atoms])
    return st.recursive(leaf, _compose, max_leaves=5)


routes_strategy = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2", "r3", "r4", "r5"]),
        st.one_of(
            _rule_tree(V3_ATOMS).map(lambda t: (format_rule(t), "v3")),
            _rule_tree(V2_ATOMS).map(lambda t: (format_rule(t), "v2")),
        ),
        st.sampled_from([0, 0, 0, 1, 5, 30, -1]),
    ),
    max_size=12,
)
requests_strategy = st.lists(
    st.builds(
        lambda host, path, method: RouteRequest.build(method, host, path, [], "10.0.0.1"),
        st.sampled_from(REQUEST_HOSTS),
        st.sampled_from(["/", "/p", "/q", "/x"]),
        st.sampled_from(["GET", "POST"]),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes_strategy, requests_strategy)
def test_muxer_index_agrees_with_linear_scan(
    specs: list[tuple[str, tuple[str, str], int]], requests: list[RouteRequest]
) -> None:
    routes = [
        Route(name, compile_rule(rule, syntax), priority)
        for name, (rule, syntax), priority in specs
    ]
    muxer = build_muxer(routes)
    for request in requests:
        assert muxer.match(request) is muxer.match_linear(request)
        for route in routes:
            keys = route.rule.host_keys
            if keys is not None and route.rule.matches(request):
                assert request.host_key in keys
