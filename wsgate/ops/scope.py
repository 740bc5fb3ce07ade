"""Which requests an observer records: Traefik's observability switches.

A request is metered (or access-logged) when its router's ``observability.metrics``
(``accessLogs``) says so, else when its entryPoint's ``observability`` says so (default true);
requests to ``@internal`` services only with ``addInternals``. A request that matched no router
follows its entryPoint's switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from wsgate.config.runtime import RuntimeConfig
    from wsgate.config.static import StaticConfig

Switch = Literal["metrics", "access_logs"]


class Scope:
    """Answers "is this request recorded?" with two dict lookups."""

    def __init__(self, entry_points: Mapping[str, bool], *, add_internals: bool,
                 switch: Switch) -> None:
        self.entry_points = dict(entry_points)
        self.add_internals = add_internals
        self.switch = switch
        self.routers: dict[str, bool] = {}

    @classmethod
    def from_static(cls, static: StaticConfig, *, add_internals: bool,
                    switch: Switch) -> Scope:
        eps = {name: bool(getattr(ep.observability, switch))
               for name, ep in static.entry_points.items()}
        return cls(eps, add_internals=add_internals, switch=switch)

    def runtime_changed(self, runtime: RuntimeConfig) -> None:
        routers = {}
        for name, info in runtime.routers.items():
            obs = info.config.observability
            value = getattr(obs, self.switch) if obs is not None else None
            if value is not None:
                routers[name] = bool(value)
        self.routers = routers

    def records(self, entrypoint: str, router: str, service: str) -> bool:
        if service.endswith("@internal") and not self.add_internals:
            return False
        if router:
            explicit = self.routers.get(router)
            if explicit is not None:
                return explicit
        return self.entry_points.get(entrypoint, True)
