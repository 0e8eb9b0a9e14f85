"""What the hub decides at spawn time, seen through its REST API and the browser: the pod's spec for
GPU launches, fast failure when nothing can fit, quotas (also under concurrency), and forged input."""

from __future__ import annotations

import concurrent.futures
import re
from pathlib import Path

import pytest
from browser import choose_and_start, login, new_page
from userflows import (
    CPU_SMALL,
    container_env,
    ensure_user,
    message_of,
    pod_of,
    pods_of_group,
    primehub_label,
    quantities,
    servers_stopped,
    spawn,
    wait_ready,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def clean(hub, cluster):
    """Users whose servers a test starts; stopped before and after."""
    yield from servers_stopped(hub, cluster)


def test_gpu_launch_gets_the_gpu_node_image_and_tolerations(hub, cluster, clean):
    clean("alice")
    status, body = spawn(hub, "alice", {"group": "ml-team", "instance_type": "gpu-small", "image": "pytorch-gpu"})
    assert status in (201, 202), message_of(body)
    wait_ready(hub, "alice")
    pod = pod_of(cluster, "alice")
    c = pod["spec"]["containers"][0]
    assert pod["spec"]["nodeName"] == cluster.nodes["gpu"]
    assert quantities(c["resources"]["limits"])["nvidia.com/gpu"] == 1
    assert c["image"] == "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06", "a GPU instance type uses urlForGpu"
    assert pod["spec"]["nodeSelector"] == {"accelerator": "nvidia-tesla"}
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod["spec"]["tolerations"])
    assert "NVIDIA_VISIBLE_DEVICES" not in container_env(pod)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/datasets/ml-private"]["readOnly"] is True, "launch-group-only, granted to ml-team"
    assert mounts["/datasets/team-data"]["readOnly"] is True, "ml-team grants team-data read-only"
    assert "/project/data-science" not in mounts, "a group's shared volume is mounted only under that group"


def test_private_image_brings_its_pull_secret(hub, cluster, clean):
    clean("bob")
    status, body = spawn(
        hub, "bob", {"group": "data-science", "instance_type": "cpu-small", "image": "private-notebook"}
    )
    assert status in (201, 202), message_of(body)
    # The pod asks for the image with the Secret; whether the pull then works is the registry's
    # business. On kind registry.example.com is out of reach: the pull fails and the spawn gives up
    # primehub.imagePullFailureGrace (30 s) after the first failed pull, removing the pod, while the
    # API answers within its 10 s wait; so the pod is read as soon as it exists, well before that
    # (test_real_pull_failures.py covers the failure itself).
    pod = cluster.wait(lambda: pod_of(cluster, "bob"), 60, "bob's pod")
    assert {"name": "registry-credentials"} in pod["spec"]["imagePullSecrets"]
    assert pod["spec"]["containers"][0]["image"] == "registry.example.com/data-science/notebook:1.4.2"


def test_admin_spawning_for_a_user_applies_the_users_entitlements(hub, cluster, clean):
    # The API token is the hub's admin service; bob is not in ml-team, so ml-team is refused for him.
    clean("bob")
    status, body = spawn(hub, "bob", {"group": "ml-team", "instance_type": "gpu-small", "image": "pytorch-gpu"})
    assert status == 403, (status, body)
    assert "ml-team" in message_of(body)
    assert pod_of(cluster, "bob") is None


def test_unschedulable_launch_fails_fast_with_the_reason_then_another_works(browser, hub, keycloak, cluster, clean):
    clean("bob")
    page = new_page(browser)
    try:
        login(page, hub, keycloak, "bob")
        choose_and_start(page, hub, "gpu-lab", "gpu-huge", "pytorch-gpu")
        # The scheduler's verdict in words, not the start timeout's "Spawn failed: Timeout"
        # (how fast it comes is measured by `make bench`, not asserted here).
        page.wait_for_selector("text=/No node can run this server/", timeout=120_000)
        text = page.inner_text("body")
        assert re.search(r"nvidia\.com/gpu|GPU", text), text
        assert "Timeout" not in text
        cluster.wait(lambda: pod_of(cluster, "bob") is None, 30, "the unschedulable pod removed")

        choose_and_start(page, hub, "gpu-lab", "cpu-small", "base-notebook")
        page.wait_for_url(re.compile(rf"{re.escape(hub.url)}/user/bob/.*"), timeout=120_000)
        assert pod_of(cluster, "bob")["status"]["phase"] == "Running"
    finally:
        page.context.close()


def test_over_quota_launch_is_refused_before_any_pod(hub, cluster, clean):
    clean("erin")
    status, body = spawn(hub, "erin", {"group": "tiny", "instance_type": "cpu-large", "image": "base-notebook"})
    assert 400 <= status < 500, (status, body)
    msg = message_of(body)
    assert "CPU" in msg or "cpu" in msg, msg
    assert "0.5" in msg and "4" in msg, "the message names the quota and the request"
    assert pod_of(cluster, "erin") is None


def test_concurrent_launches_never_overrun_the_group_quota(hub, cluster, clean):
    # data-science allows 6 CPU in total; cpu-large takes 4, so of three users at once exactly one runs.
    users = ["alice", "bob", "dana"]
    clean(*users)
    for u in users:
        ensure_user(hub, u)
    opts = {"group": "data-science", "instance_type": "cpu-large", "image": "base-notebook"}
    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(lambda u: hub.api("POST", f"/users/{u}/server", opts), users))
    accepted = [u for u, (status, _) in zip(users, results) if status in (201, 202)]
    refused = [(u, status, message_of(body)) for u, (status, body) in zip(users, results) if status not in (201, 202)]
    assert len(accepted) == 1, results
    assert all(400 <= s < 500 and "quota" in m.lower() for _, s, m in refused), refused
    wait_ready(hub, accepted[0])
    assert [p["metadata"]["labels"]["primehub.io/user"] for p in pods_of_group(cluster, "data-science")] == [
        primehub_label(u) for u in accepted
    ]


FORGED = [
    ({"group": "ml-team", "instance_type": "gpu-small", "image": "pytorch-gpu"}, 403, "group"),
    ({"group": "data-science", "instance_type": "gpu-small", "image": "base-notebook"}, 403, "gpu-small"),
    ({"group": "data-science", "instance_type": "cpu-small", "image": "pytorch-gpu"}, 403, "pytorch-gpu"),
    ({"group": "data-science", "instance_type": "no-such-type", "image": "base-notebook"}, 403, "no-such-type"),
    (
        # `env` is the user's own variables since the form's editor: a bad name is refused, named.
        {**CPU_SMALL, "env": {"BAD NAME": "x"}},
        400,
        "BAD NAME",
    ),
    ({"group": "data-science", "instance_type": "x" * 5000, "image": "base-notebook"}, 400, "instance_type"),
    ({"group": ["data-science", "ml-team"], "instance_type": "cpu-small", "image": "base-notebook"}, 400, "group"),
]


@pytest.mark.parametrize(
    "options,code,named",
    FORGED,
    ids=[
        "other-group",
        "type-of-other-group",
        "ungranted-image",
        "unknown-type",
        "env-field",
        "oversized",
        "two-groups",
    ],
)
def test_forged_api_spawns_are_refused_and_create_nothing(hub, cluster, clean, options, code, named):
    clean("bob")
    status, body = spawn(hub, "bob", options)
    assert status == code, (status, body)
    assert named in message_of(body)
    assert pod_of(cluster, "bob") is None
    assert hub.api("GET", "/")[0] == 200, "the hub keeps serving"


def test_forged_form_posts_are_refused(browser, hub, keycloak, cluster, clean):
    clean("bob")
    page = new_page(browser)
    try:
        login(page, hub, keycloak, "bob")
        page.goto(f"{hub.url}/hub/spawn")
        # JupyterHub puts the XSRF token in the form's action URL.
        action = page.locator("form#spawn_form").get_attribute("action")
        for form, expect in [
            ({"group": "ml-team", "instance_type@ml-team": "gpu-small", "image@ml-team": "pytorch-gpu"}, "ml-team"),
            (
                {
                    "group": "data-science",
                    "instance_type@data-science": "gpu-huge",
                    "image@data-science": "base-notebook",
                },
                "gpu-huge",
            ),
        ]:
            resp = page.request.post(f"{hub.url}{action}", form=form, max_redirects=0)
            assert 400 <= resp.status < 500, resp.status
            assert expect in resp.text()
        assert pod_of(cluster, "bob") is None
    finally:
        page.context.close()


@pytest.mark.backend(
    "local", reason="reads the hub's log as it is written; the kind backend keeps logs of failures only"
)
def test_a_spawn_applies_its_options_through_jupyterhubs_hook_without_the_unhandled_warning(hub, cluster, clean):
    """The options are checked and applied in JupyterHub's apply_user_options hook: a spawn no longer logs
    "Received unhandled user_options" (every spawn did)."""
    clean("bob")
    log = Path(hub.log_dir) / "hub.log"
    start = log.stat().st_size
    status, body = spawn(hub, "bob", CPU_SMALL)
    assert status in (201, 202), message_of(body)
    wait_ready(hub, "bob")
    with log.open(errors="replace") as f:
        f.seek(start)
        written = f.read()
    assert "bob" in written, "the spawn is in the hub's log"
    assert "unhandled user_options" not in written, written[-2000:]
