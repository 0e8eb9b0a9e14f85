"""Offboarding: users with running servers who were deleted or disabled in Keycloak lose the hub;
an unreachable Keycloak stops nobody."""

from types import SimpleNamespace

import pytest

from primehub_hub.errors import KeycloakUnavailable
from primehub_hub.offboarding import Offboarding


class Admin:
    def __init__(self, gone=(), down=False):
        self.gone = dict(gone)
        self.down = down
        self.asked = []

    async def user_gone(self, username, user_id=None):
        self.asked.append((username, user_id))
        if self.down:
            raise KeycloakUnavailable("cannot connect")
        return self.gone.get(username)


class Spawner(SimpleNamespace):
    pass


class User:
    def __init__(self, name, running=True):
        self.name = name
        self.spawners = {"": Spawner(active=running, pending=None)}
        self.stopped = []
        self.orm_user = SimpleNamespace(api_tokens=[f"{name}-token-1", f"{name}-oauth-token"], cookie_id="cookie-1")

    @property
    def active(self):
        return any(s.active for s in self.spawners.values())

    async def get_auth_state(self):
        return {"primehub": {"id": f"id-{self.name}"}}

    async def stop(self, name):
        self.stopped.append(name)
        self.spawners[name].active = False


class App:
    def __init__(self, users):
        self.users = {u.name: u for u in users}
        self.routes_removed = []
        self.deleted = []
        self.commits = 0
        self.proxy = SimpleNamespace(delete_user=self._delete_route)
        self.db = SimpleNamespace(delete=self.deleted.append, commit=self._commit)

    async def _delete_route(self, user, name):
        self.routes_removed.append((user.name, name))

    def _commit(self):
        self.commits += 1


@pytest.mark.asyncio
async def test_a_disabled_users_servers_are_stopped_and_tokens_and_sessions_revoked(caplog):
    gone, kept, idle = User("gone"), User("kept"), User("idle", running=False)
    app = App([gone, kept, idle])
    admin = Admin(gone={"gone": "disabled"})
    await Offboarding(app, admin, 30).sweep()
    assert sorted(admin.asked) == [("gone", "id-gone"), ("kept", "id-kept")]  # only users with a running server
    assert gone.stopped == [""] and app.routes_removed == [("gone", "")]
    assert app.deleted == ["gone-token-1", "gone-oauth-token"] and app.commits == 1
    assert gone.orm_user.cookie_id != "cookie-1"
    assert kept.stopped == [] and kept.orm_user.cookie_id == "cookie-1"
    assert "User gone is disabled in Keycloak" in caplog.text


@pytest.mark.asyncio
async def test_an_unreachable_keycloak_stops_nobody(caplog):
    user = User("ana")
    app = App([user])
    await Offboarding(app, Admin(down=True), 30).sweep()
    assert user.stopped == [] and app.deleted == [] and user.orm_user.cookie_id == "cookie-1"
    assert "Keycloak did not answer" in caplog.text


@pytest.mark.asyncio
async def test_the_running_hub_starts_the_check_and_its_interval_is_a_setting():
    from primehub_hub.auth import PrimeHubAuthenticator

    app = App([])
    authenticator = PrimeHubAuthenticator(keycloak_admin=Admin(), keycloak_url="https://id.example.com")
    authenticator.get_handlers(app)
    try:
        assert authenticator.offboarding is not None and authenticator.offboarding.interval == 30
        assert authenticator.offboarding.app is app
    finally:
        authenticator.offboarding.stop()
    off = PrimeHubAuthenticator(keycloak_admin=Admin(), keycloak_url="https://id.example.com", offboarding_interval=0)
    off.get_handlers(app)
    assert off.offboarding is None


class ViewAdmin(Admin):
    """An admin client with a member view: it knows the users in a group of the realm."""

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = dict(members)
        self.view_asked = []

    async def status_from_member_view(self, usernames, *, newer_than):
        self.view_asked.append((sorted(usernames), newer_than))
        if self.down:
            raise KeycloakUnavailable("cannot connect")
        return {name: self.members[name] for name in usernames if name in self.members}


@pytest.mark.asyncio
async def test_the_member_view_answers_for_its_members_and_the_others_are_asked_one_by_one(monkeypatch):
    monkeypatch.setattr("primehub_hub.offboarding.time.monotonic", lambda: 500.0)
    users = [User(f"user{i}") for i in range(40)] + [User("loner"), User("idle", running=False)]
    app = App(users)
    admin = ViewAdmin({**{f"user{i}": None for i in range(40)}, "user7": "disabled"}, gone={"loner": "deleted"})
    await Offboarding(app, admin, 30).sweep()
    # one look at the view, read after the check began; only the user it does not have is read alone
    assert admin.view_asked == [(sorted([*(f"user{i}" for i in range(40)), "loner"]), 500.0)]
    assert admin.asked == [("loner", "id-loner")]
    assert sorted(u.name for u in users if u.stopped) == ["loner", "user7"]


@pytest.mark.asyncio
async def test_a_member_view_keycloak_cannot_read_falls_back_to_each_user_and_stops_nobody(caplog):
    user = User("ana")
    admin = ViewAdmin({"ana": None}, down=True)
    await Offboarding(App([user]), admin, 30).sweep()
    assert admin.asked == [("ana", "id-ana")]
    assert user.stopped == [] and "Keycloak did not answer" in caplog.text
