"""errors: serve a page from another service in place of a response with a listed status.

The data path asks :meth:`ErrorPagesMiddleware.catches` with each response status (1xx,
hence 101, never), and for a caught one sends :meth:`ErrorPagesMiddleware.page_request` to
``service`` and relays its answer with :meth:`ErrorPagesMiddleware.page_status` as status.

``query`` is the path of the page: ``{status}`` is replaced by the status sent (after
``statusRewrites``), ``{originalStatus}`` by the backend's and ``{url}`` by the escaped
original URL. The page request is a GET with the original headers (or only
``errorRequestHeaders`` when that list is set) and the original Host.
"""

from __future__ import annotations

from urllib.parse import quote_plus

from wsgate.config.dynamic import ErrorPage
from wsgate.middlewares.base import Middleware, RequestContext
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.paths import join_target
from wsgate.middlewares.status_ranges import StatusRanges, parse_status_ranges

__all__ = ["ErrorPagesMiddleware"]


class ErrorPagesMiddleware(Middleware):
    kind = "errors"

    def __init__(self, name: str, config: ErrorPage, *, service: str | None = None) -> None:
        super().__init__(name)
        self.status: StatusRanges = parse_status_ranges(name, "errors.status", config.status)
        self.rewrites: list[tuple[StatusRanges, int]] = []
        for key, code in config.status_rewrites.items():
            ranges = parse_status_ranges(name, f"errors.statusRewrites.{key}", [key])
            if not 100 <= code <= 999:
                raise MiddlewareError(name, f"errors.statusRewrites.{key}",
                                      f"invalid HTTP status code {code}")
            self.rewrites.append((ranges, code))
        if not config.service:
            raise MiddlewareError(name, "errors.service", "errors needs a service")
        self.service = service or config.service
        self.query = config.query
        # An empty list cannot be told from an unset one here: both forward every header.
        self.request_headers = tuple(config.error_request_headers)

    def catches(self, status: int) -> bool:
        return status >= 200 and self.status.contains(status)

    def page_status(self, status: int) -> int:
        for ranges, code in self.rewrites:
            if ranges.contains(status):
                return code
        return status

    def page_request(self, ctx: RequestContext, status: int
                     ) -> tuple[str, str, list[tuple[str, str]]]:
        """(method, target, headers) of the request for the error page."""
        code = self.page_status(status)
        scheme = "https" if ctx.tls else "http"
        raw, _, query = ctx.target.partition("?")
        original = f"{scheme}://{ctx.host}{join_target(raw, '?' if query else '', query)}"
        target = "/"
        if self.query:
            target = "/" + self.query.removeprefix("/")
            target = (target.replace("{status}", str(code))
                      .replace("{originalStatus}", str(status))
                      .replace("{url}", quote_plus(original, safe="")))
        if self.request_headers:
            wanted = {h.lower() for h in self.request_headers}
            headers = [(n, v) for n, v in ctx.headers
                       if n.lower() in wanted and n.lower() != "host"]
        else:
            headers = [(n, v) for n, v in ctx.headers if n.lower() != "host"]
        return "GET", target, [("Host", ctx.host), *headers]
