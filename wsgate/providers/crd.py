"""Kubernetes objects (Traefik's CRDs, Services, EndpointSlices, Secrets) to a dynamic
configuration, named as Traefik's ``kubernetescrd`` provider names things. Pure: the provider
keeps the objects it lists and watches in a :class:`Snapshot` and calls :func:`convert`.

Names: a route of IngressRoute ``<name>`` in ``<ns>`` becomes router
``<ns>-<name>-<first 10 hex digits of sha256(match)>`` (normalized: runs of characters other
than letters and digits become ``-``); its service has the same name (a ``weighted`` one when
the route lists several services, whose children are ``<ns>-<service>-<port>``); Middleware,
ServersTransport and TraefikService objects are ``<ns>-<name>``; TLSOption and TLSStore
objects are ``<ns>-<name>``, or ``default`` for the ones named ``default``.

Servers come from the EndpointSlices of the Service (label ``kubernetes.io/service-name``):
the slice port named like the Service port, every address of every endpoint whose
``conditions.serving`` is not false, once. Terminating endpoints are *fenced* in Traefik (they
get sticky traffic only); wsgate's load balancer has no fenced servers yet, so they are left
out of the server list and listed in :attr:`CRDResult.fenced`. The scheme is the one given,
else ``https`` for port 443 or a port whose name starts with ``https``, else ``http``; as a
wsgate extension also ``https`` for port 8443 or when the service names a serversTransport
(reported once through ``notices``).

An object that cannot be converted (a missing Service, a bad reference, a value that does not
decode) is left out with an error, as Traefik does; everything else is kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wsgate.config.dynamic import (
    CIPHER_SUITES,
    DynamicConfig,
    HTTPConfig,
    Middleware,
    Router,
    ServersTransport,
    Service,
    TLSCertificate,
    TLSConfig,
    TLSOptions,
    TLSStore,
)
from wsgate.config.errors import ConfigError, Diagnostic, Mark
from wsgate.config.schema import Decoded, decode
from wsgate.config.tree import from_plain
from wsgate.providers.templates import normalize

__all__ = ["PROVIDER", "CRDResult", "CRDSettings", "Snapshot", "convert", "router_name"]

PROVIDER = "kubernetescrd"
DEFAULT_INGRESS_CLASS = "traefik"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
HTTPS_EXTRA_PORTS = (8443,)
_TLS_VERSIONS = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class CRDSettings:
    allow_cross_namespace: bool = False
    allow_external_name_services: bool = False
    allow_empty_services: bool = False
    native_lb_by_default: bool = False
    ingress_class: str = ""
    #: None: references to other providers' objects are allowed from every namespace.
    cross_provider_namespaces: tuple[str, ...] | None = None
    strict: bool = False

    @classmethod
    def from_static(cls, settings: Any, *, strict: bool = False) -> CRDSettings:
        return cls(allow_cross_namespace=settings.allow_cross_namespace,
                   allow_external_name_services=settings.allow_external_name_services,
                   allow_empty_services=settings.allow_empty_services,
                   native_lb_by_default=settings.native_lb_by_default,
                   ingress_class=settings.ingress_class,
                   cross_provider_namespaces=tuple(settings.cross_provider_namespaces) or None,
                   strict=strict)


@dataclass
class Snapshot:
    """The objects the provider sees, by resource plural (``ingressroutes``, ``services``...)."""

    objects: dict[str, list[Obj]] = field(default_factory=dict)

    def of(self, plural: str) -> list[Obj]:
        return sorted(self.objects.get(plural, []),
                      key=lambda o: (_ns(o), _name(o)))

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        for obj in self.objects.get(plural, []):
            if _ns(obj) == namespace and _name(obj) == name:
                return obj
        return None

    def endpoint_slices(self, namespace: str, service: str) -> list[Obj]:
        out = []
        for obj in self.of("endpointslices"):
            labels = obj.get("metadata", {}).get("labels") or {}
            if _ns(obj) == namespace and labels.get(SERVICE_NAME_LABEL) == service:
                out.append(obj)
        return out


@dataclass(frozen=True)
class CRDResult:
    decoded: Decoded[DynamicConfig]
    errors: tuple[Diagnostic, ...]
    notices: tuple[tuple[str, str], ...] = ()
    #: Service name -> URLs of terminating endpoints left out of its servers.
    fenced: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class _Error(Exception):
    """This object (or route) cannot be converted: the message says why."""


def _ns(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "default")


def _name(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return str(meta.get("name") or meta.get("generateName") or "")


def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    return dict(spec) if isinstance(spec, dict) else {}


def make_id(namespace: str, name: str) -> str:
    return f"{namespace}-{name}" if namespace else name


def router_name(namespace: str, ingress_route: str, match: str) -> str:
    """Traefik's router name for one route of an IngressRoute."""
    digest = hashlib.sha256(match.encode()).hexdigest()[:10]
    return normalize(make_id(namespace, f"{ingress_route}-{digest}"))


def _join_host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _secret_data(secret: Obj) -> dict[str, str]:
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise _Error(f"secret {_ns(secret)}/{_name(secret)}: key {key} is not base64 "
                         f"text") from None
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = str(value)
    return out


# =========================================================================== the converter

class _Converter:
    def __init__(self, snapshot: Snapshot, settings: CRDSettings) -> None:
        self.snap = snapshot
        self.s = settings
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.notices: list[tuple[str, str]] = []
        self.marks: dict[str, Mark] = {}
        self.routers: dict[str, Router] = {}
        self.services: dict[str, Service] = {}
        self.middlewares: dict[str, Middleware] = {}
        self.transports: dict[str, ServersTransport] = {}
        self.options: dict[str, TLSOptions] = {}
        self.stores: dict[str, TLSStore] = {}
        self.certificates: dict[str, TLSCertificate] = {}
        self.fenced: dict[str, tuple[str, ...]] = {}

    # -- helpers -------------------------------------------------------------------------------
    def error(self, kind: str, obj: Obj, message: str) -> None:
        self.errors.append(Diagnostic(message, "", Mark(f"{PROVIDER} {kind} "
                                                         f"{_ns(obj)}/{_name(obj)}")))

    def _decode(self, model: type[Any], data: dict[str, Any], path: str, obj: Obj,
                kind: str) -> Any:
        mark = Mark(f"{PROVIDER} {kind} {_ns(obj)}/{_name(obj)}")
        try:
            decoded = decode(model, from_plain(data, mark), path=path, strict=self.s.strict)
        except ConfigError as exc:
            raise _Error("; ".join(f"{d.path}: {d.message}" if d.path else d.message
                                   for d in exc.diagnostics)) from None
        self.warnings.extend(decoded.warnings)
        for p, m in decoded.marks.items():
            self.marks.setdefault(p, m)
        return decoded.value

    def _namespace_allowed(self, parent: str, namespace: str) -> bool:
        return self.s.allow_cross_namespace or parent == namespace

    def _cross_provider_allowed(self, namespace: str) -> bool:
        allowed = self.s.cross_provider_namespaces
        return allowed is None or namespace in allowed

    def resolve_reference(self, parent_ns: str, namespace: str, name: str) -> str:
        """A middleware or TLS options reference, as a name of this provider."""
        if "@" in name:
            if not self.s.allow_cross_namespace and name.endswith(f"@{PROVIDER}"):
                raise _Error(f"reference {name!r}: @{PROVIDER} references are not allowed "
                             f"while allowCrossNamespace is false")
            if not self._cross_provider_allowed(parent_ns):
                raise _Error(f"reference {name!r}: namespace {parent_ns} is not in "
                             f"crossProviderNamespaces")
            return name
        namespace = namespace or parent_ns
        if not self._namespace_allowed(parent_ns, namespace):
            raise _Error(f"reference to {namespace}/{name}: cross-namespace references are "
                         f"not allowed (allowCrossNamespace is false)")
        return normalize(f"{namespace}-{name}")

    def _secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = self.snap.get("secrets", namespace, name)
        if secret is None:
            raise _Error(f"secret {namespace}/{name} not found")
        return _secret_data(secret)

    def _ca(self, namespace: str, name: str) -> str:
        data = self._secret(namespace, name)
        for key in ("tls.ca", "ca.crt"):
            if key in data:
                return data[key]
        if len(data) == 1:
            return next(iter(data.values()))
        raise _Error(f"secret {namespace}/{name} has neither tls.ca nor ca.crt")

    def _cert_and_key(self, namespace: str, name: str) -> tuple[str, str]:
        data = self._secret(namespace, name)
        missing = [k for k in ("tls.crt", "tls.key") if not data.get(k)]
        if missing:
            raise _Error(f"secret {namespace}/{name} lacks {', '.join(missing)}")
        return data["tls.crt"], data["tls.key"]

    # -- everything ----------------------------------------------------------------------------
    def run(self) -> CRDResult:
        for obj in self.snap.of("tlsoptions"):
            self._guard("TLSOption", obj, self._tls_option)
        self._default_unique("TLSOption", "tlsoptions", self.options)
        for obj in self.snap.of("tlsstores"):
            self._guard("TLSStore", obj, self._tls_store)
        self._default_unique("TLSStore", "tlsstores", self.stores)
        for obj in self.snap.of("middlewares"):
            self._guard("Middleware", obj, self._middleware)
        for obj in self.snap.of("traefikservices"):
            self._guard("TraefikService", obj, self._traefik_service)
        for obj in self.snap.of("serverstransports"):
            self._guard("ServersTransport", obj, self._servers_transport)
        for obj in self.snap.of("ingressroutes"):
            self._guard("IngressRoute", obj, self._ingress_route)
        config = DynamicConfig(
            http=HTTPConfig(routers=types.MappingProxyType(self.routers),
                            services=types.MappingProxyType(self.services),
                            middlewares=types.MappingProxyType(self.middlewares),
                            servers_transports=types.MappingProxyType(self.transports)),
            tls=TLSConfig(certificates=tuple(self.certificates[k]
                                             for k in sorted(self.certificates)),
                          options=types.MappingProxyType(self.options),
                          stores=types.MappingProxyType(self.stores)))
        decoded = Decoded(config, tuple(self.warnings), types.MappingProxyType(self.marks))
        return CRDResult(decoded, tuple(self.errors), tuple(self.notices),
                         types.MappingProxyType(self.fenced))

    def _guard(self, kind: str, obj: Obj, convert: Any) -> None:
        try:
            convert(obj)
        except _Error as exc:
            self.error(kind, obj, str(exc))

    def _default_unique(self, kind: str, plural: str, table: dict[str, Any]) -> None:
        owners = [_ns(o) for o in self.snap.of(plural) if _name(o) == "default"]
        if len(owners) > 1 and "default" in table:
            del table["default"]
            self.errors.append(Diagnostic(
                f"{kind} default is defined in several namespaces ({', '.join(owners)}); "
                f"none is used", "", Mark(PROVIDER)))

    # -- TLS -----------------------------------------------------------------------------------
    def _tls_option(self, obj: Obj) -> None:
        ns, name, spec = _ns(obj), _name(obj), _spec(obj)
        key = "default" if name == "default" else make_id(ns, name)
        data: dict[str, Any] = {}
        for k in ("minVersion", "maxVersion"):
            if spec.get(k):
                data[k] = spec[k]
        for k in ("cipherSuites", "curvePreferences", "alpnProtocols"):
            if spec.get(k) is not None:
                data[k] = list(spec[k])
        for k in ("sniStrict", "disableSessionTickets"):
            if k in spec:
                data[k] = spec[k]
        client_auth = spec.get("clientAuth") or {}
        if client_auth:
            cas = []
            for secret in client_auth.get("secretNames") or []:
                try:
                    cas.append(self._ca(ns, secret))
                except _Error as exc:
                    self.error("TLSOption", obj, str(exc))
            data["clientAuth"] = {"caFiles": cas}
            if client_auth.get("clientAuthType"):
                data["clientAuth"]["clientAuthType"] = client_auth["clientAuthType"]
        self.options[key] = self._decode(TLSOptions, data, f"tls.options.{key}", obj,
                                         "TLSOption")

    def _tls_store(self, obj: Obj) -> None:
        ns, name, spec = _ns(obj), _name(obj), _spec(obj)
        key = "default" if name == "default" else make_id(ns, name)
        data: dict[str, Any] = {}
        default_cert = spec.get("defaultCertificate")
        if default_cert:
            cert, tls_key = self._cert_and_key(ns, str(default_cert.get("secretName", "")))
            data["defaultCertificate"] = {"certFile": cert, "keyFile": tls_key}
        if spec.get("defaultGeneratedCert"):
            data["defaultGeneratedCert"] = spec["defaultGeneratedCert"]
        for cert_spec in spec.get("certificates") or []:
            secret = str(cert_spec.get("secretName", ""))
            try:
                cert, tls_key = self._cert_and_key(ns, secret)
            except _Error as exc:
                self.error("TLSStore", obj, f"{exc}; certificate skipped")
                continue
            self.certificates.setdefault(f"{ns}/{secret}", TLSCertificate(
                cert_file=cert, key_file=tls_key, stores=(key,)))
        self.stores[key] = self._decode(TLSStore, data, f"tls.stores.{key}", obj, "TLSStore")

    # -- middlewares ---------------------------------------------------------------------------
    def _middleware(self, obj: Obj) -> None:
        ns, spec = _ns(obj), _spec(obj)
        mid = normalize(make_id(ns, _name(obj)))
        data = dict(spec)
        for kind in ("basicAuth", "digestAuth"):
            auth = data.get(kind)
            if isinstance(auth, dict):
                auth = dict(auth)
                secret = auth.pop("secret", "")
                if not secret:
                    raise _Error(f"{kind}: auth secret must be set")
                auth["users"] = self._auth_users(ns, str(secret), basic=kind == "basicAuth")
                data[kind] = auth
        forward = data.get("forwardAuth")
        if isinstance(forward, dict):
            if not forward.get("address"):
                raise _Error("forwardAuth requires an address")
            tls = forward.get("tls")
            if isinstance(tls, dict):
                tls = dict(tls)
                if tls.get("caSecret"):
                    tls["ca"] = self._ca(ns, str(tls.pop("caSecret")))
                if tls.get("certSecret"):
                    tls["cert"], tls["key"] = self._cert_and_key(ns, str(tls.pop("certSecret")))
                data["forwardAuth"] = {**forward, "tls": tls}
        chain = data.get("chain")
        if isinstance(chain, dict):
            refs = [self.resolve_reference(ns, str(m.get("namespace") or ""),
                                           str(m.get("name") or ""))
                    for m in chain.get("middlewares") or []]
            data["chain"] = {"middlewares": refs}
        errors = data.get("errors")
        if isinstance(errors, dict) and isinstance(errors.get("service"), dict):
            errors = dict(errors)
            full, svc = self.name_and_service(ns, errors.pop("service"))
            if svc is not None:
                self.services[f"{mid}-errorpage-service"] = svc
                full = f"{mid}-errorpage-service"
            errors["service"] = full
            data["errors"] = errors
        rate = data.get("rateLimit")
        if isinstance(rate, dict) and isinstance(rate.get("redis"), dict) \
                and rate["redis"].get("secret"):
            raise _Error("rateLimit.redis.secret is not supported by wsgate")
        self.middlewares[mid] = self._decode(Middleware, data, f"http.middlewares.{mid}", obj,
                                             "Middleware")

    def _auth_users(self, ns: str, secret_name: str, *, basic: bool) -> list[str]:
        secret = self.snap.get("secrets", ns, secret_name)
        if secret is None:
            raise _Error(f"secret {ns}/{secret_name} not found")
        data = _secret_data(secret)
        if basic and secret.get("type") == "kubernetes.io/basic-auth":
            if "username" not in data or "password" not in data:
                raise _Error(f"secret {ns}/{secret_name} must hold username and password")
            digest = base64.b64encode(hashlib.sha1(data["password"].encode()).digest())
            return [f"{data['username']}:{{SHA}}{digest.decode()}"]
        if len(data) != 1:
            raise _Error(f"secret {ns}/{secret_name} must hold exactly one key, it holds "
                         f"{len(data)}")
        users = [line for line in next(iter(data.values())).splitlines() if line]
        if not users:
            raise _Error(f"secret {ns}/{secret_name} holds no credentials")
        return users

    # -- servers transports --------------------------------------------------------------------
    def _servers_transport(self, obj: Obj) -> None:
        ns, spec = _ns(obj), _spec(obj)
        tid = normalize(make_id(ns, _name(obj)))
        data: dict[str, Any] = {}
        for k in ("serverName", "insecureSkipVerify", "maxIdleConnsPerHost", "disableHTTP2",
                  "peerCertURI", "peerCertSANs", "spiffe", "forwardingTimeouts"):
            if spec.get(k) is not None:
                data[k] = spec[k]
        root_cas = []
        for secret in spec.get("rootCAsSecrets") or []:
            root_cas.append(self._ca(ns, str(secret)))
        for ca in spec.get("rootCAs") or []:
            if ca.get("secret") and ca.get("configMap"):
                raise _Error("a rootCAs entry gives both secret and configMap")
            if ca.get("configMap"):
                raise _Error("rootCAs from a ConfigMap are not supported by wsgate; use a "
                             "Secret")
            root_cas.append(self._ca(ns, str(ca.get("secret", ""))))
        if root_cas:
            data["rootCAs"] = root_cas
        certs = []
        for secret in spec.get("certificatesSecrets") or []:
            cert, key = self._cert_and_key(ns, str(secret))
            certs.append({"certFile": cert, "keyFile": key})
        if certs:
            data["certificates"] = certs
        ciphers = spec.get("cipherSuites") or []
        if ciphers and all(c in CIPHER_SUITES for c in ciphers):
            data["cipherSuites"] = list(ciphers)
        elif ciphers:
            self.error("ServersTransport", obj, "unknown cipher suite; using the defaults")
        for k in ("minVersion", "maxVersion"):
            if spec.get(k) in _TLS_VERSIONS:
                data[k] = spec[k]
            elif spec.get(k):
                self.error("ServersTransport", obj, f"invalid TLS version {k}={spec[k]!r}")
        if data.get("minVersion") and data.get("maxVersion") and \
                _TLS_VERSIONS.index(data["minVersion"]) >= \
                _TLS_VERSIONS.index(data["maxVersion"]):
            self.error("ServersTransport", obj, "minVersion is not below maxVersion; using "
                                                "VersionTLS12 and no maximum")
            data["minVersion"] = "VersionTLS12"
            del data["maxVersion"]
        self.transports[tid] = self._decode(ServersTransport, data,
                                            f"http.serversTransports.{tid}", obj,
                                            "ServersTransport")

    def transport_key(self, parent_ns: str, name: str) -> str:
        if not name:
            return ""
        if "@" in name:
            if not self.s.allow_cross_namespace and name.endswith(f"@{PROVIDER}"):
                raise _Error(f"serversTransport {name!r}: namespace-name@{PROVIDER} is not "
                             f"allowed while allowCrossNamespace is false")
            if not self._cross_provider_allowed(parent_ns):
                raise _Error(f"serversTransport {name!r}: namespace {parent_ns} is not in "
                             f"crossProviderNamespaces")
            return name
        return normalize(make_id(parent_ns, name))

    # -- services ------------------------------------------------------------------------------
    def _traefik_service(self, obj: Obj) -> None:
        ns, spec = _ns(obj), _spec(obj)
        sid = normalize(make_id(ns, _name(obj)))
        if spec.get("weighted") is not None:
            self._weighted(ns, spec["weighted"], sid, obj)
        elif spec.get("mirroring") is not None:
            mirroring = spec["mirroring"]
            main, svc = self.name_and_service(ns, mirroring)
            if svc is not None:
                self.services[main] = svc
            mirrors = []
            for mirror in mirroring.get("mirrors") or []:
                mname, msvc = self.name_and_service(ns, mirror)
                if msvc is not None:
                    self.services[mname] = msvc
                mirrors.append({"name": mname, "percent": mirror.get("percent", 0)})
            data = {"service": main, "mirrors": mirrors}
            for k in ("mirrorBody", "maxBodySize"):
                if mirroring.get(k) is not None:
                    data[k] = mirroring[k]
            self._add_service(sid, {"mirroring": data}, obj, "TraefikService")
        elif spec.get("highestRandomWeight") is not None:
            children = []
            for child in spec["highestRandomWeight"].get("services") or []:
                cname, csvc = self.name_and_service(ns, child)
                if csvc is not None:
                    self.services[cname] = csvc
                children.append({"name": cname, "weight": child.get("weight", 1)})
            self._add_service(sid, {"highestRandomWeight": {"services": children}}, obj,
                              "TraefikService")
        elif spec.get("failover") is not None:
            failover = spec["failover"]
            main, svc = self.name_and_service(ns, failover.get("service") or {})
            fallback, fsvc = self.name_and_service(ns, failover.get("fallback") or {})
            data = {"service": main, "fallback": fallback}
            if failover.get("errors"):
                data["errors"] = failover["errors"]
            if svc is not None:
                self.services[main] = svc
            if fsvc is not None:
                self.services[fallback] = fsvc
            self._add_service(sid, {"failover": data}, obj, "TraefikService")
        else:
            raise _Error("unspecified service type (weighted, mirroring, highestRandomWeight "
                         "or failover)")

    def _weighted(self, ns: str, weighted: Mapping[str, Any], sid: str, obj: Obj) -> None:
        children = []
        for child in weighted.get("services") or []:
            cname, csvc = self.name_and_service(ns, child)
            if csvc is not None:
                self.services[cname] = csvc
            weight = child.get("weight")
            children.append({"name": cname, "weight": 1 if weight is None else weight})
        data: dict[str, Any] = {"services": children}
        sticky = (weighted.get("sticky") or {}).get("cookie")
        if sticky is not None:
            data["sticky"] = {"cookie": dict(sticky)}
        self._add_service(sid, {"weighted": data}, obj, "IngressRoute"
                          if obj.get("kind") == "IngressRoute" else "TraefikService")

    def _add_service(self, sid: str, data: dict[str, Any], obj: Obj, kind: str) -> None:
        self.services[sid] = self._decode(Service, data, f"http.services.{sid}", obj, kind)

    def name_and_service(self, parent_ns: str, spec: Mapping[str, Any]
                         ) -> tuple[str, Service | None]:
        """The service name a reference uses and, for a Kubernetes Service, its config."""
        name = str(spec.get("name") or "")
        if not name:
            raise _Error("a service reference needs a name")
        namespace = str(spec.get("namespace") or "")
        if "@" not in name:
            namespace = namespace or parent_ns
            if not self._namespace_allowed(parent_ns, namespace):
                raise _Error(f"service {namespace}/{name} is not in the namespace {parent_ns} "
                             f"(allowCrossNamespace is false)")
        elif not self._cross_provider_allowed(parent_ns):
            raise _Error(f"service {name!r}: namespace {parent_ns} is not in "
                         f"crossProviderNamespaces")
        kind = spec.get("kind") or "Service"
        if kind == "Service":
            service = self.servers_lb(namespace, parent_ns, spec)
            port = spec.get("port")
            return _full_service_name(namespace, name, port), service
        if kind == "TraefikService":
            return _full_service_name(namespace, name, None), None
        raise _Error(f"unsupported service kind {kind!r} (Service or TraefikService)")

    def servers_lb(self, namespace: str, parent_ns: str, spec: Mapping[str, Any]) -> Service:
        lb: dict[str, Any] = {}
        strategy = spec.get("strategy")
        if strategy:
            if strategy == "RoundRobin":
                self.warnings.append(Diagnostic(
                    "strategy RoundRobin is deprecated; use wrr", "", Mark(PROVIDER),
                    "warning"))
            elif strategy in ("wrr", "p2c", "hrw", "leasttime"):
                lb["strategy"] = strategy
            else:
                raise _Error(f"load-balancer strategy {strategy} is not supported")
        transport = self.transport_key(namespace, str(spec.get("serversTransport") or ""))
        servers, fenced = self.load_servers(namespace, spec, bool(transport))
        lb["servers"] = [{"url": u} for u in servers]
        if spec.get("healthCheck"):
            lb["healthCheck"] = dict(spec["healthCheck"])
        if spec.get("passiveHealthCheck") is not None:
            lb["passiveHealthCheck"] = dict(spec["passiveHealthCheck"])
        if spec.get("passHostHeader") is not None:
            lb["passHostHeader"] = spec["passHostHeader"]
        flush = (spec.get("responseForwarding") or {}).get("flushInterval")
        if flush:
            lb["responseForwarding"] = {"flushInterval": flush}
        cookie = (spec.get("sticky") or {}).get("cookie")
        if cookie is not None:
            lb["sticky"] = {"cookie": dict(cookie)}
        if transport:
            lb["serversTransport"] = transport
        data: dict[str, Any] = {"loadBalancer": lb}
        if spec.get("middlewares"):
            data["middlewares"] = [
                self.resolve_reference(namespace, str(m.get("namespace") or ""),
                                       str(m.get("name") or ""))
                for m in spec["middlewares"]]
        mark = Mark(f"{PROVIDER} Service {namespace}/{spec.get('name')}")
        try:
            service: Service = decode(Service, from_plain(data, mark),
                                      strict=self.s.strict).value
        except ConfigError as exc:
            raise _Error(str(exc)) from None
        if fenced:
            self.fenced[_full_service_name(namespace, str(spec.get("name")),
                                           spec.get("port"))] = tuple(fenced)
        return service

    def _scheme(self, given: str, port_name: str, port: int, transport: bool,
                where: str) -> str:
        if given in ("http", "https", "h2c"):
            return given
        if given:
            raise _Error(f"invalid scheme {given!r} (http, https or h2c)")
        if port == 443 or port_name.startswith("https"):
            return "https"
        reason = ""
        if port in HTTPS_EXTRA_PORTS:
            reason = f"its port is {port}"
        elif transport:
            reason = "it names a serversTransport"
        if not reason:
            return "http"
        self.notices.append((f"{where}:{reason}",
                             f"{PROVIDER} provider: service {where}: no scheme given and "
                             f"{reason}: using https (set scheme to override)"))
        return "https"

    def load_servers(self, namespace: str, spec: Mapping[str, Any], transport: bool
                     ) -> tuple[list[str], list[str]]:
        name = str(spec.get("name"))
        service = self.snap.get("services", namespace, name)
        if service is None:
            raise _Error(f"kubernetes service not found: {namespace}/{name}")
        svc_spec = _spec(service)
        svc_type = svc_spec.get("type") or "ClusterIP"
        port_name, port = _service_port(service, spec.get("port"))
        where = f"{namespace}/{name}"
        if svc_type != "ExternalName" and spec.get("healthCheck"):
            raise _Error(f"healthCheck is allowed only for ExternalName services: {where}")
        scheme = self._scheme(str(spec.get("scheme") or ""), port_name, port, transport, where)
        if svc_type == "ExternalName":
            if not self.s.allow_external_name_services:
                raise _Error(f"externalName services not allowed: {where}")
            return [f"{scheme}://{_join_host_port(str(svc_spec.get('externalName')), port)}"], []
        native = spec.get("nativeLB")
        if native if native is not None else self.s.native_lb_by_default:
            cluster_ip = svc_spec.get("clusterIP") or ""
            if cluster_ip in ("", "None"):
                raise _Error(f"no clusterIP for service {where}")
            return [f"{scheme}://{_join_host_port(cluster_ip, port)}"], []
        if spec.get("nodePortLB"):
            raise _Error("nodePortLB is not supported by wsgate")
        servers: list[str] = []
        fenced: list[str] = []
        seen: set[str] = set()
        for slice_ in self.snap.endpoint_slices(namespace, name):
            target = 0
            for p in slice_.get("ports") or []:
                if (p.get("name") or "") == port_name and p.get("port"):
                    target = int(p["port"])
                    break
            if not target:
                continue
            for endpoint in slice_.get("endpoints") or []:
                conditions = endpoint.get("conditions") or {}
                if conditions.get("serving") is False:
                    continue
                for address in endpoint.get("addresses") or []:
                    if address in seen:
                        continue
                    seen.add(address)
                    url = f"{scheme}://{_join_host_port(address, target)}"
                    (fenced if conditions.get("terminating") is True else servers).append(url)
        if not servers and not fenced and not self.s.allow_empty_services:
            raise _Error(f"no servers found for {where}")
        return servers, fenced

    # -- IngressRoutes -------------------------------------------------------------------------
    def _ingress_route(self, obj: Obj) -> None:
        ns, spec, name = _ns(obj), _spec(obj), _name(obj)
        annotations = obj.get("metadata", {}).get("annotations") or {}
        class_name = spec.get("ingressClassName")
        if class_name is None:
            class_name = annotations.get(INGRESS_CLASS_ANNOTATION, "")
        wanted = self.s.ingress_class
        if not (wanted == class_name or (not wanted and class_name in ("",
                                                                       DEFAULT_INGRESS_CLASS))):
            return
        tls_spec = spec.get("tls")
        if isinstance(tls_spec, dict) and tls_spec.get("secretName"):
            secret = str(tls_spec["secretName"])
            try:
                cert, key = self._cert_and_key(ns, secret)
                self.certificates.setdefault(f"{ns}/{secret}", TLSCertificate(
                    cert_file=cert, key_file=key))
            except _Error as exc:
                self.error("IngressRoute", obj, f"TLS: {exc}")
        parents = self._parent_routers(obj)
        for route in spec.get("routes") or []:
            try:
                self._route(obj, ns, name, spec, route, parents)
            except _Error as exc:
                self.error("IngressRoute", obj, f"route {route.get('match')!r}: {exc}")

    def _parent_routers(self, obj: Obj) -> list[str]:
        ns = _ns(obj)
        out = []
        for ref in _spec(obj).get("parentRefs") or []:
            pns = ref.get("namespace") or ns
            if not self._namespace_allowed(ns, pns):
                raise _Error(f"cross-namespace reference to parent IngressRoute "
                             f"{pns}/{ref.get('name')} not allowed")
            parent = self.snap.get("ingressroutes", pns, str(ref.get("name")))
            if parent is None:
                raise _Error(f"parent IngressRoute {pns}/{ref.get('name')} does not exist")
            for route in _spec(parent).get("routes") or []:
                out.append(router_name(pns, _name(parent), str(route.get("match", ""))))
        return out

    def _route(self, obj: Obj, ns: str, name: str, spec: Mapping[str, Any],
               route: Mapping[str, Any], parents: list[str]) -> None:
        kind = route.get("kind") or "Rule"
        if kind != "Rule":
            raise _Error(f"unsupported match kind {kind!r} (only Rule)")
        match = str(route.get("match") or "")
        if not match:
            raise _Error("empty match rule")
        rname = router_name(ns, name, match)
        middlewares = [self.resolve_reference(ns, str(m.get("namespace") or ""),
                                              str(m.get("name") or ""))
                       for m in route.get("middlewares") or []]
        # middleware references carry the provider explicitly (same meaning as bare names)
        middlewares = [m if "@" in m else f"{m}@{PROVIDER}" for m in middlewares]
        services = route.get("services") or []
        service = ""
        if len(services) > 1:
            self._weighted(ns, {"services": services}, rname,
                           {**obj, "kind": "IngressRoute"})
            service = rname
        elif len(services) == 1:
            full, svc = self.name_and_service(ns, services[0])
            if svc is not None:
                self.services[rname] = svc
                service = rname
            else:
                service = full
        data: dict[str, Any] = {"rule": match, "service": service}
        if middlewares:
            data["middlewares"] = middlewares
        if route.get("priority"):
            data["priority"] = route["priority"]
        if route.get("syntax"):
            data["ruleSyntax"] = route["syntax"]
        if spec.get("entryPoints"):
            data["entryPoints"] = list(spec["entryPoints"])
        if parents:
            data["parentRefs"] = parents
        if route.get("observability"):
            data["observability"] = dict(route["observability"])
        tls_spec = spec.get("tls")
        if tls_spec is not None:
            tls: dict[str, Any] = {}
            if isinstance(tls_spec, dict):
                if tls_spec.get("certResolver"):
                    tls["certResolver"] = tls_spec["certResolver"]
                if tls_spec.get("domains"):
                    tls["domains"] = tls_spec["domains"]
                options = tls_spec.get("options") or {}
                if options.get("name"):
                    tls["options"] = self.resolve_reference(
                        ns, str(options.get("namespace") or ""), str(options["name"]))
            data["tls"] = tls
        self.routers[rname] = self._decode(Router, data, f"http.routers.{rname}", obj,
                                           "IngressRoute")


def _service_port(service: Obj, port: Any) -> tuple[str, int]:
    """(port name, port number) of the Service port an IngressRoute names."""
    spec = _spec(service)
    if port in (None, 0, ""):
        raise _Error("the service port is not defined")
    for p in spec.get("ports") or []:
        if (isinstance(port, int) and p.get("port") == port) or \
                (isinstance(port, str) and p.get("name") == port):
            return str(p.get("name") or ""), int(p.get("port") or 0)
        if isinstance(port, str) and port.isdigit() and p.get("port") == int(port):
            return str(p.get("name") or ""), int(p.get("port") or 0)
    if spec.get("type") == "ExternalName" and isinstance(port, int):
        return "", port
    raise _Error(f"service port not found: {port}")


def _full_service_name(namespace: str, name: str, port: Any) -> str:
    if port not in (None, 0, ""):
        return normalize(f"{namespace}-{name}-{port}")
    if "@" not in name:
        return normalize(f"{namespace}-{name}")
    base, _, provider = name.rpartition("@")
    if provider == PROVIDER:
        return normalize(f"{namespace}-{base}")
    return f"{normalize(base)}@{provider}"


def convert(snapshot: Snapshot | Mapping[str, Iterable[Obj]],
            settings: CRDSettings | None = None) -> CRDResult:
    """The provider's configuration from the objects it sees."""
    if not isinstance(snapshot, Snapshot):
        snapshot = Snapshot({k: list(v) for k, v in snapshot.items()})
    return _Converter(snapshot, settings or CRDSettings()).run()
