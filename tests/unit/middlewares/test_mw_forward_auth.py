"""forwardAuth: the auth request, reading the auth answer, and the Twisted helper that
performs deferred work (exercised without sockets)."""

from __future__ import annotations

import pytest
from mw_support import CLIENT, build, header, headers_named, make_ctx, runtime_of, settle
from twisted.internet import defer, task
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from wsgate.middlewares import (
    PASS,
    Answer,
    AuthFailure,
    AuthRequest,
    AuthResponse,
    BodyTooLarge,
    Defer,
    MiddlewareError,
    ReadBody,
    build_chain,
)
from wsgate.middlewares.base import Blocking, Sleep
from wsgate.middlewares.forward_auth_client import LimitedBody, resolve

ADDRESS = "http://auth.internal:9000/verify?app=1"


def forward(**config):
    return build({"forwardAuth": {"address": ADDRESS, **config}})


def ask(mw, ctx, answer):
    """Run the middleware against an auth server that answers ``answer``; return the
    decision and the auth request that was sent."""
    sent = []

    def auth(request):
        sent.append(request)
        return answer

    decision = settle(mw.on_request(ctx), auth=auth)
    return decision, (sent[0] if sent else None)


OK = AuthResponse(200, (("X-Auth-User", "alice"), ("X-Auth-Role", "admin"),
                        ("Set-Cookie", "session=abc; Path=/"),
                        ("Set-Cookie", "other=1")), b"")


# -- the auth request ----------------------------------------------------------------------------


def test_the_auth_request_describes_the_original_request():
    mw = forward(trustForwardHeader=False)
    ctx = make_ctx("/ws?room=1", websocket=True, host="chat.example",
                   headers=[("Origin", "https://app.example"), ("Cookie", "sid=1"),
                            ("X-Forwarded-Host", "spoofed"), ("Keep-Alive", "300")])
    decision, request = ask(mw, ctx, OK)
    assert decision is PASS
    assert isinstance(request, AuthRequest)
    assert request.method == "GET" and request.url == ADDRESS and request.body is None
    assert request.timeout == 30.0 and request.max_response_body == -1
    h = request.headers
    assert header(h, "Origin") == "https://app.example" and header(h, "Cookie") == "sid=1"
    assert header(h, "Sec-WebSocket-Key") == "dGhlIHNhbXBsZSBub25jZQ=="
    for hop in ("Connection", "Upgrade", "Keep-Alive", "Host"):
        assert header(h, hop) is None, hop
    assert header(h, "X-Forwarded-For") == CLIENT
    assert header(h, "X-Forwarded-Method") == "GET"
    assert header(h, "X-Forwarded-Proto") == "http"
    assert header(h, "X-Forwarded-Port") == "80"
    assert header(h, "X-Forwarded-Host") == "chat.example"
    assert header(h, "X-Forwarded-Uri") == "/ws?room=1"


def test_trusted_forward_headers_are_kept_and_the_client_appended():
    mw = forward(trustForwardHeader=True)
    ctx = make_ctx("/x", tls=True, host="a.example:8443",
                   headers=[("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-Proto", "wss"),
                            ("X-Forwarded-Host", "front.example")])
    _, request = ask(mw, ctx, OK)
    h = request.headers
    assert header(h, "X-Forwarded-For") == f"10.0.0.1, {CLIENT}"
    assert header(h, "X-Forwarded-Proto") == "wss"
    assert header(h, "X-Forwarded-Host") == "front.example"
    assert header(h, "X-Forwarded-Port") == "8443"


def test_unset_trust_is_the_legacy_behaviour():
    mw = forward()
    assert any("trustForwardHeader" in w for w in mw.warnings)
    ctx = make_ctx("/x", tls=True, headers=[("X-Forwarded-For", "10.0.0.1"),
                                            ("X-Forwarded-Prefix", "/api")])
    _, request = ask(mw, ctx, OK)
    h = request.headers
    assert headers_named(h, "X-Forwarded-For") == [CLIENT]  # overwritten
    assert header(h, "X-Forwarded-Proto") == "https"
    assert header(h, "X-Forwarded-Prefix") == "/api"  # others untouched
    assert header(h, "X-Forwarded-Port") is None


def test_auth_request_headers_filter():
    mw = forward(trustForwardHeader=True, authRequestHeaders=["Authorization", "Cookie"])
    ctx = make_ctx("/", headers=[("Authorization", "Bearer t"), ("Cookie", "a=1"),
                                 ("X-Other", "x"), ("X-Forwarded-Prefix", "/p")])
    _, request = ask(mw, ctx, OK)
    names = {n.lower() for n, _ in request.headers}
    assert {"authorization", "cookie", "x-forwarded-prefix", "x-forwarded-for"} <= names
    assert "x-other" not in names


def test_headers_named_in_connection_are_not_sent():
    mw = forward(trustForwardHeader=False)
    ctx = make_ctx("/", headers=[("Connection", "X-Secret"), ("X-Secret", "s")])
    _, request = ask(mw, ctx, OK)
    assert header(request.headers, "X-Secret") is None


def test_preserve_request_method():
    mw = forward(trustForwardHeader=False, preserveRequestMethod=True)
    _, request = ask(mw, make_ctx("/", method="DELETE"), OK)
    assert request.method == "DELETE"


def test_forward_body_reads_the_body_first():
    mw = forward(trustForwardHeader=False, forwardBody=True, maxBodySize=10)
    ctx = make_ctx("/", method="POST", body=b"payload")
    decision = mw.on_request(ctx)
    assert isinstance(decision, Defer) and decision.work == ReadBody(10)
    sent = []
    result = settle(decision, body=b"payload", auth=lambda r: sent.append(r) or OK)
    assert result is PASS and sent[0].body == b"payload" and ctx.body == b"payload"
    too_large = settle(forward(forwardBody=True, maxBodySize=3).on_request(
        make_ctx("/", method="POST", body=b"payload")), body=BodyTooLarge(3))
    assert isinstance(too_large, Answer) and too_large.status == 401
    # No body: straight to the auth server.
    assert isinstance(mw.on_request(make_ctx("/")).work, AuthRequest)


# -- the auth answer -----------------------------------------------------------------------------


def test_success_copies_the_listed_auth_headers_over_the_clients():
    mw = forward(trustForwardHeader=False, authResponseHeaders=["X-Auth-User"],
                 headerField="X-Auth-User")
    ctx = make_ctx("/", headers=[("X-Auth-User", "mallory"), ("x-auth-user", "eve")])
    decision, _ = ask(mw, ctx, OK)
    assert decision is PASS
    assert ctx.get_all("X-Auth-User") == ["alice"]
    assert not ctx.has("X-Auth-Role")
    assert ctx.user == "alice"


def test_success_with_a_header_regex():
    mw = forward(trustForwardHeader=False, authResponseHeadersRegex="^X-Auth-")
    ctx = make_ctx("/", headers=[("x-auth-stale", "1")])
    ask(mw, ctx, OK)
    assert not ctx.has("X-Auth-Stale")
    assert ctx.get("X-Auth-User") == "alice" and ctx.get("X-Auth-Role") == "admin"


def test_auth_cookies_are_added_to_the_response():
    rt = runtime_of({"fa": {"forwardAuth": {"address": ADDRESS, "trustForwardHeader": False,
                                            "addAuthCookiesToResponse": ["session"]}}}, ["fa"])
    chain = build_chain(("fa@file",), rt)
    ctx = make_ctx("/ws", websocket=True)
    assert settle(chain.on_request(ctx), auth=lambda r: OK) is PASS
    out = chain.on_response(ctx, 101, [("Set-Cookie", "session=backend"),
                                       ("Set-Cookie", "theme=dark"), ("Upgrade", "websocket"),
                                       ("Connection", "Upgrade")])
    assert headers_named(out, "Set-Cookie") == ["theme=dark", "session=abc; Path=/"]


@pytest.mark.parametrize("status", [401, 403, 302, 500, 199])
def test_a_refusal_is_relayed_to_the_client(status):
    mw = forward(trustForwardHeader=False)
    refusal = AuthResponse(status, (("WWW-Authenticate", "Bearer"), ("Connection", "close"),
                                    ("Content-Length", "6"), ("Location", "/login?next=x")),
                           b"denied")
    decision, _ = ask(mw, make_ctx("/ws", websocket=True), refusal)
    assert isinstance(decision, Answer) and decision.status == status
    assert decision.body == b"denied"
    assert header(decision.headers, "WWW-Authenticate") == "Bearer"
    assert header(decision.headers, "Connection") is None
    assert header(decision.headers, "Content-Length") is None
    assert header(decision.headers, "Location") == "http://auth.internal:9000/login?next=x"


def test_preserve_location_header():
    mw = forward(trustForwardHeader=False, preserveLocationHeader=True)
    decision, _ = ask(mw, make_ctx("/"), AuthResponse(302, (("Location", "/login"),), b""))
    assert header(decision.headers, "Location") == "/login"


def test_signin_url_on_401():
    mw = forward(trustForwardHeader=False, authSigninURL="https://sso.example/login")
    decision, _ = ask(mw, make_ctx("/"), AuthResponse(401, (), b"no"))
    assert isinstance(decision, Answer) and decision.status == 302
    assert header(decision.headers, "Location") == "https://sso.example/login"
    assert decision.body == b'<a href="https://sso.example/login">Found</a>.\n\n'
    refused, _ = ask(mw, make_ctx("/"), AuthResponse(403, (), b"no"))
    assert refused.status == 403


def test_auth_server_failures():
    mw = forward(trustForwardHeader=False)
    down, _ = ask(mw, make_ctx("/"), AuthFailure("connection refused"))
    assert isinstance(down, Answer) and down.status == 500 and down.body == b""
    gone, _ = ask(mw, make_ctx("/"), AuthFailure("cancelled", cancelled=True))
    assert gone.status == 499
    large, _ = ask(mw, make_ctx("/"), AuthResponse(200, (), b"", too_large=True))
    assert large.status == 401


def test_forward_auth_configuration_errors():
    for address in ("", "ftp://x", "http://", "http://h:port"):
        with pytest.raises(MiddlewareError) as info:
            build({"forwardAuth": {"address": address}})
        assert info.value.field == "forwardAuth.address"
    with pytest.raises(MiddlewareError) as info:
        forward(authResponseHeadersRegex="(")
    assert info.value.field == "forwardAuth.authResponseHeadersRegex"


# -- the Twisted helper --------------------------------------------------------------------------


class FakeAuthClient:
    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    def request(self, req):
        self.requests.append(req)
        return defer.succeed(self.answer)


def test_resolve_performs_every_kind_of_work():
    clock = task.Clock()
    steps = []
    decision = Defer(Sleep(0.5), lambda _: Defer(
        Blocking(lambda: "computed"), lambda got: steps.append(got) or Defer(
            ReadBody(100), lambda body: steps.append(body) or Defer(
                AuthRequest("GET", ADDRESS, (), None, 30.0, -1), lambda ans: Answer(ans.status)))))
    results = []
    d = resolve(decision, reactor=clock, auth_client=FakeAuthClient(AuthResponse(204, (), b"")),
                read_body=lambda limit: defer.succeed(b"x" * 3),
                run_blocking=lambda call: defer.succeed(call()))
    d.addCallback(results.append)
    assert results == []  # still sleeping
    clock.advance(0.5)
    assert steps == ["computed", b"xxx"]
    assert results == [Answer(204)]


def test_resolve_passes_through_final_decisions_and_fails_without_read_body():
    results = []
    resolve(PASS, reactor=task.Clock()).addCallback(results.append)
    assert results == [PASS]
    failures = []
    resolve(Defer(ReadBody(1), lambda _: PASS), reactor=task.Clock()).addErrback(failures.append)
    assert failures and "read_body" in str(failures[0].value)


def test_resolve_runs_a_whole_chain_with_forward_auth():
    rt = runtime_of({"fa": {"forwardAuth": {"address": ADDRESS, "trustForwardHeader": False}},
                     "h": {"headers": {"customRequestHeaders": {"X-After": "1"}}}}, ["fa", "h"])
    chain = build_chain(("fa@file", "h@file"), rt)
    ctx = make_ctx("/ws", websocket=True)
    client = FakeAuthClient(AuthResponse(200, (), b""))
    results = []
    resolve(chain.on_request(ctx), reactor=task.Clock(), auth_client=client).addCallback(
        results.append)
    assert results == [PASS]
    assert ctx.get("X-After") == "1" and len(client.requests) == 1


class FakeTransport:
    stopped = False

    def stopProducing(self):
        self.stopped = True


def test_limited_body_collects_and_stops_past_the_limit():
    done = defer.Deferred()
    got = []
    done.addCallback(got.append)
    body = LimitedBody(5, done)
    body.makeConnection(FakeTransport())
    body.dataReceived(b"abc")
    body.dataReceived(b"de")
    body.connectionLost(Failure(ResponseDone()))
    assert got == [(b"abcde", False)]

    done = defer.Deferred()
    got = []
    done.addCallback(got.append)
    transport = FakeTransport()
    body = LimitedBody(5, done)
    body.makeConnection(transport)
    body.dataReceived(b"abcdef")
    assert got == [(b"", True)] and transport.stopped
    body.connectionLost(Failure(ResponseDone()))  # no second result
    assert len(got) == 1

    failed = defer.Deferred()
    errors = []
    failed.addErrback(errors.append)
    body = LimitedBody(-1, failed)
    body.makeConnection(FakeTransport())
    body.connectionLost(Failure(ConnectionRefusedError()))
    assert errors
