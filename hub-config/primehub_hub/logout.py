"""Logout through Keycloak, so the next visit asks for the password again.

JupyterHub's LogoutHandler clears the hub session, then calls the two hooks overridden here.
First request: `handle_logout` reads the id_token and `render_logout_page` sends the browser to
Keycloak's end-session endpoint with `id_token_hint`, `client_id` (Keycloak 26 needs one of
them) and `post_logout_redirect_uri` pointing back here with `kc=true`. Second request (the
return from Keycloak): the hub session is cleared again (harmless) and the logout page shown.

The return address must be allowed in the Keycloak client's "Valid post logout redirect URIs"
(Keycloak 18 and later) or "Valid redirect URIs" (earlier releases, which take `redirect_uri`
instead: keycloak.logout `legacy`, or `auto` to ask Keycloak once; see KeycloakLogoutStyle below).
"""

from oauthenticator.oauth2 import OAuthLogoutHandler
from tornado.httpclient import HTTPClientError
from tornado.httputil import url_concat
from tornado.iostream import StreamClosedError
from traitlets import Enum
from traitlets.config import LoggingConfigurable

LOGOUT_AUTO, LOGOUT_OIDC, LOGOUT_LEGACY = "auto", "oidc", "legacy"


def logout_style_from_probe(status, location, return_url):
    """Which logout a Keycloak speaks, from its answer to a session-less logout with `redirect_uri`."""
    if status in (301, 302, 303, 307) and location.split("?")[0] == return_url.split("?")[0]:
        return LOGOUT_LEGACY
    return LOGOUT_OIDC


class KeycloakLogoutStyle(LoggingConfigurable):
    """Which logout the realm's Keycloak speaks. A mixin of PrimeHubAuthenticator (auth.py)."""

    keycloak_logout_style = Enum(
        [LOGOUT_AUTO, LOGOUT_OIDC, LOGOUT_LEGACY],
        LOGOUT_AUTO,
        config=True,
        help=(
            "How the browser is sent through Keycloak's logout: 'oidc' (post_logout_redirect_uri, Keycloak 18 "
            "and later), 'legacy' (redirect_uri, Keycloak before 18, as PrimeHub used), or 'auto' (asked once)."
        ),
    )
    _discovered_logout_style = ""

    async def logout_style(self, return_url):
        """The configured logout style, or for `auto` the one this Keycloak answers to (asked once).

        The probe is a logout without a session, sent by the hub: a Keycloak before 18 sends it on
        to `redirect_uri` (302); a later one refuses the parameter.
        """
        if self.keycloak_logout_style != LOGOUT_AUTO:
            return self.keycloak_logout_style
        if self._discovered_logout_style:
            return self._discovered_logout_style
        probe = url_concat(self._oidc(self.internal_url, "logout"), {"redirect_uri": return_url})
        try:
            response = await self.http_client.fetch(
                probe,
                follow_redirects=False,
                raise_error=False,
                request_timeout=self.keycloak_request_timeout,
                validate_cert=self.validate_server_cert,
            )
        except (HTTPClientError, OSError, StreamClosedError) as e:
            self.log.warning("Cannot ask Keycloak which logout it speaks (%s); using OpenID Connect's", e)
            return LOGOUT_OIDC
        style = logout_style_from_probe(response.code, response.headers.get("Location", ""), return_url)
        self.log.info("Keycloak logout: %s (discovered)", style)
        self._discovered_logout_style = style
        return style


def end_session_url(authenticator, id_token, return_url, style="oidc"):
    """Keycloak's end-session endpoint (on the address browsers reach) for this logout.

    Keycloak 18 and later follow OpenID Connect RP-initiated logout (`post_logout_redirect_uri` with
    `id_token_hint` or `client_id`) and refuse `redirect_uri`; earlier releases, which PrimeHub ran
    on, only know `redirect_uri` (style "legacy").
    """
    endpoint = f"{authenticator.browser_url}/realms/{authenticator.realm}/protocol/openid-connect/logout"
    if style == "legacy":
        return url_concat(endpoint, {"redirect_uri": return_url} if return_url else {})
    params = {"client_id": authenticator.client_id}
    if return_url:
        params["post_logout_redirect_uri"] = return_url
    if id_token:
        params["id_token_hint"] = id_token
    return url_concat(endpoint, params)


class PrimeHubLogoutHandler(OAuthLogoutHandler):
    def _return_url(self):
        """Where Keycloak sends the browser back: the configured public URL, never the request's
        Host header (anyone can set it). Without one, Keycloak shows its own "logged out" page."""
        public = self.authenticator.public_url
        if not public:
            self.log.warning(
                "publicUrl is not set in the hub's settings: after logout Keycloak cannot send the browser back to the hub"
            )
            return None
        return url_concat(str(public).rstrip("/") + self.hub.base_url + "logout", {"kc": "true"})

    async def _id_token(self):
        user = self.current_user
        if user is None or not hasattr(user, "get_auth_state"):
            return None
        try:
            auth_state = await user.get_auth_state()
        except Exception:
            self.log.warning("Cannot read auth state of %s for logout", getattr(user, "name", "?"), exc_info=True)
            return None
        return (auth_state or {}).get("id_token")

    async def handle_logout(self):
        """JupyterHub's hook after it cleared the hub session: decide where the browser goes next."""
        await super().handle_logout()
        self.keycloak_end_session = None
        if self.get_argument("kc", "") != "true":
            # the user is still known here (JupyterHub forgets them only after this hook)
            return_url = self._return_url()
            # without a way back (no publicUrl) the style does not matter and Keycloak is not asked
            style = await self.authenticator.logout_style(return_url) if return_url else LOGOUT_OIDC
            self.keycloak_end_session = end_session_url(self.authenticator, await self._id_token(), return_url, style)

    async def render_logout_page(self):
        """First request: on to Keycloak's end-session endpoint. Back from Keycloak: the logout page."""
        if self.keycloak_end_session:
            self.redirect(self.keycloak_end_session)
            return
        await super().render_logout_page()
