"""contentType: in Traefik it re-enables Go's Content-Type sniffing, which Traefik's proxy
otherwise turns off. wsgate never guesses nor removes a Content-Type, so the middleware passes
everything unchanged (``autoDetect`` is deprecated and has no effect)."""

from __future__ import annotations

from wsgate.config.dynamic import ContentType
from wsgate.middlewares.base import Middleware

__all__ = ["ContentTypeMiddleware"]


class ContentTypeMiddleware(Middleware):
    kind = "contentType"

    def __init__(self, name: str, config: ContentType) -> None:
        super().__init__(name)
        if config.auto_detect is not None:
            self.warnings.append("autoDetect is deprecated and has no effect, remove it")
