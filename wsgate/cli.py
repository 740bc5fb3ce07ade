"""The ``wsgate`` console script: the same options as ``twistd -n wsgate``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run wsgate in the foreground under twistd, passing every option through."""
    from twisted.scripts.twistd import run

    args = list(sys.argv[1:] if argv is None else argv)
    twistd_args = ["--nodaemon", "--pidfile="]
    # twistd options that make sense for a foreground process may come before our own.
    while args and args[0] in ("--reactor", "-r", "--logfile", "-l", "--logger"):
        twistd_args.extend(args[:2])
        args = args[2:]
    sys.argv = ["wsgate", *twistd_args, "wsgate", *args]
    run()


if __name__ == "__main__":
    main()
