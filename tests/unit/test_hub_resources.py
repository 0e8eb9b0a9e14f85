"""docs/behaviour.md "InstanceType/Image/Dataset → pod": parsing custom resources with their defaults."""

import asyncio
import logging
from pathlib import Path

import pytest

from primehub_hub.cli import load_resource_objects
from primehub_hub.quotas import GiB
from primehub_hub.resources import (
    Catalog,
    InvalidResource,
    parse_dataset,
    parse_image,
    parse_instance_type,
)

REPO = Path(__file__).resolve().parents[2]


def it(spec, name="x"):
    return parse_instance_type({"kind": "InstanceType", "metadata": {"name": name}, "spec": spec})


def test_instance_type_defaults():
    parsed = it({})
    assert (parsed.cpu_limit, parsed.memory_limit, parsed.gpu_limit) == (1.0, GiB, 0)
    assert (parsed.cpu_request, parsed.memory_request) == (0.0, 0)
    assert parsed.label == "x" and not parsed.has_gpu


def test_flat_and_nested_spellings_mean_the_same():
    flat = it(
        {"limits.cpu": 2, "limits.memory": "4G", "limits.nvidia.com/gpu": 1, "requests.cpu": 1, "requests.memory": "2G"}
    )
    nested = it({"limits": {"cpu": 2, "memory": "4G", "nvidia.com/gpu": "1"}, "requests": {"cpu": 1, "memory": "2G"}})
    assert flat == nested
    assert flat.gpu_resource_name == "nvidia.com/gpu" and flat.memory_limit == 4 * GiB


def test_gpu_of_another_vendor():
    parsed = it({"limits": {"cpu": 2, "memory": "4G", "gpu": 1}, "gpuResourceName": "amd.com/gpu"})
    assert (parsed.gpu_limit, parsed.gpu_resource_name) == (1, "amd.com/gpu")


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"limits.memory": "lots"}, "limits.memory"),
        ({"limits": {"cpu": 0}}, "limits.cpu"),
        ({"limits": {"cpu": 1, "memory": "1G"}, "requests": {"cpu": 2}}, "requests are larger"),
        ({"limits.nvidia.com/gpu": -1}, "limits.nvidia.com/gpu"),
        ({"nodeSelector": ["a"]}, "nodeSelector"),
        ({"tolerations": {"key": "a"}}, "tolerations"),
    ],
)
def test_bad_instance_types_name_themselves(spec, words):
    with pytest.raises(InvalidResource, match="InstanceType bad") as info:
        it(spec, name="bad")
    assert words in str(info.value)


def test_images():
    image = parse_image({"metadata": {"name": "torch"}, "spec": {"url": "a", "urlForGpu": "b", "pullSecret": "s"}})
    assert (image.type, image.pull_secret) == ("both", "s")
    assert image.url_for(it({"limits.nvidia.com/gpu": 1})) == "b"
    assert image.url_for(it({})) == "a"
    gpu_only = parse_image({"metadata": {"name": "cuda"}, "spec": {"url": "c", "type": "gpu"}})
    assert "needs a GPU" in gpu_only.incompatibility(it({}, name="cpu"))
    assert gpu_only.incompatibility(it({"limits.nvidia.com/gpu": 1})) is None
    with pytest.raises(InvalidResource, match="url"):
        parse_image({"metadata": {"name": "n"}, "spec": {}})
    with pytest.raises(InvalidResource, match="type"):
        parse_image({"metadata": {"name": "n"}, "spec": {"url": "u", "type": "tpu"}})


def test_dataset_annotations_only_the_string_true_is_true():
    def ds(annotations):
        return parse_dataset({"metadata": {"name": "d", "annotations": annotations}, "spec": {"type": "git"}})

    assert ds({"dataset.primehub.io/launchGroupOnly": "true"}).launch_group_only
    for value in ("True", "yes", "1", True):
        assert not ds({"dataset.primehub.io/launchGroupOnly": value}).launch_group_only
    assert ds({}).mount_path == "/datasets/d"
    assert ds({"dataset.primehub.io/mountRoot": "/mnt"}).mount_path == "/mnt/d"
    with pytest.raises(InvalidResource, match="absolute"):
        ds({"dataset.primehub.io/mountRoot": "mnt/"})


@pytest.mark.parametrize(
    "spec, words",
    [
        ({}, "type"),
        ({"type": "s3"}, "type"),
        ({"type": "pv"}, "volumeName"),
        ({"type": "hostPath"}, "hostPath.path"),
        ({"type": "nfs", "nfs": {"server": "s"}}, "nfs.path"),
        ({"type": "env", "variables": ["a"]}, "variables"),
    ],
)
def test_bad_datasets_name_themselves(spec, words):
    with pytest.raises(InvalidResource, match="Dataset bad") as info:
        parse_dataset({"metadata": {"name": "bad"}, "spec": spec})
    assert words in str(info.value)


def test_catalog_skips_bad_resources_with_one_log_line_naming_each(caplog):
    objects = [
        {"kind": "InstanceType", "metadata": {"name": "good"}, "spec": {}},
        {"kind": "InstanceType", "metadata": {"name": "bad"}, "spec": {"limits.memory": "x"}},
        {"kind": "Image", "metadata": {"name": "Bad_Name"}, "spec": {"url": "u"}},
        {"kind": "ConfigMap", "metadata": {"name": "ignored"}},
    ]
    seen = set()
    with caplog.at_level(logging.WARNING):
        catalog = Catalog.from_objects(objects, _seen_errors=seen)
        Catalog.from_objects(objects, _seen_errors=seen)
    assert list(catalog.instance_types) == ["good"] and not catalog.images
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert any("InstanceType bad" in w for w in warnings) and any("Bad_Name" in w for w in warnings)


@pytest.mark.skipif(not (REPO / "crds/examples").is_dir(), reason="the demo catalog is not in this checkout")
def test_the_demo_catalog_parses_completely():
    objects = load_resource_objects([REPO / "crds/examples"])
    catalog = Catalog.from_objects(objects)
    assert len(catalog.instance_types) + len(catalog.images) + len(catalog.datasets) == len(objects)
    huge = catalog.instance_types.get("gpu-huge")
    if huge is not None:
        assert huge.gpu_limit > 2 and huge.node_selector


# --- the watched catalog --------------------------------------------------------------------------


class _Reflector:
    def __init__(self, resources, task):
        self.resources = resources
        self.watch_task = task

    async def stop(self):
        self.watch_task.cancel()


@pytest.mark.asyncio
async def test_the_watched_catalog_is_parsed_once_per_change_and_restarted_when_a_watch_dies(monkeypatch):
    import asyncio

    from primehub_hub.resources import CatalogWatcher, _CustomObjectLister

    forever = asyncio.ensure_future(asyncio.sleep(3600))
    small = {"metadata": {"name": "small", "namespace": "ns", "resourceVersion": "1"}, "spec": {"limits.cpu": 1}}
    watcher = CatalogWatcher("ns")
    watcher.reflectors = {
        "InstanceType": _Reflector({"ns/small": small}, forever),
        "Image": _Reflector({}, forever),
        "Dataset": _Reflector({}, forever),
    }
    first = await watcher.catalog()
    assert list(first.instance_types) == ["small"] and first.instance_types["small"].cpu_limit == 1
    assert await watcher.catalog() is first  # nothing changed: no re-parse, no API call
    watcher.reflectors["InstanceType"].resources["ns/small"] = {
        **small,
        "metadata": {**small["metadata"], "resourceVersion": "2"},
        "spec": {"limits.cpu": 2},
    }
    assert (await watcher.catalog()).instance_types["small"].cpu_limit == 2

    restarts = []

    def reflector_class():
        class Fresh(_Reflector):
            def __init__(self, parent=None, namespace=None, plural=None, kind=None):
                super().__init__({}, asyncio.ensure_future(asyncio.sleep(3600)))
                restarts.append(plural)

            async def start(self):
                pass

        return Fresh

    monkeypatch.setattr("primehub_hub.resources._custom_reflector_class", reflector_class)
    forever.cancel()
    await asyncio.sleep(0)
    assert (await watcher.catalog()).instance_types == {}
    assert sorted(restarts) == ["datasets", "images", "instancetypes"]
    await watcher.stop()

    calls = []

    class Api:
        async def list_namespaced_custom_object(self, *args, **kwargs):
            calls.append((args, kwargs))
            return "listed"

    assert await _CustomObjectLister(Api(), "images").list_namespaced(namespace="ns", watch=True) == "listed"
    assert calls == [(("primehub.io", "v1alpha1", "ns", "images"), {"watch": True})]


@pytest.mark.asyncio
async def test_an_unreadable_catalog_is_a_readable_503(monkeypatch):
    from primehub_hub.errors import CatalogUnavailable
    from primehub_hub.resources import CatalogWatcher

    async def broken(self):
        raise RuntimeError("403 Forbidden")

    monkeypatch.setattr(CatalogWatcher, "start", broken)
    with pytest.raises(CatalogUnavailable, match="instance types, images and datasets") as info:
        await CatalogWatcher("ns").catalog()
    assert info.value.status_code == 503


class _ListingReflector:
    """The two ways KubeSpawner's reflector writes its dict: a relist assigns a new one, each
    watch event sets or pops one key."""

    def __init__(self, resources):
        self.resources = dict(resources)
        self.relisted = dict(resources)
        self.watch_task = asyncio.get_running_loop().create_future()  # never done: alive

    async def _list_and_update(self, resource_version=None):
        self.resources = dict(self.relisted)
        return "list-version"


def _counting_dict():
    from primehub_hub.watch import _WatchedDict

    class CountingDict(_WatchedDict):
        reads = 0

        def items(self):
            type(self).reads += 1
            return super().items()

        def values(self):
            type(self).reads += 1
            return super().values()

    return CountingDict


@pytest.mark.asyncio
async def test_catalog_is_kept_until_a_watch_event_or_relist_changes_a_resource():
    from primehub_hub.resources import CatalogWatcher
    from primehub_hub.watch import notifying

    small = {"metadata": {"name": "small", "namespace": "ns", "resourceVersion": "1"}, "spec": {"limits.cpu": 1}}
    Reflector = notifying(_ListingReflector)
    watcher = CatalogWatcher("ns")
    watcher.reflectors = {
        "InstanceType": Reflector({"ns/small": small}),
        "Image": Reflector({}),
        "Dataset": Reflector({}),
    }
    it = watcher.reflectors["InstanceType"]
    counting = _counting_dict()
    it.resources = counting(it.resources, it._changed)
    first = await watcher.catalog()
    version = watcher.version()
    counting.reads = 0
    for _ in range(3):
        assert await watcher.catalog() is first
    assert watcher.version() == version
    # nothing changed: the resources were not even looked at
    assert counting.reads == 0

    # a watch event: the version moves and the next call sees the change
    it.resources["ns/big"] = {
        "metadata": {"name": "big", "namespace": "ns", "resourceVersion": "2"},
        "spec": {"limits.cpu": 8},
    }
    assert watcher.version() != version
    second = await watcher.catalog()
    assert second is not first and list(second.instance_types) == ["big", "small"]
    assert second.instance_types["small"] is first.instance_types["small"]  # unchanged ones are not parsed again

    # a relist that finds the same objects keeps the catalog; one that lost an object does not
    it.relisted = dict(it.resources)
    await it._list_and_update()
    assert await watcher.catalog() is second
    it.relisted = {"ns/small": small}
    await it._list_and_update()
    assert list((await watcher.catalog()).instance_types) == ["small"]
    # a deleted resource (watch event) is gone from the next catalog
    it.resources.pop("ns/small")
    assert (await watcher.catalog()).instance_types == {}


@pytest.mark.asyncio
async def test_a_notifying_reflector_finds_one_pods_events_through_watch_events_and_relists():
    from primehub_hub.watch import notifying

    def event(uid, pod, version="1"):
        return {"metadata": {"uid": uid, "resourceVersion": version}, "involvedObject": {"name": pod}}

    events = notifying(_ListingReflector)({"ns/a1": event("a1", "jupyter-ana"), "ns/b1": event("b1", "jupyter-bo")})

    def uids(pod):
        return sorted(e["metadata"]["uid"] for e in events.involving(pod))

    assert uids("jupyter-ana") == ["a1"]  # what the reflector held when it was made
    events.resources["ns/a2"] = event("a2", "jupyter-ana")
    assert uids("jupyter-ana") == ["a1", "a2"]
    events.resources["ns/a2"] = event("a2", "jupyter-bo", "2")  # an object now naming another pod
    assert uids("jupyter-ana") == ["a1"] and uids("jupyter-bo") == ["a2", "b1"]
    events.resources.pop("ns/a1")
    assert uids("jupyter-ana") == [] and uids("nobody") == []
    # a relist (the watch restarted) that lost one event and found a new one
    events.relisted = {"ns/b1": event("b1", "jupyter-bo"), "ns/c1": event("c1", "jupyter-cy")}
    await events._list_and_update()
    assert uids("jupyter-bo") == ["b1"] and uids("jupyter-cy") == ["c1"]
    events.resources["ns/c2"] = event("c2", "jupyter-cy")  # and the new dict is watched too
    assert uids("jupyter-cy") == ["c1", "c2"]


@pytest.mark.asyncio
async def test_a_listener_about_one_pod_hears_its_pod_and_its_events_only():
    from primehub_hub.watch import notifying

    store = notifying(_ListingReflector)({})
    heard, everything = [], []
    store.add_listener(heard.append, about="jupyter-ana")
    store.add_listener(everything.append)
    store.resources["ns/jupyter-ana"] = {"metadata": {"name": "jupyter-ana"}}  # her pod
    store.resources["ns/jupyter-bo"] = {"metadata": {"name": "jupyter-bo"}}
    store.resources["ns/ev1"] = {"metadata": {"name": "ev1"}, "involvedObject": {"name": "jupyter-ana"}}
    store.resources["ns/ev2"] = {"metadata": {"name": "ev2"}, "involvedObject": {"name": "jupyter-bo"}}
    store.resources.pop("ns/ev1")  # an event of hers expires
    assert heard == ["ns/jupyter-ana", "ns/ev1", "ns/ev1"]
    assert len(everything) == 5
    store.remove_listener(heard.append, about="jupyter-ana")
    store.resources["ns/jupyter-ana"] = {"metadata": {"name": "jupyter-ana", "resourceVersion": "2"}}
    assert len(heard) == 3 and store._listeners_about == {}


@pytest.mark.asyncio
async def test_a_watch_that_ended_resumes_from_its_version_and_the_list_is_read_again_only_as_a_safety_net(
    monkeypatch,
):
    from primehub_hub import watch

    now = [1000.0]
    monkeypatch.setattr(watch.time, "monotonic", lambda: now[0])
    store = watch.notifying(_ListingReflector)({})
    store.relist_seconds = 60
    assert await store._list_and_update() == "list-version"  # the first list
    assert store.relists == 1

    # the watch ended (timeout) having seen version 7: the next watch starts there, nothing is listed
    store.relisted = {"ns/lost": {"metadata": {"name": "lost", "resourceVersion": "5"}}}
    now[0] += 59
    assert await store._list_and_update("7") == "7"
    assert store.relists == 1 and "ns/lost" not in store.resources

    # past relist_seconds, or after an error (KubeSpawner passes "0"), the whole list is read
    now[0] += 2
    assert await store._list_and_update("8") == "list-version"
    assert store.relists == 2 and "ns/lost" in store.resources
    assert await store._list_and_update("0") == "list-version"
    assert store.relists == 3

    # relist_seconds = 0 is KubeSpawner's own behaviour: a list at every watch restart
    store.relist_seconds = 0
    await store._list_and_update("9")
    assert store.relists == 4


def test_a_deletion_delivered_again_by_a_resumed_watch_changes_nothing():
    from primehub_hub.watch import _WatchedDict

    changed = []
    pods = _WatchedDict({"ns/a": {}}, changed.append)
    pods.pop("ns/a", None)
    pods.pop("ns/a", None)  # the same DELETED event, replayed from an older version
    assert changed == ["ns/a"]


@pytest.mark.asyncio
async def test_operators_set_the_safety_net_relist_in_kubespawners_reflector_section():
    from kubespawner.reflector import ResourceReflector
    from traitlets.config import Config

    from primehub_hub.watch import notifying

    class Configmaps(ResourceReflector):
        kind = "configmaps"
        list_method_name = "list_namespaced_config_map"

    reflector = notifying(Configmaps)(namespace="ns")
    assert reflector.relist_seconds == 60
    config = Config()
    config.ResourceReflector.relist_seconds = 300
    assert notifying(Configmaps)(namespace="ns", config=config).relist_seconds == 300
