"""A data scientist's day in a real browser (headless Chromium driven by Playwright) against the real
hub, Keycloak and Kubernetes of the local stack: login, the options form, spawn and use, logout."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from browser import choose_and_start, keycloak_login, login, new_page, screenshot
from userflows import GiB, container_env, mounts, pod_of, quantities, stop_server, volumes

pytestmark = pytest.mark.e2e
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture
def page(browser):
    p = new_page(browser)
    yield p
    p.context.close()


def test_hub_sends_the_browser_to_keycloak(page, hub, keycloak):
    page.goto(f"{hub.url}/hub/")
    page.wait_for_selector("#username")
    assert page.url.startswith(f"{keycloak.browser_url}/realms/{keycloak.realm}/protocol/openid-connect/auth")
    assert "client_id=jupyterhub" in page.url


def test_good_credentials_bring_the_user_back_to_the_hub(page, hub, keycloak):
    login(page, hub, keycloak, "bob")
    assert page.url.startswith(f"{hub.url}/hub/")
    assert "bob" in page.inner_text("body")
    _, info = hub.api("GET", "/users/bob")
    assert info["name"] == "bob"


def test_wrong_password_stays_on_keycloak_with_its_error(page, hub, keycloak):
    page.goto(f"{hub.url}/hub/")
    keycloak_login(page, "alice", "wrong-password")
    page.wait_for_selector("#input-error, .kc-feedback-text, [id*=error]")
    assert page.url.startswith(keycloak.browser_url)
    assert "Invalid username or password" in page.inner_text("body")


def test_user_without_a_launch_group_sees_a_clear_page(page, hub, keycloak):
    login(page, hub, keycloak, "carol")
    page.goto(f"{hub.url}/hub/spawn")
    body = page.inner_text("body")
    assert "No group is configured for you" in body
    assert "Traceback" not in body


def _options(select) -> dict[str, bool]:
    """{value: enabled} of a <select>'s options."""
    return {o.get_attribute("value"): o.get_attribute("disabled") is None for o in select.locator("option").all()}


def test_options_form_shows_exactly_the_users_choices(page, hub, keycloak, cluster):
    stop_server(hub, cluster, "alice")
    login(page, hub, keycloak, "alice")
    page.goto(f"{hub.url}/hub/spawn")
    groups = [r.get_attribute("value") for r in page.locator("input[name=group]").all()]
    assert groups == ["data-science", "ml-team"], "everyone is never offered; only alice's groups are"

    ds = page.locator("[data-group=data-science]")
    assert _options(ds.locator("select.primehub-instance-type")) == {"cpu-large": True, "cpu-small": True}
    assert set(_options(ds.locator("select.primehub-image"))) == {
        "base-notebook",
        "datascience-notebook",
        "private-notebook",
    }
    ds_text = ds.inner_text()
    for expected in ("Team data", "read-write", "/datasets/training-set", "/project/data-science"):
        assert expected in ds_text
    assert "ml-private" not in ds_text.lower().replace(" ", "-"), "launch-group-only datasets stay in their group"
    shot = screenshot(page, "options-form")
    if os.environ.get("PRIMEHUB_UPDATE_DOCS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, DOCS_IMAGES / "options-form.png")

    page.check("input[name=group][value=ml-team]")
    ml = page.locator("[data-group=ml-team]")
    its = _options(ml.locator("select.primehub-instance-type"))
    assert its == {"cpu-small": True, "gpu-small": True, "gpu-huge": False}, (
        "ghost-type has no resource; gpu-huge is over quota"
    )
    huge = ml.locator("option[value=gpu-huge]").inner_text()
    assert "unavailable" in huge and "GPU" in huge
    ml.locator("select.primehub-instance-type").select_option("cpu-small")
    gpu_image = ml.locator("select.primehub-image option[value=pytorch-gpu]")
    assert gpu_image.get_attribute("disabled") is not None
    assert "needs a GPU" in gpu_image.inner_text()
    ml.locator("select.primehub-instance-type").select_option("gpu-small")
    assert gpu_image.get_attribute("disabled") is None


def test_spawn_use_and_stop(page, hub, keycloak, cluster):
    stop_server(hub, cluster, "alice")
    login(page, hub, keycloak, "alice")
    choose_and_start(page, hub, "data-science", "cpu-large", "datascience-notebook")
    try:
        page.wait_for_url(re.compile(rf"{re.escape(hub.url)}/user/alice/.*"), timeout=120_000)
        page.wait_for_selector("#jp-main-dock-panel, .jp-LabShell", timeout=60_000)
        screenshot(page, "jupyterlab")

        pod = pod_of(cluster, "alice")
        assert pod["spec"]["nodeName"] == cluster.nodes["cpu"]
        c = pod["spec"]["containers"][0]
        assert quantities(c["resources"]["limits"]) == {"cpu": 4, "memory": 8 * GiB}
        assert quantities(c["resources"]["requests"]) == {"cpu": 2, "memory": 4 * GiB}
        assert c["image"].startswith("quay.io/jupyter/datascience-notebook")
        env = container_env(pod)
        assert env["GROUP_NAME"] == "data-science" and env["INSTANCE_TYPE"] == "cpu-large"
        assert env["IMAGE_NAME"] == "datascience-notebook" and env["TZ"] == "Asia/Taipei"
        assert env["NVIDIA_VISIBLE_DEVICES"] == "none"
        assert env["PUBLIC_DATA_BUCKET"] == "demo-bucket"
        labels = pod["metadata"]["labels"]
        # PrimeHub's escaping, so PrimeHub's jobs and deployments count towards the same quotas
        assert labels["primehub.io/user"] == "escaped-alice" and labels["primehub.io/group"] == "escaped-data-2dscience"
        m, v = mounts(pod), volumes(pod)
        assert not m["/datasets/team-data"].get("readOnly"), "data-science grants ds:rw:team-data"
        assert m["/datasets/training-set"]["readOnly"] is True
        assert v[m["/datasets/team-data"]["name"]]["persistentVolumeClaim"]["claimName"] == "dataset-team-data"
        assert v[m["/project/data-science"]["name"]]["persistentVolumeClaim"]["claimName"] == "project-data-science"
        assert "/datasets/ml-private" not in m
        # JupyterLab answers through configurable-http-proxy, from the process the node agent runs.
        resp = page.request.get(f"{hub.url}/user/alice/api/status")
        assert resp.status == 200
    finally:
        stop_server(hub, cluster, "alice")
    claims = cluster.kubectl("get", "pvc", "-n", cluster.namespace, "-o", "name").stdout
    assert "claim-alice" in claims and "project-data-science" in claims, "stopping keeps the volumes"


def test_logout_ends_the_keycloak_session_too(page, hub, keycloak):
    adm = keycloak.admin()
    dana = adm.get_user_id("dana")
    adm.user_logout(dana)  # sessions other tests made with the password grant
    login(page, hub, keycloak, "dana")
    assert len(adm.get_sessions(dana)) == 1, "logged in: Keycloak has the browser's session"
    page.goto(f"{hub.url}/hub/home")
    page.click("#logout, a:has-text('Logout'), button:has-text('Logout')")
    page.wait_for_url(re.compile(rf"{re.escape(hub.url)}/hub/.*"))
    time.sleep(0.5)
    assert not [c for c in page.context.cookies() if c["name"].startswith("jupyterhub-session")]
    assert adm.get_sessions(dana) == []
    page.goto(f"{hub.url}/hub/home")
    page.wait_for_selector("#password")
    assert page.url.startswith(keycloak.browser_url), "the next visit asks Keycloak for the password again"
