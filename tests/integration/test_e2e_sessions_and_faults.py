"""Sessions over time and servers that go away: token refresh, revoked Keycloak sessions, Keycloak
down, an API server restart and a hub restart while users' servers run."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request

import pytest
from browser import choose_and_start, login, new_page
from userflows import CPU_SMALL, message_of, pod_of, spawn, stop_server, wait_ready

pytestmark = pytest.mark.e2e


def _claims(jwt: str) -> dict:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _auth_state(hub, user: str) -> dict:
    status, info = hub.api("GET", f"/users/{user}")
    assert status == 200
    return info["auth_state"]


def _server_answers(hub, user: str) -> bool:
    req = urllib.request.Request(
        f"{hub.url}/user/{user}/api/status", headers={"Authorization": f"token {hub.api_token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def test_expiring_access_token_is_refreshed_before_a_spawn(browser, hub, keycloak, cluster):
    adm = keycloak.admin()
    cid = adm.get_client_id(keycloak.client_id)
    attrs = adm.get_client(cid)["attributes"]
    # Tokens that live 20 s are always inside the hub's renewal margin, so the spawn must renew.
    adm.update_client(cid, {"attributes": {**attrs, "access.token.lifespan": "20"}})
    stop_server(hub, cluster, "bob")
    page = new_page(browser)
    try:
        login(page, hub, keycloak, "bob")
        before = _auth_state(hub, "bob")
        time.sleep(1.5)  # token expiry has one-second resolution
        choose_and_start(page, hub, "data-science", "cpu-small", "base-notebook")
        page.wait_for_url(re.compile(rf"{re.escape(hub.url)}/user/bob/.*"), timeout=120_000)
        after = _auth_state(hub, "bob")
        assert after["access_token"] != before["access_token"]
        assert _claims(after["access_token"])["exp"] > _claims(before["access_token"])["exp"]
        assert _claims(after["access_token"])["sid"] == _claims(before["access_token"])["sid"], (
            "same Keycloak session, renewed"
        )
    finally:
        adm.update_client(cid, {"attributes": attrs})
        page.context.close()
        stop_server(hub, cluster, "bob")


def test_revoked_keycloak_session_forces_a_new_login(browser, hub, keycloak, cluster):
    stop_server(hub, cluster, "dana")
    page = new_page(browser)
    try:
        login(page, hub, keycloak, "dana")
        adm = keycloak.admin()
        adm.user_logout(adm.get_user_id("dana"))
        choose_and_start(page, hub, "data-science", "cpu-small", "base-notebook")
        page.wait_for_load_state()
        body = page.inner_text("body")
        assert re.search(r"log ?in again|login", body, re.I), body[:500]
        assert pod_of(cluster, "dana") is None
        page.goto(f"{hub.url}/hub/login")
        page.wait_for_selector("#password")
        assert page.url.startswith(keycloak.browser_url), "Keycloak asks for the password again"
    finally:
        page.context.close()


def test_keycloak_down_gives_readable_errors_and_the_hub_keeps_serving(browser, hub, keycloak, cluster):
    stop_server(hub, cluster, "erin")
    page = new_page(browser)
    login(page, hub, keycloak, "erin")
    keycloak.stop()
    try:
        # The hub caches a user's groups briefly; past that it has to ask Keycloak.
        time.sleep(31)
        page.goto(f"{hub.url}/hub/spawn")
        body = page.inner_text("body")
        assert "Keycloak" in body and "Traceback" not in body, body[:500]
        fresh = new_page(browser)
        fresh.goto(f"{hub.url}/hub/")
        assert fresh.url.startswith(hub.url), "a new login stays on the hub's readable page"
        assert "Keycloak" in fresh.inner_text("body")
        fresh.context.close()
        status, resp = spawn(
            hub, "erin", {"group": "empty-quota", "instance_type": "cpu-small", "image": "base-notebook"}
        )
        assert status == 503 and "Keycloak" in message_of(resp), (status, resp)
        assert pod_of(cluster, "erin") is None
        assert hub.api("GET", "/")[0] == 200
    finally:
        keycloak.start()
        page.context.close()
    status, resp = spawn(hub, "bob", CPU_SMALL)
    try:
        assert status in (201, 202), message_of(resp)
        wait_ready(hub, "bob")
    finally:
        stop_server(hub, cluster, "bob")


def test_api_server_restart_and_hub_restart_are_survived(hub, cluster):
    stop_server(hub, cluster, "alice")
    status, resp = spawn(hub, "alice", CPU_SMALL)
    assert status in (201, 202), message_of(resp)
    try:
        wait_ready(hub, "alice")
        assert _server_answers(hub, "alice")

        cluster.restart_apiserver()
        assert _server_answers(hub, "alice")
        # The hub's watches reconnect: the server is still known and still stoppable afterwards.
        cluster.wait(
            lambda: hub.api("GET", "/users/alice")[1]["servers"].get("", {}).get("ready"),
            30,
            "alice's server still ready after the API server restart",
        )

        hub.restart()
        assert _server_answers(hub, "alice"), "the server survives a hub restart"
        assert hub.api("GET", "/users/alice")[1]["servers"][""]["ready"]
    finally:
        stop_server(hub, cluster, "alice")
