"""Health probes: one check of one server, as a Deferred that fires with a ProbeResult.

A probe never errbacks for a failed check: an unreachable server, a bad status or a TLS error
is a result (``healthy=False``) whose ``reason`` is what the transition log line says. The
checker (:mod:`wsgate.proxy.health`) bounds each probe with ``timeout`` by cancelling its
Deferred; cancelling aborts the probe's connection.

- :class:`HTTPProbe` (mode ``http``): an HTTP/1.1 request over the service's transport, made
  with the data path's own pieces (:class:`~wsgate.proxy.backend.Connector`, the sans-I/O
  response parser, the transport's TLS connection creators), so a probe is verified, dialled
  and parsed exactly as proxied traffic to that server is. Redirects are followed (as Go's
  client: at most 10) unless ``followRedirects`` is false.
- :class:`UpgradeProbe` (mode ``websocket``, wsgate's own): a real opening handshake with
  autobahn as the client, which checks the 101 (Upgrade, Connection, Sec-WebSocket-Accept);
  the probe then closes the session cleanly (1000).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import txaio
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.types import ConnectingRequest
from twisted.internet import defer, error
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsgate.config.dynamic import ServerHealthCheck
from wsgate.http.errors import HTTPParseError
from wsgate.http.head import ResponseHead
from wsgate.http.parser import ResponseHeadParser
from wsgate.http.serialize import serialize_request
from wsgate.proxy.backend import BackendAddress, BackendConnection, parse_backend_url
from wsgate.proxy.errors import UpstreamError

__all__ = [
    "MAX_REDIRECTS",
    "USER_AGENT",
    "HTTPProbe",
    "Probe",
    "ProbeResult",
    "ProbeTarget",
    "UpgradeProbe",
    "build_probe_target",
    "status_is_healthy",
]

log = Logger()

#: Redirects followed before the probe fails (Go's http.Client stops after 10).
MAX_REDIRECTS = 10
#: Sent unless the healthCheck's headers set one.
USER_AGENT = "wsgate-health-check"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Headers Go's client drops when a redirect leaves the original host (and its subdomains).
_SENSITIVE = frozenset({"authorization", "www-authenticate", "cookie", "cookie2"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe; ``reason`` says why in a few words ("status 503")."""

    healthy: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What one probe of one server sends, and where: built once per server and checker."""

    #: The server URL as configured: the balancer key, used in logs and metrics.
    url: str
    #: Where the probe connects (the server's host; healthCheck scheme and port applied).
    address: BackendAddress
    #: The request-target, origin-form (path and query).
    target: str
    #: The Host header: healthCheck.hostname, else the probe URL's host[:port].
    host: str
    method: str
    #: healthCheck.headers, validated (Host left out: ``hostname`` sets it).
    headers: tuple[tuple[str, str], ...]

    @property
    def probe_url(self) -> str:
        return f"{self.address.scheme}://{self.address.authority}{self.target}"


class Probe(TypingProtocol):
    """One check of one server; never errbacks except when cancelled."""

    def __call__(self, target: ProbeTarget) -> defer.Deferred[ProbeResult]: ...


def status_is_healthy(status: int, expected: int) -> bool:
    """healthCheck.status: 0 means any status from 200 to 399."""
    if expected:
        return status == expected
    return 200 <= status < 400


def _expected(expected: int) -> str:
    return str(expected) if expected else "200-399"


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _http_form(netloc: str, path: str, query: str) -> str:
    # urljoin resolves only for schemes it knows: resolve as http, put the scheme back after.
    return urlunsplit(("http", netloc, path, query, ""))


def build_probe_target(server_url: str, check: ServerHealthCheck) -> ProbeTarget:
    """The probe of ``server_url`` as ``check`` describes it.

    ``path`` is resolved against the server URL as a URL reference (as Traefik does: an
    absolute path replaces the server URL's path, a relative one is resolved against it);
    ``scheme`` and ``port`` replace the server URL's; ``hostname`` only sets the Host header
    (the probe still connects to the server's address). Raises ValueError for a probe that
    cannot be sent (a scheme other than http, https, h2c, ws or wss, an invalid method or
    header); the checker then reports every probe of that server as failed, as Traefik does.
    """
    parts = urlsplit(server_url)
    base = _http_form(parts.netloc, parts.path, parts.query)
    joined = urlsplit(urljoin(base, check.path)) if check.path else urlsplit(base)
    scheme = (check.scheme or parts.scheme).lower()
    host = joined.hostname or ""
    netloc = joined.netloc.rpartition("@")[2]
    if check.port:
        netloc = _join_host_port(host, check.port)
    address = parse_backend_url(urlunsplit((scheme, netloc, "", "", "")))
    target = quote(joined.path or "/", safe=_PATH_SAFE)
    if joined.query:
        target += "?" + quote(joined.query, safe=_QUERY_SAFE)
    method = check.method or "GET"
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid health-check method {method!r}")
    headers = []
    for name, value in check.headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid health-check header name {name!r}")
        if _BAD_VALUE.search(value):
            raise ValueError(f"invalid value for health-check header {name!r}")
        if name.lower() != "host":
            headers.append((name, value))
    hostname = check.hostname or netloc
    if _BAD_VALUE.search(hostname) or " " in hostname:
        raise ValueError(f"invalid health-check hostname {hostname!r}")
    return ProbeTarget(url=server_url, address=address, target=target, host=hostname,
                       method=method, headers=tuple(headers))


def _redirect(current: ProbeTarget, status: int, location: str) -> ProbeTarget:
    """The request a redirect leads to, as Go's client makes it."""
    loc = urlsplit(location)
    if loc.scheme:
        scheme = loc.scheme.lower()
        new = loc
    else:
        scheme = current.address.scheme
        path, _, query = current.target.partition("?")
        new = urlsplit(urljoin(_http_form(current.address.authority, path, query), location))
    netloc = new.netloc.rpartition("@")[2]
    address = parse_backend_url(urlunsplit((scheme, netloc, "", "", "")))
    target = quote(new.path or "/", safe=_PATH_SAFE)
    if new.query:
        target += "?" + quote(new.query, safe=_QUERY_SAFE)
    method = current.method
    if (status in (301, 302) and method not in ("GET", "HEAD")) or \
            (status == 303 and method != "HEAD"):
        method = "GET"
    # A relative redirect keeps the Host header that was sent; an absolute one names its own.
    host = current.host if not loc.netloc else netloc
    headers = current.headers
    old_host = current.address.host.lower()
    new_host = address.host.lower()
    if new_host != old_host and not new_host.endswith("." + old_host):
        headers = tuple(h for h in headers if h[0].lower() not in _SENSITIVE)
    return ProbeTarget(url=current.url, address=address, target=target, host=host,
                       method=method, headers=headers)


def _request_bytes(target: ProbeTarget) -> bytes:
    given = {name.lower() for name, _ in target.headers}
    headers = [("Host", target.host)]
    if "user-agent" not in given:
        headers.append(("User-Agent", USER_AGENT))
    headers.extend(target.headers)
    if "connection" not in given:
        headers.append(("Connection", "close"))
    if target.method in _BODY_METHODS and "content-length" not in given:
        headers.append(("Content-Length", "0"))
    return serialize_request(target.method, target.target, headers)


def describe_connect_failure(reason: Failure) -> str:
    """Why a connection could not be opened, in the words of the transition log line."""
    exc = reason.value
    if isinstance(exc, UpstreamError):
        return exc.reason
    if reason.check(error.ConnectionRefusedError):
        return "connection refused"
    if reason.check(error.TimeoutError, defer.TimeoutError):
        return "dial timeout"
    if reason.check(error.DNSLookupError):
        return "cannot resolve host"
    return f"cannot connect: {reason.getErrorMessage()}"


def describe_lost(reason: Failure, what: str) -> str:
    """Why an open probe connection ended before ``what`` (TLS errors named as such)."""
    exc = reason.value
    if isinstance(exc, UpstreamError):
        return exc.reason
    module = type(exc).__module__ or ""
    if module.startswith("OpenSSL"):
        return f"TLS error: {reason.getErrorMessage()}"
    if reason.check(error.ConnectionDone, error.ConnectionLost):
        return f"connection closed before {what}"
    return f"connection lost before {what}: {reason.getErrorMessage()}"


# -- http -----------------------------------------------------------------------------------------

Connect = Callable[[BackendAddress], "defer.Deferred[BackendConnection]"]


class _Discard:
    """The listener of a probe connection being closed: whatever still arrives is dropped."""

    def backend_data(self, data: bytes) -> None:
        """The answer was decided; the rest of the response does not matter."""

    def backend_lost(self, reason: Failure) -> None:
        """Closed as asked."""


_DISCARD = _Discard()


class HTTPProbe:
    """Mode ``http``: a request per probe on a new connection; the status decides.

    ``connect`` opens a connection to an address over the service's serversTransport (dial
    timeout and TLS as for proxied traffic). Only the response head is read; the connection
    is then closed.
    """

    def __init__(self, connect: Connect, *, expected_status: int = 0,
                 follow_redirects: bool = True, max_redirects: int = MAX_REDIRECTS) -> None:
        self.connect = connect
        self.expected_status = expected_status
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects

    def __call__(self, target: ProbeTarget) -> defer.Deferred[ProbeResult]:
        check = _HTTPCheck(self, target)
        check.send(target)
        return check.result


class _HTTPCheck:
    """One probe: a request and the redirects it leads to, until a final status."""

    def __init__(self, probe: HTTPProbe, target: ProbeTarget) -> None:
        self.probe = probe
        self.result: defer.Deferred[ProbeResult] = defer.Deferred(self._cancel)
        self.current = target
        self.parser = ResponseHeadParser(target.method)
        self.conn: BackendConnection | None = None
        self.redirects = 0
        #: Bumped per request, so that a connection that completes late is recognised.
        self.attempt = 0
        self.done = False

    def send(self, target: ProbeTarget) -> None:
        self.current = target
        self.parser = ResponseHeadParser(target.method)
        self.attempt += 1
        attempt = self.attempt
        try:
            request = _request_bytes(target)
            d = self.probe.connect(target.address)
        except ValueError as exc:
            self._finish(False, f"cannot send the request: {exc}")
            return
        d.addCallbacks(self._connected, self._connect_failed, callbackArgs=(attempt, request),
                       errbackArgs=(attempt,))

    def _connected(self, conn: BackendConnection, attempt: int, request: bytes) -> None:
        if self.done or attempt != self.attempt:
            conn.abort()
            return
        self.conn = conn
        conn.listener = self
        conn.transport.write(request)

    def _connect_failed(self, failure: Failure, attempt: int) -> None:
        if self.done or attempt != self.attempt:
            return
        self._finish(False, describe_connect_failure(failure))

    # -- BackendListener ----------------------------------------------------------------------
    def backend_data(self, data: bytes) -> None:
        while not self.done:
            try:
                found = self.parser.feed(data)
            except HTTPParseError as exc:
                self._finish(False, f"invalid response: {exc.reason}")
                return
            if found is None:
                return
            head, data = found
            if head.is_informational:
                continue
            self._answered(head)
            return

    def backend_lost(self, reason: Failure) -> None:
        self.conn = None
        if not self.done:
            self._finish(False, describe_lost(reason, "a response"))

    # -- decisions ----------------------------------------------------------------------------
    def _answered(self, head: ResponseHead) -> None:
        self._close()
        status = head.status
        location = head.get("Location")
        if self.probe.follow_redirects and status in _REDIRECTS and location:
            if self.redirects >= self.probe.max_redirects:
                self._finish(False, f"stopped after {self.probe.max_redirects} redirects")
                return
            self.redirects += 1
            try:
                following = _redirect(self.current, status, location)
            except ValueError as exc:
                self._finish(False, f"status {status} redirects to an unusable URL: {exc}")
                return
            self.send(following)
            return
        expected = self.probe.expected_status
        if status_is_healthy(status, expected):
            self._finish(True, f"status {status}")
        else:
            self._finish(False, f"status {status} (expected {_expected(expected)})")

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.listener = _DISCARD
            conn.close()

    def _finish(self, healthy: bool, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self._close()
        self.result.callback(ProbeResult(healthy, reason))

    def _cancel(self, d: defer.Deferred[ProbeResult]) -> None:
        self.done = True
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.listener = _DISCARD
            conn.abort()


# -- websocket ------------------------------------------------------------------------------------


class _UpgradeProbeProtocol(WebSocketClientProtocol):
    """The autobahn client of one upgrade probe; reports to its factory."""

    # The checker logs each transition with its reason; autobahn's own lines (a failed
    # handshake at info, a TLS error at error, on every probe) would repeat it.
    log = txaio.make_logger(level="critical")  # type: ignore[attr-defined]
    factory: _UpgradeProbeFactory

    def connectionMade(self) -> None:
        self.factory.protocol_instance = self
        super().connectionMade()

    def onConnecting(self, transport_details: Any) -> ConnectingRequest:
        return self.factory.request

    def failHandshake(self, reason: str) -> None:
        line = (getattr(self, "http_status_line", "") or "").split()
        status = line[1] if len(line) > 1 else ""
        if status.isdigit() and status != "101":
            self.factory.finish(ProbeResult(False, f"status {status} (expected 101)"))
        else:
            self.factory.finish(ProbeResult(False, f"invalid handshake response: {reason}"))
        super().failHandshake(reason)

    def onOpen(self) -> None:
        self.factory.finish(ProbeResult(True, "status 101"))
        self.sendClose(1000, "wsgate health check")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.finish(ProbeResult(False, describe_lost(reason, "a 101")))
        super().connectionLost(reason)


class _UpgradeProbeFactory(WebSocketClientFactory):
    protocol = _UpgradeProbeProtocol  # type: ignore[assignment]
    noisy = False  # one factory per probe

    def __init__(self, target: ProbeTarget, reactor: Any) -> None:
        address = target.address
        secure = address.tls
        scheme = "wss" if secure else "ws"
        shown = _join_host_port(address.host, address.port)
        super().__init__(url=f"{scheme}://{shown}{target.target}", reactor=reactor,
                         useragent=USER_AGENT)
        self.setProtocolOptions(openHandshakeTimeout=0, autoPingInterval=0)
        host, port = _split_host(target.host, 443 if secure else 80)
        headers = dict(target.headers)
        useragent = USER_AGENT
        for name in list(headers):
            if name.lower() == "user-agent":
                useragent = headers.pop(name)
        self.request = ConnectingRequest(host=host, port=port, resource=target.target,
                                         headers=headers, useragent=useragent)
        self.result: defer.Deferred[ProbeResult] = defer.Deferred(self._cancel)
        self.connector: Any = None
        self.protocol_instance: _UpgradeProbeProtocol | None = None

    def finish(self, result: ProbeResult) -> None:
        if not self.result.called:
            self.result.callback(result)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.finish(ProbeResult(False, describe_connect_failure(reason)))

    def _cancel(self, d: defer.Deferred[ProbeResult]) -> None:
        proto = self.protocol_instance
        transport: Any = proto.transport if proto is not None else None
        if transport is not None:
            transport.abortConnection()
        elif self.connector is not None:
            self.connector.stopConnecting()


def _split_host(host: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (IPv6 in brackets) as autobahn's request wants it: autobahn always
    writes ``Host: name:port``."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[:end + 1], host[end + 1:]
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
        rest = ":" + port
    else:
        name, rest = host, ""
    if rest[:1] == ":" and rest[1:].isdigit():
        return name, int(rest[1:])
    return name, default_port


class UpgradeProbe:
    """Mode ``websocket``: an opening handshake per probe; healthy on a valid 101.

    ``tls_context(address)`` gives the transport's connection creator for a TLS server (the
    probe uses TLS when the probe scheme is https or wss).
    """

    def __init__(self, reactor: Any, *, dial_timeout: float,
                 tls_context: Callable[[BackendAddress], Any] | None = None) -> None:
        self.reactor = reactor
        self.dial_timeout = dial_timeout if dial_timeout > 0 else 30.0
        self.tls_context = tls_context

    def __call__(self, target: ProbeTarget) -> defer.Deferred[ProbeResult]:
        factory = _UpgradeProbeFactory(target, self.reactor)
        address = target.address
        context = None
        if address.tls:
            context = self.tls_context(address) if self.tls_context is not None else None
            if context is None:
                return defer.succeed(ProbeResult(False, "no TLS client settings for "
                                                        f"{address}"))
        if context is not None:
            factory.connector = self.reactor.connectSSL(
                address.host, address.port, factory, context, timeout=self.dial_timeout)
        else:
            factory.connector = self.reactor.connectTCP(
                address.host, address.port, factory, timeout=self.dial_timeout)
        return factory.result

