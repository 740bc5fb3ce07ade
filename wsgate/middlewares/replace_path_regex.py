"""replacePathRegex: rewrite the path with a Go regexp and a replacement (``$1``,
``${name}``); the path before goes in X-Replaced-Path.

The regexp sees the escaped path (``%2F`` stays ``%2F``), as in Traefik. A replacement that
leaves a malformed escape is answered with 500, one that leaves ``//`` or dot segments with
400, as Traefik does.
"""

from __future__ import annotations

from wsgate.config.dynamic import ReplacePathRegex
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext, text_answer
from wsgate.middlewares.gocompat import wire
from wsgate.middlewares.goregex import compile_pattern
from wsgate.middlewares.paths import escaped_path, join_target, needs_cleaning, unescape_path
from wsgate.middlewares.replace_path import REPLACED_PATH
from wsgate.middlewares.strip_prefix import bad_request

__all__ = ["ReplacePathRegexMiddleware"]


class ReplacePathRegexMiddleware(Middleware):
    kind = "replacePathRegex"

    def __init__(self, name: str, config: ReplacePathRegex) -> None:
        super().__init__(name)
        self.pattern = compile_pattern(name, "replacePathRegex.regex", config.regex.strip())
        self.replacement = config.replacement.strip()

    def on_request(self, ctx: RequestContext) -> Decision:
        raw, sep, query = ctx.target.partition("?")
        current = escaped_path(raw)  # always ASCII
        if self.pattern.search(current) is None:
            return PASS
        ctx.add(REPLACED_PATH, current)
        new_raw = wire(self.pattern.replace_all(current, self.replacement))
        try:
            unescape_path(new_raw)
        except ValueError as exc:
            return text_answer(500, f"{exc}\n", nosniff=True)
        target = join_target(new_raw, sep, query)
        if needs_cleaning(target.partition("?")[0]):
            return bad_request()
        ctx.set_target(target)
        return PASS
