"""The common interface: RequestContext, Answer, Chain and build_chain."""

from __future__ import annotations

import pytest
from mw_support import (
    CLIENT,
    FakeClock,
    build,
    dynamic,
    header,
    headers_named,
    make_ctx,
    runtime_of,
    settle,
)

from wsgate.config.runtime import build_runtime
from wsgate.http import parse_request_head
from wsgate.middlewares import (
    PASS,
    Answer,
    Chain,
    Defer,
    Middleware,
    MiddlewareError,
    RequestContext,
    Sleep,
    build_chain,
    build_middleware,
)

# -- RequestContext ----------------------------------------------------------------------------


def test_context_from_head_keeps_everything_the_data_path_needs():
    ctx = make_ctx("/ws?room=1", websocket=True, tls=True, headers=[("X-Token", "a")])
    assert ctx.method == "GET"
    assert ctx.target == "/ws?room=1"
    assert ctx.path == "/ws" and ctx.query == "room=1"
    assert ctx.host == "example.com"
    assert ctx.client_ip == CLIENT and ctx.tls is True
    assert ctx.is_upgrade is True
    assert ctx.entry_point == "web" and ctx.router == "r@file"
    assert ctx.get("x-token") == "a"
    assert not ctx.modified


def test_context_absolute_form_uses_the_authority_as_host():
    head = parse_request_head(b"GET http://other.example:8080/a?b HTTP/1.1\r\n"
                              b"Host: example.com\r\n\r\n")
    ctx = RequestContext.from_head(head, client_ip=CLIENT, tls=False)
    assert ctx.target == "/a?b"
    assert ctx.host == "other.example:8080"
    assert ctx.get("Host") == "other.example:8080"


def test_context_header_operations_follow_go_semantics():
    ctx = make_ctx("/", headers=[("X-A", "1"), ("x-a", "2"), ("X-B", "3")])
    assert ctx.get("X-A") == "1"
    assert ctx.get_all("x-a") == ["1", "2"]
    ctx.set("X-A", "9")  # one field, where the first one was
    assert [(n, v) for n, v in ctx.headers if n.lower() == "x-a"] == [("X-A", "9")]
    assert [n for n, _ in ctx.headers].index("X-A") == 1
    ctx.add("X-B", "4")
    assert ctx.get_all("X-B") == ["3", "4"]
    ctx.delete("x-b")
    assert not ctx.has("X-B")
    ctx.set("Host", "new.example")
    assert ctx.host == "new.example"
    assert ctx.modified


def test_context_to_head_rebuilds_a_forwardable_head():
    ctx = make_ctx("/a", websocket=True)
    ctx.set_target("/b?c=1")
    ctx.set("Origin", "https://allowed-origin.com")
    head = ctx.to_head()
    assert head.target == "/b?c=1"
    assert head.get("Origin") == "https://allowed-origin.com"
    assert head.is_upgrade


# -- Answer ------------------------------------------------------------------------------------


def test_answer_serializes_with_length_and_without_body_for_head():
    answer = Answer(401, (("WWW-Authenticate", 'Basic realm="traefik"'),
                          ("Content-Length", "999")), b"401 Unauthorized\n")
    wire = answer.serialize()
    assert wire.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"Content-Length: 17\r\n" in wire and b"999" not in wire
    assert wire.endswith(b"\r\n\r\n401 Unauthorized\n")
    assert answer.serialize(head_request=True).endswith(b"Content-Length: 17\r\n\r\n")
    assert b"Connection: close\r\n" in answer.serialize(close=True)
    assert Answer(200).serialize().endswith(b"Content-Length: 0\r\n\r\n")


# -- Chain -------------------------------------------------------------------------------------


class Recorder(Middleware):
    wants_response = True
    wants_close = True

    def __init__(self, name, log, decision=PASS):
        super().__init__(name)
        self.log = log
        self.decision = decision

    def on_request(self, ctx):
        self.log.append(f"req {self.name}")
        return self.decision

    def on_response(self, ctx, status, headers):
        self.log.append(f"resp {self.name} {status}")
        return [*headers, ("X-Seen", self.name)]

    def on_close(self, ctx):
        self.log.append(f"close {self.name}")


def test_chain_runs_requests_in_order_and_responses_innermost_first():
    log = []
    chain = Chain([Recorder("a", log), Recorder("b", log), Recorder("c", log)])
    ctx = make_ctx("/")
    assert chain.on_request(ctx) is PASS
    headers = chain.on_response(ctx, 200, [("Content-Type", "text/plain")])
    chain.on_close(ctx)
    chain.on_close(ctx)  # once only
    assert log == ["req a", "req b", "req c", "resp c 200", "resp b 200", "resp a 200",
                   "close a", "close b", "close c"]
    assert headers_named(headers, "X-Seen") == ["c", "b", "a"]


def test_an_answer_goes_back_through_the_outer_middlewares_only():
    log = []
    answer = Answer(403, (("Content-Type", "text/plain"),), b"Forbidden")
    chain = Chain([Recorder("a", log), Recorder("b", log, answer), Recorder("c", log)])
    ctx = make_ctx("/")
    result = chain.on_request(ctx)
    assert isinstance(result, Answer) and result.status == 403
    assert headers_named(result.headers, "X-Seen") == ["a"]
    assert log == ["req a", "req b", "resp a 403"]
    chain.on_close(ctx)
    assert log[-2:] == ["close a", "close b"]  # c never ran


def test_a_deferred_decision_resumes_the_chain_where_it_stopped():
    log = []

    class Waits(Recorder):
        def on_request(self, ctx):
            log.append("req wait")
            return Defer(Sleep(0.25), lambda _: PASS)

    chain = Chain([Recorder("a", log), Waits("w", log), Recorder("c", log)])
    ctx = make_ctx("/")
    decision = chain.on_request(ctx)
    assert isinstance(decision, Defer) and decision.work == Sleep(0.25)
    assert log == ["req a", "req wait"]
    slept = []
    assert settle(decision, slept=slept) is PASS
    assert slept == [0.25]
    assert log == ["req a", "req wait", "req c"]


def test_a_deferred_answer_also_goes_through_outer_middlewares():
    log = []

    class DefersThenDenies(Recorder):
        def on_request(self, ctx):
            return Defer(Sleep(0), lambda _: Answer(401))

    chain = Chain([Recorder("a", log), DefersThenDenies("d", log), Recorder("c", log)])
    result = settle(chain.on_request(make_ctx("/")))
    assert isinstance(result, Answer) and result.status == 401
    assert headers_named(result.headers, "X-Seen") == ["a"]


def test_middlewares_cannot_change_framing_or_the_upgrade_of_a_101():
    class Meddler(Middleware):
        wants_response = True

        def on_response(self, ctx, status, headers):
            return [("Connection", "close"), ("Upgrade", "h2c"), ("Content-Length", "5"),
                    ("X-Added", "1")]

    chain = Chain([Meddler("m")])
    ctx = make_ctx("/ws", websocket=True)
    assert chain.on_request(ctx) is PASS
    original = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    out = chain.on_response(ctx, 101, original)
    assert header(out, "X-Added") == "1"
    assert headers_named(out, "Upgrade") == ["websocket"]
    assert headers_named(out, "Connection") == ["Upgrade"]
    assert header(out, "Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert header(out, "Content-Length") is None
    plain = chain.on_response(ctx, 200, [("Content-Length", "12")])
    assert headers_named(plain, "Content-Length") == ["12"]
    assert header(plain, "Upgrade") == "h2c"  # only a 101's upgrade is protected


def test_on_response_skips_middlewares_the_request_did_not_pass():
    log = []
    chain = Chain([Recorder("a", log), Recorder("b", log, Answer(429)), Recorder("c", log)])
    ctx = make_ctx("/")
    chain.on_request(ctx)
    log.clear()
    chain.on_response(ctx, 502, [])
    assert log == ["resp a 502"]


# -- build_chain ---------------------------------------------------------------------------------


def test_build_chain_expands_chains_recursively_in_place():
    rt = runtime_of({
        "a": {"addPrefix": {"prefix": "/a"}},
        "b": {"chain": {"middlewares": ["c", "d"]}},
        "c": {"stripPrefix": {"prefixes": ["/x"]}},
        "d": {"chain": {"middlewares": ["e"]}},
        "e": {"headers": {"customRequestHeaders": {"X-E": "1"}}},
    }, ["a", "b"])
    [route] = rt.routes_for("web", tls=False)
    chain = build_chain(route.middlewares, rt, router=route.router)
    assert chain.names == ("a@file", "c@file", "e@file")
    assert [m.kind for m in chain] == ["addPrefix", "stripPrefix", "headers"]


def test_build_chain_names_the_middleware_and_field_at_fault():
    rt = runtime_of({"bad": {"redirectRegex": {"regex": "(unclosed", "replacement": "x"}},
                     "wrap": {"chain": {"middlewares": ["bad"]}}}, ["wrap"])
    with pytest.raises(MiddlewareError) as info:
        build_chain(("wrap@file",), rt)
    assert info.value.middleware == "bad@file"
    assert info.value.field == "redirectRegex.regex"
    assert "missing closing )" in str(info.value)


def test_build_chain_refuses_unknown_and_disabled_middlewares():
    rt = runtime_of({"loop1": {"chain": {"middlewares": ["loop2"]}},
                     "loop2": {"chain": {"middlewares": ["loop1"]}}}, [])
    with pytest.raises(MiddlewareError, match="does not exist"):
        build_chain(("nope@file",), rt)
    with pytest.raises(MiddlewareError, match="disabled"):
        build_chain(("loop1@file",), rt)


@pytest.mark.parametrize("section,field", [
    ({"digestAuth": {"users": ["u:traefik:h"]}}, "digestAuth"),
    ({"passTLSClientCert": {"pem": True}}, "passTLSClientCert"),
    ({"grpcWeb": {"allowOrigins": ["*"]}}, "grpcWeb"),
])
def test_kinds_wsgate_does_not_run_are_refused_not_skipped(section, field):
    with pytest.raises(MiddlewareError) as info:
        build(section)
    assert info.value.field == field


def test_state_is_per_router_and_a_cache_keeps_it_across_reloads():
    middlewares = {"limit": {"inFlightReq": {"amount": 1}},
                   "hdr": {"headers": {"customRequestHeaders": {"X": "1"}}}}
    rt = runtime_of(middlewares, ["limit", "hdr"])
    one = build_chain(("limit@file",), rt, router="r1")
    two = build_chain(("limit@file",), rt, router="r2")
    assert one.middlewares[0] is not two.middlewares[0]
    cache = {}
    first = build_chain(("limit@file", "hdr@file"), rt, router="r1", cache=cache)
    again = build_chain(("limit@file", "hdr@file"), build_runtime(
        {"file": dynamic(middlewares, routers={"r": {"rule": "Path(`/`)", "service": "s",
                                                    "middlewares": ["limit"]}},
                         services={"s": {"loadBalancer": {"servers": [
                             {"url": "http://127.0.0.1:9"}]}}})},
        entry_points=["web"]), router="r1", cache=cache)
    assert again.middlewares[0] is first.middlewares[0]  # stateful, unchanged: kept
    assert again.middlewares[1] is not first.middlewares[1]  # stateless: rebuilt
    changed = runtime_of({**middlewares, "limit": {"inFlightReq": {"amount": 2}}}, ["limit"])
    rebuilt = build_chain(("limit@file",), changed, router="r1", cache=cache)
    assert rebuilt.middlewares[0] is not first.middlewares[0]


def test_build_middleware_passes_the_clock_to_time_based_kinds():
    clock = FakeClock()
    limiter = build({"rateLimit": {"average": 1}}, clock=clock)
    assert limiter.clock is clock


def test_build_middleware_rejects_a_chain_section():
    config = dynamic({"c": {"chain": {"middlewares": ["x"]}}}).http.middlewares["c"]
    with pytest.raises(MiddlewareError, match="build_chain"):
        build_middleware("c@file", config)


def test_chain_find_and_warnings():
    rt = runtime_of({"w": {"ipWhiteList": {"sourceRange": ["10.0.0.0/8"]}},
                     "r": {"retry": {"attempts": 3}}}, ["w", "r"])
    chain = build_chain(("w@file", "r@file"), rt)
    from wsgate.middlewares.retry import RetryMiddleware
    assert [m.name for m in chain.find(RetryMiddleware)] == ["r@file"]
    assert any("ipWhiteList is deprecated" in w for w in chain.warnings)
    assert len(chain) == 2 and [m.kind for m in chain] == ["ipWhiteList", "retry"]
