"""A small JSON-over-HTTP/1.1 client for the Docker Engine and Kubernetes APIs.

Built on ``twisted.web.client.Agent`` with an endpoint factory, so one client speaks over a
unix socket (``unix:///var/run/docker.sock``), plain TCP (``tcp://`` and ``http://``) or TLS
(``https://``, or ``tcp://`` with TLS settings). Two calls: :meth:`APIClient.get_json` for
one document and :meth:`APIClient.stream_json` for the endless JSON-lines bodies of Docker's
``/events`` and Kubernetes' ``?watch=true``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from twisted.internet import defer, ssl
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseDone,
    _HTTP11ClientFactory,
    readBody,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

__all__ = ["APIClient", "APIError", "Stream", "TLSFiles"]


class _QuietFactory(_HTTP11ClientFactory):
    """The pool's connection factory without a log line per connection."""

    noisy = False


class APIError(Exception):
    """The API answered with an error status (or something that is not JSON)."""

    def __init__(self, status: int, message: str, path: str) -> None:
        self.status = status
        self.message = message
        self.path = path
        super().__init__(f"{path}: HTTP {status}: {message}" if status else
                         f"{path}: {message}")


@dataclass(frozen=True)
class TLSFiles:
    """TLS to the API: a CA file (else the system's roots), a client certificate and key,
    or no verification at all."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    insecure_skip_verify: bool = False

    def creator(self, hostname: str) -> Any:
        client_cert = None
        if self.cert and self.key:
            pem = Path(self.cert).read_bytes() + b"\n" + Path(self.key).read_bytes()
            client_cert = ssl.PrivateCertificate.loadPEM(pem)
        if self.insecure_skip_verify:
            if client_cert is not None:
                return ssl.CertificateOptions(privateKey=client_cert.privateKey.original,
                                              certificate=client_cert.original, verify=False)
            return ssl.CertificateOptions(verify=False)
        trust = ssl.Certificate.loadPEM(Path(self.ca).read_bytes()) if self.ca else \
            ssl.platformTrust()
        return ssl.optionsForClientTLS(hostname, trustRoot=trust,
                                       clientCertificate=client_cert)


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, reactor: Any, endpoint: str, tls: TLSFiles | None) -> None:
        self.reactor = reactor
        parts = urlsplit(endpoint)
        self.scheme = parts.scheme
        self.unix_path = parts.path if parts.scheme == "unix" else ""
        self.host = parts.hostname or ""
        self.port = parts.port
        self.tls = tls if parts.scheme in ("https", "tcp") else None
        if parts.scheme == "https" and self.tls is None:
            self.tls = TLSFiles()
        if parts.scheme not in ("unix", "tcp", "http", "https"):
            raise ValueError(f"unsupported API endpoint {endpoint!r} (unix://, tcp://, "
                             f"http:// or https://)")
        if parts.scheme != "unix" and not self.host:
            raise ValueError(f"API endpoint {endpoint!r} names no host")

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        if self.unix_path:
            return UNIXClientEndpoint(self.reactor, self.unix_path)
        default = 443 if self.tls is not None else 80
        endpoint = HostnameEndpoint(self.reactor, self.host, self.port or default)
        if self.tls is not None:
            return wrapClientTLS(self.tls.creator(self.host), endpoint)
        return endpoint


class _Lines(Protocol):
    """Collects a response body as JSON lines and hands each decoded item on."""

    def __init__(self, on_item: Callable[[Any], None], done: defer.Deferred[None],
                 path: str) -> None:
        self.on_item = on_item
        self.done = done
        self.path = path
        self.buffer = b""
        self.cancelled = False

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if self.cancelled:
                return
            line = line.strip()
            if not line:
                continue
            try:
                item = json.loads(line)
            except ValueError:
                self.abort(APIError(0, f"not a JSON line: {line[:200]!r}", self.path))
                return
            self.on_item(item)

    def abort(self, exc: Exception | None = None) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]
        if not self.done.called:
            if exc is None:
                self.done.callback(None)
            else:
                self.done.errback(Failure(exc))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)


class Stream:
    """One streaming request. ``connected`` fires once the API accepted it (2xx) or fails
    with why it did not; ``done`` then fires when the body ends (None) or fails. Wait for
    ``connected`` first. :meth:`cancel` ends the stream (``done`` fires None)."""

    def __init__(self) -> None:
        self.connected: defer.Deferred[None] = defer.Deferred()
        self.done: defer.Deferred[None] = defer.Deferred()
        self._request: defer.Deferred[Any] | None = None
        self._lines: _Lines | None = None
        self._idle: Any = None

    def cancel(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        if self._lines is not None:
            self._lines.abort()
        elif self._request is not None and not self._request.called:
            self._request.cancel()
        if not self.done.called:
            self.done.callback(None)


class APIClient:
    """GET requests to one API endpoint; ``headers`` is called for each request (so that a
    rotated Kubernetes token is picked up)."""

    def __init__(self, reactor: Any, endpoint: str, *, tls: TLSFiles | None = None,
                 headers: Callable[[], Mapping[str, str]] | None = None,
                 timeout: float = 30.0, path_prefix: str = "") -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.timeout = timeout
        self.headers = headers or (lambda: {})
        factory = _EndpointFactory(reactor, endpoint, tls)
        parts = urlsplit(endpoint)
        host = "docker" if factory.unix_path else parts.netloc
        scheme = "https" if factory.tls is not None else "http"
        self.base = f"{scheme}://{host}{path_prefix or parts.path.rstrip('/')}" \
            if not factory.unix_path else f"http://{host}{path_prefix}"
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 4
        pool.retryAutomatically = True
        pool._factory = _QuietFactory  # type: ignore[misc]
        self.pool = pool
        self.agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.base}{path}{query}"

    def _request(self, path: str, params: Mapping[str, Any] | None) -> defer.Deferred[Any]:
        headers = Headers({b"Accept": [b"application/json"],
                           b"User-Agent": [b"wsgate"]})
        for name, value in self.headers().items():
            headers.setRawHeaders(name.encode(), [value.encode()])
        return self.agent.request(b"GET", self.url(path, params).encode(), headers)

    @defer.inlineCallbacks
    def get_json(self, path: str, params: Mapping[str, Any] | None = None
                 ) -> Any:
        """The JSON document at ``path``; APIError for an error status."""
        d = self._request(path, params)
        if self.timeout > 0:
            d.addTimeout(self.timeout, self.reactor)
        response: IResponse = yield d
        body_d = readBody(response)
        if self.timeout > 0:
            body_d.addTimeout(self.timeout, self.reactor)
        body = yield body_d
        if not 200 <= response.code < 300:
            raise _api_error(response.code, body, path)
        try:
            return json.loads(body)
        except ValueError:
            raise APIError(response.code, "the answer is not JSON", path) from None

    def stream_json(self, path: str, params: Mapping[str, Any] | None,
                    on_item: Callable[[Any], None], *, idle_timeout: float = 0.0) -> Stream:
        """Stream the JSON lines of ``path`` to ``on_item`` until the body ends."""
        stream = Stream()
        request = self._request(path, params)
        if self.timeout > 0:
            request.addTimeout(self.timeout, self.reactor)
        stream._request = request

        def got(response: IResponse) -> Any:
            if not 200 <= response.code < 300:
                return readBody(response).addCallback(
                    lambda body: Failure(_api_error(response.code, body, path)))
            lines = _Lines(on_item, stream.done, path)
            stream._lines = lines
            if idle_timeout > 0:
                original = lines.dataReceived

                def received(data: bytes) -> None:
                    if stream._idle is not None and stream._idle.active():
                        stream._idle.reset(idle_timeout)
                    original(data)

                lines.dataReceived = received  # type: ignore[method-assign]
                stream._idle = self.reactor.callLater(
                    idle_timeout, lines.abort,
                    APIError(0, f"no data for {idle_timeout:g}s", path))
            response.deliverBody(lines)
            return None

        def failed(reason: Failure) -> None:
            # Before the API accepted the request the failure goes to ``connected`` only
            # (``done`` then fires None); afterwards to ``done``.
            if not stream.connected.called:
                stream.connected.errback(reason)
                if not stream.done.called:
                    stream.done.callback(None)
            elif not stream.done.called:
                stream.done.errback(reason)

        def connected(_: object) -> None:
            if not stream.connected.called:
                stream.connected.callback(None)

        request.addCallback(got)
        request.addCallbacks(connected, failed)
        def finished(result: Any) -> Any:
            _cancel_idle(stream)
            return result

        stream.done.addBoth(finished)
        return stream

    def close(self) -> defer.Deferred[Any]:
        return self.pool.closeCachedConnections()


def _cancel_idle(stream: Stream) -> None:
    if stream._idle is not None and stream._idle.active():
        stream._idle.cancel()


def _api_error(code: int, body: bytes, path: str) -> APIError:
    message = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            message = str(data.get("message") or data.get("reason") or message)
    except ValueError:
        pass
    return APIError(code, message[:500] or "(no message)", path)
