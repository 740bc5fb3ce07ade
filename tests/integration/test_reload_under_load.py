"""Reloading the file provider's configuration while 200 WebSockets exchange messages.

The dynamic file changes 20 times, 5 of them into something that does not decode (YAML syntax
errors, values of the wrong type). Asserted: no WebSocket is dropped and no message is lost or
reordered; every valid change is in effect (its new route answers, its changed route goes to
the new backend) within 2 s of the write; while the file is invalid the last good
configuration keeps routing, and the errors are logged with the file, the line and (for a
value) the key path.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import random
import re
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.harness import Proc, Wsgate, lb, start_http_backend, start_ws_backend

CLIENTS = 200
CHANGES = 20
INVALID = {2, 6, 9, 13, 17}  # indexes of the changes that do not decode
LATENCY_LIMIT = 2.0
BURST = 3  # messages in flight per client at once (in order, checked one by one)
LOAD_DEADLINE = 240.0  # the load stops by itself after this long, whatever happens


@dataclass
class Peers:
    ws: Proc
    ws_port: int
    a: Proc
    a_port: int
    b: Proc
    b_port: int


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    ws, ws_port = start_ws_backend()
    a, a_port = start_http_backend("a")
    b, b_port = start_http_backend("b")
    try:
        yield Peers(ws, ws_port, a, a_port, b, b_port)
    finally:
        for proc in (ws, a, b):
            proc.stop()


def _get(port: int, host: str, timeout: float = 2.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Backend") or ""
    finally:
        conn.close()


def valid_config(p: Peers, version: int) -> dict[str, Any]:
    """Version ``version``: routers v1..vN (new each time) and base.test flipping a/b."""
    routers: dict[str, Any] = {
        "ws": {"rule": "Host(`ws.test`)", "service": "echo"},
        "base": {"rule": "Host(`base.test`)", "service": "web-a" if version % 2 else "web-b"},
    }
    for v in range(1, version + 1):
        routers[f"v{v}"] = {"rule": f"Host(`v{v}.test`)",
                            "service": "web-a" if v % 2 else "web-b"}
    return {"http": {"routers": routers,
                     "services": {"echo": lb(p.ws_port), "web-a": lb(p.a_port),
                                  "web-b": lb(p.b_port)}}}


def expected(version: int) -> dict[str, str]:
    """Host -> backend name that version ``version`` routes to (the hosts it changes)."""
    return {"base.test": "a" if version % 2 else "b",
            f"v{version}.test": "a" if version % 2 else "b"}


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


def invalid_config(p: Peers, version: int, kind: int) -> tuple[str, str]:
    """A text that does not decode, and a regular expression its logged error must match
    (``{path}`` stands for the file): file, line and, for a value, the key path."""
    good = yaml.safe_dump(valid_config(p, version), sort_keys=False)
    if kind == 0:  # YAML syntax error: an unclosed flow sequence at the end
        text = good + "extra: [1, 2\n"
        return text, r"{path}:\d+:\d+: YAML syntax error"
    if kind == 1:  # a value of the wrong type
        text = good.replace("      service: echo\n", "      service: echo\n"
                            "      priority: high\n", 1)
        line = _line_of(text, "priority: high")
        return text, (rf"{{path}}:{line}:\d+: http\.routers\.ws\.priority: expected an "
                      r"integer")
    if kind == 2:  # YAML syntax error: a mapping key inside a scalar line
        text = good.replace("rule: Host(`ws.test`)", "rule: Host(`ws.test`): oops: x", 1)
        line = _line_of(text, "oops")
        return text, rf"{{path}}:{line}:\d+: YAML syntax error"
    if kind == 3:  # a boolean that is not one
        text = good.replace("  services:\n    echo:\n      loadBalancer:\n",
                            "  services:\n    echo:\n      loadBalancer:\n"
                            "        passHostHeader: maybe\n", 1)
        line = _line_of(text, "passHostHeader: maybe")
        return text, (rf"{{path}}:{line}:\d+: http\.services\.echo\.loadBalancer\."
                      r"passHostHeader: expected true or false")
    # a server weight that is not a number
    text = good.replace(f"        - url: http://127.0.0.1:{p.a_port}\n",
                        f"        - url: http://127.0.0.1:{p.a_port}\n          weight: heavy\n",
                        1)
    line = _line_of(text, "weight: heavy")
    return text, (rf"{{path}}:{line}:\d+: http\.services\.web-a\.loadBalancer\.servers"
                  r"\[0\]\.weight: expected an integer")


def write(path: Path, text: str, atomic: bool) -> None:
    """In place (truncate and write), or as deploy tools do it (a new file renamed over)."""
    if atomic:
        tmp = path.with_name(path.name + ".new")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        with path.open("w") as f:
            f.write(text)


@dataclass
class Load:
    """200 clients, each sending numbered messages in bursts and checking every echo."""

    port: int
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    connected: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)
    closed_cleanly: int = 0
    per_client: list[int] = field(default_factory=lambda: [0] * CLIENTS)

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        gate = asyncio.Semaphore(25)  # handshakes in flight at once
        await asyncio.wait_for(asyncio.gather(*(self._client(i, gate)
                                                for i in range(CLIENTS))), LOAD_DEADLINE)

    async def _client(self, i: int, gate: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect

        rng = random.Random(i)
        seq = 0
        try:
            async with gate:
                ws = await connect(f"ws://ws.test:{self.port}/?c={i}", host="127.0.0.1",
                                   port=self.port, compression=None, open_timeout=30,
                                   ping_interval=None, max_size=None)
            self.connected += 1
            if self.connected == CLIENTS:
                self.ready.set()
            async with ws:
                while not self.stop.is_set():
                    for k in range(BURST):
                        await ws.send(f"{i}:{seq + k}:" + "m" * rng.randrange(0, 200))
                    for k in range(BURST):
                        echo = str(await asyncio.wait_for(ws.recv(), 20))
                        got = int(echo.split(":", 2)[1])
                        if got != seq + k:
                            self.errors.append(f"client {i}: expected {seq + k}, got {got}")
                            return
                    seq += BURST
                    self.messages += BURST
                    self.per_client[i] = seq
                    await asyncio.sleep(rng.uniform(0.02, 0.1))
            if ws.close_code == 1000:
                self.closed_cleanly += 1
            else:
                self.errors.append(f"client {i}: closed with {ws.close_code}")
        except Exception as exc:  # every failure of a client is a finding: record it
            self.errors.append(f"client {i} after {seq} messages: {exc!r}")


def _wait_messages(load: Load, more: int, timeout: float = 20.0) -> None:
    """Traffic keeps flowing: wait until ``more`` further echoes were checked."""
    target = load.messages + more
    deadline = time.monotonic() + timeout
    while load.messages < target:
        assert not load.errors, load.errors[:5]
        assert time.monotonic() < deadline, f"traffic stalled at {load.messages} messages"
        time.sleep(0.01)  # a counter in another thread: polled, bounded


def _probe(port: int, want: dict[str, str], start: float, gate: Wsgate) -> float:
    """Seconds from ``start`` (the write) until every host answers from its backend; fails
    after the limit."""
    pending = dict(want)
    trace: list[str] = []  # each attempt: when it started, how long it took, what it got
    while pending:
        for host, backend in list(pending.items()):
            sent = time.monotonic()
            try:
                status, who = _get(port, host, timeout=LATENCY_LIMIT)
            except OSError as exc:
                trace.append(f"{sent - start:.3f}+{time.monotonic() - sent:.3f} {host} {exc!r}")
                continue
            trace.append(f"{sent - start:.3f}+{time.monotonic() - sent:.3f} {host} {status} "
                         f"{who}")
            if status == 200 and who == backend:
                del pending[host]
        elapsed = time.monotonic() - start
        if pending and elapsed > LATENCY_LIMIT:
            tail = "\n".join(gate.proc.lines[-30:])
            raise AssertionError(f"not in effect {elapsed:.2f}s after the write: {pending}; "
                                 f"last attempts: {trace[-8:]}; wsgate log tail:\n{tail}")
        if pending:
            time.sleep(0.01)  # the reload has no outside signal but routing: polled, bounded
    return time.monotonic() - start


def _wait_log(gate: Wsgate, pattern: str, seen_before: int, timeout: float = 10.0) -> str:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        lines = gate.proc.lines[seen_before:]
        for line in lines:
            if rx.search(line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r}; log tail:\n"
                                 + "\n".join(lines[-30:]))
        time.sleep(0.02)


def test_reload_under_load(peers: Peers, tmp_path: Path) -> None:
    dyn = tmp_path / "dynamic.yml"
    dyn.write_text(yaml.safe_dump(valid_config(peers, 0), sort_keys=False))
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"}},
              "log": {"level": "INFO"},
              "providers": {"file": {"filename": str(dyn), "watch": True}}}
    gate = Wsgate(tmp_path, static)
    port = gate.ports["web"]
    load = Load(port)
    thread = threading.Thread(target=load.run, name="ws-load", daemon=True)
    latencies: list[float] = []
    try:
        assert _get(port, "base.test") == (200, "b")
        thread.start()
        assert load.ready.wait(60), f"{load.connected} clients connected; {load.errors[:5]}"
        _wait_messages(load, CLIENTS)
        version = 0
        invalid_kind = 0
        for change in range(CHANGES):
            atomic = change % 2 == 1
            applied_before = gate.proc.count(r"configuration applied")
            if change in INVALID:
                text, pattern = invalid_config(peers, version + 1, invalid_kind)
                invalid_kind += 1
                seen = len(gate.proc.lines)
                write(dyn, text, atomic)
                _wait_log(gate, r"file provider: invalid configuration in .*; keeping the "
                          r"last good configuration", seen)
                _wait_log(gate, pattern.replace("{path}", re.escape(str(dyn))), seen)
                # the last good configuration keeps routing, old routes and new
                for host, backend in expected(version).items():
                    if version:
                        assert _get(port, host) == (200, backend)
                assert _get(port, f"v{version + 1}.test")[0] == 404
                assert gate.proc.count(r"configuration applied") == applied_before
            else:
                version += 1
                text = yaml.safe_dump(valid_config(peers, version), sort_keys=False)
                start = time.monotonic()
                write(dyn, text, atomic)
                latencies.append(_probe(port, expected(version), start, gate))
            _wait_messages(load, CLIENTS)
        _wait_messages(load, CLIENTS)
        load.stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the clients did not stop"
        assert not load.errors, load.errors[:10]
        assert load.closed_cleanly == CLIENTS
        assert min(load.per_client) > 0
        print(f"\nreload latency over {len(latencies)} valid changes: "
              f"min {min(latencies):.3f}s median {statistics.median(latencies):.3f}s "
              f"max {max(latencies):.3f}s; {load.messages} messages echoed in order by "
              f"{CLIENTS} clients; each: {' '.join(f'{x:.2f}' for x in latencies)}")
        assert max(latencies) < LATENCY_LIMIT
        assert len(latencies) == CHANGES - len(INVALID)
        # inotify is what makes this fast; polling remains as the fallback
        assert gate.proc.count(r"file provider: watching .* with inotify") == 1
    finally:
        load.stop.set()
        thread.join(30) if thread.is_alive() else None
        gate.stop()
