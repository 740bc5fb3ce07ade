"""EntryPoint listening ports in the service tree; a port that cannot be bound stops startup."""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger

from wsgate.proxy.sockets import listen_tcp

log = Logger()


class StartupError(SystemExit):
    """Startup cannot go on; the message is printed and the process exits non-zero."""


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
    except OSError:
        return False
    return True


class ListenerService(Service):
    """Listens on one entryPoint address while running.

    Binding happens in privilegedStartService so that ports below 1024 can be bound before
    twistd drops privileges, and a bind failure raises instead of being only logged.
    """

    def __init__(self, reactor: Any, entrypoint: str, host: str, port: int,
                 factory: IProtocolFactory, *, reuse_port: bool = False,
                 backlog: int = 1024) -> None:
        self.reactor = reactor
        self.entrypoint = entrypoint
        self.host = host
        self.port = port
        self.factory = factory
        self.reuse_port = reuse_port
        self.backlog = backlog
        self.listening: Any = None
        self.setName(f"entrypoint:{entrypoint}")

    def _interface(self) -> str:
        if self.host:
            return self.host
        # ":8000" means every address; a dual-stack socket when the host has IPv6.
        return "::" if _ipv6_available() else "0.0.0.0"

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        self._listen()

    def _listen(self) -> None:
        if self.listening is not None:
            return
        interface = self._interface()
        try:
            self.listening = listen_tcp(self.reactor, self.port, self.factory,
                                        backlog=self.backlog, interface=interface)
        except error.CannotListenError as exc:
            shown = f"[{interface}]" if ":" in interface else interface
            raise StartupError(
                f"wsgate: cannot listen on entryPoint {self.entrypoint!r} "
                f"({shown}:{self.port}): {exc.socketError}") from None
        log.info("entryPoint {name} listening on {addr}", name=self.entrypoint,
                 addr=self.listening.getHost())

    def stopService(self) -> Any:
        super().stopService()
        if self.listening is not None:
            port, self.listening = self.listening, None
            return port.stopListening()
        return None

    @property
    def bound_port(self) -> int:
        """The port actually bound (useful when the configuration asked for port 0)."""
        assert self.listening is not None
        return int(self.listening.getHost().port)
