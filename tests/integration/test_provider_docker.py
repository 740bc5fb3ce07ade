"""The Docker provider end to end: podman's Docker-compatible API, labelled host-network
containers, wsgate routing to test backends on 127.0.0.1 as containers start and stop.

Podman runs rootful with all its state in the test's temporary folder (see
../shared/reference/containers.md): ``apt-get install podman busybox-static runc``. The tests
skip, saying why, when podman cannot run here.
"""

from __future__ import annotations

import http.client
import json
import os
import pkgutil
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.integration.harness import Proc, Wsgate, start_http_backend, start_ws_backend

try:
    from tests import seed
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests import seed

IMAGE = "localhost/wsgate-test-bb:latest"


@dataclass
class Podman:
    env: dict[str, str]
    socket: Path
    tmp: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True,
                              check=check, timeout=120)

    def start(self, name: str, labels: dict[str, str]) -> None:
        """A host-network container that only sleeps: its labels point at host backends."""
        args = ["run", "-d", "--name", name, "--network", "host"]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        self.run(*args, IMAGE, "/bin/sleep", "3600")

    def remove(self, name: str) -> None:
        self.run("rm", "-f", "-t", "0", name, check=False)


def _api_ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            return b"OK" in s.recv(4096)
    except OSError:
        return False


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman busybox-static runc)")
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.skip("/bin/busybox is missing (apt-get install busybox-static)")
    tmp = tmp_path_factory.mktemp("podman")
    for sub in ("run", "storage", "tmp"):
        (tmp / sub).mkdir()
    (tmp / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\nrunroot = "{tmp}/run"\ngraphroot = "{tmp}/storage"\n')
    # crun (podman's default when installed) fails in this sandbox's hybrid cgroups: use runc.
    runtime = 'runtime = "runc"\n' if shutil.which("runc") else ""
    (tmp / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        f'[engine]\n{runtime}cgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{tmp}/run/events.log"\ntmp_dir = "{tmp}/tmp"\n')
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(tmp / "storage.conf"),
               CONTAINERS_CONF=str(tmp / "containers.conf"))
    rootfs = tmp / "rootfs"
    for sub in ("bin", "tmp", "etc"):
        (rootfs / sub).mkdir(parents=True)
    shutil.copy(busybox, rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "true"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp / "bb.tar"), "."], check=True)
    imported = subprocess.run(["podman", "import", "--change", 'CMD ["/bin/sleep","3600"]',
                               str(tmp / "bb.tar"), IMAGE], env=env, capture_output=True,
                              text=True, timeout=120)
    if imported.returncode != 0:
        pytest.skip(f"podman cannot import an image here: {imported.stderr.strip()}")
    sock = tmp / "podman.sock"
    service = Proc(["podman", "system", "service", "--time=0", f"unix://{sock}"], env=env,
                   name="podman-service")
    pod = Podman(env, sock, tmp)
    try:
        deadline = time.monotonic() + 30
        while not _api_ping(sock):
            if service.popen.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"podman's API service did not start:\n{service.output()}")
            time.sleep(0.1)
        probe = pod.run("run", "--rm", "--network", "host", IMAGE, "/bin/true", check=False)
        if probe.returncode != 0:
            pytest.skip(f"podman cannot run containers here: {probe.stderr.strip()}")
        yield pod
    finally:
        pod.run("rm", "-a", "-f", "-t", "0", check=False)
        service.stop()


def _wait_lines(proc: Proc, pattern: str, count: int, timeout: float = 30.0) -> None:
    """Wait until ``count`` lines of the process match ``pattern``."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while sum(1 for line in list(proc.lines) if rx.search(line)) < count:
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{count} lines matching {pattern!r} not seen; output:\n"
                                 + proc.output())
        time.sleep(0.05)


APPLIED = r"docker provider: configuration updated"


def _get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Backend") or ""
    finally:
        conn.close()


def _ws_echo(port: int, host: str, path: str = "/", *, tls: bool = False,
             origin: str | None = None) -> str:
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    headers = {"Origin": origin} if origin else None
    with connect(f"{'wss' if tls else 'ws'}://{host}{path}", sock=sock, ssl=context,
                 server_hostname=host if tls else None, additional_headers=headers,
                 open_timeout=10) as ws:
        ws.send("hello")
        return str(ws.recv(timeout=10))


def _wsgate(tmp: Path, sock: Path, **docker: object) -> Wsgate:
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "log": {"level": "INFO"},
        "providers": {"docker": {"endpoint": f"unix://{sock}", **docker}},
    }
    return Wsgate(tmp, static)


def test_routes_follow_containers_starting_and_stopping(podman: Podman, tmp_path: Path
                                                       ) -> None:
    one, port_one = start_http_backend("one")
    two, port_two = start_http_backend("two")
    gate = _wsgate(tmp_path, podman.socket, exposedByDefault=False)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        web = gate.ports["web"]
        assert _get(web, "app.test")[0] == 404
        labels = {"traefik.enable": "true",
                  "traefik.http.routers.app.rule": "Host(`app.test`)",
                  "traefik.http.routers.app.service": "app"}
        podman.start("app-one", {**labels, "traefik.http.services.app.loadbalancer.server.port":
                                 str(port_one)})
        _wait_lines(gate.proc, APPLIED, 2)
        assert _get(web, "app.test") == (200, "one")

        # a second container of the same service: one service, both servers
        podman.start("app-two", {**labels, "traefik.http.services.app.loadbalancer.server.port":
                                 str(port_two)})
        _wait_lines(gate.proc, APPLIED, 3)
        assert {_get(web, "app.test")[1] for _ in range(4)} == {"one", "two"}

        # a container without traefik.enable is not exposed (exposedByDefault is false)
        podman.start("hidden", {"traefik.http.routers.hidden.rule": "Host(`hidden.test`)",
                                "traefik.http.services.hidden.loadbalancer.server.port":
                                str(port_one)})

        podman.run("stop", "-t", "0", "app-one")
        _wait_lines(gate.proc, APPLIED, 4)
        assert {_get(web, "app.test")[1] for _ in range(4)} == {"two"}
        assert _get(web, "hidden.test")[0] == 404

        podman.remove("app-two")
        _wait_lines(gate.proc, APPLIED, 5)
        assert _get(web, "app.test")[0] == 404
    finally:
        for name in ("app-one", "app-two", "hidden"):
            podman.remove(name)
        gate.stop()
        one.stop()
        two.stop()


def test_default_rule_and_implicit_service(podman: Podman, tmp_path: Path) -> None:
    backend, port = start_http_backend("implicit")
    gate = _wsgate(tmp_path, podman.socket,
                   defaultRule="Host(`{{ normalize .Name }}.docker.test`)")
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        podman.start("my_app.1", {
            "traefik.http.services.my-app-1.loadbalancer.server.port": str(port)})
        _wait_lines(gate.proc, APPLIED, 2)
        assert _get(gate.ports["web"], "my-app-1.docker.test") == (200, "implicit")
    finally:
        podman.remove("my_app.1")
        gate.stop()
        backend.stop()


# --------------------------------------------------------------------------- the seed's examples

def _seed_labels(section: str) -> dict[str, str]:
    block = seed.seed_block(section, seed.DOCKER)
    items = yaml.safe_load(block.code)["labels"]
    return dict(item.split("=", 1) for item in items)


def _tls_supported() -> bool:
    import wsgate.tls

    return any(True for _ in pkgutil.iter_modules(wsgate.tls.__path__))


def _with_port(labels: dict[str, str], port: int) -> dict[str, str]:
    return {k: (str(port) if k.lower().endswith("loadbalancer.server.port") else v)
            for k, v in labels.items()}


def test_seed_basic_websocket(podman: Podman, tmp_path: Path) -> None:
    backend, port = start_ws_backend()
    gate = _wsgate(tmp_path, podman.socket)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        podman.start("seed-basic", _with_port(_seed_labels("Basic WebSocket Configuration"),
                                              port))
        _wait_lines(gate.proc, APPLIED, 2)
        assert _ws_echo(gate.ports["web"], "ws.example.com") == "hello"
    finally:
        podman.remove("seed-basic")
        gate.stop()
        backend.stop()


def test_seed_origin_headers(podman: Podman, tmp_path: Path) -> None:
    """The Headers example adds a middleware to the Basic example's router."""
    backend, port = start_ws_backend()
    gate = _wsgate(tmp_path, podman.socket)
    labels = {**_seed_labels("Basic WebSocket Configuration"),
              **_seed_labels("Headers and Origin Checks")}
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        podman.start("seed-headers", _with_port(labels, port))
        _wait_lines(gate.proc, APPLIED, 2)
        from websockets.sync.client import connect

        sock = socket.create_connection(("127.0.0.1", gate.ports["web"]), timeout=10)
        with connect("ws://ws.example.com/headers", sock=sock,
                     additional_headers={"Origin": "https://elsewhere.test"}) as ws:
            seen = json.loads(ws.recv(timeout=10))
        origins = [v for k, v in seen["headers"] if k.lower() == "origin"]
        if origins == ["https://elsewhere.test"]:
            pytest.skip("routed through the labelled router, but the gateway does not apply "
                        "middlewares yet")
        assert origins == ["https://allowed-origin.com"]
    finally:
        podman.remove("seed-headers")
        gate.stop()
        backend.stop()


@pytest.mark.parametrize("section", ["WebSocket Secure (WSS) Configuration",
                                     "SSL Termination for WebSockets"])
def test_seed_tls_sections(podman: Podman, tmp_path: Path, section: str) -> None:
    if not _tls_supported():
        pytest.skip("wsgate does not terminate TLS yet (wsgate/tls is empty)")
    backend, port = start_ws_backend()
    static = {
        "entryPoints": {"websecure": {"address": "127.0.0.1:0"}},
        "providers": {"docker": {"endpoint": f"unix://{podman.socket}"}},
    }
    gate = Wsgate(tmp_path, static)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        podman.start("seed-tls", _with_port(_seed_labels(section), port))
        _wait_lines(gate.proc, APPLIED, 2)
        try:
            answer = _ws_echo(gate.ports["websecure"], "wss.example.com", tls=True)
        except (ssl.SSLError, ConnectionError) as exc:
            pytest.skip(f"wsgate did not terminate TLS on the entryPoint: {exc}")
        assert answer == "hello"
    finally:
        podman.remove("seed-tls")
        gate.stop()
        backend.stop()


# --------------------------------------------------------------------------- TLS backends

_TLS_BACKEND = r'''
import asyncio, ssl, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    async with serve(echo, "127.0.0.1", 0, ssl=context, ping_interval=None) as server:
        print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.get_running_loop().create_future()

asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


def start_tls_ws_backend(tmp: Path) -> tuple[Proc, int]:
    """A wss:// echo backend with a self-signed certificate, on 127.0.0.1."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "my-wss-server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path, script = tmp / "backend.crt", tmp / "backend.key", tmp / "wss.py"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    script.write_text(_TLS_BACKEND)
    proc = Proc([sys.executable, str(script), str(cert_path), str(key_path)],
                name="wss-backend")
    return proc, int(proc.wait_for(r"listening on (\d+)").group(1))


def test_seed_end_to_end_wss(podman: Podman, tmp_path: Path) -> None:
    """Port 8443 and a serversTransport without a scheme: wsgate infers https (extension)."""
    backend, port = start_tls_ws_backend(tmp_path)
    static = {
        "entryPoints": {"websecure": {"address": "127.0.0.1:0"}},
        "providers": {"docker": {"endpoint": f"unix://{podman.socket}"}},
    }
    gate = Wsgate(tmp_path, static)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        labels = _seed_labels("End-to-End WebSocket Secure (WSS)")
        assert labels["traefik.http.services.my-wss-service.loadbalancer.server.port"] == "8443"
        podman.start("seed-e2e", _with_port(labels, port))
        _wait_lines(gate.proc, APPLIED, 2)
        gate.proc.wait_for(r"no scheme given and it names the serversTransport")
        assert _ws_echo(gate.ports["websecure"], "wss.example.com", tls=True) == "hello"
    finally:
        podman.remove("seed-e2e")
        gate.stop()
        backend.stop()
