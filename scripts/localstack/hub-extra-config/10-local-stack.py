# Settings for the local stack only (loaded last by hub-config/jupyterhub_config.py through
# PRIMEHUB_EXTRA_CONFIG_DIR). In a cluster the chart sets the equivalents.
import os

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads config files)

c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:8081"
# The node agent runs single-user servers as local processes, which reach the hub on loopback.
c.KubeSpawner.hub_connect_url = "http://127.0.0.1:8081"
# Servers keep running across a hub restart, as they do in a cluster.
c.JupyterHub.cleanup_servers = False
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.last_activity_interval = 60
# `PRIMEHUB_LOCAL_DB=postgres make up`: the hub database on the stack's own PostgreSQL (localstack/postgres.py)
if os.environ.get("PRIMEHUB_LOCAL_DB_URL"):
    c.JupyterHub.db_url = os.environ["PRIMEHUB_LOCAL_DB_URL"]
# An admin service for tests and operator scripts; its token lives in .local-stack/hub/.
c.JupyterHub.services = [
    {"name": "local-admin", "api_token": os.environ["PRIMEHUB_LOCAL_ADMIN_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {"name": "local-admin", "scopes": ["admin:users", "admin:servers", "admin:auth_state", "access:servers", "read:users", "tokens", "list:users", "read:servers"],
     "services": ["local-admin"]},
]
