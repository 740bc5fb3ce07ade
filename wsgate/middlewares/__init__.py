"""Traefik's HTTP middlewares, as decisions without I/O.

Each kind lives in its own module and is built from its configuration section
(:mod:`wsgate.config.dynamic`); :func:`build_chain` builds the middlewares of a route and
:class:`Chain` runs them with three calls (see :mod:`wsgate.middlewares.base`):
``on_request(ctx)`` → PASS / Answer / Defer, ``on_response(ctx, status, headers)`` →
headers (101 included), ``on_close(ctx)``. :func:`~wsgate.middlewares.forward_auth_client.resolve`
performs deferred work with Twisted. docs/middlewares.md describes every kind for users.
"""

from wsgate.middlewares.base import (
    PASS,
    Answer,
    AuthFailure,
    AuthRequest,
    AuthResponse,
    Blocking,
    BodyTooLarge,
    Decision,
    Defer,
    Middleware,
    Pass,
    ReadBody,
    RequestContext,
    Sleep,
    Work,
)
from wsgate.middlewares.chain import Chain, build_chain, build_middleware
from wsgate.middlewares.errors import MiddlewareError

__all__ = [
    "PASS",
    "Answer",
    "AuthFailure",
    "AuthRequest",
    "AuthResponse",
    "Blocking",
    "BodyTooLarge",
    "Chain",
    "Decision",
    "Defer",
    "Middleware",
    "MiddlewareError",
    "Pass",
    "ReadBody",
    "RequestContext",
    "Sleep",
    "Work",
    "build_chain",
    "build_middleware",
]
