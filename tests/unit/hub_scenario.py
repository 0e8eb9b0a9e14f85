"""Shared pieces of the hub-config unit tests: the scenario and fakes of the Kubernetes API
(the fixtures built on them are in conftest.py).

The scenario (fixtures/realm-scenario.json + fixtures/resources/) in short:

- everyone grants it:small, img:base, ds:handbook (env) to all;
- analysts (ana, root, bea): medium, lab (pull secret), sales (pv), reports read-write,
  confidential (launch-group-only nfs), team-wide (annotation "True", which is not "true"),
  grants without resources (ghost-type, ghost-img, ghost-ds); cpu quota 2 per user, 3 per group;
  shared volume 5G, launch-group-only;
- vision (ana, olga): gpu-one, gpu-two (over the user GPU quota of 1), amd-one, torch
  (urlForGpu), cuda (GPU only), reports read-only, notebooks (git, homeSymlink); a shared
  volume mounted under every group of its members (launch-group-only false);
- interns (ivan, paula): quota-cpu 0, so nothing fits; paula is admin through a composite role;
- broken_vol (bea): shared volume enabled without capacity;
- prefixed-team (pat): ph:it:large, ph:img:base and the unprefixed it:medium;
- org/ops (olga): admin through the parent group org; nobody: no group at all;
- resources without grants: large (except via the prefix), no-grant, orphan-ds; an invalid
  InstanceType broken-it.
"""

import asyncio
import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

from kubernetes_asyncio.client.rest import ApiException

from primehub_hub.cli import load_resource_objects
from primehub_hub.realm_export import load_realm_export, user_info_from_realm_export
from primehub_hub.resources import Catalog

FIXTURES = Path(__file__).parent / "fixtures"
REALM = FIXTURES / "realm-scenario.json"
RESOURCES = FIXTURES / "resources"
NAMESPACE = "hubtest"


def export():
    return load_realm_export(REALM)


def user(name):
    return user_info_from_realm_export(export(), name)


def catalog():
    return Catalog.from_objects(load_resource_objects([RESOURCES]))


def owner(name):
    return SimpleNamespace(name=name, id=1, url=f"/user/{name}/")


def make_spawner(username, *, info=None, cat=None, **kwargs):
    """A PrimeHubSpawner for `username` with scenario data and no cluster (needs offline_kube)."""
    from primehub_hub.spawner import PrimeHubSpawner

    kwargs.setdefault("namespace", NAMESPACE)
    kwargs.setdefault("primehub_pods", [])
    kwargs.setdefault("cmd", ["jupyterhub-singleuser"])
    kwargs.setdefault("dataset_host_path_prefixes", ["/data/"])  # the scenario's hostPath dataset
    kwargs.setdefault("git_sync_on_nodes", True)  # the scenario's git dataset
    return PrimeHubSpawner(
        _mock=True,
        user=owner(username),
        primehub_user=info if info is not None else user(username),
        primehub_catalog=cat if cat is not None else catalog(),
        **kwargs,
    )


class FakeResponse:
    def __init__(self, payload, status=200):
        self.status = status
        self._body = json.dumps(payload).encode()
        self.released = False

    async def read(self):
        return self._body

    def release(self):
        self.released = True


def _matches(labels, selector):
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeCoreApi:
    """The CoreV1Api calls the spawner makes, against an in-memory namespace.

    Creating a pod takes a little time, so concurrent spawns interleave as on a real cluster.
    """

    def __init__(self, create_delay=0.01, list_delay=0.005):
        self.pods = {}
        self.pvcs = {}
        self.create_delay = create_delay
        self.list_delay = list_delay
        self.deleted = []

    async def list_namespaced_pod(self, namespace, label_selector=None, _preload_content=True, **_):
        await asyncio.sleep(self.list_delay)
        items = [p for p in self.pods.values() if _matches(p["metadata"].get("labels") or {}, label_selector)]
        return FakeResponse({"items": items})

    async def create_namespaced_pod(self, namespace, body, **_):
        await asyncio.sleep(self.create_delay)
        name = body.metadata.name
        if name in self.pods:
            raise ApiException(status=409, reason="AlreadyExists")
        container = body.spec.containers[0]
        limits = {k: v for k, v in (container.resources.limits or {}).items()}
        self.pods[name] = {
            "metadata": {"name": name, "namespace": namespace, "labels": dict(body.metadata.labels or {})},
            "spec": {"containers": [{"name": container.name, "resources": {"limits": limits}}]},
            "status": {"phase": "Pending"},
        }
        return body

    async def delete_namespaced_pod(self, name, namespace, body=None, grace_period_seconds=None, **_):
        self.deleted.append(name)
        if self.pods.pop(name, None) is None:
            raise ApiException(status=404, reason="NotFound")

    async def create_namespaced_persistent_volume_claim(self, namespace, body, **_):
        name = body.metadata.name
        if name in self.pvcs:
            raise ApiException(status=409, reason="AlreadyExists")
        self.pvcs[name] = body
        return body

    async def read_namespaced_persistent_volume_claim(self, name, namespace, **_):
        if name not in self.pvcs:
            raise ApiException(status=404, reason="NotFound")
        return self.pvcs[name]

    async def patch_namespaced_persistent_volume_claim(self, name, namespace, body, **_):
        pvc = await self.read_namespaced_persistent_volume_claim(name, namespace)
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        pvc.metadata.annotations = {**(pvc.metadata.annotations or {}), **annotations}
        return pvc


class FakeReflector:
    """Stands in for KubeSpawner's shared pod/event reflectors."""

    def __init__(self, resources=None):
        self.resources = resources or {}
        loop = asyncio.get_running_loop()
        self.first_load_future = loop.create_future()
        self.first_load_future.set_result(None)

    @property
    def pods(self):
        return self.resources

    @property
    def events(self):
        return list(self.resources.values())


@contextlib.contextmanager
def reflectors(monkeypatch, namespace=NAMESPACE, pods=None, events=None):
    from kubespawner import KubeSpawner

    pod_reflector = FakeReflector(pods)
    event_reflector = FakeReflector(events)
    monkeypatch.setitem(KubeSpawner.reflectors, ("pods", namespace), pod_reflector)
    monkeypatch.setitem(KubeSpawner.reflectors, ("events", namespace), event_reflector)
    yield pod_reflector, event_reflector


GPU_LAUNCH = {"group": "vision", "instance_type": "gpu-one", "image": "torch"}  # image 'Torch', example/torch:cuda


async def planned_spawner(**kwargs):
    """ana's spawner with GPU_LAUNCH applied and its pod created, for the scheduling watch's tests."""
    spawner = make_spawner("ana", options_explicit=True, scheduling_poll_interval=0.05, **kwargs)
    spawner.user_options = dict(GPU_LAUNCH)
    await spawner.load_user_options()
    spawner._pod_created = True
    return spawner


class PodRemovingApi(FakeCoreApi):
    """FakeCoreApi whose pod deletions reach the pod reflector, as the pod watch would report them."""

    def __init__(self, pod_reflector, **kwargs):
        super().__init__(**kwargs)
        self.pod_reflector = pod_reflector

    async def delete_namespaced_pod(self, name, namespace, **kwargs):
        await super().delete_namespaced_pod(name, namespace, **kwargs)
        self.pod_reflector.resources.pop(f"{namespace}/{name}", None)
