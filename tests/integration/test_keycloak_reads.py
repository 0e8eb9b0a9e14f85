"""The hub's Keycloak reads against the real realm: a user the hub has never seen costs two admin
API requests whatever their number of groups, because Keycloak's full group representations carry
the role names; the grants read that way are those of each group's role mappings; admin status is
still recognised when it is asked for."""

from __future__ import annotations

from tornado.httpclient import AsyncHTTPClient
from userflows import run_coroutine

from primehub_hub.keycloak import KeycloakAdmin


def _load(keycloak, steps):
    """Run `steps(admin, calls)` with a KeycloakAdmin whose admin API requests are recorded."""

    async def run():
        client = AsyncHTTPClient(force_instance=True)
        calls = []

        class Recording:
            async def fetch(self, request, **kwargs):
                if "/protocol/openid-connect/token" not in request.url:
                    calls.append(request.url)
                return await client.fetch(request, **kwargs)

        admin = KeycloakAdmin(
            keycloak.url, keycloak.realm, keycloak.client_id, keycloak.client_secret, http_client=Recording()
        )
        try:
            return await steps(admin, calls)
        finally:
            client.close()

    return run_coroutine(run())


def test_a_user_never_seen_costs_two_requests_and_reads_the_grants_of_the_role_mappings(keycloak):
    async def steps(admin, calls):
        await admin.load_user_info("bob", need_admin=False)  # the shared `everyone` group is read once
        calls.clear()
        alice = await admin.load_user_info("alice", need_admin=False)
        first = list(calls)
        mapped = {}
        for group in alice.groups:
            mappings = await admin.group_role_mappings(group.id)
            mapped[group.name] = sorted({m["name"] for m in mappings.get("realmMappings") or []})
        return alice, first, mapped

    alice, first, mapped = _load(keycloak, steps)
    assert len(first) == 2, first
    assert {g.name for g in alice.groups} == {"everyone", "data-science", "ml-team"}
    assert {g.name: g.realm_roles for g in alice.groups} == mapped
    assert alice.is_admin is None  # not asked for


def test_admin_status_is_read_when_asked_for(keycloak):
    async def steps(admin, _calls):
        return (await admin.load_user_info("dana")).is_admin, (await admin.load_user_info("alice")).is_admin

    assert _load(keycloak, steps) == (True, False)


def test_the_member_view_gives_each_user_what_keycloak_gives_and_follows_a_removal(keycloak):
    import secrets

    adm = keycloak.admin()
    name = f"member-view-{secrets.token_hex(3)}"
    uid = adm.create_user({"username": name, "enabled": True})
    group = adm.get_group_by_path("/ml-team")
    adm.group_user_add(uid, group["id"])

    async def steps(admin, calls):
        admin.member_view = True
        await admin.refresh_realm_view()
        calls.clear()
        viewed = {u: await admin.load_user_info(u, need_admin=False) for u in ("alice", "bob", "erin", name)}
        read_from_view = list(calls)
        asked = {u: await admin.load_user_info(u, need_admin=False, fresh=True) for u in viewed}
        adm.group_user_remove(uid, group["id"])  # taken out of ml-team: the next background read drops it
        await admin.refresh_realm_view()
        return (
            viewed,
            read_from_view,
            asked,
            admin.member_info(name)[1],
            await admin.load_user_info(name, need_admin=False),
        )

    try:
        viewed, read_from_view, asked, in_view, after = _load(keycloak, steps)
    finally:
        adm.delete_user(uid)
    assert read_from_view == []  # no request: the groups came from the background read
    for user, info in viewed.items():
        assert {g.name: g.realm_roles for g in info.groups} == {g.name: g.realm_roles for g in asked[user].groups}
        assert (info.id, info.attributes) == (asked[user].id, asked[user].attributes)
    assert "ml-team" in {g.name for g in viewed[name].groups}
    assert in_view is None or "ml-team" not in {g.name for g in in_view.groups}
    assert "ml-team" not in {g.name for g in after.groups}
