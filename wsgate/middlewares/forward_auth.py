"""forwardAuth: ask an authentication server about each request.

The decision part builds the request to the auth server (:class:`AuthRequest`, handed to the
caller as deferred work; :mod:`wsgate.middlewares.forward_auth_client` performs it) and reads
its answer:

- 2xx: the request goes on, with the ``authResponseHeaders`` (and the headers matching
  ``authResponseHeadersRegex``) taken from the auth answer in place of the client's; auth
  cookies named in ``addAuthCookiesToResponse`` are put on the final response;
- 401 with ``authSigninURL``: 302 to that URL;
- anything else: the auth server's answer goes to the client (status, headers without the
  hop-by-hop ones, body), its ``Location`` made absolute against ``address`` unless
  ``preserveLocationHeader``;
- no answer (connection refused, timeout after 30s): 500; an answer body above
  ``maxResponseBodySize``: 401.

The auth request is a GET (the client's method with ``preserveRequestMethod``) to
``address``, with the client's headers (only ``authRequestHeaders`` when listed) minus
hop-by-hop ones, and X-Forwarded-For/-Proto/-Method/-Host/-Uri (/-Port) describing the original
request. ``trustForwardHeader: true`` keeps the X-Forwarded-* the request already has (as cleaned
by the entryPoint), ``false`` drops them first, unset overwrites some and keeps the others
(Traefik's legacy behaviour). With ``forwardBody`` the request body (at most ``maxBodySize``,
else 401) is sent too.

For a WebSocket handshake the auth server sees the GET with its headers (Origin, Cookie,
Authorization, Sec-WebSocket-Protocol...) but not Connection/Upgrade; its 2xx lets the upgrade
go on, anything else is what the WebSocket client gets instead of a 101.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from wsgate.config.dynamic import ForwardAuth
from wsgate.http.forwarding import MANAGED_X_HEADERS, is_managed_x_header
from wsgate.middlewares.base import (
    PASS,
    Answer,
    AuthFailure,
    AuthRequest,
    AuthResponse,
    BodyTooLarge,
    Decision,
    Defer,
    HeaderList,
    Middleware,
    ReadBody,
    RequestContext,
)
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import canonical_header_key, status_text, wire
from wsgate.middlewares.goregex import compile_pattern
from wsgate.middlewares.redirect import parse_go_url
from wsgate.rules.request import split_host_port

__all__ = ["AUTH_TIMEOUT", "ForwardAuthMiddleware"]

#: Traefik's client timeout for the auth request.
AUTH_TIMEOUT = 30.0

# Removed from the auth request (Proxy-Authorization is kept, RFC 7235 §4.4), and from an
# auth answer relayed to the client.
_HOP = frozenset({"connection", "keep-alive", "te", "trailer", "trailers",
                  "transfer-encoding", "upgrade"})


def _html_escape(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def _cookie_name(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].partition("=")[0].strip()


class ForwardAuthMiddleware(Middleware):
    kind = "forwardAuth"
    wants_response = True

    def __init__(self, name: str, config: ForwardAuth) -> None:
        super().__init__(name)
        address = config.address
        try:
            parts = urlsplit(address)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError as exc:
            raise MiddlewareError(name, "forwardAuth.address",
                                  f"invalid address {address!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MiddlewareError(name, "forwardAuth.address",
                                  f"the address must be an http:// or https:// URL "
                                  f"(got {address!r})")
        self.address = address
        self.tls = config.tls
        if config.tls is not None and config.tls.ca_optional is not None:
            self.warnings.append("tls.caOptional is deprecated and has no effect")
        self.trust = config.trust_forward_header
        if self.trust is None:
            self.warnings.append(
                "trustForwardHeader is not set: some X-Forwarded headers are overwritten and "
                "others forwarded untouched; set it to false (drop them all) or true")
        self.request_headers = [h.lower() for h in config.auth_request_headers]
        if self.trust and self.request_headers:
            self.request_headers += sorted(MANAGED_X_HEADERS)
        self.response_headers = [canonical_header_key(h) for h in config.auth_response_headers]
        self.response_regex = None
        if config.auth_response_headers_regex:
            self.response_regex = compile_pattern(name, "forwardAuth.authResponseHeadersRegex",
                                                  config.auth_response_headers_regex)
        self.auth_cookies = frozenset(config.add_auth_cookies_to_response)
        self.header_field = config.header_field
        self.forward_body = config.forward_body
        self.max_body_size = config.max_body_size
        if self.forward_body and self.max_body_size < 0:
            self.warnings.append("forwardBody without maxBodySize: request bodies of any size "
                                 "are read into memory")
        self.max_response_body_size = (config.max_response_body_size
                                       if config.max_response_body_size is not None else -1)
        self.preserve_location = config.preserve_location_header
        self.preserve_method = config.preserve_request_method
        self.signin_url = config.auth_signin_url

    # -- request --------------------------------------------------------------------------------
    def on_request(self, ctx: RequestContext) -> Decision:
        body_wanted = self.forward_body and not (ctx.method == "CONNECT" and ctx.chunked)
        if body_wanted and ctx.body is None and ctx.has_body:
            return Defer(ReadBody(self.max_body_size), lambda got: self._with_body(ctx, got))
        return self._ask(ctx)

    def _with_body(self, ctx: RequestContext, got: object) -> Decision:
        if isinstance(got, BodyTooLarge):
            return Answer(401)
        if not isinstance(got, bytes):
            return Answer(500)
        ctx.body = got
        return self._ask(ctx)

    def _ask(self, ctx: RequestContext) -> Decision:
        body = ctx.body if self.forward_body else None
        request = AuthRequest(
            method=ctx.method if self.preserve_method else "GET", url=self.address,
            headers=tuple(self.auth_request_headers(ctx)), body=body, timeout=AUTH_TIMEOUT,
            max_response_body=self.max_response_body_size, tls=self.tls)
        return Defer(request, lambda answer: self.on_auth_response(ctx, answer))

    def auth_request_headers(self, ctx: RequestContext) -> HeaderList:
        """The headers sent to the auth server for ``ctx`` (Host and framing excepted)."""
        named: set[str] = set()
        for value in ctx.get_all("Connection"):
            named.update(t.strip(" \t").lower() for t in value.split(","))
        headers = [(n, v) for n, v in ctx.headers
                   if (ln := n.lower()) not in _HOP and ln not in named
                   and ln not in ("host", "content-length")]
        if self.trust is False:
            headers = [(n, v) for n, v in headers if not is_managed_x_header(n)]
        if self.request_headers:
            headers = [(n, v) for n, v in headers if n.lower() in self.request_headers]
        present = {n.lower() for n, _ in headers}
        proto = "https" if ctx.tls else "http"

        def put(name: str, value: str) -> None:
            lname = name.lower()
            headers[:] = [(n, v) for n, v in headers if n.lower() != lname]
            headers.append((name, value))

        if self.trust is None:
            put("X-Forwarded-For", ctx.client_ip)
            put("X-Forwarded-Proto", proto)
            put("X-Forwarded-Method", ctx.method)
            put("X-Forwarded-Host", ctx.host)
            put("X-Forwarded-Uri", ctx.target)
            return headers
        prior = [v for n, v in headers if n.lower() == "x-forwarded-for"]
        put("X-Forwarded-For", ", ".join([*prior, ctx.client_ip]))
        if "x-forwarded-method" not in present:
            put("X-Forwarded-Method", ctx.method)
        if "x-forwarded-proto" not in present:
            put("X-Forwarded-Proto", proto)
        if "x-forwarded-port" not in present:
            put("X-Forwarded-Port", self._forwarded_port(ctx, headers))
        if "x-forwarded-host" not in present:
            put("X-Forwarded-Host", ctx.host)
        if "x-forwarded-uri" not in present:
            put("X-Forwarded-Uri", ctx.target)
        return headers

    @staticmethod
    def _forwarded_port(ctx: RequestContext, headers: HeaderList) -> str:
        try:
            port = split_host_port(ctx.host)[1]
        except ValueError:
            port = ""
        if port:
            return port
        xfp = next((v for n, v in headers if n.lower() == "x-forwarded-proto"), "")
        if xfp in ("https", "wss") or ctx.tls:
            return "443"
        return "80"

    # -- auth answer ----------------------------------------------------------------------------
    def on_auth_response(self, ctx: RequestContext, answer: object) -> Decision:
        if isinstance(answer, AuthFailure):
            return Answer(499 if answer.cancelled else 500)
        if not isinstance(answer, AuthResponse):
            return Answer(500)
        if answer.too_large:
            return Answer(401)
        auth_headers = list(answer.headers)
        if self.header_field:
            lname = self.header_field.lower()
            user = next((v for n, v in auth_headers if n.lower() == lname), None)
            if user is not None:
                ctx.user = user
        if self.signin_url and answer.status == 401:
            return self._signin(ctx)
        if not 200 <= answer.status < 300:
            return self._relay(answer)
        for hname in self.response_headers:
            ctx.delete(hname)
            lname = hname.lower()
            for n, v in auth_headers:
                if n.lower() == lname:
                    ctx.add(hname, v)
        if self.response_regex is not None:
            regex = self.response_regex
            for n, _ in list(ctx.headers):
                if regex.search(canonical_header_key(n)):
                    ctx.delete(n)
            for n, v in auth_headers:
                key = canonical_header_key(n)
                if regex.search(key):
                    ctx.add(key, v)
        cookies = [v for n, v in auth_headers if n.lower() == "set-cookie"]
        if cookies:
            ctx.notes[self] = cookies
        return PASS

    def _relay(self, answer: AuthResponse) -> Decision:
        headers = [(n, v) for n, v in answer.headers
                   if n.lower() not in _HOP and n.lower() != "content-length"]
        location = next((v for n, v in headers if n.lower() == "location"), None)
        if location is not None:
            if self.preserve_location:
                resolved = parse_go_url(location)
            else:
                resolved = parse_go_url(urljoin(self.address, location)) if location else ""
            if resolved is None:
                return Answer(500)
            if resolved:
                headers = [(n, v) for n, v in headers if n.lower() != "location"]
                headers.append(("Location", resolved))
        return Answer(answer.status, tuple(headers), answer.body)

    def _signin(self, ctx: RequestContext) -> Decision:
        url = self.signin_url
        parts = urlsplit(url)
        if not parts.scheme and not parts.netloc and not url.startswith("/"):
            url = urljoin(ctx.path or "/", url)
        headers: list[tuple[str, str]] = [("Location", wire(url))]
        body = b""
        if ctx.method in ("GET", "HEAD"):
            headers.append(("Content-Type", "text/html; charset=utf-8"))
        if ctx.method == "GET":
            body = f'<a href="{_html_escape(url)}">{status_text(302)}</a>.\n\n'.encode()
        return Answer(302, tuple(headers), body)

    # -- response -------------------------------------------------------------------------------
    def on_response(self, ctx: RequestContext, status: int, headers: HeaderList) -> HeaderList:
        cookies = ctx.notes.pop(self, None)
        if not cookies:
            return headers
        kept = [(n, v) for n, v in headers
                if n.lower() != "set-cookie" or _cookie_name(v) not in self.auth_cookies]
        kept += [("Set-Cookie", v) for v in cookies if _cookie_name(v) in self.auth_cookies]
        return kept
