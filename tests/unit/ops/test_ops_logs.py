"""wsgate's own log: level filtering and the common and json formats."""

from __future__ import annotations

import io
import json
from pathlib import Path

from twisted.logger import Logger, LogPublisher

from wsgate.config.static import Log
from wsgate.ops.logs import LEVELS, make_log_observer


def emit(config: Log, stream: io.StringIO | None = None) -> list[str]:
    out = stream if stream is not None else io.StringIO()
    publisher = LogPublisher(make_log_observer(config, stream=out))
    log = Logger(namespace="wsgate.test", observer=publisher)
    log.debug("debug {n}", n=1)
    log.info("info {n}", n=2)
    log.warn("warn {n}", n=3)
    log.error("error {n}", n=4)
    try:
        raise ValueError("bad thing")
    except ValueError:
        log.failure("failed {what}", what="here")
    return out.getvalue().splitlines()


def test_default_level_is_error() -> None:
    lines = emit(Log())
    messages = [line for line in lines if " ERR " in line or " FTL " in line]
    assert messages[0].endswith("ERR error 4")
    assert not any("info 2" in line or "warn 3" in line for line in lines)
    assert any("ValueError: bad thing" in line for line in lines)


def test_levels() -> None:
    assert "DBG debug 1" in "\n".join(emit(Log(level="DEBUG")))
    lines = "\n".join(emit(Log(level="WARN")))
    assert "WRN warn 3" in lines and "info 2" not in lines
    assert "INF info 2" in "\n".join(emit(Log(level="INFO")))
    assert LEVELS["TRACE"] == LEVELS["DEBUG"] and LEVELS["PANIC"] == LEVELS["FATAL"]


def test_json_format() -> None:
    lines = emit(Log(level="INFO", format="json"))
    events = [json.loads(line) for line in lines]
    assert [e["level"] for e in events] == ["info", "warn", "error", "fatal"]
    assert events[0]["message"] == "info 2" and events[0]["logger"] == "wsgate.test"
    assert "ValueError: bad thing" in events[-1]["error"]
    assert events[0]["time"][:2] == "20"


def test_no_colour_when_not_a_terminal() -> None:
    assert not any("\x1b[" in line for line in emit(Log(level="INFO")))


def test_file_path(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "wsgate.log"
    observer = make_log_observer(Log(file_path=str(path)))
    publisher = LogPublisher(observer)
    Logger(namespace="x", observer=publisher).error("to the file")
    assert path.read_text().rstrip().endswith("ERR to the file")
