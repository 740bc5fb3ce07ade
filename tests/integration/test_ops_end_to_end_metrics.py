"""Prometheus metrics of a real wsgate process (``twistd -n wsgate``): known traffic in, the
exact counters out, scraped from /metrics on the ``traefik`` entryPoint and parsed with
prometheus_client's parser.

Traffic on ``web``: plain requests answered 200 (GET and POST), 404 (no router) and 502 (dead
backend); upgrade requests refused for each handshake-failure reason; M echo sessions of K
messages closed by the client with 1000. On ``web2``: one session whose backend is killed,
which the client sees closed with 1014. Every wait is on an event: the server's EOF for
requests, wsgate's DEBUG line for the end of each session (logged in the same call that
reports it to the metrics), the ``configuration applied`` line for a reload.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.exceptions import ConnectionClosedError

from tests.integration.harness import (
    Wsgate,
    free_port,
    start_http_backend,
    start_ws_backend,
    ws_connect,
)
from tests.integration.ops_clients import (
    CLIENT_FRAME_OVERHEAD,
    SERVER_FRAME_OVERHEAD,
    echo_session,
    http,
    refused_upgrade,
    scrape,
)

N_OK = 5
N_404 = 3
M = 3
K = 4
WS_MESSAGE = "message-{i}-{j}".ljust(24, ".")


def _lb(port: int) -> dict[str, Any]:
    return {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{port}"}]}}


def _dynamic(http_port: int, ws_port: int, victim_port: int, dead_port: int,
             *, with_dead: bool = True) -> dict[str, Any]:
    routers: dict[str, Any] = {
        "app": {"rule": "PathPrefix(`/app`)", "service": "app", "entryPoints": ["web"]},
        "chat": {"rule": "PathPrefix(`/chat`)", "service": "chat", "entryPoints": ["web"]},
        "refuse": {"rule": "PathPrefix(`/unauthorized`)", "service": "chat",
                   "entryPoints": ["web"]},
        "empty": {"rule": "PathPrefix(`/empty`)", "service": "empty", "entryPoints": ["web"]},
        "victim": {"rule": "PathPrefix(`/victim`)", "service": "victim",
                   "entryPoints": ["web2"]},
    }
    services: dict[str, Any] = {
        "app": _lb(http_port), "chat": _lb(ws_port), "victim": _lb(victim_port),
        "empty": {"loadBalancer": {"servers": []}},
    }
    if with_dead:
        routers["dead"] = {"rule": "PathPrefix(`/dead`)", "service": "dead",
                           "entryPoints": ["web"]}
        services["dead"] = _lb(dead_port)
    return {"http": {"routers": routers, "services": services}}


@pytest.mark.parametrize("routers_labels", [False, True], ids=["default", "addRoutersLabels"])
def test_metrics_count_exactly_what_went_through(tmp_path: Path, routers_labels: bool) -> None:
    http_proc, http_port = start_http_backend("app")
    ws_proc, ws_port = start_ws_backend()
    victim, victim_port = start_ws_backend()
    dead_port = free_port()
    dyn_path = tmp_path / "dynamic.yml"
    dyn_path.write_text(yaml.safe_dump(_dynamic(http_port, ws_port, victim_port, dead_port)))
    static = {
        "log": {"level": "DEBUG"},
        "entryPoints": {name: {"address": "127.0.0.1:0"} for name in ("web", "web2", "traefik")},
        "metrics": {"prometheus": {"addRoutersLabels": routers_labels}},
        "providers": {"file": {"filename": str(dyn_path), "watch": True}},
    }
    gate = Wsgate(tmp_path, static)
    try:
        web, web2, ops = gate.ports["web"], gate.ports["web2"], gate.ports["traefik"]
        before = scrape(ops)
        assert before.value("traefik_config_reloads_total") == 1
        assert before.value("traefik_config_last_reload_success") == 1
        assert before.series("traefik_entrypoint_requests_total") == {}

        # -- plain HTTP ---------------------------------------------------------------------
        ok_bytes = 0
        for i in range(N_OK):
            response = http(web, f"/app/item/{i}")
            assert response.status == 200
            ok_bytes += len(response.body)
        posted = http(web, "/app/form", method="POST", body=b"0123456789")
        assert posted.status == 200
        not_found = [http(web, f"/nowhere/{i}") for i in range(N_404)]
        assert {r.status for r in not_found} == {404}
        bad_gateway = http(web, "/dead/x")
        assert bad_gateway.status == 502

        # -- refused upgrades, one per handshake-failure reason -------------------------------
        assert refused_upgrade(web, "/nowhere/ws").status == 404        # no_router
        assert refused_upgrade(web, "/dead/ws").status == 502           # backend_unreachable
        assert refused_upgrade(web, "/unauthorized").status == 401      # backend_refused
        assert refused_upgrade(web, "/empty/ws").status == 503          # no_server

        # -- M sessions of K messages, closed by the client with 1000 ------------------------
        client_bytes = backend_bytes = 0
        for i in range(M):
            sent, received = echo_session(
                web, f"/chat/{i}", [WS_MESSAGE.format(i=i, j=j) for j in range(K)])
            client_bytes += sent
            backend_bytes += received
        gate.proc.wait_for_count(r"WebSocket on web closed: code=1000 by=client", M)

        # -- one session on web2 whose backend dies: the client gets 1014 --------------------
        with ws_connect(web2, "app.test", "/victim/1", ping_interval=None) as ws:
            ws.send("last words")
            assert ws.recv(timeout=10) == "last words"
            victim.stop(signal.SIGKILL)
            with pytest.raises(ConnectionClosedError) as lost:
                ws.recv(timeout=10)
        assert lost.value.rcvd is not None and lost.value.rcvd.code == 1014
        gate.proc.wait_for(r"WebSocket on web2 closed: code=1014 by=proxy")

        m = scrape(ops)
        GET, POST = "GET", "POST"

        def req(code: str, method: str, protocol: str) -> tuple[tuple[str, str], ...]:
            return (("code", code), ("method", method), ("protocol", protocol))

        web_requests = {
            req("200", GET, "http"): N_OK, req("200", POST, "http"): 1,
            req("404", GET, "http"): N_404, req("502", GET, "http"): 1,
            req("404", GET, "websocket"): 1, req("502", GET, "websocket"): 1,
            req("401", GET, "websocket"): 1, req("503", GET, "websocket"): 1,
            req("101", GET, "websocket"): M,
        }
        assert m.series("traefik_entrypoint_requests_total", entrypoint="web") == web_requests
        assert m.series("traefik_entrypoint_requests_total", entrypoint="web2") == {
            req("101", GET, "websocket"): 1}
        assert m.series("traefik_entrypoint_requests_total", entrypoint="traefik") == {}
        assert m.series("traefik_entrypoint_request_duration_seconds_count",
                        entrypoint="web") == web_requests

        # bodies for HTTP; for a WebSocket the bytes each way after the 101
        responses = m.series("traefik_entrypoint_responses_bytes_total", entrypoint="web")
        assert responses[req("200", GET, "http")] + responses[req("200", POST, "http")] == \
            ok_bytes + len(posted.body)
        assert responses[req("404", GET, "http")] == sum(len(r.body) for r in not_found)
        assert responses[req("502", GET, "http")] == len(bad_gateway.body)
        assert responses[req("101", GET, "websocket")] == backend_bytes
        requests_bytes = m.series("traefik_entrypoint_requests_bytes_total", entrypoint="web")
        assert requests_bytes[req("200", POST, "http")] == 10
        assert requests_bytes[req("200", GET, "http")] == 0
        assert requests_bytes[req("101", GET, "websocket")] == client_bytes

        assert m.series("traefik_service_requests_total") == {
            (*req("200", GET, "http"), ("service", "app@file")): N_OK,
            (*req("200", POST, "http"), ("service", "app@file")): 1,
            (*req("502", GET, "http"), ("service", "dead@file")): 1,
            (*req("502", GET, "websocket"), ("service", "dead@file")): 1,
            (*req("401", GET, "websocket"), ("service", "chat@file")): 1,
            (*req("503", GET, "websocket"), ("service", "empty@file")): 1,
            (*req("101", GET, "websocket"), ("service", "chat@file")): M,
            (*req("101", GET, "websocket"), ("service", "victim@file")): 1,
        }
        if routers_labels:
            def router(name: str, service: str) -> tuple[tuple[str, str], ...]:
                return (("router", f"{name}@file"), ("service", f"{service}@file"))

            def labelled(name: str, service: str, code: str, method: str, protocol: str
                         ) -> tuple[tuple[str, str], ...]:
                return tuple(sorted(router(name, service) + req(code, method, protocol)))

            assert m.series("traefik_router_requests_total") == {
                labelled("app", "app", "200", GET, "http"): N_OK,
                labelled("app", "app", "200", POST, "http"): 1,
                labelled("dead", "dead", "502", GET, "http"): 1,
                labelled("dead", "dead", "502", GET, "websocket"): 1,
                labelled("refuse", "chat", "401", GET, "websocket"): 1,
                labelled("empty", "empty", "503", GET, "websocket"): 1,
                labelled("chat", "chat", "101", GET, "websocket"): M,
                labelled("victim", "victim", "101", GET, "websocket"): 1,
            }
            assert m.series("wsgate_router_websocket_closes_total") == {
                (("closed_by", "client"), ("code", "1000"), *router("chat", "chat")): M,
                (("closed_by", "proxy"), ("code", "1014"), *router("victim", "victim")): 1,
            }
            assert m.series("wsgate_router_websocket_handshake_failures_total") == {
                (("reason", "backend_unreachable"), *router("dead", "dead")): 1,
                (("reason", "backend_refused"), *router("refuse", "chat")): 1,
                (("reason", "no_server"), *router("empty", "empty")): 1,
            }
            assert m.series("wsgate_router_open_websockets") == {
                router("chat", "chat"): 0, router("victim", "victim"): 0}
            assert m.series("wsgate_router_websocket_session_duration_seconds_count") == {
                router("chat", "chat"): M, router("victim", "victim"): 1}
        else:
            assert not any(n.startswith(("traefik_router_", "wsgate_router_"))
                           for n in m.names())

        # connections: every client connection is closed; the scrape's own is open
        assert m.series("traefik_open_connections") == {
            (("entrypoint", "web"), ("protocol", "TCP")): 0,
            (("entrypoint", "web2"), ("protocol", "TCP")): 0,
            (("entrypoint", "traefik"), ("protocol", "TCP")): 1,
        }

        # wsgate's WebSocket families
        assert m.series("wsgate_entrypoint_open_websockets") == {
            (("entrypoint", "web"),): 0, (("entrypoint", "web2"),): 0}
        assert m.series("wsgate_entrypoint_websocket_messages_total", entrypoint="web") == {
            (("direction", "client_to_backend"),): M * K,
            (("direction", "backend_to_client"),): M * K}
        assert m.series("wsgate_entrypoint_websocket_messages_total", entrypoint="web2") == {
            (("direction", "client_to_backend"),): 1,
            (("direction", "backend_to_client"),): 1}
        assert m.series("wsgate_entrypoint_websocket_bytes_total", entrypoint="web") == {
            (("direction", "client_to_backend"),): client_bytes,
            (("direction", "backend_to_client"),): backend_bytes}
        victim_bytes = m.series("wsgate_entrypoint_websocket_bytes_total", entrypoint="web2")
        # the backend's one echo; the client's message (and, when it got there before wsgate
        # closed the connection, the client's reply to the 1014)
        assert victim_bytes[(("direction", "backend_to_client"),)] == \
            SERVER_FRAME_OVERHEAD + len("last words")
        assert victim_bytes[(("direction", "client_to_backend"),)] in (
            CLIENT_FRAME_OVERHEAD + len("last words"),
            CLIENT_FRAME_OVERHEAD * 2 + len("last words") + 2 + len("backend went away"))
        assert m.series("wsgate_entrypoint_websocket_closes_total") == {
            (("closed_by", "client"), ("code", "1000"), ("entrypoint", "web")): M,
            (("closed_by", "proxy"), ("code", "1014"), ("entrypoint", "web2")): 1,
        }
        assert m.series("wsgate_entrypoint_websocket_handshake_failures_total") == {
            (("entrypoint", "web"), ("reason", "no_router")): 1,
            (("entrypoint", "web"), ("reason", "backend_unreachable")): 1,
            (("entrypoint", "web"), ("reason", "backend_refused")): 1,
            (("entrypoint", "web"), ("reason", "no_server")): 1,
        }
        assert m.series("wsgate_entrypoint_websocket_session_duration_seconds_count") == {
            (("entrypoint", "web"),): M, (("entrypoint", "web2"),): 1}
        assert m.series("wsgate_service_websocket_session_duration_seconds_count") == {
            (("service", "chat@file"),): M, (("service", "victim@file"),): 1}
        assert m.series("wsgate_service_websocket_messages_total", service="chat@file") == {
            (("direction", "client_to_backend"),): M * K,
            (("direction", "backend_to_client"),): M * K}
        assert m.series("wsgate_service_server_open_websockets") == {
            (("service", "chat@file"), ("url", f"http://127.0.0.1:{ws_port}")): 0,
            (("service", "victim@file"), ("url", f"http://127.0.0.1:{victim_port}")): 0,
        }

        # -- a reload: counted, and the series of the removed router and service go ----------
        dyn_path.write_text(yaml.safe_dump(
            _dynamic(http_port, ws_port, victim_port, dead_port, with_dead=False)))
        gate.proc.wait_for_count(r"configuration applied", 2)
        after = scrape(ops)
        assert after.value("traefik_config_reloads_total") == 2
        assert after.value("traefik_config_last_reload_success") == 1
        assert after.series("traefik_service_requests_total", service="dead@file") == {}
        assert after.series("traefik_router_requests_total", router="dead@file") == {}
        assert after.series("traefik_entrypoint_requests_total", entrypoint="web") == \
            web_requests
    finally:
        gate.stop()
        for proc in (http_proc, ws_proc, victim):
            proc.stop()
