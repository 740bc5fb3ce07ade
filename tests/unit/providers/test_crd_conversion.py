"""Kubernetes objects to the dynamic configuration: the seed's Kubernetes examples and the
rules of reference §5 (naming, services, endpoints, schemes, TLS, other CRDs)."""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from wsgate.config.runtime import build_runtime
from wsgate.providers.crd import CRDSettings, convert, router_name

try:
    from tests import seed
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests import seed

PLURALS = {"IngressRoute": "ingressroutes", "Middleware": "middlewares",
           "ServersTransport": "serverstransports", "TLSOption": "tlsoptions",
           "TLSStore": "tlsstores", "TraefikService": "traefikservices",
           "Service": "services", "EndpointSlice": "endpointslices", "Secret": "secrets"}


def meta(name: str, ns: str = "default", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, **extra}


def svc(name: str, port: int = 80, port_name: str = "web", ns: str = "default",
        **spec: Any) -> dict[str, Any]:
    return {"kind": "Service", "metadata": meta(name, ns),
            "spec": {"ports": [{"name": port_name, "port": port}], **spec}}


def eps(service: str, target: int, addresses: list[str] | None = None, port_name: str = "web",
        ns: str = "default", suffix: str = "a", **conditions: Any) -> dict[str, Any]:
    return {"kind": "EndpointSlice",
            "metadata": meta(f"{service}-{suffix}", ns,
                             labels={"kubernetes.io/service-name": service}),
            "ports": [{"name": port_name, "port": target}],
            "endpoints": [{"addresses": addresses or ["10.0.0.1"], "conditions": conditions}]}


def route(name: str, match: str, services: list[dict[str, Any]], ns: str = "default",
          **spec: Any) -> dict[str, Any]:
    return {"kind": "IngressRoute", "metadata": meta(name, ns),
            "spec": {"routes": [{"match": match, "kind": "Rule", "services": services}],
                     **spec}}


def snapshot(*objects: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        out.setdefault(PLURALS[obj["kind"]], []).append(obj)
    return out


def run(*objects: dict[str, Any], **settings: Any):  # type: ignore[no-untyped-def]
    return convert(snapshot(*objects), CRDSettings(**settings))


# =========================================================================== the seed

def seed_objects(section: str) -> list[dict[str, Any]]:
    objects = [o for o in yaml.safe_load_all(seed.seed_block(section, seed.KUBERNETES).code)
               if o]
    extra = []
    for obj in objects:
        obj["metadata"].setdefault("namespace", "default")
        if obj["kind"] == "IngressRoute":
            for r in obj["spec"]["routes"]:
                for ref in r["services"]:
                    extra += [svc(ref["name"], ref["port"]), eps(ref["name"], ref["port"])]
    return objects + extra


SEED = {
    "Basic WebSocket Configuration":
        ("my-websocket-route", "Host(`ws.example.com`)", ("web",), False, "http", ""),
    "WebSocket Secure (WSS) Configuration":
        ("my-websocket-secure-route", "Host(`wss.example.com`)", ("websecure",), True, "http",
         ""),
    "SSL Termination for WebSockets":
        ("my-wss-termination-route", "Host(`wss.example.com`)", ("websecure",), True, "http",
         ""),
    "End-to-End WebSocket Secure (WSS)":
        ("my-wss-e2e-route", "Host(`wss.example.com`)", ("websecure",), True, "https",
         "default-insecure-transport"),
}


@pytest.mark.parametrize("section", sorted(SEED))
def test_seed_examples(section: str) -> None:
    name, match, entry_points, tls, scheme, transport = SEED[section]
    result = convert(snapshot(*seed_objects(section)))
    assert result.errors == ()
    http = result.decoded.value.http
    rname = router_name("default", name, match)
    assert set(http.routers) == {rname}
    router = http.routers[rname]
    assert (router.rule, router.entry_points, router.tls is not None) == \
        (match, entry_points, tls)
    assert router.service == rname
    lb = http.services[rname].load_balancer
    assert lb is not None and lb.servers[0].url.startswith(f"{scheme}://")
    assert lb.servers_transport == transport
    if transport:
        assert http.servers_transports[transport].insecure_skip_verify is True
        assert any("8443" in message for _, message in result.notices)
    runtime = build_runtime({"kubernetescrd": result.decoded},
                            entry_points=["web", "websecure"])
    assert runtime.routers[f"{rname}@kubernetescrd"].status == "enabled"


def test_seed_headers_example() -> None:
    result = convert(snapshot(*seed_objects("Headers and Origin Checks")))
    http = result.decoded.value.http
    (router,) = http.routers.values()
    assert router.middlewares == ("default-my-headers@kubernetescrd",)
    assert router.entry_points == ()
    headers = http.middlewares["default-my-headers"].headers
    assert headers is not None
    assert dict(headers.custom_request_headers) == {"Origin": "https://allowed-origin.com"}
    runtime = build_runtime({"kubernetescrd": result.decoded}, entry_points=["web"])
    assert all(r.status == "enabled" for r in runtime.routers.values())


# =========================================================================== naming

def test_router_name_is_namespace_name_and_hash_of_the_match() -> None:
    match = "Host(`a.test`) && PathPrefix(`/ws`)"
    digest = hashlib.sha256(match.encode()).hexdigest()[:10]
    assert router_name("team-a", "chat", match) == f"team-a-chat-{digest}"
    assert router_name("ns", "my.route", "x") == \
        f"ns-my-route-{hashlib.sha256(b'x').hexdigest()[:10]}"


def test_several_services_make_a_weighted_service() -> None:
    result = run(route("r", "Host(`a`)", [{"name": "one", "port": 80, "weight": 3},
                                          {"name": "two", "port": "web"}]),
                 svc("one"), eps("one", 8080), svc("two"), eps("two", 9090, ["10.0.0.2"]))
    http = result.decoded.value.http
    rname = router_name("default", "r", "Host(`a`)")
    weighted = http.services[rname].weighted
    assert weighted is not None
    assert [(s.name, s.weight) for s in weighted.services] == \
        [("default-one-80", 3), ("default-two-web", 1)]
    assert [s.url for s in http.services["default-two-web"].load_balancer.servers] == \
        ["http://10.0.0.2:9090"]


def test_traefik_service_reference_and_weighted_traefik_service() -> None:
    ts = {"kind": "TraefikService", "metadata": meta("canary"),
          "spec": {"weighted": {"services": [{"name": "one", "port": 80, "weight": 9},
                                             {"name": "two", "port": 80}],
                                "sticky": {"cookie": {"name": "c"}}}}}
    result = run(route("r", "Host(`a`)", [{"name": "canary", "kind": "TraefikService"}]), ts,
                 svc("one"), eps("one", 1), svc("two"), eps("two", 2))
    http = result.decoded.value.http
    rname = router_name("default", "r", "Host(`a`)")
    assert http.routers[rname].service == "default-canary"
    weighted = http.services["default-canary"].weighted
    assert weighted is not None and weighted.sticky is not None
    assert [s.weight for s in weighted.services] == [9, 1]


def test_middleware_references_and_cross_namespace() -> None:
    mw = {"kind": "Middleware", "metadata": meta("strip", "other"),
          "spec": {"stripPrefix": {"prefixes": ["/ws"]}}}
    r = route("r", "Host(`a`)", [{"name": "s", "port": 80}])
    r["spec"]["routes"][0]["middlewares"] = [{"name": "strip", "namespace": "other"},
                                            {"name": "auth@file"}]
    denied = run(r, mw, svc("s"), eps("s", 1))
    assert denied.decoded.value.http.routers == {}
    assert "cross-namespace" in str(denied.errors[0])
    allowed = run(r, mw, svc("s"), eps("s", 1), allow_cross_namespace=True)
    (router,) = allowed.decoded.value.http.routers.values()
    assert router.middlewares == ("other-strip@kubernetescrd", "auth@file")
    assert "other-strip" in allowed.decoded.value.http.middlewares


def test_cross_namespace_service_is_refused_by_default() -> None:
    result = run(route("r", "Host(`a`)", [{"name": "s", "port": 80, "namespace": "b"}]),
                 svc("s", ns="b"), eps("s", 1, ns="b"))
    assert "allowCrossNamespace" in str(result.errors[0])


# =========================================================================== endpoints

def test_endpoint_rules() -> None:
    slice_a = eps("s", 8080, ["10.0.0.1", "10.0.0.2"])
    slice_b = eps("s", 8080, ["10.0.0.2", "10.0.0.3"], suffix="b", serving=False)
    slice_c = eps("s", 8080, ["10.0.0.4"], suffix="c", terminating=True, serving=True)
    other_port = eps("s", 7070, ["10.0.0.5"], port_name="metrics", suffix="d")
    result = run(route("r", "Host(`a`)", [{"name": "s", "port": 80}]), svc("s"),
                 slice_a, slice_b, slice_c, other_port)
    (service,) = result.decoded.value.http.services.values()
    assert [s.url for s in service.load_balancer.servers] == \
        ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
    assert dict(result.fenced) == {"default-s-80": ("http://10.0.0.4:8080",)}


def test_no_endpoints_is_an_error_unless_allow_empty_services() -> None:
    objects = (route("r", "Host(`a`)", [{"name": "s", "port": 80}]), svc("s"))
    assert "no servers found" in str(run(*objects).errors[0])
    empty = run(*objects, allow_empty_services=True)
    (service,) = empty.decoded.value.http.services.values()
    assert service.load_balancer.servers == ()


def test_missing_service_and_port() -> None:
    assert "not found" in str(run(route("r", "Host(`a`)", [{"name": "s", "port": 80}]))
                              .errors[0])
    bad_port = run(route("r", "Host(`a`)", [{"name": "s", "port": 81}]), svc("s"),
                   eps("s", 1))
    assert "service port not found" in str(bad_port.errors[0])


def test_external_name_and_native_lb() -> None:
    ext = {"kind": "Service", "metadata": meta("ext"),
           "spec": {"type": "ExternalName", "externalName": "api.example.com",
                    "ports": [{"name": "https", "port": 443}]}}
    r = route("r", "Host(`a`)", [{"name": "ext", "port": 443}])
    assert "externalName services not allowed" in str(run(r, ext).errors[0])
    ok = run(r, ext, allow_external_name_services=True)
    (service,) = ok.decoded.value.http.services.values()
    assert service.load_balancer.servers[0].url == "https://api.example.com:443"
    native = run(route("n", "Host(`n`)", [{"name": "s", "port": 80, "nativeLB": True}]),
                 svc("s", clusterIP="10.96.0.10"))
    (service,) = native.decoded.value.http.services.values()
    assert service.load_balancer.servers[0].url == "http://10.96.0.10:80"


@pytest.mark.parametrize(("port", "port_name", "extra", "scheme"), [
    (443, "web", {}, "https"),
    (8000, "https-ws", {}, "https"),
    (8000, "web", {"scheme": "h2c"}, "h2c"),
    (443, "web", {"scheme": "http"}, "http"),
    (8443, "web", {}, "https"),
    (9000, "web", {"serversTransport": "tr"}, "https"),
    (8000, "web", {}, "http"),
])
def test_scheme(port: int, port_name: str, extra: dict[str, Any], scheme: str) -> None:
    transport = {"kind": "ServersTransport", "metadata": meta("tr"), "spec": {}}
    result = run(route("r", "Host(`a`)", [{"name": "s", "port": port, **extra}]),
                 svc("s", port, port_name), eps("s", 1234, port_name=port_name), transport)
    (service,) = result.decoded.value.http.services.values()
    assert service.load_balancer.servers[0].url.startswith(f"{scheme}://")


def test_load_balancer_options() -> None:
    spec = {"name": "s", "port": 80, "strategy": "p2c", "passHostHeader": False,
            "sticky": {"cookie": {"name": "aff", "secure": True}},
            "responseForwarding": {"flushInterval": "1s"}}
    result = run(route("r", "Host(`a`)", [spec]), svc("s"), eps("s", 1))
    (service,) = result.decoded.value.http.services.values()
    lb = service.load_balancer
    assert (lb.strategy, lb.pass_host_header, lb.response_forwarding.flush_interval) == \
        ("p2c", False, 1.0)
    assert lb.sticky is not None and lb.sticky.cookie is not None
    assert lb.sticky.cookie.name == "aff"


# =========================================================================== TLS and other CRDs

def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_tls_secret_options_and_stores() -> None:
    secret = {"kind": "Secret", "metadata": meta("cert"),
              "data": {"tls.crt": b64("CERT"), "tls.key": b64("KEY"), "ca.crt": b64("CA")}}
    option = {"kind": "TLSOption", "metadata": meta("strict"),
              "spec": {"minVersion": "VersionTLS13", "sniStrict": True,
                       "clientAuth": {"secretNames": ["cert"],
                                      "clientAuthType": "RequireAndVerifyClientCert"}}}
    default_option = {"kind": "TLSOption", "metadata": meta("default"),
                      "spec": {"minVersion": "VersionTLS12"}}
    store = {"kind": "TLSStore", "metadata": meta("default"),
             "spec": {"defaultCertificate": {"secretName": "cert"}}}
    r = route("r", "Host(`a`)", [{"name": "s", "port": 80}],
              tls={"secretName": "cert", "options": {"name": "strict"}})
    result = run(r, secret, option, default_option, store, svc("s"), eps("s", 1))
    assert result.errors == ()
    cfg = result.decoded.value
    (router,) = cfg.http.routers.values()
    assert router.tls is not None and router.tls.options == "default-strict"
    assert cfg.tls.options["default-strict"].min_version == "VersionTLS13"
    assert cfg.tls.options["default-strict"].client_auth.ca_files == ("CA",)
    assert "default" in cfg.tls.options
    assert cfg.tls.stores["default"].default_certificate is not None
    assert [(c.cert_file, c.key_file) for c in cfg.tls.certificates] == [("CERT", "KEY")]


def test_empty_tls_makes_a_tls_router() -> None:
    result = run(route("r", "Host(`a`)", [{"name": "s", "port": 80}], tls={}),
                 svc("s"), eps("s", 1))
    (router,) = result.decoded.value.http.routers.values()
    assert router.tls is not None and router.tls.options == "default"


def test_servers_transport_crd() -> None:
    ca = {"kind": "Secret", "metadata": meta("ca"), "data": {"ca.crt": b64("CA")}}
    transport = {"kind": "ServersTransport", "metadata": meta("tr"),
                 "spec": {"serverName": "backend", "insecureSkipVerify": False,
                          "rootCAs": [{"secret": "ca"}], "maxIdleConnsPerHost": 5,
                          "forwardingTimeouts": {"dialTimeout": "5s"}}}
    result = run(transport, ca)
    st = result.decoded.value.http.servers_transports["default-tr"]
    assert (st.server_name, st.root_cas, st.max_idle_conns_per_host) == \
        ("backend", ("CA",), 5)
    assert st.forwarding_timeouts.dial_timeout == 5.0


def test_middleware_secrets_and_chain() -> None:
    basic = {"kind": "Secret", "metadata": meta("users"), "type": "kubernetes.io/basic-auth",
             "data": {"username": b64("ann"), "password": b64("pw")}}
    htpasswd = {"kind": "Secret", "metadata": meta("list"),
                "data": {"users": b64("bob:$apr1$x$y\n\neve:{SHA}z\n")}}
    auth = {"kind": "Middleware", "metadata": meta("auth"),
            "spec": {"basicAuth": {"secret": "users", "realm": "r"}}}
    auth2 = {"kind": "Middleware", "metadata": meta("auth2"),
             "spec": {"basicAuth": {"secret": "list"}}}
    chain = {"kind": "Middleware", "metadata": meta("both"),
             "spec": {"chain": {"middlewares": [{"name": "auth"}, {"name": "auth2"}]}}}
    result = run(basic, htpasswd, auth, auth2, chain)
    mws = result.decoded.value.http.middlewares
    users = mws["default-auth"].basic_auth.users  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
    assert users == (f"ann:{{SHA}}{digest}",)
    assert mws["default-auth2"].basic_auth.users == ("bob:$apr1$x$y", "eve:{SHA}z")  # type: ignore[union-attr]
    assert mws["default-both"].chain.middlewares == ("default-auth", "default-auth2")  # type: ignore[union-attr]
    missing = run({"kind": "Middleware", "metadata": meta("m"),
                   "spec": {"basicAuth": {"secret": "nope"}}})
    assert "not found" in str(missing.errors[0])


def test_ingress_class() -> None:
    objects = (svc("s"), eps("s", 1))
    other = route("r", "Host(`a`)", [{"name": "s", "port": 80}], ingressClassName="nginx")
    ours = route("q", "Host(`b`)", [{"name": "s", "port": 80}], ingressClassName="traefik")
    plain = route("p", "Host(`c`)", [{"name": "s", "port": 80}])
    hosts = {r.rule for r in run(other, ours, plain, *objects)
             .decoded.value.http.routers.values()}
    assert hosts == {"Host(`b`)", "Host(`c`)"}
    only = run(other, ours, plain, *objects, ingress_class="nginx")
    assert {r.rule for r in only.decoded.value.http.routers.values()} == {"Host(`a`)"}


def test_a_broken_route_leaves_the_others() -> None:
    good = route("good", "Host(`a`)", [{"name": "s", "port": 80}])
    bad = route("bad", "Host(`b`)", [{"name": "missing", "port": 80}])
    result = run(good, bad, svc("s"), eps("s", 1))
    assert [r.rule for r in result.decoded.value.http.routers.values()] == ["Host(`a`)"]
    assert "IngressRoute default/bad" in str(result.errors[0])
