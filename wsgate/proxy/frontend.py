"""The client-facing connection: heads in, routing, exchanges with backends, relays out.

One ``FrontendConnection`` per accepted connection. It parses request heads (sans-I/O parser),
routes each through the entryPoint's current routing table, and runs one ``Exchange`` at a time
with a backend: pipelined requests wait (reading paused, so memory stays bounded) and are
answered in order. An upgrade that the backend accepts with 101 turns the connection into a
``WebSocketRelay``; a route to an in-process service hands the connection to that protocol.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from wsgate.http.body import BodyReader
from wsgate.http.coding import HeldBody, StreamShaper, make_encoder
from wsgate.http.errors import HTTPParseError
from wsgate.http.forwarding import forward_target, rewrite_request_head, rewrite_response_headers
from wsgate.http.head import BodyKind, RequestHead, ResponseHead
from wsgate.http.parser import RequestHeadParser, ResponseHeadParser, build_request_head
from wsgate.http.serialize import error_response, serialize_request, serialize_response
from wsgate.http.target import clean_target
from wsgate.middlewares import Answer, BodyTooLarge, Defer, RequestContext
from wsgate.middlewares.base import text_answer
from wsgate.middlewares.gocompat import status_text
from wsgate.ops.observer import (
    REASON_BACKEND_REFUSED,
    REASON_BACKEND_TIMEOUT,
    REASON_BACKEND_UNREACHABLE,
    REASON_BAD_UPGRADE,
    REASON_CLIENT_GONE,
    REASON_INTERNAL,
    REASON_LIMIT,
    REASON_MIDDLEWARE,
    REASON_NO_ROUTER,
    REASON_NO_SERVER,
    RequestRecord,
    SessionRecord,
)
from wsgate.proxy.backend import BackendConnection, set_nodelay
from wsgate.proxy.errors import UpstreamError
from wsgate.proxy.relay import WebSocketRelay
from wsgate.proxy.service_hooks import RequestHooks
from wsgate.proxy.sticky import parse_cookies
from wsgate.rules import RouteRequest
from wsgate.websocket import CloseCode

if TYPE_CHECKING:
    from wsgate.middlewares.error_pages import ErrorPagesMiddleware
    from wsgate.proxy.balancer import Backend
    from wsgate.proxy.dataplan import DataPlan
    from wsgate.proxy.entrypoint import EntryPointRuntime
    from wsgate.proxy.routing import LeafService, ProxyService, RouteDecision

log = Logger()

#: Body bytes held while the backend connection is being opened; beyond it reading pauses.
_PENDING_LIMIT = 256 * 1024

#: Longest response head of an in-process service that the middlewares get to see.
_MAX_INNER_HEAD = 64 * 1024

#: Request headers not passed to an error page service: framing, hop-by-hop, the upgrade.
_NOT_FOR_PAGES = frozenset(("connection", "upgrade", "keep-alive", "te", "trailer",
                            "transfer-encoding", "content-length", "expect"))

#: Methods whose requests may be sent again when a reused connection fails (as Go's
#: Request.isReplayable: the safe methods; others only with an Idempotency-Key).
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))


@implementer(IPushProducer)
class _Reading:
    """One transport's reading side as a producer for another; never closes it on stop."""

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """Each side's end is decided by the exchange, not by the other side's loss."""


@implementer(IHalfCloseableProtocol)
class FrontendConnection(Protocol):

    transport: Any
    def __init__(self, ep: EntryPointRuntime, tls: bool = False) -> None:
        self.ep = ep
        self.tls = tls
        self.parser = RequestHeadParser(ep.max_header_bytes, ep.max_headers)
        self.pending = b""
        self.exchange: Exchange | LocalAnswer | _Waiting | None = None
        self.relay: WebSocketRelay | None = None
        self.inner: Protocol | None = None
        self.timer: Any = None
        self.client_ip = ""
        self.client_port = 0
        #: Middleware context of a request handed to an in-process service (closed with it).
        self.inner_ctx: tuple[Any, RequestContext] | None = None
        self.closed = False
        #: loseConnection was called: no further request is read or dispatched.
        self.closing = False
        #: The client sent FIN: answer what was received, then close.
        self.read_closed = False
        #: The process is shutting down: finish the request in progress, then close.
        self.draining = False
        #: Inside ``_process``: an exchange ending synchronously leaves the next request to it
        #: (a loop, not a recursion: thousands of pipelined requests can arrive in one read).
        self._processing = False
        self.requests = 0

    # -- connection -----------------------------------------------------------------------------
    def connectionMade(self) -> None:
        set_nodelay(self.transport)
        peer = self.transport.getPeer()
        self.client_ip = getattr(peer, "host", "")
        self.client_port = getattr(peer, "port", 0)
        self.ep.connection_opened(self)
        self._arm_timer(self.ep.read_timeout, "reading the request head")

    def _arm_timer(self, seconds: float, what: str) -> None:
        self._cancel_timer()
        if seconds and seconds > 0:
            self.timer = self.ep.reactor.callLater(seconds, self._timed_out, what)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None

    def _timed_out(self, what: str) -> None:
        self.timer = None
        log.debug("closing {peer}: timeout while {what}", peer=self.client_ip, what=what)
        if isinstance(self.exchange, Exchange):
            self.exchange.client_error(HTTPParseError(
                408, "request body not received within the entryPoint's readTimeout"))
            return
        if self.parser.buffered and self.exchange is None:
            self.transport.write(error_response(408, close=True))
        self.close()

    def dataReceived(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.from_client(data)
        elif self.inner is not None:
            self.inner.dataReceived(data)
        elif self.exchange is not None:
            self.exchange.client_data(data)
        elif self.closing:
            return
        else:
            self._process(data)

    def readConnectionLost(self) -> None:
        self.read_closed = True
        if self.relay is not None:
            self.relay.client_read_closed()
        elif self.inner is not None:
            half = IHalfCloseableProtocol(self.inner, None)
            if half is not None:
                half.readConnectionLost()
            else:
                self.close()
        elif self.exchange is not None:
            self.exchange.client_eof()
        elif not self._processing:
            self.close()

    def close(self) -> None:
        """Close after what is buffered has been written; read nothing more."""
        self.closing = True
        self._cancel_timer()
        # A registered producer (a backend streaming a response) would hold the close back.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        if self.inner is not None:
            half = IHalfCloseableProtocol(self.inner, None)
            if half is not None:
                half.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True
        self._cancel_timer()
        if self.relay is not None:
            self.relay.side_lost("client")
        elif self.inner is not None:
            self.inner.connectionLost(reason)
            if self.inner_ctx is not None:
                chain, ctx = self.inner_ctx
                chain.on_close(ctx)
        elif self.exchange is not None:
            self.exchange.client_lost()
        self.ep.connection_closed(self)

    # -- requests -------------------------------------------------------------------------------
    def _process(self, data: bytes) -> None:
        """Parse and dispatch requests from ``data`` until one is in progress.

        Exchanges that end at once (a 404, a 503) leave their surplus in ``self.pending`` and
        the loop goes on with it, so any number of pipelined requests costs no stack.
        """
        self._processing = True
        try:
            while True:
                try:
                    found = self.parser.feed(data)
                except HTTPParseError as exc:
                    self._reject(exc)
                    return
                if found is None:
                    if self.read_closed:
                        self.close()
                    elif self.timer is None:
                        self._arm_timer(self.ep.read_timeout, "reading the request head")
                    return
                head, rest = found
                self._cancel_timer()
                self.requests += 1
                self._dispatch(head, rest)
                if (self.exchange is not None or self.relay is not None
                        or self.inner is not None or self.closing):
                    return
                data, self.pending = self.pending, b""
                if not data:
                    if self.read_closed:
                        self.close()
                    return
        finally:
            self._processing = False

    def _reject(self, exc: HTTPParseError) -> None:
        log.info("rejecting request from {peer} on {ep}: {status} {reason}",
                 peer=self.client_ip, ep=self.ep.name, status=exc.status, reason=exc.reason)
        self.transport.write(error_response(exc.status, close=True))
        self.close()

    def _dispatch(self, head: RequestHead, rest: bytes) -> None:
        ep = self.ep
        target = head.target
        if head.target_form == "origin" and (
                "%" in target or "/." in target or "//" in target or ";" in target):
            # Traefik's entryPoint clean-up, for routing and forwarding alike: escaped
            # unreserved characters decoded (reserved ones such as %2F and %3A kept, hex in
            # upper case), dot segments and repeated slashes removed (sanitizePath), ';' in
            # the query as '&' (or %3B with encodeQuerySemicolons).
            cleaned = clean_target(target, sanitize=ep.sanitize_path,
                                   query_semicolons="encode" if ep.encode_query_semicolons
                                   else "ampersand")
            if cleaned != target:
                head = head._replace(target=cleaned)
        record = RequestRecord.for_head(ep.name, head, client_ip=self.client_ip,
                                        client_port=self.client_port, tls=self.tls,
                                        start=time.time())
        request = RouteRequest.build(head.method, head.host, head.origin_form, head.headers,
                                     self.client_ip, tls=self.tls)
        decision = ep.route(request)
        if decision is None:
            self._local_answer(head, rest, 404, record, REASON_NO_ROUTER)
            return
        record.router = decision.router
        record.service = decision.service_name
        chain = decision.chain
        if chain is None:
            self._proceed(head, head, rest, decision, None, record)
            return
        # The entryPoint's forwarded-header rules apply before the middlewares, which must see
        # (and may add to) the X-Forwarded-* headers the backend will get.
        forward = head._replace(headers=tuple(rewrite_request_head(
            head, client_ip=self.client_ip, tls=self.tls,
            trusted=ep.trusts(self.client_ip), server_name=ep.hostname,
            backend_hostport=None, pass_host_header=True, not_append_xff=True)))
        ctx = RequestContext.from_head(forward, client_ip=self.client_ip, tls=self.tls,
                                       entry_point=ep.name, router=decision.router,
                                       start=time.monotonic())
        verdict = chain.on_request(ctx)
        if isinstance(verdict, Defer):
            self._wait_for(head, forward, rest, decision, ctx, verdict, record)
            return
        self._after_chain(head, forward, rest, decision, ctx, verdict, record)

    def _wait_for(self, head: RequestHead, forward: RequestHead, rest: bytes,
                  decision: RouteDecision, ctx: RequestContext, verdict: Defer,
                  record: RequestRecord) -> None:
        """A middleware needs I/O (forwardAuth, a bcrypt check, a rate-limit wait): hold the
        connection's input until its answer is in."""
        from wsgate.middlewares.forward_auth_client import resolve

        waiting = _Waiting(self, head)
        self.exchange = waiting
        self.pending = rest + self.pending
        self.transport.pauseProducing()
        d = resolve(verdict, reactor=self.ep.reactor, auth_client=self.ep.gateway.auth_client,
                    read_body=waiting.read_body)

        def failed(failure: Failure) -> Answer:
            exc = failure.value
            if isinstance(exc, HTTPParseError):  # the body a middleware wanted was broken
                log.info("bad request body from {peer} for router {router}: {reason}",
                         peer=self.client_ip, router=decision.router, reason=exc.reason)
                return text_answer(exc.status)
            log.failure("middleware of router {router} failed", failure,
                        router=decision.router)
            return text_answer(500)

        def decided(final: Any) -> None:
            chain = decision.chain
            assert chain is not None
            if self.exchange is not waiting or self.closed or self.closing:
                chain.on_close(ctx)
                return
            self.exchange = None
            pending, self.pending = self.pending, b""
            self.transport.resumeProducing()
            if waiting.body_cut:
                # Part of the body was read and dropped (too large): what follows cannot be
                # told from a next request, so answer without a body and close.
                head_ = head._replace(content_length=None, chunked=False,
                                      connection=("close",))
                self._after_chain(head_, forward, b"", decision, ctx, final, record)
                return
            self._after_chain(head, forward, pending, decision, ctx, final, record)
            if self.exchange is None and self.relay is None and self.inner is None \
                    and not self.closing and not self._processing:
                more, self.pending = self.pending, b""
                if more:
                    self._process(more)

        d.addErrback(failed)
        d.addCallback(decided)

    def _after_chain(self, head: RequestHead, forward: RequestHead, rest: bytes,
                     decision: RouteDecision, ctx: RequestContext, verdict: Any,
                     record: RequestRecord) -> None:
        chain = decision.chain
        assert chain is not None
        if isinstance(verdict, Answer):
            keep = head.keep_alive and not head.is_upgrade
            payload = verdict.serialize(head_request=head.method == "HEAD", close=not keep)
            # Released first: the answer may go straight on to the next pipelined request,
            # which must find the slots of this one (inFlightReq) free.
            chain.on_close(ctx)
            self._local_answer(head, rest, verdict.status, record, REASON_MIDDLEWARE,
                               payload=payload)
            return
        if ctx.modified:
            forward = ctx.to_head()
        self._proceed(head, forward, rest, decision, ctx, record)

    def _proceed(self, head: RequestHead, forward: RequestHead, rest: bytes,
                 decision: RouteDecision, ctx: RequestContext | None,
                 record: RequestRecord) -> None:
        internal = decision.internal_factory
        if internal is not None:
            self._hand_over(internal, forward, rest, record, decision, ctx)
            return
        service = decision.service
        if service is None:
            log.warn("503 for {method} {target} on {ep}: router {router} has no usable "
                     "service {service}{problem}", method=head.method, target=head.target,
                     ep=self.ep.name, router=decision.router, service=decision.service_name,
                     problem=f" ({decision.problem})" if decision.problem else "")
            self._local_answer(head, rest, 503, record, REASON_NO_SERVER, decision, ctx)
            return
        cookies = parse_cookies(head.get_all("Cookie")) if service.sticky else None
        # Mirroring and failover errors on the way down add their work to the hooks.
        hooks = RequestHooks() if service.hooked else None
        picked = service.pick_leaf(self.client_ip, cookies, upgrade=head.is_upgrade,
                                   hooks=hooks)
        if picked is None:
            log.warn("503 for {method} {target} on {ep}: service {service} has no available "
                     "server", method=head.method, target=head.target, ep=self.ep.name,
                     service=decision.service_name)
            self._local_answer(head, rest, 503, record, REASON_NO_SERVER, decision, ctx)
            return
        if hooks is not None and not hooks.active:
            hooks = None
        refusal = hooks.refusal(head) if hooks is not None else None
        if refusal is not None:
            self._local_answer(head, rest, 413, record, REASON_LIMIT, decision, ctx,
                               payload=refusal)
            return
        exchange = Exchange(self, head, decision, service, picked, forward=forward, ctx=ctx,
                            record=record)
        if hooks is not None:
            exchange.hooks = hooks
            hooks.attach(exchange)
        self.exchange = exchange
        exchange.start(rest)

    def _local_answer(self, head: RequestHead, rest: bytes, status: int,
                      record: RequestRecord | None = None, reason: str = "",
                      decision: RouteDecision | None = None, ctx: RequestContext | None = None,
                      payload: bytes | None = None) -> None:
        """Answer from the proxy itself, skipping the request body."""
        keep = head.keep_alive and not head.is_upgrade
        headers: list[tuple[str, str]] = []
        if decision is not None and decision.chain is not None and ctx is not None:
            headers = decision.chain.on_response(ctx, status, headers)
            decision.chain.on_close(ctx)
        answer = LocalAnswer(self, head, status, keep, payload=payload, headers=headers)
        if record is not None:
            record.status = status
            record.duration = max(0.0, time.time() - record.start)
            record.response_bytes = _body_size(answer._response(close=not keep))
            observer = self.ep.observer
            observer.request_done(record)
            if head.is_upgrade and reason:
                observer.handshake_failed(self.ep.name, record.router, record.service, reason)
        self.exchange = answer
        answer.start(rest)

    def _hand_over(self, factory: Any, head: RequestHead, rest: bytes,
                   record: RequestRecord | None = None,
                   decision: RouteDecision | None = None,
                   ctx: RequestContext | None = None) -> None:
        """Give the connection to an in-process service; it sees the request from its start.

        A service that can say how it answered (``on_answered``, see wsgate.ops.internal) gets
        the request recorded like any other (metrics and access log, with addInternals).
        The route's middlewares see the head of its response (a 101 included) as they see a
        backend's, and are closed with the connection.
        """
        proto = factory.buildProtocol(self.transport.getPeer())
        if proto is None:
            self._local_answer(head, rest, 503, record, REASON_INTERNAL, decision, ctx)
            return
        if record is not None and hasattr(proto, "on_answered"):
            proto.on_answered = lambda status, size: self._internal_answered(record, status,
                                                                             size)
        self.inner = proto
        transport = self.transport
        chain = decision.chain if decision is not None else None
        if chain is not None and ctx is not None:
            self.inner_ctx = (chain, ctx)
            if any(m.wants_response for m in chain):
                transport = _ResponseHeadFilter(transport, chain, ctx)
        proto.makeConnection(transport)
        proto.dataReceived(serialize_request(head.method, head.target, head.headers,
                                             version=head.version) + rest)

    def _internal_answered(self, record: RequestRecord, status: int, body_bytes: int) -> None:
        record.status = status
        record.response_bytes = body_bytes
        record.duration = max(0.0, time.time() - record.start)
        self.ep.observer.request_done(record)

    def drain(self) -> None:
        """Shutdown: finish what is in progress, then close; WebSockets get 1001."""
        self.draining = True
        if self.relay is not None:
            self.relay.close(CloseCode.GOING_AWAY, "server shutting down")
        elif self.inner is not None:
            if not _going_away(self.inner):
                self.close()
        elif self.exchange is None:
            self.close()

    def exchange_done(self, keep_alive: bool) -> None:
        """The current exchange is over; go on with the next request or close."""
        self.exchange = None
        if not keep_alive or self.closed or self.closing or self.draining:
            self.close()
            return
        if self.read_closed and not self.pending:
            self.close()
            return
        self.transport.resumeProducing()
        self._arm_timer(self.ep.idle_timeout, "waiting for the next request")
        if self._processing:
            return  # _process goes on with self.pending
        pending, self.pending = self.pending, b""
        if pending:
            self._process(pending)

    def hold(self, data: bytes) -> None:
        """Bytes of the next pipelined request: keep them and stop reading until it is time."""
        self.pending += data
        self.transport.pauseProducing()

    def become_relay(self, relay: WebSocketRelay) -> None:
        self.exchange = None
        self.relay = relay
        # The transport calls the relay directly from now on (one call less per read).
        self.dataReceived = relay.from_client  # type: ignore[method-assign]


class _ResponseHeadFilter:
    """The client transport as an in-process service writes to it: the head of its final
    response (or 101) goes through the route's middlewares, as a backend's would; the rest
    passes as it is. A head that cannot be parsed passes untouched."""

    def __init__(self, transport: Any, chain: Any, ctx: RequestContext) -> None:
        self._transport = transport
        self._chain = chain
        self._ctx = ctx
        self._buffer = b""
        self._done = False
        # Interface checks (ISSLTransport for isSecure...) see the real transport's.
        directlyProvides(self, *providedBy(transport))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        if self._done:
            self._transport.write(data)
            return
        self._buffer += data
        while not self._done:
            end = self._buffer.find(b"\r\n\r\n")
            if end == -1:
                if len(self._buffer) > _MAX_INNER_HEAD:
                    self._flush()
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4:]
            self._write_head(head)

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def _write_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        headers = [(n.strip(), v.strip()) for n, sep, v in
                   (line.partition(":") for line in lines[1:]) if sep]
        if not (version.startswith("HTTP/") and code.isdigit()) or \
                len(headers) != len(lines) - 1:
            self._transport.write(head + b"\r\n\r\n")
            self._flush()
            return
        status = int(code)
        if 100 <= status < 200 and status != 101:
            self._transport.write(head + b"\r\n\r\n")  # interim: the final head follows
            return
        headers = self._chain.on_response(self._ctx, status, headers)
        self._transport.write(serialize_response(status, reason, headers,
                                                 version=version[5:] or "1.1"))
        self._flush()

    def _flush(self) -> None:
        self._done = True
        buffered, self._buffer = self._buffer, b""
        if buffered:
            self._transport.write(buffered)

    def loseConnection(self) -> None:
        self._flush()
        self._transport.loseConnection()


class _Waiting:
    """Stands in for the exchange while a middleware's deferred work runs.

    It also reads the request body when a middleware asks for it (forwardAuth
    ``forwardBody``): the body is read whole (up to the limit), handed to the middleware
    decoded, and put back in front of the pending bytes as it came, so that the exchange or
    the proxy's answer that follows reads it as usual.
    """

    def __init__(self, conn: FrontendConnection, head: RequestHead) -> None:
        self.conn = conn
        self.head = head
        self.body: BodyReader | None = None
        self.body_limit = -1
        self.raw: list[bytes] = []
        self.payload: list[bytes] = []
        self.body_wanted: defer.Deferred[Any] | None = None
        #: Part of the body was consumed and not put back (too large, broken).
        self.body_cut = False

    def read_body(self, limit: int) -> defer.Deferred[Any]:
        head = self.head
        if head.content_length is not None and 0 <= limit < head.content_length:
            # Known too large: refused without reading; the body is skipped as usual.
            return defer.succeed(BodyTooLarge(limit))
        self.body = BodyReader(head.body_kind, head.content_length or 0, decode_chunked=True)
        self.body_limit = limit
        d: defer.Deferred[Any] = defer.Deferred()
        self.body_wanted = d
        conn = self.conn
        data, conn.pending = conn.pending, b""
        if head.expects_continue and not self.body.done and not data and not conn.closed:
            conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._feed(data)
        if self.body_wanted is not None:
            if conn.closed or conn.read_closed:  # the rest of the body can never come
                self.client_eof()
            else:
                conn.transport.resumeProducing()
                conn._arm_timer(conn.ep.read_timeout, "reading the request body")
        return d

    def _feed(self, data: bytes) -> None:
        body = self.body
        assert body is not None
        try:
            payload, done, rest = body.feed(data)
        except HTTPParseError as exc:
            self.body_cut = True
            self._fire_error(exc)
            return
        self.raw.append(data[:len(data) - len(rest)])
        self.payload.append(payload)
        if 0 <= self.body_limit < body.body_bytes:
            self.body_cut = True
            self._fire(BodyTooLarge(self.body_limit))
            return
        if done:
            conn = self.conn
            conn.pending = b"".join(self.raw) + rest + conn.pending
            self._fire(b"".join(self.payload))

    def _fire(self, result: object) -> None:
        d, self.body_wanted = self.body_wanted, None
        self.raw = []
        self.payload = []
        conn = self.conn
        conn._cancel_timer()
        if not conn.closed:
            conn.transport.pauseProducing()
        if d is not None:
            d.callback(result)

    def _fire_error(self, exc: Exception) -> None:
        d, self.body_wanted = self.body_wanted, None
        self.conn._cancel_timer()
        if d is not None:
            d.errback(Failure(exc))

    def client_data(self, data: bytes) -> None:
        if self.body_wanted is not None:
            self._feed(data)
        else:
            self.conn.hold(data)

    def client_eof(self) -> None:
        """The answer still goes out once the middleware decided (unless it waits for a body
        that will not come)."""
        if self.body_wanted is not None:
            self.body_cut = True
            self._fire_error(HTTPParseError(400, "connection closed before the end of the "
                                                 "body"))

    def client_lost(self) -> None:
        """The decision finds the connection closed and releases the middlewares."""
        if self.body_wanted is not None:
            self.body_cut = True
            self._fire_error(HTTPParseError(400, "connection lost before the end of the body"))


class LocalAnswer:
    """An answer made by the proxy (404, 503...), after the request body has gone by."""

    def __init__(self, conn: FrontendConnection, head: RequestHead, status: int,
                 keep_alive: bool, *, payload: bytes | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.conn = conn
        self.head = head
        self.status = status
        self.keep_alive = keep_alive
        self.payload = payload
        self.headers = headers or []
        self.body = BodyReader(head.body_kind, head.content_length or 0)

    def _response(self, close: bool) -> bytes:
        if self.payload is not None:
            return self.payload
        return _for_method(self.head.method,
                           error_response(self.status, close=close, headers=self.headers))

    def start(self, rest: bytes) -> None:
        if self.head.expects_continue and not self.body.done and not rest:
            # The client waits for 100 Continue before sending its body, which is not wanted:
            # answer and close rather than wait for a body that may never come (RFC 9110
            # §10.1.1 lets the client send it anyway, so the connection cannot be reused).
            self.keep_alive = False
            self.conn.transport.write(self._response(close=True))
            self.conn.exchange_done(False)
            return
        self.conn.transport.write(self._response(close=not self.keep_alive))
        self.client_data(rest)
        if not self.body.done:
            # readTimeout covers the whole request, body included (as Go's ReadTimeout).
            self.conn._arm_timer(self.conn.ep.read_timeout, "reading the request body")

    def client_data(self, data: bytes) -> None:
        if not self.body.done:
            try:
                _, _, data = self.body.feed(data)
            except HTTPParseError as exc:
                self.conn.exchange = None
                self.conn._reject(exc)
                return
        if self.body.done:
            conn = self.conn
            if data:
                conn.hold(data)
            conn.exchange_done(self.keep_alive)

    def client_eof(self) -> None:
        self.conn.close()

    def client_lost(self) -> None:
        """Nothing to release."""


class Exchange:
    """One request forwarded to one backend server, and its response (or 101) back."""

    __slots__ = (
        "address",
        "answered",
        "attempts",
        "backend",
        "backend_reusable",
        "backoff",
        "body",
        "buffered",
        "buffered_len",
        "chain",
        "conn",
        "ctx",
        "decision",
        "done",
        "encoding",
        "ended",
        "forward",
        "head",
        "hooks",
        "leaf",
        "page_code",
        "page_origin",
        "picked",
        "plan",
        "record",
        "replay",
        "replay_len",
        "response",
        "response_body",
        "response_keep_alive",
        "response_parser",
        "reused",
        "server",
        "server_url",
        "service",
        "session",
        "set_cookies",
        "shaper",
        "started_at",
        "timer",
        "upgrade",
        "ws_slot",
    )

    def __init__(self, conn: FrontendConnection, head: RequestHead, decision: RouteDecision,
                 service: ProxyService, picked: tuple[LeafService, Backend, tuple[str, ...]],
                 *, forward: RequestHead | None = None, ctx: RequestContext | None = None,
                 record: RequestRecord | None = None) -> None:
        #: This upgrade holds one of its router's wsgate.maxConnections places (until _release).
        self.ws_slot = False
        #: What the route's middlewares ask of the data path (None: nothing, the fast path).
        self.plan: DataPlan | None = None
        #: Attempts made so far (retry, buffering's retryExpression).
        self.attempts = 1
        #: The waits between attempts (retry's backoff), made on the first retry.
        self.backoff: Iterator[float] | None = None
        #: A copy of the request body as sent, to send it again (None: not kept, or too large).
        self.replay: list[bytes] | None = None
        self.replay_len = 0
        #: The encoding chosen for the response (compress), from the request.
        self.encoding: str | None = None
        #: Reshapes the response body (compress, buffering's maxResponseBodyBytes).
        self.shaper: StreamShaper | HeldBody | None = None
        #: errors: the status the client gets while the error page is fetched (0: no page).
        self.page_code = 0
        self.page_origin = 0
        #: Mirror copies and failover errors of the service tree (see service_hooks).
        self.hooks: RequestHooks | None = None
        self.conn = conn
        self.head = head
        #: The head as it goes to the backend (rewritten by middlewares); ``head`` keeps the
        #: client's own, which decides framing and keep-alive.
        self.forward = forward if forward is not None else head
        self.ctx = ctx
        self.chain = decision.chain if ctx is not None else None
        self.record = record
        self.set_cookies = picked[2]
        self.ended = False
        self.server_url = ""
        self.session: SessionRecord | None = None
        self.started_at = time.monotonic()
        self.decision = decision
        self.service = service
        self.picked = picked
        self.upgrade = head.is_upgrade
        self.body = None if self.upgrade else BodyReader(head.body_kind,
                                                              head.content_length or 0)
        self.buffered: list[bytes] = []
        self.buffered_len = 0
        self.backend: BackendConnection | None = None
        self.leaf: Any = None
        self.server: Any = None
        self.address: Any = None
        self.response: ResponseHead | None = None
        self.response_parser = ResponseHeadParser(head.method)
        self.response_body: BodyReader | None = None
        self.response_keep_alive = False
        self.timer: Any = None
        self.done = False
        self.backend_reusable = True
        #: The backend connection came from the pool (it may have been closed meanwhile).
        self.reused = False
        #: The backend sent at least one byte for this request.
        self.answered = False
        if ctx is not None and decision.plan is not None:
            self._plan(decision.plan)

    def _plan(self, plan: DataPlan) -> None:
        self.plan = plan
        if plan.compress is not None and not self.upgrade:
            assert self.ctx is not None
            self.encoding = plan.compress.encoding_for(self.ctx)
        if (plan.replay_limit > 0 and self.body is not None
                and self.body.kind is not BodyKind.NONE):
            self.replay = []

    # -- start ----------------------------------------------------------------------------------
    def start(self, rest: bytes) -> None:
        if self.upgrade and not self._admit_websocket(rest):
            return
        self._dial()
        if rest:
            self.client_data(rest)
        if self.body is not None and not self.body.done and not self.done:
            # readTimeout covers the whole request, body included (as Go's ReadTimeout).
            self.conn._arm_timer(self.conn.ep.read_timeout, "reading the request body")

    def _dial(self) -> None:
        """Take the picked server: a pooled connection to it, or a new one."""
        self.leaf, server, _ = self.picked
        self.server = server
        self.address = self.leaf.address_of(server)
        self.server_url = server.url
        if self.record is not None:
            self.record.server_url = server.url
        self.leaf.acquire(server, self.upgrade)
        pooled = None if self.upgrade else self.leaf.pool.take(self.address)
        if pooled is not None:
            self._backend_ready(pooled)
        else:
            d = self.leaf.connect(self.address)
            d.addCallbacks(self._backend_ready, self._connect_failed)

    def _admit_websocket(self, rest: bytes) -> bool:
        """wsgate.maxConnections: an upgrade over the router's open sessions is answered 429
        before any backend is contacted."""
        policy = self.decision.ws
        limit = policy.max_connections if policy is not None else 0
        if limit <= 0:
            return True
        if self.conn.ep.gateway.router_sessions.acquire(self.decision.router, limit):
            self.ws_slot = True
            return True
        log.info("429 for {method} {target} on {ep}: router {router} has {limit} open "
                 "WebSocket sessions (maxConnections)", method=self.head.method,
                 target=self.head.target, ep=self.conn.ep.name, router=self.decision.router,
                 limit=limit)
        self.done = self.ended = True
        self.conn._local_answer(self.head, rest, 429, self.record, REASON_LIMIT,
                                self.decision, self.ctx)
        return False

    def _connect_failed(self, failure: Failure) -> None:
        exc = failure.value
        if not isinstance(exc, UpstreamError):
            exc = UpstreamError(502, failure.getErrorMessage(), backend=str(self.address))
        if self.plan is not None and self._retry(exc.status, exc.reason, network_error=True,
                                                 request_sent=False):
            return
        self._fail(exc)

    def _backend_ready(self, backend: BackendConnection) -> None:
        if self.done:
            backend.close()
            return
        self.backend = backend
        backend.listener = self
        backend.used += 1
        self.reused = backend.used > 1
        forward = self.forward
        ctx = self.ctx
        headers = rewrite_request_head(
            forward, client_ip=self.conn.client_ip, tls=self.conn.tls,
            # with middlewares, the untrusted X-Forwarded-* were already removed before them
            trusted=ctx is not None or self.conn.ep.trusts(self.conn.client_ip),
            server_name=self.conn.ep.hostname,
            backend_hostport=self.address.authority,
            pass_host_header=self.leaf.pass_host_header,
            not_append_xff=self.conn.ep.not_append_xff)
        if ctx is not None and ctx.suppress_xff:
            headers = [(n, v) for n, v in headers if n.lower() != "x-forwarded-for"]
        target = forward_target(forward)
        prefix = self.address.path
        if prefix:
            target = prefix + target
        data = [serialize_request(forward.method, target, headers)]
        data.extend(self.buffered)
        self.buffered = []
        self.buffered_len = 0
        backend.transport.writeSequence(data)
        if self.conn.transport is not None:
            self.conn.transport.resumeProducing()
        if self.body is not None and not self.body.done:
            backend.transport.registerProducer(_Reading(self.conn.transport), True)
        timeout = self.leaf.response_header_timeout
        if timeout > 0:
            self.timer = self.conn.ep.reactor.callLater(timeout, self._response_timed_out)

    # -- client side ----------------------------------------------------------------------------
    def client_data(self, data: bytes) -> None:
        if self.upgrade:
            if self.page_code:
                return  # the handshake failed: nothing goes to the error page service
            forward, surplus = data, b""
        elif self.body is not None and not self.body.done:
            try:
                forward, _, surplus = self.body.feed(data)
            except HTTPParseError as exc:
                self.client_error(exc)
                return
            if self.body.done:
                self.conn._cancel_timer()
                if self.backend is not None:
                    self.backend.transport.unregisterProducer()
        else:
            forward, surplus = b"", data
        if forward:
            if self.replay is not None:
                self._keep(forward)
            if self.hooks is not None:
                self.hooks.on_body(self, forward)
            if self.backend is not None:
                self.backend.transport.write(forward)
            else:
                self.buffered.append(forward)
                self.buffered_len += len(forward)
                if self.buffered_len > _PENDING_LIMIT:
                    self.conn.transport.pauseProducing()
        if surplus:
            self.conn.hold(surplus)

    def client_error(self, exc: HTTPParseError) -> None:
        """The request body is broken or late: no answer can be trusted; end it all."""
        log.info("bad request body from {peer}: {reason}", peer=self.conn.client_ip,
                 reason=exc.reason)
        self.done = True
        self._cancel_timer()
        self._abort_backend()
        self._release()
        if self.response is None:
            self.conn.transport.write(error_response(exc.status, close=True))
        self._end(exc.status if self.response is None else 0)
        self.conn.close()

    def client_eof(self) -> None:
        # A client that half-closes still gets its answer (HTTP/1.0 style); the backend keeps
        # working until the response ends.
        if self.body is not None and not self.body.done:
            self._abort_backend()
            self._release()
            self.conn.close()

    def client_lost(self) -> None:
        if not self.done:
            if self.hooks is not None:
                self.hooks.cancel()
            self._abort_backend()
            self._release()
            self._end()

    # -- backend side ---------------------------------------------------------------------------
    def backend_data(self, data: bytes) -> None:
        self.answered = True
        if self.response is None or self.response.is_informational:
            self._read_head(data)
        else:
            self._read_body(data)

    def _read_head(self, data: bytes) -> None:
        while True:
            try:
                found = self.response_parser.feed(data)
            except HTTPParseError as exc:
                self._fail(UpstreamError(502, f"invalid response: {exc.reason}",
                                         backend=str(self.address)))
                return
            if found is None:
                return
            head, data = found
            self._cancel_timer()
            self.response = head
            if head.is_informational:
                # Never to an HTTP/1.0 client, which does not expect them (RFC 9110 §15.2).
                if self.head.version != "1.0":
                    self.conn.transport.write(serialize_response(head.status, head.reason,
                                                                 head.headers))
                continue
            if head.status == 101:
                self._switch(head, data)
                return
            self._start_response(head)
            if data and self.response is head:  # not when the response was set aside
                self._read_body(data)
            return

    def _switch(self, head: ResponseHead, rest: bytes) -> None:
        requested = (self.head.upgrade_protocol or "").lower()
        got = (head.upgrade or "").split(",", 1)[0].strip().lower()
        if not self.upgrade or got != requested:
            self.response = None  # nothing of it was relayed: the client gets the 502
            self._fail(UpstreamError(
                502, f"101 with Upgrade {head.upgrade!r} for a request that asked for "
                     f"{self.head.upgrade!r}", backend=str(self.address),
                kind=REASON_BAD_UPGRADE))
            return
        assert self.backend is not None
        self.done = True
        headers = list(head.headers)
        if self.chain is not None and self.ctx is not None:
            headers = self.chain.on_response(self.ctx, 101, headers)
        for cookie in self.set_cookies:
            headers.append(("Set-Cookie", cookie))
        self.conn.transport.write(serialize_response(101, head.reason, headers))
        record = self.record
        if record is not None:
            record.status = 101
            record.origin_status = 101
            record.duration = time.monotonic() - self.started_at
            self.session = SessionRecord(record, opened_at=time.time())
            observer = self.conn.ep.observer
            observer.websocket_opened(self.session)
            if not observer.keeps_session_headers:
                record.headers = record.response_headers = ()
        extensions = (head.get("Sec-WebSocket-Extensions") or "").lower()
        relay = WebSocketRelay(self.conn.transport, self.backend.transport,
                               deflate="permessage-deflate" in extensions,
                               on_done=_SessionEnd(self), policy=self.decision.ws,
                               clock=self.conn.ep.reactor, name=self.decision.router)
        self.backend.listener = _RelayBackend(relay)
        self.backend.dataReceived = relay.from_backend  # type: ignore[method-assign]
        self.conn.become_relay(relay)
        gateway = self.conn.ep.gateway
        gateway.health.record_success(self.leaf.name, self.server_url)
        gateway.open_relays.add(self.leaf.name, self.server_url, relay)
        if rest:
            relay.from_backend(rest)
        if self.conn.pending:
            early, self.conn.pending = self.conn.pending, b""
            relay.from_client(early)
        self.conn.transport.resumeProducing()

    def _start_response(self, head: ResponseHead) -> None:
        if self.hooks is not None and self.hooks.divert(self, head.status):
            return
        if self.plan is not None and self._divert(head):
            return
        client_keep = self.head.keep_alive and not self.upgrade
        kind = head.body_kind
        # An HTTP/1.0 client cannot read chunked coding (RFC 9112 §6.1): it gets the decoded
        # body, delimited by closing the connection.
        dechunk = kind is BodyKind.CHUNKED and self.head.version == "1.0"
        if kind is BodyKind.UNTIL_CLOSE or dechunk:
            client_keep = False
        self.response_keep_alive = client_keep
        headers = rewrite_response_headers(head.headers)
        status = self.page_code or head.status
        if self.chain is not None and self.ctx is not None:
            headers = self.chain.on_response(self.ctx, status, headers)
        for cookie in self.set_cookies:
            headers.append(("Set-Cookie", cookie))
        if self.record is not None:
            self.record.status = status
            self.record.origin_status = self.page_origin or head.status
        health = self.conn.ep.gateway.health
        if head.status >= 500:
            health.record_failure(self.leaf.name, self.server_url)
        else:
            health.record_success(self.leaf.name, self.server_url)
        if self.plan is not None and self._shape(head, status, headers, client_keep):
            return
        if kind is BodyKind.CHUNKED and not dechunk:
            headers.append(("Transfer-Encoding", "chunked"))
        if not client_keep:
            headers.append(("Connection", "close"))
        elif self.head.version == "1.0":
            headers.append(("Connection", "keep-alive"))
        reason = head.reason if status == head.status else status_text(status)
        self.conn.transport.write(serialize_response(status, reason, headers, version="1.1"))
        self.response_body = BodyReader(kind, head.content_length or 0, status=502,
                                        decode_chunked=dechunk)
        if self.response_body.done:
            self._finish()
            return
        assert self.backend is not None
        self.conn.transport.registerProducer(_Reading(self.backend.transport), True)

    def _read_body(self, data: bytes) -> None:
        assert self.response_body is not None
        try:
            forward, _, extra = self.response_body.feed(data)
        except HTTPParseError as exc:
            log.info("invalid response body from {backend}: {reason}",
                     backend=self.address, reason=exc.reason)
            self._abort_backend()
            self._release()
            self.conn.transport.abortConnection()
            return
        if forward:
            shaper = self.shaper
            if shaper is not None:
                forward = shaper.feed(forward)
                if shaper.failed:
                    self._response_too_large()
                    return
            if forward:
                self.conn.transport.write(forward)
        if self.response_body.done:
            if extra:
                log.info("backend {backend} sent {n} bytes after its response; not reusing it",
                         backend=self.address, n=len(extra))
                self.backend_reusable = False
            self._finish()

    def backend_lost(self, reason: Failure) -> None:
        if self.done:
            return
        if self._may_retry():
            # A pooled connection the server closed while it sat idle (servers may close idle
            # connections at any time, and the FIN can cross our request): nothing was
            # answered and the request can be sent again, so open a fresh connection.
            log.debug("reused connection to {backend} closed before any answer; retrying "
                      "{method} {target} on a new one", backend=self.address,
                      method=self.head.method, target=self.head.target)
            self.backend = None
            self.reused = False
            self._cancel_timer()
            self.response_parser = ResponseHeadParser(self.head.method)
            d = self.leaf.connect(self.address)
            d.addCallbacks(self._backend_ready, self._connect_failed)
            return
        if self.response is None or self.response.is_informational:
            why = f"connection closed before a response: {reason.getErrorMessage()}"
            if self.plan is not None:
                self.backend = None
                if self._retry(502, why, network_error=True, request_sent=True):
                    return
            self._fail(UpstreamError(502, why, backend=str(self.address)))
            return
        assert self.response_body is not None
        if self.response_body.kind is BodyKind.UNTIL_CLOSE:
            self.backend = None
            self._finish()
            return
        log.info("backend {backend} closed in the middle of a response body",
                 backend=self.address)
        self.backend = None
        self._release()
        self.conn.transport.unregisterProducer()
        self.conn.close()

    def _may_retry(self) -> bool:
        """Whether the request can be replayed on a new connection: the one that failed came
        from the pool and answered nothing, and the request has no body and is idempotent
        (Go's Transport rule)."""
        head = self.head
        return (self.reused and not self.answered and self.body is not None
                and self.body.kind is BodyKind.NONE
                and (head.method in _IDEMPOTENT or head.get("Idempotency-Key") is not None
                     or head.get("X-Idempotency-Key") is not None))

    def _response_timed_out(self) -> None:
        self.timer = None
        why = "no response head within responseHeaderTimeout"
        if self.plan is not None and self._retry(504, why, network_error=True,
                                                 request_sent=True):
            return
        self._fail(UpstreamError(504, why, backend=str(self.address)))

    # -- what the route's middlewares ask (retry, buffering, compress, errors) -----------------
    def _keep(self, data: bytes) -> None:
        """Keep a copy of request body bytes for a replay, up to the plan's limit."""
        assert self.plan is not None and self.replay is not None
        self.replay_len += len(data)
        if self.replay_len > self.plan.replay_limit:
            self.replay = None
        else:
            self.replay.append(data)

    def _retry(self, status: int, why: str, *, network_error: bool,
               request_sent: bool) -> bool:
        """After a failed attempt (``status``: the backend's, or 502/504 for a network
        error), send the request again if retry or buffering's retryExpression says so, to a
        server picked again, after retry's backoff. False: the failure stands."""
        plan = self.plan
        assert plan is not None
        if self.done or self.ended or self.page_code or not plan.retries(self.upgrade):
            return False
        body = self.body
        if body is None or body.kind is BodyKind.NONE or not request_sent:
            replayable = True  # nothing to send again, or all of it is still held
        else:
            replayable = body.done and self.replay is not None
        method = self.head.method
        retry = plan.retry
        again = retry is not None and retry.should_retry(
            attempt=self.attempts, method=method, elapsed=time.monotonic() - self.started_at,
            status=None if network_error else status, network_error=network_error,
            request_sent=request_sent, body_replayable=replayable)
        buffering = plan.buffering
        if not again and buffering is not None and not self.upgrade and replayable:
            again = buffering.should_retry(method=method, attempt=self.attempts, status=status)
        if not again:
            return False
        wait: float | None = 0.0
        if retry is not None:
            if self.backoff is None:
                self.backoff = retry.backoff()
            wait = next(self.backoff, None)
            if wait is None:
                return False
        service = self.service
        cookies = parse_cookies(self.head.get_all("Cookie")) if service.sticky else None
        picked = service.pick_leaf(self.conn.client_ip, cookies, upgrade=self.upgrade)
        if picked is None:
            return False
        log.info("{method} {target} on {ep}: {why} from {backend}; attempt {n} in {wait:.3f}s",
                 method=method, target=self.head.target, ep=self.conn.ep.name, why=why,
                 backend=self.address, n=self.attempts + 1, wait=wait)
        if network_error or status >= 500:
            self.conn.ep.gateway.health.record_failure(self.leaf.name, self.server_url)
        self._set_aside()
        self.attempts += 1
        if self.record is not None:
            self.record.retry_attempts = self.attempts - 1
        self.picked = picked
        self.set_cookies = picked[2]
        self.response_parser = ResponseHeadParser(method)
        if request_sent and self.replay is not None:
            self.buffered = list(self.replay)
            self.buffered_len = self.replay_len
        if wait:
            self.timer = self.conn.ep.reactor.callLater(wait, self._redial)
        else:
            self._dial()
        return True

    def _redial(self) -> None:
        self.timer = None
        if not (self.done or self.ended or self.conn.closed):
            self._dial()

    def redirect(self, service: ProxyService,
                 picked: tuple[LeafService, Backend, tuple[str, ...]] | None,
                 body: list[bytes], failed_status: int) -> None:
        """failover errors: drop this attempt (answered ``failed_status``, or unreachable) and
        send the request to ``service`` with ``body``, the copy held for it; 503 when that
        service has no server."""
        if failed_status >= 500 and self.server is not None:
            self.conn.ep.gateway.health.record_failure(self.leaf.name, self.server_url)
        self._set_aside()
        if picked is None:
            self._fail(UpstreamError(503, f"failover to {service.name}: no available server",
                                     backend=str(self.address)))
            return
        self.service = service
        self.picked = picked
        self.set_cookies = picked[2]
        self.response_parser = ResponseHeadParser(self.head.method)
        self.buffered = list(body)
        self.buffered_len = sum(len(part) for part in body)
        self._dial()

    def _set_aside(self) -> None:
        """Drop the current attempt: its connection (never reused), its server and whatever
        it answered."""
        self._abort_backend()
        self._cancel_timer()
        if self.server is not None:
            self.leaf.release(self.server, self.upgrade)
            self.server = None
        self.response = None
        self.answered = False
        self.reused = False
        self.backend_reusable = True

    def _divert(self, head: ResponseHead) -> bool:
        """A final response head other than a 101, before anything of it is sent: whether
        it is set aside for another attempt or for an error page."""
        plan = self.plan
        assert plan is not None
        if self.page_code:
            return False  # the error page itself is relayed as it comes
        status = head.status
        if self._retry(status, f"status {status}", network_error=False, request_sent=True):
            return True
        return self._catch(status)

    def _catch(self, status: int) -> bool:
        """errors: whether a response (the backend's, or the proxy's 502/504) of ``status``
        is replaced by an error page, now being fetched."""
        plan = self.plan
        assert plan is not None
        if plan.errors and self.head.method != "HEAD" and (self.body is None
                                                          or self.body.done):
            for mw, service in plan.errors:
                if service is not None and mw.catches(status):
                    return self._fetch_page(mw, service, status)
        return False

    def _fetch_page(self, mw: ErrorPagesMiddleware, service: ProxyService,
                    status: int) -> bool:
        """errors: ask ``service`` for the page that replaces a response of ``status``; its
        answer goes to the client with the status kept (or rewritten)."""
        picked = service.pick_leaf(self.conn.client_ip, None)
        if picked is None:
            log.warn("errors middleware {name}: service {service} has no available server; "
                     "the {status} response is sent as it is", name=mw.name,
                     service=mw.service, status=status)
            return False
        assert self.ctx is not None
        method, target, headers = mw.page_request(self.ctx, status)
        headers = [(n, v) for n, v in headers if n.lower() not in _NOT_FOR_PAGES]
        try:
            forward = build_request_head(method, target, "1.1", tuple(headers))
        except HTTPParseError as exc:
            log.warn("errors middleware {name}: cannot request {target}: {reason}",
                     name=mw.name, target=target, reason=exc.reason)
            return False
        if status >= 500:
            self.conn.ep.gateway.health.record_failure(self.leaf.name, self.server_url)
        self._set_aside()
        self.page_code = mw.page_status(status)
        self.page_origin = status
        self.forward = forward
        self.service = service
        self.picked = picked
        self.set_cookies = ()
        self.response_parser = ResponseHeadParser(method)
        self.buffered = []
        self.buffered_len = 0
        self.replay = None
        self._dial()
        return True

    def _shape(self, head: ResponseHead, status: int, headers: list[tuple[str, str]],
               client_keep: bool) -> bool:
        """compress and buffering's maxResponseBodyBytes: write the response through a
        shaper (the head now, or with the body at its end). False: relay it as it is."""
        plan = self.plan
        assert plan is not None
        kind = head.body_kind
        if kind is BodyKind.NONE or self.upgrade:
            return False
        encoding = None
        compress = plan.compress
        if self.encoding is not None and compress is not None:
            length = head.content_length if kind is BodyKind.LENGTH else None
            if compress.compresses(status, headers, length):
                encoding = self.encoding
        limit = plan.max_response_body
        if encoding is None and limit <= 0:
            return False
        if limit > 0 and kind is BodyKind.LENGTH and (head.content_length or 0) > limit:
            self._response_too_large()
            return True
        headers = [(n, v) for n, v in headers
                   if n.lower() not in ("content-length", "transfer-encoding")]
        if encoding is not None:
            headers = [(n, v) for n, v in headers if n.lower() != "accept-ranges"]
            headers.append(("Content-Encoding", encoding))
            varies = ",".join(v for n, v in headers if n.lower() == "vary").lower()
            if "accept-encoding" not in varies and "*" not in varies:
                headers.append(("Vary", "Accept-Encoding"))
        reason = head.reason if status == head.status else status_text(status)
        version10 = self.head.version == "1.0"
        encoder = None
        if encoding is not None:
            encoder = make_encoder(encoding, flush=kind is not BodyKind.LENGTH)

        def framing(keep: bool) -> list[tuple[str, str]]:
            if not keep:
                return [("Connection", "close")]
            return [("Connection", "keep-alive")] if version10 else []

        if limit > 0:
            def head_bytes(length: int) -> bytes:
                return serialize_response(status, reason, [
                    *headers, ("Content-Length", str(length)), *framing(client_keep)])

            self.shaper = HeldBody(limit, head_bytes, encoder)
        else:
            assert encoder is not None
            # The length changes: chunked coding, or the end of the connection for an
            # HTTP/1.0 client.
            if version10:
                client_keep = False
            else:
                headers.append(("Transfer-Encoding", "chunked"))
            self.conn.transport.write(serialize_response(
                status, reason, [*headers, *framing(client_keep)]))
            self.shaper = StreamShaper(encoder, chunked=not version10)
        self.response_keep_alive = client_keep
        self.response_body = BodyReader(kind, head.content_length or 0, status=502,
                                        decode_chunked=True)
        if self.response_body.done:
            self._finish()
            return True
        assert self.backend is not None
        self.conn.transport.registerProducer(_Reading(self.backend.transport), True)
        return True

    def _response_too_large(self) -> None:
        """buffering.maxResponseBodyBytes: nothing of the response was sent; the client
        gets 500 instead (as Traefik)."""
        assert self.plan is not None
        self.shaper = None
        self.response = None
        self._fail(UpstreamError(
            500, f"response body over maxResponseBodyBytes ({self.plan.max_response_body})",
            backend=str(self.address)))

    # -- ends -----------------------------------------------------------------------------------
    def _finish(self) -> None:
        self.done = True
        self._cancel_timer()
        transport = self.conn.transport
        shaper, self.shaper = self.shaper, None
        if shaper is not None:
            transport.write(shaper.finish())
        transport.unregisterProducer()
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.transport.unregisterProducer()
            reusable = (self.response is not None and self.body is not None and self.body.done
                        and "close" not in self.response.connection
                        and self.response.version != "1.0"
                        and self.backend_reusable
                        and self.response_body is not None
                        and self.response_body.kind is not BodyKind.UNTIL_CLOSE)
            backend.listener = None
            if reusable:
                self.leaf.pool.give_back(backend)
            else:
                backend.close()
        self._release()
        self._end()
        # A response that ends before the request body did (an early 413, 401...): the rest of
        # the body is still on its way, so the connection cannot carry another request.
        request_done = self.body is not None and self.body.done
        self.conn.exchange_done(self.response_keep_alive and request_done)

    def _fail(self, exc: UpstreamError) -> None:
        """Answer the client with the error's status when nothing was sent yet."""
        if self.done:
            return
        if (self.hooks is not None and (self.response is None or self.response.is_informational)
                and self.hooks.divert(self, exc.status)):
            return
        if (self.plan is not None and not self.page_code and self.plan.errors
                and (self.response is None or self.response.is_informational)
                and self._catch(exc.status)):
            log.info("{status} for {method} {target} on {ep}: {backend}: {reason}; serving "
                     "an error page", status=exc.status, method=self.head.method,
                     target=self.head.target, ep=self.conn.ep.name, backend=exc.backend,
                     reason=exc.reason)
            return
        if self.page_code and (self.response is None or self.response.is_informational):
            # The error page could not be had: the client gets the status it replaces.
            exc = UpstreamError(self.page_code, f"error page: {exc.reason}",
                                backend=exc.backend)
        self.done = True
        self._cancel_timer()
        if exc.status != 503 and self.leaf is not None:
            self.conn.ep.gateway.health.record_failure(self.leaf.name, self.server_url)
        log.warn("{status} for {method} {target} on {ep}: {backend}: {reason}",
                 status=exc.status, method=self.head.method, target=self.head.target,
                 ep=self.conn.ep.name, backend=exc.backend, reason=exc.reason)
        self._abort_backend()
        self._release()
        transport = self.conn.transport
        transport.unregisterProducer()
        if self.response is None or self.response.is_informational:
            keep = (self.head.keep_alive and not self.upgrade and self.body is not None
                    and self.body.done)
            headers: list[tuple[str, str]] = []
            if self.chain is not None and self.ctx is not None:
                headers = self.chain.on_response(self.ctx, exc.status, headers)
            answer = _for_method(self.head.method,
                                 error_response(exc.status, close=not keep, headers=headers))
            transport.write(answer)
            if self.record is not None:
                self.record.response_bytes = _body_size(answer)
            self._end(exc.status, _failure_reason(exc))
            if keep:
                self.conn.exchange_done(True)
                return
        self._end()
        self.conn.close()

    def _end(self, status: int = 0, reason: str = "") -> None:
        """Report the exchange once (metrics, access log) and release its middlewares."""
        if self.ended:
            return
        self.ended = True
        if self.hooks is not None:
            self.hooks.finish(self)
        record = self.record
        if record is not None:
            if status:
                record.status = status
            elif not record.status:
                record.status = 499  # the client went away before an answer (as Traefik logs)
            record.duration = time.monotonic() - self.started_at
            if self.body is not None:
                record.request_bytes = self.body.body_bytes
            if self.response_body is not None:
                record.response_bytes = self.response_body.body_bytes
            observer = self.conn.ep.observer
            observer.request_done(record)
            if self.upgrade:
                if not reason and record.status != 101:
                    reason = REASON_BACKEND_REFUSED if record.origin_status else \
                        REASON_CLIENT_GONE
                if reason:
                    observer.handshake_failed(self.conn.ep.name, record.router,
                                              record.service, reason)
        if self.chain is not None and self.ctx is not None:
            self.chain.on_close(self.ctx)

    def _abort_backend(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            backend.listener = None
            backend.transport.unregisterProducer()
            backend.abort()

    def _release(self) -> None:
        if self.server is not None:
            self.leaf.release(self.server, self.upgrade)
            self.server = None
        if self.ws_slot:
            self.ws_slot = False
            self.conn.ep.gateway.router_sessions.release(self.decision.router)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None


def _going_away(inner: Any) -> bool:
    """Send 1001 on an in-process autobahn WebSocket that is open (echo@internal, or the
    dashboard's live feed behind an internal site's dispatcher, its ``inner``); False when
    ``inner`` is not one. autobahn's ``sendClose`` refuses 1001 (it takes 1000 and 3000-4999
    only), so the frame is sent with ``sendCloseFrame``."""
    for proto in (inner, getattr(inner, "inner", None)):
        send = getattr(proto, "sendCloseFrame", None)
        if callable(send) and getattr(proto, "state", None) == getattr(proto, "STATE_OPEN", 0):
            send(CloseCode.GOING_AWAY, b"server shutting down")
            return True
    return False


def _body_size(response: bytes) -> int:
    """Body bytes of a complete response the proxy made (metrics and the access log count
    them, as Traefik counts what its own 404 or 502 handler writes)."""
    end = response.find(b"\r\n\r\n")
    return len(response) - end - 4 if end != -1 else 0


def _for_method(method: str, response: bytes) -> bytes:
    """A proxy-made response as sent for ``method``: a HEAD request gets the head only
    (RFC 9110 §9.3.2), its Content-Length still telling the size of the body."""
    if method == "HEAD":
        return response[: response.index(b"\r\n\r\n") + 4]
    return response


def _failure_reason(exc: UpstreamError) -> str:
    """The handshake-failure reason of an error the proxy answered."""
    if exc.kind:
        return exc.kind
    if exc.status == 504:
        return REASON_BACKEND_TIMEOUT
    if exc.status == 503:
        return REASON_NO_SERVER
    return REASON_BACKEND_UNREACHABLE


class _SessionEnd:
    """What the end of a WebSocket session needs of its exchange (the relay's ``on_done``).

    The relay holds this instead of the Exchange, so that an idle session does not keep the
    whole exchange alive (memory per idle WebSocket, docs/performance.md). The exchange's
    server place and router slot move here and are released when the session ends. Mirroring
    hooks read the exchange at the end: only then is it kept.
    """

    __slots__ = ("chain", "conn", "ctx", "exchange", "hooks", "leaf", "router", "server",
                 "server_url", "session", "ws_slot")

    def __init__(self, exchange: Exchange) -> None:
        self.conn = exchange.conn
        self.leaf = exchange.leaf
        self.server_url = exchange.server_url
        self.server, exchange.server = exchange.server, None
        self.ws_slot, exchange.ws_slot = exchange.ws_slot, False
        self.router = exchange.decision.router
        self.hooks = exchange.hooks
        self.exchange = exchange if exchange.hooks is not None else None
        self.session = exchange.session
        self.chain = exchange.chain
        self.ctx = exchange.ctx

    def __call__(self, relay: WebSocketRelay) -> None:
        ep = self.conn.ep
        ep.gateway.open_relays.discard(self.leaf.name, self.server_url, relay)
        if self.server is not None:
            self.leaf.release(self.server, True)
            self.server = None
        if self.ws_slot:
            self.ws_slot = False
            ep.gateway.router_sessions.release(self.router)
        if self.hooks is not None and self.exchange is not None:
            self.hooks.finish(self.exchange)
        ep.websocket_closed(self, relay)
        session = self.session
        if session is not None:
            stats = relay.stats
            session.duration = time.time() - session.opened_at
            session.client_bytes = stats.client_bytes
            session.backend_bytes = stats.backend_bytes
            session.client_messages = stats.client_messages
            session.backend_messages = stats.backend_messages
            session.close_code = stats.close_code
            session.closed_by = stats.closed_by
            ep.observer.websocket_closed(session)
        if self.chain is not None and self.ctx is not None:
            self.chain.on_close(self.ctx)


class _RelayBackend:
    """The backend connection's listener once it is relaying WebSocket bytes."""

    __slots__ = ("relay",)

    def __init__(self, relay: WebSocketRelay) -> None:
        self.relay = relay

    def backend_data(self, data: bytes) -> None:
        self.relay.from_backend(data)

    def backend_read_closed(self) -> None:
        self.relay.backend_read_closed()

    def backend_lost(self, reason: Failure) -> None:
        self.relay.side_lost("backend")
