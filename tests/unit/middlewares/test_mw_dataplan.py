"""What the data path looks up once per route (wsgate.proxy.dataplan), and buffering reading
a chunked request body whole before it goes on."""

from __future__ import annotations

from mw_support import build, make_ctx

from wsgate.middlewares import PASS, Answer, BodyTooLarge, Chain, Defer, ReadBody
from wsgate.proxy.dataplan import plan_for


def no_service(name: str) -> None:
    raise AssertionError(f"no service should be resolved, asked {name}")


def test_no_plan_without_data_path_middlewares():
    chain = Chain([build({"headers": {"customRequestHeaders": {"X": "1"}}})])
    assert plan_for(chain, no_service) is None
    assert plan_for(Chain(), no_service) is None


def test_plan_finds_the_middlewares_and_resolves_error_services():
    retry = build({"retry": {"attempts": 3, "status": ["503"]}})
    network_only = build({"retry": {"attempts": 2}})
    gz = build({"compress": {}})
    outer = build({"errors": {"status": ["500"], "service": "outer"}}, name="o@file")
    inner = build({"errors": {"status": ["404"], "service": "inner"}}, name="i@file")
    buffering = build({"buffering": {"maxResponseBodyBytes": 99,
                                     "retryExpression": "Attempts() < 2"}})
    asked: list[str] = []

    def resolve(name: str) -> object:
        asked.append(name)
        return None if name == "outer" else f"service {name}"

    plan = plan_for(Chain([outer, retry, network_only, gz, inner, buffering]),
                    resolve)  # type: ignore[arg-type]
    assert plan is not None
    assert plan.retry is retry and plan.compress is gz and plan.buffering is buffering
    assert [(mw, svc) for mw, svc in plan.errors] == [(inner, "service inner"), (outer, None)]
    assert sorted(asked) == ["inner", "outer"]
    assert plan.max_response_body == 99
    # a status retry keeps bodies up to its maxRequestBodyBytes; the buffering expression up
    # to memRequestBodyBytes when it has no maximum
    assert plan.replay_limit == 2 * 1024 * 1024
    assert plan.retries(upgrade=True)

    only_network = plan_for(Chain([network_only]), no_service)
    assert only_network is not None and only_network.replay_limit == 0
    expression = plan_for(Chain([buffering]), no_service)
    assert expression is not None
    assert expression.retries(upgrade=False) and not expression.retries(upgrade=True)


def test_buffering_reads_a_chunked_body_whole():
    mw = build({"buffering": {"maxRequestBodyBytes": 10}})
    ctx = make_ctx("/", method="POST", headers=[("Transfer-Encoding", "chunked")])
    decision = mw.on_request(ctx)
    assert isinstance(decision, Defer) and decision.work == ReadBody(10)
    assert decision.resume(b"small") is PASS
    too_large = decision.resume(BodyTooLarge(10))
    assert isinstance(too_large, Answer) and too_large.status == 413
    # WebSocket handshakes, and bodies without a maximum, are left alone
    assert mw.on_request(make_ctx("/", websocket=True)) is PASS
    unlimited = build({"buffering": {}})
    assert unlimited.on_request(make_ctx("/", method="POST",
                                         headers=[("Transfer-Encoding", "chunked")])) is PASS
