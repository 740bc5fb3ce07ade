"""Middlewares that admit or refuse, through sockets: basicAuth (apr1, bcrypt and SHA-1 users
inline and from a file), forwardAuth (a real auth server), ipAllowList (peer address and
X-Forwarded-For depth), rateLimit and inFlightReq, for WebSocket handshakes and plain
requests.

One wsgate for the module; ``NAME.test`` routes to the `websockets` backend (its /headers page
sends back the handshake it got) and ``NAME-http.test`` to the http backend (which answers
with the request it got).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import Peers
from tests.integration.harness import RawHTTP, Wsgate, ws_connect
from tests.integration.mw_support import (
    http,
    http_head,
    http_seen,
    peer_dynamic,
    scenario_routers,
    show_log,
    ws_echo,
    ws_refused,
    ws_seen,
)
from tests.integration.peers.auth_server import AuthServer
from wsgate.middlewares.htpasswd import md5_crypt

PASSWORDS = {"alice": "apr1-pass", "bob": "bcrypt-pass", "carol": "sha1-pass",
             "dave": "file-pass", "erin": "file-sha"}


def apr1(password: str) -> str:
    """An Apache MD5 hash, from `openssl passwd -apr1` when there is one."""
    if shutil.which("openssl"):
        out = subprocess.run(["openssl", "passwd", "-apr1", password], check=True,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    return md5_crypt(password.encode(), b"x1y2z3w4").decode()


def sha1(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def bcrypt_hash(password: str) -> str:
    # htpasswd -B writes $2y$; the cost is kept low: the test is about wiring, not strength.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return "$2y$" + hashed[4:]


def basic(user: str, password: str | None = None) -> str:
    secret = PASSWORDS[user] if password is None else password
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


#: Middlewares of each scenario; every one gets a WebSocket and a plain HTTP router.
SCENARIOS: dict[str, list[str]] = {
    "auth": ["auth-inline"],
    "authfile": ["auth-file"],
    "authhdr": ["mark", "auth-inline"],
    "fwd": ["fwd"],
    "fwdbody": ["fwd-body"],
    "fwddown": ["fwd-down"],
    "fwdbodyone": ["inflight-one", "fwd-body"],
    "iplocal": ["ip-local"],
    "ipother": ["ip-other"],
    "ipdepth": ["ip-depth"],
    "rl": ["rl"],
    "inflight": ["inflight"],
    "inflight2": ["inflight"],
    # inFlightReq (one at a time) before a forwardAuth whose server the test holds back.
    "slowfwd": ["inflight-one", "fwd"],
    "inflightauth": ["inflight-one", "auth-inline"],
}

#: Routers to the in-process echo@internal service.
INTERNAL: dict[str, list[str]] = {
    "echoauth": ["auth-inline"],
    "echoinflight": ["inflight-one"],
    "echohdr": ["mark"],
}


def _config(peers: Peers, auth: AuthServer, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    users_file = tmp / "users"
    users_file.write_text(f"# htpasswd file\n\ndave:{apr1(PASSWORDS['dave'])}\n"
                          f"  erin:{sha1(PASSWORDS['erin'])}  \n")
    middlewares: dict[str, Any] = {
        "auth-inline": {"basicAuth": {
            "users": [f"alice:{apr1(PASSWORDS['alice'])}",
                      f"bob:{bcrypt_hash(PASSWORDS['bob'])}",
                      f"carol:{sha1(PASSWORDS['carol'])}"],
            "realm": "chat", "removeHeader": True, "headerField": "X-WebAuth-User"}},
        "auth-file": {"basicAuth": {"usersFile": str(users_file)}},
        "mark": {"headers": {"customResponseHeaders": {"X-Served-By": "wsgate"}}},
        "fwd": {"forwardAuth": {"address": auth.url, "trustForwardHeader": False,
                                "authResponseHeaders": ["X-Auth-User"],
                                "addAuthCookiesToResponse": ["auth_session"]}},
        "fwd-body": {"forwardAuth": {"address": auth.url, "trustForwardHeader": False,
                                     "forwardBody": True, "maxBodySize": 64}},
        "fwd-down": {"forwardAuth": {"address": f"http://127.0.0.1:{peers.refused_port}/",
                                     "trustForwardHeader": False}},
        "ip-local": {"ipAllowList": {"sourceRange": ["127.0.0.1/32"]}},
        "ip-other": {"ipAllowList": {"sourceRange": ["10.0.0.0/8", "192.168.0.0/16"]}},
        "ip-depth": {"ipAllowList": {"sourceRange": ["203.0.113.0/24"],
                                     "ipStrategy": {"depth": 1}}},
        # 2 at once, then one a minute: the third request in a row is refused.
        "rl": {"rateLimit": {"average": 1, "period": "1m", "burst": 2}},
        "inflight": {"inFlightReq": {"amount": 2}},
        "inflight-one": {"inFlightReq": {"amount": 1}},
    }
    static = {
        "log": {"level": "DEBUG"},
        "entryPoints": {
            "web": {"address": "127.0.0.1:0"},
            "insecure": {"address": "127.0.0.1:0", "forwardedHeaders": {"insecure": True}},
        },
        "ping": {"manualRouting": True},
    }
    routers = scenario_routers(SCENARIOS)
    for name, mws in INTERNAL.items():
        routers[name] = {"rule": f"Host(`{name}.test`)", "service": "echo@internal",
                         "middlewares": mws}
    routers["ping"] = {"rule": "Host(`ping.test`)", "service": "ping@internal",
                       "middlewares": ["mark", "auth-inline"]}
    return static, peer_dynamic(peers, routers, middlewares)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def gw(peers: Peers, auth_server: AuthServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wsgate]:
    tmp = tmp_path_factory.mktemp("mw-access")
    static, dynamic = _config(peers, auth_server, tmp)
    with Wsgate(tmp, static, dynamic) as gate:
        yield gate


_unique = itertools.count(1)
_RUN = uuid.uuid4().hex[:8]


def unique(prefix: str) -> str:
    """A path nobody else uses (the backends' logs are shared by the session)."""
    return f"{prefix}-{_RUN}-{next(_unique)}"


# -- basicAuth --------------------------------------------------------------------------------


def test_basic_auth_refuses_an_upgrade_without_credentials(port: int) -> None:
    response = ws_refused(port, "auth.test", "/headers")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="chat"'
    assert response.body == b"401 Unauthorized\n"
    wrong = ws_refused(port, "auth.test", "/headers",
                       additional_headers={"Authorization": basic("alice", "nope")})
    assert wrong.status_code == 401
    unknown = ws_refused(port, "auth.test", "/headers",
                         additional_headers={"Authorization": basic("zed", "x")})
    assert unknown.status_code == 401
    plain = http(port, "GET", "/x", "auth-http.test")
    assert plain.status == 401
    assert plain.header("WWW-Authenticate") == 'Basic realm="chat"'


@pytest.mark.parametrize("user", ["alice", "bob", "carol"])
def test_basic_auth_admits_inline_users(port: int, user: str) -> None:
    # Twice: the second check of a bcrypt user comes from the verified cache.
    for _ in range(2):
        seen = ws_seen(port, "auth.test", "/headers",
                       additional_headers={"Authorization": basic(user),
                                           "X-WebAuth-User": "spoofed"})
        assert seen.get_all("X-WebAuth-User") == [user]  # headerField
        assert seen.get("Authorization") is None  # removeHeader
    plain = http_seen(port, "/x", "auth-http.test", f"Authorization: {basic(user)}")
    assert plain.get_all("X-WebAuth-User") == [user]
    assert plain.get("Authorization") is None


def test_basic_auth_users_file(port: int) -> None:
    for user in ("dave", "erin"):
        seen = ws_seen(port, "authfile.test", "/headers",
                       additional_headers={"Authorization": basic(user)})
        # No removeHeader: the backend gets the credentials; no headerField.
        assert seen.get_all("Authorization") == [basic(user)]
        assert seen.get("X-WebAuth-User") is None
    response = ws_refused(port, "authfile.test", "/headers",
                          additional_headers={"Authorization": basic("alice")})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="traefik"'


def test_basic_auth_answer_goes_back_through_earlier_middlewares(port: int) -> None:
    response = ws_refused(port, "authhdr.test", "/headers")
    assert response.status_code == 401
    assert response.headers["X-Served-By"] == "wsgate"
    seen = ws_seen(port, "authhdr.test", "/headers",
                   additional_headers={"Authorization": basic("carol")})
    assert seen.reply("X-Served-By") == "wsgate"


# -- forwardAuth ------------------------------------------------------------------------------


def _calls_for(auth: AuthServer, path: str) -> list[Any]:
    return [c for c in auth.calls() if (c.get("X-Forwarded-Uri") or "").startswith(path)]


def test_forward_auth_denial_is_relayed(port: int, auth_server: AuthServer) -> None:
    response = ws_refused(port, "fwd.test", "/headers")
    assert response.status_code == 401
    assert response.body == b"login first\n"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="auth"'
    forbidden = ws_refused(port, "fwd.test", "/headers",
                           additional_headers={"Authorization": "Bearer forbidden"})
    assert forbidden.status_code == 403
    assert forbidden.body == b"forbidden by auth\n"
    assert forbidden.headers["X-Auth-Reason"] == "forbidden"
    plain = http(port, "GET", "/x", "fwd-http.test")
    assert plain.status == 401
    assert plain.body == b"login first\n"


def test_forward_auth_admits_and_copies_response_headers(port: int) -> None:
    seen = ws_seen(port, "fwd.test", "/headers",
                   additional_headers={"Authorization": "Bearer good",
                                       "X-Auth-User": "mallory"})
    assert seen.get_all("X-Auth-User") == ["alice"]
    assert seen.get("X-Auth-Extra") is None  # not in authResponseHeaders
    assert seen.get_all("Authorization") == ["Bearer good"]
    by_cookie = ws_seen(port, "fwd.test", "/headers",
                        additional_headers={"Cookie": "theme=dark; session=ok"})
    assert by_cookie.get_all("X-Auth-User") == ["alice"]
    plain = http_seen(port, "/x", "fwd-http.test", "Authorization: Bearer good")
    assert plain.get_all("X-Auth-User") == ["alice"]


def test_forward_auth_server_gets_the_handshake_headers(port: int,
                                                        auth_server: AuthServer) -> None:
    path = "/" + unique("headers-fwd")
    ws_seen(port, "fwd.test", path + "?room=1", origin="https://app.example",
            additional_headers={"Authorization": "Bearer good",
                                "Cookie": "session=ok; theme=dark",
                                "X-Forwarded-Proto": "https"})
    calls = _calls_for(auth_server, path)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.method == "GET"
    assert call.target == "/verify"
    assert call.get("Authorization") == "Bearer good"
    assert call.get("Cookie") == "session=ok; theme=dark"
    assert call.get("Origin") == "https://app.example"
    assert call.get("Sec-WebSocket-Key")
    assert call.get("X-Forwarded-Method") == "GET"
    assert call.get("X-Forwarded-Uri") == path + "?room=1"
    assert call.get("X-Forwarded-Host") == f"fwd.test:{port}"
    # trustForwardHeader false: the client's X-Forwarded-Proto does not count.
    assert call.get("X-Forwarded-Proto") == "http"
    assert call.get("X-Forwarded-For") == "127.0.0.1"
    # Hop-by-hop headers of the handshake are not passed.
    assert "upgrade" not in call.names()
    assert (call.get("Connection") or "").lower() != "upgrade"


def test_forward_auth_forward_body_cut_short(port: int) -> None:
    """The client stops in the middle of a body the auth server is to get: 400, and what
    the request held (an inFlightReq slot) is given back."""
    host = f"fwdbodyone-http.test:{port}"
    with RawHTTP(port) as conn:
        conn.send(http_head("POST", "/cut", host, "Authorization: Bearer good",
                            "Content-Length: 10") + b"abc")
        conn.sock.shutdown(socket.SHUT_WR)
        response = conn.response("POST")
        assert response.status == 400
        assert conn.at_eof()
    response = http(port, "POST", "/whole", host, "Authorization: Bearer good", body=b"abc")
    assert response.status == 200, response


def test_forward_auth_server_unreachable(port: int) -> None:
    assert ws_refused(port, "fwddown.test", "/echo").status_code == 500
    response = http(port, "GET", "/x", "fwddown-http.test")
    # As Traefik: the status alone, no body.
    assert (response.status, response.body) == (500, b"")


def test_forward_auth_forward_body(port: int, auth_server: AuthServer) -> None:
    path = "/" + unique("fwdbody")
    response = http(port, "POST", path, "fwdbody-http.test", "Authorization: Bearer good",
                     body=b"hello auth")
    assert response.status == 200, response
    assert json.loads(response.body)["body_length"] == 10  # the backend got it too
    calls = _calls_for(auth_server, path)
    assert [c.body for c in calls] == [b"hello auth"]
    assert calls[0].method == "GET"
    # Above maxBodySize: 401, and the auth server is not asked.
    big = "/" + unique("fwdbody")
    response = http(port, "POST", big, "fwdbody-http.test", "Authorization: Bearer good",
                    body=b"x" * 65)
    assert response.status == 401
    assert _calls_for(auth_server, big) == []
    # A handshake has no body: asked as usual.
    seen = ws_seen(port, "fwdbody.test", "/headers",
                   additional_headers={"Authorization": "Bearer good"})
    assert seen.path == "/headers"


def test_forward_auth_forward_body_chunked_pipelined_and_expect(
        port: int, auth_server: AuthServer) -> None:
    chunked = "/" + unique("fwdbody")
    with RawHTTP(port) as conn:
        conn.send(http_head("POST", chunked, "fwdbody-http.test", "Authorization: Bearer good",
                            "Transfer-Encoding: chunked")
                  + b"5\r\nhello\r\n8\r\n chunked\r\n0\r\n\r\n"
                  + http_head("GET", chunked + "/next", "fwdbody-http.test",
                              "Authorization: Bearer good"))
        first = conn.response("POST")
        assert first.status == 200, first
        info = json.loads(first.body)
        assert (info["target"], info["body_length"]) == (chunked, 13)
        second = conn.response()
        assert second.status == 200
        assert json.loads(second.body)["target"] == chunked + "/next"
        # Expect: 100-continue: reading the body for the auth server asks for it.
        expect = "/" + unique("fwdbody")
        conn.send(http_head("POST", expect, "fwdbody-http.test", "Authorization: Bearer good",
                            "Content-Length: 4", "Expect: 100-continue"))
        assert conn.read_head().startswith(b"HTTP/1.1 100 Continue\r\n")
        conn.send(b"body")
        third = conn.response("POST")
        assert third.status == 200
        assert json.loads(third.body)["body_length"] == 4
    assert [c.body for c in _calls_for(auth_server, chunked)] == [b"hello chunked", b""]
    assert [c.body for c in _calls_for(auth_server, expect)] == [b"body"]
    # A chunked body above maxBodySize: 401, and the connection cannot be reused.
    with RawHTTP(port) as conn:
        conn.send(http_head("POST", "/big", "fwdbody-http.test", "Authorization: Bearer good",
                            "Transfer-Encoding: chunked")
                  + b"40\r\n" + b"x" * 64 + b"\r\n1\r\ny\r\n0\r\n\r\n")
        response = conn.response("POST")
        assert response.status == 401
        assert response.header("Connection") == "close"
        assert conn.at_eof()


# -- ipAllowList ------------------------------------------------------------------------------


def test_ip_allow_list_peer_address(port: int) -> None:
    ws_echo(port, "iplocal.test", "/echo")
    assert http(port, "GET", "/x", "iplocal-http.test").status == 200
    response = ws_refused(port, "ipother.test", "/echo")
    assert response.status_code == 403
    assert response.body == b"Forbidden"
    assert http(port, "GET", "/x", "ipother-http.test").status == 403


def test_ip_allow_list_depth_from_a_trusted_entrypoint(gw: Wsgate) -> None:
    with show_log(gw):
        insecure = gw.ports["insecure"]
        allowed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        ws_echo(insecure, "ipdepth.test", "/echo", additional_headers=allowed)
        seen = http_seen(insecure, "/x", "ipdepth-http.test",
                         "X-Forwarded-For: 198.51.100.1, 203.0.113.7")
        assert seen.get_all("X-Forwarded-For") == ["198.51.100.1, 203.0.113.7, 127.0.0.1"]
        refused = ws_refused(insecure, "ipdepth.test", "/echo",
                             additional_headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.1"})
        assert refused.status_code == 403
        assert http(insecure, "GET", "/x", "ipdepth-http.test").status == 403
        # On an entryPoint that does not trust the client, its X-Forwarded-For is dropped.
        web = gw.ports["web"]
        assert ws_refused(web, "ipdepth.test", "/echo",
                          additional_headers=allowed).status_code == 403
        assert http(web, "GET", "/x", "ipdepth-http.test",
                    "X-Forwarded-For: 198.51.100.1, 203.0.113.7").status == 403


# -- rateLimit --------------------------------------------------------------------------------


def _assert_rate_limited(response_status: int, headers: Any) -> None:
    assert response_status == 429
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert headers["X-Retry-In"]


def test_rate_limit_upgrades(port: int) -> None:
    ws_echo(port, "rl.test", "/echo")
    ws_echo(port, "rl.test", "/echo")
    response = ws_refused(port, "rl.test", "/echo")
    _assert_rate_limited(response.status_code, response.headers)
    assert response.body == b"Too Many Requests"
    # The same bucket counts plain requests on that router.
    plain = http(port, "GET", "/x", "rl.test")
    _assert_rate_limited(plain.status, dict(plain.headers))


def test_rate_limit_plain_requests(port: int) -> None:
    assert http(port, "GET", "/x", "rl-http.test").status == 200
    assert http(port, "GET", "/x", "rl-http.test").status == 200
    third = http(port, "GET", "/x", "rl-http.test")
    _assert_rate_limited(third.status, dict(third.headers))
    assert third.body == b"Too Many Requests"


# -- inFlightReq ------------------------------------------------------------------------------


def _admitted_again(port: int, host: str, **kwargs: Any) -> None:
    """Open a WebSocket on a router whose inFlightReq slot is being released: the proxy
    frees it once it has seen the session end, so retry (a bounded number of times) while
    the answer is still 429; the admitted one must echo."""
    for _ in range(500):
        try:
            with ws_connect(port, host, "/" + unique("again"), **kwargs) as ws:
                ws.send("again")
                assert ws.recv(timeout=10) == "again"
                return
        except InvalidStatus as exc:  # the slot is still held
            assert exc.response.status_code == 429, exc
    raise AssertionError(f"{host}: the slot of the closed WebSocket was never released")


def test_in_flight_req_caps_open_websockets(port: int, peers: Peers) -> None:
    first_path = "/" + unique("inflight")
    with ExitStack() as stack:
        first = stack.enter_context(ws_connect(port, "inflight.test", first_path))
        second = stack.enter_context(ws_connect(port, "inflight.test",
                                                "/" + unique("inflight")))
        for ws in (first, second):
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"
        response = ws_refused(port, "inflight.test", "/" + unique("inflight"))
        assert response.status_code == 429
        assert response.body == b"max connections reached: 2"
        # The source is the request host: a plain request to it counts against the cap.
        assert http(port, "GET", "/x", f"inflight.test:{port}").status == 429
        first.close()  # the close handshake completes through the proxy
        peers.ws.wait_for(rf"closed {first_path} code=1000")
        _admitted_again(port, "inflight.test")
        # Admitted again means one slot only: the other is still held by ``second``.
        second.send("still here")
        assert second.recv(timeout=10) == "still here"


def test_in_flight_slots_are_released_after_plain_requests_and_refusals(port: int) -> None:
    for _ in range(4):
        assert http(port, "GET", "/x", "inflight2-http.test").status == 200
    with RawHTTP(port) as conn:  # keep-alive requests, one after the other
        for _ in range(4):
            conn.send(http_head("GET", "/x", "inflight2-http.test"))
            assert conn.response().status == 200
    # Upgrades the backend refuses end their exchange: their slots come back.
    for _ in range(3):
        assert ws_refused(port, "inflight2.test", "/unauthorized").status_code == 401
    with ws_connect(port, "inflight2.test", "/echo") as a, \
            ws_connect(port, "inflight2.test", "/echo") as b:
        for ws in (a, b):
            ws.send("x")
            assert ws.recv(timeout=10) == "x"


# -- the data path around deferred decisions ---------------------------------------------------


def test_forward_auth_cookies_reach_the_101(port: int) -> None:
    seen = ws_seen(port, "fwd.test", "/headers",
                   additional_headers={"Authorization": "Bearer good"})
    assert seen.reply_all("Set-Cookie") == ["auth_session=abc; Path=/"]
    plain = http_seen(port, "/x", "fwd-http.test", "Authorization: Bearer good")
    assert plain.reply_all("Set-Cookie") == ["auth_session=abc; Path=/"]


def test_pipelined_requests_wait_for_a_forward_auth_decision(port: int) -> None:
    with RawHTTP(port) as conn:
        conn.send(http_head("POST", "/p1", "fwd-http.test", body=b"denied body")
                  + http_head("GET", "/p2", "fwd-http.test", "Authorization: Bearer good")
                  + http_head("POST", "/p3", "fwd-http.test", "Authorization: Bearer good",
                              body=b"x" * 5000))
        first = conn.response()
        assert first.status == 401
        assert first.body == b"login first\n"
        second = conn.response()
        assert second.status == 200
        assert json.loads(second.body)["target"] == "/p2"
        third = conn.response("POST")
        assert third.status == 200
        info = json.loads(third.body)
        assert (info["target"], info["body_length"]) == ("/p3", 5000)


def test_pipelined_requests_wait_for_a_bcrypt_check(port: int) -> None:
    with RawHTTP(port) as conn:
        conn.send(http_head("GET", "/b1", "auth-http.test",
                            f"Authorization: {basic('bob', 'wrong')}")
                  + http_head("POST", "/b2", "auth-http.test",
                              f"Authorization: {basic('bob')}", body=b"payload")
                  + http_head("GET", "/b3", "auth-http.test",
                              f"Authorization: {basic('carol')}"))
        assert conn.response().status == 401
        second = conn.response("POST")
        assert second.status == 200
        info = json.loads(second.body)
        assert (info["target"], info["body_length"]) == ("/b2", 7)
        third = conn.response()
        assert third.status == 200
        assert json.loads(third.body)["target"] == "/b3"


def test_pipelined_request_after_a_deferred_refusal_gets_the_released_slot(port: int) -> None:
    """inFlightReq (one at a time) before basicAuth: the slot of a request refused after a
    bcrypt check is free for the next pipelined request."""
    host = f"inflightauth-http.test:{port}"
    with RawHTTP(port) as conn:
        conn.send(http_head("GET", "/r1", host, f"Authorization: {basic('bob', 'bad')}")
                  + http_head("GET", "/r2", host, f"Authorization: {basic('carol')}")
                  + http_head("GET", "/r3", host, f"Authorization: {basic('bob', 'bad2')}")
                  + http_head("GET", "/r4", host, f"Authorization: {basic('carol')}"))
        assert [conn.response().status for _ in range(4)] == [401, 200, 401, 200]


def test_client_gone_while_forward_auth_decides(port: int, auth_server: AuthServer) -> None:
    """The client leaves before the auth answer: its inFlightReq slot (taken by the
    middleware before forwardAuth) is given back when the answer comes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(http_head("GET", "/headers", f"slowfwd.test:{port}", "Upgrade: websocket",
                               "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                               "Authorization: Bearer slow"))
        assert auth_server.slow_arrived.wait(10), "the auth request never came"
        # Meanwhile the slot is held.
        refused = ws_refused(port, "slowfwd.test", "/headers",
                             additional_headers={"Authorization": "Bearer good"})
        assert refused.status_code == 429
    finally:
        sock.close()
        auth_server.release.set()
    _admitted_again(port, "slowfwd.test", additional_headers={"Authorization": "Bearer good"})


def test_middlewares_in_front_of_an_internal_service(port: int) -> None:
    response = ws_refused(port, "echoauth.test", "/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="chat"'
    ws_echo(port, "echoauth.test", "/", additional_headers={"Authorization": basic("carol")})
    # inFlightReq: the in-process session holds its slot until it closes.
    with ws_connect(port, "echoinflight.test", "/") as ws:
        ws.send("held")
        assert ws.recv(timeout=10) == "held"
        assert ws_refused(port, "echoinflight.test", "/").status_code == 429
    _admitted_again(port, "echoinflight.test")
    # Response headers reach the in-process service's 101 too, and its plain responses.
    headers = dict(ws_echo(port, "echohdr.test", "/"))
    assert headers.get("X-Served-By") == "wsgate", headers
    refused = http(port, "GET", "/ping", "ping.test")
    assert refused.status == 401
    assert refused.header("X-Served-By") == "wsgate"
    ping = http(port, "GET", "/ping", "ping.test", f"Authorization: {basic('carol')}")
    assert (ping.status, ping.body) == (200, b"OK")
    assert ping.header("X-Served-By") == "wsgate"
