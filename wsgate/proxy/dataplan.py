"""What a route's middlewares ask of the data path around the service, looked up once.

retry, buffering, compress, errors and circuitBreaker decide things (see their modules); the
exchange acts on them: sending a request again, holding a body, compressing a response,
fetching an error page. A :class:`DataPlan` is built with the route (``None`` when its chain
has none of these, so such a route costs nothing per request), and holds the error pages'
services already resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsgate.middlewares.buffering import BufferingMiddleware
from wsgate.middlewares.compress import CompressMiddleware
from wsgate.middlewares.error_pages import ErrorPagesMiddleware
from wsgate.middlewares.retry import RetryMiddleware

if TYPE_CHECKING:
    from wsgate.middlewares import Chain
    from wsgate.proxy.routing import ProxyService

__all__ = ["DataPlan", "plan_for"]


@dataclass(frozen=True, slots=True)
class DataPlan:
    #: The first retry middleware of the chain (Traefik nests them; one is what makes sense).
    retry: RetryMiddleware | None = None
    #: The first buffering middleware.
    buffering: BufferingMiddleware | None = None
    #: The first compress middleware.
    compress: CompressMiddleware | None = None
    #: errors middlewares, innermost first (the first to see the backend's status), each with
    #: its service (None when it could not be resolved: it then catches nothing).
    errors: tuple[tuple[ErrorPagesMiddleware, ProxyService | None], ...] = ()
    #: Keep a copy of a request body (at most this many bytes) to send it again; 0: never.
    replay_limit: int = 0
    #: buffering.maxResponseBodyBytes (0: responses stream).
    max_response_body: int = 0

    def retries(self, upgrade: bool) -> bool:
        """Whether anything may send the request again (buffering never for an upgrade)."""
        if self.retry is not None:
            return True
        return (not upgrade and self.buffering is not None
                and self.buffering.retry_condition is not None)


def plan_for(chain: Chain,
             resolve: Callable[[str], ProxyService | None]) -> DataPlan | None:
    """The plan of a chain, or None when it has no middleware the data path acts on."""
    retry = next(iter(chain.find(RetryMiddleware)), None)
    buffering = next(iter(chain.find(BufferingMiddleware)), None)
    compress = next(iter(chain.find(CompressMiddleware)), None)
    errors = tuple((mw, resolve(mw.service))
                   for mw in reversed(chain.find(ErrorPagesMiddleware)))
    if retry is None and buffering is None and compress is None and not errors:
        return None
    replay = 0
    if retry is not None and retry.retries_status_for("GET"):
        replay = retry.max_request_body_bytes
    if buffering is not None and buffering.retry_condition is not None:
        limit = buffering.max_request_body_bytes or buffering.mem_request_body_bytes
        replay = max(replay, limit)
    max_response = buffering.max_response_body_bytes if buffering is not None else 0
    return DataPlan(retry, buffering, compress, errors, replay, max(0, max_response))
