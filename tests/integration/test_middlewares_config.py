"""Middlewares whose configuration is wrong, through sockets: the routers using them are
disabled (404, as if they did not exist, as in Traefik) with an error line naming the
middleware and the field at fault, and every other router keeps working."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Peers
from tests.integration.harness import Wsgate
from tests.integration.mw_support import http, http_seen, peer_dynamic, ws_echo, ws_refused

#: Router → (its middleware, the field named in the error).
BAD: dict[str, tuple[str, str]] = {
    "bad-strip-regex": ("strip-regex", "stripPrefixRegex.regex[0]"),
    "bad-redirect-regex": ("redirect-regex", "redirectRegex.regex"),
    "bad-users-file": ("missing-file", "basicAuth.usersFile"),
    "bad-users-dir": ("directory-file", "basicAuth.usersFile"),
    "bad-user-line": ("bad-line", "basicAuth.users[1]"),
    "bad-file-line": ("bad-file-line", "basicAuth.usersFile"),
    "bad-in-chain": ("bad-line", "basicAuth.users[1]"),
}


def _config(peers: Peers, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    bad_file = tmp / "bad-users"
    bad_file.write_text("# users\ndave:{SHA}x\nno-colon-here\n")
    middlewares: dict[str, Any] = {
        "strip-regex": {"stripPrefixRegex": {"regex": ["/tenants/([a-z"]}},
        "redirect-regex": {"redirectRegex": {"regex": "^http://(.*", "replacement": "x"}},
        "missing-file": {"basicAuth": {"usersFile": str(tmp / "no-such-file")}},
        "directory-file": {"basicAuth": {"usersFile": str(tmp)}},
        "bad-line": {"basicAuth": {"users": ["carol:{SHA}x", "no-colon-here"]}},
        "bad-file-line": {"basicAuth": {"usersFile": str(bad_file)}},
        "with-bad": {"chain": {"middlewares": ["good-headers", "bad-line"]}},
        "good-headers": {"headers": {"customRequestHeaders": {"X-Good": "yes"}}},
    }
    routers: dict[str, Any] = {}
    for router, (middleware, _) in BAD.items():
        if router == "bad-in-chain":
            middleware = "with-bad"
        routers[router] = {"rule": f"Host(`{router}.test`)", "service": "http",
                           "middlewares": [middleware], "entryPoints": ["web"]}
        routers[f"{router}-ws"] = {"rule": f"Host(`{router}-ws.test`)", "service": "ws",
                                   "middlewares": [middleware], "entryPoints": ["web"]}
    # Working routers, one of them sharing the chain's good middleware.
    routers["good"] = {"rule": "Host(`good.test`)", "service": "http",
                       "middlewares": ["good-headers"], "entryPoints": ["web"]}
    routers["good-ws"] = {"rule": "Host(`good-ws.test`)", "service": "ws",
                          "entryPoints": ["web"]}
    # On two entryPoints: working on web, disabled on badep (whose own middleware is bad).
    routers["both"] = {"rule": "Host(`both.test`)", "service": "http",
                       "entryPoints": ["web", "badep"]}
    static = {
        "log": {"level": "INFO"},
        "entryPoints": {
            "web": {"address": "127.0.0.1:0"},
            "badep": {"address": "127.0.0.1:0", "http": {"middlewares": ["strip-regex@file"]}},
        },
    }
    return static, peer_dynamic(peers, routers, middlewares)


@pytest.fixture(scope="module")
def gw(peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wsgate]:
    tmp = tmp_path_factory.mktemp("mw-config")
    static, dynamic = _config(peers, tmp)
    with Wsgate(tmp, static, dynamic) as gate:
        yield gate


@pytest.mark.parametrize("router", sorted(BAD))
def test_bad_middleware_disables_its_routers(gw: Wsgate, port: int, router: str) -> None:
    middleware, field = BAD[router]
    response = http(port, "GET", "/x", f"{router}.test")
    assert response.status == 404
    assert response.body == b"404 page not found\n"
    assert ws_refused(port, f"{router}-ws.test", "/echo").status_code == 404
    for name in (router, f"{router}-ws"):
        pattern = (rf'ERR .*router {re.escape(name)}@file .*middleware '
                   rf'"{re.escape(middleware)}@file": {re.escape(field)}')
        assert gw.proc.count(pattern) >= 1, f"no error line matching {pattern!r}"


def test_other_routers_keep_working(port: int) -> None:
    seen = http_seen(port, "/x", "good.test")
    assert seen.get_all("X-Good") == ["yes"]
    ws_echo(port, "good-ws.test", "/echo")


def test_bad_entrypoint_middleware_disables_the_routers_of_that_entrypoint(gw: Wsgate,
                                                                         port: int) -> None:
    assert http(port, "GET", "/x", "both.test").status == 200
    assert http(gw.ports["badep"], "GET", "/x", "both.test").status == 404
    assert gw.proc.count(r'ERR .*router both@file .*middleware "strip-regex@file"') >= 1
