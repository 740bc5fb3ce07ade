"""redirectScheme: redirect to another scheme (and port) when the request is not already
on it.

The current scheme is the X-Forwarded-Proto set by the entryPoint (``ws`` counts as
``http`` and ``wss`` as ``https``, as Traefik maps them), else the connection's. The current
port is the Host's; default ports (80 for http, 443 for https) are never written.
See :mod:`wsgate.middlewares.redirect` for what WebSocket clients see.
"""

from __future__ import annotations

import re

from wsgate.config.dynamic import RedirectScheme
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext, text_answer
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import text, wire
from wsgate.middlewares.redirect import parse_go_url, redirect_answer
from wsgate.rules.request import split_host_port

__all__ = ["RedirectSchemeMiddleware"]

_URI = re.compile(r"^(https?://)?(\[[\w:.]+\]|[\w._-]+)?(:\d+)?(.*)$", re.ASCII | re.DOTALL)


class RedirectSchemeMiddleware(Middleware):
    kind = "redirectScheme"

    def __init__(self, name: str, config: RedirectScheme) -> None:
        super().__init__(name)
        if not config.scheme:
            raise MiddlewareError(name, "redirectScheme.scheme",
                                  "you must provide a target scheme")
        self.scheme = config.scheme
        port = config.port
        if port and not ((config.scheme == "http" and port == "80")
                         or (config.scheme == "https" and port == "443")):
            self.port = ":" + port
        else:
            self.port = ""
        self.permanent = config.permanent

    def current_url(self, ctx: RequestContext) -> str:
        """The URL the client asked for, as Traefik's redirectScheme rebuilds it."""
        scheme = "https" if ctx.tls else "http"
        try:
            host, port = split_host_port(ctx.host)
            port = ":" + port
            if ":" in host:
                # Traefik loses the brackets of an IPv6 host here (and answers 500).
                host = f"[{host}]"
        except ValueError:
            host, port = ctx.host, ""
        xfp = ctx.get("X-Forwarded-Proto")
        if xfp:
            lowered = xfp.lower()
            if lowered in ("http", "ws"):
                scheme = "http"
            elif lowered in ("https", "wss"):
                scheme = "https"
        if (scheme == "http" and port == ":80") or (scheme == "https" and port == ":443"):
            port = ""
        return f"{scheme}://{host}{port}{ctx.target}"

    def on_request(self, ctx: RequestContext) -> Decision:
        old = text(self.current_url(ctx))
        m = _URI.match(old)
        if m is None:  # pragma: no cover - the pattern matches any string
            return PASS
        new = f"{self.scheme}://{m.group(2) or ''}{self.port}{m.group(4)}"
        if new == old:
            return PASS
        location = parse_go_url(new)
        if location is None:
            return text_answer(500)
        return redirect_answer(ctx.method, wire(location), self.permanent)
