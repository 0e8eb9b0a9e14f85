"""KeycloakAdmin against a fake Keycloak: service account token, user/group/role reads,
admin detection, caching, and readable failures."""

import asyncio
import json
from io import BytesIO
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

from primehub_hub.entitlements import EVERYONE
from primehub_hub.errors import KeycloakUnavailable, KeycloakUserGone
from primehub_hub.keycloak import KeycloakAdmin

BASE = "http://keycloak.internal:8080"
ADMIN = "/admin/realms/primehub"


class FakeKeycloak:
    """Answers the admin REST calls from a small realm; counts calls."""

    def __init__(self, clients_readable=True):
        self.calls = []
        self.tokens_issued = 0
        self.clients_readable = clients_readable
        self.down = False
        self.reject_token = None
        self.users = {
            "ana": {"id": "u-ana", "username": "ana", "attributes": {"timezone": ["Asia/Taipei"]}},
            "root": {"id": "u-root", "username": "root"},
            "gwen": {"id": "u-gwen", "username": "gwen"},
            "cora": {"id": "u-cora", "username": "cora"},
        }
        self.memberships = {
            "u-ana": [
                {
                    "id": "g-a",
                    "name": "analysts",
                    "path": "/analysts",
                    "attributes": {"displayName": ["Analysts"], "quota-cpu": ["2"]},
                }
            ],
            "u-root": [],
            "u-gwen": [{"id": "g-admins", "name": "admins", "path": "/admins", "attributes": {}}],
            "u-cora": [],
        }
        self.group_mappings = {
            "g-a": {"realmMappings": [{"name": "it:medium"}, {"name": "ds:rw:reports"}]},
            "g-e": {"realmMappings": [{"name": "it:small"}]},
            "g-admins": {
                "clientMappings": {
                    "realm-management": {
                        "id": "rm-uuid",
                        "client": "realm-management",
                        "mappings": [{"name": "realm-admin"}],
                    }
                }
            },
        }
        self.user_mappings = {
            "u-root": {
                "clientMappings": {
                    "realm-management": {
                        "id": "rm-uuid",
                        "client": "realm-management",
                        "mappings": [{"name": "realm-admin"}],
                    }
                }
            },
        }
        self.composites = {"u-cora": [{"name": "realm-admin"}, {"name": "view-users"}]}
        self.children = {}  # group id -> its subgroups' representations (nested groups)
        self.members_forbidden = False  # a service account without view-users

    def top_groups(self):
        """The realm's top-level groups, as `GET /groups` lists them (subgroups only counted)."""
        everyone = {"id": "g-e", "name": "everyone", "path": "/everyone", "attributes": {}}
        nested = {c["id"] for kids in self.children.values() for c in kids}
        found = {"g-e": everyone}
        for reps in self.memberships.values():
            for rep in reps:
                if rep["id"] not in nested:
                    found[rep["id"]] = dict(rep, subGroupCount=len(self.children.get(rep["id"], [])))
        return sorted(found.values(), key=lambda rep: rep["id"])

    def group_ids_of(self, user_id):
        return {rep["id"] for rep in self.memberships.get(user_id) or []}

    def answer(self, request):
        url = urlparse(request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        self.calls.append((request.method, path))
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        if path == "/realms/primehub/protocol/openid-connect/token":
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            assert form == {"grant_type": "client_credentials", "client_id": "jupyterhub", "client_secret": "s3cret"}
            self.tokens_issued += 1
            return {"access_token": f"svc-{self.tokens_issued}", "expires_in": 300}
        token = request.headers.get("Authorization")
        if token != f"Bearer svc-{self.tokens_issued}" or token == self.reject_token:
            raise HTTPClientError(401)
        if path == f"{ADMIN}/users":
            user = self.users.get(query["username"])
            return [user] if user else []
        if path == f"{ADMIN}/groups":
            return _page(self.top_groups(), query)
        if path.startswith(f"{ADMIN}/groups/") and path.endswith("/members"):
            if self.members_forbidden:
                raise HTTPClientError(403)
            group_id = unquote(path.split("/")[5])
            members = [u for u in self.users.values() if group_id in self.group_ids_of(u["id"])]
            return _page(members, query)
        if path.startswith(f"{ADMIN}/groups/") and path.endswith("/children"):
            return _page(self.children.get(unquote(path.split("/")[5]), []), query)
        if path.startswith(f"{ADMIN}/users/") and path.endswith("/groups"):
            return self.memberships[unquote(path.split("/")[5])]
        if path.startswith(f"{ADMIN}/groups/") and path.endswith("/role-mappings"):
            return self.group_mappings.get(unquote(path.split("/")[5]), {})
        if path == f"{ADMIN}/group-by-path/everyone":
            return {"id": "g-e", "name": "everyone", "path": "/everyone", "attributes": {}}
        if path.startswith(f"{ADMIN}/users/") and path.endswith("/role-mappings"):
            return self.user_mappings.get(path.split("/")[5], {})
        if path == f"{ADMIN}/clients":
            if not self.clients_readable:
                raise HTTPClientError(403)
            return [{"id": "rm-uuid", "clientId": "realm-management"}]
        if path.endswith("/role-mappings/clients/rm-uuid/composite"):
            return self.effective_admin_roles(path.split("/")[5])
        raise HTTPClientError(404)

    def effective_admin_roles(self, user_id):
        """Keycloak's composite view: realm-management roles mapped directly, through groups or composites."""
        roles = list(self.composites.get(user_id, []))
        sources = [self.user_mappings.get(user_id, {})]
        sources += [self.group_mappings.get(g["id"], {}) for g in self.memberships.get(user_id) or []]
        for mapping in sources:
            roles += (mapping.get("clientMappings") or {}).get("realm-management", {}).get("mappings", [])
        return roles

    async def fetch(self, request, **_):
        await asyncio.sleep(0)
        body = self.answer(request)
        return HTTPResponse(request, 200, buffer=BytesIO(json.dumps(body).encode()))


def _page(items, query):
    first, size = int(query.get("first", 0)), int(query.get("max", 100))
    return items[first : first + size]


def admin_client(fake, **kwargs):
    return KeycloakAdmin(BASE, "primehub", "jupyterhub", "s3cret", http_client=fake, **kwargs)


@pytest.mark.asyncio
async def test_user_info_from_the_admin_api():
    fake = FakeKeycloak()
    info = await admin_client(fake).load_user_info("ana")
    assert info.username == "ana" and info.id == "u-ana" and info.is_admin is False
    assert info.attributes == {"timezone": "Asia/Taipei"}
    groups = {g.name: g for g in info.groups}
    assert set(groups) == {"analysts", EVERYONE}
    assert groups["analysts"].realm_roles == ["ds:rw:reports", "it:medium"]
    assert groups["analysts"].attributes == {"displayName": "Analysts", "quota-cpu": "2"}
    assert groups["analysts"].label == "Analysts" and groups["analysts"].id == "g-a"
    assert groups[EVERYONE].realm_roles == ["it:small"]
    # one service account token serves every request
    assert fake.tokens_issued == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["root", "gwen", "cora"])
async def test_admin_directly_through_a_group_or_through_a_composite_role(name):
    assert (await admin_client(FakeKeycloak()).load_user_info(name)).is_admin is True


@pytest.mark.asyncio
async def test_without_query_clients_direct_and_group_admins_are_still_seen():
    fake = FakeKeycloak(clients_readable=False)
    client = admin_client(fake)
    assert (await client.load_user_info("gwen")).is_admin is True
    assert (await client.load_user_info("ana")).is_admin is False
    assert (await client.load_user_info("root")).is_admin is True
    assert fake.calls.count(("GET", f"{ADMIN}/clients")) <= 1


@pytest.mark.asyncio
async def test_results_are_cached_briefly_and_shared_by_concurrent_requests():
    fake = FakeKeycloak()
    client = admin_client(fake, cache_ttl=30)
    first, second = await asyncio.gather(client.load_user_info("ana"), client.load_user_info("ana"))
    assert first is second
    calls = len(fake.calls)
    await client.load_user_info("ana")
    assert len(fake.calls) == calls
    await client.load_user_info("ana", fresh=True)
    assert len(fake.calls) > calls
    expired = admin_client(FakeKeycloak(), cache_ttl=0)
    await expired.load_user_info("ana")
    before = len(expired.http_client.calls)
    await expired.load_user_info("ana")
    assert len(expired.http_client.calls) > before


@pytest.mark.asyncio
async def test_a_rejected_service_token_is_renewed_once():
    fake = FakeKeycloak()
    client = admin_client(fake)
    await client.load_user_info("ana")
    fake.reject_token = "Bearer svc-1"
    info = await client.load_user_info("root", fresh=True)
    assert info.is_admin and fake.tokens_issued == 2


@pytest.mark.asyncio
async def test_unreachable_keycloak_is_a_readable_503():
    fake = FakeKeycloak()
    fake.down = True
    with pytest.raises(KeycloakUnavailable, match="cannot reach Keycloak") as info:
        await admin_client(fake).load_user_info("ana")
    assert info.value.status_code == 503


@pytest.mark.asyncio
async def test_missing_permissions_say_which_roles_the_service_account_needs():
    fake = FakeKeycloak()
    fake.memberships = None  # any membership read fails below

    async def forbidden(request, **_):
        if "/groups" in request.url and "/users/" in request.url:
            raise HTTPClientError(403)
        return await FakeKeycloak.fetch(fake, request)

    fake.fetch = forbidden
    with pytest.raises(KeycloakUnavailable, match="view-users, query-groups") as info:
        await admin_client(fake).load_user_info("ana")
    assert "refused" in str(info.value)


@pytest.mark.asyncio
async def test_unknown_user_is_readable():
    # a user Keycloak no longer has is refused (403), never mistaken for "Keycloak is down" (503)
    with pytest.raises(KeycloakUserGone, match="does not exist") as info:
        await admin_client(FakeKeycloak()).load_user_info("zed")
    assert info.value.status_code == 403 and not isinstance(info.value, KeycloakUnavailable)


# --- calls per user, sharing and the staleness bound ----------------------------------------------


def full_representations(fake, groups=50):
    """Keycloak's full group representations carry role names: the realm the hub really sees."""
    fake.users["many"] = {"id": "u-many", "username": "many"}
    fake.memberships["u-many"] = [
        {
            "id": f"g-{i}",
            "name": f"team-{i:02d}",
            "path": f"/team-{i:02d}",
            "attributes": {},
            "realmRoles": [f"it:type-{i}", f"ds:data-{i}"],
            "clientRoles": {},
        }
        for i in range(groups)
    ]
    fake.memberships["u-gwen"] = [
        {
            "id": "g-admins",
            "name": "admins",
            "path": "/admins",
            "attributes": {},
            "realmRoles": [],
            "clientRoles": {"realm-management": ["realm-admin"]},
        }
    ]


def admin_calls(fake):
    return [c for c in fake.calls if not c[1].endswith("/token")]


@pytest.mark.asyncio
async def test_a_user_never_seen_costs_two_calls_whatever_their_number_of_groups():
    fake = FakeKeycloak()
    full_representations(fake, groups=50)
    client = admin_client(fake)
    await client.load_user_info("ana")  # the shared `everyone` group is read once for everybody
    fake.calls.clear()
    info = await client.load_user_info("many", need_admin=False)
    assert len(admin_calls(fake)) == 2
    assert len([g for g in info.groups if g.name != EVERYONE]) == 50
    team = next(g for g in info.groups if g.name == "team-07")
    assert team.realm_roles == ["ds:data-7", "it:type-7"]
    # admin status was not asked for and no group grants it: unknown, not False
    assert info.is_admin is None
    # asked for later (the user's own login or refresh): one more call, then cached
    fake.calls.clear()
    assert (await client.load_user_info("many")).is_admin is False
    assert (await client.load_user_info("many")).is_admin is False
    assert 1 <= len(admin_calls(fake)) <= 2  # the client's id, once per hub; the effective roles
    # with the client's id known, admin status is one request
    client.forget("ana")
    await client.load_user_info("ana", need_admin=False)
    fake.calls.clear()
    assert (await client.load_user_info("ana")).is_admin is False
    assert admin_calls(fake) == [("GET", f"{ADMIN}/users/u-ana/role-mappings/clients/rm-uuid/composite")]
    # a group that maps realm-admin makes the user an admin without any further call
    fake.calls.clear()
    assert (await client.load_user_info("gwen")).is_admin is True
    assert len(admin_calls(fake)) == 2


@pytest.mark.asyncio
async def test_concurrent_cold_lookups_share_their_requests():
    fake = FakeKeycloak()
    full_representations(fake)
    client = admin_client(fake)
    infos = await asyncio.gather(
        *(client.load_user_info(name, need_admin=False) for name in ["many", "ana", "many", "root", "many"])
    )
    assert infos[0] is infos[2] is infos[4]
    assert fake.calls.count(("GET", f"{ADMIN}/group-by-path/everyone")) == 1
    assert fake.calls.count(("GET", f"{ADMIN}/users/u-many/groups")) == 1
    # group role mappings (representations without role names) are shared between users too
    fake.memberships["u-root"] = [{"id": "g-a", "name": "analysts", "path": "/analysts", "attributes": {}}]
    client.forget("ana")
    fake.calls.clear()
    await asyncio.gather(client.load_user_info("ana"), client.load_user_info("root", fresh=True))
    assert fake.calls.count(("GET", f"{ADMIN}/groups/g-a/role-mappings")) == 1


@pytest.mark.asyncio
async def test_a_removed_grant_is_never_served_older_than_the_cache_ttl(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("primehub_hub.keycloak.time.monotonic", lambda: clock[0])
    fake = FakeKeycloak()
    client = admin_client(fake, cache_ttl=30)

    def analysts_roles(info):
        return next(g for g in info.groups if g.name == "analysts").realm_roles

    assert "it:medium" in analysts_roles(await client.load_user_info("ana"))
    fake.group_mappings["g-a"] = {"realmMappings": [{"name": "ds:rw:reports"}]}  # it:medium removed
    # within the first half of the TTL the entry is served as it is
    clock[0] += 10
    assert "it:medium" in analysts_roles(await client.load_user_info("ana"))
    # in the second half it is still served, and renewed in the background for the next reader
    clock[0] += 10
    assert "it:medium" in analysts_roles(await client.load_user_info("ana"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert "it:medium" not in analysts_roles(await client.load_user_info("ana"))
    # and without any reader in between, an entry past the TTL is never served
    fake.group_mappings["g-a"] = {"realmMappings": [{"name": "it:medium"}]}
    clock[0] += 30.5
    assert "it:medium" in analysts_roles(await client.load_user_info("ana"))
    # the shared `everyone` group follows the same bound
    fake.group_mappings["g-e"] = {"realmMappings": [{"name": "it:large"}]}
    clock[0] += 30.5
    everyone = next(g for g in (await client.load_user_info("ana")).groups if g.name == EVERYONE)
    assert everyone.realm_roles == ["it:large"]


@pytest.mark.asyncio
async def test_deleted_and_disabled_users_are_gone_and_an_unreachable_keycloak_is_not():
    fake = FakeKeycloak()
    client = admin_client(fake)
    assert await client.user_gone("ana", "u-ana") is None
    assert await client.user_gone("zed") == "deleted"
    fake.users["ana"]["enabled"] = False
    assert await client.user_gone("ana") == "disabled"
    with pytest.raises(KeycloakUserGone, match="disabled"):
        await client.load_user_info("ana", fresh=True)
    fake.down = True
    with pytest.raises(KeycloakUnavailable):
        await client.user_gone("root")


@pytest.mark.asyncio
async def test_admin_api_path_segments_are_quoted_whole():
    fake = FakeKeycloak()
    fake.memberships["../../clients"] = []
    fake.group_mappings["a/b?c"] = {}
    client = admin_client(fake)
    assert await client.user_groups("../../clients") == []
    assert await client.group_role_mappings("a/b?c") == {}
    assert await client.group_by_path("/ml team/sub?x") is None
    paths = [p for _, p in fake.calls]
    assert f"{ADMIN}/users/..%2F..%2Fclients/groups" in paths
    assert f"{ADMIN}/groups/a%2Fb%3Fc/role-mappings" in paths
    assert f"{ADMIN}/group-by-path/ml%20team/sub%3Fx" in paths


@pytest.mark.asyncio
async def test_a_user_looked_up_by_id_must_have_the_expected_username():
    fake = FakeKeycloak()

    def answer(request, original=fake.answer):
        path = urlparse(request.url).path
        if path == f"{ADMIN}/users/u-root":
            fake.calls.append((request.method, path))
            return fake.users["root"]
        return original(request)

    fake.answer = answer
    info = await admin_client(fake).load_user_info("ana", "u-root")
    assert info.username == "ana" and not info.is_admin


@pytest.mark.asyncio
@pytest.mark.parametrize("broken", ["token", "admin"])
async def test_answers_that_are_not_keycloaks_are_a_readable_503_not_a_500(broken):
    fake = FakeKeycloak()
    answer = fake.answer

    async def fetch(request, **_):
        if broken == "token" and request.url.endswith("/token"):
            return HTTPResponse(request, 200, buffer=BytesIO(b'{"error": "no token here"}'))
        if broken == "admin" and "/admin/" in request.url:
            return HTTPResponse(request, 200, buffer=BytesIO(b"<html>502 Bad Gateway</html>"))
        return HTTPResponse(request, 200, buffer=BytesIO(json.dumps(answer(request)).encode()))

    fake.fetch = fetch
    with pytest.raises(KeycloakUnavailable, match="proxy in between") as info:
        await admin_client(fake).load_user_info("ana")
    assert info.value.status_code == 503


# --- the realm-wide view: what every user shares is read at hub start, not by a spawn ----------


def fake_clock(monkeypatch, start=1000.0):
    clock = [start]
    monkeypatch.setattr("primehub_hub.keycloak.time.monotonic", lambda: clock[0])
    return clock


def many_users(fake, count, groups=50):
    full_representations(fake, groups=groups)
    for i in range(count):
        fake.users[f"user{i}"] = {"id": f"u-{i}", "username": f"user{i}"}
        fake.memberships[f"u-{i}"] = fake.memberships["u-many"]


def started_hub(fake, **kwargs):
    """The authenticator as the running hub has it: get_handlers(app) is where the hub starts it."""
    from primehub_hub.auth import PrimeHubAuthenticator

    authenticator = PrimeHubAuthenticator(
        keycloak_admin=admin_client(fake, **kwargs),
        keycloak_url=BASE,
        client_id="jupyterhub",
        client_secret="s3cret",
        offboarding_interval=0,
    )
    authenticator.get_handlers(object())
    return authenticator


async def admin_rest_spawn(authenticator, name):
    """What an admin's `POST /hub/api/users/<name>/server` asks Keycloak for: the pre-spawn auth
    refresh on behalf of the user, then the spawner's entitlements read with the id it stored."""
    from types import SimpleNamespace

    from primehub_hub.auth import AUTH_STATE_KEY

    class HubUser(SimpleNamespace):
        async def get_auth_state(self):
            return None  # never logged in

    admin_request = SimpleNamespace(get_token=lambda: "admin-api-token", _jupyterhub_user=SimpleNamespace(name="root"))
    model = await authenticator.refresh_user(HubUser(name=name), admin_request)
    user_id = model["auth_state"][AUTH_STATE_KEY]["id"]
    return await authenticator.load_entitlements(name, user_id)  # PrimeHubSpawner.load_primehub_user


@pytest.mark.asyncio
async def test_an_admin_rest_spawn_of_a_never_seen_user_makes_at_most_two_keycloak_calls(monkeypatch):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    many_users(fake, 80)
    fake.group_mappings["g-e"] = {"realmMappings": [{"name": "it:small"}, {"name": "img:base"}]}
    authenticator = started_hub(fake, cache_ttl=30)
    admin = authenticator.keycloak_admin
    try:
        await admin._first_refresh  # the hub has started: the realm-wide view and the token are read
        assert fake.calls == [
            ("POST", "/realms/primehub/protocol/openid-connect/token"),
            ("GET", f"{ADMIN}/group-by-path/everyone"),
            ("GET", f"{ADMIN}/groups/g-e/role-mappings"),
        ]
        # a spawn every 5 s for 400 s, the background refresh every 10 s: every age of the view and
        # of the service token (300 s) is met, the very first spawn after start included
        for i in range(80):
            fake.calls.clear()
            info = await admin_rest_spawn(authenticator, f"user{i}")
            assert fake.calls == [
                ("GET", f"{ADMIN}/users"),
                ("GET", f"{ADMIN}/users/u-{i}/groups"),
            ], f"spawn {i} at +{clock[0] - 1000:g} s"
            assert len([g for g in info.groups if g.name != EVERYONE]) == 50
            everyone = next(g for g in info.groups if g.name == EVERYONE)
            assert everyone.realm_roles == ["img:base", "it:small"]
            assert info.is_admin is None  # entitlements only: no admin look-up for a spawn
            clock[0] += 5
            if i % 2:
                await admin.refresh_realm_view()  # what the hub's PeriodicCallback runs
        assert fake.tokens_issued >= 2  # renewed in the background, never by a spawn
    finally:
        admin.stop_background()


@pytest.mark.asyncio
async def test_the_background_refresh_keeps_the_realm_wide_grants_within_the_bound(monkeypatch):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    client = admin_client(fake, cache_ttl=30)
    assert client.refresh_interval == 10
    assert await client.refresh_realm_view() is True

    def everyone_roles(info):
        return next(g for g in info.groups if g.name == EVERYONE).realm_roles

    assert everyone_roles(await client.load_user_info("ana", need_admin=False)) == ["it:small"]
    fake.group_mappings["g-e"] = {"realmMappings": []}  # it:small no longer granted to everyone
    clock[0] += 10
    await client.refresh_realm_view()
    client.forget()
    fake.calls.clear()
    # the next user's load reads only the user; the removed grant is already gone
    assert everyone_roles(await client.load_user_info("ana", need_admin=False)) == []
    assert ("GET", f"{ADMIN}/group-by-path/everyone") not in fake.calls
    # a user's cached entry does not keep an older view: it is joined with the current one
    fake.group_mappings["g-e"] = {"realmMappings": [{"name": "it:large"}]}
    clock[0] += 10
    await client.refresh_realm_view()
    fake.calls.clear()
    assert everyone_roles(await client.load_user_info("ana", need_admin=False)) == ["it:large"]
    assert fake.calls == []
    # with no background refresh for longer than the bound, the view is read again, not served
    fake.group_mappings["g-e"] = {"realmMappings": []}
    clock[0] += 30
    assert everyone_roles(await client.load_user_info("ana", need_admin=False)) == []


@pytest.mark.asyncio
async def test_keycloak_down_during_the_background_refresh_keeps_the_last_view_and_logs_one_line(monkeypatch, caplog):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    client = admin_client(fake, cache_ttl=30)
    assert await client.refresh_realm_view() is True
    last = await client.everyone()
    fake.down = True
    caplog.clear()
    with caplog.at_level("INFO", logger="primehub_hub.keycloak"):
        for _ in range(2):
            clock[0] += 10
            assert await client.refresh_realm_view() is False
            # within the bound the last view is still the view, read without Keycloak
            assert await client.everyone() is last
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "keeping the last ones read" in caplog.records[0].getMessage()
    # never past the bound: a reader then needs Keycloak, and is told it is down
    clock[0] += 10
    with pytest.raises(KeycloakUnavailable, match="cannot reach Keycloak"):
        await client.load_user_info("ana", need_admin=False)
    # Keycloak back: the next refresh restores the view and says so
    fake.down = False
    caplog.clear()
    with caplog.at_level("INFO", logger="primehub_hub.keycloak"):
        assert await client.refresh_realm_view() is True
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "again" in caplog.records[0].getMessage()
    fake.calls.clear()
    await client.load_user_info("ana", need_admin=False)
    assert ("GET", f"{ADMIN}/group-by-path/everyone") not in fake.calls


# --- the member view: who is in which group, read in the background ------------------------


def group_names(info):
    return sorted(g.name for g in info.groups)


def same_info(one, other):
    """The same user, groups and grants, whatever order Keycloak listed the groups in."""

    def key(info):
        return (info.username, info.id, info.attributes, info.is_admin, sorted(info.groups, key=lambda g: g.id))

    return key(one) == key(other)


@pytest.mark.asyncio
async def test_with_the_member_view_an_admin_rest_spawn_asks_keycloak_nothing(monkeypatch):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    many_users(fake, 40)
    authenticator = started_hub(fake, cache_ttl=30, member_view=True)
    admin = authenticator.keycloak_admin
    plain = admin_client(fake, cache_ttl=30)  # without the view: what Keycloak says today
    try:
        await admin._first_refresh
        for i in range(40):
            fake.calls.clear()
            info = await admin_rest_spawn(authenticator, f"user{i}")
            assert fake.calls == [], f"spawn {i} at +{clock[0] - 1000:g} s"
            assert same_info(info, await plain.load_user_info(f"user{i}", need_admin=False))
            clock[0] += 5
            if i % 2:
                await admin.refresh_realm_view()
        # a group that makes its members administrators says so from the view too
        assert (await admin.load_user_info("gwen", need_admin=False)).is_admin is True
        # a user in no group is not in the view: their groups cost the usual two requests
        fake.calls.clear()
        assert group_names(await admin.load_user_info("root", need_admin=False)) == [EVERYONE]
        assert len(admin_calls(fake)) == 2
    finally:
        admin.stop_background()


@pytest.mark.asyncio
async def test_the_member_view_never_serves_a_removed_membership_past_the_bound(monkeypatch):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    client = admin_client(fake, cache_ttl=30, member_view=True)
    assert await client.refresh_realm_view() is True
    assert group_names(await client.load_user_info("ana", need_admin=False)) == ["analysts", EVERYONE]
    clock[0] += 1
    await client.load_user_info("ana", fresh=True)  # she logs in: her own entry, newer than the view
    fake.memberships["u-ana"] = []  # ana leaves analysts
    clock[0] += 10
    assert await client.refresh_realm_view() is True
    fake.calls.clear()
    # no longer in any group, so no longer in the view, which is newer than her login's entry:
    # that entry is not served, Keycloak is asked, and says so
    assert group_names(await client.load_user_info("ana", need_admin=False)) == [EVERYONE]
    assert len(admin_calls(fake)) == 2
    # with no refresh for longer than the bound the view is not used at all
    fake.memberships["u-ana"] = [{"id": "g-a", "name": "analysts", "path": "/analysts", "attributes": {}}]
    await client.refresh_realm_view()
    client.forget("ana")
    fake.memberships["u-ana"] = []
    clock[0] += 30
    assert client.member_info("ana") == (False, None)  # the view cannot answer
    assert group_names(await client.load_user_info("ana", need_admin=False)) == [EVERYONE]


@pytest.mark.asyncio
async def test_a_login_after_the_sweep_wins_over_it_and_a_disabled_member_is_gone(monkeypatch):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    client = admin_client(fake, cache_ttl=30, member_view=True)
    await client.refresh_realm_view()
    # ana is added to a group and logs in (a login reads Keycloak itself): her spawn sees the group
    fake.memberships["u-ana"].append({"id": "g-b", "name": "bakers", "path": "/bakers", "attributes": {}})
    clock[0] += 1
    assert "bakers" in group_names(await client.load_user_info("ana", fresh=True))
    assert "bakers" in group_names(await client.load_user_info("ana", need_admin=False))
    # a member Keycloak has disabled is refused from the view as from Keycloak
    fake.users["gwen"]["enabled"] = False
    clock[0] += 10
    await client.refresh_realm_view()
    with pytest.raises(KeycloakUserGone, match="disabled"):
        await client.load_user_info("gwen", need_admin=False)
    assert client.member_info("gwen") == (True, None)  # and forgotten there too


@pytest.mark.asyncio
async def test_the_member_view_reads_every_page_and_nested_groups(monkeypatch):
    monkeypatch.setattr("primehub_hub.realm_view.PAGE", 2)
    fake = FakeKeycloak()
    for i in range(5):
        fake.users[f"m{i}"] = {"id": f"u-m{i}", "username": f"m{i}"}
        fake.memberships[f"u-m{i}"] = [{"id": "g-a", "name": "analysts", "path": "/analysts", "attributes": {}}]
    sub = {"id": "g-sub", "name": "night-shift", "path": "/analysts/night-shift", "attributes": {}}
    fake.children["g-a"] = [sub]
    fake.memberships["u-m4"].append(sub)
    client = admin_client(fake, member_view=True)
    await client.refresh_realm_view()
    fake.calls.clear()
    for i in range(5):
        assert "analysts" in group_names(await client.load_user_info(f"m{i}", need_admin=False))
    assert group_names(await client.load_user_info("m4", need_admin=False)) == ["analysts", EVERYONE, "night-shift"]
    night = next(g for g in (await client.load_user_info("m4", need_admin=False)).groups if g.name == "night-shift")
    assert night.path == "/analysts/night-shift"
    assert fake.calls == []


@pytest.mark.asyncio
async def test_with_the_member_view_a_users_own_refresh_reads_at_most_their_admin_status(monkeypatch):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    client = admin_client(fake, cache_ttl=30, member_view=True)
    await client.refresh_realm_view()
    await client.admin_client_uuid()  # realm-management's id: read once per hub
    for _ in range(4):  # her refreshes over 45 s, the background read every 10 s
        fake.calls.clear()
        first = await client.load_user_info("ana")
        again = await client.load_user_info("ana")
        assert first is again and first.is_admin is False
        assert len(admin_calls(fake)) <= 1  # only her admin status, when its 30 s are over
        clock[0] += 15
        await client.refresh_realm_view()
    # a group that makes her an administrator says so at once, without a request
    fake.memberships["u-ana"].append(fake.memberships["u-gwen"][0])
    await client.refresh_realm_view()
    fake.calls.clear()
    assert (await client.load_user_info("ana")).is_admin is True
    assert admin_calls(fake) == []


@pytest.mark.asyncio
async def test_a_service_account_that_may_not_read_members_turns_the_view_off_with_one_line(caplog):
    fake = FakeKeycloak()
    fake.members_forbidden = True
    client = admin_client(fake, member_view=True)
    with caplog.at_level("WARNING", logger="primehub_hub.keycloak"):
        assert await client.refresh_realm_view() is True  # `everyone` and the token are still kept fresh
        assert await client.refresh_realm_view() is True
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "view-users" in caplog.records[0].getMessage()
    fake.calls.clear()
    assert group_names(await client.load_user_info("ana", need_admin=False)) == ["analysts", EVERYONE]
    # read one by one, as without the view
    assert admin_calls(fake)[:2] == [("GET", f"{ADMIN}/users"), ("GET", f"{ADMIN}/users/u-ana/groups")]
    assert not any(path.endswith("/members") for _, path in fake.calls)


@pytest.mark.asyncio
async def test_the_offboarding_check_reads_the_member_view_once_for_every_running_user(monkeypatch):
    clock = fake_clock(monkeypatch)
    fake = FakeKeycloak()
    many_users(fake, 40)
    fake.users["user7"]["enabled"] = False
    client = admin_client(fake, cache_ttl=30, member_view=True)
    await client.refresh_realm_view()
    names = [f"user{i}" for i in range(40)] + ["root"]
    # the last read is older than the check: it is read again, once, and nobody is read alone
    clock[0] += 5
    fake.calls.clear()
    status = await client.status_from_member_view(names, newer_than=clock[0])
    reads = admin_calls(fake)
    # the realm's groups and their members: as many requests for 41 running users as for 4,000
    assert reads and not any("/users" in path for _, path in reads)
    assert status == {**{f"user{i}": None for i in range(40)}, "user7": "disabled"}  # root is in no group
    # a read newer than the check is used as it is; the disabled user was forgotten (read alone next time)
    fake.calls.clear()
    again = await client.status_from_member_view(names, newer_than=clock[0])
    assert admin_calls(fake) == []
    assert again == {f"user{i}": None for i in range(40) if i != 7}
    # without the view there is nothing to say: each user is asked on their own
    assert await admin_client(fake).status_from_member_view(names, newer_than=0) == {}
