"""`helm uninstall` on a real cluster (E2E_BACKEND=kind): the chart's pre-delete hook stops every user
server, and everything that holds data stays: home PVCs, the hub database's PVC, the catalog and the
CRDs. Installing the release again takes the kept database back (Helm adopts the kept PVC), so the
hub still knows its users.

The release is gone while this runs, so the file is named to run last; it installs the release again
at the end through the backend's own install (the same values), leaving the stack as it found it.
"""

from __future__ import annotations

import json

import pytest
from releases import helm, release_name
from userflows import CPU_SMALL, message_of, spawn, stop_server, wait_ready

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.backend(
        "kind",
        reason="runs helm uninstall and its hook Job: the local backend's hub is not installed by Helm",
    ),
]
USER_PODS = "app.kubernetes.io/component=singleuser-server"


def _items(cluster, kind: str, *args: str) -> list[dict]:
    out = cluster.kubectl("get", kind, "-n", cluster.namespace, "-o", "json", *args)
    return json.loads(out.stdout)["items"]


def _pvcs(cluster) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in _items(cluster, "pvc")}


def test_uninstall_stops_user_servers_and_keeps_data(cluster, keycloak, hub):
    stop_server(hub, cluster, "alice")
    status, resp = spawn(hub, "alice", CPU_SMALL)
    assert status in (201, 202), message_of(resp)
    wait_ready(hub, "alice", timeout=180)
    release = release_name(cluster)
    assert _items(cluster, "pods", "-l", f"{USER_PODS},app.kubernetes.io/instance={release}")
    pvcs_before = _pvcs(cluster)
    assert "hub-db-dir" in pvcs_before and "claim-alice" in pvcs_before, pvcs_before
    catalog_before = {k: len(_items(cluster, k)) for k in ("instancetypes", "images", "datasets")}

    r = helm(cluster, "uninstall", release, "--wait", "--timeout=5m")
    assert r.returncode == 0, f"helm uninstall failed:\n{r.stdout}\n{r.stderr}"

    # No user server outlives the hub: the hook deleted them and waited until they were gone.
    assert _items(cluster, "pods", "-l", USER_PODS) == []
    assert not _items(cluster, "deployments"), "the hub and the proxy are gone"
    # The hook's objects are deleted once it has worked.
    for kind in ("job", "serviceaccount", "role", "rolebinding"):
        left = cluster.kubectl("get", kind, "hub-uninstall", "-n", cluster.namespace, check=False)
        assert left.returncode != 0 and "NotFound" in left.stderr, f"{kind}/hub-uninstall is still there"
    # Data stays: the same PVCs (same uid: never deleted and made again), the catalog and the CRDs.
    pvcs_after = _pvcs(cluster)
    assert {n: u for n, u in pvcs_after.items() if n in pvcs_before} == pvcs_before, pvcs_after
    assert {k: len(_items(cluster, k)) for k in catalog_before} == catalog_before
    for crd in ("instancetypes", "images", "datasets"):
        cluster.kubectl("get", "crd", f"{crd}.primehub.io")

    # The same release installed again adopts the kept database volume instead of refusing it.
    from backends import kind

    again = kind.hub(cluster, keycloak)
    pvc = json.loads(cluster.kubectl("get", "pvc", "hub-db-dir", "-n", cluster.namespace, "-o", "json").stdout)
    assert pvc["metadata"]["uid"] == pvcs_before["hub-db-dir"]
    assert pvc["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
    # The kept database still knows alice; her server, stopped by the hook, is recorded as stopped.
    status, info = again.api("GET", "/users/alice")
    assert status == 200, info
    cluster.wait(
        lambda: not (again.api("GET", "/users/alice")[1] or {}).get("servers"),
        120,
        "alice's server recorded as stopped by the reinstalled hub",
    )
