"""Benchmark load generator: one measurement against one URL, result as one JSON line.

Run by bench/run.py in its own process (never inside a proxy's process). Written for low
client cost: picows (C WebSocket framing) on uvloop, with callbacks rather than a coroutine
per message; ``--impl websockets`` uses the ``websockets`` library on uvloop instead (the
fall-back when picows is not installed). Every mode is bounded in count and in time and stops
by itself; only 127.0.0.1 URLs are accepted.

``wss://`` URLs are reached over TLS, verified against ``--cafile`` (the run's own CA); the
result then carries ``tls``: the version and cipher the first connection negotiated.

Modes:
  idle        open --count connections, print ``open N``, hold them until a line arrives
              on stdin (or --hold seconds pass), close them
  latency     one connection, --count round trips of --size bytes, one at a time
  throughput  --conns connections with --inflight messages of --size bytes in flight each;
              messages echoed per second over --duration after --warmup
  handshake   --concurrency workers each repeating: connect, upgrade, one message, close
  http        --conns keep-alive HTTP/1.1 connections, one GET in flight each (used only
              when wrk is not installed)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check_local(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"refusing non-local URL {url!r}")


def client_context(url: str, cafile: str | None) -> ssl.SSLContext | None:
    """TLS for wss:// URLs, trusting only ``cafile`` when given; None for ws://."""
    if urlsplit(url).scheme != "wss":
        return None
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls_info(transport: Any) -> dict[str, Any]:
    """What the TLS handshake settled on ({} for a plain connection)."""
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if obj is None:
        return {}
    name, _, bits = obj.cipher()
    return {"version": obj.version(), "cipher": name, "bits": bits}


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[7]  # user nice system steal; not irq/softirq
    return busy / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """CPU use of named process groups over the measured window, in % of one core.

    "other" is the rest of the machine over the same window (other processes, and kernel
    work not charged to these processes, less interrupt and softirq time, which on loopback
    is mostly these processes' own packets): how noisy the shared machine was.
    """

    def __init__(self, groups: list[str]) -> None:
        self.groups: dict[str, list[int]] = {"client": [os.getpid()]}
        for g in groups:
            name, _, pids = g.partition("=")
            self.groups[name] = [int(x) for x in pids.split(",") if x]
        self.t0 = 0.0
        self.c0: dict[str, float] = {}

    @staticmethod
    def _cpu(pids: list[int]) -> float:
        total = 0
        for pid in pids:
            try:
                raw = open(f"/proc/{pid}/stat").read()
                f = raw[raw.rindex(")") + 2:].split()
                total += int(f[11]) + int(f[12])
            except (OSError, ValueError, IndexError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.c0 = {k: self._cpu(v) for k, v in self.groups.items()}
        self.m0 = machine_busy()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        if not self.c0 or wall <= 0:
            return {}
        out = {k: round(100 * (self._cpu(v) - self.c0[k]) / wall, 1)
               for k, v in self.groups.items()}
        other = 100 * (machine_busy() - self.m0) / wall - sum(out.values())
        out["other"] = round(max(0.0, other), 1)
        return out


WATCH = CpuWatch([])


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


# ------------------------------------------------------------------------------------------
# picows implementation
# ------------------------------------------------------------------------------------------
class PicowsClient:
    def __init__(self, ctx: ssl.SSLContext | None = None) -> None:
        import picows

        self.p = picows
        self.ctx = ctx

    async def connect(self, url: str, listener_factory, **kw):  # type: ignore[no-untyped-def]
        return await self.p.ws_connect(listener_factory, url, websocket_handshake_timeout=10,
                                       max_frame_size=64 * 1024 * 1024, ssl_context=self.ctx,
                                       **kw)

    async def idle(self, a: argparse.Namespace) -> dict:
        p = self.p
        conns: list = []
        errors = 0
        deadline = time.monotonic() + a.max_time
        sem = asyncio.Semaphore(a.concurrency)

        class Quiet(p.WSListener):  # type: ignore[misc, name-defined]
            def on_ws_frame(self, transport, frame):  # type: ignore[no-untyped-def]
                if frame.msg_type is p.WSMsgType.CLOSE:
                    transport.disconnect()

        async def one() -> None:
            nonlocal errors
            async with sem:
                if time.monotonic() > deadline:
                    errors += 1
                    return
                try:
                    t, _ = await self.connect(a.url, Quiet, read_buffer_init_size=1024)
                    conns.append(t)
                except Exception:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(a.count)))
        opened = time.monotonic() - t0
        print(f"open {len(conns)} errors {errors}", flush=True)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), a.hold)
        except TimeoutError:
            pass
        tls = tls_info(conns[0].underlying_transport) if conns else {}
        for t in conns:
            t.send_close(p.WSCloseCode.OK)
        await asyncio.sleep(0.5)
        for t in conns:
            t.disconnect(graceful=False)
        return {"opened": len(conns), "errors": errors, "open_seconds": opened, "tls": tls}

    async def latency(self, a: argparse.Namespace) -> dict:
        p = self.p
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        payload = os.urandom(a.size)
        samples: list[int] = []
        warm = a.warmup_count
        total = a.count + warm
        deadline = time.monotonic() + a.max_time
        clock = time.perf_counter_ns

        class Ping(p.WSListener):  # type: ignore[misc, name-defined]
            sent = 0
            n = 0

            def on_ws_frame(self, transport, frame):  # type: ignore[no-untyped-def]
                if frame.msg_type is not p.WSMsgType.BINARY:
                    return
                now = clock()
                self.n += 1
                if self.n > warm:
                    samples.append(now - self.sent)
                if self.n >= total or (self.n % 256 == 0 and time.monotonic() > deadline):
                    if not done.done():
                        done.set_result(None)
                    return
                self.sent = clock()
                transport.send(p.WSMsgType.BINARY, payload)

        t, listener = await self.connect(a.url, Ping)
        tls = tls_info(t.underlying_transport)
        WATCH.start()
        listener.sent = clock()
        t.send(p.WSMsgType.BINARY, payload)
        try:
            await asyncio.wait_for(done, a.max_time + 10)
            cpu = WATCH.stop()
        finally:
            t.send_close(p.WSCloseCode.OK)
            t.disconnect()
        samples.sort()
        return {"round_trips": len(samples),
                "p50_us": percentile(samples, 50) / 1000,
                "p99_us": percentile(samples, 99) / 1000,
                "mean_us": sum(samples) / max(1, len(samples)) / 1000, "cpu": cpu, "tls": tls}

    async def throughput(self, a: argparse.Namespace) -> dict:
        p = self.p
        loop = asyncio.get_running_loop()
        payload = os.urandom(a.size)
        state = {"running": True, "msgs": 0, "bytes": 0, "outstanding": 0}
        drained = loop.create_future()
        binary = p.WSMsgType.BINARY

        class Pump(p.WSListener):  # type: ignore[misc, name-defined]
            def on_ws_frame(self, transport, frame):  # type: ignore[no-untyped-def]
                if frame.msg_type is not binary:
                    return
                state["msgs"] += 1
                state["bytes"] += frame.payload_size
                if state["running"]:
                    transport.send(binary, payload)
                else:
                    state["outstanding"] -= 1
                    if state["outstanding"] == 0 and not drained.done():
                        drained.set_result(None)

        conns = await asyncio.gather(*(self.connect(a.url, Pump) for _ in range(a.conns)))
        tls = tls_info(conns[0][0].underlying_transport)
        for t, _ in conns:
            for _ in range(a.inflight):
                t.send(binary, payload)
        state["outstanding"] = a.conns * a.inflight
        await asyncio.sleep(a.warmup)
        WATCH.start()
        m0, b0, t0 = state["msgs"], state["bytes"], time.perf_counter()
        await asyncio.sleep(a.duration)
        m1, b1, t1 = state["msgs"], state["bytes"], time.perf_counter()
        cpu = WATCH.stop()
        state["running"] = False
        try:
            await asyncio.wait_for(drained, 10)
        except TimeoutError:
            pass
        for t, _ in conns:
            t.send_close(p.WSCloseCode.OK)
            t.disconnect()
        secs = t1 - t0
        return {"messages_per_s": (m1 - m0) / secs, "mb_per_s": (b1 - b0) / secs / 1e6,
                "seconds": secs, "messages": m1 - m0, "cpu": cpu, "tls": tls}

    async def handshake(self, a: argparse.Namespace) -> dict:
        p = self.p
        loop = asyncio.get_running_loop()
        payload = os.urandom(a.size)
        stats = {"ok": 0, "errors": 0}
        first_error: list[str] = []
        deadline = time.monotonic() + a.duration + a.warmup
        measure_from = time.monotonic() + a.warmup
        counted = {"n": 0}

        class Once(p.WSListener):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                self.echoed = loop.create_future()

            def on_ws_frame(self, transport, frame):  # type: ignore[no-untyped-def]
                if frame.msg_type is p.WSMsgType.BINARY:
                    if not self.echoed.done():
                        self.echoed.set_result(None)
                elif frame.msg_type is p.WSMsgType.CLOSE:
                    transport.disconnect()

        async def worker() -> None:
            while time.monotonic() < deadline and stats["ok"] < a.count:
                try:
                    t, listener = await self.connect(a.url, Once)
                    t.send(p.WSMsgType.BINARY, payload)
                    await asyncio.wait_for(listener.echoed, 10)
                    t.send_close(p.WSCloseCode.OK)
                    await asyncio.wait_for(t.wait_disconnected(), 10)
                    stats["ok"] += 1
                    if time.monotonic() >= measure_from:
                        counted["n"] += 1
                except Exception as exc:
                    stats["errors"] += 1
                    if not first_error:
                        first_error.append(repr(exc))
                    await asyncio.sleep(0.01)

        await asyncio.sleep(0)
        start = time.monotonic()
        loop.call_later(a.warmup, WATCH.start)
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        end = time.monotonic()
        cpu = WATCH.stop()
        measured = max(1e-9, end - max(start + a.warmup, measure_from))
        return {"handshakes_per_s": counted["n"] / measured, "ok": stats["ok"],
                "errors": stats["errors"], "first_error": first_error[0] if first_error else "",
                "seconds": measured, "cpu": cpu}


# ------------------------------------------------------------------------------------------
# websockets implementation (fall-back)
# ------------------------------------------------------------------------------------------
class WebsocketsClient:
    def __init__(self, ctx: ssl.SSLContext | None = None) -> None:
        from websockets.asyncio.client import connect

        self.connect_ = connect
        self.kw: dict[str, Any] = {"ssl": ctx} if ctx is not None else {}

    def connect(self, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.connect_(url, max_size=64 * 1024 * 1024, compression=None,
                             ping_interval=None, open_timeout=10, close_timeout=5,
                             **self.kw, **kw)

    async def idle(self, a: argparse.Namespace) -> dict:
        conns: list = []
        errors = 0
        sem = asyncio.Semaphore(a.concurrency)
        deadline = time.monotonic() + a.max_time

        async def one() -> None:
            nonlocal errors
            async with sem:
                if time.monotonic() > deadline:
                    errors += 1
                    return
                try:
                    conns.append(await self.connect(a.url))
                except Exception:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(a.count)))
        opened = time.monotonic() - t0
        print(f"open {len(conns)} errors {errors}", flush=True)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), a.hold)
        except TimeoutError:
            pass
        tls = tls_info(conns[0].transport) if conns else {}
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        return {"opened": len(conns), "errors": errors, "open_seconds": opened, "tls": tls}

    async def latency(self, a: argparse.Namespace) -> dict:
        payload = os.urandom(a.size)
        samples: list[int] = []
        deadline = time.monotonic() + a.max_time
        clock = time.perf_counter_ns
        async with self.connect(a.url) as ws:
            tls = tls_info(ws.transport)
            WATCH.start()
            for i in range(a.count + a.warmup_count):
                t0 = clock()
                await ws.send(payload)
                await ws.recv()
                if i >= a.warmup_count:
                    samples.append(clock() - t0)
                if time.monotonic() > deadline:
                    break
            cpu = WATCH.stop()
        samples.sort()
        return {"round_trips": len(samples),
                "p50_us": percentile(samples, 50) / 1000,
                "p99_us": percentile(samples, 99) / 1000,
                "mean_us": sum(samples) / max(1, len(samples)) / 1000, "cpu": cpu, "tls": tls}

    async def throughput(self, a: argparse.Namespace) -> dict:
        payload = os.urandom(a.size)
        state = {"running": True, "msgs": 0, "bytes": 0}

        tls: dict[str, Any] = {}

        async def conn() -> None:
            async with self.connect(a.url) as ws:
                if not tls:
                    tls.update(tls_info(ws.transport))
                for _ in range(a.inflight):
                    await ws.send(payload)
                outstanding = a.inflight
                while outstanding:
                    msg = await asyncio.wait_for(ws.recv(), 10)
                    state["msgs"] += 1
                    state["bytes"] += len(msg)
                    if state["running"]:
                        await ws.send(payload)
                    else:
                        outstanding -= 1

        tasks = [asyncio.ensure_future(conn()) for _ in range(a.conns)]
        await asyncio.sleep(a.warmup)
        WATCH.start()
        m0, b0, t0 = state["msgs"], state["bytes"], time.perf_counter()
        await asyncio.sleep(a.duration)
        m1, b1, t1 = state["msgs"], state["bytes"], time.perf_counter()
        cpu = WATCH.stop()
        state["running"] = False
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        secs = t1 - t0
        return {"messages_per_s": (m1 - m0) / secs, "mb_per_s": (b1 - b0) / secs / 1e6,
                "seconds": secs, "messages": m1 - m0, "cpu": cpu, "tls": tls}

    async def handshake(self, a: argparse.Namespace) -> dict:
        payload = os.urandom(a.size)
        stats = {"ok": 0, "errors": 0, "counted": 0}
        first_error: list[str] = []
        measure_from = time.monotonic() + a.warmup
        deadline = measure_from + a.duration

        async def worker() -> None:
            while time.monotonic() < deadline and stats["ok"] < a.count:
                try:
                    async with self.connect(a.url) as ws:
                        await ws.send(payload)
                        await asyncio.wait_for(ws.recv(), 10)
                    stats["ok"] += 1
                    if time.monotonic() >= measure_from:
                        stats["counted"] += 1
                except Exception as exc:
                    stats["errors"] += 1
                    if not first_error:
                        first_error.append(repr(exc))
                    await asyncio.sleep(0.01)

        start = time.monotonic()
        asyncio.get_running_loop().call_later(a.warmup, WATCH.start)
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        end = time.monotonic()
        cpu = WATCH.stop()
        measured = max(1e-9, end - max(start, measure_from))
        return {"handshakes_per_s": stats["counted"] / measured, "ok": stats["ok"],
                "errors": stats["errors"], "first_error": first_error[0] if first_error else "",
                "seconds": measured, "cpu": cpu}


# ------------------------------------------------------------------------------------------
# plain HTTP (asyncio; wrk is preferred and run by bench/run.py directly)
# ------------------------------------------------------------------------------------------
async def http_load(a: argparse.Namespace) -> dict:
    parts = urlsplit(a.url)
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    state = {"running": True, "ok": 0, "bad": 0, "open": 0}
    all_closed = loop.create_future()

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            self.t = transport
            self.buf = b""
            state["open"] += 1
            transport.write(request)

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end].lower()
                i = head.find(b"content-length:")
                if i < 0:
                    state["bad"] += 1
                    self.t.close()
                    return
                j = head.find(b"\r\n", i)
                length = int(head[i + 15: j if j > 0 else len(head)])
                if len(buf) < end + 4 + length:
                    break
                if not head.startswith(b"http/1.1 200"):
                    state["bad"] += 1
                else:
                    state["ok"] += 1
                buf = buf[end + 4 + length:]
                if state["running"]:
                    self.t.write(request)
                else:
                    self.t.close()
            self.buf = buf

        def connection_lost(self, exc):  # type: ignore[no-untyped-def]
            state["open"] -= 1
            if state["open"] == 0 and not all_closed.done():
                all_closed.set_result(None)

    await asyncio.gather(*(loop.create_connection(Conn, host, port) for _ in range(a.conns)))
    await asyncio.sleep(a.warmup)
    WATCH.start()
    c0, t0 = state["ok"], time.perf_counter()
    await asyncio.sleep(a.duration)
    c1, t1 = state["ok"], time.perf_counter()
    cpu = WATCH.stop()
    state["running"] = False
    try:
        await asyncio.wait_for(all_closed, 10)
    except TimeoutError:
        pass
    return {"requests_per_s": (c1 - c0) / (t1 - t0), "bad": state["bad"], "tool": "asyncio",
            "cpu": cpu}


async def main(a: argparse.Namespace) -> dict:
    if a.mode == "http":
        return await http_load(a)
    ctx = client_context(a.url, a.cafile)
    client = PicowsClient(ctx) if a.impl == "picows" else WebsocketsClient(ctx)
    return await getattr(client, a.mode)(a)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("idle", "latency", "throughput", "handshake", "http"))
    p.add_argument("--url", required=True)
    p.add_argument("--impl", choices=("picows", "websockets"), default="picows")
    p.add_argument("--cafile", help="CA certificate (PEM) to verify wss:// servers against; "
                                    "default: the system's trust store")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--warmup-count", type=int, default=200)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--inflight", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--max-time", type=float, default=60.0)
    p.add_argument("--hold", type=float, default=60.0)
    p.add_argument("--cpu", action="append", default=[], metavar="NAME=PID,PID",
                   help="report CPU use of these processes over the measured window")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    check_local(args.url)
    raise_nofile()
    WATCH = CpuWatch(args.cpu)
    import uvloop

    result = uvloop.run(main(args))
    result["mode"] = args.mode
    result["impl"] = args.impl
    print("RESULT " + json.dumps(result), flush=True)
