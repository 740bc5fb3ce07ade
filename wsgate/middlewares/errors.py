"""The one exception of the middleware family."""

from __future__ import annotations

__all__ = ["MiddlewareError"]


class MiddlewareError(ValueError):
    """A middleware that cannot be built from its configuration.

    It names the middleware (qualified, ``name@provider``) and the key path of the field at
    fault inside it (``redirectRegex.regex``, ``basicAuth.users[2]``), so that the caller can
    disable the routers that use it and show the reason where Traefik would.
    """

    middleware: str
    field: str
    detail: str

    def __init__(self, middleware: str, field: str, detail: str) -> None:
        self.middleware = middleware
        self.field = field
        self.detail = detail
        where = f"{field}: " if field else ""
        super().__init__(f'middleware "{middleware}": {where}{detail}')

    def __reduce__(self) -> tuple[type[MiddlewareError], tuple[str, str, str]]:
        return (type(self), (self.middleware, self.field, self.detail))
