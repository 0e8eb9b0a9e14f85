"""Offboarding on the real stack: a user disabled in Keycloak while logged in, with a running server
and an API token, loses all three (the hub's offboarding check runs every 30 s), and cannot spawn."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from browser import login, new_page
from userflows import CPU_SMALL, message_of, pod_of, spawn, stop_server, wait_ready

pytestmark = pytest.mark.e2e
USER = "offboard-olive"
PASSWORD = "offboard-olive-pw"
# the offboarding check runs every 30 s; stopping a server and revoking tokens takes a few more
BOUND = 30 + 30


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect (to the login page) is the answer, not something to follow


def _status(url: str, token: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0  # nothing listens any more


def _make_keycloak_user(keycloak) -> str:
    adm = keycloak.admin()
    old = adm.get_user_id(USER)
    if old:
        adm.delete_user(old)
    uid = adm.create_user(
        {
            "username": USER,
            "enabled": True,
            "email": f"{USER}@example.com",
            "emailVerified": True,
            "firstName": "Olive",
            "lastName": "Offboard",
            "requiredActions": [],
            "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
        }
    )
    group = adm.get_group_by_path("/data-science")
    adm.group_user_add(uid, group["id"])
    return uid


def test_a_user_disabled_in_keycloak_loses_api_tokens_server_and_spawns(browser, hub, keycloak, cluster):
    adm = keycloak.admin()
    uid = _make_keycloak_user(keycloak)
    page = new_page(browser)
    try:
        login(page, hub, keycloak, USER, PASSWORD)
        status, resp = spawn(hub, USER, CPU_SMALL)
        assert status in (201, 202), message_of(resp)
        wait_ready(hub, USER)
        status, token = hub.api("POST", f"/users/{USER}/tokens", {"note": "offboarding test", "expires_in": 3600})
        assert status in (200, 201), token
        token = token["token"]
        server_url = f"{hub.url}/user/{USER}/api/status"
        assert hub.api("GET", f"/users/{USER}", token=token)[0] == 200
        assert _status(server_url, token) == 200

        adm.update_user(uid, {"enabled": False})

        cluster.wait(
            lambda: hub.api("GET", f"/users/{USER}", token=token)[0] in (401, 403),
            BOUND,
            "the disabled user's API token refused",
        )
        cluster.wait(lambda: _status(server_url, token) != 200, BOUND, "the disabled user's server no longer serving")
        cluster.wait(lambda: pod_of(cluster, USER) is None, BOUND, "the disabled user's server stopped")

        status, resp = spawn(hub, USER, CPU_SMALL)
        assert status == 403, (status, resp)
        assert pod_of(cluster, USER) is None

        page.goto(f"{hub.url}/hub/home")
        page.wait_for_url(re.compile(rf"{re.escape(keycloak.browser_url)}/.*"))
        assert page.url.startswith(keycloak.browser_url), "the browser session ended: Keycloak asks again"
    finally:
        page.context.close()
        adm.update_user(uid, {"enabled": True})
        stop_server(hub, cluster, USER)
        hub.api("DELETE", f"/users/{USER}")
        adm.delete_user(uid)
