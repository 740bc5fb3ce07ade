"""The dashboard: one self-contained page (inline CSS and JavaScript, nothing fetched from
elsewhere, no build step) that reads the API and listens to ``<basePath>/api/ws`` for live
counts of open connections and WebSockets.

Served by ``api@internal`` at ``<basePath>/dashboard/`` and by ``dashboard@internal``, which also
redirects ``/`` and ``/dashboard`` there (what Traefik's internal dashboard router and its
redirect and strip-prefix middlewares do).
"""

from __future__ import annotations

import json

from twisted.web.resource import Resource
from twisted.web.server import Request

#: Replaced by the JSON-encoded configuration of the page.
_CONFIG_MARK = "/*WSGATE_CONFIG*/null"

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>wsgate dashboard</title>
<style>
:root { --bg:#f6f7f9; --fg:#1d2330; --muted:#667085; --card:#fff; --line:#e4e7ec;
        --ok:#12805c; --warn:#b54708; --err:#c0262d; --accent:#2955c8; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:16px; padding:12px 24px; background:#1d2330;
         color:#fff; }
header h1 { font-size:18px; margin:0; font-weight:600; }
header .version { color:#aab4c8; font-size:12px; }
header .live { margin-left:auto; font-size:12px; padding:3px 10px; border-radius:12px;
               background:#475467; }
header .live.on { background:var(--ok); }
main { padding:16px 24px 48px; max-width:1400px; }
section { margin-top:20px; }
h2 { font-size:15px; margin:0 0 8px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
        padding:12px 16px; min-width:170px; }
.card .n { font-size:26px; font-weight:600; }
.card .sub { color:var(--muted); font-size:12px; }
.card.big .n { color:var(--accent); }
table { width:100%; border-collapse:collapse; background:var(--card);
        border:1px solid var(--line); border-radius:8px; overflow:hidden; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { background:#f0f2f5; font-weight:600; font-size:12px; color:var(--muted); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break:break-all; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:11px;
         font-weight:600; color:#fff; background:var(--muted); }
.badge.enabled, .badge.UP { background:var(--ok); }
.badge.warning { background:var(--warn); }
.badge.disabled, .badge.DOWN { background:var(--err); }
.errors { color:var(--err); font-size:12px; margin:2px 0 0; padding-left:16px; }
.server { display:flex; gap:8px; align-items:center; }
.muted { color:var(--muted); }
#problems li { margin-bottom:4px; }
.empty { color:var(--muted); padding:8px 0; }
</style>
</head>
<body>
<header>
  <h1 id="title">wsgate</h1>
  <span class="version" id="version"></span>
  <span class="live" id="live-status">connecting…</span>
</header>
<main>
  <section>
    <div class="cards">
      <div class="card big"><div class="n" id="ws-total">0</div>
        <div class="sub">open WebSockets</div></div>
      <div class="card"><div class="n" id="conn-total">0</div>
        <div class="sub">open connections</div></div>
      <div class="card"><div class="n" id="routers-total">–</div>
        <div class="sub" id="routers-sub">routers</div></div>
      <div class="card"><div class="n" id="services-total">–</div>
        <div class="sub" id="services-sub">services</div></div>
      <div class="card"><div class="n" id="middlewares-total">–</div>
        <div class="sub" id="middlewares-sub">middlewares</div></div>
    </div>
  </section>
  <section id="problems-section">
    <h2>Configuration errors</h2>
    <ul id="problems"></ul>
  </section>
  <section>
    <h2>EntryPoints</h2>
    <table><thead><tr><th>Name</th><th>Address</th><th class="num">Connections</th>
      <th class="num">WebSockets</th></tr></thead><tbody id="entrypoints"></tbody></table>
  </section>
  <section>
    <h2>Routers</h2>
    <table><thead><tr><th>Status</th><th>Name</th><th>Rule</th><th>EntryPoints</th>
      <th>Middlewares</th><th>Service</th><th class="num">Priority</th>
      <th class="num">WebSockets</th></tr></thead><tbody id="routers"></tbody></table>
  </section>
  <section>
    <h2>Services</h2>
    <table><thead><tr><th>Status</th><th>Name</th><th>Type</th><th>Servers</th>
      <th class="num">WebSockets</th></tr></thead><tbody id="services"></tbody></table>
  </section>
  <section>
    <h2>Middlewares</h2>
    <table><thead><tr><th>Status</th><th>Name</th><th>Type</th><th>Used by</th></tr></thead>
      <tbody id="middlewares"></tbody></table>
  </section>
</main>
<script>
"use strict";
const CONFIG = /*WSGATE_CONFIG*/null || {base: "/", name: ""};
const BASE = CONFIG.base.endsWith("/") ? CONFIG.base : CONFIG.base + "/";
const state = {entrypoints: [], routers: [], services: [], middlewares: [], diagnostics: [],
               live: null, generation: null};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
function badge(text) { return el("span", {class: "badge " + text}, text); }
function errorList(errors) {
  if (!errors || !errors.length) return null;
  return el("ul", {class: "errors"}, ...errors.map(e => el("li", {}, e)));
}
function fill(id, rows, columns) {
  const body = document.getElementById(id);
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", {colspan: String(columns), class: "empty"}, "none")));
  }
  for (const row of rows) body.append(row);
}
async function getJSON(path) {
  const response = await fetch(BASE + "api/" + path, {cache: "no-store"});
  if (!response.ok) throw new Error(path + ": " + response.status);
  return [await response.json(), response];
}
async function getAll(path) {
  let page = 1, out = [];
  for (let i = 0; i < 1000; i++) {
    const [items, response] = await getJSON(path + "?per_page=100&page=" + page);
    out = out.concat(items);
    const next = parseInt(response.headers.get("X-Next-Page") || "1", 10);
    if (!(next > page)) break;
    page = next;
  }
  return out;
}
function liveCount(kind, name) {
  const ws = state.live && state.live.websockets;
  return ws && ws[kind] && ws[kind][name] ? ws[kind][name] : 0;
}
function health(service, url, fallback) {
  const live = state.live && state.live.serverStatus && state.live.serverStatus[service];
  return (live && live[url]) || fallback || "UP";
}

function renderOverview(overview) {
  for (const kind of ["routers", "services", "middlewares"]) {
    const s = overview.http[kind];
    document.getElementById(kind + "-total").textContent = s.total;
    document.getElementById(kind + "-sub").textContent =
      kind + (s.warnings ? ", " + s.warnings + " warning(s)" : "") +
      (s.errors ? ", " + s.errors + " error(s)" : "");
  }
}
function renderEntryPoints() {
  fill("entrypoints", state.entrypoints.map(ep => el("tr", {"data-entrypoint": ep.name},
    el("td", {}, ep.name), el("td", {}, el("code", {}, ep.address || "")),
    el("td", {class: "num", "data-conn-entrypoint": ep.name},
       (state.live && state.live.connections[ep.name]) || 0),
    el("td", {class: "num", "data-ws-entrypoint": ep.name},
       liveCount("entryPoints", ep.name)))), 4);
}
function renderRouters() {
  fill("routers", state.routers.map(r => el("tr", {"data-router": r.name},
    el("td", {}, badge(r.status)),
    el("td", {}, r.name, errorList(r.error)),
    el("td", {}, el("code", {}, r.rule || "")),
    el("td", {}, (r.using || r.entryPoints || []).join(", ")),
    el("td", {}, (r.middlewares || []).join(", ")),
    el("td", {}, r.service || ""),
    el("td", {class: "num"}, r.priorityStr || r.priority || ""),
    el("td", {class: "num", "data-ws-router": r.name}, liveCount("routers", r.name)))), 8);
}
function renderServices() {
  fill("services", state.services.map(s => {
    const servers = s.loadBalancer && s.loadBalancer.servers ? s.loadBalancer.servers : [];
    const perServer = (state.live && state.live.websockets.servers[s.name]) || {};
    const list = el("div", {}, ...servers.map(sv => el("div", {class: "server"},
      badge(health(s.name, sv.url, s.serverStatus && s.serverStatus[sv.url])),
      el("code", {}, sv.url),
      el("span", {class: "muted", "data-ws-server": s.name + " " + sv.url},
         (perServer[sv.url] || 0) + " ws"))));
    return el("tr", {"data-service": s.name},
      el("td", {}, badge(s.status)), el("td", {}, s.name, errorList(s.error)),
      el("td", {}, s.type || "internal"), el("td", {}, list),
      el("td", {class: "num", "data-ws-service": s.name}, liveCount("services", s.name)));
  }), 5);
}
function renderMiddlewares() {
  fill("middlewares", state.middlewares.map(m => el("tr", {"data-middleware": m.name},
    el("td", {}, badge(m.status)), el("td", {}, m.name, errorList(m.error)),
    el("td", {}, m.type || ""), el("td", {}, (m.usedBy || []).join(", ")))), 4);
}
function renderProblems() {
  const items = [];
  for (const [kind, list] of [["router", state.routers], ["service", state.services],
                              ["middleware", state.middlewares]]) {
    for (const o of list) for (const e of (o.error || [])) {
      items.push(el("li", {}, badge(o.status), " ", kind + " " + o.name + ": " + e));
    }
  }
  for (const d of state.diagnostics) {
    items.push(el("li", {}, badge(d.level === "error" ? "disabled" : "warning"), " ",
                  (d.location ? d.location + ": " : "") + (d.path ? d.path + ": " : "") +
                  d.message));
  }
  const list = document.getElementById("problems");
  list.replaceChildren(...items);
  if (!items.length) list.append(el("li", {class: "empty"}, "none"));
}
function renderLive() {
  const live = state.live;
  if (!live) return;
  document.getElementById("ws-total").textContent = live.websockets.total;
  document.getElementById("conn-total").textContent =
    Object.values(live.connections).reduce((a, b) => a + b, 0);
  renderEntryPoints();
  renderRouters();
  renderServices();
}
async function refresh() {
  try {
    const [[version], [overview], entrypoints, routers, services, middlewares, [diagnostics]] =
      await Promise.all([getJSON("version"), getJSON("overview"), getAll("entrypoints"),
        getAll("http/routers"), getAll("http/services"), getAll("http/middlewares"),
        getJSON("wsgate/diagnostics")]);
    document.getElementById("version").textContent = version.Codename + " " + version.Version;
    const name = CONFIG.name || version.dashboardName;
    if (name) { document.getElementById("title").textContent = name; document.title = name; }
    Object.assign(state, {entrypoints, routers, services, middlewares, diagnostics});
    renderOverview(overview);
    renderEntryPoints(); renderRouters(); renderServices(); renderMiddlewares();
    renderProblems();
    document.body.setAttribute("data-loaded", "true");
  } catch (err) {
    document.getElementById("live-status").textContent = "API error: " + err.message;
  }
}
let backoff = 500;
function connectLive() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + BASE + "api/ws");
  const status = document.getElementById("live-status");
  socket.onopen = () => {
    backoff = 500; status.textContent = "live"; status.className = "live on";
  };
  socket.onmessage = (event) => {
    const snapshot = JSON.parse(event.data);
    const changed = state.generation !== null && snapshot.generation !== state.generation;
    state.generation = snapshot.generation;
    state.live = snapshot;
    renderLive();
    if (changed) refresh();
  };
  socket.onclose = () => {
    status.textContent = "reconnecting…"; status.className = "live";
    setTimeout(connectLive, backoff);
    backoff = Math.min(backoff * 2, 10000);
  };
}
refresh();
connectLive();
</script>
</body>
</html>
"""


def render_page(base_path: str = "/", name: str = "") -> bytes:
    """The page for a basePath; the configuration is JSON with ``<`` escaped."""
    config = json.dumps({"base": base_path if base_path.endswith("/") else base_path + "/",
                         "name": name}).replace("<", "\\u003c")
    return PAGE.replace(_CONFIG_MARK, config).encode("utf-8")


class DashboardResource(Resource):
    """The page at ``<basePath>/dashboard/``; ``/`` (``dashboard@internal`` only) and
    ``<basePath>/dashboard`` redirect there; anything else is 404."""

    isLeaf = True

    def __init__(self, base_path: str = "/", name: str = "", *,
                 redirect_root: bool = False) -> None:
        super().__init__()
        self.base = base_path.rstrip("/")
        self.page = render_page(base_path, name)
        self.redirect_root = redirect_root

    def render(self, request: Request) -> bytes:
        path = (request.path or b"/").decode("latin-1")
        target = self.base + "/dashboard/"
        if path == target:
            if request.method not in (b"GET", b"HEAD"):
                request.setResponseCode(405)
                request.setHeader(b"allow", b"GET, HEAD")
                return b""
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            request.setHeader(b"cache-control", b"no-cache")
            request.setHeader(b"x-content-type-options", b"nosniff")
            return self.page
        if path == self.base + "/dashboard" or (self.redirect_root and path in ("/", "")):
            request.setResponseCode(301)
            request.setHeader(b"location", target.encode("latin-1"))
            return b""
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"404 page not found\n"


__all__ = ["PAGE", "DashboardResource", "render_page"]
