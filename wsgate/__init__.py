"""wsgate: a Traefik-compatible reverse proxy on Twisted, built first for WebSocket traffic."""

__version__ = "0.1.0"
