"""The Kubernetes CRD provider (``providers.kubernetesCRD``): Traefik's IngressRoute,
Middleware, ServersTransport, TLSOption, TLSStore and TraefikService objects
(``traefik.io/v1alpha1``), with the Services, EndpointSlices and Secrets they use, through the
Kubernetes REST API.

Each resource (in each watched namespace, or cluster-wide) is listed once and then watched
from the list's ``resourceVersion``; a watch that ends is resumed from the last version seen,
one that fails is retried with backoff, and a ``410 Gone`` (the version is too old) makes the
resource be listed again. The first configuration is given once every resource has been
listed; after that every change, debounced by ``throttleDuration`` (at least 0.1s), converts
the objects again (:mod:`wsgate.providers.crd`).

The API is reached in the cluster with the pod's service account (``KUBERNETES_SERVICE_HOST``
and ``/var/run/secrets/kubernetes.io/serviceaccount``), else at ``endpoint`` with ``token``
(the token itself or a file holding it) and ``certAuthFilePath``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.errors import ConfigError
from wsgate.config.schema import Decoded
from wsgate.providers.crd import PROVIDER, CRDSettings, Snapshot, convert
from wsgate.providers.http_api import APIClient, APIError, Stream, TLSFiles

log = Logger()

__all__ = ["RESOURCES", "KubernetesCRDProvider", "LabelSelector", "Resource", "WatchState",
           "cluster_access"]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Server-side end of one watch request; the watch is then resumed.
WATCH_SECONDS = 300

OnChange = Callable[[Decoded[DynamicConfig]], None]


@dataclass(frozen=True)
class Resource:
    plural: str
    api: str
    #: Whether providers.kubernetesCRD.labelSelector applies (Traefik's CRDs only).
    crd: bool = False
    #: A selector of its own (Secrets: Traefik ignores the ones Helm owns).
    selector: str = ""

    def path(self, namespace: str) -> str:
        if namespace:
            return f"{self.api}/namespaces/{namespace}/{self.plural}"
        return f"{self.api}/{self.plural}"


_TRAEFIK = "/apis/traefik.io/v1alpha1"
RESOURCES = (
    Resource("ingressroutes", _TRAEFIK, crd=True),
    Resource("middlewares", _TRAEFIK, crd=True),
    Resource("serverstransports", _TRAEFIK, crd=True),
    Resource("tlsoptions", _TRAEFIK, crd=True),
    Resource("tlsstores", _TRAEFIK, crd=True),
    Resource("traefikservices", _TRAEFIK, crd=True),
    Resource("services", "/api/v1"),
    Resource("endpointslices", "/apis/discovery.k8s.io/v1"),
    Resource("secrets", "/api/v1", selector="owner!=helm"),
)


# =========================================================================== label selectors

_REQUIREMENT = re.compile(r"""
    \s*(?P<not>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*
    (?: (?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)
      | \s(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
    )?\s*$""", re.X)


class LabelSelector:
    """A Kubernetes label selector (``a=b,c!=d,e in (f,g),!h``) applied on the client side
    too, for API servers that ignore ``labelSelector``."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        #: (operator, key, values): "exists", "absent", "in" or "notin".
        self.requirements: list[tuple[str, str, frozenset[str]]] = []
        for part in _split_requirements(self.text):
            m = _REQUIREMENT.match(part)
            if m is None or (m.group("not") and (m.group("op") or m.group("setop"))):
                raise ConfigError(f"invalid label selector {text!r} at {part!r}")
            key = m.group("key")
            if m.group("not"):
                self.requirements.append(("absent", key, frozenset()))
            elif m.group("op"):
                op = "notin" if m.group("op") == "!=" else "in"
                self.requirements.append((op, key, frozenset({m.group("value")})))
            elif m.group("setop"):
                values = frozenset(v.strip() for v in m.group("values").split(",")
                                   if v.strip())
                self.requirements.append((m.group("setop"), key, values))
            else:
                self.requirements.append(("exists", key, frozenset()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        for op, key, values in self.requirements:
            if op == "exists" and key not in labels:
                return False
            if op == "absent" and key in labels:
                return False
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        return True


def _split_requirements(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current or parts:
        parts.append("".join(current))
    return [p for p in parts if p.strip()]


# =========================================================================== watch state

def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass
class WatchState:
    """The objects of one resource as last listed and watched, and the version to resume
    from. :meth:`apply` says what a watch event means."""

    selector: LabelSelector = field(default_factory=lambda: LabelSelector(""))
    objects: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    resource_version: str = ""
    listed: bool = False

    def replace(self, listing: Mapping[str, Any]) -> None:
        self.objects = {}
        for item in listing.get("items") or []:
            if isinstance(item, dict) and self._selected(item):
                self.objects[_key(item)] = item
        self.resource_version = str((listing.get("metadata") or {})
                                    .get("resourceVersion") or "")
        self.listed = True

    def _selected(self, obj: Mapping[str, Any]) -> bool:
        return self.selector.matches((obj.get("metadata") or {}).get("labels"))

    def apply(self, event: Any) -> str:
        """``changed``, ``unchanged``, ``relist`` (410 Gone) or ``error: <why>``."""
        if not isinstance(event, dict):
            return "error: a watch event is not an object"
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                return "relist"
            return f"error: {obj.get('message') if isinstance(obj, dict) else obj}"
        if not isinstance(obj, dict):
            return "error: a watch event carries no object"
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if version:
            self.resource_version = version
        if kind == "BOOKMARK":
            return "unchanged"
        key = _key(obj)
        if kind in ("ADDED", "MODIFIED"):
            if not self._selected(obj):
                return "changed" if self.objects.pop(key, None) is not None else "unchanged"
            if self.objects.get(key) == obj:
                return "unchanged"
            self.objects[key] = obj
            return "changed"
        if kind == "DELETED":
            return "changed" if self.objects.pop(key, None) is not None else "unchanged"
        return f"error: unknown watch event type {kind!r}"


# =========================================================================== API access

@dataclass(frozen=True)
class Access:
    endpoint: str
    ca_file: str
    token: Callable[[], str]


class _FileToken:
    """A token file read again when it changes (service account tokens are rotated)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: float = -1.0
        self._value = ""

    def __call__(self) -> str:
        try:
            stamp = os.stat(self.path).st_mtime
            if stamp != self._stamp:
                self._value = Path(self.path).read_text().strip()
                self._stamp = stamp
        except OSError as exc:
            log.error("kubernetescrd provider: cannot read the token {path}: {err}",
                      path=self.path, err=exc.strerror)
        return self._value


def cluster_access(settings: Any, environ: Mapping[str, str],
                   service_account_dir: str = SERVICE_ACCOUNT_DIR) -> Access:
    """Where and how to reach the API, as Traefik decides: in the cluster when
    KUBERNETES_SERVICE_HOST/PORT are set, else the configured endpoint."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    token_setting = settings.token
    if host and port:
        if ":" in host:
            host = f"[{host}]"
        endpoint = settings.endpoint or f"https://{host}:{port}"
        ca = settings.cert_auth_file_path or os.path.join(service_account_dir, "ca.crt")
        token: Callable[[], str]
        if token_setting:
            token = _token_source(token_setting)
        else:
            token = _FileToken(os.path.join(service_account_dir, "token"))
        return Access(endpoint, ca, token)
    if not settings.endpoint:
        raise ConfigError("providers.kubernetesCRD.endpoint is required outside a cluster "
                          "(wsgate does not read KUBECONFIG)")
    return Access(settings.endpoint, settings.cert_auth_file_path,
                  _token_source(token_setting))


def _token_source(value: str) -> Callable[[], str]:
    if value and os.path.isfile(value):
        return _FileToken(value)
    return lambda: value


# =========================================================================== the provider

class KubernetesCRDProvider:
    """Lists and watches the resources and hands each new configuration to ``on_change``."""

    name = PROVIDER
    backoff = (0.5, 30.0)

    def __init__(self, reactor: Any, settings: Any, *, on_change: OnChange,
                 strict: bool = False, environ: Mapping[str, str] | None = None,
                 client: APIClient | None = None) -> None:
        self.reactor = reactor
        self.settings = settings
        self.on_change = on_change
        self.current: Decoded[DynamicConfig] | None = None
        self.crd_settings = CRDSettings.from_static(settings, strict=strict)
        self.throttle = max(float(settings.throttle_duration), 0.1)
        self.disabled = ""
        self.client: APIClient | None = client
        try:
            selector = LabelSelector(settings.label_selector)
            if client is None:
                access = cluster_access(settings, os.environ if environ is None else environ)
                self.client = APIClient(
                    reactor, access.endpoint,
                    tls=TLSFiles(ca=access.ca_file) if access.ca_file else None,
                    headers=lambda: _bearer(access.token()), timeout=30.0)
        except (ConfigError, ValueError) as exc:
            self.disabled = str(exc)
            selector = LabelSelector("")
        namespaces = tuple(settings.namespaces) or ("",)
        self.watches: dict[tuple[Resource, str], WatchState] = {}
        for resource in RESOURCES:
            for namespace in namespaces:
                chosen = selector if resource.crd else LabelSelector(resource.selector)
                self.watches[(resource, namespace)] = WatchState(selector=chosen)
        self._stopping = False
        self._streams: dict[tuple[Resource, str], Stream] = {}
        self._sleeps: set[defer.Deferred[Any]] = set()
        self._pending: Any = None
        self._last_errors: set[str] = set()
        self._logged_notices: set[str] = set()
        self._failing: dict[tuple[Resource, str], str] = {}
        self._started = False

    def describe(self) -> str:
        return f"{PROVIDER} provider"

    def load(self) -> bool:
        return False

    def start(self) -> None:
        if self.disabled:
            log.error("{name} provider disabled: {why}", name=PROVIDER, why=self.disabled)
            return
        if self._started:
            return
        self._started = True
        self._stopping = False
        for key in self.watches:
            self._watch(key).addErrback(self._watch_crashed, key)

    def stop(self) -> None:
        self._stopping = True
        self._started = False
        for stream in list(self._streams.values()):
            stream.cancel()
        self._streams.clear()
        for sleep in list(self._sleeps):
            sleep.cancel()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    @staticmethod
    def _watch_crashed(failure: Failure, key: tuple[Resource, str]) -> None:
        log.failure("{name} provider: the watch of {what} stopped", failure, name=PROVIDER,
                    what=_describe(key))

    def _sleep(self, seconds: float) -> defer.Deferred[Any]:
        d = task.deferLater(self.reactor, seconds, lambda: None)
        self._sleeps.add(d)

        def done(result: Any) -> None:
            self._sleeps.discard(d)
            if isinstance(result, Failure):
                result.trap(defer.CancelledError)

        d.addBoth(done)
        return d

    def _report(self, key: tuple[Resource, str], message: str) -> None:
        if self._failing.get(key) != message:
            log.error("{name} provider: {what}: {message}; retrying with backoff",
                      name=PROVIDER, what=_describe(key), message=message)
        self._failing[key] = message

    @defer.inlineCallbacks
    def _watch(self, key: tuple[Resource, str]) -> Any:
        resource, namespace = key
        state = self.watches[key]
        assert self.client is not None
        failures = 0
        need_list = True
        params: dict[str, str] = {}
        if state.selector.text:
            params["labelSelector"] = state.selector.text
        while not self._stopping:
            try:
                if need_list:
                    listing = yield self.client.get_json(resource.path(namespace), params)
                    state.replace(listing)
                    need_list = False
                    self._changed()
                outcome: list[str] = []

                def on_event(event: Any, state: WatchState = state,
                             outcome: list[str] = outcome) -> None:
                    result = state.apply(event)
                    if result == "changed":
                        self._changed()
                    elif result != "unchanged":
                        outcome.append(result)
                        stream = self._streams.get(key)
                        if stream is not None:
                            stream.cancel()

                watch_params = dict(params, watch="true", allowWatchBookmarks="true",
                                    timeoutSeconds=str(WATCH_SECONDS))
                if state.resource_version:
                    watch_params["resourceVersion"] = state.resource_version
                stream = self.client.stream_json(resource.path(namespace), watch_params,
                                                 on_event, idle_timeout=WATCH_SECONDS + 60)
                self._streams[key] = stream
                yield stream.connected
                if self._failing.pop(key, None) is not None:
                    log.info("{name} provider: {what}: watching again", name=PROVIDER,
                             what=_describe(key))
                failures = 0
                yield stream.done
                if outcome and outcome[0] == "relist":
                    need_list = True
                    continue
                if outcome:
                    raise APIError(0, outcome[0].removeprefix("error: "),
                                   resource.path(namespace))
            except APIError as exc:
                if self._stopping:
                    return
                if exc.status == 410:
                    need_list = True
                    continue
                self._report(key, str(exc))
                need_list = need_list or not state.resource_version
                failures += 1
            except Exception as exc:  # every failure is retried after a pause
                if self._stopping:
                    return
                self._report(key, f"{type(exc).__name__}: {exc}")
                failures += 1
            finally:
                self._streams.pop(key, None)
            if failures and not self._stopping:
                low, high = self.backoff
                yield self._sleep(min(high, low * 2 ** min(failures - 1, 16)))

    def _changed(self) -> None:
        if self._stopping or not all(s.listed for s in self.watches.values()):
            return
        if self._pending is not None and self._pending.active():
            return
        delay = 0.0 if self.current is None else self.throttle
        self._pending = self.reactor.callLater(delay, self._rebuild)

    def snapshot(self) -> Snapshot:
        objects: dict[str, list[Mapping[str, Any]]] = {}
        for (resource, _), state in self.watches.items():
            objects.setdefault(resource.plural, []).extend(state.objects.values())
        return Snapshot(objects)

    def _rebuild(self) -> None:
        self._pending = None
        result = convert(self.snapshot(), self.crd_settings)
        for key, message in result.notices:
            if key not in self._logged_notices:
                self._logged_notices.add(key)
                log.info("{message}", message=message)
        errors = {str(d) for d in result.errors}
        for line in sorted(errors - self._last_errors):
            log.error("{name} provider: {error}", name=PROVIDER, error=line)
        self._last_errors = errors
        decoded = result.decoded
        if self.current is not None and self.current.value == decoded.value:
            return
        for warning in decoded.warnings:
            log.warn("{name} provider: {warning}", name=PROVIDER, warning=str(warning))
        self.current = decoded
        http = decoded.value.http
        log.info("{name} provider: configuration updated ({routers} routers, {services} "
                 "services, {middlewares} middlewares)", name=PROVIDER,
                 routers=len(http.routers), services=len(http.services),
                 middlewares=len(http.middlewares))
        self.on_change(decoded)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _describe(key: tuple[Resource, str]) -> str:
    resource, namespace = key
    return f"{resource.plural} in {namespace}" if namespace else \
        f"{resource.plural} (all namespaces)"
