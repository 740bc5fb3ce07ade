"""Every File (YAML) and File (TOML) example of the seed document decodes into the expected
dynamic configuration, both forms give equal models, and the runtime built from each routes
as Traefik would."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import Decoded, decode
from wsgate.config.sources import flat_to_tree, load_toml, load_yaml, split_flat_key
from wsgate.config.tree import plain

try:
    from tests import seed
except ImportError:  # pytest started without the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests import seed

# section -> routers {name: (rule, service, tls)}, services {name: (server URLs, transport)},
# serversTransports {name: insecureSkipVerify}
EXPECTED = {
    "Basic WebSocket Configuration": (
        {"my-websocket": ("Host(`ws.example.com`)", "my-websocket-service", False)},
        {"my-websocket-service": (("http://my-websocket-server:8000",), "")},
        {},
    ),
    "WebSocket Secure (WSS) Configuration": (
        {"my-websocket-secure": ("Host(`wss.example.com`)", "my-websocket-service", True)},
        {"my-websocket-service": (("http://my-websocket-server:8000",), "")},
        {},
    ),
    "SSL Termination for WebSockets": (
        {"my-wss-termination": ("Host(`wss.example.com`)", "my-ws-service", True)},
        {"my-ws-service": (("http://my-ws-server:8000",), "")},
        {},
    ),
    "End-to-End WebSocket Secure (WSS)": (
        {"my-wss-e2e": ("Host(`wss.example.com`)", "my-wss-service", True)},
        {"my-wss-service": (("https://my-wss-server:8443",), "insecureTransport")},
        {"insecureTransport": True},
    ),
}
#: File examples that are static configuration (covered by the static model's tests).
STATIC = {"EntryPoints Configuration for WebSockets"}

# The Origin example is given only as Docker labels and Kubernetes objects; the same in YAML.
ORIGIN_YAML = """
http:
  middlewares:
    my-headers:
      headers:
        customRequestHeaders:
          Origin: "https://allowed-origin.com"
  routers:
    my-websocket:
      rule: "Host(`ws.example.com`)"
      middlewares:
        - my-headers
      service: my-websocket-service
  services:
    my-websocket-service:
      loadBalancer:
        servers:
          - url: "http://my-websocket-server:8000"
"""


def decode_block(block: seed.CodeBlock) -> Decoded[DynamicConfig]:
    if block.tab == seed.YAML:
        tree = load_yaml(block.code, block.where)
    else:
        tree = load_toml(block.code, block.where)
    return decode(DynamicConfig, tree, strict=True)


def runtime(decoded: Decoded[DynamicConfig]) -> RuntimeConfig:
    try:
        rules = importlib.import_module("wsgate.rules")
        rules.compile_rule  # noqa: B018  (present once the rule engine has landed)
    except (ImportError, AttributeError):
        pytest.skip("the rule engine (wsgate.rules) is not available yet")
    return build_runtime({"file": decoded}, entry_points=["web", "websecure"])


def test_every_file_example_of_the_seed_is_covered():
    blocks = seed.seed_blocks_or_skip()
    file_sections = {b.section for b in blocks if b.tab in (seed.YAML, seed.TOML)}
    assert file_sections, "no File (YAML)/(TOML) example found in the seed"
    assert file_sections <= set(EXPECTED) | STATIC, file_sections - set(EXPECTED) - STATIC
    for section in EXPECTED:
        tabs = seed.seed_by_section(blocks)[section]
        assert seed.YAML in tabs and seed.TOML in tabs, section


@pytest.mark.parametrize("tab", [seed.YAML, seed.TOML])
@pytest.mark.parametrize("section", sorted(EXPECTED))
def test_seed_example_decodes(section, tab):
    decoded = decode_block(seed.seed_block(section, tab))
    assert decoded.warnings == ()
    http = decoded.value.http
    routers, services, transports = EXPECTED[section]

    assert set(http.routers) == set(routers)
    for name, (rule, service, tls) in routers.items():
        router = http.routers[name]
        assert router.rule == rule
        assert router.service == service
        assert (router.tls is not None) == tls
        if tls:
            assert router.tls.options == "default" and router.tls.cert_resolver == ""
        assert router.entry_points == () and router.middlewares == ()
        assert router.priority == 0

    assert set(http.services) == set(services)
    for name, (urls, transport) in services.items():
        lb = http.services[name].load_balancer
        assert lb is not None and http.services[name].kind == "loadBalancer"
        assert tuple(s.url for s in lb.servers) == urls
        assert all(s.effective_weight == 1 for s in lb.servers)
        assert lb.servers_transport == transport
        assert lb.pass_host_header is True and lb.strategy == "wrr"

    assert {n: t.insecure_skip_verify for n, t in http.servers_transports.items()} \
        == transports
    assert dict(http.middlewares) == {}
    tls = decoded.value.tls
    assert tls.certificates == () and dict(tls.options) == {} and dict(tls.stores) == {}


@pytest.mark.parametrize("section", sorted(EXPECTED))
def test_yaml_and_toml_forms_are_equal(section):
    yaml_form = decode_block(seed.seed_block(section, seed.YAML)).value
    toml_form = decode_block(seed.seed_block(section, seed.TOML)).value
    assert yaml_form == toml_form


@pytest.mark.parametrize("tab", [seed.YAML, seed.TOML])
@pytest.mark.parametrize("section", sorted(EXPECTED))
def test_seed_example_runs(section, tab):
    rt = runtime(decode_block(seed.seed_block(section, tab)))
    routers, services, transports = EXPECTED[section]
    for name, (rule, service, tls) in routers.items():
        info = rt.routers[f"{name}@file"]
        assert info.status == "enabled", info.error_messages
        assert info.using == ("web", "websecure")  # no entryPoints: the default ones
        assert info.service == f"{service}@file"
        for ep in ("web", "websecure"):
            [route] = rt.routes_for(ep, tls=tls)
            assert route.router == f"{name}@file" and route.rule == rule
            assert route.priority == len(rule)
            assert route.tls_options == ("default" if tls else None)
            assert rt.routes_for(ep, tls=not tls) == ()
    for name, (_, transport) in services.items():
        info = rt.services[f"{name}@file"]
        assert info.status == "enabled"
        expected = f"{transport}@file" if transport else "default@internal"
        assert info.servers_transport == expected
        assert rt.servers_transports[expected].used_by == (f"{name}@file",)
    for name, insecure in transports.items():
        assert rt.servers_transports[f"{name}@file"].config.insecure_skip_verify is insecure


def test_entry_points_example_is_static_configuration():
    yaml_block = seed.seed_block("EntryPoints Configuration for WebSockets", seed.YAML)
    toml_block = seed.seed_block("EntryPoints Configuration for WebSockets", seed.TOML)
    yaml_data = plain(load_yaml(yaml_block.code, yaml_block.where))
    toml_data = plain(load_toml(toml_block.code, toml_block.where))
    assert yaml_data == toml_data == {
        "entryPoints": {"web": {"address": ":80"}, "websecure": {"address": ":443"}}}
    # given to the file provider by mistake, it is flagged rather than silently ignored
    decoded = decode(DynamicConfig, load_yaml(yaml_block.code, yaml_block.where))
    assert [w.path for w in decoded.warnings] == ["entryPoints"]


def test_origin_headers_example_in_yaml():
    decoded = decode(DynamicConfig, load_yaml(ORIGIN_YAML, "origin.yml"), strict=True)
    middleware = decoded.value.http.middlewares["my-headers"]
    assert middleware.kind == "headers"
    assert dict(middleware.headers.custom_request_headers) == {
        "Origin": "https://allowed-origin.com"}
    assert decoded.value.http.routers["my-websocket"].middlewares == ("my-headers",)

    rt = runtime(decoded)
    assert rt.routers["my-websocket@file"].status == "enabled"
    [route] = rt.routes_for("web", tls=False)
    assert route.middlewares == ("my-headers@file",)
    assert rt.middlewares["my-headers@file"].used_by == ("my-websocket@file",)


def test_origin_headers_labels_decode_to_the_same_middleware():
    block = seed.seed_block("Headers and Origin Checks", seed.DOCKER)
    labels = [item for item in plain(load_yaml(block.code, block.where))["labels"]]
    pairs = []
    for label in labels:
        name, _, value = label.partition("=")
        if name.startswith("traefik.http.middlewares."):
            pairs.append((split_flat_key(name.removeprefix("traefik.")), value,
                          Mark(f"label {name}")))
    assert pairs, labels
    from_labels = decode(DynamicConfig, flat_to_tree(pairs, Mark("labels")), strict=True)
    from_yaml = decode(DynamicConfig, load_yaml(ORIGIN_YAML, "origin.yml"))
    assert from_labels.value.http.middlewares == from_yaml.value.http.middlewares
