"""The Kubernetes CRD provider end to end, against the kmock API emulator.

IngressRoutes, Middlewares, ServersTransports, Services and EndpointSlices are created,
changed and deleted through the emulator's REST API while wsgate follows them and routes to
test backends on 127.0.0.1. The emulator runs in its own process (tests/integration/
provider_peers.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import seed
from tests.integration.harness import Wsgate, start_http_backend, start_ws_backend
from tests.integration.provider_peers import (
    Kube,
    check_seed_origin,
    endpoint_slice,
    get,
    kmock_server,
    service,
    start_tls_ws_backend,
    wait_updates,
    ws_hello,
)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    with kmock_server(tmp_path) as server:
        yield server


def start_wsgate(tmp: Path, kube: Kube) -> Wsgate:
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"},
                        "websecure": {"address": "127.0.0.1:0"}},
        "providers": {"kubernetesCRD": {"endpoint": kube.base}},
    }
    return Wsgate(tmp, static)


def _applied(gate: Wsgate, count: int) -> None:
    wait_updates(gate, "kubernetescrd", count)


def test_routes_follow_resources(kube: Kube, tmp_path: Path) -> None:
    one, port_one = start_http_backend("one")
    two, port_two = start_http_backend("two")
    gate = start_wsgate(tmp_path, kube)
    try:
        _applied(gate, 1)
        web = gate.ports["web"]
        kube.create(service("app", 80))
        kube.create(endpoint_slice("app", port_one))
        kube.create({"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
                     "metadata": {"name": "app"},
                     "spec": {"entryPoints": ["web"], "routes": [
                         {"match": "Host(`app.test`)", "kind": "Rule",
                          "services": [{"name": "app", "port": 80}]}]}})
        _applied(gate, 2)
        assert get(web, "app.test") == (200, "one")

        # the endpoints change: the server follows
        kube.patch("EndpointSlice", "app-a", {"ports": [{"name": "web", "port": port_two}]})
        _applied(gate, 3)
        assert get(web, "app.test") == (200, "two")

        # a terminating endpoint gets no new traffic (nothing listens on 127.0.0.2: a request
        # sent there would fail)
        kube.create(endpoint_slice("app", port_two, suffix="b", terminating=True,
                                   address="127.0.0.2"))
        kube.patch("EndpointSlice", "app-a", {"ports": [{"name": "web", "port": port_one}]})
        _applied(gate, 4)
        assert {get(web, "app.test")[1] for _ in range(3)} == {"one"}

        # the route changes its rule
        kube.patch("IngressRoute", "app", {"spec": {"routes": [
            {"match": "Host(`other.test`)", "kind": "Rule",
             "services": [{"name": "app", "port": 80}]}]}})
        _applied(gate, 5)
        assert get(web, "app.test")[0] == 404
        assert get(web, "other.test") == (200, "one")

        kube.delete("IngressRoute", "app")
        _applied(gate, 6)
        assert get(web, "other.test")[0] == 404
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
        _applied(gate, 1)
        _apply_seed(kube, section, port)
        _applied(gate, 2)
        tls = "Secure" in section or "SSL" in section
        host = "wss.example.com" if tls else "ws.example.com"
        entry = "websecure" if tls else "web"
        assert ws_hello(gate.ports[entry], host, tls=tls) == "hello"
    finally:
        gate.stop()
        backend.stop()


def test_seed_end_to_end_wss(kube: Kube, tmp_path: Path) -> None:
    backend, port = start_tls_ws_backend(tmp_path)
    gate = start_wsgate(tmp_path, kube)
    try:
        _applied(gate, 1)
        _apply_seed(kube, "End-to-End WebSocket Secure (WSS)", port)
        _applied(gate, 2)
        gate.proc.wait_for(r"no scheme given and its port is 8443: using https")
        assert ws_hello(gate.ports["websecure"], "wss.example.com", tls=True) == "hello"
    finally:
        gate.stop()
        backend.stop()


def test_seed_origin_headers(kube: Kube, tmp_path: Path) -> None:
    backend, port = start_ws_backend()
    gate = start_wsgate(tmp_path, kube)
    try:
        _applied(gate, 1)
        _apply_seed(kube, "Headers and Origin Checks", port)
        _applied(gate, 2)
        check_seed_origin(gate.ports["web"], routed_by="the IngressRoute")
    finally:
        gate.stop()
        backend.stop()
