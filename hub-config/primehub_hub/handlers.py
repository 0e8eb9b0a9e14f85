"""A thin layer over JupyterHub's spawn page so that refusals keep their HTTP status.

JupyterHub's SpawnHandler catches every error of a form submission and re-renders the form
with the message, always with status 200. It renders from inside its `except` block, so the
error being handled is at hand: when it is a PrimeHubError (a refusal written for the user), the
page gets the refusal's 4xx status, so clients and tests can tell a refused launch from a
started one. The spawner and this handler share nothing but the exception. It is registered
through the authenticator's handlers, which JupyterHub routes before its defaults.
"""

import sys

from jupyterhub.handlers.pages import SpawnHandler

from .errors import PrimeHubError


class PrimeHubSpawnHandler(SpawnHandler):
    # SpawnHandler._render_form is private; tests/unit/test_upstream_interfaces.py pins its signature.
    async def _render_form(self, for_user, spawner_options_form, message=""):
        error = sys.exc_info()[1]
        html = await super()._render_form(for_user, spawner_options_form, message)
        if message and isinstance(error, PrimeHubError):
            self.set_status(error.status_code)
        return html


def spawn_handlers():
    return [
        (r"/spawn", PrimeHubSpawnHandler),
        (r"/spawn/([^/]+)", PrimeHubSpawnHandler),
        (r"/spawn/([^/]+)/([^/]+)", PrimeHubSpawnHandler),
    ]
