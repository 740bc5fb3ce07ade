"""stripPrefix: remove the first matching prefix from the path, keep it in
X-Forwarded-Prefix.

Prefixes are compared with the decoded path, as Traefik does, and cut from the raw path by the
number of decoded bytes they span (``%2F`` counts as one), so escapes after the prefix are
forwarded untouched. The query is kept. A result that would need cleaning (``//``, dot
segments) is refused with 400, as in Traefik.
"""

from __future__ import annotations

from wsgate.config.dynamic import StripPrefix
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext, text_answer
from wsgate.middlewares.gocompat import wire
from wsgate.middlewares.paths import (
    decode_path,
    encoded_prefix_len,
    ensure_leading_slash,
    join_target,
    needs_cleaning,
)

__all__ = ["FORWARDED_PREFIX", "StripPrefixMiddleware", "bad_request", "strip_raw"]

FORWARDED_PREFIX = "X-Forwarded-Prefix"


def bad_request() -> Decision:
    """What Traefik answers to a path that a rewrite left unclean."""
    return text_answer(400, "Bad Request\n", nosniff=True)


def strip_raw(raw_path: str, prefix_bytes: int, force_slash: bool = False) -> str:
    """``raw_path`` without the encoding of its first ``prefix_bytes`` decoded bytes."""
    rest = raw_path[encoded_prefix_len(raw_path, prefix_bytes):]
    if force_slash:
        return "/" + rest.removeprefix("/")
    return ensure_leading_slash(rest)


class StripPrefixMiddleware(Middleware):
    kind = "stripPrefix"

    def __init__(self, name: str, config: StripPrefix) -> None:
        super().__init__(name)
        self.prefixes = tuple(wire(p.strip()) for p in config.prefixes)
        self.force_slash = bool(config.force_slash)
        if config.force_slash is not None:
            self.warnings.append("forceSlash is deprecated, remove it")

    def on_request(self, ctx: RequestContext) -> Decision:
        raw, sep, query = ctx.target.partition("?")
        decoded = decode_path(raw)
        for prefix in self.prefixes:
            if decoded.startswith(prefix):
                new_raw = strip_raw(raw, len(prefix), self.force_slash)
                if needs_cleaning(new_raw):
                    return bad_request()
                ctx.add(FORWARDED_PREFIX, prefix)
                ctx.set_target(join_target(new_raw, sep, query))
                break
        return PASS
