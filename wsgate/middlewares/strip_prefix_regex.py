"""stripPrefixRegex: remove the part of the path matched by the first regex whose match
starts the path; X-Forwarded-Prefix gets the removed part.

Regexes are Go regexps matched against the decoded path (as text).
"""

from __future__ import annotations

from wsgate.config.dynamic import StripPrefixRegex
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext
from wsgate.middlewares.gocompat import text, wire
from wsgate.middlewares.goregex import compile_pattern
from wsgate.middlewares.paths import decode_path, join_target, needs_cleaning
from wsgate.middlewares.strip_prefix import FORWARDED_PREFIX, bad_request, strip_raw

__all__ = ["StripPrefixRegexMiddleware"]


class StripPrefixRegexMiddleware(Middleware):
    kind = "stripPrefixRegex"

    def __init__(self, name: str, config: StripPrefixRegex) -> None:
        super().__init__(name)
        self.patterns = [compile_pattern(name, f"stripPrefixRegex.regex[{i}]", r.strip())
                         for i, r in enumerate(config.regex)]

    def on_request(self, ctx: RequestContext) -> Decision:
        raw, sep, query = ctx.target.partition("?")
        decoded = text(decode_path(raw))
        for pattern in self.patterns:
            m = pattern.search(decoded)
            if m is None or not m.group(0) or m.start() != 0:
                continue
            prefix = wire(m.group(0))
            new_raw = strip_raw(raw, len(prefix))
            if needs_cleaning(new_raw):
                return bad_request()
            ctx.add(FORWARDED_PREFIX, prefix)
            ctx.set_target(join_target(new_raw, sep, query))
            break
        return PASS
