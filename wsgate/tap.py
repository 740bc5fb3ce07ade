"""twistd options and service construction for ``twistd wsgate``.

Traefik-style flags (``--entryPoints.web.address=:8000``) are not twistd options: they are
taken out of the argument list before twistd's parser sees it and handed, with
``--configFile``, to the static configuration loader, which applies Traefik's source rules.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from wsgate import __version__
from wsgate.config.errors import ConfigError


class Options(usage.Options):
    synopsis = "[--configFile=FILE] [--strict] [--TRAEFIK.STYLE.KEY=VALUE ...]"
    longdesc = (
        "Run wsgate. The static configuration comes from one source, as in Traefik: a file "
        "(--configFile, else traefik.yml/.yaml/.toml in /etc/traefik, $XDG_CONFIG_HOME, "
        "$HOME/.config or the working directory), else Traefik-style flags such as "
        "--entryPoints.web.address=:8000 or --providers.file.filename=dynamic.yml, else "
        "TRAEFIK_* or WSGATE_* environment variables."
    )
    optParameters = [
        ["configFile", None, None, "The static configuration file (YAML or TOML)."],
    ]
    optFlags = [
        ["strict", None, "Treat unknown configuration keys as errors instead of warnings."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.config_args: list[str] = []
        self.loaded: Any = None

    def opt_version(self) -> None:
        """Print wsgate's version and exit."""
        print(f"wsgate {__version__}")
        sys.exit(0)

    def parseOptions(self, options: list[str] | None = None) -> None:
        from wsgate.config.static_sources import split_cli_args

        if options is None:
            options = sys.argv[1:]
        self.config_args, own = split_cli_args(options)
        super().parseOptions(own)

    def postOptions(self) -> None:
        from wsgate.config.static_sources import load_static

        try:
            self.loaded = load_static(list(self.config_args), dict(os.environ), os.getcwd(),
                                      strict=bool(self["strict"]))
        except ConfigError as exc:
            raise SystemExit(f"wsgate: invalid static configuration:\n{exc}") from None


def makeService(options: Options) -> IService:
    """Build the service tree: entryPoints, providers and operations endpoints."""
    from twisted.logger import Logger

    from wsgate.reactor import install_if_unset
    from wsgate.service import build_service

    # Before anything imports the global reactor (see wsgate/reactor.py for why).
    installed = install_if_unset()
    if installed is not None:
        Logger().info("reactor: {name} (Twisted's epoll, I/O events dispatched directly)",
                      name=installed)
    return build_service(options.loaded)
