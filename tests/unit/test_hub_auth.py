"""PrimeHubAuthenticator: Keycloak's two addresses, login with groups and admin status, token
refresh and revoked sessions, Keycloak outages, logout through Keycloak, refusal statuses."""

import dataclasses
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

import pytest
from tornado.httpclient import HTTPClientError

from hub_scenario import user
from primehub_hub.auth import AUTH_STATE_KEY, PrimeHubAuthenticator
from primehub_hub.errors import KeycloakUnavailable
from primehub_hub.logout import PrimeHubLogoutHandler, end_session_url
from primehub_hub.refresh import refreshed_id

BROWSER = "https://id.example.com"
INTERNAL = "http://keycloak.primehub.svc:8080"


class FakeAdmin:
    def __init__(self):
        self.asked = []
        self.admin_asked = []
        self.down = False

    async def load_user_info(self, username, user_id=None, *, fresh=False, need_admin=True):
        self.asked.append((username, user_id, fresh))
        self.admin_asked.append(need_admin)
        if self.down:
            raise KeycloakUnavailable(
                "The hub cannot reach Keycloak to read your groups and permissions (cannot connect)."
            )
        return user(username)


class FakeOIDC:
    """The token and userinfo endpoints, as oauthenticator's httpfetch sees them."""

    def __init__(self, authenticator):
        self.authenticator = authenticator
        self.session_alive = True
        self.refresh_ok = True
        self.down = False
        self.issued = 0
        self.calls = []

    def tokens(self, username):
        self.issued += 1
        return {
            "access_token": f"at-{self.issued}",
            "refresh_token": f"rt-{self.issued}",
            "id_token": f"id-{self.issued}",
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_expires_in": 1800,
            "scope": "openid profile email",
            "_user": username,
        }

    async def fetch(self, req, label="", parse_json=True, raise_error=True, **kwargs):
        """In place of the HTTP client under oauthenticator's httpfetch (which the hub wraps)."""
        url, kwargs = req.url, {"body": req.body, "headers": req.headers}
        self.calls.append(url)
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        if url == self.authenticator.token_url:
            form = parse_qs(kwargs["body"].decode())
            if form["grant_type"] == ["refresh_token"]:
                if not (self.refresh_ok and self.session_alive):
                    raise HTTPClientError(400, "invalid_grant")
                return self.tokens("ana")
            return self.tokens(form["code"][0])
        if url.startswith(self.authenticator.userdata_url):
            if not self.session_alive:
                raise HTTPClientError(401)
            token = kwargs["headers"]["Authorization"].split()[-1]
            username = "root" if token.endswith("root") else "ana"
            return {"sub": f"u-{username}", "preferred_username": username}
        raise AssertionError(url)


def make_authenticator(**kwargs):
    kwargs.setdefault("keycloak_url", BROWSER)
    kwargs.setdefault("keycloak_internal_url", INTERNAL)
    kwargs.setdefault("client_id", "jupyterhub")
    kwargs.setdefault("client_secret", "s3cret")
    kwargs.setdefault("public_url", "https://hub.example.com")
    kwargs.setdefault("enable_pkce", False)
    kwargs.setdefault("keycloak_logout_style", "oidc")  # "auto" would ask a Keycloak
    authenticator = PrimeHubAuthenticator(keycloak_admin=FakeAdmin(), **kwargs)
    oidc = FakeOIDC(authenticator)
    authenticator.fetch = oidc.fetch
    return authenticator, oidc


class HubUser(SimpleNamespace):
    async def get_auth_state(self):
        return self.auth_state


def callback_handler(code="ana"):
    return SimpleNamespace(
        get_argument=lambda name, default=None: code,
        hub=SimpleNamespace(base_url="/hub/"),
        request=SimpleNamespace(protocol="http", host="ignored"),
    )


def test_browser_and_internal_addresses():
    authenticator, _ = make_authenticator()
    assert authenticator.authorize_url == f"{BROWSER}/realms/primehub/protocol/openid-connect/auth"
    assert authenticator.token_url == f"{INTERNAL}/realms/primehub/protocol/openid-connect/token"
    assert authenticator.userdata_url == f"{INTERNAL}/realms/primehub/protocol/openid-connect/userinfo"
    assert authenticator.get_callback_url(callback_handler()) == "https://hub.example.com/hub/oauth_callback"
    same, _ = make_authenticator(keycloak_internal_url="")
    assert same.token_url.startswith(BROWSER)


def test_login_settings():
    authenticator, _ = make_authenticator()
    assert authenticator.username_claim == "preferred_username"
    assert authenticator.enable_auth_state and authenticator.refresh_pre_spawn and authenticator.manage_groups
    assert authenticator.allow_all and authenticator.auto_login
    assert authenticator.auth_refresh_age < 300  # Keycloak's access tokens live 300 s
    assert "openid" in authenticator.scope


@pytest.mark.asyncio
async def test_login_carries_groups_admin_status_and_token_expiry():
    authenticator, _ = make_authenticator()
    model = await authenticator.authenticate(callback_handler("ana"))
    assert model["name"] == "ana" and model["admin"] is False
    state = model["auth_state"]
    assert state["id_token"] == "id-1" and state["refresh_token"] == "rt-1"
    assert state["expires_at"] > time.time() + 250
    assert [g["name"] for g in state[AUTH_STATE_KEY]["groups"]] == ["analysts", "vision", "everyone"]
    assert model["groups"] == ["analysts", "vision"]
    assert authenticator.keycloak_admin.asked == [("ana", "u-ana", True)]


@pytest.mark.asyncio
async def test_realm_admins_are_hub_admins(monkeypatch):
    authenticator, oidc = make_authenticator()

    def tokens(username):
        return {"access_token": "at-root", "token_type": "Bearer", "expires_in": 300}

    monkeypatch.setattr(oidc, "tokens", tokens)
    model = await authenticator.authenticate(callback_handler("root"))
    assert model["name"] == "root" and model["admin"] is True


@pytest.mark.asyncio
async def test_login_while_keycloak_is_down_is_a_readable_page():
    authenticator, oidc = make_authenticator()
    oidc.down = True
    with pytest.raises(KeycloakUnavailable, match="cannot be reached") as info:
        await authenticator.authenticate(callback_handler())
    assert info.value.status_code == 503
    oidc.down = False
    authenticator.keycloak_admin.down = True
    with pytest.raises(KeycloakUnavailable):
        await authenticator.authenticate(callback_handler())


async def logged_in(authenticator, **changes):
    model = await authenticator.authenticate(callback_handler("ana"))
    state = model["auth_state"]
    state.update(changes)
    return HubUser(name="ana", auth_state=state)


OWNER_REQUEST = SimpleNamespace(get_token=lambda: None)  # no _jupyterhub_user yet: resolving the owner


@pytest.mark.asyncio
async def test_refresh_keeps_a_fresh_token_and_rereads_groups():
    authenticator, oidc = make_authenticator()
    hub_user = await logged_in(authenticator)
    issued = oidc.issued
    model = await authenticator.refresh_user(hub_user, OWNER_REQUEST)
    assert model["auth_state"]["access_token"] == f"at-{issued}"
    assert oidc.issued == issued  # no refresh needed
    assert model["groups"] == ["analysts", "vision"]


@pytest.mark.asyncio
async def test_refresh_renews_a_token_about_to_expire():
    authenticator, oidc = make_authenticator()
    hub_user = await logged_in(authenticator, expires_at=time.time() + 10)
    model = await authenticator.refresh_user(hub_user, OWNER_REQUEST)
    assert model["auth_state"]["access_token"] == "at-2"
    assert model["auth_state"]["expires_at"] > time.time() + 250


@pytest.mark.asyncio
async def test_a_revoked_keycloak_session_forces_a_new_login():
    authenticator, oidc = make_authenticator()
    hub_user = await logged_in(authenticator)
    oidc.session_alive = False
    assert await authenticator.refresh_user(hub_user, OWNER_REQUEST) is False
    # a token about to expire whose refresh is refused (session ended) needs a login too
    oidc.session_alive = True
    hub_user = await logged_in(authenticator, expires_at=time.time() + 5)
    oidc.refresh_ok = False
    assert await authenticator.refresh_user(hub_user, OWNER_REQUEST) is False


@pytest.mark.asyncio
async def test_refresh_while_keycloak_is_down_keeps_the_hub_serving():
    authenticator, oidc = make_authenticator()
    hub_user = await logged_in(authenticator, expires_at=time.time() + 5)
    oidc.down = True
    assert await authenticator.refresh_user(hub_user, OWNER_REQUEST) is True
    oidc.down = False
    authenticator.keycloak_admin.down = True
    assert await authenticator.refresh_user(hub_user, OWNER_REQUEST) is True


@pytest.mark.asyncio
async def test_refresh_on_behalf_of_another_user_only_rereads_their_groups():
    authenticator, oidc = make_authenticator()
    hub_user = await logged_in(authenticator, expires_at=time.time() + 5)
    oidc.calls.clear()
    admin_request = SimpleNamespace(get_token=lambda: None, _jupyterhub_user=SimpleNamespace(name="root"))
    authenticator.keycloak_admin.admin_asked.clear()
    model = await authenticator.refresh_user(hub_user, admin_request)
    assert oidc.calls == []  # the owner's tokens are theirs to renew
    assert model["name"] == "ana" and model["groups"] == ["analysts", "vision"]
    api_request = SimpleNamespace(get_token=lambda: "a-server-token")
    assert (await authenticator.refresh_user(hub_user, api_request))["name"] == "ana"
    assert oidc.calls == []
    # root acting for ana needs her entitlements only; her own token request re-reads admin status too
    assert authenticator.keycloak_admin.admin_asked == [False, True]


@pytest.mark.asyncio
async def test_a_refresh_leaves_the_users_keycloak_id_on_its_request_for_the_spawn_that_follows():
    authenticator, oidc = make_authenticator()
    real = authenticator.keycloak_admin.load_user_info

    async def with_id(username, *args, **kwargs):
        return dataclasses.replace(await real(username, *args, **kwargs), id=f"kc-{username}")

    authenticator.keycloak_admin.load_user_info = with_id
    hub_user = await logged_in(authenticator)
    keycloak_id = hub_user.auth_state[AUTH_STATE_KEY]["id"]
    assert keycloak_id == "kc-ana"
    own = SimpleNamespace(get_token=lambda: None)
    await authenticator.refresh_user(hub_user, own)
    assert refreshed_id(own, "ana") == keycloak_id
    assert refreshed_id(own, "bea") is None and refreshed_id(OWNER_REQUEST, "ana") is None
    # an admin's request for ana (a REST spawn) carries ana's id
    admin_request = SimpleNamespace(get_token=lambda: None, _jupyterhub_user=SimpleNamespace(name="root"))
    await authenticator.refresh_user(hub_user, admin_request)
    assert refreshed_id(admin_request, "ana") == keycloak_id
    # a refresh that keeps the stored state (Keycloak down) leaves nothing: the spawn reads the state
    oidc.down = True
    kept = SimpleNamespace(get_token=lambda: None)
    hub_user.auth_state["expires_at"] = time.time() + 5
    assert await authenticator.refresh_user(hub_user, kept) is True
    assert refreshed_id(kept, "ana") is None


@pytest.mark.asyncio
async def test_no_auth_state_needs_a_login_unless_an_admin_acts_for_the_user():
    authenticator, _ = make_authenticator()
    never_logged_in = HubUser(name="ana", auth_state=None)
    assert await authenticator.refresh_user(never_logged_in, OWNER_REQUEST) is False
    admin_request = SimpleNamespace(get_token=lambda: "admin-token")
    model = await authenticator.refresh_user(never_logged_in, admin_request)
    assert model["groups"] == ["analysts", "vision"] and model["auth_state"][AUTH_STATE_KEY]["username"] == "ana"


# --- logout -------------------------------------------------------------------------------------


def test_end_session_url():
    authenticator, _ = make_authenticator()
    url = urlparse(end_session_url(authenticator, "the-id-token", "https://hub.example.com/hub/logout?kc=true"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BROWSER}/realms/primehub/protocol/openid-connect/logout"
    assert parse_qs(url.query) == {
        "client_id": ["jupyterhub"],
        "post_logout_redirect_uri": ["https://hub.example.com/hub/logout?kc=true"],
        "id_token_hint": ["the-id-token"],
    }
    assert "id_token_hint" not in end_session_url(authenticator, None, "x")


def logout_handler(authenticator, current_user, kc=""):
    """JupyterHub's own LogoutHandler.get runs; only the session store and the page are stand-ins."""
    handler = object.__new__(PrimeHubLogoutHandler)
    record = SimpleNamespace(cleared=0, custom=0, redirects=[], rendered=0)

    async def default_handle_logout():
        record.cleared += 1

    async def render_template(name, **kwargs):
        record.rendered += 1
        return name

    def clear_cookie(name, **kwargs):  # oauthenticator's handle_logout drops its state cookie
        record.custom += 1

    handler.__dict__.update(
        application=SimpleNamespace(
            settings={"authenticator": authenticator, "hub": SimpleNamespace(base_url="/hub/")}
        ),
        _jupyterhub_user=current_user,
        request=SimpleNamespace(protocol="http", host="127.0.0.1:8000"),
        get_argument=lambda name, default=None: kc if name == "kc" else default,
        default_handle_logout=default_handle_logout,
        render_template=render_template,
        finish=lambda html=None: None,
        clear_cookie=clear_cookie,
        redirect=record.redirects.append,
    )
    return handler, record


@pytest.mark.asyncio
async def test_logout_clears_the_session_then_ends_the_keycloak_session():
    authenticator, _ = make_authenticator()
    hub_user = await logged_in(authenticator)
    handler, record = logout_handler(authenticator, hub_user)
    await handler.get()
    assert record.cleared == 1 and record.custom == 1 and record.rendered == 0
    (target,) = record.redirects
    query = parse_qs(urlparse(target).query)
    assert target.startswith(f"{BROWSER}/realms/primehub/protocol/openid-connect/logout?")
    assert query["id_token_hint"] == ["id-1"] and query["client_id"] == ["jupyterhub"]
    assert query["post_logout_redirect_uri"] == ["https://hub.example.com/hub/logout?kc=true"]


@pytest.mark.asyncio
async def test_logout_return_from_keycloak_finishes_the_hub_logout():
    authenticator, _ = make_authenticator(public_url="")
    handler, record = logout_handler(authenticator, None, kc="true")
    await handler.get()
    assert record.redirects == [] and record.rendered == 1
    handler, record = logout_handler(authenticator, None)
    await handler.get()
    query = parse_qs(urlparse(record.redirects[0]).query)
    # without a public URL the request's Host header (anyone's to set) is never the return address
    assert "post_logout_redirect_uri" not in query and "127.0.0.1" not in record.redirects[0]
    assert "id_token_hint" not in query
    # with the logout style left to discovery, Keycloak is not asked when there is no way back
    auto, _ = make_authenticator(public_url="", keycloak_logout_style="auto")
    auto.http_client.fetch = None  # any probe would fail here
    handler, record = logout_handler(auto, None)
    await handler.get()
    assert "redirect_uri" not in parse_qs(urlparse(record.redirects[0]).query)


def test_the_authenticator_routes_logout_to_keycloak_and_leaves_the_spawn_page_to_jupyterhub():
    # JupyterHub answers a refused form with the refusal's status itself (since 5.4, jupyterhub#5146).
    authenticator, _ = make_authenticator()
    routes = dict(authenticator.get_handlers(None))
    assert routes["/logout"] is PrimeHubLogoutHandler
    assert "/spawn" not in routes and r"/spawn/([^/]+)" not in routes


# --- a Keycloak without a pinned hostname -----------------------------------------------------------


def fake_jwt(issuer, tag):
    import base64
    import json

    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'iss': issuer, 'jti': tag})}.sig"


class PinlessKeycloak(FakeOIDC):
    """Tokens carry the browser address as issuer and are refused at the internal address."""

    def tokens(self, username):
        self.issued += 1
        issuer = f"{BROWSER}/realms/primehub"
        return {
            "access_token": fake_jwt(issuer, f"at-{self.issued}"),
            "refresh_token": fake_jwt(issuer, f"rt-{self.issued}"),
            "id_token": "id",
            "token_type": "Bearer",
            "expires_in": 300,
        }

    async def fetch(self, req, label="", parse_json=True, raise_error=True, **kwargs):
        """In place of the HTTP client under oauthenticator's httpfetch (which the hub wraps)."""
        url, kwargs = req.url, {"body": req.body, "headers": req.headers}
        self.calls.append(url)
        internal = url.startswith(INTERNAL)
        if url.endswith("/userinfo"):
            if internal:
                raise HTTPClientError(401)
            return {"sub": "u-ana", "preferred_username": "ana"}
        form = parse_qs(kwargs["body"].decode())
        if form["grant_type"] == ["refresh_token"] and internal:
            raise HTTPClientError(400, "Invalid token issuer")
        return self.tokens("ana")


@pytest.mark.asyncio
async def test_a_refusal_at_the_internal_address_ends_the_session_unless_the_fallback_is_asked_for():
    # A pinned Keycloak refuses a revoked session's token at the internal address; the hub must not
    # go on to the browser address (which it may not even reach, as in a cluster): the login is over.
    authenticator, _ = make_authenticator()
    oidc = PinlessKeycloak(authenticator)
    authenticator.fetch = oidc.fetch
    with pytest.raises(HTTPClientError):
        await authenticator.authenticate(callback_handler("ana"))
    assert not any(BROWSER in call for call in oidc.calls)


@pytest.mark.asyncio
async def test_tokens_issued_for_the_browser_address_are_sent_back_there(caplog):
    authenticator, _ = make_authenticator()
    authenticator.issuer_fallback = True  # a Keycloak without a pinned hostname
    oidc = PinlessKeycloak(authenticator)
    authenticator.fetch = oidc.fetch
    model = await authenticator.authenticate(callback_handler("ana"))
    assert model["name"] == "ana"
    assert f"{BROWSER}/realms/primehub/protocol/openid-connect/userinfo" in oidc.calls
    assert "Pin Keycloak's hostname" in caplog.text
    hub_user = HubUser(name="ana", auth_state={**model["auth_state"], "expires_at": time.time() + 5})
    refreshed = await authenticator.refresh_user(hub_user, OWNER_REQUEST)
    assert refreshed and refreshed["name"] == "ana"
    assert f"{BROWSER}/realms/primehub/protocol/openid-connect/token" in oidc.calls


@pytest.mark.asyncio
async def test_keycloak_requests_do_not_queue_behind_tornados_ten_shared_connections():
    from tornado.httpclient import AsyncHTTPClient

    authenticator = PrimeHubAuthenticator(keycloak_url=BROWSER, client_id="jupyterhub", client_secret="s3cret")
    client = authenticator.http_client
    try:
        assert client is not AsyncHTTPClient()
        assert client.max_clients == 64
        assert authenticator.keycloak_admin.http_client is client
    finally:
        client.close()


class ForeignIssuerKeycloak(PinlessKeycloak):
    """Tokens name an issuer that is neither configured address (a forged or unpinned hostname)."""

    issuer = "https://evil.example.net/realms/primehub"

    def tokens(self, username):
        self.issued += 1
        return {
            "access_token": fake_jwt(self.issuer, f"at-{self.issued}"),
            "refresh_token": fake_jwt(self.issuer, f"rt-{self.issued}"),
            "token_type": "Bearer",
            "expires_in": 300,
        }

    async def fetch(self, req, label="", parse_json=True, raise_error=True, **kwargs):
        if req.url.startswith("https://evil.example.net"):
            self.calls.append(req.url)
            return {"sub": "u-root", "preferred_username": "root"}
        return await super().fetch(req, label, parse_json, raise_error, **kwargs)


@pytest.mark.asyncio
async def test_a_token_naming_another_issuer_is_refused_and_that_host_never_contacted(caplog):
    from tornado import web

    authenticator, _ = make_authenticator()
    oidc = ForeignIssuerKeycloak(authenticator)
    authenticator.fetch = oidc.fetch
    with pytest.raises(web.HTTPError) as info:
        await authenticator.authenticate(callback_handler("ana"))
    assert info.value.status_code == 403
    assert not [c for c in oidc.calls if "evil.example.net" in c]
    assert "Refused a token issued by https://evil.example.net" in caplog.text
    assert "Pin Keycloak's hostname" in caplog.text
    # the refresh path never posts the client secret there either
    state = {
        "access_token": fake_jwt(oidc.issuer, "at"),
        "refresh_token": fake_jwt(oidc.issuer, "rt"),
        "token_response": {},
        "expires_at": time.time() + 5,
    }
    with pytest.raises(web.HTTPError) as info:
        await authenticator.refresh_user(HubUser(name="ana", auth_state=state), OWNER_REQUEST)
    assert info.value.status_code == 403
    assert not [c for c in oidc.calls if "evil.example.net" in c]


# --- offboarding ----------------------------------------------------------------------------------


class GoneAdmin(FakeAdmin):
    async def load_user_info(self, username, user_id=None, *, fresh=False, need_admin=True):
        from primehub_hub.errors import KeycloakUserGone

        raise KeycloakUserGone(f"User '{username}' does not exist in Keycloak realm 'primehub' any more (disabled).")


@pytest.mark.asyncio
async def test_a_user_gone_from_keycloak_is_refused_on_every_path_but_keycloak_down_is_not():
    authenticator, oidc = make_authenticator()
    hub_user = await logged_in(authenticator)
    api_request = SimpleNamespace(get_token=lambda: "the-users-api-token")
    authenticator.keycloak_admin = GoneAdmin()
    assert await authenticator.refresh_user(hub_user, api_request) is False  # API tokens, the server's OAuth token
    assert await authenticator.refresh_user(hub_user, OWNER_REQUEST) is False  # the browser session
    admin_request = SimpleNamespace(get_token=lambda: None, _jupyterhub_user=SimpleNamespace(name="root"))
    assert await authenticator.refresh_user(hub_user, admin_request) is False  # a spawn for them
    down = FakeAdmin()
    down.down = True
    authenticator.keycloak_admin = down
    assert await authenticator.refresh_user(hub_user, api_request) is True


@pytest.mark.asyncio
async def test_a_refresh_that_keeps_the_token_keeps_its_expiry():
    authenticator, oidc = make_authenticator()
    hub_user = await logged_in(authenticator)
    expires_at = hub_user.auth_state["expires_at"]
    time.sleep(0.01)
    model = await authenticator.refresh_user(hub_user, OWNER_REQUEST)
    assert model["auth_state"]["access_token"] == hub_user.auth_state["access_token"]
    assert model["auth_state"]["expires_at"] == expires_at  # not pushed forward: it will be renewed early


def test_the_client_secret_is_read_without_surrounding_whitespace():
    from primehub_hub.settings import Settings

    assert Settings.from_document({}, env={"PRIMEHUB_KEYCLOAK_CLIENT_SECRET": "  s3cret\n"}).client_secret == "s3cret"
