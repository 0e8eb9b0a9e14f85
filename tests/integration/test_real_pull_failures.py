"""An image kubelet cannot pull fails the spawn early, in words naming the image, and leaves no pod
(E2E_BACKEND=kind).

Only a real kubelet pulls images: the local node agent runs local commands and pulls nothing. No
registry is reachable from the kind node here, so an Image whose address names one
(registry.invalid) fails its pull as an address with a typo or a registry that does not answer
would. The unit tests (test_hub_pulls.py) cover the rule itself with kubelet's own messages.
"""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest
from userflows import CPU_SMALL, message_of, pod_of, progress_until_done, spawn, stop_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.backend(
        "kind",
        reason="needs a real kubelet: the local node agent pulls no images, so a failed pull is never reported there",
    ),
]
# The hub caches a user's groups and grants for up to 30 s (keycloak.py cache_ttl).
GRANT_CACHE_SECONDS = 31
UNREACHABLE = "registry.invalid/primehub-e2e/nope:1"
# capitals make no valid image reference: kubelet says InvalidImageName without trying to pull
MISSPELT = "registry.invalid/Primehub-E2E/Notebook:1"


@pytest.fixture(scope="module")
def unpullable_images(cluster, keycloak):
    """Two Images granted to data-science through Keycloak roles: one whose registry cannot be
    reached, one whose address is no valid image name; all of it removed afterwards."""
    suffix = secrets.token_hex(3)
    images = {
        "unreachable": (f"unreachable-{suffix}", "Unreachable notebook", UNREACHABLE),
        "misspelt": (f"misspelt-{suffix}", "Misspelt notebook", MISSPELT),
    }
    adm = keycloak.admin()
    group = adm.get_group_by_path("/data-science")
    for name, display_name, url in images.values():
        image = {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "Image",
            "metadata": {"name": name, "namespace": cluster.namespace},
            "spec": {"displayName": display_name, "type": "both", "url": url},
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(image))
        adm.create_realm_role({"name": f"img:{name}"}, skip_exists=True)
        adm.assign_group_realm_roles(group["id"], [adm.get_realm_role(f"img:{name}")])
    try:
        time.sleep(GRANT_CACHE_SECONDS)  # so the grants are read anew from Keycloak, not from the hub's cache
        yield {key: name for key, (name, _, _) in images.items()}
    finally:
        for name, _, _ in images.values():
            adm.delete_group_realm_roles(group["id"], [adm.get_realm_role(f"img:{name}")])
            adm.delete_realm_role(f"img:{name}")
            cluster.kubectl("delete", "images.primehub.io", name, "-n", cluster.namespace, "--ignore-not-found")


def _spawn_until_failed(hub, image: str) -> tuple[int, list[dict]]:
    """bob's spawn with `image`: the API's answer and the start page's progress, up to its end."""
    status, resp = spawn(hub, "bob", {**CPU_SMALL, "image": image})
    if status not in (201, 202):
        # it failed within the API's own wait for the start (slow_spawn_timeout): same sentence
        assert status == 503 and "could not be pulled" in message_of(resp), (status, resp)
    # the start page's view: the progress stream ends with the failure, whether or not it came first
    events = progress_until_done(hub, "bob")
    assert events and events[-1].get("failed"), events
    return status, events


def _nothing_left_but_the_home_volume(hub, cluster):
    assert pod_of(cluster, "bob") is None, "the pod that could not start is removed"
    claims = cluster.kubectl("get", "pvc", "-n", cluster.namespace, "-o", "name").stdout
    assert "claim-bob" in claims, "the home volume stays"
    assert not (hub.api("GET", "/users/bob")[1] or {}).get("servers"), "the hub has no server for bob"


def test_an_image_whose_registry_cannot_be_reached_fails_the_spawn_naming_it_and_leaves_no_pod(
    hub, cluster, unpullable_images
):
    stop_server(hub, cluster, "bob")
    try:
        status, events = _spawn_until_failed(hub, unpullable_images["unreachable"])
        message = events[-1].get("message", "")
        assert f"Image 'Unreachable notebook' ({UNREACHABLE}) could not be pulled: " in message, events
        assert re.search(r"kubelet reported (ErrImagePull|ImagePullBackOff)", message), events
        if status in (201, 202):
            # kubelet's own event was on the start page before the failure
            shown = [e.get("message", "") for e in events[:-1]]
            assert any(f'Failed to pull image "{UNREACHABLE}"' in m for m in shown), events
        _nothing_left_but_the_home_volume(hub, cluster)
    finally:
        stop_server(hub, cluster, "bob")


def test_an_image_address_that_is_no_image_name_fails_the_spawn_at_once_naming_it(hub, cluster, unpullable_images):
    stop_server(hub, cluster, "bob")
    try:
        _, events = _spawn_until_failed(hub, unpullable_images["misspelt"])
        message = events[-1].get("message", "")
        assert (
            f"Image 'Misspelt notebook' ({MISSPELT}) could not be pulled: its address is not a valid image name"
            in message
        ), events
        assert "kubelet reported InvalidImageName" in message, events
        _nothing_left_but_the_home_volume(hub, cluster)
    finally:
        stop_server(hub, cluster, "bob")
