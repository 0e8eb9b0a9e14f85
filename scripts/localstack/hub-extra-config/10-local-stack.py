# For the local stack only, loaded last (the settings document's extraConfigDir), as the chart's
# hub.extraConfig snippets are. Everything else the local hub is told is in its settings document
# (scripts/localstack/hub.py); this file only adds what needs a secret from the environment.
import os

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads config files)

# An admin service for tests and operator scripts; its token lives in .local-stack/hub/.
c.JupyterHub.services = [
    {"name": "local-admin", "api_token": os.environ["PRIMEHUB_LOCAL_ADMIN_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {
        "name": "local-admin",
        "scopes": [
            "admin:users",
            "admin:servers",
            "admin:auth_state",
            "access:servers",
            "read:users",
            "tokens",
            "list:users",
            "read:servers",
        ],
        "services": ["local-admin"],
    },
]
