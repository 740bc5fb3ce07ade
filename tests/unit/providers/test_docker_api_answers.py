"""Docker Engine API answers (recorded from podman's Docker-compatible API, and Swarm answers
in the Engine API's documented shape) to containers, and the Docker provider's loop (resync,
debounced events, reconnect with backoff) on a fake client and clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from wsgate.config.static import DockerProvider as DockerSettings
from wsgate.config.static import SwarmProvider as SwarmSettings
from wsgate.providers.docker import (
    DockerProvider,
    SwarmProvider,
    api_prefix,
    container_from_inspect,
    swarm_containers,
)
from wsgate.providers.http_api import APIError
from wsgate.providers.labels import LabelSettings, build_configuration

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def test_podman_host_network_container() -> None:
    c = container_from_inspect(load("podman_inspect_web2.json"))
    assert (c.name, c.status, c.health, c.network_mode) == ("web2", "running", "", "host")
    assert c.networks == {} and c.ports == ()
    assert c.labels["com.docker.compose.service"] == "svc"
    result = build_configuration([c], LabelSettings())
    # a Compose-labelled container: the service is <service>_<project>, normalized
    http = result.decoded.value.http
    assert set(http.services) == {"x"}
    assert [s.url for s in http.services["x"].load_balancer.servers] == \
        ["http://127.0.0.1:18082"]
    assert set(http.routers) == {"svc-proj"}
    assert http.routers["svc-proj"].rule == "Host(`svc-proj`)"


def test_podman_bridge_container_with_a_published_port() -> None:
    c = container_from_inspect(load("podman_inspect_web3.json"))
    assert c.network_mode == "bridge"
    assert c.networks == {"podman": "10.88.0.2"}
    assert c.ports == (8080,)
    assert c.port_bindings == {8080: (("127.0.0.1", "18090"),)}


def test_recorded_podman_events_trigger_resyncs() -> None:
    events = [json.loads(line) for line in (DATA / "podman_events.jsonl").read_text()
              .splitlines()]
    assert {"start", "die", "remove"} <= {e["Action"] for e in events
                                          if e["Type"] == "container"}
    clock = task.Clock()
    provider = DockerProvider(clock, DockerSettings(), client=FakeDocker(),  # type: ignore[arg-type]
                              on_change=lambda d: None)
    scheduled = []
    provider._schedule = lambda: scheduled.append(1)  # type: ignore[method-assign]
    for event in events:
        provider._on_event(event)
    relevant = [e for e in events if e["Type"] == "container"
                and e["Action"] in ("create", "start", "stop", "die", "remove", "kill")]
    assert len(scheduled) == len(relevant) > 0


def test_api_prefix() -> None:
    assert api_prefix({"ApiVersion": "1.41"}) == "/v1.41"
    assert api_prefix({"ApiVersion": "1.52"}) == "/v1.47"
    assert api_prefix({}) == ""


# --------------------------------------------------------------------------- swarm answers

NETWORKS = [{"Id": "net-front", "Name": "front", "Scope": "swarm"},
            {"Id": "net-back", "Name": "back", "Scope": "swarm"}]


def swarm_service(sid: str, name: str, labels: dict[str, str], mode: str = "vip",
                  vips: list[dict[str, str]] | None = None, global_: bool = False
                  ) -> dict[str, Any]:
    return {"ID": sid,
            "Spec": {"Name": name, "Labels": labels,
                     "Mode": {"Global": {}} if global_ else {"Replicated": {"Replicas": 2}},
                     "EndpointSpec": {"Mode": mode}},
            "Endpoint": {"VirtualIPs": vips or []}}


def swarm_task(tid: str, sid: str, slot: int, address: str, state: str = "running",
               network: str = "net-back") -> dict[str, Any]:
    return {"ID": tid, "ServiceID": sid, "Slot": slot, "Status": {"State": state},
            "DesiredState": "running",
            "NetworksAttachments": [{"Network": {"ID": network}, "Addresses": [address]}]}


def test_swarm_tasks_become_containers() -> None:
    labels = {"traefik.http.services.api.loadbalancer.server.port": "8000"}
    services = [swarm_service("s1", "api", labels)]
    tasks = [swarm_task("t1", "s1", 1, "10.0.2.5/24"), swarm_task("t2", "s1", 2, "10.0.2.6/24"),
             swarm_task("t3", "s1", 3, "10.0.2.7/24", state="shutdown")]
    containers, problems = swarm_containers(services, tasks, NETWORKS)
    assert problems == []
    assert [(c.name, c.networks) for c in containers] == [
        ("api.1", {"back": "10.0.2.5"}), ("api.2", {"back": "10.0.2.6"})]
    result = build_configuration(containers, LabelSettings(provider="swarm"))
    assert [s.url for s in result.decoded.value.http.services["api"].load_balancer.servers] \
        == ["http://10.0.2.5:8000", "http://10.0.2.6:8000"]
    assert result.decoded.value.http.routers["api"].rule == "Host(`api`)"


def test_swarm_lbswarm_uses_the_virtual_ip() -> None:
    labels = {"traefik.swarm.lbswarm": "true",
              "traefik.http.services.web.loadbalancer.server.port": "80"}
    services = [swarm_service("s2", "web", labels,
                              vips=[{"NetworkID": "net-front", "Addr": "10.0.1.2/24"}])]
    containers, _ = swarm_containers(services, [swarm_task("t", "s2", 1, "10.0.1.9/24")],
                                     NETWORKS)
    assert [(c.name, c.networks) for c in containers] == [("web", {"front": "10.0.1.2"})]


def test_swarm_dnsrr_ignores_lbswarm() -> None:
    labels = {"traefik.swarm.lbswarm": "true"}
    services = [swarm_service("s3", "dns", labels, mode="dnsrr")]
    containers, problems = swarm_containers(
        services, [swarm_task("t", "s3", 1, "10.0.2.8/24")], NETWORKS)
    assert [c.name for c in containers] == ["dns.1"]
    assert "dnsrr" in str(problems[0])


def test_swarm_global_service_task_names() -> None:
    services = [swarm_service("s4", "agent", {}, global_=True)]
    containers, _ = swarm_containers(services, [swarm_task("tx", "s4", 0, "10.0.2.9/24")],
                                     NETWORKS)
    assert [c.name for c in containers] == ["agent.tx"]


def test_swarm_label_errors_leave_the_service_out() -> None:
    labels = {"traefik.swarm.network": "a", "traefik.docker.network": "b"}
    containers, problems = swarm_containers([swarm_service("s5", "bad", labels)], [], NETWORKS)
    assert containers == [] and "both" in str(problems[0])


# --------------------------------------------------------------------------- provider loops

class FakeStream:
    def __init__(self, on_item: Any) -> None:
        self.on_item = on_item
        self.connected: defer.Deferred[None] = defer.succeed(None)
        self.done: defer.Deferred[None] = defer.Deferred()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if not self.done.called:
            self.done.callback(None)


class FakeDocker:
    """Answers from a dict of containers; records every request."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.streams: list[FakeStream] = []
        self.down = False

    def get_json(self, path: str, params: Any = None) -> defer.Deferred[Any]:
        self.requests.append(path)
        if self.down:
            return defer.fail(ConnectionRefusedError("down"))
        if path == "/version":
            return defer.succeed({"ApiVersion": "1.41"})
        if path.endswith("/containers/json"):
            return defer.succeed([{"Id": cid} for cid in self.containers])
        cid = path.split("/")[-2]
        if cid not in self.containers:
            return defer.fail(APIError(404, "no such container", path))
        return defer.succeed(self.containers[cid])

    def stream_json(self, path: str, params: Any, on_item: Any, **kw: Any) -> FakeStream:
        self.requests.append(path)
        stream = FakeStream(on_item)
        self.streams.append(stream)
        return stream


def inspect(cid: str, port: int) -> dict[str, Any]:
    return {"Id": cid, "Name": f"/{cid}", "State": {"Status": "running"},
            "HostConfig": {"NetworkMode": "host"},
            "Config": {"Labels": {
                "traefik.http.services.s.loadbalancer.server.port": str(port)}}}


def test_docker_provider_follows_events_and_reconnects() -> None:
    clock = task.Clock()
    client = FakeDocker()
    client.containers["a"] = inspect("a", 8001)
    seen: list[list[str]] = []
    provider = DockerProvider(
        clock, DockerSettings(), client=client,  # type: ignore[arg-type]
        on_change=lambda d: seen.append(
            [s.url for s in d.value.http.services["s"].load_balancer.servers]
            if "s" in d.value.http.services else []))
    provider.start()
    assert seen == [["http://127.0.0.1:8001"]]
    assert client.requests[:2] == ["/version", "/v1.41/events"]

    # a burst of events is one resync, after the debounce delay
    client.containers["b"] = inspect("b", 8002)
    stream = client.streams[-1]
    for action in ("create", "init", "start", "attach"):
        stream.on_item({"Type": "container", "Action": action})
    assert len(seen) == 1
    clock.advance(provider.debounce)
    assert seen[-1] == ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
    listed = client.requests.count("/v1.41/containers/json")
    stream.on_item({"Type": "container", "Action": "exec_start"})
    stream.on_item({"Type": "image", "Action": "pull"})
    clock.advance(1)
    assert client.requests.count("/v1.41/containers/json") == listed

    # the stream ends while the API is down: backoff, then a full resync on reconnect
    client.down = True
    del client.containers["a"]
    stream.done.callback(None)
    clock.advance(0.5)
    assert len(seen) == 2
    client.down = False
    clock.advance(1.0)
    assert seen[-1] == ["http://127.0.0.1:8002"]
    assert len(client.streams) == 2
    provider.stop()
    assert client.streams[-1].cancelled


def test_swarm_provider_polls() -> None:
    clock = task.Clock()
    labels = {"traefik.http.services.api.loadbalancer.server.port": "8000"}
    answers: dict[str, Any] = {
        "/version": {"ApiVersion": "1.41"},
        "/v1.41/services": [swarm_service("s1", "api", labels)],
        "/v1.41/networks": NETWORKS,
        "/v1.41/tasks": [swarm_task("t1", "s1", 1, "10.0.2.5/24")],
    }

    class Client:
        def get_json(self, path: str, params: Any = None) -> defer.Deferred[Any]:
            return defer.succeed(answers[path])

    seen: list[int] = []
    provider = SwarmProvider(clock, SwarmSettings(), client=Client(),  # type: ignore[arg-type]
                             on_change=lambda d: seen.append(len(
                                 d.value.http.services["api"].load_balancer.servers)))
    provider.start()
    assert seen == [1]
    answers["/v1.41/tasks"] = [swarm_task("t1", "s1", 1, "10.0.2.5/24"),
                               swarm_task("t2", "s1", 2, "10.0.2.6/24")]
    clock.advance(14)
    assert seen == [1]
    clock.advance(1)
    assert seen == [1, 2]
    provider.stop()


def test_invalid_default_rule_disables_the_provider() -> None:
    provider = DockerProvider(task.Clock(), DockerSettings(default_rule="Host(`{{ .Nope"),
                              on_change=lambda d: None)
    assert "defaultRule" in provider.disabled
    provider.start()  # logs the reason, does nothing
