"""Logout through Keycloak, so the next visit asks for the password again.

First request: remember the id_token, clear the hub session, and send the browser to
Keycloak's end-session endpoint with `id_token_hint`, `client_id` (Keycloak 26 needs one of
them) and `post_logout_redirect_uri` pointing back here with `kc=true`. Second request (the
return from Keycloak): finish the hub logout and show the logout page.

The return address must be allowed in the Keycloak client's "Valid post logout redirect URIs"
(Keycloak 18 and later) or "Valid redirect URIs" (earlier releases, which take `redirect_uri`
instead: PRIMEHUB_KEYCLOAK_LOGOUT=legacy, or `auto` to ask Keycloak once).
"""

from oauthenticator.oauth2 import OAuthLogoutHandler
from tornado.httputil import url_concat


class PrimeHubLogoutHandler(OAuthLogoutHandler):
    def _return_url(self):
        base = self.authenticator.public_url.rstrip("/") if self.authenticator.public_url else f"{self.request.protocol}://{self.request.host}"
        return url_concat(base + self.hub.base_url + "logout", {"kc": "true"})

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

    async def get(self):
        if self.get_argument("kc", "") == "true":
            await self.default_handle_logout()
            await self.handle_logout()
            self._jupyterhub_user = None
            await self.render_logout_page()
            return
        id_token = await self._id_token()
        await self.default_handle_logout()
        await self.handle_logout()
        self._jupyterhub_user = None
        return_url = self._return_url()
        style = await self.authenticator.logout_style(return_url)
        self.redirect(self.authenticator.end_session_url(id_token, return_url, style))
