"""The differential corpus: batches of cases read from ``cases/*.yml``, run on both proxies.

A batch file holds one configuration (static and dynamic, as a user writes them) and the
requests sent to it; both proxies are started once per batch. Keys of a batch file:

``description``
    what the batch is about.
``backends`` / ``tls_backends``
    names of recording backends (plain / TLS); ``{backend:NAME}`` in the configuration is
    replaced by ``127.0.0.1:PORT`` of that backend.
``certificates``
    ``NAME: [dns names]``: a self-signed certificate made by the test;
    ``{cert:NAME}`` and ``{key:NAME}`` are replaced by the paths of its files.
``static`` / ``dynamic``
    the configuration. EntryPoint addresses are set by the harness (127.0.0.1, a free port).
``defaults``
    request keys applied to every case (``headers`` are appended unless the case has them).
``cases``
    a list of cases, each with ``name``, ``entryPoint`` (default ``web``), ``request``, and
    optionally:

    - ``expect``: ``{status, backend, target, headers: {name: value}}`` checked on Traefik's
      answer, so a case that does not test what it says it tests is noticed;
    - ``requires``: wsgate features the case needs that are not implemented yet; the case is
      an expected failure (strict, so it must be unmarked once it passes);
    - ``bug``: a difference reported to be fixed in wsgate (the text says what): also a strict
      expected failure;
    - ``repeat``: send the request this many times (default 1); the backends chosen are
      compared in order, or as counts with ``order: any`` (for choices Traefik itself makes
      in no fixed order, such as the first pick of a weighted service);
    - ``differs``: ``{what: [...], reason: ...}``: a documented, accepted difference (listed in
      docs/compatibility.md). The listed aspects must differ, and are left out of the
      comparison; aspects are ``status``, ``backend``, ``target``, ``ws_message``,
      ``header:NAME`` (values), ``case:NAME`` (the spelling of a header's name) or
      ``response:NAME`` (a response header named in ``response_headers``);
    - ``response_headers``: response headers to compare too (``Location`` of a redirect...).

A ``request`` has ``method``, ``target`` (raw bytes of the request-target), ``host``,
``headers`` (a list of ``[name, value]`` in order), ``body``, ``websocket`` (adds the upgrade
headers), ``tls`` and ``sni``.
"""

from __future__ import annotations

import copy
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.differential import client
from tests.differential.backend import RecordingBackends, Seen
from tests.differential.certs import make_cert
from tests.differential.proxies import (
    READY_BACKEND,
    Traefik,
    WsgateProxy,
    wait_routed,
    with_sentinel,
)

CASES_DIR = Path(__file__).resolve().parent / "cases"

#: Headers left out of every comparison, and why.
IGNORED_HEADERS = {
    # The proxy's host name: both use the machine's name, but that is not behaviour under test.
    "x-forwarded-server",
    # The test's own correlation id, different on purpose for each proxy.
    "x-diff-id",
}

_PLACEHOLDER = re.compile(r"\{(backend|cert|key):([\w-]+)\}")


@dataclass
class Case:
    batch: str
    name: str
    entry_point: str
    request: dict[str, Any]
    expect: dict[str, Any]
    requires: list[str]
    differs: dict[str, Any] | None
    bug: str | None = None
    response_headers: list[str] = field(default_factory=list)
    repeat: int = 1
    order: str = "exact"

    @property
    def id(self) -> str:
        return f"{self.batch}:{self.name}"


@dataclass
class Batch:
    name: str
    description: str
    backends: list[str]
    tls_backends: list[str]
    certificates: dict[str, list[str]]
    static: dict[str, Any]
    dynamic: dict[str, Any]
    cases: list[Case] = field(default_factory=list)


@dataclass(frozen=True)
class Observation:
    """One proxy's handling of one request: the client's view and the backend's."""

    status: int
    backend: str | None
    seen: Seen | None
    ws_message: bytes | None
    error: str | None
    response_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        parts = [f"status={self.status}", f"backend={self.backend}"]
        if self.seen is not None:
            parts.append(f"target={self.seen.target!r}")
        if self.error:
            parts.append(f"error={self.error}")
        return " ".join(parts)


@dataclass
class BatchRun:
    """Both proxies' observations of every case of a batch, and their logs."""

    observations: dict[str, tuple[Observation, Observation]]
    traefik_log: str
    wsgate_log: str


def load_batches(directory: Path = CASES_DIR) -> list[Batch]:
    batches = []
    for path in sorted(directory.glob("*.yml")):
        raw = yaml.safe_load(path.read_text())
        batch = Batch(name=path.stem, description=raw.get("description", ""),
                      backends=list(raw.get("backends", [])),
                      tls_backends=list(raw.get("tls_backends", [])),
                      certificates=dict(raw.get("certificates", {})),
                      static=raw.get("static") or {"entryPoints": {"web": {}}},
                      dynamic=raw.get("dynamic") or {})
        defaults = raw.get("defaults", {})
        names = set()
        for item in raw.get("cases", []):
            request = {**{k: v for k, v in defaults.items() if k != "headers"},
                       **item.get("request", {})}
            headers = [list(h) for h in item.get("request", {}).get("headers", [])]
            present = {h[0].lower() for h in headers}
            headers += [list(h) for h in defaults.get("headers", []) if h[0].lower() not in present]
            request["headers"] = headers
            case = Case(batch=batch.name, name=item["name"],
                        entry_point=item.get("entryPoint", "web"), request=request,
                        expect=item.get("expect", {}), requires=list(item.get("requires", [])),
                        differs=item.get("differs"), bug=item.get("bug"),
                        response_headers=list(item.get("response_headers", [])),
                        repeat=int(item.get("repeat", 1)), order=item.get("order", "exact"))
            if case.order not in ("exact", "any"):
                raise ValueError(f"{path}: {case.name}: order must be exact or any")
            if case.name in names:
                raise ValueError(f"{path}: duplicate case name {case.name}")
            names.add(case.name)
            batch.cases.append(case)
        batches.append(batch)
    return batches


def substitute(tree: Any, values: dict[tuple[str, str], str]) -> Any:
    """Replace ``{backend:x}``, ``{cert:x}`` and ``{key:x}`` in every string of ``tree``."""
    if isinstance(tree, dict):
        return {k: substitute(v, values) for k, v in tree.items()}
    if isinstance(tree, list):
        return [substitute(v, values) for v in tree]
    if isinstance(tree, str):
        def one(m: re.Match[str]) -> str:
            key = (m.group(1), m.group(2))
            if key not in values:
                raise KeyError(f"no {key[0]} named {key[1]!r} in this batch")
            return values[key]
        return _PLACEHOLDER.sub(one, tree)
    return tree


def _own_ports(headers: tuple[tuple[str, str], ...], ports: dict[str, int]
               ) -> tuple[tuple[str, str], ...]:
    """Response headers with the proxy's own port numbers named (``:{port:websecure}``): the
    two proxies listen on different ports, so a redirect names different ones."""
    out = []
    for name, value in headers:
        for ep, port in ports.items():
            value = re.sub(rf":{port}\b", f":{{port:{ep}}}", value)
        out.append((name, value))
    return tuple(out)


def _observe(ports: dict[str, int], case: Case, prefix: str,
             backends: RecordingBackends) -> Observation:
    """Send the case (``repeat`` times); the first answer stands for all but the backends."""
    answers, chosen = [], []
    for i in range(case.repeat):
        diff_id = f"{prefix}-{case.name}-{i}"
        answers.append(client.send(ports[case.entry_point], case.request, diff_id))
        seen = backends.seen(diff_id)
        chosen.append((seen.backend if seen else None, seen))
    first = answers[0]
    backend, message = chosen[0][0], first.ws_message
    if case.repeat > 1:
        names = [name or "-" for name, _ in chosen]
        messages = [a.ws_message or b"-" for a in answers]
        if case.order == "any":
            names, messages = sorted(names), sorted(messages)
        backend, message = ",".join(names), b",".join(messages)
    return Observation(first.status, backend, chosen[0][1], message, first.error,
                       _own_ports(first.headers, ports))


def run_batch(batch: Batch, tmp: Path, traefik_binary: str) -> BatchRun:
    """Start both proxies on the batch's configuration, send every case to each, stop them."""
    values: dict[tuple[str, str], str] = {}
    for name, names in batch.certificates.items():
        cert, key = make_cert(tmp / "certs", names, stem=name)
        values[("cert", name)] = str(cert)
        values[("key", name)] = str(key)
    tls_context = None
    if batch.tls_backends:
        cert, key = make_cert(tmp / "certs", ["127.0.0.1", "localhost"], stem="backend")
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(cert, key)
        tls_context.set_alpn_protocols(["http/1.1"])
    backends = RecordingBackends([*batch.backends, *batch.tls_backends, READY_BACKEND],
                                 tls_names=batch.tls_backends, tls_context=tls_context)
    results: dict[str, tuple[Observation, Observation]] = {}
    traefik = wsgate = None
    try:
        for name, port in backends.ports.items():
            values[("backend", name)] = f"127.0.0.1:{port}"
        static = substitute(copy.deepcopy(batch.static), values)
        dynamic = with_sentinel(static, substitute(copy.deepcopy(batch.dynamic), values),
                                backends)
        traefik = Traefik(traefik_binary, tmp / "traefik", static, dynamic)
        wsgate = WsgateProxy(tmp / "wsgate", static, dynamic)
        # Both start at once; Traefik is polled in a thread while wsgate's log is awaited.
        traefik_error: list[BaseException] = []

        def traefik_ready() -> None:
            try:
                wait_routed(static, traefik.ports, "traefik", traefik.proc)  # type: ignore[union-attr]
            except BaseException as exc:
                traefik_error.append(exc)

        waiter = threading.Thread(target=traefik_ready, daemon=True)
        waiter.start()
        wsgate.wait_ready()
        wait_routed(static, wsgate.ports, "wsgate", wsgate.proc)
        waiter.join(60)
        if traefik_error:
            raise traefik_error[0]
        if waiter.is_alive():
            raise AssertionError("Traefik was not routing after 60 s")
        for case in batch.cases:
            t = _observe(traefik.ports, case, "t", backends)
            w = _observe(wsgate.ports, case, "w", backends)
            results[case.name] = (t, w)
    finally:
        for proxy in (traefik, wsgate):
            if proxy is not None:
                proxy.stop()
        backends.close()
    assert traefik is not None and wsgate is not None
    return BatchRun(results, traefik.proc.output(), wsgate.proc.output())


def _headers(seen: Seen) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in seen.headers:
        out.setdefault(name.lower(), []).append(value)
    return out


def _spellings(seen: Seen) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, _ in seen.headers:
        out.setdefault(name.lower(), []).append(name)
    return out


def differences(traefik: Observation, wsgate: Observation,
                response_headers: list[str] | None = None) -> dict[str, str]:
    """Every aspect in which wsgate's handling differs from Traefik's, described."""
    diff: dict[str, str] = {}
    for name in response_headers or []:
        t_values = [v for n, v in traefik.response_headers if n.lower() == name.lower()]
        w_values = [v for n, v in wsgate.response_headers if n.lower() == name.lower()]
        if t_values != w_values:
            diff[f"response:{name.lower()}"] = f"traefik {t_values}, wsgate {w_values}"
    if traefik.status != wsgate.status:
        diff["status"] = f"traefik {traefik.status}, wsgate {wsgate.status}"
    if traefik.backend != wsgate.backend:
        diff["backend"] = f"traefik {traefik.backend}, wsgate {wsgate.backend}"
    if traefik.ws_message != wsgate.ws_message:
        diff["ws_message"] = f"traefik {traefik.ws_message!r}, wsgate {wsgate.ws_message!r}"
    t, w = traefik.seen, wsgate.seen
    if t is None or w is None:
        return diff
    if t.method != w.method:
        diff["method"] = f"traefik {t.method}, wsgate {w.method}"
    if t.target != w.target:
        diff["target"] = f"traefik {t.target!r}, wsgate {w.target!r}"
    if t.version != w.version:
        diff["version"] = f"traefik {t.version}, wsgate {w.version}"
    if t.body_length != w.body_length:
        diff["body"] = f"traefik {t.body_length} bytes, wsgate {w.body_length} bytes"
    th, wh = _headers(t), _headers(w)
    for name in sorted(set(th) | set(wh)):
        if name in IGNORED_HEADERS:
            continue
        if th.get(name) != wh.get(name):
            diff[f"header:{name}"] = f"traefik {th.get(name)}, wsgate {wh.get(name)}"
    ts, ws = _spellings(t), _spellings(w)
    for name in sorted(set(ts) & set(ws)):
        if name not in IGNORED_HEADERS and ts[name] != ws[name]:
            diff[f"case:{name}"] = f"traefik {ts[name]}, wsgate {ws[name]}"
    return diff


def expectation_errors(case: Case, traefik: Observation) -> list[str]:
    """Where Traefik's own answer is not what the case says it tests."""
    errors = []
    exp = case.expect
    if "status" in exp and traefik.status != exp["status"]:
        errors.append(f"status {traefik.status}, expected {exp['status']}")
    if "backend" in exp and traefik.backend != exp["backend"]:
        errors.append(f"backend {traefik.backend}, expected {exp['backend']}")
    if "target" in exp:
        got = traefik.seen.target if traefik.seen else None
        if got != exp["target"]:
            errors.append(f"target {got!r}, expected {exp['target']!r}")
    for name, value in (exp.get("headers") or {}).items():
        got = traefik.seen.header(name) if traefik.seen else None
        if got != value:
            errors.append(f"header {name}: {got!r}, expected {value!r}")
    return errors
