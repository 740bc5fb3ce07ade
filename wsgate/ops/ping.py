"""``ping@internal``: ``OK`` while running, ``terminatingStatusCode`` once shutting down.

Like Traefik's, it answers any method and any path it is routed (``PathPrefix(`/ping`)`` on
``ping.entryPoint`` unless ``manualRouting``), with the status text as the body.
"""

from __future__ import annotations

from twisted.web.http import RESPONSES
from twisted.web.resource import Resource
from twisted.web.server import Request

DEFAULT_TERMINATING_STATUS = 503


def status_text(code: int) -> bytes:
    return RESPONSES.get(code, b"")


class PingResource(Resource):
    isLeaf = True

    def __init__(self, terminating_status: int = DEFAULT_TERMINATING_STATUS) -> None:
        super().__init__()
        self.terminating_status = terminating_status
        self.terminating = False

    def set_terminating(self) -> None:
        """From now on answer ``terminatingStatusCode`` (graceful shutdown has begun)."""
        self.terminating = True

    def render(self, request: Request) -> bytes:
        code = self.terminating_status if self.terminating else 200
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return status_text(code)


__all__ = ["DEFAULT_TERMINATING_STATUS", "PingResource", "status_text"]
