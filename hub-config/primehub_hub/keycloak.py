"""Keycloak Admin REST API client for what the hub needs to know about a user.

The hub's confidential client authenticates with its service account (client credentials
grant); the token is reused until shortly before it expires. Per user it reads:

- `GET /admin/realms/{realm}/users?username=..&exact=true` (or `/users/{id}`): id, attributes
- `GET /admin/realms/{realm}/users/{id}/groups?briefRepresentation=false`: groups + attributes
- `GET /admin/realms/{realm}/groups/{id}/role-mappings`: each group's grants (and client roles)
- `GET /admin/realms/{realm}/group-by-path/everyone` (+ its role mappings): global grants
- `GET /admin/realms/{realm}/users/{id}/role-mappings`, and, to see realm-admin through
  composite roles, `GET /admin/realms/{realm}/clients?clientId=realm-management` then
  `GET /admin/realms/{realm}/users/{id}/role-mappings/clients/{uuid}/composite`: admin status

The service account needs the realm-management roles `view-users` (or `query-users`) and
`query-groups`; with `query-clients` admin status through composite roles is seen too.

Results are cached per user for `cache_ttl` seconds; concurrent lookups of the same user
share one request. Failures raise `KeycloakUnavailable` with a readable message.
"""

import asyncio
import json
import logging
import time
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .entitlements import ADMIN_CLIENT, ADMIN_ROLE, EVERYONE, Group, UserInfo, flatten_attributes, is_everyone
from .errors import KeycloakUnavailable, KeycloakUserGone

_log = logging.getLogger(__name__)


class KeycloakNotFound(Exception):
    pass


def _seg(value):
    """One path segment of an admin-API URL: a `/`, `?` or `..` in an id or name stays inside it."""
    return quote(str(value), safe="")


def _failure_detail(error):
    """What went wrong with a Keycloak request, in words for the user's error page."""
    if isinstance(error, HTTPClientError) and error.code != 599:
        detail = f"HTTP {error.code}"
        if error.code in (401, 403):
            detail += (
                "; the hub's Keycloak client may lack its service account roles "
                "(realm-management: view-users, query-groups)"
            )
        return detail
    if isinstance(error, (ValueError, KeyError, TypeError)):
        return "its answer was not what Keycloak sends; a proxy in between?"
    return "cannot connect"


def _gone_reason(user_rep):
    """'deleted' (no such user) or 'disabled' when the user may not use the hub any more, else None."""
    return "deleted" if user_rep is None else "disabled" if user_rep.get("enabled") is False else None


def group_from_representation(rep, realm_roles):
    attributes = flatten_attributes(rep.get("attributes"))
    return Group(
        name=rep.get("name") or "",
        display_name=attributes.get("displayName", ""),
        attributes=attributes,
        realm_roles=sorted(set(realm_roles or ())),
        id=rep.get("id") or "",
        path=rep.get("path") or "",
    )


def user_info_from_representations(user_rep, groups, everyone=None, is_admin=False):
    """UserInfo from a Keycloak user representation and already-built Groups."""
    all_groups = list(groups)
    if everyone is not None and not any(is_everyone(g.name, g.path) for g in all_groups):
        all_groups.append(everyone)
    return UserInfo(
        username=user_rep.get("username") or "",
        attributes=flatten_attributes(user_rep.get("attributes")),
        groups=all_groups,
        is_admin=bool(is_admin),
        id=user_rep.get("id") or "",
    )


class KeycloakAdmin:
    """Reads users, groups and role mappings with the hub client's service account."""

    def __init__(
        self,
        base_url,
        realm,
        client_id,
        client_secret,
        *,
        http_client=None,
        cache_ttl=30.0,
        request_timeout=10.0,
        validate_cert=True,
        admin_client=ADMIN_CLIENT,
        admin_role=ADMIN_ROLE,
        log=None,
    ):
        self.base_url = base_url.rstrip("/")
        self.realm = realm
        self.client_id = client_id
        self.client_secret = client_secret
        self.http_client = http_client or AsyncHTTPClient()
        self.cache_ttl = cache_ttl
        self.request_timeout = request_timeout
        self.validate_cert = validate_cert
        self.admin_client = admin_client
        self.admin_role = admin_role
        self.log = log or _log
        self._token = None
        self._token_expires = 0.0
        self._token_lock = None
        self._cache = {}
        self._inflight = {}
        self._admin_client_uuid = None
        self._clients_unreadable = False

    @property
    def token_url(self):
        return f"{self.base_url}/realms/{_seg(self.realm)}/protocol/openid-connect/token"

    @property
    def admin_url(self):
        return f"{self.base_url}/admin/realms/{_seg(self.realm)}"

    def _unavailable(self, what, error, quiet=False):
        detail = _failure_detail(error)
        (self.log.info if quiet else self.log.error)("Keycloak request failed (%s): %s", what, error)
        if isinstance(error, HTTPClientError) and error.code in (401, 403):
            return KeycloakUnavailable(
                f"Keycloak refused the hub's request for your groups and permissions ({detail}). "
                "Please tell your administrator."
            )
        return KeycloakUnavailable(
            f"The hub cannot reach Keycloak to read your groups and permissions ({detail}). "
            "Please try again in a minute; if it persists, tell your administrator."
        )

    async def _fetch(self, url, *, method="GET", body=None, headers=None):
        request = HTTPRequest(
            url,
            method=method,
            body=body,
            headers=headers or {},
            request_timeout=self.request_timeout,
            connect_timeout=self.request_timeout,
            validate_cert=self.validate_cert,
        )
        response = await self.http_client.fetch(request)
        return json.loads(response.body.decode("utf8")) if response.body else None

    async def service_token(self, *, force=False):
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            if not force and self._token and time.monotonic() < self._token_expires:
                return self._token
            body = urlencode(
                {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
            )
            try:
                data = await self._fetch(
                    self.token_url,
                    method="POST",
                    body=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                token = data["access_token"]
                lifetime = float(data.get("expires_in") or 60)
            except (HTTPClientError, OSError, ValueError, KeyError, TypeError) as e:
                # also a proxy's HTML page or a body without a token: a readable 503, not a 500
                raise self._unavailable("service account token", e) from e
            self._token = token
            # renew a little early so a request never carries a token that expires in flight
            self._token_expires = time.monotonic() + max(lifetime - min(30.0, lifetime / 2), 1.0)
            return self._token

    async def get(self, path, params=None, quiet=False):
        url = self.admin_url + path
        if params:
            url += "?" + urlencode(params)
        for attempt in (1, 2):
            token = await self.service_token(force=attempt == 2)
            try:
                return await self._fetch(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            except HTTPClientError as e:
                if e.code == 401 and attempt == 1:
                    continue
                if e.code == 404:
                    raise KeycloakNotFound(path) from e
                raise self._unavailable(path, e, quiet) from e
            except (OSError, ValueError) as e:
                # cannot connect, or an answer that is not JSON (a proxy's error page)
                raise self._unavailable(path, e, quiet) from e

    # --- individual reads ---------------------------------------------------------------

    async def find_user(self, username=None, user_id=None):
        if user_id:
            try:
                user = await self.get(f"/users/{_seg(user_id)}")
            except KeycloakNotFound:
                user = None
            # the id comes from the login's userinfo; a user found by it must also be the one named
            if user and (user.get("username") or "").lower() == (username or "").lower():
                return user
        users = await self.get("/users", {"username": username, "exact": "true", "briefRepresentation": "false"})
        for user in users or []:
            if (user.get("username") or "").lower() == (username or "").lower():
                return user
        return None

    async def user_groups(self, user_id):
        return await self.get(f"/users/{_seg(user_id)}/groups", {"briefRepresentation": "false", "max": "1000"}) or []

    async def group_role_mappings(self, group_id):
        """{"realmMappings": [...], "clientMappings": {client: {"id", "mappings": [...]}}} of a group."""
        return await self.get(f"/groups/{_seg(group_id)}/role-mappings") or {}

    async def group_by_path(self, path):
        try:
            return await self.get("/group-by-path/" + "/".join(_seg(p) for p in path.strip("/").split("/")))
        except KeycloakNotFound:
            return None

    async def admin_client_uuid(self, mappings=()):
        """realm-management's internal id: from the clients list if the service account may read
        it, else from any role mapping that mentions the client."""
        if self._admin_client_uuid:
            return self._admin_client_uuid
        for mapping in mappings:
            known = ((mapping or {}).get("clientMappings") or {}).get(self.admin_client) or {}
            if known.get("id"):
                self._admin_client_uuid = known["id"]
                return known["id"]
        if self._clients_unreadable:
            return ""
        try:
            clients = await self.get("/clients", {"clientId": self.admin_client}, quiet=True) or []
        except KeycloakUnavailable:
            # without query-clients only direct and group mappings of realm-admin are seen
            self._clients_unreadable = True
            return ""
        self._admin_client_uuid = clients[0]["id"] if clients else ""
        return self._admin_client_uuid

    def _maps_admin(self, mapping):
        known = ((mapping or {}).get("clientMappings") or {}).get(self.admin_client) or {}
        return any(r.get("name") == self.admin_role for r in known.get("mappings") or [])

    async def is_admin(self, user_id, group_mappings=()):
        """realm-admin of realm-management, mapped to the user, to one of their groups, or through
        a composite role (the last needs the client's id, see admin_client_uuid)."""
        direct = await self.get(f"/users/{_seg(user_id)}/role-mappings") or {}
        mappings = [direct, *group_mappings]
        if any(self._maps_admin(m) for m in mappings):
            return True
        uuid = await self.admin_client_uuid(mappings)
        if not uuid:
            return False
        roles = await self.get(f"/users/{_seg(user_id)}/role-mappings/clients/{_seg(uuid)}/composite") or []
        return any(r.get("name") == self.admin_role for r in roles)

    async def _group(self, rep):
        mappings = await self.group_role_mappings(rep["id"])
        roles = [m.get("name") for m in mappings.get("realmMappings") or [] if m.get("name")]
        return group_from_representation(rep, roles), mappings

    async def _everyone(self):
        cached = self._cache.get(("group", EVERYONE))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        rep = await self.group_by_path(EVERYONE)
        group = (await self._group(rep))[0] if rep else None
        self._cache[("group", EVERYONE)] = (time.monotonic() + self.cache_ttl, group)
        return group

    async def user_gone(self, username, user_id=None):
        """Why the user may no longer use the hub ('deleted' or 'disabled' in Keycloak), else None.

        Raises KeycloakUnavailable when Keycloak cannot tell: that is never taken for "gone"."""
        why = _gone_reason(await self.find_user(username, user_id))
        if why:
            self.forget(username)  # nothing granted from the cache any more
        return why

    def _gone(self, username, why):
        self.forget(username)
        return KeycloakUserGone(
            f"User '{username}' does not exist in Keycloak realm '{self.realm}' any more ({why}). "
            "Ask your administrator if you should still have access."
        )

    async def _load(self, username, user_id):
        user = await self.find_user(username, user_id)
        if _gone_reason(user):
            raise self._gone(username, _gone_reason(user))
        group_reps = await self.user_groups(user["id"])
        loaded, everyone = await asyncio.gather(
            asyncio.gather(*(self._group(rep) for rep in group_reps)),
            self._everyone(),
        )
        groups = [group for group, _ in loaded]
        admin = await self._is_admin_or_not(user, [mappings for _, mappings in loaded])
        return user_info_from_representations(user, groups, everyone, admin)

    async def _is_admin_or_not(self, user, group_mappings):
        # Admin status is a privilege: when it cannot be read, the user is not an admin.
        try:
            return await self.is_admin(user["id"], group_mappings)
        except KeycloakUnavailable:
            self.log.warning("Cannot read admin status of %s; treating as non-admin", user.get("username"))
            return False

    async def load_user_info(self, username, user_id=None, *, fresh=False):
        """The user's groups, grants and admin status, at most `cache_ttl` seconds old."""
        key = ("user", username)
        cached = self._cache.get(key)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1]
        pending = self._inflight.get(key)
        if pending is None:
            pending = self._inflight[key] = asyncio.ensure_future(self._load(username, user_id))
            pending.add_done_callback(lambda _f: self._inflight.pop(key, None))
        info = await asyncio.shield(pending)
        self._cache[key] = (time.monotonic() + self.cache_ttl, info)
        return info

    def forget(self, username):
        self._cache.pop(("user", username), None)

