"""Moving from PrimeHub, on the real stack: what users who move over notice on their first day.

Each test names the item of docs/migrating-from-primehub.md it checks. On the local backend the node
agent runs a pod's command as a local process (no volumes, no images), so these tests check the pod
spec the hub created through the Kubernetes API and the pages the browser shows; the ones that need a
real container say so and why.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from browser import login, new_page
from userflows import CPU_SMALL, container_env, mounts, pod_of, servers_stopped, spawn, stop_server, wait_ready

pytestmark = pytest.mark.e2e
BACKEND = os.environ.get("E2E_BACKEND", "local")


@pytest.fixture
def page(browser):
    p = new_page(browser)
    yield p
    p.context.close()


@pytest.fixture
def clean(hub, cluster):
    """Users whose servers a test starts; stopped before and after."""
    yield from servers_stopped(hub, cluster)


def start_alice(hub, **wait) -> None:
    """alice's server on the demo's CPU launch, ready (`wait`: wait_ready's timeout)."""
    status, body = spawn(hub, "alice", CPU_SMALL)
    assert status in (201, 202), body
    wait_ready(hub, "alice", **wait)


def _hub_log(hub) -> str:
    path = Path(hub.log_dir) / "hub.log"
    return path.read_text(errors="replace") if path.is_file() else ""


# --- a dataset whose volume is missing is left out, with a notice --------------------------------


@pytest.fixture
def team_data_without_volume(cluster):
    """Dataset team-data (pv, granted to data-science) pointed at a PVC that does not exist."""
    get = cluster.kubectl("get", "dataset", "team-data", "-n", cluster.namespace, "-o", "json")
    original = json.loads(get.stdout)["spec"]["volumeName"]
    patch = json.dumps({"spec": {"volumeName": "volume-that-was-never-made"}})
    cluster.kubectl("patch", "dataset", "team-data", "-n", cluster.namespace, "--type=merge", "-p", patch)
    yield "dataset-volume-that-was-never-made"
    cluster.kubectl(
        "patch",
        "dataset",
        "team-data",
        "-n",
        cluster.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"volumeName": original}}),
    )


def test_a_dataset_whose_volume_is_missing_is_left_out_and_the_server_starts(
    hub, cluster, clean, team_data_without_volume
):
    """The spawn succeeds without /datasets/team-data (PrimeHub's admission webhook dropped it too);
    the pod carries the notice the start page showed, and the hub log names the dataset and the PVC."""
    clean("alice")
    claim = team_data_without_volume
    # the hub's catalog watch delivers the patch in milliseconds; give it a second before spawning
    time.sleep(1)
    start_alice(hub)
    pod = pod_of(cluster, "alice")
    assert "/datasets/team-data" not in mounts(pod), "the dataset without a volume is not mounted"
    assert "/datasets/training-set" in mounts(pod), "the other datasets still are"
    notice = pod["metadata"]["annotations"]["hub.primehub.io/notices"]
    assert "team-data" in notice.lower() or "Team" in notice
    assert claim in notice and "does not exist" in notice
    if BACKEND == "local":  # the kind backend keeps the hub's log in its container
        assert f"dataset team-data left out of the launch: its PVC {claim} does not exist" in _hub_log(hub)


# --- the form: descriptions, order, PrimeHub's default, the user's own variables ------------------


def test_the_form_describes_the_choices_sorted_by_display_name_with_primehubs_default(page, hub, keycloak, cluster):
    """Instance types and images are listed by display name (case-insensitive) with the first usable
    one chosen, as PrimeHub's form did, and the chosen one's description is shown under it."""
    stop_server(hub, cluster, "alice")
    login(page, hub, keycloak, "alice")
    page.goto(f"{hub.url}/hub/spawn")
    page.check("input[name=group][value=ml-team]")
    ml = page.locator("[data-group=ml-team]")
    labels = [o.get_attribute("data-label") for o in ml.locator("select.primehub-instance-type option").all()]
    assert labels == sorted(labels, key=str.lower), labels
    its = ml.locator("select.primehub-instance-type")
    its.select_option("gpu-small")
    assert "one NVIDIA GPU" in ml.locator(".primehub-description").first.inner_text()
    its.select_option("cpu-small")
    assert "Good for notebooks" in ml.locator(".primehub-description").first.inner_text()


def _open_env_editor(page):
    if page.locator("details.primehub-env").get_attribute("open") is None:
        page.locator("details.primehub-env summary").click()


def test_the_users_own_variables_reach_the_pod_are_remembered_and_cannot_replace_the_hubs(
    page, hub, keycloak, cluster, clean
):
    clean("alice")
    login(page, hub, keycloak, "alice")
    page.goto(f"{hub.url}/hub/spawn")
    _open_env_editor(page)
    page.fill("textarea[name=env]", "MY_SETTING=42\nJUPYTERHUB_API_TOKEN=stolen")
    page.check("input[name=group][value=data-science]")
    page.locator("[data-group=data-science] select.primehub-instance-type").select_option("cpu-small")
    # the answer's headers come before its page is shown: wait for both
    with (
        page.expect_navigation(),
        page.expect_response(lambda r: "/hub/spawn" in r.url and r.request.method == "POST") as answer,
    ):
        page.click("button:has-text('Start'), input[type=submit]")
    assert 400 <= answer.value.status < 500
    assert "JUPYTERHUB_API_TOKEN is set by the hub" in page.inner_text("body")
    assert pod_of(cluster, "alice") is None, "a refused launch creates no pod"

    _open_env_editor(page)  # the refusal's page is a fresh form
    page.fill("textarea[name=env]", "MY_SETTING=42")
    page.click("button:has-text('Start'), input[type=submit]")
    wait_ready(hub, "alice")
    env = container_env(pod_of(cluster, "alice"))
    assert env["MY_SETTING"] == "42" and env["GROUP_NAME"] == "data-science"
    stop_server(hub, cluster, "alice")
    page.goto(f"{hub.url}/hub/spawn")
    assert page.input_value("textarea[name=env]") == "MY_SETTING=42", "remembered for the next launch"


# --- Cancel while starting ------------------------------------------------------------------------


@pytest.fixture
def team_data_never_bound(cluster):
    """team-data pointed at a PVC that never binds (no such storage class): a launch of data-science
    then stays Pending, which the scheduler reports as temporary, so the start waits."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "dataset-never-bound", "namespace": cluster.namespace},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "no-such-class",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(claim))
    original = json.loads(cluster.kubectl("get", "dataset", "team-data", "-n", cluster.namespace, "-o", "json").stdout)[
        "spec"
    ]["volumeName"]
    cluster.kubectl(
        "patch",
        "dataset",
        "team-data",
        "-n",
        cluster.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"volumeName": "never-bound"}}),
    )
    time.sleep(1)  # the hub's catalog watch delivers the patch in milliseconds
    yield
    cluster.kubectl(
        "patch",
        "dataset",
        "team-data",
        "-n",
        cluster.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"volumeName": original}}),
    )
    cluster.kubectl(
        "delete", "pvc", "dataset-never-bound", "-n", cluster.namespace, "--ignore-not-found", "--wait=false"
    )


def test_cancel_on_the_start_page_stops_a_start_that_waits(page, hub, keycloak, cluster, clean, team_data_never_bound):
    """While the server is starting, the start page offers Cancel (JupyterHub 6's own Stop button where
    it exists); it ends the start, removes the pod and brings the user back to the home page."""
    from browser import choose_and_start

    clean("alice")
    login(page, hub, keycloak, "alice")
    choose_and_start(page, hub, "data-science", "cpu-small", "base-notebook")
    page.wait_for_selector("#primehub-cancel-start, #stop-server-btn", timeout=60_000)
    cluster.wait(lambda: pod_of(cluster, "alice"), 60, "alice's pod, waiting for its volume")
    ours = page.locator("#primehub-cancel-start").count() == 1
    page.click("#primehub-cancel-start, #stop-server-btn")
    cluster.wait(lambda: pod_of(cluster, "alice") is None, 60, "alice's pod removed after Cancel")
    cluster.wait(
        lambda: not (hub.api("GET", "/users/alice")[1] or {}).get("servers"), 60, "alice's server no longer pending"
    )
    if ours:  # (JupyterHub 6's own button decides itself where to go)
        page.wait_for_url(f"{hub.url}/hub/home", timeout=30_000)


# --- scopeRequired --------------------------------------------------------------------------------


@pytest.fixture
def hub_with_scope_required(hub, tmp_path):
    """The hub restarted with keycloak.scopeRequired img:pytorch-gpu (held by ml-team and gpu-lab
    members through their groups), then restarted as before."""
    from localstack import hub as lh

    document = lh.settings()
    document["keycloak"]["scopeRequired"] = "img:pytorch-gpu"
    lh.stop()
    lh.start({"PRIMEHUB_SETTINGS": str(lh.write_settings(document, tmp_path / "settings.json"))})
    try:
        yield hub
    finally:
        lh.stop()
        lh.start()


@pytest.mark.backend(
    "local",
    reason="the test restarts the hub with a changed settings document, which on the kind backend would "
    "take a helm upgrade of the release",
)
def test_scope_required_keeps_out_users_without_the_role(browser, keycloak, hub_with_scope_required):
    hub = hub_with_scope_required
    refused = new_page(browser)
    try:
        refused.goto(f"{hub.url}/hub/")
        from browser import keycloak_login

        # erin holds no img:pytorch-gpu (dana, an admin, would pass: oauthenticator lets admins in
        # before any allow rule, so the gate is for users, as PrimeHub's was).
        keycloak_login(refused, "erin", "erin-pw")
        refused.wait_for_url(f"{hub.url}/hub/**")
        body = refused.inner_text("body")
        assert "needs the role 'img:pytorch-gpu'" in body and "Traceback" not in body
    finally:
        refused.context.close()
    allowed = new_page(browser)
    try:
        login(allowed, hub, keycloak, "alice")
        assert allowed.url.startswith(f"{hub.url}/hub/") and "needs the role" not in allowed.inner_text("body")
    finally:
        allowed.context.close()


# --- /dev/shm, sudo off by default, writable mounts owned by the notebook user ---------------------


def test_the_pod_has_a_memory_backed_dev_shm_as_large_as_its_memory_limit(hub, cluster, clean):
    """PyTorch data loaders with workers need more than Kubernetes' 64 MiB /dev/shm: the hub mounts a
    memory-backed volume sized to the instance type's memory limit (cpu-small: 1G). Sudo stays off
    by default, and the writable mounts are listed for docker-stacks' start script to hand over."""
    clean("alice")
    start_alice(hub)
    pod = pod_of(cluster, "alice")
    m = mounts(pod)["/dev/shm"]
    (shm,) = [v for v in pod["spec"]["volumes"] if v["name"] == m["name"]]
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    env = container_env(pod)
    assert "GRANT_SUDO" not in env
    assert set(env["CHOWN_EXTRA"].split(",")) == {"/datasets/team-data", "/project/data-science"}


@pytest.mark.backend(
    "kind",
    reason="the local node agent runs no containers, so there is no /dev/shm of the pod to measure; "
    "the pod spec is checked on every backend by the test above",
)
def test_dev_shm_inside_the_container_has_that_size(hub, cluster, clean):
    """What the process sees: df of /dev/shm inside the running container."""
    clean("alice")
    start_alice(hub, timeout=600)
    out = cluster.kubectl(
        "exec", "-n", cluster.namespace, "jupyter-alice", "--", "df", "-B1", "--output=size", "/dev/shm"
    ).stdout.split()
    assert int(out[-1]) > 512 * 1024**2, f"/dev/shm is still Kubernetes' 64 MiB: {out}"


# --- ~/datasets, ~/<group>, git datasets at /datasets/<name> ---------------------------------------


def test_the_pod_links_datasets_and_the_group_volume_into_the_home_folder(hub, cluster, clean):
    """PrimeHub's links, made when the server starts and never over a user's own file: ~/datasets and
    ~/data-science; the git dataset's checkout linked at /datasets/notebooks-repo inside a writable
    /datasets of the pod."""
    clean("alice")
    start_alice(hub)
    pod = pod_of(cluster, "alice")
    links = pod["spec"]["containers"][0]["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert 'ln -s /datasets "$HOME"/datasets' in links
    assert 'ln -s /project/data-science "$HOME"/data-science' in links
    assert '[ -e "$HOME"/datasets ] || [ -L "$HOME"/datasets ]' in links, "an existing file is left alone"
    assert "ln -s /gitsync/notebooks-repo/notebooks-repo /datasets/notebooks-repo" in links
    m = mounts(pod)
    assert m["/gitsync/notebooks-repo"]["readOnly"] is True
    (root,) = [v for v in pod["spec"]["volumes"] if v["name"] == m["/datasets"]["name"]]
    assert root["emptyDir"] == {}


@pytest.mark.backend(
    "kind",
    reason="the local node agent runs no containers and mounts no volumes, so there is no home folder "
    "of the pod to look into; the pod spec is checked above",
)
def test_the_links_exist_inside_the_container(hub, cluster, clean):
    clean("alice")
    start_alice(hub, timeout=600)

    def sh(command):
        return cluster.kubectl(
            "exec", "-n", cluster.namespace, "jupyter-alice", "--", "sh", "-c", command
        ).stdout.strip()

    cluster.wait(lambda: sh('readlink "$HOME/datasets" || true') == "/datasets", 60, "~/datasets")
    assert sh('readlink "$HOME/data-science"') == "/project/data-science"
    assert sh("readlink /datasets/notebooks-repo") == "/gitsync/notebooks-repo/notebooks-repo"


# --- the start wrapper and Safe Mode ---------------------------------------------------------------


def test_safe_mode_from_the_form_starts_without_hooks_and_moves_the_home_volume(page, hub, keycloak, cluster, clean):
    """The form's Safe Mode box: the server starts through the start wrapper with PRIMEHUB_SAFE_MODE
    and the home volume at ~/user; the next ordinary launch is not in Safe Mode again. (On the local
    backend the wrapper itself runs too: the server only becomes ready if it hands over to
    jupyterhub-singleuser.)"""
    from browser import choose_and_start

    clean("alice")
    login(page, hub, keycloak, "alice")
    page.goto(f"{hub.url}/hub/spawn")
    page.check("input[name=safe_mode]")
    page.check("input[name=group][value=data-science]")
    box = page.locator("[data-group=data-science]")
    box.locator("select.primehub-instance-type").select_option("cpu-small")
    box.locator("select.primehub-image").select_option("base-notebook")
    page.click("button:has-text('Start'), input[type=submit]")
    wait_ready(hub, "alice")
    pod = pod_of(cluster, "alice")
    container = pod["spec"]["containers"][0]
    assert container["args"][:2] == ["sh", "-c"] and "jupyterhub-singleuser" in container["args"]
    assert container_env(pod)["PRIMEHUB_SAFE_MODE"] == "true"
    assert "/home/jovyan/user" in mounts(pod) and "/home/jovyan" not in mounts(pod)
    stop_server(hub, cluster, "alice")

    choose_and_start(page, hub, "data-science", "cpu-small", "base-notebook")
    wait_ready(hub, "alice")
    pod = pod_of(cluster, "alice")
    assert "PRIMEHUB_SAFE_MODE" not in container_env(pod) and "/home/jovyan" in mounts(pod)
