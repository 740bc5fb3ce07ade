"""twistd plugin entry: ``twistd -n wsgate --configFile traefik.yml``.

This directory must never contain an ``__init__.py``: it would shadow Twisted's own
``twisted.plugins`` package.
"""

from twisted.application.service import ServiceMaker

wsgate = ServiceMaker(
    "wsgate",
    "wsgate.tap",
    "A Traefik-compatible reverse proxy built first for WebSocket traffic.",
    "wsgate",
)
