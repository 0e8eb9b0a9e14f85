# For the local stack only, loaded last (the settings document's extraConfigDir), as the chart's
# hub.extraConfig snippets are. Everything else the local hub is told is in its settings document
# (scripts/localstack/hub.py); this file only adds what needs a secret from the environment.
import os
import runpy

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads config files)

# An admin service for tests and operator scripts; its token lives in .local-stack/hub/. Its role is
# shared with the kind backend (scripts/localstack/admin_role.py, loaded by path: scripts/ is not on
# the hub's import path).
_admin = runpy.run_path(os.path.join(os.path.dirname(__file__), os.pardir, "admin_role.py"))
c.JupyterHub.services = [
    {"name": _admin["NAME"], "api_token": os.environ["PRIMEHUB_LOCAL_ADMIN_TOKEN"]},
]
c.JupyterHub.load_roles = [_admin["role"]()]
