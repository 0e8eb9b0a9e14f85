"""Keycloak Admin REST API client for what the hub needs to know about a user.

The hub's confidential client authenticates with its service account (client credentials
grant); the token is reused until shortly before it expires. Per user it reads:

- `GET /admin/realms/{realm}/users?username=..&exact=true` (or `/users/{id}`): id, attributes
- `GET /admin/realms/{realm}/users/{id}/groups?briefRepresentation=false`: groups with their
  attributes and role names (`realmRoles`, `clientRoles`); only when a representation lacks
  them, `GET /admin/realms/{realm}/groups/{id}/role-mappings` per group
- `GET /admin/realms/{realm}/group-by-path/everyone`: global grants, shared by all users: the
  realm-wide view, read at hub start and every `cache_ttl / 3` seconds in the background
  (realm_view.py), with the service token renewed there too, so no user's request waits for either;
  with `member_view`, every group's members too, from which a spawn reads a user's groups
  without any request (`GET /groups`, `GET /groups/{id}/members` per group)
- admin status, when asked for and not already given by a group: one request, `GET
  /admin/realms/{realm}/users/{id}/role-mappings/clients/{uuid}/composite` (the user's effective
  realm-management roles: direct, through groups or composites) once realm-management's id is
  known (`GET /admin/realms/{realm}/clients?clientId=realm-management`, once per hub, or any role
  mapping that names the client), else `GET /admin/realms/{realm}/users/{id}/role-mappings`

So a user the hub has never seen costs 2 requests, whatever their number of groups, plus one
for admin status where the caller needs it (a login, the user's own refresh) and no group
already made them an administrator.

The service account needs the realm-management roles `view-users` (or `query-users`) and
`query-groups`; with `query-clients` admin status through composite roles is seen too.

Results are cached for `cache_ttl` seconds (users, `everyone`, group role mappings) and never
served older (a user's entry does not embed `everyone`: it is joined with the current view when
read, so the two expire independently); an entry read after half of that is refreshed in the background, so busy users
rarely wait for Keycloak. Concurrent lookups of the same thing share one request. Failures
raise `KeycloakUnavailable` with a readable message.
"""

import asyncio
import dataclasses
import json
import logging
import time
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .entitlements import ADMIN_CLIENT, ADMIN_ROLE, Group, UserInfo, flatten_attributes, is_everyone
from .errors import KeycloakUnavailable, KeycloakUserGone
from .realm_view import MemberView, RealmView, background

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
        is_admin=None if is_admin is None else bool(is_admin),
        id=user_rep.get("id") or "",
    )


def with_everyone(info, everyone):
    """`info` with the realm's `everyone` group among its groups (once: a member already has it)."""
    if everyone is None or any(is_everyone(g.name, g.path) for g in info.groups):
        return info
    return dataclasses.replace(info, groups=[*info.groups, everyone])


class AdminStatus:
    """Whether a user is a realm administrator (realm-admin of realm-management). A mixin of
    KeycloakAdmin, which supplies `get`, the cache and the client's settings."""

    _admin_client_uuid = None
    _clients_unreadable = False

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
        a composite role. One request: the user's effective realm-management roles when the
        client's id is known (see admin_client_uuid), else their direct role mappings (and the
        effective roles only if those revealed the id)."""
        if any(self._maps_admin(m) for m in group_mappings):
            return True
        uuid = await self.admin_client_uuid(group_mappings)
        if not uuid:
            direct = await self.get(f"/users/{_seg(user_id)}/role-mappings") or {}
            if self._maps_admin(direct):
                return True
            uuid = await self.admin_client_uuid([direct])
            if not uuid:
                return False
        roles = await self.get(f"/users/{_seg(user_id)}/role-mappings/clients/{_seg(uuid)}/composite") or []
        return any(r.get("name") == self.admin_role for r in roles)

    async def _is_admin_or_not(self, user, group_mappings):
        # Admin status is a privilege: when it cannot be read, the user is not an admin.
        try:
            return await self.is_admin(user["id"], group_mappings)
        except KeycloakUnavailable:
            self.log.warning("Cannot read admin status of %s; treating as non-admin", user.get("username"))
            return False

    async def _add_admin(self, key, info):
        admin = await self._is_admin_or_not({"id": info.id, "username": info.username}, [])
        full = dataclasses.replace(info, is_admin=admin)
        self._cache.replace(key, info, full)  # same expiry: admin status is as old as the rest
        return full


class KeycloakAdmin(RealmView, MemberView, AdminStatus):
    """Reads users, groups and role mappings with the hub client's service account."""

    info_from = staticmethod(user_info_from_representations)
    seg = staticmethod(_seg)  # for the member view's paths: one rule for quoting ids

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
        member_view=False,
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
        self.member_view = member_view
        self.log = log or _log
        self._token = None
        self._token_expires = 0.0
        self._token_lock = None
        self._cache = SharedCache(cache_ttl)
        self._admin_client_uuid = None
        self._clients_unreadable = False
        self._joined_cache = {}
        self._admin_joined = {}

    @property
    def token_url(self):
        return f"{self.base_url}/realms/{_seg(self.realm)}/protocol/openid-connect/token"

    @property
    def admin_url(self):
        return f"{self.base_url}/admin/realms/{_seg(self.realm)}"

    def _unavailable(self, what, error, quiet=False):
        detail = _failure_detail(error)
        if not background.get():
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

    async def service_token(self, *, force=False, renew_within=0.0):
        """The service account's token; a new one when it expires within `renew_within` seconds."""
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            if not force and self._token and time.monotonic() + renew_within < self._token_expires:
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
                return await self._fetch(
                    url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
                )
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

    async def group_by_id(self, group_id):
        """A group's representation, None when the realm has no group of that id."""
        try:
            return await self.get(f"/groups/{_seg(group_id)}", quiet=True)
        except KeycloakNotFound:
            return None

    async def group_by_path(self, path):
        try:
            return await self.get("/group-by-path/" + "/".join(_seg(p) for p in path.strip("/").split("/")))
        except KeycloakNotFound:
            return None

    async def _group(self, rep):
        """A Group from a full representation; its role mappings are read only when the
        representation does not carry them (then shared by every user of the group)."""
        if "realmRoles" in rep:
            client_roles = rep.get("clientRoles") or {}
            mappings = {
                "clientMappings": {
                    client: {"mappings": [{"name": name} for name in names]} for client, names in client_roles.items()
                }
            }
            return group_from_representation(rep, rep.get("realmRoles") or []), mappings
        # shared by concurrent loads of the group's members, not cached: each load reads it anew
        mappings = await self._cache.once(("mappings", rep["id"]), lambda: self.group_role_mappings(rep["id"]))
        roles = [m.get("name") for m in mappings.get("realmMappings") or [] if m.get("name")]
        return group_from_representation(rep, roles), mappings

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

    async def _load(self, username, user_id, need_admin):
        user = await self.find_user(username, user_id)
        if _gone_reason(user):
            raise self._gone(username, _gone_reason(user))
        group_reps = await self.user_groups(user["id"])
        loaded = await asyncio.gather(*(self._group(rep) for rep in group_reps))
        groups = [group for group, _ in loaded]
        group_mappings = [mappings for _, mappings in loaded]
        if any(self._maps_admin(m) for m in group_mappings):
            admin = True
        elif need_admin:
            admin = await self._is_admin_or_not(user, group_mappings)
        else:
            admin = None  # not read: see load_user_info
        # without `everyone`: joined when read (load_user_info), so each keeps its own expiry
        return user_info_from_representations(user, groups, None, admin)

    async def load_user_info(self, username, user_id=None, *, fresh=False, need_admin=True):
        """The user's groups, grants and admin status, at most `cache_ttl` seconds old.

        With `need_admin=False` (a spawn: entitlements only) admin status is not read when no
        group grants it, and `is_admin` is None in the answer: unknown, not False.
        """
        key = ("user", username)
        if not fresh:
            # the realm's memberships, read in the background (realm_view.py), unless this user's
            # own entry was read after them; when they are newer and have the user in no group,
            # an older entry of the user's is not served either (they left their last group)
            known, viewed = self.member_info(username, user_id, newer_than=self._cache.read_at(key))
            if viewed is not None:
                if need_admin and viewed.is_admin is None:
                    viewed = await self._admin_of_member(username, viewed)
                return self._joined(username, viewed, await self.everyone())
            fresh = known
        cached = self._cache.peek(key)
        keep_admin = need_admin or bool(cached and cached.is_admin is not None)
        info, everyone = await asyncio.gather(
            self._cache.get(
                key,
                lambda: self._load(username, user_id, need_admin),
                fresh=fresh,
                refresh=lambda: self._load(username, user_id, keep_admin),
            ),
            self.everyone(),
        )
        if need_admin and info.is_admin is None:
            # one admin look-up per loaded entry, shared by concurrent callers (the key holds
            # the entry's id only while the look-up, which references the entry, runs)
            info = await self._cache.once(("admin", username, id(info)), lambda: self._add_admin(key, info))
        return self._joined(username, info, everyone)

    async def _admin_of_member(self, username, info):
        """A member view entry with the user's admin status, itself cached for `cache_ttl` (one
        request when it is not); the same object while neither changes."""
        admin = await self._cache.get(
            ("admin", username), lambda: self._is_admin_or_not({"id": info.id, "username": username}, [])
        )
        known = self._admin_joined.get(username)
        if known is None or known[0] is not info or known[1] != admin:
            known = (info, admin, dataclasses.replace(info, is_admin=admin))
            self._admin_joined[username] = known
        return known[2]

    def _joined(self, username, info, everyone):
        """The user's entry with the realm-wide `everyone` group added; the same object for the
        same entry and view, so concurrent readers of one entry get one answer."""
        joined = self._joined_cache.get(username)
        if joined is None or joined[0] is not info or joined[1] is not everyone:
            joined = (info, everyone, with_everyone(info, everyone))
            self._joined_cache[username] = joined
        return joined[2]

    def forget(self, username=None):
        """Drop a user's cached entry (None: every user's; the shared `everyone` group stays)."""
        if username is None:
            self._cache.forget_where(lambda key: key[0] in ("user", "admin"))
            self._joined_cache.clear()
            self._admin_joined.clear()
        else:
            self._cache.forget(("user", username))
            self._cache.forget(("admin", username))
            self._joined_cache.pop(username, None)
            self._admin_joined.pop(username, None)
            self.forget_member(username)


class SharedCache:
    """Values read from Keycloak: never served older than `ttl` seconds, one read at a time per key.

    After half the TTL an entry is still served, and read again in the background so the next
    reader finds a fresh one. A loader may return `_Expiring(value, expires)` for a value built from
    other cached values, which must not outlive them.
    """

    def __init__(self, ttl):
        self.ttl = ttl
        self._values = {}
        self._inflight = {}

    async def get(self, key, load, *, fresh=False, refresh=None):
        now = time.monotonic()
        cached = self._values.get(key)
        if cached and not fresh and cached[0] > now:
            if cached[0] - now < self.ttl / 2 and key not in self._inflight:
                self._start(key, refresh or load, cache=True).add_done_callback(_quiet)
            return cached[1]
        pending = self._inflight.get(key)
        if pending is None or fresh:
            pending = self._start(key, load, cache=True)
        return await asyncio.shield(pending)

    async def once(self, key, load):
        """`load()`, shared by whoever asks for `key` while it runs; not kept afterwards."""
        pending = self._inflight.get(key) or self._start(key, load, cache=False)
        return await asyncio.shield(pending)

    def peek(self, key):
        cached = self._values.get(key)
        return cached[1] if cached else None

    def expiry(self, key):
        cached = self._values.get(key)
        return cached[0] if cached else float("inf")

    def read_at(self, key):
        """When the cached value was read (monotonic), None when there is none."""
        cached = self._values.get(key)
        return cached[2] if cached else None

    def replace(self, key, old, new):
        """Put `new` in place of `old` (if still there), keeping the entry's expiry."""
        cached = self._values.get(key)
        if cached and cached[1] is old:
            self._values[key] = (cached[0], new, cached[2])

    def forget(self, key):
        self._values.pop(key, None)

    def forget_where(self, predicate):
        for key in [k for k in self._values if predicate(k)]:
            del self._values[key]

    def clear(self):
        self._values.clear()

    def _start(self, key, load, cache):
        async def run():
            started = time.monotonic()
            value = await load()
            expires = time.monotonic() + self.ttl
            if isinstance(value, _Expiring):
                expires, value = min(expires, value.expires), value.value
            if cache:
                self._values[key] = (expires, value, started)
            return value

        task = self._inflight[key] = asyncio.ensure_future(run())

        def done(_task):
            if self._inflight.get(key) is task:
                self._inflight.pop(key, None)

        task.add_done_callback(done)
        return task


class _Expiring:
    """A loaded value that must expire no later than `expires` (monotonic seconds)."""

    __slots__ = ("value", "expires")

    def __init__(self, value, expires):
        self.value = value
        self.expires = expires


def _quiet(task):
    # a failed background refresh is logged where it failed; the next reader loads again
    if not task.cancelled():
        task.exception()
