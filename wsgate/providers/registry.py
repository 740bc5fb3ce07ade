"""The providers that read an API (Docker, Swarm, Kubernetes), built from the static
configuration for the service tree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.schema import Decoded

__all__ = ["Provider", "api_providers"]

Changed = Callable[[str, Decoded[DynamicConfig]], None]


class Provider(Protocol):
    """What the service tree does with a provider: load now (False when the configuration
    comes later, asynchronously), start following changes, stop."""

    @property
    def name(self) -> str: ...

    def load(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def api_providers(providers: Any, reactor: Any, changed: Changed, *,
                  strict: bool = False) -> list[Provider]:
    """The Docker, Swarm and Kubernetes CRD providers that ``providers`` (the static
    ``providers`` section) enables; each calls ``changed(name, decoded)``."""
    out: list[Provider] = []
    if providers.docker is not None:
        from wsgate.providers.docker import DockerProvider

        out.append(DockerProvider(reactor, providers.docker, strict=strict,
                                  on_change=lambda d: changed("docker", d)))
    if providers.swarm is not None:
        from wsgate.providers.docker import SwarmProvider

        out.append(SwarmProvider(reactor, providers.swarm, strict=strict,
                                 on_change=lambda d: changed("swarm", d)))
    if providers.kubernetes_crd is not None:
        from wsgate.providers.kubernetes import KubernetesCRDProvider

        out.append(KubernetesCRDProvider(reactor, providers.kubernetes_crd, strict=strict,
                                         on_change=lambda d: changed("kubernetescrd", d)))
    return out
