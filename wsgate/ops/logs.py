"""wsgate's own log (``log.level``, ``log.format``, ``log.filePath``) through twisted.logger.

``common`` writes one line per event like Traefik's console log
(``2024-05-01T10:00:00Z ERR message``, the level coloured unless ``noColor`` or not a
terminal); ``json`` writes one object per line (``level``, ``time``, ``message``, plus
``logger`` and ``error`` when known). Twisted's levels map from Traefik's: TRACE and DEBUG to
debug, INFO to info, WARN to warn, ERROR to error, FATAL and PANIC to critical.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
)

from wsgate.ops.accesslog import rfc3339

if TYPE_CHECKING:
    from wsgate.config.static import Log

#: Traefik's log levels and the Twisted level each one lets through.
LEVELS: dict[str, LogLevel] = {
    "TRACE": LogLevel.debug, "DEBUG": LogLevel.debug, "INFO": LogLevel.info,
    "WARN": LogLevel.warn, "ERROR": LogLevel.error, "FATAL": LogLevel.critical,
    "PANIC": LogLevel.critical,
}
_SHORT = {LogLevel.debug: "DBG", LogLevel.info: "INF", LogLevel.warn: "WRN",
          LogLevel.error: "ERR", LogLevel.critical: "FTL"}
_NAMES = {LogLevel.debug: "debug", LogLevel.info: "info", LogLevel.warn: "warn",
          LogLevel.error: "error", LogLevel.critical: "fatal"}
_COLOURS = {LogLevel.debug: "\x1b[33m", LogLevel.info: "\x1b[32m", LogLevel.warn: "\x1b[31m",
            LogLevel.error: "\x1b[1m\x1b[31m", LogLevel.critical: "\x1b[1m\x1b[31m"}
_RESET = "\x1b[0m"


def _message(event: dict[str, Any]) -> str:
    text = formatEvent(event)
    return text if text is not None else ""


def _failure_text(event: dict[str, Any]) -> str:
    failure = event.get("log_failure")
    if failure is None:
        return ""
    try:
        return str(failure.getTraceback())
    except Exception as exc:  # a broken Failure must not lose the message itself
        return f"(traceback unavailable: {exc!r})"


def format_common(event: dict[str, Any], *, colour: bool = False) -> str:
    level = event.get("log_level", LogLevel.info)
    short = _SHORT.get(level, "INF")
    if colour:
        short = _COLOURS.get(level, "") + short + _RESET
    line = f"{rfc3339(event.get('log_time', 0.0))} {short} {_message(event)}"
    failure = _failure_text(event)
    if failure:
        line += "\n" + failure.rstrip("\n")
    return line + "\n"


def format_json(event: dict[str, Any]) -> str:
    level = event.get("log_level", LogLevel.info)
    out: dict[str, Any] = {"level": _NAMES.get(level, "info"),
                           "time": rfc3339(event.get("log_time", 0.0)),
                           "message": _message(event)}
    namespace = event.get("log_namespace")
    if namespace:
        out["logger"] = namespace
    failure = _failure_text(event)
    if failure:
        out["error"] = failure
    return json.dumps(out, ensure_ascii=False) + "\n"


def open_log_file(path: str) -> IO[str]:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    return open(path, "a", encoding="utf-8")


def make_log_observer(config: Log, *, stream: IO[str] | None = None) -> ILogObserver:
    """An observer for twisted.logger that writes as ``log`` says, filtered by its level.

    ``stream`` overrides ``filePath`` (standard output when both are empty). Use it with
    ``globalLogBeginner.beginLoggingTo([observer])``, or return it from twistd's
    ``--logger`` factory.
    """
    out = stream if stream is not None else (
        open_log_file(config.file_path) if config.file_path else sys.stdout)
    if config.format == "json":
        formatter = format_json
    else:
        colour = not config.no_color and bool(getattr(out, "isatty", lambda: False)())

        def formatter(event: dict[str, Any]) -> str:
            return format_common(event, colour=colour)
    level = LEVELS.get(config.level.upper(), LogLevel.error)
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    return FilteringLogObserver(FileLogObserver(out, formatter), [predicate])


__all__ = ["LEVELS", "format_common", "format_json", "make_log_observer"]
