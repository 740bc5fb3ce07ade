"""A router's middlewares as one object, and building them from the runtime configuration.

:func:`build_chain` resolves the qualified names of a route (``chain`` middlewares expanded
in place, recursively) into middleware objects; :class:`Chain` runs them:

- ``on_request(ctx)``: each middleware in order until one answers or defers; a deferred
  decision resumes the chain where it stopped. An :class:`Answer` given by middleware *i*
  has already been through ``on_response`` of middlewares *0..i-1* (the ones it passed
  through, innermost first), as a Go handler's answer goes back through its wrappers.
- ``on_response(ctx, status, headers)``: every middleware the request went through,
  innermost first, for the response head the client is about to get (the backend's,
  including a 101, or one the proxy made: 502, 504). The framing and upgrade headers of the
  response are the proxy's: a middleware cannot change them.
- ``on_close(ctx)``: once per request, when it is over (WebSocket closed, response sent,
  client gone, answered by a middleware); releases what middlewares hold (inFlightReq).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from wsgate.config.dynamic import Middleware as MiddlewareConfig
from wsgate.config.runtime import DISABLED, RuntimeConfig
from wsgate.middlewares.add_prefix import AddPrefixMiddleware
from wsgate.middlewares.base import (
    PASS,
    Answer,
    Clock,
    Decision,
    Defer,
    HeaderList,
    Middleware,
    RequestContext,
)
from wsgate.middlewares.basic_auth import BasicAuthMiddleware
from wsgate.middlewares.buffering import BufferingMiddleware
from wsgate.middlewares.circuit_breaker import CircuitBreakerMiddleware
from wsgate.middlewares.compress import CompressMiddleware
from wsgate.middlewares.content_type import ContentTypeMiddleware
from wsgate.middlewares.encoded_characters import EncodedCharactersMiddleware
from wsgate.middlewares.error_pages import ErrorPagesMiddleware
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.forward_auth import ForwardAuthMiddleware
from wsgate.middlewares.headers import HeadersMiddleware
from wsgate.middlewares.in_flight_req import InFlightReqMiddleware
from wsgate.middlewares.ip_allow_list import IPAllowListMiddleware, IPWhiteListMiddleware
from wsgate.middlewares.rate_limit import RateLimitMiddleware
from wsgate.middlewares.redirect_regex import RedirectRegexMiddleware
from wsgate.middlewares.redirect_scheme import RedirectSchemeMiddleware
from wsgate.middlewares.replace_path import ReplacePathMiddleware
from wsgate.middlewares.replace_path_regex import ReplacePathRegexMiddleware
from wsgate.middlewares.retry import RetryMiddleware
from wsgate.middlewares.strip_prefix import StripPrefixMiddleware
from wsgate.middlewares.strip_prefix_regex import StripPrefixRegexMiddleware

__all__ = ["Chain", "build_chain", "build_middleware"]

M = TypeVar("M", bound=Middleware)

#: Response headers that belong to the proxy: framing and, on a 101, the upgrade itself.
_PROTECTED = frozenset({"content-length", "transfer-encoding", "connection"})
_PROTECTED_101 = _PROTECTED | {"upgrade", "sec-websocket-accept"}

#: Kinds Traefik has that wsgate does not run yet: a middleware of these kinds is refused
#: (its routers are disabled) rather than silently skipped.
UNSUPPORTED = {
    "digestAuth": "digestAuth is not supported by wsgate yet",
    "passTLSClientCert": "passTLSClientCert is not supported by wsgate yet",
    "grpcWeb": "grpcWeb is not supported by wsgate (no gRPC support)",
    "plugin": "plugins are not supported by wsgate",
}


class Chain:
    """The middlewares of one route, in the order they run."""

    __slots__ = ("_closers", "_responders", "middlewares")

    def __init__(self, middlewares: Iterable[Middleware] = ()) -> None:
        self.middlewares: tuple[Middleware, ...] = tuple(middlewares)
        self._responders = tuple(i for i, m in enumerate(self.middlewares) if m.wants_response)
        self._closers = tuple(i for i, m in enumerate(self.middlewares) if m.wants_close)

    def __len__(self) -> int:
        return len(self.middlewares)

    def __iter__(self) -> Iterator[Middleware]:
        return iter(self.middlewares)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.middlewares)

    @property
    def warnings(self) -> list[str]:
        return [f'middleware "{m.name}": {w}' for m in self.middlewares for w in m.warnings]

    def find(self, kind: type[M]) -> list[M]:
        """The middlewares of a class, in order (the data path asks for retry, compress,
        errors, buffering, circuitBreaker)."""
        return [m for m in self.middlewares if isinstance(m, kind)]

    # -- request --------------------------------------------------------------------------------
    def on_request(self, ctx: RequestContext) -> Decision:
        return self._run(ctx, 0)

    def _run(self, ctx: RequestContext, start: int) -> Decision:
        mws = self.middlewares
        for i in range(start, len(mws)):
            ctx.entered = i + 1
            decision = mws[i].on_request(ctx)
            if decision is not PASS:
                return self._settle(ctx, i, decision)
        ctx.passed = len(mws)
        return PASS

    def _settle(self, ctx: RequestContext, i: int, decision: Decision) -> Decision:
        if isinstance(decision, Answer):
            ctx.passed = i
            return self._answer(ctx, i, decision)
        if isinstance(decision, Defer):
            resume = decision.resume

            def resumed(result: object) -> Decision:
                after = resume(result)
                if after is PASS:
                    return self._run(ctx, i + 1)
                return self._settle(ctx, i, after)

            return Defer(decision.work, resumed)
        return self._run(ctx, i + 1)

    def _answer(self, ctx: RequestContext, i: int, answer: Answer) -> Answer:
        outer = [j for j in self._responders if j < i]
        if not outer:
            return answer
        headers = self._respond(ctx, answer.status, list(answer.headers), outer)
        return Answer(answer.status, tuple(headers), answer.body)

    # -- response -------------------------------------------------------------------------------
    def on_response(self, ctx: RequestContext, status: int, headers: Iterable[tuple[str, str]]
                    ) -> HeaderList:
        """The response headers after the middlewares the request passed through."""
        passed = [j for j in self._responders if j < ctx.passed]
        if not passed:
            return list(headers)
        return self._respond(ctx, status, list(headers), passed)

    def _respond(self, ctx: RequestContext, status: int, headers: HeaderList,
                 indexes: Sequence[int]) -> HeaderList:
        protected_names = _PROTECTED_101 if status == 101 else _PROTECTED
        protected = [(n, v) for n, v in headers if n.lower() in protected_names]
        for j in reversed(indexes):
            headers = self.middlewares[j].on_response(ctx, status, headers)
        headers = [(n, v) for n, v in headers if n.lower() not in protected_names]
        return headers + protected if protected else headers

    # -- close ----------------------------------------------------------------------------------
    def on_close(self, ctx: RequestContext) -> None:
        if ctx.closed:
            return
        ctx.closed = True
        for j in self._closers:
            if j < ctx.entered:
                self.middlewares[j].on_close(ctx)


# =========================================================================== building

#: The class of each kind; each takes (name, section) and the keywords below.
_CLASSES: dict[str, Callable[..., Middleware]] = {
    "headers": HeadersMiddleware,
    "stripPrefix": StripPrefixMiddleware,
    "stripPrefixRegex": StripPrefixRegexMiddleware,
    "addPrefix": AddPrefixMiddleware,
    "replacePath": ReplacePathMiddleware,
    "replacePathRegex": ReplacePathRegexMiddleware,
    "redirectScheme": RedirectSchemeMiddleware,
    "redirectRegex": RedirectRegexMiddleware,
    "basicAuth": BasicAuthMiddleware,
    "forwardAuth": ForwardAuthMiddleware,
    "ipAllowList": IPAllowListMiddleware,
    "ipWhiteList": IPWhiteListMiddleware,
    "rateLimit": RateLimitMiddleware,
    "inFlightReq": InFlightReqMiddleware,
    "retry": RetryMiddleware,
    "buffering": BufferingMiddleware,
    "compress": CompressMiddleware,
    "errors": ErrorPagesMiddleware,
    "circuitBreaker": CircuitBreakerMiddleware,
    "encodedCharacters": EncodedCharactersMiddleware,
    "contentType": ContentTypeMiddleware,
}

#: Kinds whose objects hold state worth keeping across a reload of an unchanged config.
STATEFUL = frozenset({"rateLimit", "inFlightReq", "circuitBreaker"})


def build_middleware(name: str, config: MiddlewareConfig, *, clock: Clock = time.monotonic,
                     service: str | None = None,
                     read_file: Callable[[str], list[str]] | None = None) -> Middleware:
    """One middleware (not a chain) from its configuration; raises MiddlewareError."""
    kinds = config.kinds()
    if len(kinds) != 1:
        raise MiddlewareError(name, "", "a middleware needs exactly one kind, found "
                              + (" and ".join(kinds) or "none"))
    kind = kinds[0]
    if kind in UNSUPPORTED:
        raise MiddlewareError(name, kind, UNSUPPORTED[kind])
    if kind == "chain":
        raise MiddlewareError(name, "chain", "a chain is built with build_chain")
    keywords: dict[str, Any] = {}
    if kind in ("rateLimit", "circuitBreaker"):
        keywords["clock"] = clock
    elif kind == "errors":
        keywords["service"] = service
    elif kind == "basicAuth" and read_file is not None:
        keywords["read_file"] = read_file
    return _CLASSES[kind](name, config.section, **keywords)


def build_chain(names: Sequence[str], runtime: RuntimeConfig, *, router: str = "",
                clock: Clock = time.monotonic,
                cache: dict[tuple[str, str], tuple[MiddlewareConfig, Middleware]] | None = None,
                read_file: Callable[[str], list[str]] | None = None) -> Chain:
    """The chain of a route from its qualified middleware names (``Route.middlewares``).

    ``chain`` middlewares are expanded in place, recursively. A name that does not exist, is
    disabled, is part of a cycle or cannot be built raises :class:`MiddlewareError` naming the
    middleware and field: the caller disables ``router``.

    Middlewares keep state (rate-limit buckets, in-flight counts, breaker state) per router,
    as in Traefik. Pass the same ``cache`` dict to successive builds to keep those stateful
    objects across a reload when their configuration did not change (Traefik starts them
    afresh); keys are (router, middleware).
    """
    middlewares: list[Middleware] = []
    _expand(list(names), runtime, router, clock, cache, read_file, middlewares, [])
    return Chain(middlewares)


def _expand(names: list[str], runtime: RuntimeConfig, router: str, clock: Clock,
            cache: dict[tuple[str, str], tuple[MiddlewareConfig, Middleware]] | None,
            read_file: Callable[[str], list[str]] | None, out: list[Middleware],
            path: list[str]) -> None:
    infos: Mapping[str, Any] = runtime.middlewares
    for name in names:
        if name in path:
            cycle = " -> ".join([*path[path.index(name):], name])
            raise MiddlewareError(name, "chain.middlewares", f"recursion detected: {cycle}")
        info = infos.get(name)
        if info is None:
            raise MiddlewareError(name, "", "middleware does not exist")
        if info.status == DISABLED:
            reasons = "; ".join(d.message for d in info.errors if d.level == "error")
            raise MiddlewareError(name, "", f"middleware is disabled ({reasons})")
        config: MiddlewareConfig = info.config
        if config.chain is not None:
            refs = list(info.references) or list(config.chain.middlewares)
            _expand(refs, runtime, router, clock, cache, read_file, out, [*path, name])
            continue
        key = (router, name)
        stateful = cache is not None and config.kind in STATEFUL
        if stateful and cache is not None and key in cache and cache[key][0] == config:
            out.append(cache[key][1])
            continue
        built = build_middleware(name, config, clock=clock, service=info.service,
                                 read_file=read_file)
        if stateful and cache is not None:
            cache[key] = (config, built)
        out.append(built)
