"""A thin layer over JupyterHub's spawn page so that refusals keep their HTTP status.

JupyterHub's SpawnHandler catches every error of a form submission and re-renders the form
with the message, always with status 200. The message is already the readable refusal; this
subclass only sets the refusal's 4xx status on that page, so clients and tests can tell a
refused launch from a started one. It is registered through the authenticator's handlers,
which JupyterHub routes before its defaults.
"""

from jupyterhub.handlers.pages import SpawnHandler

from .errors import PrimeHubError


def remember_refusal(spawner, error):
    """Record the refusal raised for a spawner so the page rendering it can use its status."""
    if spawner is not None and isinstance(error, PrimeHubError):
        spawner._primehub_refusal = error


class PrimeHubSpawnHandler(SpawnHandler):
    async def _render_form(self, for_user, spawner_options_form, message=""):
        html = await super()._render_form(for_user, spawner_options_form, message)
        if message:
            for spawner in list(getattr(for_user, "spawners", {}).values()):
                refusal = getattr(spawner, "_primehub_refusal", None)
                if refusal is not None and str(refusal) in message:
                    spawner._primehub_refusal = None
                    self.set_status(refusal.status_code)
                    break
        return html


def spawn_handlers():
    return [
        (r"/spawn", PrimeHubSpawnHandler),
        (r"/spawn/([^/]+)", PrimeHubSpawnHandler),
        (r"/spawn/([^/]+)/([^/]+)", PrimeHubSpawnHandler),
    ]
