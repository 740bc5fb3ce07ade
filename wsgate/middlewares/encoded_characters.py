"""encodedCharacters: refuse (400, empty body) paths with chosen percent-encoded characters.

Every ``allowEncoded*`` option defaults to false, so by default ``%2F`` (/), ``%5C`` (\\),
``%00``, ``%3B`` (;), ``%25`` (%), ``%3F`` (?) and ``%23`` (#) are refused.
"""

from __future__ import annotations

from wsgate.config.dynamic import EncodedCharacters
from wsgate.middlewares.base import PASS, Answer, Decision, Middleware, RequestContext
from wsgate.middlewares.paths import escaped_path

__all__ = ["EncodedCharactersMiddleware"]


class EncodedCharactersMiddleware(Middleware):
    kind = "encodedCharacters"

    def __init__(self, name: str, config: EncodedCharacters) -> None:
        super().__init__(name)
        denied: set[str] = set()
        for allowed, codes in ((config.allow_encoded_slash, ("2F",)),
                               (config.allow_encoded_back_slash, ("5C",)),
                               (config.allow_encoded_null_character, ("00",)),
                               (config.allow_encoded_semicolon, ("3B",)),
                               (config.allow_encoded_percent, ("25",)),
                               (config.allow_encoded_question_mark, ("3F",)),
                               (config.allow_encoded_hash, ("23",))):
            if not allowed:
                denied.update(codes)
        self.denied = frozenset(denied)
        self._bad = Answer(400)

    def on_request(self, ctx: RequestContext) -> Decision:
        if not self.denied:
            return PASS
        path = escaped_path(ctx.path)
        i = path.find("%")
        while i >= 0:
            if i + 2 >= len(path):
                return self._bad
            if path[i + 1 : i + 3].upper() in self.denied:
                return self._bad
            i = path.find("%", i + 3)
        return PASS
