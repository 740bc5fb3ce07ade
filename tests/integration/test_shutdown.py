"""Graceful shutdown: /ping fails first, every live WebSocket gets 1001, the process exits in
time, a second signal is one log line and does not cut the drain short. Traefik cuts TCP here
(peers see 1006)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.frames import Close, Opcode

from tests.integration.harness import RawWSClient, Wsgate, start_ws_backend

SESSIONS = 500


def _static(grace: str = "10s", accept_grace: str = "0s") -> dict:
    life = {"graceTimeOut": grace, "requestAcceptGraceTimeout": accept_grace}
    return {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0", "transport": {"lifeCycle": life}},
            "traefik": {"address": "127.0.0.1:0"},
        },
        "ping": {},
    }


def _dynamic(backend_port: int) -> dict:
    return {"http": {
        "routers": {"ws": {"rule": "PathPrefix(`/`)", "service": "ws",
                           "entryPoints": ["web"]}},
        "services": {"ws": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{backend_port}"}]}}},
    }}


async def _hold_sessions(port: int, count: int, ready: asyncio.Event,
                         codes: list[int | None]) -> None:
    clients = []
    for i in range(count):
        ws = await connect(f"ws://127.0.0.1:{port}/session/{i}", open_timeout=20,
                           ping_interval=None, max_queue=None)
        clients.append(ws)
    # every session is live: one round trip each
    for ws in clients:
        await ws.send("hello")
    for ws in clients:
        assert await asyncio.wait_for(ws.recv(), 20) == "hello"
    ready.set()

    async def wait_close(ws: websockets.ClientConnection) -> None:
        try:
            await asyncio.wait_for(ws.wait_closed(), 30)
        finally:
            codes.append(ws.close_code)

    await asyncio.gather(*(wait_close(ws) for ws in clients))


def test_sigterm_closes_every_websocket_with_1001(tmp_path: Path) -> None:
    backend, backend_port = start_ws_backend()
    gate = Wsgate(tmp_path, _static(grace="10s"), _dynamic(backend_port))
    codes: list[int | None] = []
    try:
        async def scenario() -> float:
            ready = asyncio.Event()
            holder = asyncio.create_task(
                _hold_sessions(gate.ports["web"], SESSIONS, ready, codes))
            await asyncio.wait_for(ready.wait(), 60)
            started = time.monotonic()
            gate.proc.popen.send_signal(signal.SIGTERM)
            await asyncio.wait_for(holder, 40)
            return time.monotonic() - started

        asyncio.run(scenario())
        assert len(codes) == SESSIONS
        assert set(codes) == {1001}, {c: codes.count(c) for c in set(codes)}
        # the process exits well within graceTimeOut, because every session closed cleanly
        exit_code = gate.proc.popen.wait(15)
        assert exit_code in (0, -signal.SIGTERM)
        # the backend saw a close frame too (1001 from the proxy), not a TCP cut
        closed = [line for line in backend.lines if line.startswith("closed /session/")]
        backend.wait_for(r"closed /session/\S+ code=1001", timeout=10)
        assert all("code=1001" in line for line in closed), closed[:5]
    finally:
        gate.stop()
        backend.stop()


def test_ping_fails_during_request_accept_grace(tmp_path: Path) -> None:
    backend, backend_port = start_ws_backend()
    gate = Wsgate(tmp_path, _static(grace="5s", accept_grace="3s"), _dynamic(backend_port))
    try:
        url = f"http://127.0.0.1:{gate.ports['traefik']}/ping"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert resp.read() == b"OK"
        gate.proc.popen.send_signal(signal.SIGTERM)
        gate.proc.wait_for("still accepting", timeout=10)
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(url, timeout=10)
        assert failed.value.code == 503
        assert gate.proc.popen.wait(20) in (0, -signal.SIGTERM)
    finally:
        gate.stop()
        backend.stop()


def test_a_second_signal_during_the_drain_is_one_line(tmp_path: Path) -> None:
    """Twisted's handler would call reactor.stop() again and log a ReactorNotRunning
    traceback; the drain goes on and the client still gets its 1001."""
    backend, backend_port = start_ws_backend()
    gate = Wsgate(tmp_path, _static(grace="10s"), _dynamic(backend_port))
    try:
        client = RawWSClient(gate.ports["web"], "127.0.0.1", "/session/held")
        client.send_text("hello")
        assert client.next_frame().data == b"hello"
        os.kill(gate.proc.pid, signal.SIGTERM)
        # The client does not read yet: its session holds the drain open (it has the 1001 and
        # has not answered it) while the other signals come.
        gate.proc.wait_for(r"connections to drain", timeout=10)
        for again in (signal.SIGTERM, signal.SIGINT):
            os.kill(gate.proc.pid, again)
            gate.proc.wait_for(rf"Received {again.name} while shutting down: already "
                               r"draining: .*; a second signal does not shorten the drain",
                               timeout=10)
        close = client.next_frame()
        assert close.opcode is Opcode.CLOSE
        assert Close.parse(close.data).code == 1001
        assert client.next_frame() is None  # the close answered, wsgate ends the connection
        gate.proc.wait_for(r"shutdown complete", timeout=15)
        assert gate.proc.popen.wait(15) in (0, -signal.SIGTERM)
        log = gate.proc.output()
        assert "Traceback" not in log, log
        assert "ReactorNotRunning" not in log, log
        assert gate.proc.count(r"while shutting down") == 2, log
    finally:
        gate.stop()
        backend.stop()
