"""The file provider's watching: polling with a debounce, inotify events, last good config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from wsgate.providers.file import NOTIFY_COALESCE, FileProvider

GOOD = "http:\n  routers:\n    r:\n      rule: Host(`{host}`)\n      service: s\n"
BAD = "http:\n  routers:\n    r:\n      priority: high\n"


def provider(tmp_path: Path, text: str) -> tuple[FileProvider, Clock, list[Any], Path]:
    path = tmp_path / "dynamic.yml"
    path.write_text(text)
    clock = Clock()
    seen: list[Any] = []
    fp = FileProvider(clock, str(path), "", watch=True, on_change=seen.append)
    assert fp.load()
    fp.start()  # a Clock has no file descriptors: polling only
    return fp, clock, seen, path


def run(clock: Clock, seconds: float) -> None:
    """Advance in small steps: a Clock runs what a call schedules at the end of one step."""
    clock.pump([0.01] * round(seconds / 0.01))


def routers(decoded: Any) -> list[str]:
    return [r.rule for r in decoded.value.http.routers.values()]


def test_polling_sees_a_change_after_the_debounce(tmp_path: Path) -> None:
    fp, clock, seen, path = provider(tmp_path, GOOD.format(host="a.test"))
    assert fp._notifier is None
    path.write_text(GOOD.format(host="b.test"))
    clock.advance(1.0)  # the poll sees the change
    assert len(seen) == 1
    clock.advance(0.29)
    assert len(seen) == 1
    clock.advance(0.01)  # the debounce ends: reloaded
    assert routers(seen[-1]) == ["Host(`b.test`)"]
    fp.stop()


def test_a_burst_of_writes_is_one_reload(tmp_path: Path) -> None:
    fp, clock, seen, path = provider(tmp_path, GOOD.format(host="a.test"))
    for host in ("b.test", "c.test", "d.test"):
        path.write_text(GOOD.format(host=host))
        fp._notified(None, None, 0)  # what an inotify event does
        run(clock, 0.05)
    assert len(seen) == 1
    run(clock, 0.3)
    assert len(seen) == 2
    assert routers(seen[-1]) == ["Host(`d.test`)"]
    fp.stop()
    assert not clock.getDelayedCalls()


def test_an_invalid_file_keeps_the_last_good_configuration(tmp_path: Path) -> None:
    fp, clock, seen, path = provider(tmp_path, GOOD.format(host="a.test"))
    good = fp.current
    path.write_text(BAD)
    fp._notified(None, None, 0)
    run(clock, NOTIFY_COALESCE + 0.31)
    assert len(seen) == 1 and fp.current is good
    run(clock, 5.0)  # unchanged since: not read again
    assert len(seen) == 1
    path.write_text(GOOD.format(host="c.test"))
    run(clock, 1.31)
    assert routers(seen[-1]) == ["Host(`c.test`)"]
    fp.stop()
