"""ipAllowList (and its deprecated alias ipWhiteList): only let listed client addresses in.

The address is chosen by ``ipStrategy`` (default: the peer address; see
:mod:`wsgate.middlewares.ipstrategy`). Others get ``rejectStatusCode`` (default 403, ipWhiteList:
always 403) with the status text as body.
"""

from __future__ import annotations

from wsgate.config.dynamic import IPAllowList, IPWhiteList
from wsgate.middlewares.base import PASS, Decision, Middleware, RequestContext, text_answer
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import status_text
from wsgate.middlewares.ipstrategy import build_ip_strategy, ip_in
from wsgate.rules.ipmatch import IPSet

__all__ = ["IPAllowListMiddleware", "IPWhiteListMiddleware"]


class IPAllowListMiddleware(Middleware):
    kind = "ipAllowList"

    def __init__(self, name: str, config: IPAllowList | IPWhiteList) -> None:
        super().__init__(name)
        section = "ipAllowList" if isinstance(config, IPAllowList) else "ipWhiteList"
        if not config.source_range:
            raise MiddlewareError(name, f"{section}.sourceRange",
                                  f"sourceRange is empty, {section} not created")
        status = 403
        if isinstance(config, IPAllowList) and config.reject_status_code:
            status = config.reject_status_code
            if not status_text(status):
                raise MiddlewareError(name, f"{section}.rejectStatusCode",
                                      f"invalid HTTP status code {status}")
        try:
            self.networks = IPSet(e.strip() for e in config.source_range)
        except ValueError as exc:
            raise MiddlewareError(name, f"{section}.sourceRange", str(exc)) from None
        self.strategy = build_ip_strategy(name, f"{section}.ipStrategy", config.ip_strategy)
        self.reject = text_answer(status)

    def on_request(self, ctx: RequestContext) -> Decision:
        if ip_in(self.networks, self.strategy(ctx)):
            return PASS
        return self.reject


class IPWhiteListMiddleware(IPAllowListMiddleware):
    """The deprecated name of ipAllowList (always 403)."""

    kind = "ipWhiteList"

    def __init__(self, name: str, config: IPWhiteList) -> None:
        super().__init__(name, config)
        self.warnings.append("ipWhiteList is deprecated, use ipAllowList")
