"""redirectRegex: redirect when a Go regexp matches the request URL, to the replacement
(``$1``, ``${name}``...).

The URL matched is ``scheme://host`` + the request-target, the scheme being https on a TLS
connection and http otherwise (X-Forwarded-Proto is not consulted, as in Traefik). A
replacement equal to the URL does not redirect. See :mod:`wsgate.middlewares.redirect` for what
WebSocket clients see.
"""

from __future__ import annotations

from wsgate.config.dynamic import RedirectRegex
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext, text_answer
from wsgate.middlewares.gocompat import text, wire
from wsgate.middlewares.goregex import compile_pattern
from wsgate.middlewares.redirect import parse_go_url, redirect_answer

__all__ = ["RedirectRegexMiddleware"]


class RedirectRegexMiddleware(Middleware):
    kind = "redirectRegex"

    def __init__(self, name: str, config: RedirectRegex) -> None:
        super().__init__(name)
        self.pattern = compile_pattern(name, "redirectRegex.regex", config.regex)
        self.replacement = config.replacement
        self.permanent = config.permanent

    def on_request(self, ctx: RequestContext) -> Decision:
        scheme = "https" if ctx.tls else "http"
        old = text(f"{scheme}://{ctx.host}{ctx.target}")
        if self.pattern.search(old) is None:
            return PASS
        new = self.pattern.replace_all(old, self.replacement)
        location = parse_go_url(new)
        if location is None:
            return text_answer(500)
        if new == old:
            return PASS
        return redirect_answer(ctx.method, wire(location), self.permanent)
