"""Names on the TLS side: certificate lookup by server name and TLS options by host."""

from __future__ import annotations

from wsgate.tls.names import (
    DEFAULT_OPTIONS,
    NameIndex,
    RouterTLSInput,
    build_host_options,
    normalize_name,
    rule_hosts,
    wildcard_of,
)


def test_normalize_and_wildcard() -> None:
    assert normalize_name(" Ws.Example.COM. ") == "ws.example.com"
    assert normalize_name("[::1]") == "::1"
    assert normalize_name("::ffff:127.0.0.1") == "127.0.0.1"
    assert wildcard_of("a.b.example.com") == "*.b.example.com"
    assert wildcard_of("localhost") is None
    assert wildcard_of("10.0.0.1") is None


def test_exact_name_beats_wildcard_and_first_certificate_keeps_a_name() -> None:
    index: NameIndex[str] = NameIndex()
    assert index.add(["*.example.com", "example.com"], "wild") == []
    assert index.add(["a.example.com"], "exact") == []
    assert index.add(["A.example.com", "b.example.com"], "late") == ["a.example.com"]
    assert index.lookup("a.example.com") == "exact"
    assert index.lookup("B.EXAMPLE.COM.") == "late"
    assert index.lookup("c.example.com") == "wild"
    assert index.lookup("example.com") == "wild"
    # A wildcard covers one label only.
    assert index.lookup("x.c.example.com") is None
    assert index.lookup("") is None


def test_ip_addresses_are_names_too() -> None:
    index: NameIndex[str] = NameIndex()
    index.add(["127.0.0.1", "::1"], "local")
    assert index.lookup("127.0.0.1") == "local"
    assert index.lookup("[::1]") == "local"


def test_rule_hosts_v3_and_v2() -> None:
    assert rule_hosts("Host(`A.example.com`) && PathPrefix(`/ws`)") == ("a.example.com",)
    assert rule_hosts("Host(`a.test`) || (Host(`b.test`) && !Host(`c.test`))") == \
        ("a.test", "b.test")
    assert rule_hosts("PathPrefix(`/`)") == ()
    assert rule_hosts("Host(`*`)") == ()
    assert rule_hosts("Host(`a.test`, `b.test`)", "v2") == ("a.test", "b.test")
    assert rule_hosts("HostHeader(`h.test`)", "v2") == ("h.test",)
    assert rule_hosts("Host(") == ()


def test_host_options_and_conflicts_fall_back_to_default() -> None:
    table = build_host_options([
        RouterTLSInput("a@file", ("a.test",), "strict@file"),
        RouterTLSInput("b@file", ("shared.test",), "strict@file"),
        RouterTLSInput("c@file", ("shared.test", "c.test"), "mtls@file"),
        RouterTLSInput("d@file", ("*.wild.test",), "mtls@file"),
        RouterTLSInput("e@file", (), "strict@file"),
        RouterTLSInput("f@file", (), DEFAULT_OPTIONS),
    ])
    assert table.options_for("a.test") == "strict@file"
    assert table.options_for("A.TEST.") == "strict@file"
    assert table.options_for("c.test") == "mtls@file"
    assert table.options_for("shared.test") == DEFAULT_OPTIONS
    assert table.conflicts == {"shared.test": ("b@file", "c@file")}
    assert table.hostless == ("e@file",)
    # Hosts under a wildcard Host rule get its options (stricter than Traefik, see docs/tls.md).
    assert table.options_for("x.wild.test") == "mtls@file"
    assert table.options_for("unknown.test") == DEFAULT_OPTIONS
    assert table.options_for("") == DEFAULT_OPTIONS
    assert table.used() == {"strict@file", "mtls@file", DEFAULT_OPTIONS}
