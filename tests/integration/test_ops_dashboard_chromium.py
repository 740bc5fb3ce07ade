"""The dashboard in headless Chromium: it lists the routers of the test configuration, and its
open-WebSocket count follows a real client connecting and disconnecting.

Two setups: a WsgateService in the test's reactor whose sessions are reported by a stand-in
backend, and a real wsgate process (``twistd -n wsgate``) relaying a real client's session to a
real WebSocket backend. Either way the page is served by wsgate itself (dashboard and API
behind the ``traefik`` entryPoint, live counts over its ``/api/ws`` WebSocket). Chromium is
driven over the DevTools protocol with autobahn as the client, only against 127.0.0.1, and
every wait is on an event (a DevTools answer, a DOM mutation seen by a MutationObserver in
the page), bounded by a timeout.

Needs Debian's ``chromium`` package; skipped without it unless WSGATE_REQUIRE_CHROMIUM=1, which
makes its absence a failure (set it in CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import ProcessProtocol

from tests.integration.harness import Wsgate, start_ws_backend
from tests.integration.test_ops_through_wsgate import Running
from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import Mark
from wsgate.config.schema import decode
from wsgate.config.tree import from_plain
from wsgate.ops.observer import RequestRecord, SessionRecord

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p), None)
REQUIRED = os.environ.get("WSGATE_REQUIRE_CHROMIUM", "") not in ("", "0")
TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(CHROMIUM is None and not REQUIRED,
                                reason="chromium is not installed (apt-get install chromium)")

DYNAMIC = {
    "http": {
        "routers": {
            "chat": {"rule": "PathPrefix(`/chat`)", "service": "chat",
                     "entryPoints": ["web"]},
            "feed": {"rule": "Host(`feed.example`)", "service": "chat",
                     "entryPoints": ["web"]},
        },
        "services": {"chat": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}},
    },
}


# --------------------------------------------------------------------------- Chromium

class Browser(ProcessProtocol):
    def __init__(self) -> None:
        self.ready: defer.Deferred[str] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.stderr = b""

    def errReceived(self, data: bytes) -> None:
        self.stderr += data
        found = re.search(rb"DevTools listening on (ws://\S+)", self.stderr)
        if found and not self.ready.called:
            self.ready.callback(found.group(1).decode())

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError("chromium exited:\n" + self.stderr.decode()[-3000:]))
        self.ended.callback(None)


class CDPError(Exception):
    pass


class DevTools(WebSocketClientProtocol):  # type: ignore[misc]
    """A DevTools protocol client: commands answered by id, events awaited by name."""

    def onOpen(self) -> None:
        self.next_id = 0
        self.pending: dict[int, defer.Deferred[Any]] = {}
        self.event_waiters: dict[str, list[defer.Deferred[Any]]] = {}
        self.factory.opened.callback(self)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> defer.Deferred[Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        d: defer.Deferred[Any] = defer.Deferred()
        self.pending[self.next_id] = d
        self.sendMessage(json.dumps(message).encode())
        return d

    def event(self, method: str) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.event_waiters.setdefault(method, []).append(d)
        return d

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = json.loads(payload)
        if "id" in message:
            d = self.pending.pop(message["id"])
            if "error" in message:
                d.errback(CDPError(message["error"]))
            else:
                d.callback(message.get("result", {}))
        elif "method" in message:
            for d in self.event_waiters.pop(message["method"], []):
                d.callback(message.get("params", {}))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        for d in list(getattr(self, "pending", {}).values()):
            d.errback(CDPError(f"DevTools connection closed: {code} {reason}"))


def within(d: defer.Deferred[Any], seconds: float = TIMEOUT) -> defer.Deferred[Any]:
    return d.addTimeout(seconds, reactor)


async def devtools(url: str) -> DevTools:
    factory = WebSocketClientFactory(url)
    factory.protocol = DevTools
    factory.opened = defer.Deferred()
    factory.setProtocolOptions(maxMessagePayloadSize=0, maxFramePayloadSize=0)
    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    client: DevTools = await within(factory.opened)
    return client


class Page:
    def __init__(self, tools: DevTools, session: str) -> None:
        self.tools = tools
        self.session = session

    async def wait_for(self, expression: str) -> Any:
        """Resolve when ``expression`` is truthy in the page (re-checked on every DOM change);
        its value is returned."""
        script = """
        new Promise((resolve, reject) => {
          const test = () => { try { return (EXPRESSION); } catch (e) { return undefined; } };
          let observer = null, timer = null;
          const check = () => {
            const value = test();
            if (value) { if (observer) observer.disconnect(); clearTimeout(timer);
                         resolve(value); }
          };
          observer = new MutationObserver(check);
          observer.observe(document, {subtree: true, childList: true,
                                      characterData: true, attributes: true});
          timer = setTimeout(() => { observer.disconnect();
            reject(new Error("timed out; page text: " + document.body.innerText)); }, MILLIS);
          check();
        })""".replace("EXPRESSION", expression).replace("MILLIS", str(int(TIMEOUT * 1000) - 2000))
        result = await within(self.tools.call(
            "Runtime.evaluate", {"expression": script, "awaitPromise": True,
                                 "returnByValue": True}, self.session))
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[Browser, Any]]:
    if CHROMIUM is None:
        pytest.fail("WSGATE_REQUIRE_CHROMIUM is set but chromium is not installed")
    proto = Browser()
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'chromium'}", "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0", "about:blank"]
    process = reactor.spawnProcess(proto, CHROMIUM, args, env=dict(os.environ))
    yield proto, process
    if not proto.ended.called:
        process.signalProcess("TERM")
        try:
            pytest_twisted.blockon(within(proto.ended, 10))
        except defer.TimeoutError:
            process.signalProcess("KILL")
            pytest_twisted.blockon(proto.ended)


# --------------------------------------------------------------------------- stand-in backend

class Reporting(WebSocketServerProtocol):  # type: ignore[misc]
    """An echo backend that reports its sessions like the data path does around a relay."""

    def onOpen(self) -> None:
        self.session = SessionRecord(RequestRecord(
            "web", "GET", "/chat", status=101, router="chat@file", service="chat@file",
            server_url="http://127.0.0.1:9", protocol="websocket"))
        self.factory.observer.websocket_opened(self.session)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if hasattr(self, "session"):
            self.session.close_code = code
            self.session.closed_by = "client"
            self.factory.observer.websocket_closed(self.session)


class Client(WebSocketClientProtocol):  # type: ignore[misc]
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed.callback(code)


async def open_dashboard(proto: Browser, url: str) -> tuple[DevTools, Page]:
    """A new tab showing ``url``, once its load event fired."""
    tools = await devtools(await within(proto.ready))
    target = await within(tools.call("Target.createTarget", {"url": "about:blank"}))
    attached = await within(tools.call("Target.attachToTarget",
                                       {"targetId": target["targetId"], "flatten": True}))
    page = Page(tools, attached["sessionId"])
    await within(tools.call("Page.enable", {}, page.session))
    loaded = tools.event("Page.loadEventFired")
    await within(tools.call("Page.navigate", {"url": url}, page.session))
    await within(loaded)
    return tools, page


LOADED_ROUTERS = (
    "document.body.dataset.loaded === 'true' && "
    "document.getElementById('live-status').textContent === 'live' && "
    "Array.from(document.querySelectorAll('[data-router]'))"
    ".map(e => e.dataset.router).join(' ')")


def live_count(total: int, router: str) -> str:
    """A page expression: the total and the router's open-WebSocket count, once they are
    ``total`` and the router's row shows a number."""
    return (f"document.getElementById('ws-total').textContent === '{total}' && "
            f"document.querySelector('[data-ws-router=\"{router}\"]').textContent")


# --------------------------------------------------------------------------- the tests

@pytest_twisted.ensureDeferred
async def test_dashboard_lists_routers_and_follows_live_websockets(
        browser: tuple[Browser, Any]) -> None:
    proto, _ = browser
    running = Running()
    running.service.provided["file"] = decode(DynamicConfig,
                                              from_plain(DYNAMIC, Mark("test")))
    running.service.reconfigure()
    running.observer.runtime_changed(running.service.gateway.runtime)  # type: ignore[arg-type]
    backend_factory = WebSocketServerFactory()
    backend_factory.protocol = Reporting
    backend_factory.observer = running.observer
    backend = reactor.listenTCP(0, backend_factory, interface="127.0.0.1")
    try:
        tools, page = await open_dashboard(proto,
                                           f"http://127.0.0.1:{running.port}/dashboard/")
        routers = await page.wait_for(LOADED_ROUTERS)
        assert {"chat@file", "feed@file", "ping@internal", "api@internal"} <= set(
            routers.split())
        assert await page.wait_for(
            "document.getElementById('ws-total').textContent === '0' && 'zero'") == "zero"

        client_factory = WebSocketClientFactory(
            f"ws://127.0.0.1:{backend.getHost().port}/chat")
        client_factory.protocol = Client
        client_factory.opened = defer.Deferred()
        client_factory.closed = defer.Deferred()
        await TCP4ClientEndpoint(reactor, "127.0.0.1",
                                 backend.getHost().port).connect(client_factory)
        client = await within(client_factory.opened)
        assert await page.wait_for(live_count(1, "chat@file")) == "1"

        client.sendClose(1000)
        await within(client_factory.closed)
        assert await page.wait_for(live_count(0, "chat@file")) == "0"

        await within(tools.call("Browser.close"))
        await within(proto.ended)
    finally:
        await backend.stopListening()
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_dashboard_of_a_wsgate_process_follows_a_proxied_session(
        browser: tuple[Browser, Any], tmp_path: Path) -> None:
    """The page served by a real wsgate process; the count moves when a client opens a
    session through wsgate to a real backend and when it closes it."""
    proto, _ = browser
    backend, backend_port = start_ws_backend()
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"},
                              "traefik": {"address": "127.0.0.1:0"}},
              "api": {"insecure": True}}
    dynamic = {"http": {
        "routers": {"chat": {"rule": "PathPrefix(`/chat`)", "service": "chat",
                             "entryPoints": ["web"]}},
        "services": {"chat": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{backend_port}"}]}}},
    }}
    gate = Wsgate(tmp_path, static, dynamic)
    try:
        tools, page = await open_dashboard(
            proto, f"http://127.0.0.1:{gate.ports['traefik']}/dashboard/")
        routers = await page.wait_for(LOADED_ROUTERS)
        assert {"chat@file", "api@internal", "dashboard@internal"} <= set(routers.split())
        assert await page.wait_for(live_count(0, "chat@file")) == "0"

        web = gate.ports["web"]
        client_factory = WebSocketClientFactory(f"ws://127.0.0.1:{web}/chat/room")
        client_factory.protocol = Client
        client_factory.opened = defer.Deferred()
        client_factory.closed = defer.Deferred()
        await TCP4ClientEndpoint(reactor, "127.0.0.1", web).connect(client_factory)
        client = await within(client_factory.opened)
        assert await page.wait_for(live_count(1, "chat@file")) == "1"

        client.sendClose(1000)
        assert await within(client_factory.closed) == 1000
        assert await page.wait_for(live_count(0, "chat@file")) == "0"

        await within(tools.call("Browser.close"))
        await within(proto.ended)
    finally:
        gate.stop()
        backend.stop()
    backend.wait_for(r"closed /chat/room code=1000")
