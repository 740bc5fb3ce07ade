"""Sticky sessions: the cookie travels in the 101 and brings the client back to its server."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from websockets.sync.client import connect as ws_connect

from tests.integration.harness import Wsgate, start_ws_backends


def _expected_name(service: str) -> str:
    # Traefik's default: "_" + 5 hex digits of sha1("_TRAEFIK_BACKEND_" + qualified service)
    return "_" + hashlib.sha1(("_TRAEFIK_BACKEND_" + service).encode()).hexdigest()[:5]


def connect(url: str, *, additional_headers: dict[str, str], open_timeout: float):  # type: ignore[no-untyped-def]
    """A client for ``ws://<Host>/...`` whose TCP connection goes to the proxy."""
    headers = dict(additional_headers)
    host = headers.pop("Host")
    port = int(url.split(":")[2].split("/")[0])
    path = "/" + url.split("/", 3)[3]
    sock = socket.create_connection(("127.0.0.1", port), timeout=open_timeout)
    return ws_connect(f"ws://{host}{path}", sock=sock, additional_headers=headers,
                      open_timeout=open_timeout)


def _value(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def test_cookie_in_101_and_stickiness(tmp_path: Path) -> None:
    backend, ports = start_ws_backends(3)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    dynamic = {"http": {
        "routers": {
            "default": {"rule": "Host(`default.test`)", "service": "plain"},
            "custom": {"rule": "Host(`custom.test`)", "service": "custom"},
        },
        "services": {
            "plain": {"loadBalancer": {"sticky": {"cookie": {}},
                                       "servers": [{"url": u} for u in urls]}},
            "custom": {"loadBalancer": {
                "sticky": {"cookie": {"name": "route", "httpOnly": True, "secure": True,
                                      "sameSite": "strict", "maxAge": 60}},
                "servers": [{"url": u} for u in urls]}},
        },
    }}
    gate = Wsgate(tmp_path, {"entryPoints": {"web": {"address": "127.0.0.1:0"}}}, dynamic)
    base = f"ws://127.0.0.1:{gate.ports['web']}/id"
    try:
        name = _expected_name("plain@file")
        with connect(base, additional_headers={"Host": "default.test"},
                     open_timeout=10) as ws:
            cookie = ws.response.headers["Set-Cookie"]
            served = ws.recv(timeout=10)
        assert cookie.startswith(f"{name}="), cookie
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        port = served.split()[1]
        assert value == _value(f"http://127.0.0.1:{port}")
        assert "Path=/" in cookie

        # with the cookie, every new session lands on the same server and no new cookie is set
        for _ in range(6):
            with connect(base, additional_headers={"Host": "default.test",
                                                   "Cookie": f"{name}={value}"},
                         open_timeout=10) as ws:
                assert ws.recv(timeout=10) == served
                assert "Set-Cookie" not in ws.response.headers

        # a cookie naming another server takes the client there
        other_port = next(p for p in ports if str(p) != port)
        other = _value(f"http://127.0.0.1:{other_port}")
        with connect(base, additional_headers={"Host": "default.test",
                                               "Cookie": f"{name}={other}"},
                     open_timeout=10) as ws:
            assert ws.recv(timeout=10) == f"id {other_port}"

        # every cookie attribute is written as configured
        with connect(base, additional_headers={"Host": "custom.test"},
                     open_timeout=10) as ws:
            cookie = ws.response.headers["Set-Cookie"]
        assert cookie.startswith("route=")
        for part in ("Path=/", "Max-Age=60", "HttpOnly", "Secure", "SameSite=Strict"):
            assert part in cookie, cookie
    finally:
        gate.stop()
        backend.stop()
