"""JupyterHub with hub-config/ on the local stack, started the same way the chart starts it
(`jupyterhub -f hub-config/jupyterhub_config.py`), plus the local-only settings in hub-extra-config/.
The hub starts configurable-http-proxy itself, from the cache.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from . import cluster, common, keycloak, postgres
from .common import REPO_ROOT, STATE_DIR, V, VENV_BIN, step

PORT = 8000
URL = f"http://127.0.0.1:{PORT}"
API_URL = "http://127.0.0.1:8081/hub/api"
HOME = STATE_DIR / "hub"
CLIENT_SECRET = "local-dev-only-secret"


def _secret(name: str, nbytes: int = 32) -> str:
    f = HOME / name
    if not f.exists():
        HOME.mkdir(parents=True, exist_ok=True)
        f.write_text(secrets.token_hex(nbytes))
        f.chmod(0o600)
    return f.read_text().strip()


def admin_token() -> str:
    """The API token of the local-only `local-admin` service (admin role), for tests and scripts."""
    return _secret("admin-api-token")


def env() -> dict[str, str]:
    chp_bin = common.tool("chp", V["CHP_VERSION"], "node_modules", ".bin")
    return {
        "PATH": f"{chp_bin}:{VENV_BIN}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(cluster.KUBECONFIG),
        "PRIMEHUB_KEYCLOAK_URL": f"http://localhost:{keycloak.PORT}",
        "PRIMEHUB_KEYCLOAK_INTERNAL_URL": keycloak.URL,
        "PRIMEHUB_KEYCLOAK_REALM": keycloak.REALM,
        "PRIMEHUB_KEYCLOAK_CLIENT_ID": "jupyterhub",
        "PRIMEHUB_KEYCLOAK_CLIENT_SECRET": CLIENT_SECRET,
        "PRIMEHUB_PUBLIC_URL": URL,
        "PRIMEHUB_NAMESPACE": cluster.NAMESPACE,
        # The node agent runs servers as the user running the stack, often root in CI.
        "PRIMEHUB_SINGLEUSER_CMD": '["jupyterhub-singleuser", "--allow-root"]',
        "PRIMEHUB_HOME_CAPACITY": "1Gi",
        "PRIMEHUB_EXTRA_CONFIG_DIR": str(Path(__file__).parent / "hub-extra-config"),
        "PRIMEHUB_LOCAL_ADMIN_TOKEN": admin_token(),
        "JUPYTERHUB_CRYPT_KEY": _secret("crypt-key"),
        "CONFIGPROXY_AUTH_TOKEN": _secret("proxy-token"),
    }


def ready() -> bool:
    return common.http_ok(f"{API_URL}/")


def start(extra_env: dict[str, str] | None = None) -> None:
    if common.pid_of("hub") and ready():
        return
    common.stop("hub")
    common.stop("proxy")
    step(f"starting the hub on {URL} with hub-config/")
    HOME.mkdir(parents=True, exist_ok=True)
    database = {}
    if os.environ.get("PRIMEHUB_LOCAL_DB") == "postgres":
        # asked for: the hub database on a PostgreSQL server of the stack's own, kept across restarts
        database["PRIMEHUB_LOCAL_DB_URL"] = postgres.Postgres().start(fresh=False).url
    common.start("hub", [str(VENV_BIN / "jupyterhub"), "-f", str(REPO_ROOT / "hub-config" / "jupyterhub_config.py")],
                 env={**env(), **database, **(extra_env or {})}, cwd=HOME)
    common.wait_for(ready, 60, "hub", "hub")


def stop() -> None:
    common.stop("hub", grace=15)
