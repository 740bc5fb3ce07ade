"""What the provider tests share (tests/integration/test_provider_*.py and the differential
tests/differential/test_providers_vs_traefik.py): podman's Docker-compatible API and the kmock
Kubernetes API emulator, each with its state in the test's temporary folder, and the clients
and backends the tests route through wsgate, all on 127.0.0.1.

Podman runs rootful (see ../shared/reference/containers.md): ``apt-get install podman
busybox-static runc``. kmock (PyPI, with aiohttp) runs in its own process with the three
adjustments of that reference: JSON content type on watch responses, every listed resource
declared, plain list-then-watch (wsgate never relies on bookmarks). Both skip the test, saying
why, when they cannot run here.
"""

from __future__ import annotations

import copy
import http.client
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Proc, Wsgate, free_port, start_wss_backends
from tests.tlspki import PKI

# -- podman ----------------------------------------------------------------------------------------

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


@contextmanager
def podman_service(tmp: Path) -> Iterator[Podman]:
    """Podman's API service on a socket in ``tmp``, with a busybox image to run; every
    container is removed at the end."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman busybox-static runc)")
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.skip("/bin/busybox is missing (apt-get install busybox-static)")
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


# -- kmock -----------------------------------------------------------------------------------------

#: The emulator; its arguments are the port and any resources to declare besides wsgate's.
EMULATOR = r'''
import asyncio, sys
import aiohttp.web, kmock

_prepare = aiohttp.web.StreamResponse.prepare

async def prepare(self, request):
    self.headers.setdefault("Content-Type", "application/json")
    return await _prepare(self, request)

aiohttp.web.StreamResponse.prepare = prepare

RESOURCES = ["v1/services", "v1/secrets", "v1/endpoints", "v1/namespaces", "v1/nodes",
             "v1/configmaps", "discovery.k8s.io/v1/endpointslices"] + [
    f"traefik.io/v1alpha1/{plural}" for plural in (
        "ingressroutes", "middlewares", "serverstransports", "tlsoptions", "tlsstores",
        "traefikservices")] + sys.argv[2:]

async def main(port):
    async with kmock.KubernetesEmulator() as k, kmock.Server(k, host="127.0.0.1", port=port):
        for resource in RESOURCES:
            k.resources[resource] = {}
        print(f"listening on {port}", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
'''

PATHS = {
    "IngressRoute": "/apis/traefik.io/v1alpha1/namespaces/{ns}/ingressroutes",
    "Middleware": "/apis/traefik.io/v1alpha1/namespaces/{ns}/middlewares",
    "ServersTransport": "/apis/traefik.io/v1alpha1/namespaces/{ns}/serverstransports",
    "Service": "/api/v1/namespaces/{ns}/services",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
}


class Kube:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def _call(self, method: str, path: str, body: Any = None,
              content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def create(self, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        ns = obj.setdefault("metadata", {}).setdefault("namespace", "default")
        self._call("POST", PATHS[obj["kind"]].format(ns=ns), obj)

    def patch(self, kind: str, name: str, patch: dict[str, Any], ns: str = "default") -> None:
        self._call("PATCH", PATHS[kind].format(ns=ns) + f"/{name}", patch,
                   "application/merge-patch+json")

    def delete(self, kind: str, name: str, ns: str = "default") -> None:
        self._call("DELETE", PATHS[kind].format(ns=ns) + f"/{name}")


@contextmanager
def kmock_server(tmp: Path, extra_resources: Sequence[str] = ()) -> Iterator[Kube]:
    """The emulator in its own process; Traefik lists more kinds than wsgate reads and waits
    for every list, hence ``extra_resources`` (``group/version/plural``)."""
    for module in ("kmock", "aiohttp"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install kmock aiohttp)")
    script = tmp / "kmock_server.py"
    script.write_text(EMULATOR)
    port = free_port()
    proc = Proc([sys.executable, str(script), str(port), *extra_resources], name="kmock")
    try:
        proc.wait_for(r"listening on")
        yield Kube(port)
    finally:
        proc.stop()


def service(name: str, port: int, port_name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": port_name, "port": port}]}}


def endpoint_slice(service_name: str, target: int, port_name: str = "web", *,
                   suffix: str = "a", terminating: bool = False,
                   address: str = "127.0.0.1") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-{suffix}",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": target, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address],
                           "conditions": {"ready": not terminating, "serving": True,
                                          "terminating": terminating}}]}


# -- through wsgate --------------------------------------------------------------------------------


def wait_updates(gate: Wsgate, provider: str, count: int) -> None:
    """Wait until ``provider`` has applied ``count`` configurations, its first one included
    (30s: a container start or a watch event can be slow on a loaded machine)."""
    gate.proc.wait_for_count(rf"{provider} provider: configuration updated", count, timeout=30)


def get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    """A plain GET through wsgate: the status and the backend that answered (X-Backend)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Backend") or ""
    finally:
        conn.close()


def ws_hello(port: int, host: str, path: str = "/", *, tls: bool = False) -> str:
    """Send "hello" on a WebSocket through wsgate (wss:// with ``tls``, any certificate);
    the answer."""
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with connect(f"{'wss' if tls else 'ws'}://{host}{path}", sock=sock, ssl=context,
                 server_hostname=host if tls else None, open_timeout=10) as ws:
        ws.send("hello")
        return str(ws.recv(timeout=10))


def check_seed_origin(port: int, routed_by: str) -> None:
    """The seed's "Headers and Origin Checks" example: whatever Origin the client sends, the
    backend (its /headers page) sees the allowed one. Skips when the request was routed by
    ``routed_by`` but its middleware not applied."""
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with connect("ws://ws.example.com/headers", sock=sock,
                 additional_headers={"Origin": "https://elsewhere.test"}) as ws:
        seen = json.loads(ws.recv(timeout=10))
    origins = [v for k, v in seen["headers"] if k.lower() == "origin"]
    if origins == ["https://elsewhere.test"]:
        pytest.skip(f"routed through {routed_by}, but the gateway does not apply "
                    "middlewares yet")
    assert origins == ["https://allowed-origin.com"]


def start_tls_ws_backend(tmp: Path) -> tuple[Proc, int]:
    """A wss:// echo backend with a self-signed certificate (CN my-wss-server, no names: only
    a transport with insecureSkipVerify accepts it, as in the seed's example)."""
    issued = PKI(tmp / "backend-pki").self_signed("my-wss-server", [])
    proc, ports = start_wss_backends({"wss": f"{issued.cert_path},{issued.key_path}"})
    return proc, ports["wss"]
