"""The Kubernetes provider's list-and-watch state (resourceVersion, 410 Gone, bookmarks,
selectors), API access resolution, the provider loop on a fake client, and the deployment
manifests in docs/kubernetes/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from twisted.internet import defer, task

from wsgate.config.errors import ConfigError
from wsgate.config.static import KubernetesCRDProvider as CRDSettings
from wsgate.providers.http_api import APIError
from wsgate.providers.kubernetes import (
    RESOURCES,
    KubernetesCRDProvider,
    LabelSelector,
    WatchState,
    cluster_access,
)

ROOT = Path(__file__).resolve().parents[3]


def obj(name: str, rv: str, labels: dict[str, str] | None = None, **spec: Any
        ) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv,
                         "labels": labels or {}}, "spec": spec}


def test_watch_state_events() -> None:
    state = WatchState()
    state.replace({"metadata": {"resourceVersion": "10"}, "items": [obj("a", "9")]})
    assert state.listed and state.resource_version == "10"
    assert state.apply({"type": "ADDED", "object": obj("b", "11")}) == "changed"
    assert state.apply({"type": "MODIFIED", "object": obj("b", "11")}) == "unchanged"
    assert state.apply({"type": "MODIFIED", "object": obj("b", "12", x=1)}) == "changed"
    assert state.apply({"type": "BOOKMARK",
                        "object": {"metadata": {"resourceVersion": "20"}}}) == "unchanged"
    assert state.resource_version == "20"
    assert state.apply({"type": "DELETED", "object": obj("a", "21")}) == "changed"
    assert set(state.objects) == {("default", "b")}
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    assert state.apply(gone) == "relist"
    assert state.apply({"type": "ERROR", "object": {"code": 500, "message": "boom"}}) == \
        "error: boom"


def test_watch_state_applies_the_selector() -> None:
    state = WatchState(selector=LabelSelector("app=web"))
    state.replace({"items": [obj("a", "1", {"app": "web"}), obj("b", "1", {"app": "db"})]})
    assert set(state.objects) == {("default", "a")}
    # an object that stops matching leaves
    assert state.apply({"type": "MODIFIED", "object": obj("a", "2", {"app": "x"})}) == \
        "changed"
    assert state.objects == {}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("", {}, True),
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),
    ("a!=b", {"a": "b"}, False),
    ("a in (x, y),c", {"a": "y", "c": ""}, True),
    ("a notin (x)", {"a": "x"}, False),
    ("!owner", {"owner": "helm"}, False),
    ("owner!=helm", {"owner": "helm"}, False),
    ("env=prod,tier", {"env": "prod"}, False),
])
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector(selector).matches(labels) is expected


def test_label_selector_errors() -> None:
    with pytest.raises(ConfigError):
        LabelSelector("a=b=c")


def test_cluster_access(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok-1\n")
    (tmp_path / "ca.crt").write_text("CA")
    inside = cluster_access(CRDSettings(), {"KUBERNETES_SERVICE_HOST": "10.96.0.1",
                                            "KUBERNETES_SERVICE_PORT": "443"}, str(tmp_path))
    assert inside.endpoint == "https://10.96.0.1:443"
    assert inside.ca_file == str(tmp_path / "ca.crt")
    assert inside.token() == "tok-1"
    six = cluster_access(CRDSettings(), {"KUBERNETES_SERVICE_HOST": "fd00::1",
                                         "KUBERNETES_SERVICE_PORT": "443"}, str(tmp_path))
    assert six.endpoint == "https://[fd00::1]:443"
    outside = cluster_access(CRDSettings(endpoint="https://api:6443", token="abc",
                                         cert_auth_file_path="/ca"), {})
    assert (outside.endpoint, outside.ca_file, outside.token()) == ("https://api:6443", "/ca",
                                                                    "abc")
    from_file = cluster_access(CRDSettings(endpoint="http://x", token=str(tmp_path / "token")),
                               {})
    assert from_file.token() == "tok-1"
    with pytest.raises(ConfigError, match="endpoint is required"):
        cluster_access(CRDSettings(), {})


class FakeStream:
    def __init__(self, on_item: Any) -> None:
        self.on_item = on_item
        self.connected: defer.Deferred[None] = defer.succeed(None)
        self.done: defer.Deferred[None] = defer.Deferred()

    def cancel(self) -> None:
        if not self.done.called:
            self.done.callback(None)


class FakeKube:
    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.lists: list[str] = []
        self.streams: dict[str, FakeStream] = {}
        self.watch_versions: list[str] = []

    def get_json(self, path: str, params: Any = None) -> defer.Deferred[Any]:
        self.lists.append(path)
        plural = path.rsplit("/", 1)[1]
        return defer.succeed({"metadata": {"resourceVersion": "5"},
                              "items": self.items.get(plural, [])})

    def stream_json(self, path: str, params: Any, on_item: Any, **kw: Any) -> FakeStream:
        self.watch_versions.append(params.get("resourceVersion", ""))
        stream = FakeStream(on_item)
        self.streams[path.rsplit("/", 1)[1]] = stream
        return stream


def test_provider_lists_watches_and_relists_on_gone() -> None:
    clock = task.Clock()
    kube = FakeKube()
    kube.items["services"] = [{"metadata": {"name": "s", "namespace": "default"},
                               "spec": {"ports": [{"name": "web", "port": 80}]}}]
    kube.items["endpointslices"] = [{
        "metadata": {"name": "s-a", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "s"}},
        "ports": [{"name": "web", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"]}]}]
    seen: list[int] = []
    provider = KubernetesCRDProvider(clock, CRDSettings(endpoint="http://x"),
                                     client=kube,  # type: ignore[arg-type]
                                     on_change=lambda d: seen.append(len(d.value.http.routers)))
    provider.start()
    assert len(kube.lists) == len(RESOURCES)
    clock.advance(0)
    assert seen == [0]
    route = {"metadata": {"name": "r", "namespace": "default", "resourceVersion": "6"},
             "spec": {"routes": [{"match": "Host(`a`)", "services": [{"name": "s",
                                                                      "port": 80}]}]}}
    kube.streams["ingressroutes"].on_item({"type": "ADDED", "object": route})
    clock.advance(provider.throttle)
    assert seen == [0, 1]
    # the watch ends normally: it resumes from the last version, without listing
    lists = len(kube.lists)
    kube.streams["ingressroutes"].done.callback(None)
    assert len(kube.lists) == lists and kube.watch_versions[-1] == "6"
    # 410 Gone: list again
    kube.items["ingressroutes"] = []
    kube.streams["ingressroutes"].on_item(
        {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})
    assert len(kube.lists) == lists + 1
    clock.advance(provider.throttle)
    assert seen == [0, 1, 0]
    provider.stop()


def test_provider_backs_off_on_errors() -> None:
    clock = task.Clock()
    calls: list[str] = []

    class Failing(FakeKube):
        def get_json(self, path: str, params: Any = None) -> defer.Deferred[Any]:
            calls.append(path)
            return defer.fail(APIError(403, "forbidden", path))

    provider = KubernetesCRDProvider(clock, CRDSettings(endpoint="http://x"),
                                     client=Failing(),  # type: ignore[arg-type]
                                     on_change=lambda d: None)
    provider.start()
    first = len(calls)
    clock.advance(0.5)
    assert len(calls) == 2 * first
    clock.advance(0.5)
    assert len(calls) == 2 * first  # the second pause is 1s
    clock.advance(0.5)
    assert len(calls) == 3 * first
    provider.stop()


# --------------------------------------------------------------------------- manifests

def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "docs" / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_manifests_define_every_crd_and_the_rbac_the_provider_needs() -> None:
    docs = manifests()
    crds = {d["spec"]["names"]["plural"] for d in docs
            if d["kind"] == "CustomResourceDefinition"}
    traefik = {r.plural for r in RESOURCES if r.api.startswith("/apis/traefik.io")}
    assert crds == traefik
    for d in docs:
        if d["kind"] == "CustomResourceDefinition":
            assert d["spec"]["group"] == "traefik.io"
            (version,) = d["spec"]["versions"]
            assert version["name"] == "v1alpha1"
            assert version["schema"]["openAPIV3Schema"]["properties"]["spec"][
                "x-kubernetes-preserve-unknown-fields"] is True
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    allowed = {(g, r) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] if {"get", "list", "watch"} <= set(rule["verbs"])}
    for resource in RESOURCES:
        group = resource.api.split("/")[2] if resource.api.startswith("/apis/") else ""
        assert (group, resource.plural) in allowed
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "ClusterRoleBinding", "Deployment", "Service"} <= kinds
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] >= 2
