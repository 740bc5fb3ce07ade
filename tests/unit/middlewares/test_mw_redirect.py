"""redirectScheme and redirectRegex, including what a WebSocket handshake gets."""

from __future__ import annotations

import pytest
from mw_support import build, header, make_ctx

from wsgate.middlewares import PASS, Answer, MiddlewareError
from wsgate.middlewares.redirect import parse_go_url


def decide(section, target="/a", **kw):
    ctx = make_ctx(target, **kw)
    return build(section).on_request(ctx)


def location(decision):
    assert isinstance(decision, Answer), decision
    return decision.status, header(decision.headers, "Location")


HTTPS = {"redirectScheme": {"scheme": "https"}}
HTTPS_PERMANENT = {"redirectScheme": {"scheme": "https", "permanent": True}}


@pytest.mark.parametrize("method,permanent,status", [
    ("GET", False, 302), ("GET", True, 301), ("POST", False, 307), ("POST", True, 308),
    ("HEAD", False, 307),
])
def test_redirect_status_depends_on_method_and_permanent(method, permanent, status):
    section = {"redirectScheme": {"scheme": "https", "permanent": permanent}}
    decision = decide(section, "/a?b=1", method=method)
    assert location(decision) == (status, "https://example.com/a?b=1")
    assert isinstance(decision, Answer)
    assert decision.body == {301: b"Moved Permanently", 302: b"Found",
                             307: b"Temporary Redirect", 308: b"Permanent Redirect"}[status]


def test_a_websocket_handshake_gets_a_redirect_it_cannot_follow():
    decision = decide(HTTPS_PERMANENT, "/ws?x=1", websocket=True,
                      headers=[("X-Forwarded-Proto", "ws")])
    assert location(decision) == (301, "https://example.com/ws?x=1")


@pytest.mark.parametrize("xfp", ["https", "wss", "HTTPS"])
def test_already_secure_by_forwarded_proto_passes(xfp):
    assert decide(HTTPS, headers=[("X-Forwarded-Proto", xfp)]) is PASS


def test_forwarded_proto_wins_over_the_connection():
    # The entryPoint always sets X-Forwarded-Proto; ws means plain HTTP, even behind TLS
    # termination upstream of wsgate.
    assert location(decide(HTTPS, tls=True, headers=[("X-Forwarded-Proto", "ws")]))[0] == 302
    assert decide(HTTPS, tls=True) is PASS
    # An unknown value is ignored.
    assert decide(HTTPS, tls=True, headers=[("X-Forwarded-Proto", "spdy")]) is PASS


@pytest.mark.parametrize("host,expected", [
    ("example.com:80", "https://example.com/a"),
    ("example.com:8080", "https://example.com/a"),  # the port goes with the scheme
    ("[::1]:8000", "https://[::1]/a"),
    ("10.0.0.1", "https://10.0.0.1/a"),
])
def test_redirect_scheme_hosts(host, expected):
    assert location(decide(HTTPS, host=host)) == (302, expected)


def test_redirect_scheme_with_a_port():
    section = {"redirectScheme": {"scheme": "https", "port": "8443"}}
    assert location(decide(section, host="example.com:8000")) == \
        (302, "https://example.com:8443/a")
    assert decide(section, host="example.com:8443", tls=True) is PASS
    default_port = {"redirectScheme": {"scheme": "https", "port": "443"}}
    assert location(decide(default_port, host="example.com:8000")) == \
        (302, "https://example.com/a")


def test_redirect_to_http():
    section = {"redirectScheme": {"scheme": "http", "port": "80"}}
    assert location(decide(section, tls=True, host="example.com:443")) == \
        (302, "http://example.com/a")
    assert decide(section, host="example.com:80") is PASS


def test_redirect_scheme_needs_a_scheme():
    with pytest.raises(MiddlewareError) as info:
        build({"redirectScheme": {"port": "443"}})
    assert info.value.field == "redirectScheme.scheme"


# -- redirectRegex -----------------------------------------------------------------------------

LOCALHOST = {"redirectRegex": {"regex": "^http://localhost/(.*)",
                               "replacement": "http://mydomain/${1}"}}


def test_redirect_regex():
    assert location(decide(LOCALHOST, "/foo?b=1", host="localhost")) == \
        (302, "http://mydomain/foo?b=1")
    assert location(decide(LOCALHOST, "/foo", host="localhost", method="PUT")) == \
        (307, "http://mydomain/foo")
    assert decide(LOCALHOST, "/foo", host="other") is PASS


def test_redirect_regex_permanent_and_tls_scheme():
    section = {"redirectRegex": {"regex": "^https://(.*)$",
                                 "replacement": "https://www.$1", "permanent": True}}
    assert location(decide(section, "/x", tls=True)) == (301, "https://www.example.com/x")
    # The scheme comes from the connection only, not X-Forwarded-Proto.
    assert decide(section, "/x", headers=[("X-Forwarded-Proto", "https")]) is PASS


def test_redirect_regex_to_the_same_url_passes():
    assert decide({"redirectRegex": {"regex": "^(.*)$", "replacement": "$1"}}) is PASS


def test_redirect_regex_to_an_unparsable_url_is_500():
    section = {"redirectRegex": {"regex": "^https?://([^/]+)/(.*)",
                                 "replacement": "https://$1:port/$2"}}
    decision = decide(section)
    assert isinstance(decision, Answer) and decision.status == 500


def test_redirect_regex_errors():
    with pytest.raises(MiddlewareError) as info:
        build({"redirectRegex": {"regex": "(?=x)", "replacement": "/"}})
    assert info.value.field == "redirectRegex.regex"


def test_parse_go_url():
    assert parse_go_url("https://a.example/x y?q=1 2#f") == "https://a.example/x%20y?q=1 2#f"
    assert parse_go_url("https://a.example/ok") == "https://a.example/ok"
    assert parse_go_url("/relative") == "/relative"
    assert parse_go_url("https://a.example/%zz") is None
    assert parse_go_url("https://a.example:x/") is None
    assert parse_go_url("https://a.example/\n") is None
