"""A volume kubelet cannot mount fails the spawn early, in words, and leaves no pod (E2E_BACKEND=kind).

Only a real kubelet mounts volumes: on the local backend the node agent mounts nothing, so a missing
node folder is never noticed there. The unit tests (test_hub_mounts.py, test_hub_spawner.py) cover
the rule itself with kubelet's own messages.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
from userflows import CPU_SMALL, message_of, pod_of, progress_until_done, spawn, stop_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.backend(
        "kind",
        reason="needs a real kubelet: the local node agent mounts no volumes, so a missing node folder "
        "is never reported there",
    ),
]
# The hub caches a user's groups and grants for up to 30 s (keycloak.py cache_ttl).
GRANT_CACHE_SECONDS = 31


@pytest.fixture
def dataset_without_its_folder(cluster, keycloak):
    """A hostPath dataset under the chart's allowed /srv/datasets/ whose folder no node has, granted
    to data-science (launch group only) through a Keycloak role; all of it removed afterwards."""
    name = f"missing-folder-{secrets.token_hex(3)}"
    dataset = {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {
            "name": name,
            "namespace": cluster.namespace,
            "annotations": {"dataset.primehub.io/launchGroupOnly": "true"},
        },
        "spec": {"displayName": "Field recordings", "type": "hostPath", "hostPath": {"path": f"/srv/datasets/{name}"}},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(dataset))
    adm = keycloak.admin()
    role = f"ds:{name}"
    adm.create_realm_role({"name": role}, skip_exists=True)
    group = adm.get_group_by_path("/data-science")
    adm.assign_group_realm_roles(group["id"], [adm.get_realm_role(role)])
    try:
        time.sleep(GRANT_CACHE_SECONDS)  # so the grant is read anew from Keycloak, not from the hub's cache
        yield name
    finally:
        adm.delete_group_realm_roles(group["id"], [adm.get_realm_role(role)])
        adm.delete_realm_role(role)
        cluster.kubectl("delete", "dataset", name, "-n", cluster.namespace, "--ignore-not-found")


def test_a_dataset_folder_missing_on_the_node_fails_the_spawn_with_its_name_and_leaves_no_pod(
    hub, cluster, dataset_without_its_folder
):
    stop_server(hub, cluster, "bob")
    status, resp = spawn(hub, "bob", CPU_SMALL)
    try:
        if status not in (201, 202):
            # it failed within the API's own wait for the start (slow_spawn_timeout): same sentence
            assert status == 503 and "could not be mounted" in message_of(resp), (status, resp)
        # the start page's view: the progress stream ends with the failure, whether or not it came first
        events = progress_until_done(hub, "bob")
        last = events[-1] if events else {}
        assert last.get("failed"), events
        message = last.get("message", "")
        assert "Dataset 'Field recordings' could not be mounted" in message, events
        assert f"/srv/datasets/{dataset_without_its_folder} does not exist on the node" in message, events
        assert pod_of(cluster, "bob") is None, "the pod that could not start is removed"
        claims = cluster.kubectl("get", "pvc", "-n", cluster.namespace, "-o", "name").stdout
        assert "claim-bob" in claims, "the home volume stays"
        assert not (hub.api("GET", "/users/bob")[1] or {}).get("servers"), "the hub has no server for bob"
    finally:
        stop_server(hub, cluster, "bob")
