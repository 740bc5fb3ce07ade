"""What a request needs beyond its server, gathered while its service tree chooses one:
copies for mirroring services, a fallback for failover ``errors``.

The data path makes a :class:`RequestHooks` for requests to a ``hooked`` service and passes it
down ``pick_leaf``; each mirroring service met on the way adds the mirrors its counters chose
(:class:`MirrorJob`), each failover with ``errors`` whose main side was taken adds its
:class:`~wsgate.proxy.failover.FailoverStep`. When anything was added, the exchange carries
the hooks and calls them at four points:

- ``on_body``: each piece of request body forwarded; a bounded copy is kept when a fallback
  or a mirror needs the body again (:class:`~wsgate.proxy.body_copy.BodyCopy`);
- ``divert``: a final answer (or the proxy's own 502/504) of the main side, before anything
  of it reaches the client; a listed status sends the request to the fallback instead;
- ``cancel``: the client went away before the answer was complete (no copies then, as in
  Traefik);
- ``finish``: the exchange is over (a WebSocket's at the end of its session): copies go out.

This module is the glue between those decisions and :class:`wsgate.proxy.frontend.Exchange`;
it reads the exchange's ``head``, ``forward``, ``body``, ``response``, ``done``,
``page_code``, ``upgrade``, ``ctx`` and ``conn``, and acts through ``client_error`` and
``redirect`` only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from twisted.logger import Logger

from wsgate.http.errors import HTTPParseError
from wsgate.http.head import BodyKind, RequestHead
from wsgate.http.serialize import error_response
from wsgate.proxy.body_copy import BodyCopy, effective_limit
from wsgate.proxy.failover import TOO_LARGE_BODY, FailoverStep
from wsgate.proxy.mirror_client import send_copy
from wsgate.proxy.mirroring import CopySource
from wsgate.proxy.sticky import parse_cookies

if TYPE_CHECKING:
    from wsgate.proxy.frontend import Exchange
    from wsgate.proxy.routing import MirroringService, ProxyService

__all__ = ["MirrorJob", "RequestHooks"]

log = Logger()


class MirrorJob(NamedTuple):
    """The mirrors one mirroring service chose for a request."""

    service: MirroringService
    mirrors: tuple[tuple[str, int, ProxyService], ...]


class RequestHooks:
    """One request's mirrors and failover steps, and the body copy they share."""

    __slots__ = ("copy", "failovers", "finished", "mirrors", "source")

    def __init__(self) -> None:
        #: Failover steps on the way to the current server, outermost first.
        self.failovers: list[FailoverStep] = []
        self.mirrors: list[MirrorJob] = []
        self.copy: BodyCopy | None = None
        self.source: CopySource | None = None
        self.finished = False

    @property
    def active(self) -> bool:
        """Whether the choice added anything (else the exchange need not carry the hooks)."""
        return bool(self.failovers or self.mirrors)

    # -- while the service tree chooses ----------------------------------------------------------
    def mark(self) -> tuple[int, int]:
        return len(self.failovers), len(self.mirrors)

    def reset(self, mark: tuple[int, int]) -> None:
        """Take back what a child added that could not serve the request after all."""
        del self.failovers[mark[0]:]
        del self.mirrors[mark[1]:]

    def add_failover(self, step: FailoverStep) -> None:
        self.failovers.append(step)

    def add_mirrors(self, service: MirroringService,
                    mirrors: tuple[tuple[str, int, ProxyService], ...]) -> None:
        self.mirrors.append(MirrorJob(service, mirrors))

    # -- before the exchange ---------------------------------------------------------------------
    def refusal(self, head: RequestHead) -> bytes | None:
        """The 413 answer for a body announced larger than a failover's maxRequestBodyBytes
        (the main service is not contacted, as in Traefik), or None."""
        length = head.content_length
        if length is None or head.chunked:
            return None
        for step in self.failovers:
            if step.refuses(length):
                log.info("413 for {method} {target}: body of {length} bytes over "
                         "maxRequestBodyBytes ({limit}) of failover {service}",
                         method=head.method, target=head.target, length=length,
                         limit=step.max_body, service=step.service)
                keep = head.keep_alive and not head.is_upgrade
                answer = error_response(413, TOO_LARGE_BODY, close=not keep)
                if head.method == "HEAD":
                    answer = answer[: answer.index(b"\r\n\r\n") + 4]
                return answer
        return None

    def attach(self, exchange: Exchange) -> None:
        """The exchange that serves the request: what copies are made from, and whether a
        copy of its body is kept (and up to what size). The hooks keep no reference to the
        exchange (each call gets it), so a held body goes with the hooks, without a cycle."""
        conn = exchange.conn
        ctx = exchange.ctx
        head = exchange.head
        ep = conn.ep
        self.source = CopySource(
            head=exchange.forward, client_ip=conn.client_ip, tls=conn.tls,
            trusted=ctx is not None or ep.trusts(conn.client_ip), server_name=ep.hostname,
            not_append_xff=ep.not_append_xff,
            suppress_xff=ctx is not None and ctx.suppress_xff,
            cookies=parse_cookies(head.get_all("Cookie")) if self.mirrors else None)
        limits = [effective_limit(step.max_body) for step in self.failovers]
        limits += [effective_limit(job.service.max_body_size) for job in self.mirrors
                   if job.service.mirror_body]
        body = exchange.body
        if not limits or body is None or body.kind is BodyKind.NONE:
            return
        limit = max(limits)
        if head.content_length is not None and not head.chunked and \
                head.content_length > limit:
            log.info("{method} {target}: body of {length} bytes is not kept (over {limit} "
                     "bytes): it cannot go to a failover's fallback or to mirrors",
                     method=head.method, target=head.target, length=head.content_length,
                     limit=limit)
            return
        self.copy = BodyCopy(limit)

    # -- while the exchange runs -----------------------------------------------------------------
    def on_body(self, exchange: Exchange, data: bytes) -> None:
        """A piece of request body went (or is going) to the server."""
        copy = self.copy
        body = exchange.body
        if copy is None or copy.dropped or body is None:
            return
        total = body.body_bytes
        kept = copy.add(data, total)
        for step in self.failovers:
            if step.refuses(total):
                if exchange.response is None and not exchange.done:
                    exchange.client_error(HTTPParseError(
                        413, f"request body over maxRequestBodyBytes ({step.max_body}) of "
                             f"failover {step.service}"))
                    return
                copy.drop()
                kept = False
                break
        if not kept:
            log.info("{method} {target}: request body over {limit} bytes; no copy kept for "
                     "a failover's fallback or for mirrors", method=exchange.head.method,
                     target=exchange.head.target, limit=copy.limit)

    def divert(self, exchange: Exchange, status: int) -> bool:
        """A final answer of ``status`` (the server's, or the proxy's 502/504) came before
        anything was sent to the client: True when a failover sends the request to its
        fallback instead (the exchange is then redirected)."""
        if not self.failovers or exchange.page_code:
            return False
        while self.failovers:
            step = self.failovers.pop()
            if step.catches(status):
                break
        else:
            return False
        head = exchange.head
        body = exchange.body
        parts: list[bytes] = []
        if body is not None and body.kind is not BodyKind.NONE:
            copy = self.copy
            if not body.done or copy is None or copy.dropped:
                log.info("{method} {target}: status {status} is failover {service}'s to send "
                         "to {fallback}, but the request body cannot be sent again ({why})",
                         method=head.method, target=head.target, status=status,
                         service=step.service, fallback=step.fallback.name,
                         why="not all received yet" if not body.done else "not kept")
                return False
            parts = list(copy.chunks)
        conn = exchange.conn
        cookies = parse_cookies(head.get_all("Cookie")) if step.fallback.sticky else None
        picked = step.fallback.pick_leaf(conn.client_ip, cookies, upgrade=exchange.upgrade,
                                         hooks=self)
        log.info("{method} {target} on {ep}: status {status} from service {service}'s main "
                 "side; sent to its fallback {fallback}", method=head.method,
                 target=head.target, ep=conn.ep.name, status=status, service=step.service,
                 fallback=step.fallback.name)
        exchange.redirect(step.fallback, picked, parts, status)
        return True

    def cancel(self) -> None:
        """The client left before its answer was complete: no copies (as in Traefik)."""
        self.finished = True
        self.copy = None

    def finish(self, exchange: Exchange) -> None:
        """The exchange is over: send the copies, if the whole request was received."""
        if self.finished:
            return
        self.finished = True
        copy, self.copy = self.copy, None
        source = self.source
        if not self.mirrors or source is None:
            return
        body = exchange.body
        head = source.head
        if body is not None and not body.done:
            log.debug("{method} {target}: not mirrored, the request body was not all received",
                      method=head.method, target=head.target)
            return
        has_body = head.body_kind is not BodyKind.NONE
        ep = exchange.conn.ep
        for job in self.mirrors:
            service = job.service
            parts: tuple[bytes, ...] = ()
            with_body = True
            if has_body and not service.mirror_body:
                with_body = False
            elif has_body:
                if copy is None or copy.dropped or \
                        0 <= service.max_body_size < copy.payload:
                    log.debug("{method} {target}: not mirrored by {service}, the body is over "
                              "its maxBodySize", method=head.method, target=head.target,
                              service=service.name)
                    continue
                parts = tuple(copy.chunks)
            for name, _, target in job.mirrors:
                try:
                    send_copy(ep.reactor, ep.gateway.health, service, name, target, source,
                              parts, with_body=with_body)
                except Exception:
                    # A copy must never disturb the exchange that is ending; say why it failed.
                    log.failure("mirroring {service}: the copy for mirror {mirror} could not "
                                "be sent", service=service.name, mirror=name)
