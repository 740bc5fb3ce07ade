"""Summarise py-spy raw (collapsed-stack) output: the functions where samples land.

Run: python bench/profile_summary.py PROFILE.txt [--top 25] [--rate 200 --seconds 6]

``bench/run.py --profile DIR`` writes one such file per load (py-spy ``--format raw``); the
same files load into speedscope or flamegraph.pl for a picture. "self" is where the sample's
innermost Python frame was; "total" counts a function once per sample it is anywhere in.
Samples whose innermost frame is the reactor's poll call (``EPollReactor.doPoll``: the
process waiting in epoll_wait, which py-spy's --nonblocking mode does not always recognise as
idle) are counted apart as "waiting"; percentages are of the remaining, busy samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short_file(path: str) -> str:
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[-1] if marker == "/lib/python3" \
                else path.split(marker, 1)[1]
    for marker in ("/wsgate/", "/bench/"):
        if marker in path:
            return marker.strip("/") + "/" + path.split(marker, 1)[1]
    return path


def key_of(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m.group('func')} ({short_file(m.group('file'))})"


def line_key_of(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    line = f":{m.group('line')}" if m.group("line") else ""
    return f"{m.group('func')} ({short_file(m.group('file'))}{line})"


WAITING = ("EPollReactor.doPoll", "PollReactor.doPoll", "SelectReactor.doSelect")


def summarise(path: Path) -> tuple[int, int, Counter[str], Counter[str], Counter[str]]:
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    lines_c: Counter[str] = Counter()
    n = 0
    waiting = 0
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, count = raw.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        if key_of(frames[-1]).split(" (")[0] in WAITING:
            waiting += c
            continue
        n += c
        self_c[key_of(frames[-1])] += c
        lines_c[line_key_of(frames[-1])] += c
        for k in {key_of(f) for f in frames}:
            total_c[k] += c
    return n, waiting, self_c, total_c, lines_c


def render(path: Path, top: int, rate: float | None, seconds: float | None,
           markdown: bool = False) -> str:
    n, waiting, self_c, total_c, lines_c = summarise(path)
    out = [f"{path.name}: {n} busy samples, {waiting} waiting in epoll"]
    if rate and seconds:
        out[0] += f" (busy {100 * n / (rate * seconds):.0f}% of {seconds:g} s at {rate:g} Hz)"
    if n == 0:
        return out[0]

    def table(title: str, counter: Counter[str]) -> None:
        out.append("")
        if markdown:
            out.extend([f"| {title} | % |", "|---|---|"])
            out.extend(f"| `{k}` | {100 * v / n:.1f} |" for k, v in counter.most_common(top))
        else:
            out.append(title)
            out.extend(f"  {100 * v / n:5.1f}%  {k}" for k, v in counter.most_common(top))

    table("self (innermost frame)", self_c)
    table("total (anywhere on the stack)", total_c)
    table("self, by line", lines_c)
    return "\n".join(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--rate", type=float)
    p.add_argument("--seconds", type=float)
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    for f in a.files:
        print(render(f, a.top, a.rate, a.seconds, a.markdown))
        print()
