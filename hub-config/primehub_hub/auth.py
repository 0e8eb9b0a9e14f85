"""Keycloak login for the hub: OIDC authorization code flow, token refresh, groups and admin.

Built on oauthenticator's GenericOAuthenticator, which already does the code flow, the token
and userinfo requests, auth_state and managed groups. This class adds:

- Keycloak's two addresses: authorize (and end-session) on the browser-facing URL, token and
  userinfo on the internal one;
- the user's Keycloak groups, grants, attributes and admin status, read with the admin API
  (keycloak.py) at login and on every refresh, kept in auth_state under `primehub`;
- refresh through oauthenticator's `refresh_user_hook` and `modify_auth_state_hook`
  (refresh.py): tokens renewed before they expire, revoked sessions noticed, groups re-read;
- the logout Keycloak speaks (`KeycloakLogoutStyle`, logout.py) and tokens issued for the browser
  address sent back there, never to any other issuer (`IssuerFallback`, refresh.py), as mixins;
- readable pages instead of tracebacks when Keycloak cannot be reached (`httpfetch`, the one
  door oauthenticator sends token and userinfo requests through).
"""

import time

import jwt
from jupyterhub.utils import maybe_future, url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.iostream import StreamClosedError
from traitlets import Any, Bool, Float, Integer, Unicode, default

from .entitlements import is_everyone
from .errors import KeycloakUnavailable, Refused
from .keycloak import KeycloakAdmin
from .logout import KeycloakLogoutStyle, PrimeHubLogoutHandler
from .offboarding import Offboarding
from .refresh import (
    AUTH_STATE_KEY,
    IssuerFallback,
    current_request,
    note_refreshed_id,
    note_token_expiry,
    refresh_user_hook,
    refreshing,
)


def _unreachable(error):
    if isinstance(error, HTTPClientError):
        return error.code == 599 or error.code >= 500
    return isinstance(error, (OSError, StreamClosedError))


def login_roles(auth_state):
    """The realm roles a login holds: the access token's `realm_access.roles` (Keycloak's effective
    roles, through groups and composite roles too) and a `roles` claim of userinfo (PrimeHub's
    realm maps one). The token came straight from Keycloak's token endpoint, so it is not re-verified."""
    auth_state = auth_state or {}
    try:
        claims = jwt.decode(auth_state.get("access_token"), options={"verify_signature": False})
    except (jwt.InvalidTokenError, TypeError, AttributeError):
        claims = {}
    roles = set(((claims if isinstance(claims, dict) else {}).get("realm_access") or {}).get("roles") or [])
    userinfo_roles = (auth_state.get("oauth_user") or {}).get("roles")
    if isinstance(userinfo_roles, list):
        roles.update(r for r in userinfo_roles if isinstance(r, str))
    return roles


def _keycloak_down():
    return KeycloakUnavailable(
        "The login service (Keycloak) cannot be reached right now. Please try again in a minute; "
        "if it persists, tell your administrator."
    )


class PrimeHubLoginHandler(OAuthLoginHandler):
    """Sends the browser to Keycloak only when the hub can reach Keycloak too.

    Otherwise the user would type a password only for the code exchange to fail, or land on the
    browser's own connection error; a readable page from the hub says what is wrong instead.
    """

    async def get(self):
        await self.authenticator.check_keycloak()
        return super().get()


class PrimeHubAuthenticator(KeycloakLogoutStyle, IssuerFallback, GenericOAuthenticator):
    """Log in with PrimeHub's Keycloak realm and carry the user's groups into the hub."""

    login_handler = PrimeHubLoginHandler
    _keycloak_seen_up = 0.0

    logout_handler = PrimeHubLogoutHandler

    keycloak_url = Unicode(
        "",
        config=True,
        help="Keycloak base URL as browsers reach it (authorize, login page, end-session), e.g. https://id.example.com.",
    )
    keycloak_internal_url = Unicode(
        "",
        config=True,
        help="Keycloak base URL as the hub reaches it (token, userinfo, admin API). Empty: same as keycloak_url.",
    )
    realm = Unicode("primehub", config=True, help="Keycloak realm holding PrimeHub's users, groups and roles.")
    scope_required = Unicode(
        "",
        config=True,
        help=(
            "PrimeHub's scopeRequired: only users holding this realm role (directly, through a group or a "
            "composite role) may log in. Empty lets every user of the realm in."
        ),
    )
    public_url = Unicode(
        "",
        config=True,
        help=(
            "The hub's public base URL (scheme and host, e.g. https://hub.example.com), used for the OAuth "
            "callback and the address Keycloak sends the browser back to after logout. Empty: taken from the request."
        ),
    )
    keycloak_cache_ttl = Float(
        30.0, config=True, help="Seconds a user's groups, grants and admin status read from Keycloak are reused."
    )
    keycloak_member_view = Bool(
        True,
        config=True,
        help=(
            "Read every group's members in the background (every keycloak_cache_ttl / 3 seconds: one admin API "
            "request per group, more for groups of over 500 members), so that spawns, admin REST spawns "
            "included, read a user's groups without asking Keycloak. Off, a user not cached costs two "
            "requests at their spawn."
        ),
    )
    keycloak_request_timeout = Float(10.0, config=True, help="Timeout in seconds of each Keycloak admin API request.")
    keycloak_max_connections = Integer(
        64,
        config=True,
        help=(
            "Simultaneous HTTP requests to Keycloak (token, userinfo, admin API). Tornado's shared client "
            "allows 10, behind which a burst of spawns would queue."
        ),
    )
    token_refresh_margin = Integer(
        60,
        config=True,
        help="Renew the access token with the refresh token when it has fewer than this many seconds left.",
    )
    offboarding_interval = Float(
        30.0,
        config=True,
        help=(
            "Seconds between checks that the users with a running server still exist and are enabled in Keycloak; "
            "a deleted or disabled user's servers are stopped and tokens revoked. 0 turns the check off."
        ),
    )
    offboarding = Any(None, allow_none=True, help="The running Offboarding check (set when the hub starts).")
    keycloak_admin = Any(
        None,
        allow_none=True,
        help="The KeycloakAdmin client; built from the settings above unless set (tests inject a fake).",
    )

    @default("http_client")
    def _http_client_default(self):
        # its own client, not tornado's shared one: more connections, and JupyterHub's other
        # requests (proxy, servers) do not wait behind Keycloak's
        return AsyncHTTPClient(force_instance=True, max_clients=self.keycloak_max_connections)

    @default("keycloak_admin")
    def _keycloak_admin_default(self):
        return KeycloakAdmin(
            self.internal_url,
            self.realm,
            self.client_id,
            self.client_secret,
            http_client=self.http_client,
            cache_ttl=self.keycloak_cache_ttl,
            request_timeout=self.keycloak_request_timeout,
            validate_cert=self.validate_server_cert,
            member_view=self.keycloak_member_view,
            log=self.log,
        )

    async def check_keycloak(self):
        """Raise KeycloakUnavailable unless the realm answered recently (at most one probe per 30 s)."""
        if time.monotonic() - self._keycloak_seen_up < 30:
            return
        try:
            await self.http_client.fetch(
                f"{self.internal_url}/realms/{self.realm}/.well-known/openid-configuration",
                request_timeout=self.keycloak_request_timeout,
                validate_cert=self.validate_server_cert,
            )
        except (HTTPClientError, OSError, StreamClosedError) as e:
            self.log.warning("Keycloak unreachable at login: %s", e)
            raise _keycloak_down() from e
        self._keycloak_seen_up = time.monotonic()

    @property
    def internal_url(self):
        return (self.keycloak_internal_url or self.keycloak_url).rstrip("/")

    @property
    def browser_url(self):
        return self.keycloak_url.rstrip("/")

    def _oidc(self, base, endpoint):
        return f"{base}/realms/{self.realm}/protocol/openid-connect/{endpoint}"

    @default("authorize_url")
    def _authorize_url_default(self):
        return self._oidc(self.browser_url, "auth")

    @default("token_url")
    def _token_url_default(self):
        return self._oidc(self.internal_url, "token")

    @default("userdata_url")
    def _userdata_url_default(self):
        return self._oidc(self.internal_url, "userinfo")

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email"]

    @default("login_service")
    def _login_service_default(self):
        return "PrimeHub"

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    @default("allow_all")
    def _allow_all_default(self):
        # Keycloak is the gate: a user of the realm may log in; what they may launch is decided
        # by their groups, and a user without groups gets a page saying so.
        return True

    @default("auto_login")
    def _auto_login_default(self):
        return True

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self):
        # Keycloak access tokens live 5 minutes by default; checking every minute renews them
        # before they lapse and notices revoked sessions quickly.
        return 60

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        def groups(auth_state):
            info = (auth_state or {}).get(AUTH_STATE_KEY) or {}
            return [
                g["name"]
                for g in info.get("groups") or []
                if g.get("name") and not is_everyone(g["name"], g.get("path"))
            ]

        return groups

    async def check_blocked_users(self, username, auth_model):
        """The scopeRequired gate, then oauthenticator's own block list. Here and not in check_allowed:
        JupyterHub skips check_allowed when allow_all is on, which it is (Keycloak is the gate)."""
        if self.scope_required and auth_model is not None:
            if self.scope_required not in login_roles(auth_model.get("auth_state")):
                self.log.warning("Login of %s refused: the realm role %s is required", username, self.scope_required)
                raise Refused(
                    f"Your account ({username}) may not use this hub: it needs the role '{self.scope_required}'. "
                    "Please ask your administrator."
                )
        return await maybe_future(super().check_blocked_users(username, auth_model))

    def get_handlers(self, app):
        # called once, by the running hub: the place where the authenticator gets to see its users
        start_background = getattr(self.keycloak_admin, "start_background", None)
        if app is not None and start_background is not None:
            # the realm-wide grants (and the service token) read now and kept fresh, so that no
            # spawn, not even the first, waits for them
            start_background()
        if app is not None and self.offboarding is None and self.offboarding_interval > 0:
            self.offboarding = Offboarding(app, self.keycloak_admin, self.offboarding_interval, log=self.log)
            self.offboarding.start()
        return super().get_handlers(app)

    def get_callback_url(self, handler=None):
        if self.oauth_callback_url:
            return self.oauth_callback_url
        if self.public_url and handler is not None:
            return self.public_url.rstrip("/") + url_path_join(handler.hub.base_url, "oauth_callback")
        return super().get_callback_url(handler)

    # --- tokens -------------------------------------------------------------------------

    @default("modify_auth_state_hook")
    def _modify_auth_state_hook_default(self):
        return note_token_expiry

    @default("refresh_user_hook")
    def _refresh_user_hook_default(self):
        return refresh_user_hook

    async def httpfetch(self, url, label="fetching", parse_json=True, raise_error=True, **kwargs):
        """oauthenticator's requests to Keycloak (token, userinfo): unreachable is a readable error."""
        try:
            return await super().httpfetch(url, label, parse_json, raise_error, **kwargs)
        except (HTTPClientError, OSError, StreamClosedError) as e:
            if not _unreachable(e):
                raise
            self.log.error("Keycloak unreachable (%s): %s", label, e)
            raise _keycloak_down() from e

    # --- Keycloak data ------------------------------------------------------------------

    async def load_user_info(self, username, user_id=None, *, fresh=False):
        """Groups, grants, attributes and admin status of a user (admin API, briefly cached)."""
        return await self.keycloak_admin.load_user_info(username, user_id, fresh=fresh)

    async def load_entitlements(self, username, user_id=None):
        """Groups, grants and attributes only (what a spawn needs): admin status is not read
        unless a group gives it, so `is_admin` may be None (unknown)."""
        return await self.keycloak_admin.load_user_info(username, user_id, need_admin=False)

    async def update_auth_model(self, auth_model):
        auth_state = auth_model["auth_state"]
        user_id = (auth_state.get(self.user_auth_state_key) or {}).get("sub")
        # A login reads Keycloak afresh; a refresh (every minute, and before each spawn) may use the
        # user's entry in the short admin-API cache, which the form page usually filled seconds ago.
        info = await self.load_user_info(auth_model["name"], user_id, fresh=not refreshing.get())
        auth_state[AUTH_STATE_KEY] = info.to_dict()
        if not auth_model.get("admin"):
            auth_model["admin"] = info.is_admin
        return auth_model

    async def refresh_user(self, user, handler=None, **kwargs):
        """oauthenticator's refresh, with the request at hand for `refresh_user_hook` (refresh.py)."""
        request, marker = current_request.set(handler), refreshing.set(True)
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
        finally:
            current_request.reset(request)
            refreshing.reset(marker)
        note_refreshed_id(handler, user.name, refreshed)
        return refreshed
