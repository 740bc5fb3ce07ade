"""Services that need their children's health, checked as Traefik 3.7 checks them (each
refusal below was seen on the real binary): the service is disabled, and so are its routers.
"""

from __future__ import annotations

from typing import Any

import pytest

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import ConfigError, Mark
from wsgate.config.runtime import RuntimeConfig, build_runtime
from wsgate.config.schema import decode
from wsgate.config.tree import from_plain

HC = {"healthCheck": {"path": "/health"}}


def lb(**extra: Any) -> dict[str, Any]:
    return {"loadBalancer": {"servers": [{"url": "http://10.0.0.1"}], **extra}}


def runtime(services: dict[str, Any]) -> RuntimeConfig:
    config = {"http": {"services": services, "routers": {
        name: {"rule": f"Host(`{name}.test`)", "service": name} for name in services}}}
    decoded = decode(DynamicConfig, from_plain(config, Mark("t.yml")))
    return build_runtime({"file": decoded}, entry_points=["web"])


def status(rt: RuntimeConfig, name: str) -> tuple[str, tuple[str, ...]]:
    info = rt.services[f"{name}@file"]
    return info.status, info.error_messages


def test_failover_needs_to_know_the_health_of_its_service() -> None:
    rt = runtime({"plain": lb(), "checked": lb(**HC), "fb": lb(),
                  "blind": {"failover": {"service": "plain", "fallback": "fb"}},
                  "seeing": {"failover": {"service": "checked", "fallback": "fb"}},
                  "by-status": {"failover": {"service": "plain", "fallback": "fb",
                                             "errors": {"status": ["500-599"]}}}})
    state, errors = status(rt, "blind")
    assert state == "disabled"
    assert errors == ('the service "plain@file" does not report its health (it needs a '
                      'healthCheck), which a failover needs to know when to use its fallback '
                      '(or errors.status)',)
    assert rt.routers["blind@file"].status == "disabled"
    assert status(rt, "seeing") == ("enabled", ())
    assert status(rt, "by-status") == ("enabled", ())


def test_failover_with_a_health_check_needs_its_fallback_to_report_too() -> None:
    rt = runtime({"checked": lb(**HC), "fb": lb(), "fb-checked": lb(**HC),
                  "f1": {"failover": {"service": "checked", "fallback": "fb",
                                      "healthCheck": {}}},
                  "f2": {"failover": {"service": "checked", "fallback": "fb-checked",
                                      "healthCheck": {}}}})
    assert status(rt, "f1")[0] == "disabled"
    assert 'the service "fb@file" does not report its health' in status(rt, "f1")[1][0]
    assert status(rt, "f2") == ("enabled", ())


@pytest.mark.parametrize("kind", ["weighted", "highestRandomWeight"])
def test_groups_with_a_health_check_need_reporting_children(kind: str) -> None:
    rt = runtime({"plain": lb(), "checked": lb(**HC),
                  "bad": {kind: {"services": [{"name": "checked"}, {"name": "plain"}],
                                 "healthCheck": {}}},
                  "good": {kind: {"services": [{"name": "checked"}], "healthCheck": {}}},
                  "no-check": {kind: {"services": [{"name": "plain"}]}}})
    assert status(rt, "bad")[0] == "disabled"
    assert status(rt, "bad")[1] == (
        'the service "plain@file" does not report its health (it needs a healthCheck), which '
        "this service's healthCheck needs",)
    assert status(rt, "good") == ("enabled", ())
    assert status(rt, "no-check") == ("enabled", ())


def test_mirroring_reports_health_through_its_service_when_it_has_a_check() -> None:
    rt = runtime({"plain": lb(), "checked": lb(**HC),
                  "m-none": {"mirroring": {"service": "checked"}},
                  "m-plain": {"mirroring": {"service": "plain", "healthCheck": {}}},
                  "m-ok": {"mirroring": {"service": "checked", "healthCheck": {}}},
                  "w1": {"weighted": {"services": [{"name": "m-none"}], "healthCheck": {}}},
                  "w2": {"weighted": {"services": [{"name": "m-plain"}], "healthCheck": {}}},
                  "w3": {"weighted": {"services": [{"name": "m-ok"}], "healthCheck": {}}},
                  "f": {"failover": {"service": "m-ok", "fallback": "plain"}}})
    assert status(rt, "m-plain") == ("enabled", ())
    assert status(rt, "w1")[0] == "disabled"
    assert status(rt, "w2")[0] == "disabled"
    assert status(rt, "w3") == ("enabled", ())
    assert status(rt, "f") == ("enabled", ())


def test_failover_status_codes_are_validated() -> None:
    config = {"http": {"services": {"f": {"failover": {
        "service": "a", "fallback": "b", "errors": {"status": ["500", "5xx-599"]}}}}}}
    with pytest.raises(ConfigError, match=r"errors\.status\[1\].*'5xx-599'"):
        decode(DynamicConfig, from_plain(config, Mark("t.yml")))
