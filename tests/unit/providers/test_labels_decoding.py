"""Docker and Swarm labels to the dynamic configuration: the seed's "Docker & Swarm" examples
and every rule of Traefik's label decoding (reference §4)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from wsgate.config.runtime import build_runtime
from wsgate.providers.labels import (
    Container,
    LabelSettings,
    build_configuration,
    container_service_name,
)
from wsgate.providers.templates import compile_constraints, compile_template

try:
    from tests import seed
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests import seed


def host(name: str = "web", labels: dict[str, str] | None = None, **kw: object) -> Container:
    return Container(id=f"id-{name}", name=name, labels=labels or {}, service_name=name,
                     network_mode="host", **kw)  # type: ignore[arg-type]


def bridge(name: str, labels: dict[str, str], ip: str = "10.1.0.2", **kw: object
           ) -> Container:
    return Container(id=f"id-{name}", name=name, labels=labels, service_name=name,
                     networks={"bridge": ip}, **kw)  # type: ignore[arg-type]


def build(*containers: Container, **settings: object):  # type: ignore[no-untyped-def]
    return build_configuration(containers, LabelSettings(**settings))  # type: ignore[arg-type]


def urls(result, service: str) -> list[str]:  # type: ignore[no-untyped-def]
    lb = result.decoded.value.http.services[service].load_balancer
    return [s.url for s in lb.servers]


# =========================================================================== the seed

def seed_labels(section: str) -> dict[str, str]:
    block = seed.seed_block(section, seed.DOCKER)
    return dict(item.split("=", 1) for item in yaml.safe_load(block.code)["labels"])


# section -> router, rule, service, tls, server URL, transport
SEED = {
    "Basic WebSocket Configuration":
        ("my-websocket", "Host(`ws.example.com`)", "my-websocket-service", False,
         "http://127.0.0.1:8000", ""),
    "WebSocket Secure (WSS) Configuration":
        ("my-websocket-secure", "Host(`wss.example.com`)", "my-websocket-service", True,
         "http://127.0.0.1:8000", ""),
    "SSL Termination for WebSockets":
        ("my-wss-termination", "Host(`wss.example.com`)", "my-ws-service", True,
         "http://127.0.0.1:8000", ""),
    "End-to-End WebSocket Secure (WSS)":
        ("my-wss-e2e", "Host(`wss.example.com`)", "my-wss-service", True,
         "https://127.0.0.1:8443", "insecureTransport"),
}


@pytest.mark.parametrize("section", sorted(SEED))
def test_seed_examples(section: str) -> None:
    router_name, rule, service, tls, url, transport = SEED[section]
    result = build(host("ws1", seed_labels(section)))
    assert result.errors == ()
    http = result.decoded.value.http
    assert set(http.routers) == {router_name}
    router = http.routers[router_name]
    assert (router.rule, router.service, router.tls is not None) == (rule, service, tls)
    assert set(http.services) == {service}
    assert urls(result, service) == [url]
    assert http.services[service].load_balancer.servers_transport == transport
    if transport:
        assert http.servers_transports[transport].insecure_skip_verify is True
        # the wsgate extension: https inferred and reported once
        assert any("serversTransport" in message for _, message in result.notices)


def test_seed_examples_build_a_runtime() -> None:
    for section in SEED:
        result = build(host("ws1", seed_labels(section)))
        runtime = build_runtime({"docker": result.decoded}, entry_points=["web", "websecure"])
        router_name = SEED[section][0]
        info = runtime.routers[f"{router_name}@docker"]
        assert info.status == "enabled", info.errors
        assert info.tls is SEED[section][3]


def test_seed_headers_example_adds_a_middleware_to_the_basic_router() -> None:
    labels = {**seed_labels("Basic WebSocket Configuration"),
              **seed_labels("Headers and Origin Checks")}
    result = build(host("ws1", labels))
    http = result.decoded.value.http
    assert http.routers["my-websocket"].middlewares == ("my-headers",)
    headers = http.middlewares["my-headers"].headers
    assert headers is not None
    # map keys keep their case; the path to them does not matter
    assert dict(headers.custom_request_headers) == {"Origin": "https://allowed-origin.com"}
    runtime = build_runtime({"docker": result.decoded}, entry_points=["web"])
    assert runtime.routers["my-websocket@docker"].status == "enabled"


def test_seed_headers_labels_alone_use_the_implicit_service() -> None:
    result = build(host("ws1", seed_labels("Headers and Origin Checks"),
                        ports=(9000,)))
    http = result.decoded.value.http
    assert http.routers["my-websocket"].service == "ws1"
    assert http.routers["my-websocket"].rule == "Host(`ws1`)"
    assert urls(result, "ws1") == ["http://127.0.0.1:9000"]


# =========================================================================== the label syntax

def test_keys_are_case_insensitive_lists_comma_separated_arrays_indexed() -> None:
    result = build(host("c", {
        "traefik.HTTP.Routers.R.Rule": "Host(`a.test`)",
        "traefik.http.routers.r.entrypoints": "web,websecure",
        "traefik.http.routers.r.tls.domains[0].main": "a.test",
        "traefik.http.routers.r.tls.domains[0].sans": "b.test,c.test",
        "traefik.http.routers.r.priority": "42",
        "traefik.http.services.s.loadbalancer.server.port": "80",
        "traefik.http.services.s.LoadBalancer.PassHostHeader": "false",
    }))
    assert result.errors == ()
    http = result.decoded.value.http
    router = http.routers["R"]
    assert router.entry_points == ("web", "websecure")
    assert router.priority == 42
    assert router.tls is not None and router.tls.domains[0].main == "a.test"
    assert router.tls.domains[0].sans == ("b.test", "c.test")
    assert http.services["s"].load_balancer.pass_host_header is False


def test_tls_true_makes_a_tls_router() -> None:
    result = build(host("c", {"traefik.http.routers.r.tls": "true",
                              "traefik.http.services.s.loadbalancer.server.port": "80"}))
    assert result.decoded.value.http.routers["r"].tls is not None


def test_server_weight_scheme_and_url() -> None:
    result = build(
        host("a", {"traefik.http.services.s.loadbalancer.server.port": "81",
                   "traefik.http.services.s.loadbalancer.server.scheme": "h2c",
                   "traefik.http.services.s.loadbalancer.server.weight": "3"}),
        host("b", {"traefik.http.services.t.loadbalancer.server.url": "http://10.9.9.9:7"}))
    assert result.errors == ()
    servers = result.decoded.value.http.services["s"].load_balancer.servers
    assert [(s.url, s.weight) for s in servers] == [("h2c://127.0.0.1:81", 3)]
    assert urls(result, "t") == ["http://10.9.9.9:7"]


def test_url_excludes_port_and_scheme() -> None:
    result = build(host("a", {"traefik.http.services.s.loadbalancer.server.url": "http://x:1",
                               "traefik.http.services.s.loadbalancer.server.port": "80"}))
    assert result.decoded.value.http.services == {}
    assert "excludes" in str(result.errors[0])


def test_plural_servers_are_refused_in_labels() -> None:
    result = build(host("a", {
        "traefik.http.services.s.loadbalancer.servers[0].url": "http://x:1"}))
    assert "singular" in str(result.errors[0])


def test_other_service_kinds_are_refused_in_labels() -> None:
    result = build(host("a", {"traefik.http.services.s.weighted.services[0].name": "x"}))
    assert "cannot be declared with labels" in str(result.errors[0])


def test_bad_label_values_leave_the_container_out() -> None:
    result = build(host("a", {"traefik.http.routers.r.priority": "high",
                              "traefik.http.services.s.loadbalancer.server.port": "80"}),
                   host("b", {"traefik.http.services.t.loadbalancer.server.port": "81"}))
    assert set(result.decoded.value.http.services) == {"t"}
    assert "container a" in str(result.errors[0]) and "priority" in str(result.errors[0])


def test_tcp_only_containers_are_ignored_with_a_warning() -> None:
    result = build(host("a", {"traefik.tcp.routers.r.rule": "HostSNI(`*`)"}))
    assert result.decoded.value.http.routers == {}
    assert any("TCP/UDP" in str(w) for w in result.decoded.warnings)


def test_default_tls_store_labels() -> None:
    result = build(host("a", {
        "traefik.tls.stores.default.defaultgeneratedcert.resolver": "le",
        "traefik.http.services.s.loadbalancer.server.port": "80"}))
    store = result.decoded.value.tls.stores["default"]
    assert store.default_generated_cert is not None
    assert store.default_generated_cert.resolver == "le"


# =========================================================================== enable, constraints

def test_traefik_enable_overrides_exposed_by_default() -> None:
    on = host("on", {"traefik.enable": "true"}, ports=(80,))
    off = host("off", {"traefik.enable": "false"}, ports=(80,))
    plain = host("plain", ports=(80,))
    assert set(build(on, off, plain).decoded.value.http.services) == {"on", "plain"}
    hidden = build(on, off, plain, exposed_by_default=False)
    assert set(hidden.decoded.value.http.services) == {"on"}


def test_constraints_select_containers() -> None:
    a = host("a", {"env": "prod"}, ports=(80,))
    b = host("b", {"env": "dev"}, ports=(80,))
    result = build(a, b, constraints=compile_constraints("Label(`env`, `prod`)"))
    assert set(result.decoded.value.http.services) == {"a"}


def test_unknown_provider_label_is_an_error() -> None:
    result = build(host("a", {"traefik.docker.nework": "x"}, ports=(80,)))
    assert result.decoded.value.http.services == {}
    assert "unknown label traefik.docker.nework" in str(result.errors[0])


def test_stopped_and_unhealthy_containers() -> None:
    stopped = host("stopped", status="exited", ports=(80,))
    unhealthy = host("sick", health="unhealthy", ports=(80,))
    healthy = host("fine", health="healthy", ports=(80,))
    assert set(build(stopped, unhealthy, healthy).decoded.value.http.services) == {"fine"}
    kept = build(stopped, unhealthy, healthy, allow_empty_services=True)
    assert urls(kept, "sick") == []
    assert "stopped" not in kept.decoded.value.http.services
    allowed = build(host("stopped", {"traefik.docker.allownonrunning": "true"},
                         status="exited", ports=(80,)))
    assert urls(allowed, "stopped") == []


# =========================================================================== implicit objects

def test_implicit_service_and_router_named_after_the_container() -> None:
    result = build(host("my_app.1", ports=(8080, 80)))
    http = result.decoded.value.http
    assert set(http.services) == {"my-app-1"}
    assert urls(result, "my-app-1") == ["http://127.0.0.1:80"]  # the lowest exposed port
    assert http.routers["my-app-1"].rule == "Host(`my-app-1`)"
    assert http.routers["my-app-1"].service == "my-app-1"


def test_compose_service_name() -> None:
    c = host("proj-svc-1", {"com.docker.compose.project": "proj",
                            "com.docker.compose.service": "svc"}, ports=(80,))
    assert container_service_name(c) == "svc-proj"
    assert set(build(c).decoded.value.http.routers) == {"svc-proj"}


def test_default_rule_template() -> None:
    settings = {"default_rule": compile_template(
        'Host(`{{ normalize .ContainerName }}.{{ index .Labels "zone" }}.test`)')}
    result = build(host("web_1", {"zone": "eu"}, ports=(80,)), **settings)
    assert result.decoded.value.http.routers["web-1"].rule == "Host(`web-1.eu.test`)"


def test_a_default_rule_that_fails_leaves_the_container_out() -> None:
    result = build(host("web", ports=(80,)),
                   default_rule=compile_template("Host(`{{ .Labels }}`)"))
    assert result.decoded.value.http.routers == {}
    assert "prints a map" in str(result.errors[0])


def test_router_without_service_links_to_the_lone_service() -> None:
    result = build(host("a", {"traefik.http.routers.r.rule": "Host(`a`)",
                              "traefik.http.services.s.loadbalancer.server.port": "80"}))
    assert result.decoded.value.http.routers["r"].service == "s"


def test_router_without_service_and_several_services_is_an_error() -> None:
    result = build(host("a", {"traefik.http.routers.r.rule": "Host(`a`)",
                              "traefik.http.services.s.loadbalancer.server.port": "80",
                              "traefik.http.services.t.loadbalancer.server.port": "81"}))
    assert "cannot be linked automatically" in str(result.errors[0])


def test_several_services_and_no_router_creates_no_router() -> None:
    result = build(host("a", {"traefik.http.services.s.loadbalancer.server.port": "80",
                              "traefik.http.services.t.loadbalancer.server.port": "81"}))
    assert result.decoded.value.http.routers == {}
    assert set(result.decoded.value.http.services) == {"s", "t"}


def test_containers_sharing_a_service_are_merged() -> None:
    labels = {"traefik.http.routers.app.rule": "Host(`app`)",
              "traefik.http.services.app.loadbalancer.server.port": "80"}
    result = build(bridge("a", labels, "10.0.0.2"), bridge("b", labels, "10.0.0.3"),
                   bridge("c", labels, "10.0.0.2"))
    assert result.errors == ()
    assert urls(result, "app") == ["http://10.0.0.2:80", "http://10.0.0.3:80"]


def test_conflicting_definitions_are_dropped() -> None:
    a = bridge("a", {"traefik.http.routers.app.rule": "Host(`a`)",
                     "traefik.http.services.app.loadbalancer.server.port": "80"})
    b = bridge("b", {"traefik.http.routers.app.rule": "Host(`b`)",
                     "traefik.http.services.app.loadbalancer.server.port": "80",
                     "traefik.http.services.app.loadbalancer.passhostheader": "false"})
    result = build(a, b)
    assert result.decoded.value.http.routers == {}
    assert result.decoded.value.http.services == {}
    assert {str(e).split(" is defined")[0].split(": ")[-1] for e in result.errors} == \
        {"router app", "service app"}


# =========================================================================== addresses

def test_network_label_and_provider_network() -> None:
    c = Container(id="x", name="x", labels={"traefik.docker.network": "back"},
                  networks={"front": "10.0.1.2", "back": "10.0.2.2"}, ports=(80,))
    assert urls(build(c), "x") == ["http://10.0.2.2:80"]
    plain = Container(id="y", name="y", labels={},
                      networks={"front": "10.0.1.3", "back": "10.0.2.3"}, ports=(80,))
    assert urls(build(plain), "y") == ["http://10.0.1.3:80"]
    assert urls(build(plain, network="back"), "y") == ["http://10.0.2.3:80"]
    missing = build(plain, network="nope")
    assert urls(missing, "y") == ["http://10.0.1.3:80"]
    assert any("not on network" in m for _, m in missing.notices)


def test_host_networking_is_loopback_and_ipv6_is_bracketed() -> None:
    assert urls(build(host("h", ports=(80,))), "h") == ["http://127.0.0.1:80"]
    six = Container(id="6", name="six", labels={}, networks={"n": "fd00::2"}, ports=(80,))
    assert urls(build(six), "six") == ["http://[fd00::2]:80"]


def test_container_network_mode_uses_the_other_container() -> None:
    main = bridge("main", {"traefik.enable": "false"}, "10.3.0.9")
    side = Container(id="side", name="side", labels={}, network_mode="container:id-main",
                     ports=(80,))
    assert urls(build(main, side), "side") == ["http://10.3.0.9:80"]


def test_missing_port_is_an_error() -> None:
    result = build(host("noport"))
    assert result.decoded.value.http.services == {}
    assert "port is missing" in str(result.errors[0])


def test_invalid_port_label() -> None:
    result = build(host("c", {"traefik.http.services.s.loadbalancer.server.port": "http"}))
    assert "invalid port" in str(result.errors[0])


def test_use_bind_port_ip() -> None:
    c = Container(id="b", name="b", labels={}, networks={"bridge": "10.0.0.5"}, ports=(80,),
                  port_bindings={80: (("192.0.2.10", "18080"),)})
    assert urls(build(c, use_bind_port_ip=True), "b") == ["http://192.0.2.10:18080"]
    any_ip = Container(id="c", name="c", labels={}, networks={"bridge": "10.0.0.6"},
                       ports=(80,), port_bindings={80: (("0.0.0.0", "18081"),)})
    assert urls(build(any_ip, use_bind_port_ip=True), "c") == ["http://10.0.0.6:80"]


# =========================================================================== wsgate extensions

@pytest.mark.parametrize(("labels", "scheme"), [
    ({"traefik.http.services.s.loadbalancer.server.port": "443"}, "https"),
    ({"traefik.http.services.s.loadbalancer.server.port": "8443"}, "https"),
    ({"traefik.http.services.s.loadbalancer.server.port": "8443",
      "traefik.http.services.s.loadbalancer.server.scheme": "http"}, "http"),
    ({"traefik.http.services.s.loadbalancer.server.port": "9000",
      "traefik.http.services.s.loadbalancer.serversTransport": "t@file"}, "https"),
    ({"traefik.http.services.s.loadbalancer.server.port": "9000"}, "http"),
])
def test_https_inference(labels: dict[str, str], scheme: str) -> None:
    result = build(host("c", labels))
    assert urls(result, "s")[0].startswith(f"{scheme}://")
    assert bool(result.notices) is (scheme == "https" and "scheme" not in str(labels))


def test_servers_transports_from_labels() -> None:
    result = build(host("c", {
        "traefik.http.serversTransports.tr.insecureSkipVerify": "true",
        "traefik.http.serversTransports.tr.serverName": "backend.internal",
        "traefik.http.services.s.loadbalancer.server.port": "80"}))
    transport = result.decoded.value.http.servers_transports["tr"]
    assert transport.insecure_skip_verify and transport.server_name == "backend.internal"


# =========================================================================== swarm labels

def test_swarm_labels() -> None:
    labels = {"traefik.swarm.network": "net2",
              "traefik.http.services.s.loadbalancer.server.port": "80"}
    c = Container(id="t1", name="svc.1", labels=labels, service_name="svc",
                  networks={"net1": "10.0.1.5", "net2": "10.0.2.5"})
    result = build(c, provider="swarm")
    assert urls(result, "s") == ["http://10.0.2.5:80"]
    both = Container(id="t2", name="svc.2", labels={**labels, "traefik.docker.network": "x"},
                     service_name="svc", networks={"net1": "10.0.1.6"})
    assert "both traefik.docker" in str(build(both, provider="swarm").errors[0])
    old = Container(id="t3", name="old.1", service_name="old", networks={"n": "10.0.9.9"},
                    labels={"traefik.docker.network": "n",
                            "traefik.http.services.o.loadbalancer.server.port": "80"})
    deprecated = build(old, provider="swarm")
    assert urls(deprecated, "o") == ["http://10.0.9.9:80"]
    assert any("deprecated" in str(w) for w in deprecated.decoded.warnings)


def test_swarm_needs_the_port_label() -> None:
    c = Container(id="t", name="svc.1", labels={}, service_name="svc",
                  networks={"n": "10.0.0.8"})
    result = build(c, provider="swarm")
    assert "port is missing" in str(result.errors[0])
    assert container_service_name(c) == "svc"
