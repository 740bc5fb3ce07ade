"""Sending one mirror copy: connect (or reuse a pooled connection), write the request, read
the answer to its end and drop it.

A copy never touches the client's exchange: its failures are logged (debug) and counted by
the mirror service's passive health check, as any attempt is. A mirror that accepts an
upgrade copy with 101 has its connection closed at once (there is no client for that
WebSocket; Traefik closes it the same way). Each copy has at most ``COPY_DEADLINE`` seconds
(and the serversTransport's responseHeaderTimeout for its head).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from wsgate.http.body import BodyReader
from wsgate.http.errors import HTTPParseError
from wsgate.http.head import BodyKind
from wsgate.http.parser import ResponseHeadParser
from wsgate.proxy.backend import BackendAddress, BackendConnection
from wsgate.proxy.mirroring import CopySource, copy_head

if TYPE_CHECKING:
    from wsgate.proxy.balancer import Backend
    from wsgate.proxy.health import HealthChecks
    from wsgate.proxy.routing import LeafService, MirroringService, ProxyService

__all__ = ["COPY_DEADLINE", "MirrorCopy", "send_copy"]

log = Logger()

#: Longest life of one copy, from its start to the end of its answer.
COPY_DEADLINE = 300.0

#: Methods a copy may be sent again for, when a reused connection turns out closed (Go's rule).
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))


def send_copy(reactor: Any, health: HealthChecks, mirroring: MirroringService,
              mirror: str, target: ProxyService, source: CopySource,
              parts: tuple[bytes, ...], *, with_body: bool) -> None:
    """Send one copy of ``source`` (with the body ``parts``) to the service ``target``."""
    budget = mirroring.budget
    size = sum(len(part) for part in parts)
    if not budget.take(size):
        if budget.dropped == 1 or budget.dropped % 100 == 0:
            log.warn("mirroring {service}: {copies} copies in flight hold {held} bytes; a copy "
                     "for mirror {mirror} is dropped ({dropped} dropped so far)",
                     service=mirroring.name, copies=budget.copies, held=budget.bytes,
                     mirror=mirror, dropped=budget.dropped)
        return
    try:
        picked = target.pick_leaf(source.client_ip, source.cookies if target.sticky else None)
        if picked is None:
            budget.give(size)
            log.info("mirroring {service}: mirror {mirror} has no available server; copy "
                     "dropped", service=mirroring.name, mirror=mirror)
            return
        leaf, server, _ = picked
        address = leaf.address_of(server)
        head = copy_head(source, authority=address.authority, path_prefix=address.path,
                         pass_host_header=leaf.pass_host_header, with_body=with_body)
    except Exception:
        budget.give(size)
        raise
    copy = MirrorCopy(reactor, health, leaf, server, address, [head, *parts],
                      source.head.method, upgrade=source.head.is_upgrade,
                      on_done=lambda: budget.give(size), label=f"{mirroring.name}->{mirror}")
    copy.start()


class MirrorCopy:
    """One copy on its way to one mirror server (a BackendListener)."""

    def __init__(self, reactor: Any, health: HealthChecks, leaf: LeafService, server: Backend,
                 address: BackendAddress, payload: Sequence[bytes], method: str, *,
                 upgrade: bool, on_done: Callable[[], None], label: str) -> None:
        self.reactor = reactor
        self.health = health
        self.leaf = leaf
        self.server = server
        self.address = address
        self.payload = list(payload)
        self.method = method
        self.upgrade = upgrade
        self.on_done = on_done
        self.label = label
        self.parser = ResponseHeadParser(method)
        self.body: BodyReader | None = None
        self.backend: BackendConnection | None = None
        self.timer: Any = None
        self.started = 0.0
        self.done = False
        self.answered = False
        self.reused = False
        self.retried = False
        self.keep_alive = False
        self.status = 0

    def start(self) -> None:
        self.leaf.acquire(self.server)
        self.started = self.reactor.seconds()
        self._arm(COPY_DEADLINE)
        pooled = None if self.upgrade else self.leaf.pool.take(self.address)
        if pooled is not None:
            self._ready(pooled)
        else:
            self._dial()

    def _dial(self) -> None:
        try:
            d = self.leaf.connect(self.address)
        except Exception as exc:  # e.g. TLS settings that cannot make a context
            self._end(False, f"cannot connect: {exc}")
            return
        d.addCallbacks(self._ready, self._connect_failed)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        left = COPY_DEADLINE - (self.reactor.seconds() - self.started)
        self.timer = self.reactor.callLater(max(0.0, min(seconds, left)), self._timed_out)

    def _disarm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _ready(self, conn: BackendConnection) -> None:
        if self.done:
            conn.close()
            return
        self.backend = conn
        conn.listener = self
        conn.used += 1
        self.reused = conn.used > 1
        conn.transport.writeSequence(self.payload)
        if self.leaf.response_header_timeout > 0:
            self._arm(self.leaf.response_header_timeout)

    def _connect_failed(self, failure: Failure) -> None:
        self._end(False, failure.getErrorMessage())

    def _timed_out(self) -> None:
        self.timer = None
        self._end(False, "no complete answer in time")

    # -- BackendListener ------------------------------------------------------------------------
    def backend_data(self, data: bytes) -> None:
        if self.done:
            return
        self.answered = True
        while self.body is None:
            try:
                found = self.parser.feed(data)
            except HTTPParseError as exc:
                self._end(False, f"invalid response: {exc.reason}")
                return
            if found is None:
                return
            head, data = found
            if head.is_informational:
                continue
            if head.status == 101:
                self._end(True, "101: the upgrade copy is not used")
                return
            self.keep_alive = ("close" not in head.connection and head.version != "1.0"
                               and head.body_kind is not BodyKind.UNTIL_CLOSE)
            self.body = BodyReader(head.body_kind, head.content_length or 0, status=502)
            self.status = head.status
            self._arm(COPY_DEADLINE)
        try:
            _, done, extra = self.body.feed(data)
        except HTTPParseError as exc:
            self._end(False, f"invalid response body: {exc.reason}")
            return
        if done:
            self._end(self.status < 500, f"status {self.status}",
                      reusable=self.keep_alive and not extra)

    def backend_lost(self, reason: Failure) -> None:
        if self.done:
            return
        self.backend = None
        if (self.reused and not self.answered and not self.retried
                and self.method in _IDEMPOTENT and len(self.payload) == 1):
            # A pooled connection the server had closed: send the copy on a new one.
            self.retried = True
            self.reused = False
            self.parser = ResponseHeadParser(self.method)
            self._dial()
            return
        if self.body is not None and self.body.kind is BodyKind.UNTIL_CLOSE:
            self._end(self.status < 500, f"status {self.status}")
            return
        self._end(False, f"connection closed: {reason.getErrorMessage()}")

    # -- end ------------------------------------------------------------------------------------
    def _end(self, ok: bool, why: str, reusable: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self._disarm()
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.listener = None
            if reusable:
                self.leaf.pool.give_back(backend)
            else:
                backend.abort()
        self.leaf.release(self.server)
        if ok:
            self.health.record_success(self.leaf.name, self.server.url)
        else:
            self.health.record_failure(self.leaf.name, self.server.url)
        log.debug("mirror copy {label} to {backend}: {why}", label=self.label,
                  backend=str(self.address), why=why)
        self.on_done()
