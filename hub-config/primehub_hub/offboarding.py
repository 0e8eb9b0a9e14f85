"""Offboarding: a user deleted or disabled in Keycloak loses the hub within one check interval.

JupyterHub asks the authenticator about a user only when that user (or a token of theirs) makes a
request, and a running single-user server trusts the tokens it has seen for minutes. Neither ends
the access of someone who was just offboarded. So every `interval` seconds the users with a running
server are looked up in Keycloak (one admin-API read each); one that is deleted or disabled gets
their servers stopped (their volumes stay), their API and OAuth tokens revoked and their browser
sessions ended. A Keycloak that cannot be reached is never taken for "user gone": nothing happens
until it answers again.
"""

import asyncio
import logging

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

    async def _check(self, user):
        async with self._limit:
            why = await self.keycloak_admin.user_gone(user.name, await self._user_id(user))
        if why:
            await self.end_access(user, why)

    async def sweep(self):
        """Look up every user with a running server; end the access of those Keycloak no longer has."""
        if self._running:  # a slow Keycloak must not pile sweeps up
            return
        self._running = True
        try:
            users = [u for u in list(self.app.users.values()) if u.active]
            results = await asyncio.gather(*(self._check(u) for u in users), return_exceptions=True)
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
