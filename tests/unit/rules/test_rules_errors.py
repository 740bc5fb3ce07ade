"""Rejected rules: the error names the position and what was expected."""

from __future__ import annotations

import pickle

import pytest

from wsgate.rules import RuleSyntaxError, compile_rule, parse_rule
from wsgate.rules.parser import MAX_NESTING

# (rule, syntax, position, substring of the message)
SYNTAX_ERRORS: list[tuple[str, int, str]] = [
    ("Host(`a`) &&", 12, "expected a matcher"),
    ("", 0, "expected a matcher"),
    ("   ", 3, "expected a matcher"),
    ("&& Host(`a`)", 0, "expected a matcher, found '&&'"),
    ("!", 1, "expected a matcher"),
    ("Host(`a`) Path(`/`)", 10, "expected '&&', '||' or end of rule, found 'Path'"),
    ("Host(`a`) & Path(`/`)", 10, "expected '&&', '||' or end of rule, found '&'"),
    ("Host(`a`) | Path(`/`)", 10, "found '|'"),
    ("Host(`a`) and Path(`/`)", 10, "found 'and'"),
    ("Host(`a`))", 9, "found ')'"),
    ("(Host(`a`)", 10, "expected '&&', '||' or ')'"),
    ("Host(`a`) && ()", 14, "expected a matcher, found ')'"),
    ("Host `a`", 5, "expected '(' after matcher name 'Host'"),
    ("Host", 4, "expected '(' after matcher name 'Host'"),
    ("Host(`a` `b`)", 9, "expected ',' or ')', found a string literal"),
    ("Host(`a`", 8, "expected ',' or ')'"),
    ("Host(,)", 5, "expected a string literal, found ','"),
    ("Host(`a`,,)", 9, "expected a string literal"),
    ("Host(1)", 5, "expected a string literal, found '1'"),
    ("Host(a)", 5, "expected a string literal, found 'a'"),
    ("Host('a')", 5, "single quote"),
    ("Host(`a)", 5, "unterminated string literal"),
    ('Host("a)', 5, "unterminated string literal"),
    ('Host("a\nb")', 5, "unterminated string literal"),
    ('Host("a\\qb")', 7, "unknown escape sequence \\q"),
    ('Host("a\\\'b")', 7, "unknown escape sequence \\'"),
    ('Host("\\x4")', 6, "invalid \\x escape"),
    ('Host("\\400")', 6, "octal escape value above 255"),
    ('Host("\\12")', 6, "invalid octal escape"),
    ('Host("\\ud800")', 6, "not a valid Unicode code point"),
    ('Host("\\xff")', 5, "do not form valid UTF-8"),
    ("Host(`a`) && Path(`/`) ||", 25, "expected a matcher"),
    ("Host(`a`) == Path(`/`)", 10, "found '='"),
    ("Host.Sub(`a`)", 4, "expected '(' after matcher name 'Host'"),
]


@pytest.mark.parametrize("rule,position,fragment", SYNTAX_ERRORS)
def test_syntax_error_position_and_message(rule: str, position: int, fragment: str) -> None:
    for syntax in ("v3", "v2"):
        with pytest.raises(RuleSyntaxError) as info:
            parse_rule(rule, syntax)
        err = info.value
        assert err.position == position, str(err)
        assert err.rule == rule
        assert fragment in str(err)
        assert str(err).startswith(f"{rule}: ")
        assert str(err).endswith(f" at position {position}")


def test_example_message_is_exact() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule("Host(`a`) &&")
    assert str(info.value) == "Host(`a`) &&: expected a matcher at position 12"


def test_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError):
        parse_rule("Host(")
    err = RuleSyntaxError("r", 1, "boom")
    again = pickle.loads(pickle.dumps(err))
    assert (again.rule, again.position, again.detail, str(again)) == ("r", 1, "boom", str(err))


def test_nesting_limit() -> None:
    ok = "(" * MAX_NESTING + "Host(`a`)" + ")" * MAX_NESTING
    parse_rule(ok)
    too_deep = "(" * (MAX_NESTING + 1) + "Host(`a`)" + ")" * (MAX_NESTING + 1)
    with pytest.raises(RuleSyntaxError, match="nests too deeply") as info:
        parse_rule(too_deep)
    assert info.value.position == MAX_NESTING
    with pytest.raises(RuleSyntaxError, match="nests too deeply"):
        parse_rule("!" * 5000 + "Host(`a`)")
    with pytest.raises(RuleSyntaxError):
        parse_rule("(" * 100_000)


def test_long_flat_chains_are_fine() -> None:
    rule = " || ".join(f"Host(`h{i}.example.com`)" for i in range(3000))
    compiled = compile_rule(rule)
    assert compiled.host_keys is not None and len(compiled.host_keys) == 3000


@pytest.mark.parametrize("syntax", ["v1", "V3", "", "v4"])
def test_unknown_syntax_is_a_value_error(syntax: str) -> None:
    with pytest.raises(ValueError, match="'v3', 'v2'") as info:
        parse_rule("Host(`a`)", syntax)
    assert not isinstance(info.value, RuleSyntaxError)
    with pytest.raises(ValueError, match="'v3', 'v2'"):
        compile_rule("Host(`a`)", syntax)


# (rule, syntax, position of the offending matcher, substring of the message)
COMPILE_ERRORS: list[tuple[str, str, int, str]] = [
    (
        "Host(`a`) && Foo(`x`)",
        "v3",
        13,
        "unknown matcher 'Foo' for rule syntax v3; valid matchers:",
    ),
    ("HostHeader(`a`)", "v3", 0, "HostHeader exists only in rule syntax v2"),
    ("Headers(`a`, `b`)", "v3", 0, "unknown matcher 'Headers'"),
    ("hostRegexp(`a`)", "v3", 0, "unknown matcher 'hostRegexp'"),
    ("PathRegexp(`^/x`)", "v2", 0, "PathRegexp exists only in rule syntax v3"),
    ("Header(`a`, `b`)", "v2", 0, "unknown matcher 'Header' for rule syntax v2"),
    ("QueryRegexp(`a`, `b`)", "v2", 0, "unknown matcher 'QueryRegexp'"),
    ("Host()", "v3", 0, "Host needs at least one argument"),
    ("Host()", "v2", 0, "Host needs at least one argument"),
    ("Host(``)", "v3", 0, "Host does not accept an empty argument"),
    ("Query(`q`, ``)", "v3", 0, "empty argument"),
    ("Host(`a`, `b`)", "v3", 0, "Host expects 1 argument, got 2"),
    ("Method(`GET`, `POST`)", "v3", 0, "several values need '||'"),
    ("Header(`a`)", "v3", 0, "Header expects 2 arguments, got 1"),
    ("Query(`q`, `a`, `b`)", "v3", 0, "Query expects 1 or 2 arguments, got 3"),
    ("Path(`x`)", "v3", 0, "path 'x' does not start with '/'"),
    ("Path(`/ok`) && PathPrefix(`x`)", "v3", 15, "does not start with '/'"),
    ("Path(`x`)", "v2", 0, "path must start with a slash"),
    ("Host(`a`) || PathRegexp(`(`)", "v3", 13, "invalid regular expression '('"),
    ("HostRegexp(`a**`)", "v3", 0, "invalid nested repetition"),
    ("HeaderRegexp(`a`, `(?=x)`)", "v3", 0, "invalid regular expression"),
    ("QueryRegexp(`a`, `\\1`)", "v3", 0, "backreferences are not supported"),
    ("PathRegexp(`\\pL`)", "v3", 0, "Unicode character classes"),
    ("HeadersRegexp(`a`, `[`)", "v2", 0, "invalid regular expression"),
    ("Host(`é.com`)", "v3", 0, "non-ASCII characters are not allowed"),
    ("Host(`é.com`)", "v2", 0, "non-ASCII characters are not allowed"),
    ("HostRegexp(`é`)", "v3", 0, "non-ASCII"),
    ("HostRegexp(`é`)", "v2", 0, "non-ASCII"),
    ("ClientIP(`10.0.0.300`)", "v3", 0, "invalid IP or CIDR '10.0.0.300'"),
    ("ClientIP(`10.0.0.0/33`)", "v3", 0, "invalid IP or CIDR"),
    ("ClientIP(`10.0.0.0/255.0.0.0`)", "v3", 0, "invalid IP or CIDR"),
    ("ClientIP(`fe80::1%eth0`)", "v3", 0, "invalid IP or CIDR"),
    ("ClientIP(`010.0.0.1`)", "v3", 0, "invalid IP or CIDR"),
    ("ClientIP(`a`, `b`)", "v3", 0, "ClientIP expects 1 argument"),
    ("ClientIP(`10.0.0.1`, `nope`)", "v2", 0, "invalid IP or CIDR 'nope'"),
    ("Headers(`a`)", "v2", 0, "Headers expects key/value pairs"),
    ("Headers(`a`, `b`, `c`)", "v2", 0, "key/value pairs"),
    ("Query(`a`)", "v2", 0, "Query expects key=value arguments"),
    ("Query(`a={x}`, `b={x}`)", "v2", 0, "duplicated route variable 'x'"),
    ("Path(`/{`)", "v2", 0, "unbalanced braces"),
    ("Path(`/}`)", "v2", 0, "unbalanced braces"),
    ("Path(`/{:x}`)", "v2", 0, "missing name or pattern"),
    ("Path(`/{x:}`)", "v2", 0, "missing name or pattern"),
    ("HostRegexp(`{x:(}.com`)", "v2", 0, "invalid pattern"),
    ("!Path(`/a`) && Path(`/b`, `/c`)", "v3", 15, "Path expects 1 argument, got 2"),
]


@pytest.mark.parametrize("rule,syntax,position,fragment", COMPILE_ERRORS)
def test_compile_error(rule: str, syntax: str, position: int, fragment: str) -> None:
    parse_rule(rule, syntax)  # well-formed: only compilation rejects it
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule(rule, syntax)
    assert info.value.position == position, str(info.value)
    assert fragment in str(info.value), str(info.value)


def test_unknown_matcher_lists_valid_names() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule("Nope(`x`)", "v2")
    for name in ("ClientIP", "Headers", "HeadersRegexp", "Host", "HostHeader", "HostRegexp"):
        assert name in str(info.value)
