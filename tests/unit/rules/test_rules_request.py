"""RouteRequest and the derived views: host, routing path, query, client address."""

from __future__ import annotations

import ipaddress

import pytest

from wsgate.rules import RouteRequest, canonical_host, compile_rule, parse_query, routing_path
from wsgate.rules.request import host_key, parse_client_ip, split_host_port


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("/plain/path", "/plain/path"),
        ("/%41%42c", "/ABc"),
        ("/%7euser", "/~user"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a%2fb", "/a%2Fb"),
        ("/%3f%3F%23%5b%5d%40", "/%3F%3F%23%5B%5D%40"),
        ("/%21%24%26%27%28%29%2a%2B%2c%3b%3D%3a", "/%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A"),
        ("/100%25", "/100%25"),
        ("/%2525", "/%2525"),
        ("/foo%20bar", "/foo bar"),
        ("/%22q%22%3C%3E", '/"q"<>'),
        ("/caf%C3%A9", "/café"),
        ("/%c3%a9/x", "/é/x"),
        ("/bad%zz", "/bad%zz"),
        ("/trailing%", "/trailing%"),
        ("/short%4", "/short%4"),
        ("/%", "/%"),
        ("", ""),
        ("*", "*"),
    ],
)
def test_routing_path(raw: str, expected: str) -> None:
    assert routing_path(raw) == expected


def test_routing_path_invalid_utf8_is_lossless() -> None:
    decoded = routing_path("/%FF")
    assert decoded.encode("utf-8", "surrogateescape") == b"/\xff"


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("example.com", "example.com"),
        ("Example.COM:8080", "example.com"),
        ("example.com:", "example.com"),
        ("example.com.", "example.com."),
        ("[::1]:443", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[fe80::1%25eth0]:80", "fe80::1%25eth0"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("  spaced.example  ", "spaced.example"),
        ("", ""),
        ("a:b:c", "a:b:c"),
    ],
)
def test_canonical_host(raw: str, expected: str) -> None:
    assert canonical_host(raw) == expected


def test_host_key() -> None:
    assert host_key("a.com.") == "a.com"
    assert host_key("a.com") == "a.com"
    assert host_key("a.com..") == "a.com."
    assert host_key("") == ""


@pytest.mark.parametrize(
    "hostport,expected",
    [
        ("a:80", ("a", "80")),
        ("[::1]:80", ("::1", "80")),
        (":80", ("", "80")),
        ("a:", ("a", "")),
    ],
)
def test_split_host_port(hostport: str, expected: tuple[str, str]) -> None:
    assert split_host_port(hostport) == expected


@pytest.mark.parametrize(
    "hostport", ["a", "a:b:c", "[::1]", "[::1", "[::1]x:80", "[a]:b]", "a[:80"]
)
def test_split_host_port_errors(hostport: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(hostport)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("", {}),
        ("a=1&b=2&a=3", {"a": ("1", "3"), "b": ("2",)}),
        ("a=1;b=2", {"a": ("1",), "b": ("2",)}),
        ("flag", {"flag": ("",)}),
        ("flag=", {"flag": ("",)}),
        ("=v", {"": ("v",)}),
        ("&&a=1&", {"a": ("1",)}),
        ("q=a+b%20c%2B", {"q": ("a b c+",)}),
        ("k%3Dv", {"k=v": ("",)}),
        ("a=x=y", {"a": ("x=y",)}),
        ("bad=%zz&ok=1", {"ok": ("1",)}),
        ("bad%=1&ok=1", {"ok": ("1",)}),
        ("e=%C3%A9", {"e": ("é",)}),
    ],
)
def test_parse_query(raw: str, expected: dict[str, tuple[str, ...]]) -> None:
    assert parse_query(raw) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("", None),
        ("10.0.0.1:80", None),
        ("host.example", None),
    ],
)
def test_parse_client_ip(text: str, expected: str | None) -> None:
    parsed = parse_client_ip(text)
    assert parsed == (None if expected is None else ipaddress.ip_address(expected))


def test_build_splits_and_groups() -> None:
    r = RouteRequest.build(
        "GET",
        "Example.com:8080",
        "/p%41th?x=1&y=2?z",
        [("X-A", " 1 "), ("x-a", "2"), ("Host", "example.com"), ("X-Empty", "")],
        "::1",
        tls=True,
        sni="example.com",
    )
    assert r.path == "/p%41th"
    assert r.query == "x=1&y=2?z"
    assert r.headers == {"x-a": ("1", "2"), "host": ("example.com",), "x-empty": ("",)}
    assert r.tls is True and r.sni == "example.com"
    assert r.canonical_host == "example.com"
    assert r.routing_path == "/pAth"
    assert r.query_params == {"x": ("1",), "y": ("2?z",)}
    assert r.client_address == ipaddress.ip_address("::1")


def test_request_is_frozen_and_compares_by_value() -> None:
    a = RouteRequest.build("GET", "h", "/", [], "10.0.0.1")
    b = RouteRequest.build("GET", "h", "/", [], "10.0.0.1")
    assert a == b
    _ = a.routing_path  # a computed view does not take part in equality
    assert a == b
    with pytest.raises(AttributeError):
        a.method = "POST"  # type: ignore[misc]


def test_views_are_lazy_and_computed_once() -> None:
    r = RouteRequest.build("GET", "a.com", "/x%20y?q=1", [], "10.0.0.1")
    views = r._views
    assert views.query is None and views.routing_path is None
    assert compile_rule("Host(`a.com`)").matches(r)
    assert views.query is None and views.routing_path is None  # a Host rule parses neither
    assert compile_rule("Path(`/x y`) && Query(`q`, `1`)").matches(r)
    first_path, first_query = views.routing_path, views.query
    assert first_path == "/x y" and first_query == {"q": ("1",)}
    assert r.routing_path is first_path and r.query_params is first_query
    assert views.client_done is False
    assert not compile_rule("ClientIP(`10.0.0.2`)").matches(r)
    assert views.client_done is True
