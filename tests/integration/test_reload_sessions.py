"""Live WebSockets across reloads: ``wsgate.closeOnServerRemoval`` (a loadBalancer extension).

With it, a reload that removes a server, or the whole service, closes that server's sessions
with 1001 on both sides; without it (Traefik's behaviour) they keep flowing. The file
provider is watched; each reload is awaited on wsgate's "configuration applied" log line.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import Proc, Wsgate, start_ws_backends, ws_connect

APPLIED = r"configuration applied"


@pytest.fixture
def backends() -> Iterator[tuple[Proc, list[int]]]:
    proc, ports = start_ws_backends(2)
    try:
        yield proc, ports
    finally:
        proc.stop()


def _lb(ports: list[int], close: bool) -> dict[str, Any]:
    lb: dict[str, Any] = {"servers": [{"url": f"http://127.0.0.1:{p}"} for p in ports]}
    if close:
        lb["wsgate"] = {"closeOnServerRemoval": True}
    return {"loadBalancer": lb}


def _config(services: dict[str, tuple[list[int], bool]]) -> dict[str, Any]:
    return {"http": {
        "routers": {name: {"rule": f"Host(`{name}.test`)", "service": name}
                    for name in services},
        "services": {name: _lb(ports, close) for name, (ports, close) in services.items()}}}


class Gate:
    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.dyn = tmp / "dynamic.yml"
        self.dyn.write_text(yaml.safe_dump(config))
        static = {"entryPoints": {"web": {"address": "127.0.0.1:0"}},
                  "log": {"level": "INFO"},
                  "providers": {"file": {"filename": str(self.dyn), "watch": True}}}
        self.wsgate = Wsgate(tmp, static)
        self.port = self.wsgate.ports["web"]
        #: Every client session, closed (if still open) when the test ends.
        self.clients = contextlib.ExitStack()

    def stop(self) -> None:
        self.clients.close()
        self.wsgate.stop()

    def reload(self, config: dict[str, Any]) -> None:
        applied = self.wsgate.proc.count(APPLIED)
        self.dyn.write_text(yaml.safe_dump(config))
        self.wsgate.proc.wait_for_count(APPLIED, applied + 1, timeout=10)

    def sessions(self, host: str, count: int) -> dict[int, list[Any]]:
        """``count`` sessions to /id through ``host``, by the backend port that took each."""
        by_port: dict[int, list[Any]] = {}
        for _ in range(count):
            ws = self.clients.enter_context(ws_connect(self.port, host, "/id"))
            port = int(str(ws.recv(timeout=10)).split()[1])
            by_port.setdefault(port, []).append(ws)
        return by_port


def _echoes(ws: Any, text: str) -> bool:
    ws.send(text)
    return str(ws.recv(timeout=10)) == text


def _closed_with(ws: Any, code: int) -> None:
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None, "closed without a close frame"
    assert info.value.rcvd.code == code
    assert info.value.rcvd.reason == "server removed"


def _backend_closed(backend: Proc, port: int, code: int, count: int) -> None:
    backend.wait_for_count(rf"closed /id code={code} port={port}", count, timeout=10)


def test_server_removed(backends: tuple[Proc, list[int]], tmp_path: Path) -> None:
    backend, (one, two) = backends
    gate = Gate(tmp_path, _config({"closing": ([one, two], True), "keeping": ([one, two],
                                                                               False)}))
    try:
        closing = gate.sessions("closing.test", 4)
        keeping = gate.sessions("keeping.test", 4)
        assert set(closing) == set(keeping) == {one, two}  # round robin: both servers in use
        gate.reload(_config({"closing": ([one], True), "keeping": ([one], False)}))
        for ws in closing[two]:
            _closed_with(ws, 1001)
        _backend_closed(backend, two, 1001, len(closing[two]))
        gate.wsgate.proc.wait_for(rf"service closing@file: server http://127\.0\.0\.1:{two} "
                                  rf"removed; closing its {len(closing[two])} WebSocket")
        # the kept server's sessions, and every session of the service without the flag,
        # keep flowing (Traefik's behaviour)
        for ws in closing[one] + keeping[one] + keeping[two]:
            assert _echoes(ws, "still here")
        # new sessions go to the remaining server only
        assert set(gate.sessions("closing.test", 2)) == {one}
        assert gate.wsgate.proc.count(rf"closed /id code=1001 port={one}") == 0
        assert not re.search(r"keeping@file: server", gate.wsgate.proc.output())
    finally:
        gate.stop()


def test_service_removed(backends: tuple[Proc, list[int]], tmp_path: Path) -> None:
    backend, (one, two) = backends
    gate = Gate(tmp_path, _config({"closing": ([one, two], True), "keeping": ([one, two],
                                                                               False)}))
    try:
        closing = gate.sessions("closing.test", 2)
        keeping = gate.sessions("keeping.test", 2)
        # both services (and their routers) go; only the flagged one's sessions are closed
        gate.reload(_config({}))
        for sessions in closing.values():
            for ws in sessions:
                _closed_with(ws, 1001)
        for port, sessions in closing.items():
            _backend_closed(backend, port, 1001, len(sessions))
        for sessions in keeping.values():
            for ws in sessions:
                assert _echoes(ws, "orphaned but alive")
        assert gate.wsgate.proc.count(r"server .* removed; closing") == len(closing)
        # a reload that keeps the servers closes nothing
        gate.reload(_config({"keeping": ([one, two], True)}))
        fresh = gate.sessions("keeping.test", 2)
        gate.reload(_config({"keeping": ([two, one], True), "other": ([one], False)}))
        time.sleep(0.2)  # nothing to await: a close would arrive right after the reload
        for ws in [w for sessions in fresh.values() for w in sessions]:
            assert _echoes(ws, "unchanged servers")
    finally:
        gate.stop()
