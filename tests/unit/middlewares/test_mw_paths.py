"""Path middlewares (stripPrefix, stripPrefixRegex, addPrefix, replacePath,
replacePathRegex) and the Go path and regexp helpers behind them."""

from __future__ import annotations

import pytest
from mw_support import build, make_ctx

from wsgate.middlewares import PASS, Answer, MiddlewareError
from wsgate.middlewares.goregex import GoPattern, compile_pattern, replace_all
from wsgate.middlewares.paths import (
    decode_path,
    encoded_prefix_len,
    escaped_path,
    join_target,
    needs_cleaning,
    unescape_path,
)


def run(mw, target, **kw):
    ctx = make_ctx(target, **kw)
    return mw.on_request(ctx), ctx


# -- stripPrefix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target,expected,prefix", [
    ("/api/ws?x=1", "/ws?x=1", "/api"),
    ("/api", "/", "/api"),
    ("/api/", "/", "/api"),
    ("/apix/y", "/x/y", "/api"),  # a plain string prefix, as in Traefik
    ("/api%2Fb/c", "/%2Fb/c", "/api"),  # escapes after the prefix are kept
    ("/api?", "/?", "/api"),
    ("/other", "/other", None),
])
def test_strip_prefix(target, expected, prefix):
    decision, ctx = run(build({"stripPrefix": {"prefixes": ["/api"]}}), target)
    assert decision is PASS
    assert ctx.target == expected
    assert ctx.get_all("X-Forwarded-Prefix") == ([prefix] if prefix else [])


def test_strip_prefix_first_matching_prefix_wins_and_prefixes_are_trimmed():
    mw = build({"stripPrefix": {"prefixes": [" /a/b ", "/a"]}})
    _, ctx = run(mw, "/a/b/c")
    assert ctx.target == "/c" and ctx.get("X-Forwarded-Prefix") == "/a/b"


def test_strip_prefix_compares_the_decoded_path():
    mw = build({"stripPrefix": {"prefixes": ["/caf\u00e9"]}})
    _, ctx = run(mw, "/caf%C3%A9/menu")
    assert ctx.target == "/menu"
    assert ctx.get("X-Forwarded-Prefix").encode("latin-1") == "/caf\u00e9".encode()


def test_strip_prefix_force_slash():
    mw = build({"stripPrefix": {"prefixes": ["/api/"], "forceSlash": True}})
    assert run(mw, "/api/")[1].target == "/"
    assert run(mw, "/api/x")[1].target == "/x"
    assert any("forceSlash" in w for w in mw.warnings)


def test_strip_prefix_refuses_a_result_that_needs_cleaning():
    decision, ctx = run(build({"stripPrefix": {"prefixes": ["/api"]}}), "/api//etc")
    assert isinstance(decision, Answer) and decision.status == 400
    assert decision.body == b"Bad Request\n"
    assert ctx.target == "/api//etc" and not ctx.has("X-Forwarded-Prefix")


def test_strip_prefix_on_a_websocket_handshake():
    decision, ctx = run(build({"stripPrefix": {"prefixes": ["/chat"]}}), "/chat/ws?room=1",
                        websocket=True)
    assert decision is PASS
    head = ctx.to_head()
    assert head.target == "/ws?room=1" and head.is_upgrade


# -- stripPrefixRegex --------------------------------------------------------------------------


def test_strip_prefix_regex():
    mw = build({"stripPrefixRegex": {"regex": ["/foo/[a-z0-9]+/[0-9]+/"]}})
    decision, ctx = run(mw, "/foo/abc/123/bar?q=1")
    assert decision is PASS
    assert ctx.target == "/bar?q=1"
    assert ctx.get("X-Forwarded-Prefix") == "/foo/abc/123/"
    # The match must start the path.
    assert run(mw, "/x/foo/abc/123/bar")[1].target == "/x/foo/abc/123/bar"


def test_strip_prefix_regex_tries_each_regex_and_ignores_empty_matches():
    mw = build({"stripPrefixRegex": {"regex": ["^/nothing", "x*", "/a[0-9]"]}})
    _, ctx = run(mw, "/a1/b")
    assert ctx.target == "/b"


def test_strip_prefix_regex_errors_name_the_regex():
    with pytest.raises(MiddlewareError) as info:
        build({"stripPrefixRegex": {"regex": ["/ok", "/(bad"]}})
    assert info.value.field == "stripPrefixRegex.regex[1]"


# -- addPrefix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix,target,expected", [
    ("/api", "/ws?q=1", "/api/ws?q=1"),
    ("api", "/ws", "/api/ws"),
    ("/api", "/a%2Fb", "/api/a%2Fb"),
    ("/a b", "/x", "/a%20b/x"),
])
def test_add_prefix(prefix, target, expected):
    decision, ctx = run(build({"addPrefix": {"prefix": prefix}}), target)
    assert decision is PASS and ctx.target == expected


def test_add_prefix_cannot_be_empty():
    with pytest.raises(MiddlewareError) as info:
        build({"addPrefix": {"prefix": ""}})
    assert info.value.field == "addPrefix.prefix"


# -- replacePath -------------------------------------------------------------------------------


def test_replace_path_keeps_the_query_and_the_old_path():
    decision, ctx = run(build({"replacePath": {"path": "/new path"}}), "/old%20p?q=1")
    assert decision is PASS
    assert ctx.target == "/new%20path?q=1"
    assert ctx.get("X-Replaced-Path") == "/old%20p"


def test_replace_path_empty_path_is_root():
    assert run(build({"replacePath": {"path": ""}}), "/a")[1].target == "/"


def test_replace_path_with_a_bad_escape_is_a_configuration_error():
    with pytest.raises(MiddlewareError) as info:
        build({"replacePath": {"path": "/a%zz"}})
    assert info.value.field == "replacePath.path"
    assert 'invalid URL escape "%zz"' in str(info.value)


# -- replacePathRegex --------------------------------------------------------------------------


def test_replace_path_regex():
    mw = build({"replacePathRegex": {"regex": "^/foo/(.*)", "replacement": "/bar/$1"}})
    decision, ctx = run(mw, "/foo/a%2Fb?x=1")
    assert decision is PASS
    assert ctx.target == "/bar/a%2Fb?x=1"  # the regexp sees the escaped path
    assert ctx.get("X-Replaced-Path") == "/foo/a%2Fb"
    decision, ctx = run(mw, "/other")
    assert decision is PASS and ctx.target == "/other" and not ctx.has("X-Replaced-Path")


def test_replace_path_regex_named_groups_and_trimming():
    mw = build({"replacePathRegex": {"regex": " ^/(?P<user>[a-z]+)/(?P<id>[0-9]+) ",
                                     "replacement": " /users/${id}/${user} "}})
    assert run(mw, "/bob/42")[1].target == "/users/42/bob"


def test_replace_path_regex_bad_results():
    unclean = build({"replacePathRegex": {"regex": "^/foo/(.*)", "replacement": "/bar//$1"}})
    decision, ctx = run(unclean, "/foo/x")
    assert isinstance(decision, Answer) and decision.status == 400
    assert ctx.target == "/foo/x"
    bad_escape = build({"replacePathRegex": {"regex": "^/foo/(.*)",
                                             "replacement": "/bar/%zz$1"}})
    decision, _ = run(bad_escape, "/foo/x")
    assert isinstance(decision, Answer) and decision.status == 500
    assert decision.body == b'invalid URL escape "%zz"\n'


def test_replace_path_regex_compile_error():
    with pytest.raises(MiddlewareError) as info:
        build({"replacePathRegex": {"regex": "a{2,1}", "replacement": "/"}})
    assert info.value.field == "replacePathRegex.regex"


# -- helpers -------------------------------------------------------------------------------------


def test_path_helpers():
    assert encoded_prefix_len("/a%2Fb/c", 4) == 6
    assert encoded_prefix_len("/ab", 10) == 3
    assert decode_path("/a%2Fb%zz") == "/a/b%zz"
    assert escaped_path("/a b") == "/a%20b"
    assert escaped_path("/a%2Fb") == "/a%2Fb"
    assert escaped_path("/a?b") == "/a%3Fb"
    assert escaped_path("/caf\u00c3\u00a9") == "/caf%C3%A9"
    assert escaped_path("/%zz") == "/%25zz"
    assert join_target("", "", "") == "/"
    assert join_target("/p", "?", "") == "/p?"
    assert needs_cleaning("//x") and needs_cleaning("/a/./b") and needs_cleaning("/a/..")
    assert not needs_cleaning("/a/%2E%2E/b") and not needs_cleaning("")
    with pytest.raises(ValueError, match='invalid URL escape "%2"'):
        unescape_path("/a%2")


@pytest.mark.parametrize("pattern,src,template,expected", [
    ("a*", "baaac", "-", "-b-c-"),  # no empty match right after a match (Python differs)
    ("x*", "abc", "-", "-a-b-c-"),
    (r"(?P<first>\w+) (?P<last>\w+)", "John Smith", "${last}, $first", "Smith, John"),
    ("(a)(b)?", "ab a", "[$1$2]", "[ab] [a]"),
    ("a(x*)", "ax", "$1x|${1}x|$$|$9|$", "|xx|$||$"),  # $1x names group "1x"
    ("(?i)ABC", "xabcx", "<$0>", "x<abc>x"),
])
def test_go_replacement_semantics(pattern, src, template, expected):
    assert replace_all(GoPattern(pattern), src, template) == expected


def test_group_names_skip_classes_and_escapes():
    pattern = GoPattern(r"[(]\((?:x)(?P<a>y)[^)(](?<b>z)\Q(\E(w)")
    assert pattern.names == {1: "a", 2: "b"}
    assert pattern.regex.groups == 3


def test_compile_pattern_rejects_what_go_rejects():
    with pytest.raises(MiddlewareError, match="backreferences"):
        compile_pattern("m@file", "f", r"(a)\1")
