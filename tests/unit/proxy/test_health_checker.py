"""HealthChecker: probe scheduling, transitions, timeouts, passive windows, closeOnUnhealthy.

Driven by task.Clock and fake probes whose Deferreds the test fires: no sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import LogLevel, capturedLogs, formatEvent

from tests.unit.helpers import FakeRelay, UpRecorder
from wsgate.config.dynamic import PassiveHealthCheck, ServerHealthCheck
from wsgate.config.schema import Duration
from wsgate.proxy.backend import parse_backend_url
from wsgate.proxy.balancer import Backend, WeightedRoundRobin
from wsgate.proxy.health import GRPC_UNSUPPORTED, HealthChecker
from wsgate.proxy.probes import ProbeResult, ProbeTarget
from wsgate.proxy.sessions import OpenRelays

A = "http://10.0.0.1:8080"
B = "http://10.0.0.2:8080"

OK = ProbeResult(True, "status 200")
BAD = ProbeResult(False, "status 500 (expected 200-399)")


class FakeProbe:
    """Each call returns a Deferred the test fires (or, with ``auto``, a scripted result)."""

    def __init__(self, auto: dict[str, ProbeResult] | None = None) -> None:
        self.calls: list[tuple[str, float, defer.Deferred[ProbeResult]]] = []
        self.auto = auto
        self.clock: task.Clock | None = None
        self.targets: list[ProbeTarget] = []
        self.cancelled = 0

    def __call__(self, target: ProbeTarget) -> defer.Deferred[ProbeResult]:
        self.targets.append(target)
        if self.auto is not None:
            d = defer.succeed(self.auto[target.url])
        else:
            d = defer.Deferred(self._cancelled)
        now = self.clock.seconds() if self.clock is not None else 0.0
        self.calls.append((target.url, now, d))
        return d

    def _cancelled(self, d: defer.Deferred[ProbeResult]) -> None:
        self.cancelled += 1

    def times(self, url: str) -> list[float]:
        return [t for u, t, _ in self.calls if u == url]

    def answer(self, url: str, result: ProbeResult) -> None:
        for u, _, d in reversed(self.calls):
            if u == url and not d.called:
                d.callback(result)
                return
        raise AssertionError(f"no pending probe of {url}")


EVERY_10S = ServerHealthCheck(interval=Duration(10.0))


def make(check: ServerHealthCheck | None = EVERY_10S,
         passive: PassiveHealthCheck | None = None, probe: Any = None,
         on_down: Any = None, urls: tuple[str, ...] = (A, B)
         ) -> tuple[HealthChecker, WeightedRoundRobin, task.Clock, Any, UpRecorder]:
    clock = task.Clock()
    if probe is None and check is not None:
        probe = FakeProbe()
    if probe is not None:
        probe.clock = clock
    balancer = WeightedRoundRobin([Backend(url) for url in urls])
    observer = UpRecorder()
    checker = HealthChecker("svc@file", balancer, {u: parse_backend_url(u) for u in urls},
                            clock, check=check, probe=probe, passive=passive,
                            observer=lambda: observer, on_down=on_down)
    return checker, balancer, clock, probe, observer


def picks(balancer: WeightedRoundRobin, n: int = 6) -> set[str]:
    out = set()
    for _ in range(n):
        backend = balancer.pick("192.0.2.1")
        if backend is not None:
            out.add(backend.url)
    return out


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capturedLogs() as events:
        yield events


def lines(events: list[dict[str, Any]], needle: str = "health check") -> list[str]:
    return [formatEvent(e) for e in events if needle in formatEvent(e)]


# -- scheduling -------------------------------------------------------------------------------


def test_every_server_is_probed_at_start_then_every_interval() -> None:
    checker, _, clock, probe, observer = make()
    checker.start()
    assert probe.calls == []  # the first probes are scheduled, not run inside start()
    clock.advance(0)
    assert probe.times(A) == [0.0] and probe.times(B) == [0.0]
    for _ in range(3):
        probe.answer(A, OK)
        probe.answer(B, OK)
        clock.advance(10)
    assert probe.times(A) == [0.0, 10.0, 20.0, 30.0]
    assert observer.ups == [("svc@file", A, True), ("svc@file", B, True)]


def test_interval_counts_from_the_start_of_the_previous_probe() -> None:
    checker, _, clock, probe, _ = make(urls=(A,))
    checker.start()
    clock.advance(0)
    clock.advance(3)
    probe.answer(A, OK)  # answered after 3s: the next probe is still due at 10s
    clock.advance(6.9)
    assert probe.times(A) == [0.0]
    clock.advance(0.1)
    assert probe.times(A) == [0.0, 10.0]


def test_unhealthy_servers_are_probed_every_unhealthy_interval() -> None:
    check = ServerHealthCheck(interval=Duration(10.0), unhealthy_interval=Duration(2.0))
    checker, _, clock, probe, _ = make(check, urls=(A,))
    checker.start()
    clock.advance(0)
    probe.answer(A, BAD)
    for _ in range(3):
        clock.advance(2)
        probe.answer(A, BAD)
    assert probe.times(A) == [0.0, 2.0, 4.0, 6.0]
    clock.advance(2)
    probe.answer(A, OK)  # healthy again: back to interval
    clock.advance(9.9)
    assert probe.times(A) == [0.0, 2.0, 4.0, 6.0, 8.0]
    clock.advance(0.1)
    assert probe.times(A)[-1] == 18.0


def test_unhealthy_interval_defaults_to_interval() -> None:
    checker, _, clock, probe, _ = make(ServerHealthCheck(interval=Duration(5.0)), urls=(A,))
    checker.start()
    clock.advance(0)
    probe.answer(A, BAD)
    clock.advance(5)
    assert probe.times(A) == [0.0, 5.0]


def test_one_probe_in_flight_per_server_and_timeout_marks_down(
        logs: list[dict[str, Any]]) -> None:
    check = ServerHealthCheck(interval=Duration(1.0), timeout=Duration(3.0))
    checker, balancer, clock, probe, _ = make(check, urls=(A, B))
    checker.start()
    clock.advance(0)
    probe.answer(B, OK)
    clock.advance(2.9)  # A's probe is slow: no second probe of A while it is in flight
    assert probe.times(A) == [0.0]
    clock.advance(0.1)
    assert probe.cancelled == 1  # the timeout cancelled it (the probe closes its connection)
    assert not checker.is_healthy(A)
    assert picks(balancer) == {B}
    assert lines(logs, "DOWN") == [
        f"health check: server {A} of service svc@file is DOWN: timeout: no answer within 3s"]
    clock.advance(0)  # overdue (3s > 1s interval): the next probe starts at once
    assert probe.times(A) == [0.0, 3.0]


def test_stop_cancels_timers_and_probes_and_ignores_late_results() -> None:
    checker, _, clock, probe, observer = make()
    checker.start()
    clock.advance(0)
    probe.answer(A, OK)
    checker.stop()
    assert probe.cancelled == 1  # B's probe
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert len(probe.calls) == 2
    checker.record_failure(A)  # a stopped checker counts nothing
    assert checker.is_healthy(A)
    assert observer.ups == [("svc@file", A, True), ("svc@file", B, True)]


def test_start_is_idempotent() -> None:
    checker, _, clock, probe, observer = make()
    checker.start()
    checker.start()
    clock.advance(0)
    assert len(probe.calls) == 2
    assert len(observer.ups) == 2


# -- transitions --------------------------------------------------------------------------------


def test_down_then_up_reaches_balancer_observer_and_log_once_per_transition(
        logs: list[dict[str, Any]]) -> None:
    checker, balancer, clock, probe, observer = make()
    checker.start()
    clock.advance(0)
    probe.answer(A, BAD)
    probe.answer(B, OK)
    assert picks(balancer) == {B}
    for _ in range(3):  # still failing: no new transition, no new line
        clock.advance(10)
        probe.answer(A, ProbeResult(False, "connection refused"))
        probe.answer(B, OK)
    clock.advance(10)
    probe.answer(A, OK)
    probe.answer(B, OK)
    assert picks(balancer) == {A, B}
    assert observer.ups[2:] == [("svc@file", A, False), ("svc@file", A, True)]
    assert lines(logs) == [
        f"health check: server {A} of service svc@file is DOWN: status 500 (expected 200-399)",
        f"health check: server {A} of service svc@file is UP again: status 200",
    ]
    levels = [e["log_level"] for e in logs if "health check" in formatEvent(e)]
    assert levels == [LogLevel.warn, LogLevel.info]


def test_all_servers_down_makes_the_service_unavailable() -> None:
    checker, balancer, clock, probe, _ = make()
    seen: list[bool] = []
    balancer.watch(seen.append)
    checker.start()
    clock.advance(0)
    probe.answer(A, BAD)
    probe.answer(B, BAD)
    assert balancer.pick("192.0.2.1") is None
    assert seen == [False]
    assert checker.statuses() == {A: False, B: False}


def test_synchronous_probe_results_are_handled() -> None:
    probe = FakeProbe(auto={A: OK, B: BAD})
    checker, _, clock, _, _ = make(probe=probe)
    checker.start()
    clock.advance(0)
    assert checker.statuses() == {A: True, B: False}
    clock.advance(10)
    assert probe.times(B) == [0.0, 10.0]


def test_a_probe_that_raises_counts_as_failed(logs: list[dict[str, Any]]) -> None:
    def broken(target: ProbeTarget) -> defer.Deferred[ProbeResult]:
        raise RuntimeError("boom")

    checker, _, clock, _, _ = make(probe=broken, urls=(A,))
    checker.start()
    clock.advance(0)
    assert not checker.is_healthy(A)
    assert lines(logs, "DOWN") == [
        f"health check: server {A} of service svc@file is DOWN: probe error: boom"]


def test_an_unbuildable_probe_marks_servers_down_as_traefik_does(
        logs: list[dict[str, Any]]) -> None:
    check = ServerHealthCheck(scheme="ftp")
    checker, _, clock, probe, _ = make(check, urls=(A,))
    assert checker.target(A) is None
    checker.start()
    clock.advance(0)
    assert probe.calls == []
    assert not checker.is_healthy(A)
    assert any("unsupported scheme 'ftp'" in line for line in lines(logs, "DOWN"))


def test_grpc_mode_is_reported_and_never_marks_servers_down(
        logs: list[dict[str, Any]]) -> None:
    checker, _, clock, probe, _ = make(ServerHealthCheck(mode="grpc"))
    checker.start()
    clock.advance(100)
    assert probe.calls == []
    assert checker.statuses() == {A: True, B: True}
    assert lines(logs, "grpc") == [f"service svc@file: {GRPC_UNSUPPORTED}"]
    assert [e["log_level"] for e in logs if "grpc" in formatEvent(e)] == [LogLevel.warn]


def test_probe_targets_are_built_from_the_check() -> None:
    check = ServerHealthCheck(path="/health", port=9000, hostname="app.test",
                              headers={"X-Check": "1"})
    checker, _, clock, probe, _ = make(check, urls=(A,))
    checker.start()
    clock.advance(0)
    target = probe.targets[0]
    assert (target.url, target.address.port, target.target, target.host, target.headers) == \
        (A, 9000, "/health", "app.test", (("X-Check", "1"),))


# -- closeOnUnhealthy ---------------------------------------------------------------------------


def test_going_down_calls_on_down_once_per_transition(logs: list[dict[str, Any]]) -> None:
    relays = OpenRelays()
    on_a, on_b, elsewhere = FakeRelay(), FakeRelay(), FakeRelay()
    relays.add("svc@file", A, on_a)
    relays.add("svc@file", B, on_b)
    relays.add("other@file", A, elsewhere)

    def on_down(url: str) -> int:
        return relays.close_server("svc@file", url, 1001, "server unhealthy")

    checker, _, clock, probe, _ = make(on_down=on_down)
    checker.start()
    clock.advance(0)
    probe.answer(A, BAD)
    probe.answer(B, OK)
    clock.advance(10)
    probe.answer(A, BAD)  # still down: nothing closed again
    assert on_a.closed == [(1001, "server unhealthy")]
    assert on_b.closed == [] and elsewhere.closed == []
    assert lines(logs, "closed") == [
        f"closed 1 WebSocket session(s) on {A} of service svc@file (closeOnUnhealthy)"]


# -- passive --------------------------------------------------------------------------------------


def test_passive_only_marks_down_at_max_failed_attempts_within_the_window(
        logs: list[dict[str, Any]]) -> None:
    passive = PassiveHealthCheck(failure_window=Duration(10.0), max_failed_attempts=3)
    checker, balancer, clock, _, observer = make(check=None, passive=passive)
    checker.start()
    checker.record_failure(A)
    clock.advance(5)
    checker.record_failure(A)
    clock.advance(5.5)  # the first failure left the window
    checker.record_failure(A)
    assert checker.is_healthy(A)
    clock.advance(1)
    checker.record_failure(A)
    assert not checker.is_healthy(A)
    assert picks(balancer) == {B}
    assert lines(logs, "DOWN") == [
        f"health check: server {A} of service svc@file is DOWN: 3 failed attempt(s) "
        "within 10s (passive)"]
    clock.advance(9.9)
    assert not checker.is_healthy(A)
    clock.advance(0.1)  # back after failureWindow
    assert checker.is_healthy(A)
    assert picks(balancer) == {A, B}
    assert observer.ups[2:] == [("svc@file", A, False), ("svc@file", A, True)]
    assert lines(logs, "UP again") == [
        f"health check: server {A} of service svc@file is UP again: failureWindow of 10s "
        "over (passive)"]


def test_passive_default_is_one_failure() -> None:
    checker, _, _, _, _ = make(check=None, passive=PassiveHealthCheck())
    checker.start()
    checker.record_failure(B)
    assert checker.statuses() == {A: True, B: False}


def test_a_success_clears_the_count() -> None:
    passive = PassiveHealthCheck(max_failed_attempts=2)
    checker, _, clock, _, _ = make(check=None, passive=passive)
    checker.start()
    checker.record_failure(A)
    checker.record_success(A)
    clock.advance(1)
    checker.record_failure(A)
    assert checker.is_healthy(A)
    checker.record_failure(A)
    assert not checker.is_healthy(A)


def test_failures_while_down_do_not_extend_the_window() -> None:
    passive = PassiveHealthCheck(failure_window=Duration(10.0))
    checker, _, clock, _, _ = make(check=None, passive=passive)
    checker.start()
    checker.record_failure(A)
    clock.advance(5)
    checker.record_failure(A)  # in-flight requests that started before the mark-down
    clock.advance(5)
    assert checker.is_healthy(A)
    assert len(clock.getDelayedCalls()) == 0


def test_passive_without_passive_config_is_ignored() -> None:
    checker, _, _, _, _ = make()
    checker.start()
    checker.record_failure(A)
    checker.record_failure("http://unknown:1")
    assert checker.is_healthy(A)


def test_with_an_active_check_a_passive_mark_down_lasts_until_a_probe_succeeds() -> None:
    check = ServerHealthCheck(interval=Duration(30.0))
    passive = PassiveHealthCheck(failure_window=Duration(10.0))
    checker, _, clock, probe, _ = make(check, passive=passive, urls=(A,))
    checker.start()
    clock.advance(0)
    probe.answer(A, OK)
    checker.record_failure(A)
    assert not checker.is_healthy(A)
    clock.advance(20)  # the failure window is over, but no timer brings it back
    assert not checker.is_healthy(A)
    clock.advance(10)
    assert probe.times(A) == [0.0, 30.0]
    probe.answer(A, OK)
    assert checker.is_healthy(A)


def test_an_active_mark_down_is_not_lifted_by_the_passive_window() -> None:
    check = ServerHealthCheck(interval=Duration(30.0))
    checker, _, clock, probe, _ = make(check, passive=PassiveHealthCheck(), urls=(A,))
    checker.start()
    clock.advance(0)
    probe.answer(A, BAD)
    checker.record_failure(A)
    clock.advance(15)
    assert not checker.is_healthy(A)
