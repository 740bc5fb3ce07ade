"""Table-driven behaviour of every matcher, operator and syntax, plus muxer priorities.

Each row is (rule, syntax, request, expected). Expectations follow Traefik v3.7 (pkg/muxer/http)
and its v2 compatibility syntax (gorilla/mux templates).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from wsgate.rules import Route, RouteRequest, build_muxer, compile_rule


def req(
    host: str = "example.com",
    target: str = "/",
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    ip: str = "10.0.0.1",
) -> RouteRequest:
    return RouteRequest.build(method, host, target, list(headers), ip)


def h(name: str, value: str) -> tuple[str, str]:
    return (name, value)


V3, V2 = "v3", "v2"

CASES: list[tuple[str, str, RouteRequest, bool]] = [
    # --- Host (v3) -----------------------------------------------------------------
    ("Host(`example.com`)", V3, req("example.com"), True),
    ("Host(`example.com`)", V3, req("EXAMPLE.COM"), True),
    ("Host(`Example.COM`)", V3, req("example.com"), True),
    ("Host(`example.com`)", V3, req("example.com:8080"), True),
    ("Host(`example.com`)", V3, req("example.com."), True),
    ("Host(`example.com.`)", V3, req("example.com"), True),
    ("Host(`example.com.`)", V3, req("example.com.:443"), True),
    ("Host(`example.com`)", V3, req("www.example.com"), False),
    ("Host(`example.com`)", V3, req("example.org"), False),
    ("Host(`example.com`)", V3, req(""), False),
    ("Host(`example.com`)", V3, req(" example.com "), True),
    ("Host(`*.example.com`)", V3, req("a.example.com"), True),
    ("Host(`*.example.com`)", V3, req("A.Example.COM:443"), True),
    ("Host(`*.example.com`)", V3, req("a.example.com."), True),
    ("Host(`*.example.com`)", V3, req("a.b.example.com"), False),
    ("Host(`*.example.com`)", V3, req("example.com"), False),
    ("Host(`*.example.com`)", V3, req("a.example.org"), False),
    ("Host(`*`)", V3, req("anything.example"), True),
    ("Host(`*`)", V3, req(""), True),
    ("Host(`::1`)", V3, req("[::1]:8080"), True),
    ("Host(`::1`)", V3, req("[::1]"), True),
    ("Host(`[::1]`)", V3, req("[::1]:8080"), True),
    ("Host(`::1`)", V3, req("::1"), True),
    ("Host(`127.0.0.1`)", V3, req("127.0.0.1:80"), True),
    ("Host(`127.0.0.1`)", V3, req("127.0.0.2"), False),
    # --- HostRegexp (v3: Go regexp, unanchored, on the lower-cased host) -------------
    ("HostRegexp(`[a-z]+\\.traefik\\.com`)", V3, req("foobar.traefik.com"), True),
    ("HostRegexp(`[a-z]+\\.traefik\\.com`)", V3, req("FOOBAR.Traefik.com:80"), True),
    ("HostRegexp(`^[a-z]+\\.traefik\\.com$`)", V3, req("a.b.traefik.com"), False),
    ("HostRegexp(`traefik`)", V3, req("sub.traefik.io"), True),
    ("HostRegexp(`^example\\.(com|org)$`)", V3, req("example.org"), True),
    ("HostRegexp(`^example\\.(com|org)$`)", V3, req("example.net"), False),
    ("HostRegexp(`^EXAMPLE\\.com$`)", V3, req("example.com"), False),
    ("HostRegexp(`(?i)^EXAMPLE\\.com$`)", V3, req("Example.com"), True),
    ("HostRegexp(`^example\\.com$`)", V3, req("example.com:8080"), True),
    ("HostRegexp(`example.com`)", V3, req("xexampleXcom"), True),
    ("HostRegexp(`^.+\\.example\\.com$`)", V3, req("example.com"), False),
    # --- Path, PathPrefix, PathRegexp and the routing path ---------------------------
    ("Path(`/products`)", V3, req(target="/products"), True),
    ("Path(`/products`)", V3, req(target="/products/"), False),
    ("Path(`/products`)", V3, req(target="/products/shoes"), False),
    ("Path(`/products`)", V3, req(target="/products?x=1"), True),
    ("Path(`/products`)", V3, req(target="/Products"), False),
    ("Path(`/A`)", V3, req(target="/%41"), True),
    ("Path(`/a-b_c.d~e`)", V3, req(target="/a%2db%5Fc%2Ed%7ee"), True),
    ("Path(`/foo bar`)", V3, req(target="/foo%20bar"), True),
    ("Path(`/a/b`)", V3, req(target="/a%2Fb"), False),
    ("Path(`/a%2Fb`)", V3, req(target="/a%2fb"), True),
    ("Path(`/a%2Fb`)", V3, req(target="/a%2Fb"), True),
    ("Path(`/a%2fb`)", V3, req(target="/a%2fb"), False),
    ("Path(`/q%3F`)", V3, req(target="/q%3f"), True),
    ("Path(`/100%25`)", V3, req(target="/100%25"), True),
    ("Path(`/100%`)", V3, req(target="/100%25"), False),
    ("Path(`/é`)", V3, req(target="/%C3%A9"), True),
    ("PathPrefix(`/products`)", V3, req(target="/products-for-sale"), True),
    ("PathPrefix(`/products`)", V3, req(target="/products/shoes"), True),
    ("PathPrefix(`/products`)", V3, req(target="/product"), False),
    ("PathPrefix(`/`)", V3, req(target="/anything/at/all"), True),
    ("PathPrefix(`/api/`)", V3, req(target="/api"), False),
    ("PathPrefix(`/a b`)", V3, req(target="/a%20b/c"), True),
    ("PathPrefix(`/a/`)", V3, req(target="/a%2Fb"), False),
    ("PathRegexp(`^/products/(shoes|socks)/[0-9]+$`)", V3, req(target="/products/shoes/31"), True),
    ("PathRegexp(`^/products/(shoes|socks)/[0-9]+$`)", V3, req(target="/products/hats/31"), False),
    ("PathRegexp(`\\.(jpeg|jpg|png)$`)", V3, req(target="/img/cat.png"), True),
    ("PathRegexp(`\\.(jpeg|jpg|png)$`)", V3, req(target="/img/cat.png.txt"), False),
    ("PathRegexp(`(?i)^/products`)", V3, req(target="/PRODUCTS/x"), True),
    ("PathRegexp(`^/products`)", V3, req(target="/PRODUCTS"), False),
    ("PathRegexp(`products`)", V3, req(target="/x/products"), True),
    ("PathRegexp(`^/a%2Fb$`)", V3, req(target="/a%2fb"), True),
    ("PathRegexp(`^/[^/]+$`)", V3, req(target="/a%2Fb"), True),
    ("PathRegexp(`^/x$`)", V3, req(target="/x%0A"), False),
    ("PathRegexp(`^/\\d+$`)", V3, req(target="/%D9%A3"), False),
    ("PathRegexp(`^/\\w+$`)", V3, req(target="/abc_9"), True),
    # --- Method ------------------------------------------------------------------------
    ("Method(`GET`)", V3, req(method="GET"), True),
    ("Method(`get`)", V3, req(method="GET"), True),
    ("Method(`GET`)", V3, req(method="POST"), False),
    ("Method(`OPTIONS`)", V3, req(method="OPTIONS"), True),
    ("Method(`POST`)", V3, req(method="post"), False),
    # --- Header, HeaderRegexp -------------------------------------------------------
    (
        "Header(`Content-Type`, `application/yaml`)",
        V3,
        req(headers=[h("Content-Type", "application/yaml")]),
        True,
    ),
    ("Header(`content-type`, `a/b`)", V3, req(headers=[h("CONTENT-TYPE", "a/b")]), True),
    ("Header(`X-Env`, `prod`)", V3, req(headers=[h("X-Env", "dev"), h("x-env", "prod")]), True),
    ("Header(`X-Env`, `prod`)", V3, req(headers=[h("X-Env", "dev, prod")]), False),
    ("Header(`X-Env`, `prod`)", V3, req(headers=[h("X-Other", "prod")]), False),
    ("Header(`X-Env`, `prod`)", V3, req(headers=[h("X-Env", "Prod")]), False),
    ("Header(`X-Env`, `prod`)", V3, req(headers=[h("X-Env", "  prod ")]), True),
    (
        "HeaderRegexp(`Content-Type`, `^application/(json|yaml)$`)",
        V3,
        req(headers=[h("Content-Type", "application/json")]),
        True,
    ),
    (
        "HeaderRegexp(`Content-Type`, `^application/(json|yaml)$`)",
        V3,
        req(headers=[h("Content-Type", "text/html")]),
        False,
    ),
    (
        "HeaderRegexp(`Content-Type`, `(?i)^application/(json|yaml)$`)",
        V3,
        req(headers=[h("Content-Type", "Application/JSON")]),
        True,
    ),
    ("HeaderRegexp(`X-A`, `b`)", V3, req(headers=[h("X-A", "abc")]), True),
    ("HeaderRegexp(`X-A`, `.*`)", V3, req(), False),
    ("HeaderRegexp(`X-A`, `^$`)", V3, req(headers=[h("X-A", "")]), True),
    ("HeaderRegexp(`X-A`, `^y`)", V3, req(headers=[h("X-A", "x"), h("X-A", "yes")]), True),
    # --- Query, QueryRegexp -----------------------------------------------------------
    ("Query(`q`, `traefik`)", V3, req(target="/?q=traefik"), True),
    ("Query(`q`, `traefik`)", V3, req(target="/?rel=ddg&q=traefik"), True),
    ("Query(`q`, `traefik`)", V3, req(target="/?q=traefik&q=proxy"), True),
    ("Query(`q`, `traefik`)", V3, req(target="/?q=awesome&q=traefik"), True),
    ("Query(`q`, `traefik`)", V3, req(target="/?q=nginx"), False),
    ("Query(`q`, `traefik`)", V3, req(target="/?q=TRAEFIK"), False),
    ("Query(`q`, `traefik`)", V3, req(target="/?Q=traefik"), False),
    ("Query(`q`, `traefik`)", V3, req(target="/"), False),
    ("Query(`mobile`)", V3, req(target="/search?mobile"), True),
    ("Query(`mobile`)", V3, req(target="/search?mobile="), True),
    ("Query(`mobile`)", V3, req(target="/search?mobile=true"), False),
    ("Query(`mobile`)", V3, req(target="/search"), False),
    ("Query(`q`, `a b`)", V3, req(target="/?q=a+b"), True),
    ("Query(`q`, `a b`)", V3, req(target="/?q=a%20b"), True),
    ("Query(`q`, `a+b`)", V3, req(target="/?q=a%2Bb"), True),
    ("Query(`q`, `x`)", V3, req(target="/?a=1;q=x"), True),
    ("Query(`q`, `x`)", V3, req(target="/?q=x&bad=%zz"), True),
    ("Query(`q`, `x`)", V3, req(target="/?q=%zzx"), False),
    ("Query(`q k`, `v`)", V3, req(target="/?q+k=v"), True),
    ("QueryRegexp(`q`, `^(traefik|nginx)$`)", V3, req(target="/?q=nginx"), True),
    ("QueryRegexp(`q`, `^(traefik|nginx)$`)", V3, req(target="/?q=haproxy"), False),
    ("QueryRegexp(`q`, `^(traefik|nginx)$`)", V3, req(target="/?q=awesome&q=nginx"), True),
    ("QueryRegexp(`mobile`, `^.*$`)", V3, req(target="/?mobile"), True),
    ("QueryRegexp(`mobile`, `^.*$`)", V3, req(target="/?other"), False),
    ("QueryRegexp(`q`, `(?i)^(true|yes)$`)", V3, req(target="/?q=YES"), True),
    ("QueryRegexp(`mobile`)", V3, req(target="/?mobile"), True),
    ("QueryRegexp(`mobile`)", V3, req(target="/?mobile=1"), False),
    # --- ClientIP (the TCP peer only) ------------------------------------------------
    ("ClientIP(`10.76.105.11`)", V3, req(ip="10.76.105.11"), True),
    ("ClientIP(`10.76.105.11`)", V3, req(ip="10.76.105.12"), False),
    (
        "ClientIP(`10.76.105.11`)",
        V3,
        req(ip="10.0.0.9", headers=[h("X-Forwarded-For", "10.76.105.11")]),
        False,
    ),
    ("ClientIP(`192.168.1.0/24`)", V3, req(ip="192.168.1.77"), True),
    ("ClientIP(`192.168.1.0/24`)", V3, req(ip="192.168.2.1"), False),
    ("ClientIP(`192.168.1.7/24`)", V3, req(ip="192.168.1.200"), True),
    ("ClientIP(`::1`)", V3, req(ip="::1"), True),
    ("ClientIP(`::1`)", V3, req(ip="127.0.0.1"), False),
    ("ClientIP(`fe80::/10`)", V3, req(ip="fe80::1234"), True),
    ("ClientIP(`fe80::/10`)", V3, req(ip="fec0::1"), False),
    ("ClientIP(`2001:db8::/32`)", V3, req(ip="2001:DB8:0:0::5"), True),
    ("ClientIP(`2001:db8::/32`)", V3, req(ip="2001:db9::5"), False),
    ("ClientIP(`10.0.0.0/8`)", V3, req(ip="::ffff:10.1.2.3"), True),
    ("ClientIP(`::ffff:10.0.0.1`)", V3, req(ip="10.0.0.1"), True),
    ("ClientIP(`::ffff:10.0.0.0/104`)", V3, req(ip="10.200.0.1"), True),
    ("ClientIP(`::/0`)", V3, req(ip="10.0.0.1"), False),
    ("ClientIP(`0.0.0.0/0`)", V3, req(ip="2001:db8::1"), False),
    ("ClientIP(`fe80::1`)", V3, req(ip="fe80::1%eth0"), True),
    ("ClientIP(`10.0.0.1`)", V3, req(ip=""), False),
    ("ClientIP(`10.0.0.1`)", V3, req(ip="not-an-ip"), False),
    # --- operators, precedence, parentheses --------------------------------------------
    ("!Host(`a.com`)", V3, req("b.com"), True),
    ("!Host(`a.com`)", V3, req("a.com"), False),
    ("Host(`a.com`) && Path(`/x`)", V3, req("a.com", "/x"), True),
    ("Host(`a.com`) && Path(`/x`)", V3, req("a.com", "/y"), False),
    ("Host(`a.com`) || Path(`/x`)", V3, req("b.com", "/x"), True),
    ("Host(`a.com`) || Path(`/x`)", V3, req("b.com", "/y"), False),
    ("Host(`a.com`) || Host(`b.com`) && Path(`/x`)", V3, req("b.com", "/y"), False),
    ("Host(`a.com`) || Host(`b.com`) && Path(`/x`)", V3, req("a.com", "/y"), True),
    ("Host(`b.com`) && Path(`/x`) || Host(`a.com`)", V3, req("a.com", "/y"), True),
    ("(Host(`a.com`) || Host(`b.com`)) && Path(`/x`)", V3, req("a.com", "/y"), False),
    ("(Host(`a.com`) || Host(`b.com`)) && Path(`/x`)", V3, req("b.com", "/x"), True),
    ("!Host(`a.com`) && Path(`/x`)", V3, req("a.com", "/x"), False),
    ("!(Host(`a.com`) && Path(`/x`))", V3, req("a.com", "/y"), True),
    ("!(Host(`a.com`) || Path(`/x`))", V3, req("b.com", "/x"), False),
    ("!!Host(`a.com`)", V3, req("a.com"), True),
    ("!Host(`a.com`) || Path(`/x`)", V3, req("a.com", "/x"), True),
    ("((Host(`a.com`)))", V3, req("a.com"), True),
    ("Host(`a.com`)&&Path(`/x`)", V3, req("a.com", "/x"), True),
    ("Host(`a.com`)\n\t&& Path(`/x`)", V3, req("a.com", "/x"), True),
    (
        "Host(`a.com`) && (Method(`GET`) || Method(`HEAD`)) && !PathPrefix(`/admin`)",
        V3,
        req("a.com", "/admin/x", "HEAD"),
        False,
    ),
    (
        "Host(`a.com`) && (Method(`GET`) || Method(`HEAD`)) && !PathPrefix(`/admin`)",
        V3,
        req("a.com", "/public", "HEAD"),
        True,
    ),
    # --- literals and escapes, name spellings ------------------------------------------
    ('Host("a.com")', V3, req("a.com"), True),
    ('Host("a.com") && Path("/x")', V3, req("a.com", "/x"), True),
    ('Path("/a\\"b")', V3, req(target="/a%22b"), True),
    ('Path("/tab\\x41")', V3, req(target="/tabA"), True),
    ('Path("/\\u00e9")', V3, req(target="/%C3%A9"), True),
    ('Path("/\\303\\251")', V3, req(target="/%c3%a9"), True),
    ("Path(`/a\\b`)", V3, req(target="/a%5Cb"), True),
    ("Header(`X-T`, `a && b || !c`)", V3, req(headers=[h("X-T", "a && b || !c")]), True),
    ("Path(`/)`)", V3, req(target="/)"), True),
    ("Host(`a.com`,)", V3, req("a.com"), True),
    ("host(`a.com`)", V3, req("a.com"), True),
    ("HOST(`a.com`)", V3, req("a.com"), True),
    ("Pathprefix(`/x`)", V3, req(target="/x/y"), True),
    ("hostregexp(`^a`)", V3, req("abc"), True),
    # --- v2 syntax ---------------------------------------------------------------------
    ("Host(`a.com`, `b.com`)", V2, req("b.com"), True),
    ("Host(`a.com`, `b.com`)", V2, req("c.com"), False),
    ("Host(`A.com`)", V2, req("a.com:80"), True),
    ("Host(`a.com.`)", V2, req("a.com"), True),
    ("Host(`a.com`)", V2, req("a.com."), True),
    ("HostHeader(`a.com`)", V2, req("A.COM:8443"), True),
    ("Host(`*.example.com`)", V2, req("a.example.com"), False),
    ("Host(`*.example.com`)", V2, req("*.example.com"), True),
    ("Host(`*`)", V2, req("a.com"), False),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", V2, req("foo.example.com"), True),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", V2, req("foo.bar.example.com"), False),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", V2, req("FOO.example.com"), True),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", V2, req("foo.example.com:8080"), True),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", V2, req("fooxexample.com"), False),
    ("HostRegexp(`{sub:[a-z]+}.example.com`)", V3, req("foo.example.com"), False),
    ("HostRegexp(`[a-z]+\\.traefik\\.com`)", V2, req("foobar.traefik.com"), False),
    ("HostRegexp(`{sub}.example.com`)", V2, req("any-thing.example.com"), True),
    ("HostRegexp(`{sub}.example.com`)", V2, req("a.b.example.com"), False),
    ("HostRegexp(`a.com`, `{x:b+}.com`)", V2, req("bbb.com"), True),
    ("HostRegexp(`example.com`)", V2, req("xexample.com"), False),
    ("HostRegexp(`example.com`)", V3, req("xexample.com"), True),
    ("Path(`/a`, `/b`)", V2, req(target="/b"), True),
    ("Path(`/a`, `/b`)", V2, req(target="/c"), False),
    ("Path(`/r/{id}`)", V2, req(target="/r/42"), True),
    ("Path(`/r/{id}`)", V2, req(target="/r/42/x"), False),
    ("Path(`/r/{id}`)", V2, req(target="/r/"), False),
    ("Path(`/r/{id}`)", V3, req(target="/r/42"), False),
    ("Path(`/r/{id}`)", V3, req(target="/r/%7Bid%7D"), True),
    ("Path(`/r/{id:[0-9]+}`)", V2, req(target="/r/123"), True),
    ("Path(`/r/{id:[0-9]+}`)", V2, req(target="/r/abc"), False),
    ("Path(`/r/{id:[0-9]{3}}`)", V2, req(target="/r/1234"), False),
    ("Path(`/a.b`)", V2, req(target="/axb"), False),
    ("Path(`/a.b`)", V2, req(target="/a.b"), True),
    ("Path(`/a%2Fb`)", V2, req(target="/a%2fb"), True),
    ("PathPrefix(`/api/{ver:v[0-9]+}`)", V2, req(target="/api/v2/users"), True),
    ("PathPrefix(`/api/{ver:v[0-9]+}`)", V2, req(target="/api/beta/users"), False),
    ("PathPrefix(`/api`, `/v1`)", V2, req(target="/v1/x"), True),
    ("PathPrefix(`/api`, `/v1`)", V2, req(target="/v2/x"), False),
    ("Method(`GET`, `POST`)", V2, req(method="POST"), True),
    ("Method(`GET`, `POST`)", V2, req(method="DELETE"), False),
    ("Headers(`X-A`, `1`)", V2, req(headers=[h("x-a", "1")]), True),
    ("Headers(`X-A`, `1`, `X-B`, `2`)", V2, req(headers=[h("X-A", "1"), h("X-B", "2")]), True),
    ("Headers(`X-A`, `1`, `X-B`, `2`)", V2, req(headers=[h("X-A", "1")]), False),
    (
        "HeadersRegexp(`Content-Type`, `^application/json`)",
        V2,
        req(headers=[h("Content-Type", "application/json; charset=utf-8")]),
        True,
    ),
    ("HeadersRegexp(`X-A`, `^1$`, `X-B`, `2`)", V2, req(headers=[h("X-A", "11")]), False),
    ("Query(`k=v`)", V2, req(target="/?k=v"), True),
    ("Query(`k=v`)", V2, req(target="/?k=w"), False),
    ("Query(`k=v`)", V2, req(target="/?k=w&k=v"), False),
    ("Query(`k=v`)", V3, req(target="/?k=v"), False),
    ("Query(`k=v`)", V3, req(target="/?k%3Dv"), True),
    ("Query(`k=`)", V2, req(target="/?k=anything"), True),
    ("Query(`k=`)", V2, req(target="/?other=1"), False),
    ("Query(`a=1`, `b=2`)", V2, req(target="/?a=1&b=2"), True),
    ("Query(`a=1`, `b=2`)", V2, req(target="/?a=1"), False),
    ("Query(`id={id:[0-9]+}`)", V2, req(target="/?id=42"), True),
    ("Query(`id={id:[0-9]+}`)", V2, req(target="/?id=x42"), False),
    ("ClientIP(`10.0.0.1`, `192.168.0.0/16`)", V2, req(ip="192.168.3.4"), True),
    ("ClientIP(`10.0.0.1`, `192.168.0.0/16`)", V2, req(ip="172.16.0.1"), False),
    ("!HostHeader(`a.com`) && Path(`/x`)", V2, req("b.com", "/x"), True),
    ("Host(`a.com`) || Host(`b.com`) && Path(`/x`)", V2, req("a.com", "/y"), True),
]


def _case_id(case: tuple[str, str, RouteRequest, bool]) -> str:
    rule, syntax, r, expected = case
    return f"{syntax}:{rule}:{r.host}{r.path}{'?' + r.query if r.query else ''}={expected}"


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 150


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_rule_matches(case: tuple[str, str, RouteRequest, bool]) -> None:
    rule, syntax, request, expected = case
    compiled = compile_rule(rule, syntax)
    assert compiled.matches(request) is expected
    assert compiled.rule == rule and compiled.syntax == syntax


# --- muxer: priority and ties -------------------------------------------------------

ROUTE_SETS: list[tuple[list[tuple[str, str, int]], RouteRequest, str | None]] = [
    # Default priority is the rule length: 34 beats 26.
    (
        [
            ("r1", "HostRegexp(`[a-z]+\\.traefik\\.com`)", 0),
            ("r2", "Host(`foobar.traefik.com`)", 0),
        ],
        req("foobar.traefik.com"),
        "r1",
    ),
    # An explicit priority overrides the length.
    (
        [
            ("r1", "HostRegexp(`[a-z]+\\.traefik\\.com`)", 1),
            ("r2", "Host(`foobar.traefik.com`)", 2),
        ],
        req("foobar.traefik.com"),
        "r2",
    ),
    (
        [("root", "PathPrefix(`/`)", 0), ("api", "PathPrefix(`/api`)", 0)],
        req(target="/api/users"),
        "api",
    ),
    ([("root", "PathPrefix(`/`)", 0), ("api", "PathPrefix(`/api`)", 0)], req(target="/x"), "root"),
    # Equal priorities: the name decides, ascending.
    ([("b", "PathPrefix(`/`)", 5), ("a", "PathPrefix(`/`)", 5)], req(), "a"),
    ([("b@file", "Host(`x.com`)", 0), ("a@docker", "Host(`x.com`)", 0)], req("x.com"), "a@docker"),
    # Negative priorities rank below every default one.
    ([("neg", "Host(`x.com`)", -1), ("dflt", "PathPrefix(`/`)", 0)], req("x.com"), "dflt"),
    ([("neg", "Host(`x.com`)", -1)], req("x.com"), "neg"),
    ([("a", "Host(`x.com`)", 0)], req("y.com"), None),
    ([], req(), None),
    # An indexed Host route and an unindexed longer rule interleave by priority.
    (
        [
            ("host", "Host(`x.com`) && Path(`/p`)", 0),
            ("long", "PathPrefix(`/p`) && Method(`GET`) && !Header(`X-A`, `b`)", 0),
        ],
        req("x.com", "/p"),
        "long",
    ),
    (
        [
            ("host", "Host(`x.com`) && Path(`/p`)", 100),
            ("long", "PathPrefix(`/p`) && Method(`GET`) && !Header(`X-A`, `b`)", 0),
        ],
        req("X.COM.:80", "/p"),
        "host",
    ),
    # Host(`*`) is not indexed and still competes on priority.
    ([("star", "Host(`*`)", 0), ("exact", "Host(`x.com`)", 0)], req("x.com"), "exact"),
    ([("star", "Host(`*`)", 50), ("exact", "Host(`x.com`)", 0)], req("x.com"), "star"),
]


@pytest.mark.parametrize("routes,request_,expected", ROUTE_SETS)
def test_muxer_priority(
    routes: list[tuple[str, str, int]], request_: RouteRequest, expected: str | None
) -> None:
    muxer = build_muxer(Route(n, compile_rule(r), p, payload=n) for n, r, p in routes)
    found = muxer.match(request_)
    assert (found.name if found else None) == expected
    assert muxer.match_linear(request_) is found
    if found is not None:
        assert found.payload == expected
