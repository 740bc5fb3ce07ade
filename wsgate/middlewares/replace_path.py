"""replacePath: replace the whole path (the query is kept); the path the request had goes
in X-Replaced-Path."""

from __future__ import annotations

from wsgate.config.dynamic import ReplacePath
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import wire
from wsgate.middlewares.paths import escaped_path, join_target, unescape_path

__all__ = ["REPLACED_PATH", "ReplacePathMiddleware"]

REPLACED_PATH = "X-Replaced-Path"


class ReplacePathMiddleware(Middleware):
    kind = "replacePath"

    def __init__(self, name: str, config: ReplacePath) -> None:
        super().__init__(name)
        self.path = wire(config.path)
        try:
            unescape_path(self.path)
        except ValueError as exc:
            # Traefik builds the middleware and answers 500 to every request; refusing the
            # configuration says the same thing earlier.
            raise MiddlewareError(name, "replacePath.path", str(exc)) from None

    def on_request(self, ctx: RequestContext) -> Decision:
        raw, sep, query = ctx.target.partition("?")
        ctx.add(REPLACED_PATH, escaped_path(raw))
        ctx.set_target(join_target(self.path, sep, query))
        return PASS
