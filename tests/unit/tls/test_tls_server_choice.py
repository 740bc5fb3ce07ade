"""Serving TLS without sockets: certificate choice by SNI, tls.options, client certificates.

Each test builds a runtime configuration from a dynamic configuration, the ServerTLS from it,
and runs real handshakes in memory between Python's ssl (the client) and the chosen context.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import globalLogPublisher

from tests.tlspki import PKI, Issued, client_hello, handshake
from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import decode
from wsgate.config.tree import from_plain
from wsgate.tls.clienthello import ClientHello, read_client_hello
from wsgate.tls.material import DEFAULT_CERT_COMMON_NAME, KeyPair, generate_default_key_pair
from wsgate.tls.server import Choice, Refusal, ServerTLS, build_server_tls

EP = "websecure"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def certs(pki: PKI) -> dict[str, Issued]:
    return {
        "a": pki.issue("a", ["a.test"]),
        "wild": pki.issue("wild", ["*.wild.test"]),
        "ip": pki.issue("ip", ["127.0.0.1"]),
        "default": pki.issue("default", ["default.test"]),
        "client": pki.issue("client", ["client one"], client=True),
    }


@pytest.fixture(scope="module")
def generated() -> KeyPair:
    return generate_default_key_pair()


@pytest.fixture
def logged() -> Iterator[list[str]]:
    from twisted.logger import formatEvent

    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def runtime_of(dynamic: dict[str, Any]) -> RuntimeConfig:
    decoded = decode(DynamicConfig, from_plain(dynamic, Mark("test")), strict=True)
    return build_runtime({"file": decoded}, entry_points=[EP, "web"])


def router(rule: str, *, options: str | None = None, eps: tuple[str, ...] = (EP,)
           ) -> dict[str, Any]:
    tls: dict[str, Any] = {} if options is None else {"options": options}
    return {"rule": rule, "service": "svc", "tls": tls, "entryPoints": list(eps)}


def config(routers: dict[str, Any], *, certificates: Sequence[Issued] = (),
           options: dict[str, Any] | None = None, default: Issued | None = None
           ) -> dict[str, Any]:
    tls: dict[str, Any] = {"certificates": [
        {"certFile": str(c.cert_path), "keyFile": str(c.key_path)} for c in certificates]}
    if options:
        tls["options"] = options
    if default is not None:
        tls["stores"] = {"default": {"defaultCertificate": {
            "certFile": default.cert_pem, "keyFile": default.key_pem}}}
    return {"http": {"routers": routers, "services": {"svc": {"loadBalancer": {
        "servers": [{"url": "http://127.0.0.1:1"}]}}}}, "tls": tls}


def serve(dynamic: dict[str, Any], generated: KeyPair,
          previous: ServerTLS | None = None) -> ServerTLS:
    return build_server_tls(runtime_of(dynamic), default_pair=lambda: generated,
                            previous=previous)


def client(pki: PKI | None = None, *, minimum: ssl.TLSVersion | None = None,
           maximum: ssl.TLSVersion | None = None, cert: Issued | None = None,
           alpn: list[str] | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if pki is not None:
        ctx.load_verify_locations(cafile=str(pki.ca_path))
        ctx.verify_mode = ssl.CERT_REQUIRED
    if minimum is not None or maximum is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def connect(server: ServerTLS, ctx: ssl.SSLContext, name: str | None,
            local: str = "127.0.0.2") -> Any:
    """What a connection gets: the choice from its ClientHello, then the handshake."""
    hello = read_client_hello(client_hello(ctx, name))
    assert isinstance(hello, ClientHello)
    choice = server.choose(EP, hello.server_name, local)
    if isinstance(choice, Refusal):
        if choice.context is None:
            return choice
        return choice, handshake(choice.context, ctx, name)
    assert isinstance(choice, Choice)
    return handshake(choice.context, ctx, name)


# -- certificates ---------------------------------------------------------------------------------

def test_sni_chooses_among_three_certificates_and_the_default(
        pki: PKI, certs: dict[str, Issued], generated: KeyPair) -> None:
    dynamic = config({"r": router("Host(`a.test`)")},
                     certificates=[certs["a"], certs["wild"], certs["ip"]],
                     default=certs["default"])
    server = serve(dynamic, generated)
    assert server.serves(EP) and not server.serves("web")
    verified = client(pki)
    assert connect(server, verified, "a.test").server_names == ["a.test"]
    assert connect(server, verified, "x.wild.test").server_names == ["*.wild.test"]
    # No SNI (an IP address): a certificate for the address reached matches.
    ip = client(pki)
    ip.check_hostname = False
    assert connect(server, ip, "127.0.0.1", local="127.0.0.1").server_names == ["127.0.0.1"]
    # An unknown name gets the default store's certificate.
    assert connect(server, client(), "unknown.test").server_names == ["default.test"]
    assert connect(server, client(), "y.x.wild.test").server_names == ["default.test"]


def test_without_a_default_certificate_the_generated_one_is_served(
        certs: dict[str, Issued], generated: KeyPair) -> None:
    server = serve(config({"r": router("Host(`a.test`)")}, certificates=[certs["a"]]),
                   generated)
    shaken = connect(server, client(), "other.test")
    assert shaken.ok and shaken.server_common_name == DEFAULT_CERT_COMMON_NAME


def test_contexts_are_built_once_and_kept_across_an_unchanged_reload(
        certs: dict[str, Issued], generated: KeyPair) -> None:
    dynamic = config({"r": router("Host(`a.test`)")}, certificates=[certs["a"]])
    first = serve(dynamic, generated)
    ctx_a = first.choose(EP, "a.test", "")
    ctx_default = first.choose(EP, "", "")
    assert isinstance(ctx_a, Choice) and isinstance(ctx_default, Choice)
    assert first.choose(EP, "a.test", "").context is ctx_a.context  # type: ignore[union-attr]
    second = serve(dynamic, generated, previous=first)
    assert second.choose(EP, "a.test", "").context is ctx_a.context  # type: ignore[union-attr]
    assert second.choose(EP, "", "").context is ctx_default.context  # type: ignore[union-attr]
    changed = config({"r": router("Host(`a.test`)")}, certificates=[certs["a"]],
                     options={"default": {"minVersion": "VersionTLS13"}})
    third = serve(changed, generated, previous=second)
    assert third.choose(EP, "a.test", "").context is not ctx_a.context  # type: ignore[union-attr]


def test_no_tls_router_no_tls(generated: KeyPair) -> None:
    plain = config({"r": {"rule": "Host(`a.test`)", "service": "svc"}})
    assert not serve(plain, generated).serves(EP)


# -- versions, ciphers, curves, ALPN, tickets -----------------------------------------------------

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls10_and_tls11_are_refused_by_default(
        certs: dict[str, Issued], generated: KeyPair, version: ssl.TLSVersion) -> None:
    server = serve(config({"r": router("Host(`a.test`)")}, certificates=[certs["a"]]),
                   generated)
    old = connect(server, client(minimum=version, maximum=version), "a.test")
    assert not old.ok
    assert connect(server, client(maximum=ssl.TLSVersion.TLSv1_2), "a.test").ok


def test_min_and_max_version(certs: dict[str, Issued], generated: KeyPair) -> None:
    dynamic = config({"old": router("Host(`a.test`)", options="legacy"),
                      "new": router("Host(`b.test`)", options="modern")},
                     certificates=[certs["a"]],
                     options={"legacy": {"minVersion": "VersionTLS10",
                                         "maxVersion": "VersionTLS12"},
                              "modern": {"minVersion": "VersionTLS13"}})
    server = serve(dynamic, generated)
    tls10 = client(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1)
    shaken = connect(server, tls10, "a.test")
    assert shaken.ok, shaken.error
    assert shaken.client.version() == "TLSv1"
    assert connect(server, client(), "a.test").client.version() == "TLSv1.2"
    assert not connect(server, client(maximum=ssl.TLSVersion.TLSv1_2), "b.test").ok
    assert connect(server, client(), "b.test").client.version() == "TLSv1.3"


def test_cipher_suites(certs: dict[str, Issued], generated: KeyPair, logged: list[str]) -> None:
    dynamic = config({"r": router("Host(`a.test`)", options="picky")},
                     certificates=[certs["a"]],
                     options={"picky": {"maxVersion": "VersionTLS12", "cipherSuites": [
                         "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                         "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"]}})
    server = serve(dynamic, generated)
    shaken = connect(server, client(), "a.test")
    assert shaken.client.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert not connect(server, client(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"), "a.test").ok
    assert any("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA not available" in line for line in logged)


def test_curve_preferences(certs: dict[str, Issued], generated: KeyPair) -> None:
    dynamic = config({"r": router("Host(`a.test`)", options="p384")},
                     certificates=[certs["a"]],
                     options={"p384": {"curvePreferences": ["CurveP384"]}})
    shaken = connect(serve(dynamic, generated), client(), "a.test")
    assert shaken.ok
    assert shaken.server.get_group_name() == "secp384r1"


def test_alpn_offers_http11_only(certs: dict[str, Issued], generated: KeyPair) -> None:
    server = serve(config({"r": router("Host(`a.test`)")}, certificates=[certs["a"]]),
                   generated)
    assert connect(server, client(alpn=["h2", "http/1.1"]), "a.test") \
        .client.selected_alpn_protocol() == "http/1.1"
    assert connect(server, client(), "a.test").client.selected_alpn_protocol() is None
    refused = connect(server, client(alpn=["h2"]), "a.test")
    assert not refused.ok and "no application protocol" in refused.error


def test_alpn_protocols_without_http11_negotiate_nothing(
        certs: dict[str, Issued], generated: KeyPair, logged: list[str]) -> None:
    dynamic = config({"r": router("Host(`a.test`)", options="h2only")},
                     certificates=[certs["a"]], options={"h2only": {"alpnProtocols": ["h2"]}})
    shaken = connect(serve(dynamic, generated), client(alpn=["h2", "http/1.1"]), "a.test")
    assert shaken.ok and shaken.client.selected_alpn_protocol() is None
    assert any("alpnProtocols" in line and "h2" in line for line in logged)


@pytest.mark.parametrize(("disabled", "tickets"), [(False, True), (True, False)])
def test_disable_session_tickets(certs: dict[str, Issued], generated: KeyPair,
                                 disabled: bool, tickets: bool) -> None:
    dynamic = config({"r": router("Host(`a.test`)", options="t")}, certificates=[certs["a"]],
                     options={"t": {"maxVersion": "VersionTLS12",
                                    "disableSessionTickets": disabled}})
    shaken = connect(serve(dynamic, generated), client(), "a.test")
    assert shaken.ok and shaken.client.session.has_ticket is tickets


# -- options per host -----------------------------------------------------------------------------

def test_options_follow_the_host_and_conflicts_use_default(
        certs: dict[str, Issued], generated: KeyPair, logged: list[str]) -> None:
    dynamic = config({"strict": router("Host(`a.test`)", options="modern"),
                      "one": router("Host(`shared.test`) && Path(`/1`)", options="modern"),
                      "two": router("Host(`shared.test`) && Path(`/2`)"),
                      "nohost": router("PathPrefix(`/x`)", options="modern")},
                     certificates=[certs["a"]],
                     options={"modern": {"minVersion": "VersionTLS13"}})
    server = serve(dynamic, generated)
    tls12 = client(maximum=ssl.TLSVersion.TLSv1_2)
    assert not connect(server, tls12, "a.test").ok
    assert connect(server, tls12, "shared.test").ok
    assert connect(server, tls12, "other.test").ok
    assert server.options_for_host(EP, "A.test") == "modern@file"
    assert server.options_for_host(EP, "shared.test") == "default"
    assert any("different TLS options for host shared.test" in line and
               "one@file" in line and "two@file" in line for line in logged)
    assert any("router nohost@file" in line and "names no Host" in line for line in logged)


def test_broken_options_refuse_their_handshakes(
        certs: dict[str, Issued], generated: KeyPair, tmp_path: Path, logged: list[str]) -> None:
    dynamic = config({"r": router("Host(`a.test`)", options="mtls"),
                      "ok": router("Host(`b.test`)")},
                     certificates=[certs["a"]],
                     options={"mtls": {"clientAuth": {"caFiles": [str(tmp_path / "none.pem")]}}})
    server = serve(dynamic, generated)
    refusal = server.choose(EP, "a.test", "")
    assert isinstance(refusal, Refusal) and refusal.context is None
    assert "caFiles[0]" in refusal.reason
    assert isinstance(server.choose(EP, "b.test", ""), Choice)
    assert any("TLS options mtls@file cannot be used" in line for line in logged)


def test_sni_strict(certs: dict[str, Issued], generated: KeyPair) -> None:
    dynamic = config({"r": router("Host(`a.test`)")}, certificates=[certs["a"]],
                     options={"default": {"sniStrict": True}})
    server = serve(dynamic, generated)
    assert connect(server, client(), "a.test").ok
    refusal, shaken = connect(server, client(), "unknown.test")
    assert "strict SNI" in refusal.reason and "unknown.test" in refusal.reason
    assert not shaken.ok
    refusal, shaken = connect(server, client(), None)
    assert "no server name" in refusal.reason and not shaken.ok


# -- client certificates --------------------------------------------------------------------------

OUTCOMES = {
    # clientAuthType: (no certificate, certificate from the CA, certificate from another CA)
    "NoClientCert": (True, True, True),
    "RequestClientCert": (True, True, True),
    "RequireAnyClientCert": (False, True, True),
    "VerifyClientCertIfGiven": (True, True, False),
    "RequireAndVerifyClientCert": (False, True, False),
    "": (False, True, False),  # caFiles alone: RequireAndVerifyClientCert
}


@pytest.mark.parametrize("kind", sorted(OUTCOMES))
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_auth_types(pki: PKI, certs: dict[str, Issued], generated: KeyPair,
                           tmp_path: Path, kind: str, version: ssl.TLSVersion) -> None:
    stranger = PKI(tmp_path / "stranger", "stranger CA").issue("s", ["stranger"], client=True)
    auth: dict[str, Any] = {"caFiles": [str(pki.ca_path)]}
    if kind:
        auth["clientAuthType"] = kind
    dynamic = config({"r": router("Host(`a.test`)", options="auth")},
                     certificates=[certs["a"]], options={"auth": {"clientAuth": auth}})
    server = serve(dynamic, generated)
    got = tuple(connect(server, client(pki, maximum=version, cert=cert), "a.test").ok
                for cert in (None, certs["client"], stranger))
    assert got == OUTCOMES[kind]


def test_client_certificates_are_requested_with_the_ca_names(
        pki: PKI, certs: dict[str, Issued], generated: KeyPair) -> None:
    dynamic = config({"r": router("Host(`a.test`)", options="auth")},
                     certificates=[certs["a"]],
                     options={"auth": {"clientAuth": {"caFiles": [pki.ca_pem]}}})
    shaken = connect(serve(dynamic, generated), client(pki, cert=certs["client"]), "a.test")
    assert shaken.ok
    assert shaken.server.get_client_ca_list(as_cryptography=True) == [pki.ca.subject]


def test_entrypoint_http_tls_makes_its_routers_tls(certs: dict[str, Issued],
                                                   generated: KeyPair) -> None:
    from wsgate.config.dynamic import RouterTLS
    from wsgate.config.runtime import EntryPointSpec

    dynamic = config({"r": {"rule": "Host(`a.test`)", "service": "svc"}},
                     certificates=[certs["a"]],
                     options={"modern": {"minVersion": "VersionTLS13"}})
    decoded = decode(DynamicConfig, from_plain(dynamic, Mark("test")), strict=True)
    runtime = build_runtime({"file": decoded}, entry_points=[
        EntryPointSpec(EP, tls=RouterTLS(options="modern")), EntryPointSpec("web")])
    server = build_server_tls(runtime, default_pair=lambda: generated)
    assert server.serves(EP) and not server.serves("web")
    assert server.options_for_host(EP, "a.test") == "modern@file"
    assert not connect(server, client(maximum=ssl.TLSVersion.TLSv1_2), "a.test").ok
    assert connect(server, client(), "a.test").ok
