"""headers: custom request and response headers, CORS, security headers.

Traefik runs two handlers for this middleware, outer to inner: the custom/CORS one (answers
CORS preflights, sets customRequestHeaders; on the way back sets customResponseHeaders, then the
CORS response headers) and the security one (allowedHosts check, which answers 500 "Bad Host";
on the way back the STS, frame, XSS, CSP... headers). The order of their effects is kept:
on a response, security headers are set first, custom ones may override them, CORS ones last.

Unlike Traefik, response headers are also applied to the backend's 101 Switching Protocols
(Traefik writes the 101 past its response modifiers). The chain never lets them change the
framing or upgrade headers of a response.
"""

from __future__ import annotations

from wsgate.config.dynamic import Headers
from wsgate.middlewares.base import (
    PASS,
    Answer,
    Decision,
    HeaderList,
    Middleware,
    RequestContext,
    text_answer,
)
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import wire
from wsgate.middlewares.goregex import compile_pattern

__all__ = ["HeadersMiddleware"]

_XFF = "X-Forwarded-For"


def _check_header(middleware: str, field: str, name: str, value: str) -> None:
    if not name or any(c in name for c in " \t\r\n:") or not name.isascii():
        raise MiddlewareError(middleware, field, f"invalid header name {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise MiddlewareError(middleware, f"{field}.{name}",
                              "a header value cannot contain CR, LF or NUL")


def _set(headers: HeaderList, name: str, value: str) -> None:
    """Go's Header.Set on a response header list."""
    lname = name.lower()
    out: HeaderList = []
    placed = False
    for pair in headers:
        if pair[0].lower() == lname:
            if not placed:
                out.append((name, value))
                placed = True
            continue
        out.append(pair)
    if not placed:
        out.append((name, value))
    headers[:] = out


def _delete(headers: HeaderList, name: str) -> None:
    lname = name.lower()
    headers[:] = [p for p in headers if p[0].lower() != lname]


def _first(headers: HeaderList, name: str) -> str:
    lname = name.lower()
    for n, v in headers:
        if n.lower() == lname:
            return v
    return ""


class HeadersMiddleware(Middleware):
    kind = "headers"
    wants_response = True

    def __init__(self, name: str, config: Headers) -> None:
        super().__init__(name)
        c = config
        self.config = c
        self.has_custom = bool(c.custom_request_headers or c.custom_response_headers)
        self.has_cors = bool(
            c.access_control_allow_credentials or c.access_control_allow_headers
            or c.access_control_allow_methods or c.access_control_allow_origin_list
            or c.access_control_allow_origin_list_regex or c.access_control_expose_headers
            or c.access_control_max_age is not None or c.add_vary_header)
        self.has_secure = bool(
            c.allowed_hosts or c.hosts_proxy_headers or c.ssl_redirect or c.ssl_temporary_redirect
            or c.ssl_force_host or c.ssl_host or c.ssl_proxy_headers or c.sts_seconds is not None
            or c.sts_include_subdomains or c.sts_preload or c.force_sts_header or c.frame_deny
            or c.custom_frame_options_value or c.content_type_nosniff or c.browser_xss_filter
            or c.custom_browser_xss_value or c.content_security_policy
            or c.content_security_policy_report_only or c.public_key or c.referrer_policy
            or c.feature_policy or c.permissions_policy or c.is_development)
        if not (self.has_custom or self.has_cors or self.has_secure):
            raise MiddlewareError(name, "headers",
                                  "headers configuration not valid: it sets nothing")
        for field, mapping in (("headers.customRequestHeaders", c.custom_request_headers),
                               ("headers.customResponseHeaders", c.custom_response_headers)):
            for hname, hvalue in mapping.items():
                _check_header(name, field, hname, hvalue)
        self.request_headers = [(n, wire(v)) for n, v in c.custom_request_headers.items()]
        self.response_headers = [(n, wire(v)) for n, v in c.custom_response_headers.items()]
        self.origin_regexes = [
            compile_pattern(name, f"headers.accessControlAllowOriginListRegex[{i}]", r)
            for i, r in enumerate(c.access_control_allow_origin_list_regex)]
        self.allowed_hosts = tuple(h.lower() for h in c.allowed_hosts)
        if c.ssl_redirect or c.ssl_temporary_redirect or c.ssl_force_host or c.ssl_host:
            self.warnings.append("sslRedirect, sslTemporaryRedirect, sslForceHost and sslHost "
                                 "have no effect (as in Traefik v3): use redirectScheme")
        if c.feature_policy:
            self.warnings.append("featurePolicy has no effect (as in Traefik v3): use "
                                 "permissionsPolicy")
        self._secure_static = self._static_security_headers()

    # -- request --------------------------------------------------------------------------------
    def on_request(self, ctx: RequestContext) -> Decision:
        if self.has_cors and ctx.method == "OPTIONS":
            acrm = ctx.get("Access-Control-Request-Method")
            origin = ctx.get("Origin")
            if acrm and origin:
                return self._preflight(ctx, origin, acrm)
        if self.has_custom:
            self._modify_request(ctx)
        if self.has_secure:
            return self._check_secure(ctx)
        return PASS

    def _preflight(self, ctx: RequestContext, origin: str, acrm: str) -> Answer:
        c = self.config
        headers: HeaderList = []
        if c.access_control_allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        allow_headers = ",".join(c.access_control_allow_headers)
        if "*" in c.access_control_allow_headers and c.access_control_allow_credentials:
            acrh = ctx.get("Access-Control-Request-Headers")
            if acrh:
                headers.append(("Access-Control-Allow-Headers", acrh))
        elif allow_headers:
            headers.append(("Access-Control-Allow-Headers", allow_headers))
        allow_methods = ",".join(c.access_control_allow_methods)
        if "*" in c.access_control_allow_methods and c.access_control_allow_credentials:
            headers.append(("Access-Control-Allow-Methods", acrm))
        elif allow_methods:
            headers.append(("Access-Control-Allow-Methods", allow_methods))
        match = self._match_origin(origin)
        if match is not None:
            headers.append(("Access-Control-Allow-Origin", match))
        if c.access_control_max_age is not None:
            headers.append(("Access-Control-Max-Age", str(c.access_control_max_age)))
        expose = self._expose_headers()
        if expose:
            headers.append(("Access-Control-Expose-Headers", expose))
        # Traefik answers 200 with an empty body, not 204.
        return Answer(200, tuple(headers))

    def _modify_request(self, ctx: RequestContext) -> None:
        for hname, value in self.request_headers:
            if value == "" and hname == _XFF:
                ctx.delete(hname)
                ctx.suppress_xff = True
            elif value == "":
                ctx.delete(hname)
            elif hname.lower() == "host":
                ctx.set("Host", value)
            else:
                ctx.set(hname, value)

    def _check_secure(self, ctx: RequestContext) -> Decision:
        c = self.config
        if self.allowed_hosts and not c.is_development:
            host = ctx.host
            for proxy_header in c.hosts_proxy_headers:
                value = ctx.get(proxy_header)
                if value:
                    host = value
                    break
            if host.lower() not in self.allowed_hosts:
                bad = text_answer(500, "Bad Host\n", nosniff=True)
                # The outer custom/CORS handler still sees this answer on its way out.
                headers = list(bad.headers)
                if self.has_custom or self.has_cors:
                    self._custom_and_cors(ctx, headers)
                return Answer(500, tuple(headers), bad.body)
        ssl = ctx.tls or any(ctx.get(k) == v for k, v in c.ssl_proxy_headers.items())
        ctx.notes[self] = ssl
        return PASS

    # -- response -------------------------------------------------------------------------------
    def on_response(self, ctx: RequestContext, status: int, headers: HeaderList) -> HeaderList:
        if self.has_secure:
            for hname, value in self._security_headers(ctx):
                _set(headers, hname, value)
        if self.has_custom or self.has_cors:
            self._custom_and_cors(ctx, headers)
        return headers

    def _custom_and_cors(self, ctx: RequestContext, headers: HeaderList) -> None:
        c = self.config
        for hname, value in self.response_headers:
            if value == "":
                _delete(headers, hname)
            else:
                _set(headers, hname, value)
        match = self._match_origin(ctx.get("Origin") or "")
        if match is not None:
            _set(headers, "Access-Control-Allow-Origin", match)
        if c.access_control_allow_credentials:
            _set(headers, "Access-Control-Allow-Credentials", "true")
        expose = self._expose_headers()
        if expose:
            _set(headers, "Access-Control-Expose-Headers", expose)
        if c.add_vary_header:
            vary = _first(headers, "Vary")
            if vary != "Origin":
                _set(headers, "Vary", f"{vary},Origin" if vary else "Origin")

    def _match_origin(self, origin: str) -> str | None:
        for item in self.config.access_control_allow_origin_list:
            if item == origin:
                return item
            if item == "*":
                # A wildcard cannot go with credentials: the origin is echoed instead.
                return origin if self.config.access_control_allow_credentials else item
        for pattern in self.origin_regexes:
            if pattern.search(origin):
                return origin
        return None

    def _expose_headers(self) -> str:
        c = self.config
        if not c.access_control_expose_headers:
            return ""
        if "*" in c.access_control_expose_headers and c.access_control_allow_credentials:
            return ""
        return ",".join(c.access_control_expose_headers)

    def _static_security_headers(self) -> HeaderList:
        c = self.config
        out: HeaderList = []
        if c.custom_frame_options_value:
            out.append(("X-Frame-Options", wire(c.custom_frame_options_value)))
        elif c.frame_deny:
            out.append(("X-Frame-Options", "DENY"))
        if c.content_type_nosniff:
            out.append(("X-Content-Type-Options", "nosniff"))
        if c.custom_browser_xss_value:
            out.append(("X-XSS-Protection", wire(c.custom_browser_xss_value)))
        elif c.browser_xss_filter:
            out.append(("X-XSS-Protection", "1; mode=block"))
        if c.content_security_policy:
            out.append(("Content-Security-Policy", wire(c.content_security_policy)))
        if c.content_security_policy_report_only:
            out.append(("Content-Security-Policy-Report-Only",
                        wire(c.content_security_policy_report_only)))
        if c.referrer_policy:
            out.append(("Referrer-Policy", wire(c.referrer_policy)))
        if c.permissions_policy:
            out.append(("Permissions-Policy", wire(c.permissions_policy)))
        return out

    def _security_headers(self, ctx: RequestContext) -> HeaderList:
        c = self.config
        ssl = bool(ctx.notes.get(self, ctx.tls))
        out: HeaderList = []
        if c.sts_seconds and (ssl or c.force_sts_header) and not c.is_development:
            value = f"max-age={c.sts_seconds}"
            if c.sts_include_subdomains:
                value += "; includeSubDomains"
            if c.sts_preload:
                value += "; preload"
            out.append(("Strict-Transport-Security", value))
        out.extend(self._secure_static)
        if c.public_key and ssl and not c.is_development:
            out.append(("Public-Key-Pins", wire(c.public_key)))
        return out
