"""Offboarding: a user deleted or disabled in Keycloak loses the hub within one check interval.

JupyterHub asks the authenticator about a user only when that user (or a token of theirs) makes a
request, and a running single-user server trusts the tokens it has seen for minutes. Neither ends
the access of someone who was just offboarded. So every `interval` seconds the users with a running
server are looked up in Keycloak: in the member view (realm_view.py), read for this check when the
last read started before it, so a thousand running servers cost the realm's memberships, not a
thousand requests; a user it does not have (in no group, or deleted) is read on their own (one
admin-API read each). One that is deleted or disabled gets
their servers stopped (their volumes stay), their API and OAuth tokens revoked and their browser
sessions ended. A Keycloak that cannot be reached is never taken for "user gone": nothing happens
until it answers again.
"""

import asyncio
import logging
import time

from tornado.ioloop import PeriodicCallback

from .errors import KeycloakUnavailable

_log = logging.getLogger(__name__)


class Offboarding:
    def __init__(self, app, keycloak_admin, interval, *, log=None, concurrency=8):
        self.app = app
        self.keycloak_admin = keycloak_admin
        self.interval = interval
        self.log = log or _log
        self._limit = asyncio.Semaphore(concurrency)
        self._callback = None
        self._running = False

    def start(self):
        if self.interval > 0 and self._callback is None:
            self._callback = PeriodicCallback(self.sweep, self.interval * 1000)
            self._callback.start()

    def stop(self):
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    async def _user_id(self, user):
        try:
            state = await user.get_auth_state() or {}
        except Exception:
            return None
        return (state.get("primehub") or {}).get("id") or (state.get("oauth_user") or {}).get("sub")

    async def _check(self, user, known):
        if user.name in known:
            why = known[user.name]
        else:
            async with self._limit:
                why = await self.keycloak_admin.user_gone(user.name, await self._user_id(user))
        if why:
            await self.end_access(user, why)

    async def _from_member_view(self, users, started):
        """What the member view says of `users` (read after `started`); {} when it cannot say."""
        status = getattr(self.keycloak_admin, "status_from_member_view", None)
        if status is None:
            return {}
        try:
            return await status([u.name for u in users], newer_than=started)
        except KeycloakUnavailable:
            return {}  # each user is then asked on their own, and a Keycloak still down stops nobody

    async def sweep(self):
        """Look up every user with a running server; end the access of those Keycloak no longer has."""
        if self._running:  # a slow Keycloak must not pile sweeps up
            return
        self._running = True
        try:
            started = time.monotonic()
            users = [u for u in list(self.app.users.values()) if u.active]
            known = await self._from_member_view(users, started) if users else {}
            results = await asyncio.gather(*(self._check(u, known) for u in users), return_exceptions=True)
            unreachable = [r for r in results if isinstance(r, KeycloakUnavailable)]
            if unreachable:
                self.log.warning(
                    "Offboarding check: Keycloak did not answer for %d user(s); nobody is stopped for that",
                    len(unreachable),
                )
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, KeycloakUnavailable):
                    self.log.error("Offboarding check failed: %r", result)
        finally:
            self._running = False

    async def end_access(self, user, why):
        """Stop the user's servers, revoke their tokens and end their browser sessions."""
        self.log.warning(
            "User %s is %s in Keycloak: stopping their servers and revoking their tokens (their volumes are kept)",
            user.name,
            why,
        )
        for name, spawner in list(user.spawners.items()):
            if not spawner.active or spawner.pending == "stop":
                continue
            try:
                await self.app.proxy.delete_user(user, name)
                await user.stop(name)
            except Exception:
                self.log.exception("Could not stop server %r of offboarded user %s", name, user.name)
        db = self.app.db
        for token in list(user.orm_user.api_tokens):
            db.delete(token)
        # a new cookie id invalidates every login cookie the user's browsers hold
        from jupyterhub.utils import new_token

        user.orm_user.cookie_id = new_token()
        db.commit()
