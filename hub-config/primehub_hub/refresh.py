"""Keeping a Keycloak login fresh, through oauthenticator's documented hooks.

PrimeHubAuthenticator sets `refresh_user_hook` to `refresh_user_hook` below and
`modify_auth_state_hook` to `note_token_expiry`. The hook decides every refresh:

- a request acting for another user (an admin starting their server, an API token) only re-reads
  that user's groups: their tokens are theirs to renew;
- otherwise the access token is renewed with the refresh token when it is about to expire, and
  the Keycloak session is checked through userinfo; when it was revoked (refresh fails) the user
  must log in again and the hub's login cookie is dropped at once;
- Keycloak being unreachable keeps the current login: pages keep working, and a spawn re-reads
  Keycloak and says it is down. "Keycloak unreachable" is never taken for "user gone".

oauthenticator calls the hook as hook(authenticator, user, auth_state), without the request; the
authenticator's refresh_user puts the request in `current_request` for the hook to read.

`IssuerFallback` (a mixin of PrimeHubAuthenticator) sends userinfo and refresh requests back to
the Keycloak address that issued a token, when the internal address refuses it.
"""

import contextvars
import time
from urllib.parse import urlencode

import jwt
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets.config import LoggingConfigurable

from .entitlements import EVERYONE
from .errors import KeycloakUnavailable

AUTH_STATE_KEY = "primehub"

# The request being refreshed for (None: none, e.g. a background refresh), and whether a refresh
# is running at all (update_auth_model then may use the admin API's short cache).
current_request = contextvars.ContextVar("primehub_refresh_request", default=None)
refreshing = contextvars.ContextVar("primehub_refreshing", default=False)


def token_issuer_base(token):
    """Keycloak base URL from a JWT's `iss` (`<base>/realms/<realm>`), without verifying it.

    Only used to choose where to send the token back to; Keycloak itself validates it.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, TypeError, AttributeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or "/realms/" not in issuer:
        return None
    return issuer.split("/realms/")[0].rstrip("/")


def note_token_expiry(authenticator, auth_state):
    """modify_auth_state_hook: when the access and refresh tokens expire, as absolute times."""
    token_info = auth_state.get("token_response") or {}
    now = time.time()
    if token_info.get("expires_in"):
        auth_state["expires_at"] = now + float(token_info["expires_in"])
    if token_info.get("refresh_expires_in"):
        auth_state["refresh_expires_at"] = now + float(token_info["refresh_expires_in"])
    return auth_state


def _acting_for_other(user, handler):
    """True when the request is by someone other than `user` (e.g. an admin spawning)."""
    if handler is None:
        return True
    try:
        if handler.get_token():
            # API token requests (incl. the user's own server) must not depend on the
            # browser's Keycloak session.
            return True
    except Exception:
        pass
    # While JupyterHub resolves the current user it has not stored it yet: that user is us.
    if not hasattr(handler, "_jupyterhub_user"):
        return False
    current = handler._jupyterhub_user
    return current is None or getattr(current, "name", None) != user.name


def _require_login(handler):
    """The user's Keycloak session is gone: drop the hub's login cookie too, so the very next
    request goes to Keycloak instead of waiting for the next refresh check."""
    if handler is not None and hasattr(handler, "clear_login_cookie"):
        handler.clear_login_cookie()
    return False


def _expires_soon(authenticator, auth_state):
    expires_at = auth_state.get("expires_at")
    return not expires_at or expires_at - time.time() < authenticator.token_refresh_margin


def _someone_else(user, handler):
    """True when the request was made by another, already identified, hub user."""
    current = getattr(handler, "_jupyterhub_user", None) if handler is not None else None
    return current is not None and getattr(current, "name", None) != user.name


async def _refresh_groups_only(authenticator, user, auth_state, handler):
    user_id = (auth_state.get(authenticator.user_auth_state_key) or {}).get("sub")
    if _someone_else(user, handler):
        # An admin acting for this user (e.g. a REST spawn) needs their entitlements, not their
        # admin status: that is read when they act themselves. None leaves it as it is.
        info = await authenticator.load_entitlements(user.name, user_id)
    else:
        info = await authenticator.load_user_info(user.name, user_id)
    auth_state[AUTH_STATE_KEY] = info.to_dict()
    groups = sorted(g.name for g in info.groups if g.name != EVERYONE)
    return {"name": user.name, "admin": info.is_admin, "auth_state": auth_state, "groups": groups}


async def refreshed_token_info(authenticator, handler, auth_state):
    """A new token response from the refresh token; None when the session is gone."""
    refresh_token = auth_state.get("refresh_token")
    if not refresh_token:
        return None
    params = authenticator.build_refresh_token_request_params(refresh_token)
    try:
        token_info = await authenticator.get_token_info(handler, params)
    except KeycloakUnavailable:
        raise  # an HTTPError too, but not an answer about the session
    except web.HTTPError:
        # get_token_info turns an OAuth error answer (invalid_grant: session ended) into 403
        return None
    except HTTPClientError:
        token_info = await authenticator.refresh_at_issuer(refresh_token, params)
        if token_info is None:
            return None
    if not token_info.get("refresh_token"):
        token_info["refresh_token"] = refresh_token
    return token_info


async def _renewed_login(authenticator, user, handler, auth_state):
    token_info = auth_state.get("token_response") or {}
    if _expires_soon(authenticator, auth_state):
        token_info = await refreshed_token_info(authenticator, handler, auth_state)
        if token_info is None:
            authenticator.log.info("Keycloak session of %s has ended; a new login is required", user.name)
            return _require_login(handler)
    try:
        # userinfo answers 401 once the Keycloak session is revoked, even for an unexpired token
        return await authenticator._token_to_auth_model(token_info)
    except HTTPClientError as e:
        if e.code not in (400, 401, 403):
            raise
    token_info = await refreshed_token_info(authenticator, handler, auth_state)
    if token_info is None:
        authenticator.log.info("Keycloak session of %s was revoked; a new login is required", user.name)
        return _require_login(handler)
    return await authenticator._token_to_auth_model(token_info)


async def refresh_user_hook(authenticator, user, auth_state):
    """oauthenticator's refresh_user_hook: True (unchanged), False (log in again) or a new auth model."""
    handler = current_request.get()
    try:
        if _acting_for_other(user, handler):
            # also for a user who never logged in: their groups come from the admin API
            return await _refresh_groups_only(authenticator, user, dict(auth_state or {}), handler)
        if not auth_state:
            return False
        return await _renewed_login(authenticator, user, handler, auth_state)
    except KeycloakUnavailable as e:
        authenticator.log.warning("Keycloak unavailable while refreshing %s; keeping the current login: %s", user.name, e)
        return True


class IssuerFallback(LoggingConfigurable):
    """Tokens sent back to the Keycloak address that issued them. A mixin of PrimeHubAuthenticator."""

    def _other_issuer(self, token):
        """The token's issuer base when it is not the internal URL, else None.

        A Keycloak without a pinned hostname issues tokens for the address the browser used and
        then refuses them (userinfo, refresh, introspection) at any other address. Going back to
        the issuer keeps such a setup working; pinning the hostname (KC_HOSTNAME with
        hostname-backchannel-dynamic) is the real fix, hence the warning.
        """
        base = token_issuer_base(token)
        if not base or base == self.internal_url:
            return None
        if not getattr(self, "_warned_issuer", False):
            self._warned_issuer = True
            self.log.warning(
                "Keycloak issued tokens for %s but the hub talks to it at %s and it refuses them there; "
                "sending them back to %s. Pin Keycloak's hostname (hostname + hostname-backchannel-dynamic) to avoid this.",
                base,
                self.internal_url,
                base,
            )
        return base

    async def token_to_user(self, token_info):
        try:
            return await super().token_to_user(token_info)
        except HTTPClientError as e:
            base = self._other_issuer(token_info.get("access_token")) if e.code == 401 else None
            if base is None:
                raise
            return await self.httpfetch(
                self._oidc(base, "userinfo"),
                "Fetching user info...",
                method="GET",
                headers=self.build_userdata_request_headers(token_info["access_token"], token_info.get("token_type") or "Bearer"),
                validate_cert=self.validate_server_cert,
            )

    async def refresh_at_issuer(self, refresh_token, params):
        """A refresh at the token's own issuer when the internal address refused it; None if that fails too."""
        base = self._other_issuer(refresh_token)
        if base is None:
            return None
        try:
            token_info = await self.httpfetch(
                self._oidc(base, "token"),
                method="POST",
                headers=self.build_token_info_request_headers(),
                body=urlencode(params).encode("utf-8"),
                validate_cert=self.validate_server_cert,
            )
        except HTTPClientError:
            return None
        return token_info if "access_token" in (token_info or {}) else None
