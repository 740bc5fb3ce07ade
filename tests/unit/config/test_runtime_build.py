"""Building the runtime configuration: qualification, merging, reference checks that disable
only the object concerned, priorities, entryPoint defaults and entryPoint-level settings."""

from __future__ import annotations

import dataclasses
import importlib
import textwrap

import pytest

from wsgate.config.dynamic import (
    DynamicConfig,
    HTTPConfig,
    Router,
    RouterTLS,
    ServersTransport,
)
from wsgate.config.runtime import (
    DEFAULT_SERVERS_TRANSPORT,
    MAX_USER_PRIORITY,
    EntryPointSpec,
    RuntimeConfig,
    build_runtime,
    default_entry_point_names,
    provider_of,
    qualify,
)
from wsgate.config.schema import decode, frozen_map
from wsgate.config.sources import load_toml, load_yaml


class FakeRules:
    """A stand-in rule engine: counts compilations, rejects rules with unbalanced parens."""

    def __init__(self) -> None:
        self.compiled: list[tuple[str, str]] = []

    def compile(self, rule: str, syntax: str) -> object:
        self.compiled.append((rule, syntax))
        if rule.count("(") != rule.count(")") or "(" not in rule:
            raise ValueError(f"{rule}: unbalanced at position {len(rule)}")
        return ("compiled", rule, syntax)

    @staticmethod
    def priority(rule: str) -> int:
        return len(rule.encode())


def dyn(text: str, source: str = "dyn.yml"):
    text = textwrap.dedent(text)
    tree = load_toml(text, source) if source.endswith(".toml") else load_yaml(text, source)
    return decode(DynamicConfig, tree)


def build(providers, *, entry_points=("web", "websecure"), rules: FakeRules | None = None,
          **kwargs) -> RuntimeConfig:
    rules = rules or FakeRules()
    return build_runtime(providers, entry_points=entry_points, compile_rule=rules.compile,
                         default_priority=rules.priority, **kwargs)


BASIC = """
http:
  routers:
    my-websocket:
      rule: "Host(`ws.example.com`)"
      service: my-websocket-service
  services:
    my-websocket-service:
      loadBalancer:
        servers:
          - url: "http://my-websocket-server:8000"
"""


# =========================================================================== names

def test_qualify():
    assert qualify("svc", "file") == "svc@file"
    assert qualify("svc@docker", "file") == "svc@docker"
    assert qualify("api@internal", "kubernetescrd") == "api@internal"
    assert provider_of("svc@docker") == "docker" and provider_of("svc") == ""


def test_every_object_is_qualified_with_its_provider():
    rt = build({"file": dyn(BASIC)})
    assert list(rt.routers) == ["my-websocket@file"]
    assert "my-websocket-service@file" in rt.services
    router = rt.routers["my-websocket@file"]
    assert router.provider == "file" and router.status == "enabled" and router.errors == ()
    assert router.service == "my-websocket-service@file"
    assert rt.services["my-websocket-service@file"].used_by == ("my-websocket@file",)


def test_bare_reference_resolves_in_the_referencing_provider():
    docker = dyn("""
        http:
          routers:
            app: {rule: "Host(`a`)", service: my-websocket-service}
    """, "docker.yml")
    rt = build({"file": dyn(BASIC), "docker": docker})
    app = rt.routers["app@docker"]
    assert app.status == "disabled"
    assert app.error_messages == ('the service "my-websocket-service@docker" does not exist',)
    assert rt.routers["my-websocket@file"].status == "enabled"


def test_qualified_reference_crosses_providers():
    docker = dyn("""
        http:
          routers:
            app:
              rule: "Host(`a`)"
              service: my-websocket-service@file
              middlewares: [auth@file]
    """, "docker.yml")
    file = dyn(BASIC + """
  middlewares:
    auth: {basicAuth: {users: ["u:x"]}}
""")
    rt = build({"file": file, "docker": docker})
    app = rt.routers["app@docker"]
    assert app.status == "enabled", app.error_messages
    assert app.service == "my-websocket-service@file"
    assert app.middlewares == ("auth@file",)
    assert rt.middlewares["auth@file"].used_by == ("app@docker",)
    assert set(rt.services["my-websocket-service@file"].used_by) == {
        "app@docker", "my-websocket@file"}


def test_same_name_in_two_providers_gives_two_objects():
    rt = build({"file": dyn(BASIC), "docker": dyn(BASIC)})
    assert set(rt.routers) == {"my-websocket@file", "my-websocket@docker"}
    assert rt.routers["my-websocket@docker"].service == "my-websocket-service@docker"


def test_definition_name_with_at_is_ignored_with_a_diagnostic():
    # decoding rejects such names; a provider that builds models itself gets a diagnostic
    cfg = DynamicConfig(http=HTTPConfig(routers=frozen_map({
        "bad@x": Router(rule="Host(`a`)", service="s"),
        "good": Router(rule="Host(`b`)", service="noop@internal")})))
    rt = build({"docker": cfg})
    assert list(rt.routers) == ["good@docker"]
    [diag] = rt.diagnostics
    assert diag.path == "http.routers.bad@x" and "cannot contain '@'" in diag.message


def test_invalid_provider_name_is_a_programming_error():
    with pytest.raises(ValueError):
        build({"fi@le": DynamicConfig()})
    with pytest.raises(TypeError):
        build({"file": {"http": {}}})


# =========================================================================== references

BROKEN = """
http:
  routers:
    good:
      rule: "Host(`good.example.com`)"
      service: svc
    no-service:
      rule: "Host(`a.example.com`)"
      service: missing
    no-middleware:
      rule: "Host(`b.example.com`)"
      service: svc
      middlewares: [headers, ghost]
    no-tls-options:
      rule: "Host(`c.example.com`)"
      service: svc
      tls:
        options: strict
    bad-rule:
      rule: "Host(`d.example.com`"
      service: svc
  services:
    svc:
      loadBalancer:
        servers: [{url: "http://10.0.0.1:8000"}]
  middlewares:
    headers:
      headers:
        customRequestHeaders: {Origin: "https://allowed-origin.com"}
"""


def test_missing_references_disable_only_the_router_concerned():
    rt = build({"file": dyn(BROKEN)})
    status = {name: r.status for name, r in rt.routers.items()}
    assert status == {"good@file": "enabled", "no-service@file": "disabled",
                      "no-middleware@file": "disabled", "no-tls-options@file": "disabled",
                      "bad-rule@file": "disabled"}
    assert rt.services["svc@file"].status == "enabled"
    assert rt.middlewares["headers@file"].status == "enabled"
    assert [r.router for r in rt.routes["web"]] == ["good@file"]
    assert rt.routes["websecure"] == (
        dataclasses.replace(rt.routes["web"][0], entry_point="websecure"),)


def test_reference_errors_carry_file_key_path_and_line():
    rt = build({"file": dyn(BROKEN)})
    errors = {name: [str(e) for e in r.errors] for name, r in rt.routers.items()}
    assert errors["no-service@file"] == [
        'dyn.yml:9:7: http.routers.no-service.service: the service "missing@file" does not '
        'exist']
    assert errors["no-middleware@file"] == [
        'dyn.yml:13:30: http.routers.no-middleware.middlewares[1]: middleware "ghost@file" '
        'does not exist']
    assert errors["no-tls-options@file"] == [
        "dyn.yml:18:9: http.routers.no-tls-options.tls.options: unknown TLS options: "
        "strict@file"]
    [rule_error] = errors["bad-rule@file"]
    assert rule_error.startswith("dyn.yml:20:7: http.routers.bad-rule.rule: invalid rule: ")


def test_reference_errors_are_located_in_toml_too():
    rt = build({"file": dyn("""
        [http.routers.r]
          rule = "Host(`a`)"
          service = "missing"
    """, "dyn.toml")})
    [error] = rt.routers["r@file"].errors
    assert str(error) == ('dyn.toml:4:3: http.routers.r.service: the service "missing@file" '
                          'does not exist')


def test_errors_without_marks_still_name_the_key_path():
    cfg = DynamicConfig(http=HTTPConfig(routers=frozen_map({
        "r": Router(rule="Host(`a`)", service="missing")})))
    [error] = build({"docker": cfg}).routers["r@docker"].errors
    assert str(error) == 'http.routers.r.service: the service "missing@docker" does not exist'


def test_router_without_service():
    rt = build({"file": dyn("http: {routers: {r: {rule: 'Host(`a`)'}}}")})
    assert rt.routers["r@file"].status == "disabled"
    assert rt.routers["r@file"].error_messages == (
        "router has no service and no child routers",)


def test_tls_options_resolve_per_provider_and_default_always_exists():
    rt = build({"file": dyn("""
        http:
          routers:
            a: {rule: "Host(`a`)", service: noop@internal, tls: {}}
            b: {rule: "Host(`b`)", service: noop@internal, tls: {options: modern}}
            c: {rule: "Host(`c`)", service: noop@internal, tls: {options: modern@file}}
            d: {rule: "Host(`d`)", service: noop@internal, tls: {options: default}}
        tls:
          options:
            modern: {minVersion: VersionTLS13}
    """)})
    assert {n: r.status for n, r in rt.routers.items()} == dict.fromkeys(
        ["a@file", "b@file", "c@file", "d@file"], "enabled")
    assert [rt.routers[f"{n}@file"].tls_options for n in "abcd"] == [
        "default", "modern@file", "modern@file", "default"]
    assert set(rt.tls_options) == {"default", "modern@file"}
    assert rt.tls_options["default"].min_version == "VersionTLS12"


def test_default_tls_options_defined_twice_are_dropped():
    options = "tls: {options: {default: {minVersion: VersionTLS13}}}\n"
    router = "http: {routers: {r: {rule: 'Host(`a`)', service: noop@internal, tls: {}}}}\n"
    rt = build({"file": dyn(options + router), "docker": dyn(options)})
    assert "default" not in rt.tls_options
    assert any("several providers" in d.message for d in rt.diagnostics)
    assert rt.routers["r@file"].error_messages == ("unknown TLS options: default",)


def test_default_tls_options_from_one_provider_replace_the_builtin_ones():
    rt = build({"file": dyn("tls: {options: {default: {minVersion: VersionTLS13}}}")})
    assert rt.tls_options["default"].min_version == "VersionTLS13"


def test_tls_stores_and_certificates_are_merged():
    store = "tls: {stores: {default: {}, other: {}}, certificates: [{certFile: c, keyFile: k}]}"
    rt = build({"file": dyn(store)})
    assert set(rt.tls_stores) == {"default", "other@file"}
    assert [(c.provider, c.certificate.cert_file) for c in rt.tls_certificates] == [
        ("file", "c")]


def test_chain_with_missing_middleware_disables_chain_and_its_routers():
    rt = build({"file": dyn("""
        http:
          routers:
            r: {rule: "Host(`a`)", service: noop@internal, middlewares: [chained]}
            s: {rule: "Host(`b`)", service: noop@internal, middlewares: [fine]}
          middlewares:
            chained: {chain: {middlewares: [fine, ghost]}}
            fine: {addPrefix: {prefix: /p}}
    """)})
    chained = rt.middlewares["chained@file"]
    assert chained.status == "disabled"
    assert chained.references == ("fine@file", "ghost@file")
    assert [str(e) for e in chained.errors] == [
        'dyn.yml:7:43: http.middlewares.chained.chain.middlewares[1]: middleware "ghost@file" '
        'does not exist']
    assert rt.routers["r@file"].status == "disabled"
    assert 'middleware "chained@file" is disabled' in rt.routers["r@file"].error_messages[0]
    assert rt.routers["s@file"].status == "enabled"
    assert rt.middlewares["fine@file"].status == "enabled"
    assert set(rt.middlewares["fine@file"].used_by) == {"chained@file", "s@file"}


def test_chain_recursion_is_detected():
    rt = build({"file": dyn("""
        http:
          middlewares:
            a: {chain: {middlewares: [b]}}
            b: {chain: {middlewares: [a]}}
            c: {chain: {middlewares: [a]}}
    """)})
    assert {n: m.status for n, m in rt.middlewares.items()} == dict.fromkeys(
        ["a@file", "b@file", "c@file"], "disabled")
    assert rt.middlewares["a@file"].error_messages == (
        "recursion detected: a@file -> b@file -> a@file",)
    assert rt.middlewares["c@file"].error_messages[0].startswith(
        'middleware "a@file" is disabled (recursion detected')


def test_errors_middleware_needs_its_service():
    rt = build({"file": dyn("""
        http:
          middlewares:
            oops: {errors: {status: ["500-599"], service: pages, query: "/{status}.html"}}
            ok: {errors: {status: ["404"], service: noop@internal}}
    """)})
    assert rt.middlewares["oops@file"].error_messages == (
        'the service "pages@file" does not exist',)
    assert rt.middlewares["oops@file"].service == "pages@file"
    assert rt.middlewares["ok@file"].status == "enabled"


def test_plugin_middleware_is_disabled():
    rt = build({"file": dyn("http: {middlewares: {p: {plugin: {demo: {}}}}}")})
    assert rt.middlewares["p@file"].status == "disabled"
    assert rt.middlewares["p@file"].kind == "plugin"


SERVICES = """
http:
  services:
    lb:
      loadBalancer:
        servers: [{url: "http://10.0.0.1"}]
    w:
      weighted:
        services: [{name: lb, weight: 3}, {name: ghost}]
    m:
      mirroring:
        service: lb
        mirrors: [{name: lb, percent: 10}]
    f:
      failover: {service: lb, fallback: w, errors: {status: ["500-599"]}}
    h:
      highestRandomWeight:
        services: [{name: lb}]
    top:
      weighted:
        services: [{name: f}]
    cyc1:
      weighted: {services: [{name: cyc2}]}
    cyc2:
      failover: {service: cyc1, fallback: lb}
    bad-transport:
      loadBalancer:
        serversTransport: nowhere
        servers: [{url: "http://10.0.0.2"}]
    good-transport:
      loadBalancer:
        serversTransport: insecure
    other-transport:
      loadBalancer:
        serversTransport: remote@docker
    with-middleware:
      middlewares: [ghost-mw]
      loadBalancer: {}
  serversTransports:
    insecure: {insecureSkipVerify: true}
"""


def test_service_references_are_checked_and_propagate():
    docker = dyn("http: {serversTransports: {remote: {}}}", "docker.yml")
    rt = build({"file": dyn(SERVICES), "docker": docker})
    status = {n.removesuffix("@file"): s.status for n, s in rt.services.items()
              if n.endswith("@file")}
    assert status == {
        "lb": "enabled", "w": "disabled", "m": "enabled", "f": "disabled", "h": "enabled",
        "top": "disabled", "cyc1": "disabled", "cyc2": "disabled",
        "bad-transport": "disabled", "good-transport": "enabled",
        "other-transport": "enabled", "with-middleware": "disabled"}
    w = rt.services["w@file"]
    assert [str(e) for e in w.errors] == [
        'dyn.yml:9:44: http.services.w.weighted.services[1].name: the service "ghost@file" '
        'does not exist']
    assert w.references == ("lb@file", "ghost@file")
    assert rt.services["f@file"].error_messages[0].startswith(
        'the service "w@file" is disabled (the service "ghost@file" does not exist')
    assert rt.services["cyc1@file"].error_messages == (
        "recursion detected: cyc1@file -> cyc2@file -> cyc1@file",)
    assert rt.services["bad-transport@file"].error_messages == (
        'serversTransport "nowhere@file" does not exist',)
    assert rt.services["with-middleware@file"].error_messages == (
        'middleware "ghost-mw@file" does not exist',)


def test_servers_transports_resolve_and_record_users():
    docker = dyn("http: {serversTransports: {remote: {}}}", "docker.yml")
    rt = build({"file": dyn(SERVICES), "docker": docker},
               default_servers_transport=ServersTransport(insecure_skip_verify=True))
    assert rt.services["lb@file"].servers_transport == DEFAULT_SERVERS_TRANSPORT
    assert rt.services["good-transport@file"].servers_transport == "insecure@file"
    assert rt.services["other-transport@file"].servers_transport == "remote@docker"
    assert rt.servers_transports["insecure@file"].used_by == ("good-transport@file",)
    default = rt.servers_transports[DEFAULT_SERVERS_TRANSPORT]
    assert default.provider == "internal" and default.config.insecure_skip_verify
    assert "lb@file" in default.used_by
    assert rt.services["w@file"].servers_transport is None


def test_router_on_a_disabled_service_is_disabled():
    rt = build({"file": dyn(SERVICES + """
  routers:
    r: {rule: "Host(`a`)", service: top}
    ok: {rule: "Host(`b`)", service: m}
""")})
    assert rt.routers["r@file"].status == "disabled"
    assert rt.routers["r@file"].error_messages[0].startswith(
        'the service "top@file" is disabled')
    assert rt.routers["ok@file"].status == "enabled"


def test_internal_services():
    rt = build({"file": dyn("""
        http:
          routers:
            api: {rule: "PathPrefix(`/api`)", service: api@internal}
            bare: {rule: "PathPrefix(`/x`)", service: api}
            echo: {rule: "Path(`/echo`)", service: echo@internal}
    """)}, internal_services=("api@internal", "echo@internal", "ping"))
    assert rt.routers["api@file"].status == "enabled"
    assert rt.routers["echo@file"].status == "enabled"
    assert rt.routers["bare@file"].error_messages == ('the service "api@file" does not exist',)
    assert rt.services["api@internal"].kind == "internal"
    assert rt.services["api@internal"].config is None
    assert "ping@internal" in rt.services and "noop@internal" not in rt.services


# =========================================================================== entryPoints

def test_router_without_entry_points_gets_the_defaults():
    rt = build({"file": dyn(BASIC)}, entry_points=("web", "websecure", "traefik"))
    router = rt.routers["my-websocket@file"]
    assert router.entry_points == ("web", "websecure")
    assert router.using == ("web", "websecure")
    assert rt.routes["traefik"] == ()
    assert rt.default_entry_points == ("web", "websecure")


def test_as_default_entry_points_win():
    eps = [EntryPointSpec("web"), EntryPointSpec("websecure", as_default=True),
           EntryPointSpec("traefik")]
    assert default_entry_point_names(eps) == ("websecure",)
    assert default_entry_point_names([EntryPointSpec("b"), EntryPointSpec("a"),
                                      EntryPointSpec("traefik")]) == ("a", "b")
    rt = build({"file": dyn(BASIC)}, entry_points=eps)
    assert rt.routers["my-websocket@file"].using == ("websecure",)


def test_explicit_default_entry_points():
    rt = build({"file": dyn(BASIC)}, default_entry_points=("web",))
    assert rt.routers["my-websocket@file"].using == ("web",)


def test_missing_entry_point_is_a_warning_unless_none_is_left():
    rt = build({"file": dyn("""
        http:
          routers:
            partly: {rule: "Host(`a`)", service: noop@internal, entryPoints: [web, nowhere]}
            nowhere: {rule: "Host(`b`)", service: noop@internal, entryPoints: [nowhere]}
    """)})
    partly = rt.routers["partly@file"]
    assert partly.status == "warning" and partly.using == ("web",)
    assert [str(e) for e in partly.errors] == [
        "dyn.yml:4:76: http.routers.partly.entryPoints[1]: entryPoint \"nowhere\" doesn't "
        "exist"]
    assert partly.errors[0].level == "warning"
    nowhere = rt.routers["nowhere@file"]
    assert nowhere.status == "disabled" and nowhere.using == ()
    assert nowhere.error_messages[-1] == "no valid entryPoint for this router"
    assert [r.router for r in rt.routes["web"]] == ["partly@file"]


def test_entry_point_middlewares_are_prepended():
    eps = [EntryPointSpec("web", middlewares=("redirect", "auth@docker")),
           EntryPointSpec("websecure")]
    docker = dyn("http: {middlewares: {auth: {basicAuth: {users: ['u:x']}}}}", "docker.yml")
    rt = build({"file": dyn(BASIC.replace("service: my-websocket-service\n",
                                          "service: my-websocket-service\n"
                                          "      middlewares: [own]\n") + """
  middlewares:
    redirect: {redirectScheme: {scheme: https}}
    own: {headers: {customRequestHeaders: {X-A: b}}}
"""), "docker": docker}, entry_points=eps)
    web, secure = rt.routes["web"][0], rt.routes["websecure"][0]
    assert web.middlewares == ("redirect@file", "auth@docker", "own@file")
    assert secure.middlewares == ("own@file",)
    assert rt.routers["my-websocket@file"].middlewares == ("own@file",)
    assert "my-websocket@file" in rt.middlewares["redirect@file"].used_by


def test_missing_entry_point_middleware_drops_only_that_entry_point():
    eps = [EntryPointSpec("web", middlewares=("ghost",)), EntryPointSpec("websecure")]
    rt = build({"file": dyn(BASIC)}, entry_points=eps)
    router = rt.routers["my-websocket@file"]
    assert router.status == "warning" and router.using == ("websecure",)
    assert router.error_messages == (
        'middleware "ghost@file" does not exist (from entryPoint web http.middlewares)',)
    assert rt.routes["web"] == ()


def test_entry_point_tls_applies_to_plain_routers_on_that_entry_point():
    eps = [EntryPointSpec("web"),
           EntryPointSpec("websecure", tls=RouterTLS(options="modern", cert_resolver="le"))]
    rt = build({"file": dyn(BASIC + "tls: {options: {modern: {}}}\n")}, entry_points=eps)
    web, secure = rt.routes["web"][0], rt.routes["websecure"][0]
    assert (web.tls, web.tls_options, web.tls_config) == (False, None, None)
    assert secure.tls and secure.tls_options == "modern@file"
    assert secure.tls_config is not None and secure.tls_config.cert_resolver == "le"
    assert rt.routes_for("websecure", tls=True) == (secure,)
    assert rt.routes_for("websecure", tls=False) == ()
    assert rt.routes_for("web", tls=False) == (web,)
    assert rt.routers["my-websocket@file"].tls is False


def test_router_tls_wins_over_entry_point_tls():
    eps = [EntryPointSpec("websecure", tls=RouterTLS(options="ghost"))]
    rt = build({"file": dyn("""
        http:
          routers:
            r: {rule: "Host(`a`)", service: noop@internal, tls: {certResolver: own}}
    """)}, entry_points=eps)
    [route] = rt.routes["websecure"]
    assert route.tls_options == "default" and route.tls_config.cert_resolver == "own"
    assert rt.routers["r@file"].status == "enabled"


def test_missing_entry_point_tls_options_drop_that_entry_point():
    eps = [EntryPointSpec("web"), EntryPointSpec("websecure", tls=RouterTLS(options="ghost"))]
    rt = build({"file": dyn(BASIC)}, entry_points=eps)
    router = rt.routers["my-websocket@file"]
    assert router.status == "warning" and router.using == ("web",)
    assert router.error_messages == (
        "unknown TLS options: ghost@file (from entryPoint websecure http.tls)",)


def test_tls_and_plain_routers_are_recorded():
    rt = build({"file": dyn("""
        http:
          routers:
            ws: {rule: "Host(`ws.example.com`)", service: noop@internal}
            wss: {rule: "Host(`ws.example.com`)", service: noop@internal, tls: {}}
    """)})
    assert [(r.router, r.tls) for r in rt.routes["web"]] == [
        ("ws@file", False), ("wss@file", True)]
    assert [r.router for r in rt.routes_for("web", tls=True)] == ["wss@file"]
    assert [r.router for r in rt.routes_for("web", tls=False)] == ["ws@file"]
    assert rt.routers["wss@file"].tls and not rt.routers["ws@file"].tls


# =========================================================================== rules and priority

def test_rules_are_compiled_once_per_router():
    rules = FakeRules()
    rt = build({"file": dyn(BASIC)}, rules=rules,
               entry_points=("a", "b", "c"))
    assert rules.compiled == [("Host(`ws.example.com`)", "v3")]
    matchers = {id(r.matcher) for ep in ("a", "b", "c") for r in rt.routes[ep]}
    assert len(matchers) == 1


def test_rule_syntax_defaults_to_the_static_one():
    rules = FakeRules()
    rt = build({"file": dyn("""
        http:
          routers:
            plain: {rule: "Host(`a`)", service: noop@internal}
            v2: {rule: "Host(`b`)", service: noop@internal, ruleSyntax: v2}
            dflt: {rule: "Host(`c`)", service: noop@internal, ruleSyntax: default}
    """)}, rules=rules, default_rule_syntax="v2")
    assert {n: r.rule_syntax for n, r in rt.routers.items()} == {
        "plain@file": "v2", "v2@file": "v2", "dflt@file": "v3"}
    with pytest.raises(ValueError):
        build({}, default_rule_syntax="v4")


def test_priority_defaults_to_the_rule_length_and_orders_routes():
    rt = build({"file": dyn("""
        http:
          routers:
            short: {rule: "Host(`a.example.com`)", service: noop@internal}
            long: {rule: "HostRegexp(`[a-z]+\\\\.example\\\\.com`)", service: noop@internal}
            explicit: {rule: "Host(`b`)", service: noop@internal, priority: 1000}
            negative: {rule: "PathPrefix(`/`)", service: noop@internal, priority: -1}
    """)})
    prio = {n: r.priority for n, r in rt.routers.items()}
    assert prio["short@file"] == len("Host(`a.example.com`)")
    assert prio["long@file"] == len("HostRegexp(`[a-z]+\\.example\\.com`)")
    assert prio["explicit@file"] == 1000 and prio["negative@file"] == -1
    assert [r.router for r in rt.routes["web"]] == [
        "explicit@file", "long@file", "short@file", "negative@file"]


def test_equal_priority_ties_follow_provider_precedence():
    rule = "http: {routers: {r: {rule: 'Host(`same`)', service: noop@internal}}}"
    providers = {"file": dyn(rule), "docker": dyn(rule), "kubernetescrd": dyn(rule),
                 "custom": dyn(rule)}
    rt = build(providers)
    assert [r.router for r in rt.routes["web"]] == [
        "r@kubernetescrd", "r@docker", "r@file", "r@custom"]
    rt = build(providers, providers_precedence=("file", "docker"))
    assert [r.router for r in rt.routes["web"]] == [
        "r@file", "r@docker", "r@custom", "r@kubernetescrd"]


def test_priority_above_the_user_maximum_disables_the_router():
    too_high = MAX_USER_PRIORITY + 1
    text = f"http: {{routers: {{r: {{rule: 'Host(`a`)', service: noop@internal, " \
           f"priority: {too_high}}}}}}}"
    rt = build({"file": dyn(text), "internal": dyn(text)})
    assert rt.routers["r@file"].status == "disabled"
    assert "exceeds the max user-defined priority" in rt.routers["r@file"].error_messages[0]
    assert rt.routers["r@internal"].status == "enabled"


# =========================================================================== parentRefs

def test_child_routers_run_inside_their_parent():
    rt = build({"file": dyn("""
        http:
          routers:
            parent: {rule: "Host(`api.example.com`)", middlewares: [auth]}
            v1: {rule: "PathPrefix(`/v1`)", service: noop@internal, parentRefs: [parent]}
            v2: {rule: "PathPrefix(`/v2`)", service: noop@internal, parentRefs: [parent],
                 priority: 500}
            orphan: {rule: "Path(`/o`)", service: noop@internal, parentRefs: [ghost]}
            greedy: {rule: "Host(`g`)", service: noop@internal}
            child-of-greedy: {rule: "Path(`/g`)", service: noop@internal,
                              parentRefs: [greedy]}
            tls-child: {rule: "Path(`/t`)", service: noop@internal, parentRefs: [parent],
                        tls: {}}
          middlewares:
            auth: {basicAuth: {users: ["u:x"]}}
    """)})
    status = {n.removesuffix("@file"): r.status for n, r in rt.routers.items()}
    assert status == {"parent": "enabled", "v1": "enabled", "v2": "enabled",
                      "orphan": "disabled", "greedy": "disabled",
                      "child-of-greedy": "enabled", "tls-child": "disabled"}
    assert rt.routers["parent@file"].child_refs == ("tls-child@file", "v1@file", "v2@file")
    assert rt.routers["greedy@file"].error_messages == (
        "router has both a service and child routers",)
    [parent] = rt.routes_for("web", tls=False)
    assert parent.router == "parent@file" and parent.service is None
    assert [c.router for c in parent.children] == ["v2@file", "v1@file"]
    assert parent.children[0].middlewares == ()
    assert rt.routers["v1@file"].using == ("web", "websecure")


# =========================================================================== immutability

def test_runtime_configuration_is_immutable():
    rt = build({"file": dyn(BASIC)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        rt.routes = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        rt.routers["x"] = rt.routers["my-websocket@file"]  # type: ignore[index]
    with pytest.raises(TypeError):
        rt.routes["web"] = ()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rt.routers["my-websocket@file"].status = "disabled"  # type: ignore[misc]
    assert isinstance(rt.routes["web"], tuple)


def test_each_build_is_a_new_object_and_inputs_are_untouched():
    decoded = dyn(BASIC)
    before = decoded.value
    first = build({"file": decoded})
    second = build({"file": decoded})
    assert first is not second and first == second
    assert decoded.value is before and decoded.value == dyn(BASIC).value


def test_empty_runtime():
    rt = build({})
    assert dict(rt.routers) == {} and rt.routes == {"web": (), "websecure": ()}
    assert set(rt.tls_options) == {"default"}
    assert RuntimeConfig().routes_for("web", tls=False) == ()


def test_decoding_warnings_are_kept():
    rt = build({"file": dyn("http: {routers: {r: {rule: 'Host(`a`)', service: noop@internal, "
                            "extra: 1}}}")})
    assert [d.path for d in rt.diagnostics] == ["http.routers.r.extra"]


# =========================================================================== real rule engine

def _rules_engine():
    try:
        rules = importlib.import_module("wsgate.rules")
    except ImportError:
        pytest.skip("the rule engine (wsgate.rules) is not available yet")
    if not hasattr(rules, "compile_rule"):
        pytest.skip("the rule engine (wsgate.rules) is not available yet")
    return rules


def test_with_the_real_rule_engine():
    rules = _rules_engine()
    rt = build_runtime({"file": dyn(BROKEN)}, entry_points=["web"])
    [route] = rt.routes["web"]
    assert isinstance(route.matcher, rules.CompiledRule)
    assert route.priority == rules.default_priority(route.rule)
    bad = rt.routers["bad-rule@file"]
    assert bad.status == "disabled"
    assert "position" in bad.error_messages[0]
    assert str(bad.errors[0]).startswith("dyn.yml:20:7: http.routers.bad-rule.rule: ")
