"""JupyterHub with hub-config/ on the local stack, started the way the chart starts it: the same
entry point (`jupyterhub -f hub-config/jupyterhub_config.py`) reading the same kind of settings
document (written here to .local-stack/hub/settings.json, where the chart renders its own), secrets
in the environment, and extra config files (hub-extra-config/, the chart's hub.extraConfig) last.
Without a proxy.apiUrl the hub starts configurable-http-proxy itself, from the cache.

The hub runs from .venv, or from the Python environment PRIMEHUB_HUB_VENV names (`make test-next`
sets .venv-next: the next JupyterHub release). Each environment keeps its own hub state folder, so
one release never opens (or migrates) the other's database.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from . import cluster, common, keycloak, postgres
from .common import REPO_ROOT, STATE_DIR, VENV_BIN, V, step

PORT = 8000
URL = f"http://127.0.0.1:{PORT}"
API_URL = "http://127.0.0.1:8081/hub/api"
CLIENT_SECRET = "local-dev-only-secret"


def hub_bin() -> Path:
    """bin/ of the hub's Python environment: PRIMEHUB_HUB_VENV (relative to the repository), else .venv."""
    venv = os.environ.get("PRIMEHUB_HUB_VENV")
    return (REPO_ROOT / venv / "bin").resolve() if venv else VENV_BIN


def _home() -> Path:
    venv = hub_bin().parent
    return STATE_DIR / ("hub" if venv == VENV_BIN.parent else f"hub-{venv.name.lstrip('.')}")


HOME = _home()


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


def settings(**changes) -> dict:
    """The local hub's settings document (the chart renders the same keys from its values)."""
    document = {
        "keycloak": {
            "url": f"http://localhost:{keycloak.PORT}",
            "internalUrl": keycloak.URL,
            "realm": keycloak.REALM,
            "clientId": "jupyterhub",
            "rolePrefix": "",
            "scopeRequired": "",
            "logout": "auto",
        },
        "publicUrl": URL,
        "namespace": cluster.NAMESPACE,
        "extraConfigDir": str(Path(__file__).parent / "hub-extra-config"),
        # The node agent runs single-user servers as local processes, which reach the hub on loopback.
        "hub": {"bindUrl": URL, "hubBindUrl": "http://127.0.0.1:8081", "connectUrl": "http://127.0.0.1:8081"},
        "singleuser": {
            # The node agent runs servers as the user running the stack, often root in CI.
            "cmd": ["jupyterhub-singleuser", "--allow-root"],
            "storage": {"capacity": "1Gi"},
        },
        # the demo catalog's hostPath datasets (crds/examples/datasets.yaml); the node agent mounts
        # nothing, so its git dataset is offered as a git-sync would serve it, to show its layout
        "primehub": {"datasetHostPaths": ["/srv/datasets/"], "gitSyncOnNodes": True},
        "config": {"JupyterHub": {"last_activity_interval": 60}},
    }
    document.update(changes)
    return document


def write_settings(document: dict, path: Path | None = None) -> Path:
    path = path or HOME / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def env(settings_path: Path | None = None) -> dict[str, str]:
    """The hub's environment: where its settings are, and its secrets."""
    chp_bin = common.tool("chp", V["CHP_VERSION"], "node_modules", ".bin")
    return {
        "PATH": f"{chp_bin}:{hub_bin()}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(cluster.KUBECONFIG),
        "PRIMEHUB_SETTINGS": str(settings_path or HOME / "settings.json"),
        "PRIMEHUB_KEYCLOAK_CLIENT_SECRET": CLIENT_SECRET,
        "PRIMEHUB_LOCAL_ADMIN_TOKEN": admin_token(),
        "JUPYTERHUB_CRYPT_KEY": _secret("crypt-key"),
        "CONFIGPROXY_AUTH_TOKEN": _secret("proxy-token"),
    }


def ready() -> bool:
    return common.http_ok(f"{API_URL}/")


def argv() -> list[str]:
    return [str(hub_bin() / "jupyterhub"), "-f", str(REPO_ROOT / "hub-config" / "jupyterhub_config.py")]


def _runs_our_environment(pid: int) -> bool:
    """Whether the running hub is the jupyterhub of the environment asked for (not .venv's for test-next)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(hub_bin() / "jupyterhub").encode() in cmdline


def start(extra_env: dict[str, str] | None = None) -> None:
    pid = common.pid_of("hub")
    if pid and _runs_our_environment(pid) and ready():
        return
    common.stop("hub", grace=15)
    common.stop("proxy")
    common.ensure_ports_free({8000: "the hub's proxy", 8001: "the proxy's API", 8081: "the hub"})
    step(f"starting the hub on {URL} with hub-config/ ({hub_bin().parent.name})")
    document = settings()
    if os.environ.get("PRIMEHUB_LOCAL_DB") == "postgres":
        # asked for: the hub database on a PostgreSQL server of the stack's own, kept across restarts
        document["hub"]["dbUrl"] = postgres.Postgres().start(fresh=False).url
    write_settings(document)
    common.start("hub", argv(), env={**env(), **(extra_env or {})}, cwd=HOME)
    common.wait_for(ready, 60, "hub", "hub")


def stop() -> None:
    common.stop("hub", grace=15)
