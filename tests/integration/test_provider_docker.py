"""The Docker provider end to end: podman's Docker-compatible API, labelled host-network
containers, wsgate routing to test backends on 127.0.0.1 as containers start and stop.

Podman runs with all its state in the test's temporary folder (tests/integration/
provider_peers.py); the tests skip, saying why, when podman cannot run here.
"""

from __future__ import annotations

import pkgutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import seed
from tests.integration.harness import Wsgate, start_http_backend, start_ws_backend
from tests.integration.provider_peers import (
    Podman,
    check_seed_origin,
    get,
    podman_service,
    start_tls_ws_backend,
    wait_updates,
    ws_hello,
)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    with podman_service(tmp_path_factory.mktemp("podman")) as pod:
        yield pod


def _wsgate(tmp: Path, sock: Path, entry_point: str = "web", **docker: object) -> Wsgate:
    """wsgate with one entryPoint, following podman's containers."""
    static = {
        "entryPoints": {entry_point: {"address": "127.0.0.1:0"}},
        "log": {"level": "INFO"},
        "providers": {"docker": {"endpoint": f"unix://{sock}", **docker}},
    }
    return Wsgate(tmp, static)


def _applied(gate: Wsgate, count: int) -> None:
    wait_updates(gate, "docker", count)


def test_routes_follow_containers_starting_and_stopping(podman: Podman, tmp_path: Path
                                                       ) -> None:
    one, port_one = start_http_backend("one")
    two, port_two = start_http_backend("two")
    gate = _wsgate(tmp_path, podman.socket, exposedByDefault=False)
    try:
        _applied(gate, 1)
        web = gate.ports["web"]
        assert get(web, "app.test")[0] == 404
        labels = {"traefik.enable": "true",
                  "traefik.http.routers.app.rule": "Host(`app.test`)",
                  "traefik.http.routers.app.service": "app"}
        podman.start("app-one", {**labels, "traefik.http.services.app.loadbalancer.server.port":
                                 str(port_one)})
        _applied(gate, 2)
        assert get(web, "app.test") == (200, "one")

        # a second container of the same service: one service, both servers
        podman.start("app-two", {**labels, "traefik.http.services.app.loadbalancer.server.port":
                                 str(port_two)})
        _applied(gate, 3)
        assert {get(web, "app.test")[1] for _ in range(4)} == {"one", "two"}

        # a container without traefik.enable is not exposed (exposedByDefault is false)
        podman.start("hidden", {"traefik.http.routers.hidden.rule": "Host(`hidden.test`)",
                                "traefik.http.services.hidden.loadbalancer.server.port":
                                str(port_one)})

        podman.run("stop", "-t", "0", "app-one")
        _applied(gate, 4)
        assert {get(web, "app.test")[1] for _ in range(4)} == {"two"}
        assert get(web, "hidden.test")[0] == 404

        podman.remove("app-two")
        _applied(gate, 5)
        assert get(web, "app.test")[0] == 404
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
        _applied(gate, 1)
        podman.start("my_app.1", {
            "traefik.http.services.my-app-1.loadbalancer.server.port": str(port)})
        _applied(gate, 2)
        assert get(gate.ports["web"], "my-app-1.docker.test") == (200, "implicit")
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
        _applied(gate, 1)
        podman.start("seed-basic", _with_port(_seed_labels("Basic WebSocket Configuration"),
                                              port))
        _applied(gate, 2)
        assert ws_hello(gate.ports["web"], "ws.example.com") == "hello"
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
        _applied(gate, 1)
        podman.start("seed-headers", _with_port(labels, port))
        _applied(gate, 2)
        check_seed_origin(gate.ports["web"], routed_by="the labelled router")
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
    gate = _wsgate(tmp_path, podman.socket, "websecure")
    try:
        _applied(gate, 1)
        podman.start("seed-tls", _with_port(_seed_labels(section), port))
        _applied(gate, 2)
        try:
            answer = ws_hello(gate.ports["websecure"], "wss.example.com", tls=True)
        except (ssl.SSLError, ConnectionError) as exc:
            pytest.skip(f"wsgate did not terminate TLS on the entryPoint: {exc}")
        assert answer == "hello"
    finally:
        podman.remove("seed-tls")
        gate.stop()
        backend.stop()


def test_seed_end_to_end_wss(podman: Podman, tmp_path: Path) -> None:
    """Port 8443 and a serversTransport without a scheme: wsgate infers https (extension)."""
    backend, port = start_tls_ws_backend(tmp_path)
    gate = _wsgate(tmp_path, podman.socket, "websecure")
    try:
        _applied(gate, 1)
        labels = _seed_labels("End-to-End WebSocket Secure (WSS)")
        assert labels["traefik.http.services.my-wss-service.loadbalancer.server.port"] == "8443"
        podman.start("seed-e2e", _with_port(labels, port))
        _applied(gate, 2)
        gate.proc.wait_for(r"no scheme given and it names the serversTransport")
        assert ws_hello(gate.ports["websecure"], "wss.example.com", tls=True) == "hello"
    finally:
        podman.remove("seed-e2e")
        gate.stop()
        backend.stop()
