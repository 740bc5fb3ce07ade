"""Server health for loadBalancer services: active probes and passive failure counting.

One :class:`HealthChecker` per loadBalancer service that has a ``healthCheck`` or a
``passiveHealthCheck``. It owns the health of that service's servers and applies every change
to the service's balancer (``set_healthy``), so a server that is down gets no new connection
and one that recovers is back in the rotation at once. Each transition is reported to the
observer (``traefik_service_server_up``, the API's ``serverStatus``), logged once with its
reason, and, with ``wsgate.closeOnUnhealthy``, closes the server's open WebSockets (1001).

Active checks (``healthCheck``): every server is probed when the checker starts, then every
``interval`` while it is healthy and every ``unhealthyInterval`` while it is not, counted from
the start of the previous probe; a probe has ``timeout`` to succeed. At most one probe per
server is in flight. Mode ``grpc`` needs HTTP/2 (grpc.health.v1), which wsgate does not speak:
such a service is reported (a configuration warning and a log line) and its servers are never
marked down by probes.

Passive checks (``passiveHealthCheck``), as Traefik counts them: an attempt fails when the
backend could not be reached or its answer had a status of 500 or more; an attempt that got
an answer below 500 clears the count. ``maxFailedAttempts`` failures within ``failureWindow``
mark the server down; it comes back after ``failureWindow``, or, when the service also has an
active check, when a probe succeeds.

:class:`HealthChecks` is the gateway's registry: it keeps the checkers of services whose
configuration did not change across a reload (the gateway reuses those services), starts the
new ones and stops the others, and is where the data path reports attempts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsgate.config.dynamic import LoadBalancer, PassiveHealthCheck, ServerHealthCheck, Service
from wsgate.ops.observer import NOOP_OBSERVER, Observer
from wsgate.proxy.backend import BackendAddress, BackendConnection
from wsgate.proxy.balancer import Balancer
from wsgate.proxy.probes import (
    HTTPProbe,
    Probe,
    ProbeResult,
    ProbeTarget,
    UpgradeProbe,
    build_probe_target,
)
from wsgate.proxy.routing import LeafService, ProxyService
from wsgate.proxy.sessions import OpenRelays

__all__ = [
    "CLOSE_CODE",
    "CLOSE_REASON",
    "GRPC_UNSUPPORTED",
    "HealthChecker",
    "HealthChecks",
    "probe_for",
]

log = Logger()

#: The close code and reason sent (both ways) on the WebSockets of a server that goes down,
#: with ``wsgate.closeOnUnhealthy``: 1001 Going Away.
CLOSE_CODE = 1001
CLOSE_REASON = "server unhealthy"

GRPC_UNSUPPORTED = ("healthCheck.mode grpc is not supported by wsgate (the gRPC health "
                    "protocol needs HTTP/2); its servers are not actively checked")


class _Server:
    """What a checker knows about one server."""

    __slots__ = ("call", "failures", "healthy", "passive_call", "pending", "problem",
                 "started", "target", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.healthy = True
        self.target: ProbeTarget | None = None
        #: Why no probe can be built for this server (then every probe fails with it).
        self.problem = ""
        #: The next probe, when one is scheduled.
        self.call: IDelayedCall | None = None
        #: The probe in flight.
        self.pending: defer.Deferred[ProbeResult] | None = None
        self.started = 0.0
        #: Times of the failed attempts still inside failureWindow.
        self.failures: deque[float] = deque()
        #: The end of a passive mark-down (services without an active check).
        self.passive_call: IDelayedCall | None = None


class HealthChecker:
    """The health of the servers of one loadBalancer service.

    ``servers`` are the service's balanced servers (URL to address; the URL is the balancer
    key). ``probe`` runs one active check (None: no active check); ``on_down(url)`` is called
    when a server goes down (closeOnUnhealthy) and returns how many sessions it closed;
    ``observer()`` gives the observer to report to, looked up at each report (the service
    sets the gateway's observer after building it).
    """

    def __init__(self, service: str, balancer: Balancer, servers: Mapping[str, BackendAddress],
                 clock: IReactorTime, *, check: ServerHealthCheck | None = None,
                 probe: Probe | None = None, passive: PassiveHealthCheck | None = None,
                 observer: Callable[[], Observer] = lambda: NOOP_OBSERVER,
                 on_down: Callable[[str], int] | None = None) -> None:
        self.service = service
        self.balancer = balancer
        self.clock = clock
        self.observer = observer
        self.on_down = on_down
        self.passive = passive
        self.check = check
        self.active = check is not None and check.mode != "grpc" and probe is not None
        self.probe = probe
        self.running = False
        self._servers = {url: _Server(url) for url in servers}
        if check is not None and self.active:
            for server in self._servers.values():
                try:
                    server.target = build_probe_target(server.url, check)
                except ValueError as exc:
                    server.problem = f"invalid health check: {exc}"

    # -- reading ------------------------------------------------------------------------------
    def is_healthy(self, url: str) -> bool:
        return self._servers[url].healthy

    def statuses(self) -> dict[str, bool]:
        return {url: server.healthy for url, server in self._servers.items()}

    def target(self, url: str) -> ProbeTarget | None:
        """The probe of ``url`` (None without an active check or when it cannot be built)."""
        return self._servers[url].target

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Report every server up and probe each one now (active checks)."""
        if self.running:
            return
        self.running = True
        if self.check is not None and self.check.mode == "grpc":
            log.warn("service {service}: {problem}", service=self.service,
                     problem=GRPC_UNSUPPORTED)
        for server in self._servers.values():
            self.observer().server_up(self.service, server.url, server.healthy)
            if server.problem:
                log.error("service {service}: server {url}: {problem}", service=self.service,
                          url=server.url, problem=server.problem)
            if self.active:
                server.call = self.clock.callLater(0, self._probe, server)

    def stop(self) -> None:
        """Cancel every timer and probe; the balancer keeps the health it was given."""
        self.running = False
        for server in self._servers.values():
            for call in (server.call, server.passive_call):
                if call is not None and call.active():
                    call.cancel()
            server.call = server.passive_call = None
            pending, server.pending = server.pending, None
            if pending is not None:
                pending.cancel()

    # -- active -------------------------------------------------------------------------------
    def _probe(self, server: _Server) -> None:
        server.call = None
        if not self.running:
            return
        server.started = self.clock.seconds()
        if server.target is None:
            self._settle(server, None, ProbeResult(False, server.problem))
            return
        assert self.probe is not None and self.check is not None
        timeout = float(self.check.timeout)
        try:
            d = self.probe(server.target)
        except Exception as exc:  # a probe must not raise; if it does, say so and go on
            log.failure("service {service}: the probe of {url} raised",
                        service=self.service, url=server.url)
            d = defer.succeed(ProbeResult(False, f"probe error: {exc}"))
        server.pending = d
        d.addTimeout(timeout, self.clock)
        d.addCallbacks(self._settle_result, self._settle_failure, callbackArgs=(server, d),
                       errbackArgs=(server, d, timeout))

    def _settle_result(self, result: ProbeResult, server: _Server,
                       d: defer.Deferred[ProbeResult]) -> None:
        self._settle(server, d, result)

    def _settle_failure(self, failure: Failure, server: _Server,
                        d: defer.Deferred[ProbeResult], timeout: float) -> None:
        if failure.check(defer.TimeoutError):
            result = ProbeResult(False, f"timeout: no answer within {timeout:g}s")
        elif failure.check(defer.CancelledError):
            return  # stopped
        else:
            log.failure("service {service}: the probe of {url} failed unexpectedly",
                        failure=failure, service=self.service, url=server.url)
            result = ProbeResult(False, f"probe error: {failure.getErrorMessage()}")
        self._settle(server, d, result)

    def _settle(self, server: _Server, d: defer.Deferred[ProbeResult] | None,
                result: ProbeResult) -> None:
        if not self.running or server.pending is not d:
            return  # a probe of a stopped checker, or one that stop() cancelled
        server.pending = None
        if result.healthy:
            self._set(server, True, result.reason)
            self._forget_failures(server)
        elif server.healthy:
            self._set(server, False, result.reason)
        else:
            log.debug("service {service}: server {url} still down: {reason}",
                      service=self.service, url=server.url, reason=result.reason)
        assert self.check is not None
        if server.healthy:
            interval = float(self.check.interval)
        else:
            interval = float(self.check.effective_unhealthy_interval)
        delay = max(0.0, server.started + interval - self.clock.seconds())
        server.call = self.clock.callLater(delay, self._probe, server)

    # -- passive ------------------------------------------------------------------------------
    def record_failure(self, url: str) -> None:
        """An attempt to ``url`` failed (unreachable, or a status of 500 or more)."""
        passive = self.passive
        server = self._servers.get(url)
        if passive is None or server is None or not self.running:
            return
        now = self.clock.seconds()
        window = float(passive.failure_window)
        failures = server.failures
        failures.append(now)
        while failures and failures[0] <= now - window:
            failures.popleft()
        if not server.healthy or len(failures) < max(1, passive.max_failed_attempts):
            return
        self._set(server, False, f"{len(failures)} failed attempt(s) within "
                                 f"{window:g}s (passive)")
        if not self.active:
            server.passive_call = self.clock.callLater(max(0.0, window), self._passive_over,
                                                       server)

    def record_success(self, url: str) -> None:
        """An attempt to ``url`` got an answer below 500: its failures are forgotten."""
        server = self._servers.get(url)
        if server is not None:
            server.failures.clear()

    def _passive_over(self, server: _Server) -> None:
        server.passive_call = None
        if not self.running:
            return
        self._forget_failures(server)
        assert self.passive is not None
        self._set(server, True, f"failureWindow of {float(self.passive.failure_window):g}s "
                                "over (passive)")

    def _forget_failures(self, server: _Server) -> None:
        server.failures.clear()
        call, server.passive_call = server.passive_call, None
        if call is not None and call.active():
            call.cancel()

    # -- transitions --------------------------------------------------------------------------
    def _set(self, server: _Server, healthy: bool, reason: str) -> None:
        if server.healthy == healthy:
            return
        server.healthy = healthy
        self.balancer.set_healthy(server.url, healthy)
        self.observer().server_up(self.service, server.url, healthy)
        if healthy:
            log.info("health check: server {url} of service {service} is UP again: {reason}",
                     url=server.url, service=self.service, reason=reason)
            return
        log.warn("health check: server {url} of service {service} is DOWN: {reason}",
                 url=server.url, service=self.service, reason=reason)
        if self.on_down is not None:
            closed = self.on_down(server.url)
            if closed:
                log.info("closed {n} WebSocket session(s) on {url} of service {service} "
                         "(closeOnUnhealthy)", n=closed, url=server.url, service=self.service)


def probe_for(leaf: LeafService, check: ServerHealthCheck, reactor: Any) -> Probe | None:
    """The probe of ``check``'s mode over ``leaf``'s serversTransport (None for grpc).

    Dials are bounded by the transport's dialTimeout and by the check's timeout, whichever is
    shorter, so a cancelled probe leaves no connection attempt behind for long.
    """
    timeout = float(check.timeout)
    dial = min(leaf.dial_timeout, timeout) if leaf.dial_timeout > 0 else timeout
    if check.mode == "websocket":
        return UpgradeProbe(reactor, dial_timeout=dial, tls_context=leaf.tls_context)
    if check.mode != "http":
        return None
    tls_context = leaf.tls_context

    def connect(address: BackendAddress) -> defer.Deferred[BackendConnection]:
        context = tls_context(address) if tls_context is not None else None
        if address.tls and context is None:
            raise ValueError(f"no TLS client settings for {address}")
        return leaf.connector.connect(address, dial_timeout=dial, tls_context=context)

    return HTTPProbe(connect, expected_status=check.status,
                     follow_redirects=check.follow_redirects)


def _closer(sessions: OpenRelays, service: str) -> Callable[[str], int]:
    def close(url: str) -> int:
        return sessions.close_server(service, url, CLOSE_CODE, CLOSE_REASON)
    return close


class HealthChecks:
    """The gateway's health checkers, by qualified service name.

    ``update`` is called after each configuration is applied; ``record_failure`` and
    ``record_success`` are the data path's reports of attempts (cheap no-ops for services
    without a passive check).
    """

    def __init__(self, reactor: Any, *,
                 observer: Callable[[], Observer] = lambda: NOOP_OBSERVER,
                 sessions: OpenRelays | None = None) -> None:
        self.reactor = reactor
        self.observer = observer
        self.sessions = sessions if sessions is not None else OpenRelays()
        self._checkers: dict[str, HealthChecker] = {}

    def get(self, service: str) -> HealthChecker | None:
        return self._checkers.get(service)

    def __len__(self) -> int:
        return len(self._checkers)

    def update(self, services: Mapping[str, tuple[Service | None, ProxyService]]) -> None:
        """Keep the checkers of reused services, start new ones, stop the rest."""
        checkers: dict[str, HealthChecker] = {}
        for name, (config, service) in services.items():
            if not isinstance(service, LeafService) or config is None or \
                    config.load_balancer is None:
                continue
            lb = config.load_balancer
            if lb.health_check is None and lb.passive_health_check is None:
                continue
            old = self._checkers.get(name)
            if old is not None and old.balancer is service.balancer:
                checkers[name] = old
            else:
                checkers[name] = self._build(service, lb)
        for name, old in self._checkers.items():
            if checkers.get(name) is not old:
                old.stop()
        self._checkers = checkers
        for checker in checkers.values():
            checker.start()

    def _build(self, leaf: LeafService, lb: LoadBalancer) -> HealthChecker:
        check = lb.health_check
        probe = probe_for(leaf, check, self.reactor) if check is not None else None
        on_down = _closer(self.sessions, leaf.name) if lb.wsgate.close_on_unhealthy else None
        return HealthChecker(leaf.name, leaf.balancer, leaf.addresses, self.reactor,
                             check=check, probe=probe, passive=lb.passive_health_check,
                             observer=self.observer, on_down=on_down)

    def stop(self) -> None:
        """Stop every checker (wsgate is stopping)."""
        for checker in self._checkers.values():
            checker.stop()
        self._checkers = {}

    # -- the data path's reports ----------------------------------------------------------------
    def record_failure(self, service: str, url: str) -> None:
        """An attempt to ``url`` of ``service`` failed: the backend could not be reached or
        answered with a status of 500 or more (the passive check counts it)."""
        checker = self._checkers.get(service)
        if checker is not None:
            checker.record_failure(url)

    def record_success(self, service: str, url: str) -> None:
        """An attempt to ``url`` of ``service`` got an answer below 500 (a 101 included)."""
        checker = self._checkers.get(service)
        if checker is not None:
            checker.record_success(url)
