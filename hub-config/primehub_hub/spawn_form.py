"""The options form of PrimeHubSpawner and its server-side check. A mixin of PrimeHubSpawner.

`options_form` renders the owner's choices (form.py builds and renders the model; the HTML is kept
in `rendered_forms` until any of its inputs changes) and `options_from_form` checks a submission
fully before anything starts, with the same launch plan the spawn itself uses (plan.py via
`self._plan`), so the form, the server check and the CLI share one decision path. The
entitlements, catalog and quota usage come from the spawner (spawner.py, spawn_quota.py).
"""

import asyncio

from traitlets import default
from traitlets.config import LoggingConfigurable

from .form import build_form, collection_paused, form_options, render_form, rendered_forms
from .plan import normalize_options
from .quotas import project_quota, user_quota
from .userenv import env_text


class PrimeHubOptionsForm(LoggingConfigurable):
    """The options form from the owner's entitlements, and the full check of what it posts."""

    @default("options_form")
    def _options_form_default(self):
        return self._render_primehub_form

    async def _render_primehub_form(self, spawner=None):
        user = await self.load_primehub_user()
        catalog = await self.load_catalog()
        usage = await self._usage_for_form(user, catalog)
        note = ""
        current = getattr(self.handler, "current_user", None) if self.handler is not None else None
        if current is not None and getattr(current, "name", self.user.name) != self.user.name:
            note = f"You are starting a server for {self.user.name}: the groups, choices and quotas shown are theirs."
        # What the form shows of the remembered options (choices and the user's own variables),
        # normalized: part of the cache key, so a changed remembered env renders again.
        remembered = normalize_options(self.user_options or {}, strict=False)
        key = (self.user.name, self.name)
        inputs = (user, catalog, usage, remembered, note, self.role_prefix)
        html = rendered_forms.get(key, inputs)
        if html is None:
            # A big form (a user in hundreds of groups) takes long to render: off the event loop,
            # so the hub keeps serving everyone else meanwhile. Inputs are immutable here.
            html = await asyncio.to_thread(self._render_form_html, user, catalog, usage, remembered, note)
            rendered_forms.put(key, inputs, html)
        return html

    def _render_form_html(self, user, catalog, usage, remembered, note):
        with collection_paused():
            model = build_form(
                user,
                catalog,
                prefix=self.role_prefix,
                remembered=remembered,
                usage=usage,
                git_sync_on_nodes=self.git_sync_on_nodes,
            )
            html = render_form(model, admin_note=note, user_env=env_text(remembered.get("env")))
            del model  # freed here, while collection is still paused
        return html

    @default("options_from_form")
    def _options_from_form_default(self):
        return self._primehub_options_from_form

    async def _primehub_options_from_form(self, formdata):
        """Check a form submission fully before anything is started; returns clean user_options."""
        # A refusal raised here is an HTTPError: JupyterHub (since 5.4, jupyterhub#5146) re-renders the
        # form with its message and answers with its status.
        user = await self.load_primehub_user()
        catalog = await self.load_catalog()
        plan = self._plan(user, catalog, form_options(formdata), strict=True)
        limited = not (user_quota(plan.group).unlimited and project_quota(plan.group).unlimited)
        if limited and (self.primehub_pods is not None or self.pod_reflector is not None):
            # early, lock-free look; the binding check happens when the pod is created
            self._check_quota(plan, await self._active_pods(), catalog.gpu_resources)
        return plan.options
