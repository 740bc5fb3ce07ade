"""The reactor wsgate installs under twistd: Twisted's epoll reactor without the legacy log
context around every I/O event.

Twisted's poll loop wraps each readiness event in ``twisted.python.log.callWithLogger``, which
asks the selectable for its ``logPrefix`` and pushes a context dictionary so that old-style
``log.msg`` calls made during the event carry a ``system`` label. wsgate logs through
``twisted.logger`` with its own namespaces and never reads that label, and under WebSocket load
the wrapper was about a sixth of the proxy's CPU time (docs/performance.md). This reactor
dispatches events directly; errors are still caught per event and logged with the selectable
that raised them, so one broken connection cannot skip the other events of its poll round.

It is installed only when nothing has installed a reactor yet and epoll exists (Linux):
``twistd -r <name> wsgate`` or a library user's own reactor choice always wins.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.logger import Logger

log = Logger()

#: The name the reactor reports in the startup log line.
NAME = "wsgate-epoll"


def _reactor_class() -> type[Any]:
    from twisted.internet.epollreactor import EPollReactor

    class DirectEPollReactor(EPollReactor):
        """EPollReactor whose poll round calls each selectable's handler directly."""

        def doPoll(self, timeout: float | None) -> None:
            try:
                events = self._poller.poll(-1 if timeout is None else timeout,
                                           len(self._selectables))
            except InterruptedError:
                return
            selectables = self._selectables
            handle = self._doReadOrWrite
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue  # removed by an earlier event of this round
                try:
                    handle(selectable, fd, event)
                except Exception:
                    log.failure("unhandled error while handling an I/O event of {selectable!r}",
                                selectable=selectable)

        doIteration = doPoll

    return DirectEPollReactor


def install_if_unset() -> str | None:
    """Install the direct epoll reactor unless a reactor is installed already.

    Returns the installed reactor's name, or None when another reactor stays in place.
    """
    if "twisted.internet.reactor" in sys.modules:
        return None
    try:
        import select

        select.epoll  # noqa: B018 - only Linux has it
    except AttributeError:
        return None
    from twisted.internet.main import installReactor

    installReactor(_reactor_class()())
    return NAME
