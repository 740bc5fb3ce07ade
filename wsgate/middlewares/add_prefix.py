"""addPrefix: put ``prefix`` in front of the path (the query is kept)."""

from __future__ import annotations

from wsgate.config.dynamic import AddPrefix
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import wire
from wsgate.middlewares.paths import ensure_leading_slash, join_target

__all__ = ["AddPrefixMiddleware"]


class AddPrefixMiddleware(Middleware):
    kind = "addPrefix"

    def __init__(self, name: str, config: AddPrefix) -> None:
        super().__init__(name)
        if not config.prefix:
            raise MiddlewareError(name, "addPrefix.prefix", "prefix cannot be empty")
        self.prefix = wire(config.prefix)

    def on_request(self, ctx: RequestContext) -> Decision:
        raw, sep, query = ctx.target.partition("?")
        ctx.set_target(join_target(ensure_leading_slash(self.prefix + raw), sep, query))
        return PASS
