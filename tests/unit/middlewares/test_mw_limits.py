"""ipAllowList / ipWhiteList, ipStrategy, rateLimit and inFlightReq."""

from __future__ import annotations

import pytest
from mw_support import FakeClock, build, header, make_ctx, runtime_of, settle

from wsgate.config.dynamic import IPAllowList, IPStrategy, SourceCriterion
from wsgate.middlewares import PASS, Answer, Defer, MiddlewareError, Sleep, build_chain
from wsgate.middlewares.ip_allow_list import IPAllowListMiddleware
from wsgate.middlewares.ipstrategy import build_ip_strategy, build_source


def allow(section, client_ip="203.0.113.7", xff=None, **kw):
    headers = [("X-Forwarded-For", xff)] if xff is not None else []
    return build(section).on_request(make_ctx("/", client_ip=client_ip, headers=headers, **kw))


# -- ipAllowList -------------------------------------------------------------------------------


@pytest.mark.parametrize("client_ip,allowed", [
    ("192.168.1.7", True), ("192.168.2.1", False), ("10.0.0.1", True), ("10.0.0.2", False),
    ("::ffff:192.168.1.9", True), ("2001:db8::1", True), ("2001:db9::1", False),
    ("", False), ("not-an-ip", False),
])
def test_ip_allow_list_by_peer_address(client_ip, allowed):
    section = {"ipAllowList": {"sourceRange": ["192.168.1.0/24", "10.0.0.1", "2001:db8::/32"]}}
    decision = allow(section, client_ip)
    if allowed:
        assert decision is PASS
    else:
        assert isinstance(decision, Answer) and decision.status == 403
        assert decision.body == b"Forbidden"


def test_ip_allow_list_reject_status_code():
    decision = allow({"ipAllowList": {"sourceRange": ["10.0.0.0/8"], "rejectStatusCode": 404}})
    assert isinstance(decision, Answer) and decision.status == 404
    assert decision.body == b"Not Found"
    with pytest.raises(MiddlewareError) as info:
        build({"ipAllowList": {"sourceRange": ["10.0.0.0/8"], "rejectStatusCode": 299}})
    assert info.value.field == "ipAllowList.rejectStatusCode"


def test_ip_allow_list_depth_uses_x_forwarded_for():
    section = {"ipAllowList": {"sourceRange": ["1.2.3.4"], "ipStrategy": {"depth": 2}}}
    assert allow(section, xff="9.9.9.9, 1.2.3.4, 10.0.0.1") is PASS
    assert isinstance(allow(section, xff="1.2.3.4"), Answer)  # too few entries
    assert isinstance(allow(section, xff="5.6.7.8, 1.2.3.4"), Answer)
    assert allow(section, xff="1.2.3.4:5678, 10.0.0.1") is PASS  # ports are tolerated


def test_ip_allow_list_excluded_ips_picks_the_first_not_excluded_from_the_right():
    section = {"ipAllowList": {"sourceRange": ["1.2.3.4"],
                               "ipStrategy": {"excludedIPs": ["10.0.0.0/8", "192.168.0.1"]}}}
    assert allow(section, xff="1.2.3.4, 10.0.0.2, 192.168.0.1") is PASS
    assert isinstance(allow(section, xff="1.2.3.4, 5.5.5.5, 10.0.0.2"), Answer)
    assert isinstance(allow(section, xff="10.0.0.1"), Answer)  # all excluded: ""


def test_only_the_first_x_forwarded_for_field_counts():
    section = {"ipAllowList": {"sourceRange": ["1.2.3.4"], "ipStrategy": {"depth": 1}}}
    ctx = make_ctx("/", headers=[("X-Forwarded-For", "5.5.5.5"), ("X-Forwarded-For", "1.2.3.4")])
    assert isinstance(build(section).on_request(ctx), Answer)


def test_ip_allow_list_configuration_errors():
    with pytest.raises(MiddlewareError, match="sourceRange is empty"):
        build({"ipAllowList": {"sourceRange": []}})
    with pytest.raises(MiddlewareError) as info:
        build_ip_strategy("m@file", "ipAllowList.ipStrategy", IPStrategy(depth=1, ipv6_subnet=0))
    assert info.value.field == "ipAllowList.ipStrategy.ipv6Subnet"
    with pytest.raises(MiddlewareError) as info:
        IPAllowListMiddleware("m@file", IPAllowList(source_range=("10.0.0.0/8", "1.2.3.4/33")))
    assert info.value.field == "ipAllowList.sourceRange"


def test_ip_white_list_is_the_same_with_403():
    mw = build({"ipWhiteList": {"sourceRange": ["10.0.0.0/8"]}})
    assert mw.kind == "ipWhiteList"
    assert mw.on_request(make_ctx("/", client_ip="10.1.2.3")) is PASS
    decision = mw.on_request(make_ctx("/", client_ip="11.1.2.3"))
    assert isinstance(decision, Answer) and decision.status == 403


def test_ip_allow_list_guards_websocket_handshakes():
    mw = build({"ipAllowList": {"sourceRange": ["127.0.0.1/32"]}})
    assert mw.on_request(make_ctx("/ws", websocket=True, client_ip="127.0.0.1")) is PASS
    assert isinstance(mw.on_request(make_ctx("/ws", websocket=True)), Answer)


def test_ipv6_subnet_groups_clients():
    pick = build_ip_strategy("m", "f", IPStrategy(ipv6_subnet=64))
    a = make_ctx("/", client_ip="2001:db8:1:2:aaaa::1")
    b = make_ctx("/", client_ip="2001:db8:1:2:bbbb::2")
    assert pick(a) == pick(b) == "2001:db8:1:2::"
    assert pick(make_ctx("/", client_ip="10.0.0.1")) == "10.0.0.1"
    deep = build_ip_strategy("m", "f", IPStrategy(depth=1, ipv6_subnet=48))
    assert deep(make_ctx("/", headers=[("X-Forwarded-For", "2001:db8:1:2::9")])) == \
        "2001:db8:1::"


def test_source_criteria():
    ctx = make_ctx("/", host="h.example", headers=[("X-Api-Key", "k1")])
    assert build_source("m", "f", None, default="ip")(ctx) == ctx.client_ip
    assert build_source("m", "f", None, default="host")(ctx) == "h.example"
    assert build_source("m", "f", SourceCriterion(request_header_name="x-api-key"),
                        default="ip")(ctx) == "k1"
    assert build_source("m", "f", SourceCriterion(request_host=True), default="ip")(ctx) == \
        "h.example"
    assert build_source("m", "f", SourceCriterion(), default="host")(ctx) == "h.example"
    with pytest.raises(MiddlewareError, match="mutually exclusive"):
        build_source("m", "f", SourceCriterion(request_host=True, request_header_name="x"),
                     default="ip")


# -- rateLimit ---------------------------------------------------------------------------------


def limiter(clock, **config):
    return build({"rateLimit": config}, clock=clock)


def test_rate_limit_burst_then_429_with_retry_headers():
    clock = FakeClock()
    mw = limiter(clock, average=1, burst=3)
    ctx = make_ctx("/")
    assert [mw.on_request(ctx) for _ in range(3)] == [PASS, PASS, PASS]
    denied = mw.on_request(ctx)
    assert isinstance(denied, Answer) and denied.status == 429
    assert denied.body == b"Too Many Requests"
    assert header(denied.headers, "Retry-After") == "1"
    assert header(denied.headers, "X-Retry-In") == "1s"
    clock.advance(0.4)
    denied = mw.on_request(ctx)
    assert header(denied.headers, "X-Retry-In") == "600ms"  # a denial takes no token
    clock.advance(0.2)
    assert isinstance(mw.on_request(ctx), Defer)  # 0.4 s away: under the 0.5 s wait cap


def test_rate_limit_waits_when_the_next_token_is_close():
    clock = FakeClock()
    mw = limiter(clock, average=10, burst=1)  # one token every 100ms, waits up to 50ms
    ctx = make_ctx("/")
    assert mw.on_request(ctx) is PASS
    clock.advance(0.06)
    decision = mw.on_request(ctx)
    assert isinstance(decision, Defer) and isinstance(decision.work, Sleep)
    assert decision.work.seconds == pytest.approx(0.04)
    slept = []
    assert settle(decision, slept=slept) is PASS and slept == [pytest.approx(0.04)]
    # That request took the next token in advance: one arriving now is too far off.
    denied = mw.on_request(ctx)
    assert isinstance(denied, Answer)
    assert header(denied.headers, "X-Retry-In") == "140ms"


def test_rate_limit_period_and_slow_rates():
    clock = FakeClock()
    mw = limiter(clock, average=6, period="1m", burst=1)  # one every 10 s
    ctx = make_ctx("/")
    assert mw.on_request(ctx) is PASS
    clock.advance(9.6)
    decision = mw.on_request(ctx)  # 0.4 s away, under the 0.5 s wait cap for slow rates
    assert isinstance(decision, Defer)
    clock.advance(0.4)
    denied = mw.on_request(ctx)
    assert header(denied.headers, "Retry-After") == "10"


def test_rate_limit_zero_average_is_no_limit():
    mw = limiter(FakeClock(), average=0)
    ctx = make_ctx("/")
    assert all(mw.on_request(ctx) is PASS for _ in range(100))
    assert not mw.buckets


def test_rate_limit_buckets_are_per_source_and_bounded():
    clock = FakeClock()
    mw = build({"rateLimit": {"average": 1, "burst": 1}}, clock=clock)
    mw.max_sources = 3
    for i in range(10):
        assert mw.on_request(make_ctx("/", client_ip=f"10.0.0.{i}")) is PASS
    assert len(mw.buckets) == 3
    assert list(mw.buckets) == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]
    assert isinstance(mw.on_request(make_ctx("/", client_ip="10.0.0.9")), Answer)
    clock.advance(2.5)  # idle buckets expire (2 s for rates of 1/s or more)
    mw.on_request(make_ctx("/", client_ip="10.0.1.1"))
    assert list(mw.buckets) == ["10.0.1.1"]


def test_rate_limit_by_header_and_host():
    clock = FakeClock()
    by_key = limiter(clock, average=1, burst=1,
                     sourceCriterion={"requestHeaderName": "X-Api-Key"})
    assert by_key.on_request(make_ctx("/", headers=[("X-Api-Key", "a")])) is PASS
    assert by_key.on_request(make_ctx("/", headers=[("X-Api-Key", "b")])) is PASS
    assert isinstance(by_key.on_request(make_ctx("/", headers=[("X-Api-Key", "a")])), Answer)
    by_host = limiter(clock, average=1, burst=1, sourceCriterion={"requestHost": True})
    assert by_host.on_request(make_ctx("/", host="a", client_ip="1.1.1.1")) is PASS
    assert isinstance(by_host.on_request(make_ctx("/", host="a", client_ip="2.2.2.2")), Answer)


def test_rate_limit_counts_websocket_handshakes():
    clock = FakeClock()
    mw = limiter(clock, average=1, burst=1)
    assert mw.on_request(make_ctx("/ws", websocket=True)) is PASS
    assert isinstance(mw.on_request(make_ctx("/ws", websocket=True)), Answer)


def test_rate_limit_configuration_errors():
    with pytest.raises(MiddlewareError) as info:
        build({"rateLimit": {"average": 1, "redis": {"endpoints": ["127.0.0.1:6379"]}}})
    assert info.value.field == "rateLimit.redis"
    with pytest.raises(MiddlewareError) as info:
        build({"rateLimit": {"average": 1, "sourceCriterion": {
            "requestHost": True, "ipStrategy": {"depth": 1}}}})
    assert info.value.field == "rateLimit.sourceCriterion"


# -- inFlightReq -------------------------------------------------------------------------------


def test_in_flight_defaults_to_the_request_host():
    mw = build({"inFlightReq": {"amount": 1}})
    first = make_ctx("/", host="a.example", client_ip="1.1.1.1")
    assert mw.on_request(first) is PASS
    other_client = make_ctx("/", host="a.example", client_ip="2.2.2.2")
    denied = mw.on_request(other_client)
    assert isinstance(denied, Answer) and denied.status == 429
    assert denied.body == b"max connections reached: 1"
    assert mw.on_request(make_ctx("/", host="b.example")) is PASS
    mw.on_close(first)
    assert mw.on_request(make_ctx("/", host="a.example")) is PASS


def test_in_flight_an_open_websocket_holds_its_slot_until_closed():
    rt = runtime_of({"limit": {"inFlightReq": {"amount": 2, "sourceCriterion": {
        "ipStrategy": {}}}}}, ["limit"])
    chain = build_chain(("limit@file",), rt)
    limiter_ = chain.middlewares[0]
    sockets = [make_ctx("/ws", websocket=True) for _ in range(2)]
    assert all(chain.on_request(ctx) is PASS for ctx in sockets)
    assert limiter_.in_flight == 2
    third = make_ctx("/ws", websocket=True)
    assert isinstance(chain.on_request(third), Answer)
    chain.on_close(third)  # answered: nothing to release
    assert limiter_.in_flight == 2
    chain.on_close(sockets[0])
    chain.on_close(sockets[0])  # closing twice releases once
    assert limiter_.in_flight == 1
    assert chain.on_request(make_ctx("/ws", websocket=True)) is PASS


def test_in_flight_slot_released_when_a_later_middleware_answers():
    rt = runtime_of({"limit": {"inFlightReq": {"amount": 1}},
                     "deny": {"ipAllowList": {"sourceRange": ["10.0.0.1"]}}},
                    ["limit", "deny"])
    chain = build_chain(("limit@file", "deny@file"), rt)
    ctx = make_ctx("/")
    assert isinstance(chain.on_request(ctx), Answer)
    assert chain.middlewares[0].in_flight == 1
    chain.on_close(ctx)
    assert chain.middlewares[0].in_flight == 0


def test_in_flight_zero_amount_rejects_everything_as_traefik_does():
    mw = build({"inFlightReq": {"amount": 0}})
    assert isinstance(mw.on_request(make_ctx("/")), Answer)
    assert any("every request is rejected" in w for w in mw.warnings)
