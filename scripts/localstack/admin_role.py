"""The `local-admin` service's role: what the test suites and operator scripts may do through the
hub's REST API with the local stacks' admin token.

One definition for every stack that makes this service: the local hub (hub-extra-config/
10-local-stack.py) and the kind backend's chart values (tests/integration/backends/kind.py), so a
scope a test needs is granted everywhere at once. No imports: the hub, which does not have scripts/
on its path, loads this file by its path.
"""

NAME = "local-admin"
# Users and their servers (start, stop, auth state, tokens): all the suites do through the API.
SCOPES = (
    "admin:users",
    "admin:servers",
    "admin:auth_state",
    "access:servers",
    "read:users",
    "tokens",
    "list:users",
    "read:servers",
)


def role() -> dict:
    """The role as JupyterHub's load_roles (and the chart's hub.loadRoles) takes it."""
    return {"name": NAME, "scopes": list(SCOPES), "services": [NAME]}
