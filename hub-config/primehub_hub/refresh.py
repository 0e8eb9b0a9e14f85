"""Keeping a Keycloak login fresh, through oauthenticator's documented hooks.

PrimeHubAuthenticator sets `refresh_user_hook` to `refresh_user_hook` below and
`modify_auth_state_hook` to `note_token_expiry`. The hook decides every refresh:

- a request acting for another user (an admin starting their server, an API token) only re-reads
  that user's groups: their tokens are theirs to renew;
- otherwise the access token is renewed with the refresh token when it is about to expire, and
  the Keycloak session is checked through userinfo; when it was revoked (refresh fails) the user
  must log in again and the hub's login cookie is dropped at once;
- a user deleted or disabled in Keycloak is refused on every path (browser, API token, a spawn
  by an admin) and the rest of their access is ended (offboarding.py);
- Keycloak being unreachable keeps the current login: pages keep working, and a spawn re-reads
  Keycloak and says it is down. "Keycloak unreachable" is never taken for "user gone".

Tokens are only ever sent to the two configured Keycloak addresses (`issuer_to_use`, for login
and refresh alike): a token naming any other issuer is refused.

oauthenticator calls the hook as hook(authenticator, user, auth_state), without the request; the
authenticator's refresh_user puts the request in `current_request` for the hook to read.

`IssuerFallback` (a mixin of PrimeHubAuthenticator) sends userinfo and refresh requests to the
browser address when the internal address refuses a token issued there, and to no other address.
"""

import contextvars
import time
from urllib.parse import urlencode

import jwt
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool
from traitlets.config import LoggingConfigurable

from .entitlements import is_everyone
from .errors import KeycloakUnavailable, KeycloakUserGone

AUTH_STATE_KEY = "primehub"

# The request being refreshed for (None: none, e.g. a background refresh), and whether a refresh
# is running at all (update_auth_model then may use the admin API's short cache).
current_request = contextvars.ContextVar("primehub_refresh_request", default=None)
refreshing = contextvars.ContextVar("primehub_refreshing", default=False)


# Where a refresh leaves, on the request it ran for, the Keycloak id it just wrote into each user's
# auth state: the spawn that follows in the same request reads it there instead of decrypting the
# auth state again (a thread hop per spawn, waiting for a busy hub's loop and GIL).
_REFRESHED_IDS = "_primehub_refreshed_ids"


def note_refreshed_id(handler, username, auth_model):
    """Called with what a refresh returned: a new auth model records its Keycloak id on `handler`."""
    if handler is None or not isinstance(auth_model, dict):
        return
    user_id = ((auth_model.get("auth_state") or {}).get(AUTH_STATE_KEY) or {}).get("id")
    if user_id:
        ids = getattr(handler, _REFRESHED_IDS, None)
        if ids is None:
            ids = {}
            setattr(handler, _REFRESHED_IDS, ids)
        ids[username] = user_id


def refreshed_id(handler, username):
    """The Keycloak id a refresh during this request stored for `username`, else None."""
    return (getattr(handler, _REFRESHED_IDS, None) or {}).get(username)


def token_issuer_base(token):
    """Keycloak base URL from a JWT's `iss` (`<base>/realms/<realm>`), without verifying it.

    Only used to choose which of the two configured Keycloak addresses to send the token back to
    (`issuer_to_use`); Keycloak itself validates it.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, TypeError, AttributeError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str) or "/realms/" not in issuer:
        return None
    return issuer.split("/realms/")[0].rstrip("/")


def issuer_to_use(authenticator, token):
    """The token's issuer base when it is the browser URL rather than the internal one, else None.

    A Keycloak without a pinned hostname issues tokens for the address the browser used and then
    refuses them (userinfo, refresh, introspection) at any other address. Going back to the issuer
    keeps such a setup working as long as that issuer is the configured browser URL; pinning the
    hostname (KC_HOSTNAME with hostname-backchannel-dynamic) is the real fix, hence the warning.
    The issuer is read from an unverified token, so it is only a choice between the two configured
    addresses: any other issuer is refused (403) and never contacted, or a forged token naming the
    attacker's host would log its bearer in as anyone.
    """
    base = token_issuer_base(token)
    internal, browser = authenticator.internal_url, authenticator.browser_url
    if not base or base == internal:
        return None
    if base != browser:
        authenticator.log.error(
            "Refused a token issued by %s: the hub only talks to Keycloak at %s and %s. "
            "Pin Keycloak's hostname (hostname + hostname-backchannel-dynamic) so it issues tokens for one of them.",
            base,
            internal,
            browser,
        )
        raise web.HTTPError(403, "The login service issued a token for an address this hub does not trust.")
    if not authenticator.issuer_fallback:
        # A pinned Keycloak (the supported setup) answers at the internal address for tokens of the
        # browser address: a refusal there is the session's end, not a reason to go elsewhere.
        return None
    if not getattr(authenticator, "_warned_issuer", False):
        authenticator._warned_issuer = True
        authenticator.log.warning(
            "Keycloak issued tokens for %s but the hub talks to it at %s and it refuses them there; "
            "sending them back to %s. Pin Keycloak's hostname (hostname + hostname-backchannel-dynamic) to avoid this.",
            base,
            internal,
            base,
        )
    return base


def note_token_expiry(authenticator, auth_state):
    """modify_auth_state_hook: when the access and refresh tokens expire, as absolute times.

    The expiry belongs to the token response, fixed when it arrived (and kept in it): a refresh
    that re-reads userinfo with the same token must not push it forward, or the token is never
    renewed early.
    """
    token_info = auth_state.get("token_response") or {}
    now = time.time()
    for key, lifetime in (("expires_at", "expires_in"), ("refresh_expires_at", "refresh_expires_in")):
        if token_info.get(lifetime) and not token_info.get(f"primehub_{key}"):
            token_info[f"primehub_{key}"] = now + float(token_info[lifetime])
        if token_info.get(f"primehub_{key}"):
            auth_state[key] = token_info[f"primehub_{key}"]
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
        # JupyterHub 6's refresh_auth reads this flag after a refused refresh, but sets it only on
        # token-authenticated requests: a cookie login (a browser spawn) would end in a 500.
        if not hasattr(handler, "_token_authenticated"):
            handler._token_authenticated = False
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
    groups = sorted({g.name for g in info.groups if not is_everyone(g.name, g.path)})
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


async def _offboarded(authenticator, user, error, handler):
    """Keycloak no longer has the user (deleted or disabled): refuse this request and end the rest."""
    authenticator.log.warning("Refusing %s: %s", user.name, error)
    if authenticator.offboarding is not None:
        await authenticator.offboarding.end_access(user, "deleted or disabled")
    return _require_login(handler)


async def refresh_user_hook(authenticator, user, auth_state):
    """oauthenticator's refresh_user_hook: True (unchanged), False (log in again) or a new auth model."""
    handler = current_request.get()
    for_other = _acting_for_other(user, handler)
    try:
        if for_other:
            # also for a user who never logged in: their groups come from the admin API
            return await _refresh_groups_only(authenticator, user, dict(auth_state or {}), handler)
        if not auth_state:
            return False
        return await _renewed_login(authenticator, user, handler, auth_state)
    except KeycloakUserGone as e:
        # the login cookie to drop is the user's own, never that of an admin acting for them
        return await _offboarded(authenticator, user, e, None if for_other else handler)
    except KeycloakUnavailable as e:
        authenticator.log.warning(
            "Keycloak unavailable while refreshing %s; keeping the current login: %s", user.name, e
        )
        return True


class IssuerFallback(LoggingConfigurable):
    """Tokens issued for the browser address sent back there (`issuer_to_use`, which refuses any
    other issuer), for a Keycloak whose hostname is not pinned. A mixin of PrimeHubAuthenticator."""

    issuer_fallback = Bool(
        False,
        config=True,
        help="Send tokens that Keycloak refuses at the internal address back to the browser address that "
        "issued them: only for a Keycloak whose hostname is not pinned. Off, a refusal ends the session "
        "(a revoked or disabled login), and the hub never needs to reach the browser address.",
    )

    async def token_to_user(self, token_info):
        try:
            return await super().token_to_user(token_info)
        except HTTPClientError as e:
            base = issuer_to_use(self, token_info.get("access_token")) if e.code == 401 else None
            if base is None:
                raise
            return await self.httpfetch(
                self._oidc(base, "userinfo"),
                "Fetching user info...",
                method="GET",
                headers=self.build_userdata_request_headers(
                    token_info["access_token"], token_info.get("token_type") or "Bearer"
                ),
                validate_cert=self.validate_server_cert,
            )

    async def refresh_at_issuer(self, refresh_token, params):
        """A refresh at the token's own issuer when the internal address refused it; None if that fails too."""
        base = issuer_to_use(self, refresh_token)
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
