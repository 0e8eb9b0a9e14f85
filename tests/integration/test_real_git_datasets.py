"""git datasets on a real cluster (E2E_BACKEND=kind): a git dataset is a node folder that a git-sync
fills, and the hub cannot look into nodes. The backend installs the chart saying an outside git-sync
runs (`gitSync.external`; the checkouts are made on the node as one would), so the demo's
`notebooks-repo` is mounted (test_real_containers.py). Here the release is upgraded as an operator who
runs no git-sync leaves it: the hub then leaves the git dataset out of the launch, says so on the
form, and the server still starts with everything else. Before this rule, the server got an empty,
root-owned folder on a real node (or none: the pod never started), and nobody was told.

The upgrade restarts the hub (its settings change); the backend's own install puts the release back.
"""

from __future__ import annotations

import pytest
from browser import login, new_page
from releases import helm, release_name
from userflows import CPU_SMALL, message_of, mounts, pod_of, spawn, stop_server, wait_ready

from localstack import common

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.backend(
        "kind",
        reason="changes the release with helm upgrade: the local backend's hub is not installed by Helm",
    ),
]
NOTICE = "Dataset Example notebooks (git) is not mounted: git datasets need a git-sync on the nodes"


@pytest.fixture
def without_git_sync(cluster, keycloak, hub):
    """The release as installed with neither gitSync.enabled nor gitSync.external."""
    from backends import kind

    stop_server(hub, cluster, "alice")
    r = helm(
        cluster,
        "upgrade",
        release_name(cluster),
        str(kind.REPO / "chart"),
        "--reuse-values",
        "--set",
        "gitSync.external=false",
        "--wait",
        "--timeout=5m",
    )
    try:
        assert r.returncode == 0, f"helm upgrade failed:\n{r.stdout}\n{r.stderr}"
        common.wait_for(lambda: common.http_ok(f"{hub.api_url}/"), 120, "the hub after the upgrade")
        yield
    finally:
        stop_server(hub, cluster, "alice")
        kind.hub(cluster, keycloak)  # the backend's values again: gitSync.external back on


def test_without_a_git_sync_the_git_dataset_is_left_out_and_said_so(cluster, hub, keycloak, browser, without_git_sync):
    page = new_page(browser)
    try:
        login(page, hub, keycloak, "alice")
        page.goto(f"{hub.url}/hub/spawn")
        group = page.locator("[data-group=data-science]").inner_text()
        assert NOTICE in group, group
    finally:
        page.context.close()

    status, resp = spawn(hub, "alice", CPU_SMALL)
    assert status in (201, 202), message_of(resp)
    wait_ready(hub, "alice", timeout=180)
    paths = set(mounts(pod_of(cluster, "alice")))
    assert not any("notebooks-repo" in p for p in paths), sorted(paths)
    assert any("training-set" in p for p in paths), f"the other datasets are still mounted: {sorted(paths)}"
