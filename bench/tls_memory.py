"""Memory per idle connection in wsgate: plain, TLS (handshake done, no request yet) and wss
sessions (TLS in front, a plain WebSocket to the backend), measured as the growth of wsgate's
RSS divided by the number of connections.

    /work/venv/bin/python bench/tls_memory.py [--count 2000]

Everything runs on 127.0.0.1; every connection is closed at the end. The certificate is made
for the run (EC P-256, like most certificates served today).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Wsgate, start_ws_backend
from tests.tlspki import PKI

HOST = "mem.test"


async def open_plain(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    return writers


async def open_tls(port: int, count: int, ctx: ssl.SSLContext) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                  server_hostname=HOST)
        writers.append(writer)
    return writers


async def open_wss(port: int, count: int, ctx: ssl.SSLContext) -> list[asyncio.StreamWriter]:
    request = (f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                       server_hostname=HOST)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head[:40]
        writers.append(writer)
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


def settle(gate: Wsgate) -> int:
    time.sleep(1.0)
    return gate.proc.rss_kib()


async def measure(count: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wsgate-tls-memory-"))
    pki = PKI(tmp / "pki")
    cert = pki.issue("mem", [HOST])
    backend, backend_port = start_ws_backend()
    dynamic = {
        "http": {
            "routers": {
                "tls": {"rule": f"Host(`{HOST}`)", "service": "s", "tls": {}},
                "plain": {"rule": f"Host(`{HOST}`)", "service": "s"},
            },
            "services": {"s": {"loadBalancer": {"servers": [
                {"url": f"http://127.0.0.1:{backend_port}"}]}}},
        },
        "tls": {"certificates": [{"certFile": str(cert.cert_path),
                                  "keyFile": str(cert.key_path)}]},
    }
    gate = Wsgate(tmp, {"entryPoints": {"ep": {"address": "127.0.0.1:0"}}}, dynamic)
    ctx = pki.client_context()
    port = gate.ports["ep"]
    try:
        # Warm up: the first connections allocate pools and build the contexts.
        await close_all(await open_tls(port, 50, ctx))
        await close_all(await open_plain(port, 50))
        # Each kind is opened on top of the previous ones (all stay open): freed memory
        # that the allocator keeps would otherwise hide the next kind's cost.
        results = {}
        opened: list[asyncio.StreamWriter] = []
        for name, opener in (("plain idle", lambda: open_plain(port, count)),
                             ("TLS idle", lambda: open_tls(port, count, ctx)),
                             ("wss session", lambda: open_wss(port, count, ctx))):
            before = settle(gate)
            opened += await opener()
            after = settle(gate)
            results[name] = (after - before) / count
        await close_all(opened)
        print(f"wsgate RSS growth per connection, {count} connections of each kind:")
        for name, kib in results.items():
            print(f"  {name:12s} {kib:6.1f} KiB")
    finally:
        gate.stop()
        backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    asyncio.run(measure(parser.parse_args().count))


if __name__ == "__main__":
    main()
