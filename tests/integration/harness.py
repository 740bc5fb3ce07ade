"""Processes for integration tests: wsgate itself and test peers, on 127.0.0.1 only.

Every process is started by the test, waited for on an event (a line it prints when it is
ready), and stopped by its own PID when the test ends.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process whose output lines are collected and can be awaited."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, name: str = "") -> None:
        self.name = name or Path(args[1] if len(args) > 1 else args[0]).name
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      env=full_env, cwd=cwd, text=True, bufsize=1)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until a line matches; fail with the output so far if the process exits."""
        rx = re.compile(pattern)
        for line in list(self.lines):
            m = rx.search(line)
            if m:
                return m
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{self.name}: no line matching {pattern!r} within "
                                     f"{timeout}s; output:\n" + self.output()) from None
            if line is None:
                raise AssertionError(f"{self.name} exited ({self.popen.wait()}) before "
                                     f"{pattern!r}; output:\n" + self.output())
            m = rx.search(line)
            if m:
                return m

    def output(self) -> str:
        return "\n".join(self.lines)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._reader.join(5)
        return int(self.popen.returncode)


def start_ws_backend(port: int = 0) -> tuple[Proc, int]:
    proc = Proc([sys.executable, str(PEERS / "ws_backend.py"), "--port", str(port)],
                name="ws_backend")
    bound = int(proc.wait_for(r"listening on (\d+)").group(1))
    return proc, bound


def start_http_backend(name: str = "backend", port: int = 0) -> tuple[Proc, int]:
    proc = Proc([sys.executable, str(PEERS / "http_backend.py"), "--port", str(port),
                 "--name", name], name=f"http_backend:{name}")
    bound = int(proc.wait_for(r"listening on (\d+)").group(1))
    return proc, bound


class Wsgate:
    """wsgate run as users run it: ``twistd -n wsgate --configFile FILE``."""

    def __init__(self, tmp: Path, static: dict[str, Any], dynamic: dict[str, Any] | None = None,
                 *, extra_args: list[str] | None = None, wait: bool = True) -> None:
        self.tmp = tmp
        self.static = dict(static)
        if dynamic is not None:
            dyn_path = tmp / "dynamic.yml"
            dyn_path.write_text(yaml.safe_dump(dynamic, sort_keys=False))
            self.static.setdefault("providers", {})["file"] = {"filename": str(dyn_path),
                                                               "watch": False}
        self.config_path = tmp / "traefik.yml"
        self.config_path.write_text(yaml.safe_dump(self.static, sort_keys=False))
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "wsgate", "--configFile", str(self.config_path),
                *(extra_args or [])]
        # The plugin is found on sys.path: the source tree first, else the installed package.
        self.proc = Proc(args, cwd=tmp, name="wsgate",
                         env={"PYTHONPATH": str(ROOT) + os.pathsep +
                              os.environ.get("PYTHONPATH", "")})
        self.ports: dict[str, int] = {}
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        for name in self.static.get("entryPoints", {}):
            m = self.proc.wait_for(rf"entryPoint {re.escape(name)} listening on "
                                   r".*port=(\d+)")
            self.ports[name] = int(m.group(1))
        self.proc.wait_for(r"wsgate ready")

    def stop(self) -> int:
        return self.proc.stop()
