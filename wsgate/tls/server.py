"""Serving TLS: which context a new connection gets, and the TLS transport that uses it.

:class:`ServerTLS` is built from a runtime configuration (once per reload, swapped in with the
routing table). For each connection it is asked, with the server name read from the
ClientHello, for a :class:`Choice`: the TLS options of that name on that entryPoint and the
context serving the best certificate for it (exact name, then wildcard, then the default
store's ``defaultCertificate``, then the generated one), or a :class:`Refusal`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IProtocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from wsgate.config.errors import ConfigError
from wsgate.config.runtime import DEFAULT_TLS_NAME, Route, RuntimeConfig
from wsgate.tls.contexts import ResolvedOptions, build_server_context, resolve_options
from wsgate.tls.material import KeyPair, describe_certificate, load_key_pair
from wsgate.tls.names import (
    HostOptions,
    NameIndex,
    RouterTLSInput,
    build_host_options,
    rule_hosts,
)
from wsgate.tls.transport import CoalescingTLSFactory, CoalescingTLSProtocol

__all__ = [
    "Choice",
    "Refusal",
    "ServerTLS",
    "ServerTLSTransport",
    "build_server_tls",
    "server_tls_factory",
]

log = Logger()

#: Traefik serves every certificate from one store; other store names are accepted, unused.
DEFAULT_STORE = "default"

ContextKey = tuple[tuple[object, ...], str]


@dataclass(frozen=True, slots=True)
class Choice:
    """How to serve one TLS connection: its context and the TLS options it was built from."""

    context: SSL.Context
    options: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A TLS connection that must not be served; ``context`` (if any) fails the handshake
    with an alert, else the connection is closed."""

    reason: str
    context: SSL.Context | None = None


class ServerTLS:
    """Everything about serving TLS for one configuration; immutable once built."""

    def __init__(self, *, entry_points: Iterable[str], host_options: Mapping[str, HostOptions],
                 options: Mapping[str, ResolvedOptions], store: NameIndex[KeyPair],
                 default_pair: Callable[[], KeyPair],
                 contexts: dict[ContextKey, SSL.Context]) -> None:
        self.entry_points = frozenset(entry_points)
        self.host_options = dict(host_options)
        self.options = dict(options)
        self.store = store
        self._default_pair = default_pair
        self.contexts = contexts

    @classmethod
    def empty(cls) -> ServerTLS:
        def no_default() -> KeyPair:
            raise AssertionError("an empty ServerTLS serves nothing")
        return cls(entry_points=(), host_options={}, options={}, store=NameIndex(),
                   default_pair=no_default, contexts={})

    def serves(self, entry_point: str) -> bool:
        """Whether the entryPoint has TLS routers (else a ClientHello is just bad HTTP)."""
        return entry_point in self.entry_points

    def options_for_host(self, entry_point: str, host: str) -> str:
        """The TLS options a request for ``host`` needs on this entryPoint."""
        table = self.host_options.get(entry_point)
        return DEFAULT_TLS_NAME if table is None else table.options_for(host)

    def choose(self, entry_point: str, server_name: str, local_address: str) -> Choice | Refusal:
        """The context for a connection that asked for ``server_name`` (maybe empty)."""
        name = self.options_for_host(entry_point, server_name)
        resolved = self.options.get(name)
        if resolved is None:
            return Refusal(f"TLS options {name} are not defined")
        if resolved.problem:
            return Refusal(f"TLS options {name} cannot be used: {resolved.problem}")
        # Without SNI, a certificate for the address the client reached may still match.
        pair = self.store.lookup(server_name or local_address)
        try:
            if pair is None:
                if resolved.options.sni_strict:
                    shown = repr(server_name) if server_name else "no server name"
                    return Refusal(f"strict SNI (tls.options.{name}): no certificate for "
                                   f"{shown}", self._context(resolved, None))
                pair = self._default_pair()
            return Choice(self._context(resolved, pair), name)
        except (ConfigError, SSL.Error) as exc:
            # Reported once per pair: a failed build is not cached, but it is also not
            # expected (the material was loaded and checked when the configuration was).
            source = pair.source if pair is not None else "no certificate"
            log.error("cannot serve {source} with TLS options {name}: {error}",
                      source=source, name=name, error=str(exc))
            return Refusal(f"cannot build a TLS context for {source}: {exc}")

    def _context(self, resolved: ResolvedOptions, pair: KeyPair | None) -> SSL.Context:
        key: ContextKey = (resolved.key, pair.fingerprint if pair is not None else "")
        ctx = self.contexts.get(key)
        if ctx is None:
            ctx = build_server_context(resolved, pair)
            self.contexts[key] = ctx
        return ctx


def _router_inputs(routes: Iterable[Route]) -> list[RouterTLSInput]:
    out = []
    for route in routes:
        if not route.tls:
            continue
        expr = getattr(route.matcher, "expr", None)
        hosts = rule_hosts(expr if expr is not None else route.rule, route.rule_syntax)
        out.append(RouterTLSInput(route.router, hosts, route.tls_options or DEFAULT_TLS_NAME))
        out.extend(_router_inputs(route.children))
    return out


def build_server_tls(runtime: RuntimeConfig, *, default_pair: Callable[[], KeyPair],
                     previous: ServerTLS | None = None) -> ServerTLS:
    """The TLS side of a configuration, logging what it cannot use.

    ``default_pair`` gives the generated certificate (made once per process, on first need);
    contexts of ``previous`` whose options and certificate are unchanged are reused.
    """
    host_options: dict[str, HostOptions] = {}
    tls_eps: list[str] = []
    for ep, routes in runtime.routes.items():
        inputs = _router_inputs(routes)
        if not inputs:
            continue
        tls_eps.append(ep)
        table = build_host_options(inputs)
        host_options[ep] = table
        for host, routers in table.conflicts.items():
            log.warn("entryPoint {ep}: routers {routers} ask for different TLS options for "
                     "host {host}; the default TLS options are used for it (as in Traefik)",
                     ep=ep, routers=", ".join(routers), host=host)
        for router in table.hostless:
            log.warn("router {router}: its rule names no Host, so the TLS options it names "
                     "apply only to server names that other routers' Host rules give them",
                     router=router)
    if not tls_eps:
        return ServerTLS(entry_points=(), host_options={}, options={}, store=NameIndex(),
                         default_pair=default_pair, contexts={})

    used = {DEFAULT_TLS_NAME}
    for table in host_options.values():
        used |= table.used()
    options: dict[str, ResolvedOptions] = {}
    for name in sorted(used):
        config = runtime.tls_options.get(name)
        if config is None:
            log.error("TLS options {name} are not defined; handshakes that need them are "
                      "refused", name=name)
            continue
        resolved = resolve_options(name, config)
        if resolved.problem:
            log.error("TLS options {name} cannot be used; handshakes that need them are "
                      "refused: {problem}", name=name, problem=resolved.problem)
        options[name] = resolved

    store, default = _load_store(runtime)
    fallback = default_pair if default is None else (lambda: default)
    # Contexts of the previous configuration whose options and certificate are unchanged are
    # kept: the same material gives the same key.
    keys = {r.key for r in options.values() if not r.problem}
    pairs = {p.fingerprint for p in _distinct(store)} | {"", fallback().fingerprint}
    contexts: dict[ContextKey, SSL.Context] = {}
    if previous is not None:
        contexts = {k: c for k, c in previous.contexts.items() if k[0] in keys and k[1] in pairs}
    server = ServerTLS(entry_points=tls_eps, host_options=host_options, options=options,
                       store=store, default_pair=fallback, contexts=contexts)
    # Build the contexts every handshake without a known name will use now, so that what
    # OpenSSL refuses is reported at load time and the first such handshake pays nothing.
    for resolved in list(server.options.values()):
        if resolved.problem:
            continue
        try:
            server._context(resolved, fallback())
        except (ConfigError, SSL.Error) as exc:
            log.error("TLS options {name} cannot be used; handshakes that need them are "
                      "refused: {error}", name=resolved.name, error=str(exc))
            server.options[resolved.name] = ResolvedOptions(
                resolved.name, resolved.options, problem=str(exc), key=resolved.key)
    return server


def _distinct(store: NameIndex[KeyPair]) -> list[KeyPair]:
    seen: dict[str, KeyPair] = {}
    for name in store.names():
        pair = store.lookup(name)
        if pair is not None:
            seen.setdefault(pair.fingerprint, pair)
    return list(seen.values())


def _load_store(runtime: RuntimeConfig) -> tuple[NameIndex[KeyPair], KeyPair | None]:
    """The default store: certificates by name, and its defaultCertificate if it has one."""
    store: NameIndex[KeyPair] = NameIndex()
    counters: dict[str, int] = {}
    for provided in runtime.tls_certificates:
        index = counters.get(provided.provider, 0)
        counters[provided.provider] = index + 1
        source = f"tls.certificates[{index}]@{provided.provider}"
        cert = provided.certificate
        stores = cert.stores or (DEFAULT_STORE,)
        if DEFAULT_STORE not in stores:
            log.warn("{source}: stores {stores} are not used (wsgate, like Traefik, serves "
                     "only the default store); certificate ignored", source=source,
                     stores=", ".join(stores))
            continue
        try:
            pair = load_key_pair(cert.cert_file, cert.key_file, source)
        except ConfigError as exc:
            log.error("certificate not loaded: {error}", error=str(exc))
            continue
        if not pair.names:
            log.warn("{source}: the certificate names no host (no CN, DNS or IP SAN); it is "
                     "never chosen", source=source)
        taken = store.add(pair.names, pair)
        if taken:
            log.info("{source}: {names} already served by an earlier certificate; the earlier "
                     "one is kept for them", source=source, names=", ".join(taken))
        log.debug("{source}: serving {names}", source=source,
                  names=describe_certificate(pair.leaf))
    for name in runtime.tls_stores:
        if name != DEFAULT_STORE:
            log.warn("tls.stores.{name}: only the default store is used (as in Traefik); "
                     "ignored", name=name)
    default: KeyPair | None = None
    config = runtime.tls_stores.get(DEFAULT_STORE)
    if config is not None and config.default_certificate is not None:
        chosen = config.default_certificate
        try:
            default = load_key_pair(chosen.cert_file, chosen.key_file,
                                    "tls.stores.default.defaultCertificate")
        except ConfigError as exc:
            log.error("default certificate not loaded; serving the generated one instead: "
                      "{error}", error=str(exc))
    if config is not None and config.default_generated_cert is not None:
        log.warn("tls.stores.default.defaultGeneratedCert needs a certificate resolver (ACME), "
                 "which wsgate does not have; ignored")
    return store, default


@implementer(IOpenSSLServerConnectionCreator)
class _ChosenContext:
    """Creates each connection from the context chosen for it before the handshake."""

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(tlsProtocol.tls_context, None)


class ServerTLSTransport(CoalescingTLSProtocol):
    """A server-side TLS connection whose context was chosen from its ClientHello."""

    def __init__(self, factory: TLSMemoryBIOFactory, wrapped: IProtocol,
                 context: SSL.Context) -> None:
        self.tls_context = context
        super().__init__(factory, wrapped)


def server_tls_factory(wrapped_factory: Any, clock: Any) -> TLSMemoryBIOFactory:
    """The TLS wrapping factory of one entryPoint (one per listener, not per connection)."""
    return CoalescingTLSFactory(_ChosenContext(), False, wrapped_factory, clock=clock)
