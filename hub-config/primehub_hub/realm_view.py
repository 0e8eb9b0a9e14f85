"""What the hub knows of the whole realm, read in the background so that no user's request waits.

Two mixins of KeycloakAdmin (keycloak.py), which supplies the reads, the cache and `cache_ttl`:

- `RealmView`: the `everyone` group (grants shared by all users), and the service token;
- `MemberView`: who is a member of which group, with the groups' attributes and roles: one
  request for the groups (more for a big or nested realm: paged, `/children`) and one per group
  for its members. A spawn (admin REST spawns included) then reads a user's entitlements without
  any Keycloak request. Users in no group are not in it (their first read costs the usual two
  requests), and a login always reads Keycloak itself.

Both are refreshed every `cache_ttl / 3` seconds and never used older than `cache_ttl` (the bound
on how stale a removed grant may be): when the refresh has not run or Keycloak failed it, readers
go to Keycloak as if there were no view. A user's cached entry read after the view's refresh
began is newer, and wins over it (a login right after a grant was added sees it at once).
"""

import asyncio
import collections
import contextvars
import dataclasses
import time

from tornado.httpclient import HTTPClientError
from tornado.ioloop import PeriodicCallback

from .entitlements import EVERYONE
from .errors import KeycloakUnavailable

# Set while the background refresh runs: its failures are reported by it, in one line, not by
# every request it makes.
background = contextvars.ContextVar("primehub_keycloak_background", default=False)

PAGE = 500  # groups or members per admin-API request
PARALLEL = 4  # member reads in flight at once: a sweep should not crowd users' own requests


@dataclasses.dataclass
class Members:
    """One sweep of the realm's memberships."""

    started: float  # monotonic time the sweep began: its age counts from here
    users: dict  # lower-cased username -> (user representation, ids of the user's groups)
    groups: dict  # group id -> Group
    admin_groups: frozenset  # ids of groups that make their members realm administrators
    requests: int = 0  # admin-API requests the sweep made (what the view costs Keycloak)
    took: float = 0.0  # seconds the sweep took
    built: dict = dataclasses.field(default_factory=dict)  # lower-cased username -> UserInfo, made when read


class RealmView:
    """The `everyone` group and the service token, kept fresh in the background (see above)."""

    _view = None  # (the `everyone` Group or None, monotonic time its read started)
    _view_failing = False
    _refresher = None
    _first_refresh = None

    @property
    def refresh_interval(self):
        # a third of the bound: one failed refresh still leaves the view fresh for the next one
        return self.cache_ttl / 3

    async def _read_everyone(self):
        async def load():
            started = time.monotonic()
            rep = await self.group_by_path(EVERYONE)
            group = (await self._group(rep))[0] if rep else None
            self._view = (group, started)
            return group

        # one read at a time, shared by the background refresh and any reader that needs it now
        return await self._cache.once(("group", EVERYONE), load)

    async def everyone(self):
        """The `everyone` group, read at most `cache_ttl` seconds ago (None: the realm has none)."""
        view = self._view
        if view is not None and time.monotonic() - view[1] < self.cache_ttl:
            return view[0]
        return await self._read_everyone()

    async def refresh_realm_view(self):
        """One background refresh: the service token when it would expire before the next
        refresh, the `everyone` group and (MemberView) the memberships. Keycloak failing it keeps
        the last view (within its bound) and logs one line, until a refresh succeeds again.
        True when it succeeded."""
        marker = background.set(True)
        try:
            await self.service_token(renew_within=2 * self.refresh_interval)
            await self._read_everyone()
            if self.member_view:
                await self._cache.once(MEMBERS, self._read_members_or_stop)
        except Exception as e:  # noqa: BLE001 - a background loop: report, keep the last view
            if not self._view_failing:
                self._view_failing = True
                self.log.warning(
                    "Keycloak did not answer the background refresh of the realm-wide grants "
                    "(group %s and group memberships); keeping the last ones read, for at most %g s: %s",
                    EVERYONE,
                    self.cache_ttl,
                    e,
                )
            return False
        finally:
            background.reset(marker)
        if self._view_failing:
            self._view_failing = False
            self.log.info("Keycloak answers the background refresh of the realm-wide grants again")
        return True

    def start_background(self):
        """Read the realm-wide view now and every `refresh_interval` seconds (at hub start)."""
        if self._refresher is not None or self.cache_ttl <= 0:
            return
        self._refresher = PeriodicCallback(self.refresh_realm_view, self.refresh_interval * 1000)
        self._refresher.start()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the first periodic refresh reads it
        self._first_refresh = asyncio.ensure_future(self.refresh_realm_view())

    def stop_background(self):
        if self._refresher is not None:
            self._refresher.stop()
            self._refresher = None


MEMBERS = ("members",)  # the key a read of the member view is shared under (SharedCache.once)


class MemberView:
    """Every group's members, so a user's entitlements are read without Keycloak (see above)."""

    member_view = False  # KeycloakAdmin's setting
    _members = None  # the last sweep (Members)

    _sweep_requests = 0

    async def _paged(self, path, params):
        found, first = [], 0
        while True:
            self._sweep_requests += 1
            page = await self.get(path, {**params, "first": str(first), "max": str(PAGE)}) or []
            found += page
            if len(page) < PAGE:
                return found
            first += PAGE

    async def _all_groups(self):
        """Every group of the realm, subgroups too, as full representations."""
        found = []
        pending = collections.deque(await self._paged("/groups", {"briefRepresentation": "false"}))
        while pending:
            rep = pending.popleft()  # Keycloak's order (by name), subgroups after their parents
            found.append(rep)
            if rep.get("subGroups"):
                pending += rep["subGroups"]
            elif rep.get("subGroupCount"):
                pending += await self._paged(
                    f"/groups/{self.seg(rep['id'])}/children", {"briefRepresentation": "false"}
                )
        return found

    async def _read_members_or_stop(self):
        """A sweep; when Keycloak refuses it (the service account may not read group members),
        the member view is turned off with one line saying why: users are then read one by one."""
        try:
            await self._read_members()
        except KeycloakUnavailable as e:
            cause = e.__cause__
            if not (isinstance(cause, HTTPClientError) and cause.code in (401, 403)):
                raise
            self.member_view, self._members = False, None
            self.log.warning(
                "Keycloak refused the hub's read of group members (%s): the member view is off and each "
                "user's groups are read when needed. Give the hub client's service account the "
                "realm-management role view-users to turn it back on.",
                cause,
            )

    async def _read_members(self):
        started = time.monotonic()
        self._sweep_requests = 0
        reps = await self._all_groups()
        limit = asyncio.Semaphore(PARALLEL)

        async def members(rep):
            async with limit:
                return await self._paged(f"/groups/{self.seg(rep['id'])}/members", {"briefRepresentation": "false"})

        loaded = await asyncio.gather(*(self._group(rep) for rep in reps))
        listed = await asyncio.gather(*(members(rep) for rep in reps))
        users = {}
        for rep, group_members in zip(reps, listed):
            for user in group_members:
                name = (user.get("username") or "").lower()
                users.setdefault(name, (user, []))[1].append(rep["id"])
        self._members = Members(
            started=started,
            users=users,
            groups={rep["id"]: group for rep, (group, _) in zip(reps, loaded)},
            admin_groups=frozenset(rep["id"] for rep, (_, m) in zip(reps, loaded) if self._maps_admin(m)),
            requests=self._sweep_requests,
            took=time.monotonic() - started,
        )
        return self._members

    def member_info(self, username, user_id=None, *, newer_than=None):
        """(known, info): the user's entitlements from the last sweep (`everyone` not joined,
        `is_admin` None unless a group makes them an administrator). `known` is False when the
        view cannot answer: none read within `cache_ttl`, or it is older than `newer_than`
        (monotonic); info is None when the user is in no group of it (or has another id).
        Raises KeycloakUserGone for a user Keycloak has disabled."""
        view = self._members
        if view is None or time.monotonic() - view.started >= self.cache_ttl:
            return False, None
        if newer_than is not None and newer_than > view.started:
            return False, None
        key = (username or "").lower()
        entry = view.users.get(key)
        if entry is None or (user_id and entry[0].get("id") != user_id):
            return True, None
        if entry[0].get("enabled") is False:
            raise self._gone(username, "disabled")
        info = view.built.get(key)
        if info is None:
            groups = [view.groups[gid] for gid in entry[1] if gid in view.groups]
            admin = True if view.admin_groups.intersection(entry[1]) else None
            info = view.built[key] = self.info_from(entry[0], groups, is_admin=admin)
        return True, info

    async def status_from_member_view(self, usernames, *, newer_than):
        """{username: 'disabled' or None} for those of `usernames` a member view read after
        `newer_than` (monotonic) has in a group, read now if the last one is older (shared with
        a read already under way). The others (deleted, or in no group) are left out: ask
        `user_gone` for them. {} when the view is off. The offboarding check (offboarding.py)
        thus reads the realm's memberships once, not each user with a running server."""
        if not self.member_view:
            return {}
        view = self._members
        if view is None or view.started < newer_than:
            marker = background.set(True)
            try:
                await self._cache.once(MEMBERS, self._read_members_or_stop)
            finally:
                background.reset(marker)
            view = self._members
            if view is None or view.started < newer_than:
                return {}
        found = {}
        for name in usernames:
            entry = view.users.get(name.lower())
            if entry is not None:
                found[name] = "disabled" if entry[0].get("enabled") is False else None
                if found[name]:
                    self.forget(name)  # nothing granted from the cache any more
        return found

    def forget_member(self, username):
        """Drop a user from the last sweep, e.g. one Keycloak says is gone."""
        view = self._members
        if view is None:
            return
        view.users.pop(username.lower(), None)
        view.built.pop(username.lower(), None)
