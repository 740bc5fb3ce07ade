"""The registry of in-process services (``name@internal``), the library's extension point."""

from __future__ import annotations

from typing import Callable, Mapping

from twisted.internet.interfaces import IProtocolFactory

#: A service is a protocol factory, or a callable that builds one when wsgate starts.
ServiceSource = IProtocolFactory | Callable[[], IProtocolFactory]


class ServiceRegistry:
    """Maps ``name@internal`` to Twisted protocol factories.

    A registered factory receives the client's connection right after routing, with the
    request head replayed into it, so an autobahn ``WebSocketServerFactory`` performs the
    handshake itself and any Twisted protocol sees the raw stream. Routers name the service
    like any other (``service: chat@internal`` or, within the internal provider, ``chat``).
    """

    def __init__(self) -> None:
        self._factories: dict[str, IProtocolFactory] = {}

    def register(self, name: str, factory: ServiceSource) -> None:
        qualified = name if name.endswith("@internal") else f"{name}@internal"
        if "@" in qualified[: -len("@internal")]:
            raise ValueError(f"service name {name!r} must not name another provider")
        if not IProtocolFactory.providedBy(factory) and callable(factory):
            factory = factory()
        if not IProtocolFactory.providedBy(factory):
            raise TypeError(f"service {name!r} must be a Twisted protocol factory, "
                            f"got {type(factory).__name__}")
        self._factories[qualified] = factory

    def get(self, qualified: str) -> IProtocolFactory | None:
        return self._factories.get(qualified)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._factories))

    def as_mapping(self) -> Mapping[str, IProtocolFactory]:
        return dict(self._factories)


def default_registry() -> ServiceRegistry:
    """A registry holding the built-in services."""
    from wsgate.internal.echo import echo_factory

    registry = ServiceRegistry()
    registry.register("echo", echo_factory())
    return registry
