"""The hub's watches on the real API server: a watch that ended resumes from the last version it
saw instead of listing the whole namespace again (hub-config/primehub_hub/watch.py), and no change
made across those restarts is missed. The hub's pod, event and catalog reflectors all work this
way; a ConfigMap reflector of the same class is used here so the test touches nothing the hub or
the other tests use."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time


async def _until(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the reflector did not see {what} within {timeout:.0f} s")
        await asyncio.sleep(0.1)


def _run_in_a_loop_of_its_own(coroutine_function, timeout=120):
    """asyncio.run in a thread: the browser tests' Playwright session keeps a loop running in the
    main thread, where another one cannot run."""
    outcome = {}

    def run():
        try:
            outcome["value"] = asyncio.run(coroutine_function())
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = e

    thread = threading.Thread(target=run, name="reflector-watch-test")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"the watch scenario did not finish in {timeout} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_watches_resume_without_relisting_and_miss_no_change(cluster):
    _run_in_a_loop_of_its_own(lambda: _resumed_watches_miss_nothing(cluster))


async def _resumed_watches_miss_nothing(cluster):
    import kubernetes_asyncio.config
    from kubespawner.reflector import NamespacedResourceReflector

    from primehub_hub.watch import notifying

    class ConfigMaps(NamespacedResourceReflector):
        kind = "configmaps"
        list_method_name = "list_namespaced_config_map"
        api_group_name = "CoreV1Api"

    label = f"watch-test-{secrets.token_hex(3)}"
    if cluster.kubectl("get", "namespace", cluster.namespace, check=False).returncode:
        cluster.kubectl("create", "namespace", cluster.namespace)  # run alone, before the chart made it
    await kubernetes_asyncio.config.load_kube_config(config_file=cluster.kubeconfig)

    # each watch ends after 1 s on the server's side, as the hub's do after 10 s
    class Counting(notifying(ConfigMaps)):
        restarts = 0  # every watch restart asks for a list; only some are read

        async def _list_and_update(self, resource_version=None):
            type(self).restarts += 1
            return await super()._list_and_update(resource_version)

    reflector = Counting(namespace=cluster.namespace, labels={"test": label}, timeout_seconds=1, relist_seconds=3600)

    def configmap(name, value):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"value": value}}
        body["metadata"] = {"name": name, "namespace": cluster.namespace, "labels": {"test": label}}
        return json.dumps(body)

    def apply(name, value):
        cluster.kubectl("apply", "-f", "-", input=configmap(name, value))

    def value(name):
        obj = reflector.resources.get(f"{cluster.namespace}/{name}")
        return obj and obj["data"]["value"]

    try:
        await reflector.start()
        await asyncio.sleep(2.5)  # watches ended and resumed, with nothing to see
        assert reflector.resources == {}
        # KubeSpawner lists once at start and once more as its watch loop begins
        listed, restarts = reflector.relists, Counting.restarts
        apply(f"{label}-a", "one")
        await _until("a created", lambda: value(f"{label}-a") == "one")
        await asyncio.sleep(1.5)
        apply(f"{label}-a", "two")
        apply(f"{label}-b", "one")
        await _until("a changed and b created", lambda: value(f"{label}-a") == "two" and value(f"{label}-b"))
        await asyncio.sleep(1.5)
        cluster.kubectl("delete", "configmap", "-n", cluster.namespace, f"{label}-a")
        await _until("a deleted", lambda: f"{cluster.namespace}/{label}-a" not in reflector.resources)
        assert list(reflector.resources) == [f"{cluster.namespace}/{label}-b"]
        # every change came through resumed watches (about six of them): the list was not read again
        assert reflector.relists == listed
        assert Counting.restarts - restarts >= 3  # the watches really did end and resume meanwhile
    finally:
        await reflector.stop()
        cluster.kubectl("delete", "configmap", "-n", cluster.namespace, "-l", f"test={label}", check=False)
