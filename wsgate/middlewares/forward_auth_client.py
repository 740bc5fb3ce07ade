"""The thin Twisted side of the middlewares: performing their deferred work.

:func:`resolve` takes the decision of a chain and, while it is a :class:`Defer`, does the work
and resumes it: a :class:`Sleep` with ``reactor.callLater``, a :class:`Blocking` call in the
reactor's thread pool, a :class:`ReadBody` with the caller's ``read_body``, an
:class:`AuthRequest` with :class:`ForwardAuthClient` (``twisted.web.client.Agent``, a
persistent connection pool, no redirects followed, TLS as the middleware's ``tls`` says). The
result is a Deferred firing with :data:`PASS` or an :class:`Answer`.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

from twisted.internet import defer, task, threads
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    FileBodyProducer,
    HTTPConnectionPool,
    PotentialDataLoss,
    ResponseDone,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from wsgate.middlewares.base import (
    Answer,
    AuthFailure,
    AuthRequest,
    AuthResponse,
    Blocking,
    BodyTooLarge,
    Decision,
    Defer,
    Pass,
    ReadBody,
    Sleep,
)

__all__ = ["ForwardAuthClient", "LimitedBody", "resolve"]

log = Logger()

ReadBodyFunction = Callable[[int], "defer.Deferred[bytes | BodyTooLarge]"]


class LimitedBody(Protocol):
    """Collects a response body, giving up past ``limit`` bytes (negative: no limit)."""

    def __init__(self, limit: int, finished: defer.Deferred[tuple[bytes, bool]]) -> None:
        self.limit = limit
        self.finished: defer.Deferred[tuple[bytes, bool]] | None = finished
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False

    def dataReceived(self, data: bytes) -> None:
        if self.too_large:
            return
        self.size += len(data)
        if 0 <= self.limit < self.size:
            self.too_large = True
            self.chunks = []
            transport: Any = self.transport
            if transport is not None:
                transport.stopProducing()
            self._fire((b"", True))
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss, ConnectionDone) or self.too_large:
            self._fire((b"".join(self.chunks), self.too_large))
        elif self.finished is not None:
            d, self.finished = self.finished, None
            d.errback(reason)

    def _fire(self, result: tuple[bytes, bool]) -> None:
        if self.finished is not None:
            d, self.finished = self.finished, None
            d.callback(result)


def _pem(value: str) -> bytes:
    """A FileOrContent value: PEM text itself, or the path of a file holding it."""
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    with open(value, "rb") as f:
        return f.read()


@implementer(IPolicyForHTTPS)
class _TLSPolicy:
    """HTTPS settings of one forwardAuth ``tls`` section."""

    def __init__(self, tls: Any) -> None:
        from twisted.internet import ssl

        self.insecure = bool(tls.insecure_skip_verify)
        self.trust_root = ssl.Certificate.loadPEM(_pem(tls.ca)) if tls.ca else None
        self.client_cert = None
        if tls.cert and tls.key_:
            self.client_cert = ssl.PrivateCertificate.loadPEM(_pem(tls.key_) + b"\n"
                                                              + _pem(tls.cert))

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        from twisted.internet import ssl

        if self.insecure:
            options: dict[str, Any] = {"verify": False}
            if self.client_cert is not None:
                options["privateKey"] = self.client_cert.privateKey.original
                options["certificate"] = self.client_cert.original
            return ssl.CertificateOptions(**options)
        kwargs: dict[str, Any] = {}
        if self.trust_root is not None:
            kwargs["trustRoot"] = self.trust_root
        if self.client_cert is not None:
            kwargs["clientCertificate"] = self.client_cert
        return ssl.optionsForClientTLS(hostname.decode("idna"), **kwargs)


class ForwardAuthClient:
    """Sends :class:`AuthRequest` s; one per reactor, shared by every forwardAuth."""

    def __init__(self, reactor: Any, pool: HTTPConnectionPool | None = None) -> None:
        self.reactor = reactor
        self.pool = pool or HTTPConnectionPool(reactor, persistent=True)
        self._agents: dict[object, Agent] = {}

    def _agent(self, tls: Any) -> Agent:
        key: object = tls if tls is not None else None
        agent = self._agents.get(key)
        if agent is None:
            policy = _TLSPolicy(tls) if tls is not None else BrowserLikePolicyForHTTPS()
            agent = Agent(self.reactor, contextFactory=policy, pool=self.pool)
            self._agents[key] = agent
        return agent

    def request(self, req: AuthRequest) -> defer.Deferred[AuthResponse | AuthFailure]:
        try:
            agent = self._agent(req.tls)
        except (OSError, ValueError) as exc:
            return defer.succeed(AuthFailure(f"TLS settings of the auth client: {exc}"))
        headers = Headers()
        for name, value in req.headers:
            headers.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        body = FileBodyProducer(BytesIO(req.body)) if req.body is not None else None
        d = agent.request(req.method.encode("ascii"), req.url.encode("utf-8"), headers, body)

        def got_response(response: Any) -> defer.Deferred[AuthResponse]:
            finished: defer.Deferred[tuple[bytes, bool]] = defer.Deferred()
            response.deliverBody(LimitedBody(req.max_response_body, finished))
            pairs = tuple((n.decode("latin-1"), v.decode("latin-1"))
                          for n, values in response.headers.getAllRawHeaders()
                          for v in values)
            return finished.addCallback(
                lambda got: AuthResponse(response.code, pairs, got[0], got[1]))

        def failed(failure: Failure) -> AuthFailure:
            inner = getattr(failure.value, "reasons", None)  # ResponseNeverReceived & co
            if inner:
                reason = "; ".join(f.getErrorMessage() for f in inner)
            else:
                reason = failure.getErrorMessage() or repr(failure.value)
            log.info("forwardAuth request to {url} failed: {reason}", url=req.url,
                     reason=reason)
            return AuthFailure(reason)

        result: defer.Deferred[Any] = d.addCallback(got_response)
        def timed_out(_: object, seconds: float) -> AuthFailure:
            log.info("forwardAuth request to {url}: no answer within {seconds}s", url=req.url,
                     seconds=seconds)
            return AuthFailure(f"no answer from {req.url} within {seconds:g}s")

        result.addTimeout(req.timeout, self.reactor, onTimeoutCancel=timed_out)
        result.addErrback(failed)
        return result


_clients: dict[int, ForwardAuthClient] = {}


def _default_client(reactor: Any) -> ForwardAuthClient:
    """One client (hence one connection pool) per reactor when the caller gives none."""
    client = _clients.get(id(reactor))
    if client is None or client.reactor is not reactor:
        client = _clients[id(reactor)] = ForwardAuthClient(reactor)
    return client


def resolve(decision: Decision, *, reactor: Any, auth_client: ForwardAuthClient | None = None,
            read_body: ReadBodyFunction | None = None,
            run_blocking: Callable[[Callable[[], object]], defer.Deferred[Any]] | None = None,
            ) -> defer.Deferred[Pass | Answer]:
    """Perform the deferred work of ``decision`` until it is :data:`PASS` or an Answer.

    Call it only for a :class:`Defer`: a final decision needs no Deferred. ``read_body(limit)``
    must read the request body (at most ``limit`` bytes, negative: all) and fire with the bytes
    or :class:`BodyTooLarge`; ``run_blocking`` defaults to the reactor's thread pool.
    """
    if run_blocking is None:
        def run_blocking(call: Callable[[], object]) -> defer.Deferred[Any]:
            return threads.deferToThreadPool(reactor, reactor.getThreadPool(), call)

    def perform(work: object) -> defer.Deferred[Any]:
        if isinstance(work, Sleep):
            return task.deferLater(reactor, work.seconds, lambda: None)
        if isinstance(work, Blocking):
            assert run_blocking is not None
            return run_blocking(work.call)
        if isinstance(work, ReadBody):
            if read_body is None:
                return defer.fail(RuntimeError("a middleware needs the request body but "
                                               "no read_body was given"))
            return read_body(work.max_bytes)
        if isinstance(work, AuthRequest):
            client = auth_client or _default_client(reactor)
            return client.request(work)
        return defer.fail(TypeError(f"unknown deferred work {work!r}"))

    @defer.inlineCallbacks
    def run(current: Decision) -> Any:
        while isinstance(current, Defer):
            result = yield perform(current.work)
            current = current.resume(result)
        return current

    return run(decision)

