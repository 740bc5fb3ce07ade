"""The decision/state parts the data path consults around the service: retry, buffering,
compress, errors, circuitBreaker (with its expression language and rolling metrics), and the
small kinds encodedCharacters and contentType."""

from __future__ import annotations

import pytest
from mw_support import FakeClock, build, make_ctx, runtime_of

from wsgate.middlewares import PASS, Answer, MiddlewareError, build_chain
from wsgate.middlewares.circuit_breaker import RatioController
from wsgate.middlewares.compress import CompressMiddleware, parse_media_type
from wsgate.middlewares.gocompat import canonical_header_key, format_duration, status_text
from wsgate.middlewares.predicate import Function, PredicateError, compile_predicate
from wsgate.middlewares.rolling import LatencyHistogram, RollingCounter, RoundTripMetrics
from wsgate.middlewares.status_ranges import parse_status_ranges

# -- retry ---------------------------------------------------------------------------------------


def test_retry_configuration():
    with pytest.raises(MiddlewareError) as info:
        build({"retry": {"attempts": 0}})
    assert info.value.field == "retry.attempts"
    with pytest.raises(MiddlewareError) as info:
        build({"retry": {"attempts": 2, "disableRetryOnNetworkError": True}})
    assert info.value.field == "retry.status"
    with pytest.raises(MiddlewareError) as info:
        build({"retry": {"attempts": 2, "status": ["500-5x9"]}})
    assert info.value.field == "retry.status[0]"
    mw = build({"retry": {"attempts": 3}})
    assert mw.on_request(make_ctx("/")) is PASS
    assert mw.max_request_body_bytes == 2097152


def test_retry_on_network_errors_only_before_the_request_was_sent():
    mw = build({"retry": {"attempts": 3}})
    assert mw.should_retry(attempt=1, method="POST", elapsed=0, network_error=True)
    assert mw.should_retry(attempt=2, method="GET", elapsed=0, network_error=True)
    assert not mw.should_retry(attempt=3, method="GET", elapsed=0, network_error=True)
    assert not mw.should_retry(attempt=1, method="GET", elapsed=0, network_error=True,
                               request_sent=True)
    assert not mw.should_retry(attempt=1, method="GET", elapsed=0, status=503)
    off = build({"retry": {"attempts": 3, "status": ["503"],
                           "disableRetryOnNetworkError": True}})
    assert not off.should_retry(attempt=1, method="GET", elapsed=0, network_error=True)


def test_retry_on_status_for_idempotent_methods():
    mw = build({"retry": {"attempts": 3, "status": ["500-502", "504"], "timeout": "2s"}})
    assert mw.should_retry(attempt=1, method="GET", elapsed=0, status=502)
    assert mw.should_retry(attempt=1, method="PUT", elapsed=0, status=504)
    assert not mw.should_retry(attempt=1, method="GET", elapsed=0, status=503)
    assert not mw.should_retry(attempt=1, method="POST", elapsed=0, status=500)
    assert not mw.should_retry(attempt=1, method="GET", elapsed=2.0, status=500)
    assert not mw.should_retry(attempt=1, method="GET", elapsed=0, status=500,
                               body_replayable=False)
    assert mw.retries_status_for("GET") and not mw.retries_status_for("PATCH")
    everything = build({"retry": {"attempts": 2, "status": ["100-599"],
                                  "retryNonIdempotentMethod": True}})
    assert everything.should_retry(attempt=1, method="POST", elapsed=0, status=500)
    # An upgraded connection is final.
    assert not everything.should_retry(attempt=1, method="GET", elapsed=0, status=101)


def test_retry_backoff_schedule():
    mw = build({"retry": {"attempts": 4, "initialInterval": "100ms"}})
    middle = mw.backoff(rng=lambda: 0.5)
    assert [round(next(middle), 4) for _ in range(4)] == [0.1, 0.126, 0.1587, 0.2]
    low = mw.backoff(rng=lambda: 0.0)
    assert [round(next(low), 4) for _ in range(2)] == [0.05, 0.063]
    high = mw.backoff(rng=lambda: 1.0)
    assert round(next(high), 4) == 0.15
    immediate = build({"retry": {"attempts": 4}}).backoff()
    assert [next(immediate) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_status_ranges():
    ranges = parse_status_ranges("m", "f", ["404,418", "500-599", " 302 "])
    assert all(ranges.contains(c) for c in (404, 418, 500, 599, 302))
    assert not any(ranges.contains(c) for c in (403, 499, 600))
    assert not parse_status_ranges("m", "f", [])
    with pytest.raises(MiddlewareError) as info:
        parse_status_ranges("m", "errors.status", ["500", "abc"])
    assert info.value.field == "errors.status[1]"


# -- buffering -----------------------------------------------------------------------------------


def test_buffering_refuses_a_declared_body_over_the_limit():
    mw = build({"buffering": {"maxRequestBodyBytes": 10}})
    assert mw.on_request(make_ctx("/", method="POST", body=b"x" * 10)) is PASS
    too_large = mw.on_request(make_ctx("/", method="POST", body=b"x" * 11))
    assert isinstance(too_large, Answer) and too_large.status == 413
    assert too_large.body == b"Request Entity Too Large"
    assert build({"buffering": {}}).on_request(make_ctx("/", body=b"x" * 10**6)) is PASS
    assert mw.mem_request_body_bytes == 1048576


def test_buffering_retry_expression():
    mw = build({"buffering": {"retryExpression": "IsNetworkError() && Attempts() < 2"}})
    assert mw.should_retry(method="GET", attempt=1, status=502)
    assert not mw.should_retry(method="GET", attempt=2, status=502)
    assert not mw.should_retry(method="GET", attempt=1, status=500)
    by_method = build({"buffering": {"retryExpression":
                                     'RequestMethod() == "GET" && ResponseCode() >= 500'}})
    assert by_method.should_retry(method="GET", attempt=1, status=503)
    assert not by_method.should_retry(method="POST", attempt=1, status=503)
    assert not by_method.should_retry(method="GET", attempt=11, status=503)  # oxy's cap
    assert not build({"buffering": {}}).should_retry(method="GET", attempt=1, status=502)
    with pytest.raises(MiddlewareError) as info:
        build({"buffering": {"retryExpression": "Attempts() < 2.5"}})
    assert info.value.field == "buffering.retryExpression"


# -- compress ------------------------------------------------------------------------------------

ALL = {"gzip", "br", "zstd"}


def compressor(available=ALL, **config):
    from wsgate.config.dynamic import Compress
    defaults = {}
    for key, attr in (("encodings", "encodings"), ("defaultEncoding", "default_encoding"),
                      ("minResponseBodyBytes", "min_response_body_bytes"),
                      ("excludedContentTypes", "excluded_content_types"),
                      ("includedContentTypes", "included_content_types")):
        if key in config:
            value = config[key]
            defaults[attr] = tuple(value) if isinstance(value, list) else value
    return CompressMiddleware("c@file", Compress(**defaults), available=set(available))


@pytest.mark.parametrize("accept,expected", [
    (["gzip"], "gzip"), (["br, gzip"], "gzip"), (["gzip, br"], "gzip"),
    (["zstd;q=0.5, br;q=0.9"], "br"), (["gzip;q=0, br"], "br"), (["*"], "gzip"),
    ([""], "identity"), (["deflate"], "not_acceptable"), (["identity, gzip"], "gzip"),
    (["identity;q=1, gzip;q=0.5"], "identity"), (["gzip", "zstd"], "gzip"),
])
def test_compress_negotiation(accept, expected):
    assert compressor().negotiate(accept) == expected


def test_compress_request_side_choice():
    c = compressor(defaultEncoding="br")
    assert c.encoding_for(make_ctx("/", headers=[("Accept-Encoding", "gzip")])) == "gzip"
    assert c.encoding_for(make_ctx("/")) == "br"  # no Accept-Encoding: the default
    assert c.encoding_for(make_ctx("/", headers=[("Accept-Encoding", "*")])) == "br"
    assert c.encoding_for(make_ctx("/", method="HEAD",
                                   headers=[("Accept-Encoding", "gzip")])) is None
    grpc = make_ctx("/", method="POST", headers=[("Accept-Encoding", "gzip"),
                                                 ("Content-Type", "application/grpc")])
    assert c.encoding_for(grpc) is None
    assert compressor().encoding_for(make_ctx("/")) is None
    assert c.encoding_for(make_ctx("/", headers=[("Accept-Encoding", "identity")])) is None


def test_compress_response_side_choice():
    c = compressor()
    text = [("Content-Type", "text/html; charset=utf-8")]
    assert c.compresses(200, text, 4096)
    assert c.compresses(200, text, None)
    assert not c.compresses(200, text, 100)  # under minResponseBodyBytes (1024)
    assert not c.compresses(101, [("Upgrade", "websocket")], None)  # never a WebSocket
    assert not c.compresses(204, [], None) and not c.compresses(304, text, 4096)
    assert not c.compresses(200, [*text, ("Content-Encoding", "br")], 4096)
    assert not c.compresses(200, [("Content-Type", "application/grpc")], 4096)
    assert not c.compresses(200, [("Content-Type", "nonsense")], 4096)
    only_json = compressor(includedContentTypes=["application/json"])
    assert only_json.compresses(200, [("Content-Type", "application/json")], 4096)
    assert not only_json.compresses(200, text, 4096)
    no_events = compressor(excludedContentTypes=["text/event-stream"], minResponseBodyBytes=10)
    assert not no_events.compresses(200, [("Content-Type", "text/event-stream")], 4096)
    assert no_events.compresses(200, text, 10)


def test_compress_configuration():
    with pytest.raises(MiddlewareError) as info:
        compressor(encodings=["gzip", "deflate"])
    assert info.value.field == "compress.encodings[1]"
    with pytest.raises(MiddlewareError) as info:
        compressor(encodings=["gzip"], defaultEncoding="br")
    assert info.value.field == "compress.defaultEncoding"
    with pytest.raises(MiddlewareError) as info:
        compressor(excludedContentTypes=["notatype"])
    assert info.value.field == "compress.excludedContentTypes[0]"
    with pytest.raises(MiddlewareError, match="mutually exclusive"):
        compressor(excludedContentTypes=["a/b"], includedContentTypes=["c/d"])
    with pytest.raises(MiddlewareError, match="none of the encodings"):
        compressor(available={"gzip"}, encodings=["br"])
    partial = compressor(available={"gzip"})
    assert partial.encodings == ["gzip"]
    assert any("brotli" in w for w in partial.warnings)
    assert partial.negotiate(["br, gzip;q=0.1"]) == "gzip"
    assert parse_media_type('Text/HTML; Charset="utf-8"') == ("text/html", {"charset": "utf-8"})


# -- errors --------------------------------------------------------------------------------------


def test_error_pages():
    rt = runtime_of({"e": {"errors": {"status": ["500-599", "404"], "service": "errors-svc",
                                      "query": "/{status}.html?from={originalStatus}&u={url}",
                                      "statusRewrites": {"502-504": 500}}}}, ["e"])
    [page] = build_chain(("e@file",), rt)
    assert page.service == "errors-svc@file"
    assert page.catches(503) and page.catches(404) and not page.catches(403)
    assert not page.catches(101)
    assert page.page_status(503) == 500 and page.page_status(501) == 501
    ctx = make_ctx("/a%20b?x=1", headers=[("Accept", "text/html"), ("Cookie", "c=1")],
                   host="shop.example")
    method, target, headers = page.page_request(ctx, 503)
    assert method == "GET"
    assert target == "/500.html?from=503&u=http%3A%2F%2Fshop.example%2Fa%2520b%3Fx%3D1"
    assert headers[0] == ("Host", "shop.example")
    assert ("Cookie", "c=1") in headers


def test_error_pages_request_headers_and_default_query():
    page = build({"errors": {"status": ["500"], "service": "s",
                             "errorRequestHeaders": ["Accept"]}})
    ctx = make_ctx("/", headers=[("Accept", "text/html"), ("Cookie", "c=1")])
    _, target, headers = page.page_request(ctx, 500)
    assert target == "/"
    assert headers == [("Host", "example.com"), ("Accept", "text/html")]
    assert page.on_request(ctx) is PASS


# -- circuitBreaker ------------------------------------------------------------------------------


def breaker(expression, clock, **config):
    return build({"circuitBreaker": {"expression": expression, **config}}, clock=clock)


def serve(mw, clock, status, seconds=0.01):
    ctx = make_ctx("/")
    decision = mw.on_request(ctx)
    if decision is not PASS:
        return decision
    clock.advance(seconds)
    mw.on_response(ctx, status, [])
    return PASS


def test_circuit_breaker_trips_falls_back_and_recovers():
    clock = FakeClock()
    mw = breaker("NetworkErrorRatio() > 0.5", clock, checkPeriod="1s",
                 fallbackDuration="10s", recoveryDuration="10s")
    assert serve(mw, clock, 200) is PASS
    assert serve(mw, clock, 502) is PASS and mw.state == "standby"  # checked at most 1/s
    clock.advance(1)
    assert serve(mw, clock, 504) is PASS
    assert mw.state == "tripped"
    fallback = serve(mw, clock, 200)
    assert isinstance(fallback, Answer) and fallback.status == 503
    assert fallback.body == b"Service Unavailable"
    clock.advance(10)
    # Recovering: a share growing from 0 to 1/2 of the requests goes through.
    first = serve(mw, clock, 200)
    assert mw.state == "recovering" and isinstance(first, Answer)
    clock.advance(5)  # target ratio 0.25
    passed = sum(serve(mw, clock, 200, 0) is PASS for _ in range(100))
    assert 20 <= passed <= 30
    clock.advance(5.1)
    assert serve(mw, clock, 200) is PASS and mw.state == "standby"


def test_circuit_breaker_trips_again_while_recovering():
    clock = FakeClock()
    mw = breaker("ResponseCodeRatio(500, 600, 0, 600) > 0.5", clock, responseCode=429)
    clock.advance(1)
    serve(mw, clock, 500)
    assert mw.state == "tripped"
    assert serve(mw, clock, 200).status == 429
    clock.advance(10)
    assert isinstance(serve(mw, clock, 200, 0), Answer)  # recovering starts at ratio 0
    assert mw.state == "recovering"
    clock.advance(9)
    results = [serve(mw, clock, 500, 0) for _ in range(10)]
    first = results.index(PASS)  # let through, failed: the breaker trips again
    assert mw.state == "tripped"
    assert all(isinstance(r, Answer) for r in results[first + 1:])


def test_circuit_breaker_latency_and_request_threshold():
    clock = FakeClock()
    mw = breaker("RequestThreshold() >= 5 && LatencyAtQuantileMS(50.0) > 100", clock)
    for _ in range(4):
        clock.advance(0.2)
        serve(mw, clock, 200, 0.5)
    assert mw.state == "standby"
    clock.advance(0.2)
    serve(mw, clock, 200, 0.5)
    assert mw.state == "tripped"


def test_circuit_breaker_counts_the_handshake_of_a_websocket_not_its_life():
    clock = FakeClock()
    mw = breaker("LatencyAtQuantileMS(50.0) > 100", clock)
    ctx = make_ctx("/ws", websocket=True)
    assert mw.on_request(ctx) is PASS
    clock.advance(0.02)
    mw.on_response(ctx, 101, [("Upgrade", "websocket")])
    assert mw.metrics.latency_at_quantile_ms(50.0) == 20
    clock.advance(3600)  # the session lasts an hour: nothing more is recorded
    assert mw.metrics.total_count() == 0  # (and the window has moved on)


def test_circuit_breaker_configuration_errors():
    clock = FakeClock()
    for expression in ("", "NetworkErrorRatio()", "Foo() > 1", "NetworkErrorRatio() > ",
                       "!IsNetworkError()", "LatencyAtQuantileMS(50.0) > 1.5",
                       "ResponseCodeRatio(500, 600, 0) > 0.5", "0.5 < NetworkErrorRatio()",
                       "(NetworkErrorRatio() > 0.5", "NetworkErrorRatio() > 0.5 junk"):
        with pytest.raises(MiddlewareError) as info:
            breaker(expression, clock)
        assert info.value.field == "circuitBreaker.expression", expression
    with pytest.raises(MiddlewareError) as info:
        breaker("NetworkErrorRatio() > 0.5", clock, responseCode=0)
    assert info.value.field == "circuitBreaker.responseCode"
    # Lenient where oxy is strict: an integer where a decimal is wanted.
    assert breaker("NetworkErrorRatio() > 1 || LatencyAtQuantileMS(50) > 100", clock)


def test_predicate_language():
    functions = {"N": Function((), "int", lambda env: env["n"]),
                 "S": Function((), "string", lambda env: env["s"]),
                 "B": Function((), "bool", lambda env: env["b"]),
                 "Add": Function(("int", "float"), "float", lambda env, a, b: a + b)}
    check = compile_predicate('(N() > 1 && S() == "a\\"b") || B() || Add(1, 0.5) >= 2',
                              functions)
    assert check({"n": 2, "s": 'a"b', "b": False})
    assert not check({"n": 1, "s": 'a"b', "b": False})
    assert check({"n": 0, "s": "", "b": True})
    assert compile_predicate("S() != `raw\\n`", functions)({"s": "x"})
    with pytest.raises(PredicateError) as info:
        compile_predicate("N() > 1 &&", functions)
    assert info.value.position == 10
    with pytest.raises(PredicateError, match="cannot be compared"):
        compile_predicate("B() == 1", functions)
    with pytest.raises(PredicateError, match="only be compared with == or !="):
        compile_predicate('S() < "a"', functions)


def test_ratio_controller():
    rc = RatioController(start=0.0, duration=10.0)
    assert not rc.allow(0.0)
    allowed = sum(rc.allow(10.0) for _ in range(1000))
    assert 450 < allowed < 550


def test_rolling_metrics():
    clock = FakeClock(100.0)
    counter = RollingCounter(clock)
    counter.inc()
    clock.advance(5)
    counter.inc(2)
    assert counter.count() == 3
    clock.advance(5)
    assert counter.count() == 2  # the first second left the 10 s window
    hist = LatencyHistogram(clock)
    for us in (100, 200, 300, 400, 100_000):
        hist.record(us)
    assert hist.quantile(50.0) == 301  # the top of 300's bucket, as HDR answers
    assert 99_000 <= hist.quantile(100.0) <= 101_000  # two significant digits
    assert LatencyHistogram(clock).quantile(50.0) == 0
    clock.advance(61)
    assert hist.quantile(50.0) == 0
    metrics = RoundTripMetrics(clock)
    for status in (200, 502, 504, 404):
        metrics.record(status, 0.001)
    assert metrics.network_error_ratio() == 0.5
    assert metrics.response_code_ratio(500, 600, 0, 600) == 0.5
    assert metrics.response_code_ratio(400, 500, 600, 700) == 0.0
    metrics.reset()
    assert metrics.total_count() == 0 and metrics.network_error_ratio() == 0.0


# -- small kinds and Go facts --------------------------------------------------------------------


@pytest.mark.parametrize("target,refused", [
    ("/a/b", False), ("/a%2Fb", True), ("/a%2fb", True), ("/a%5Cb", True), ("/a%00", True),
    ("/a%3B", True), ("/a%25", True), ("/a%3F", True), ("/a%23", True), ("/a%20b", False),
])
def test_encoded_characters_defaults(target, refused):
    mw = build({"encodedCharacters": {}})
    decision = mw.on_request(make_ctx(target))
    if refused:
        assert isinstance(decision, Answer) and decision.status == 400 and decision.body == b""
    else:
        assert decision is PASS


def test_encoded_characters_allowances():
    mw = build({"encodedCharacters": {"allowEncodedSlash": True, "allowEncodedPercent": True}})
    assert mw.on_request(make_ctx("/a%2Fb%25")) is PASS
    assert isinstance(mw.on_request(make_ctx("/a%3F")), Answer)


def test_content_type_passes():
    mw = build({"contentType": {"autoDetect": False}})
    assert mw.on_request(make_ctx("/")) is PASS
    assert mw.warnings


def test_go_facts():
    assert status_text(418) == "I'm a teapot" and status_text(299) == ""
    assert canonical_header_key("x-auth-USER") == "X-Auth-User"
    assert canonical_header_key("bad header") == "bad header"
    assert [format_duration(s) for s in (0, 5e-9, 1.5e-6, 0.25, 1.5, 61.25, 3600, -0.5)] == \
        ["0s", "5ns", "1.5µs", "250ms", "1.5s", "1m1.25s", "1h0m0s", "-500ms"]
