"""Keycloak from the Maven Central distribution, in dev mode (embedded H2 file database) on loopback.

The cached distribution stays pristine: each state folder gets its own copy, because Keycloak writes
its build and database into its home folder.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

from . import common
from .common import REPO_ROOT, STATE_DIR, V, step

PORT = 8180
URL = f"http://127.0.0.1:{PORT}"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
REALM = "primehub"
# What Keycloak imports here: the realm plus the demo overlay (demo users, the client secret, the
# password grant), written by demo_realm_file(); keycloak-realm/primehub-realm.json has none of them.
REALM_FILE = STATE_DIR / "primehub-realm-demo.json"
HOME = STATE_DIR / "keycloak"


def demo_realm_file() -> Path:
    import sys

    sys.path.insert(0, str(REPO_ROOT / "scripts" / "realm"))
    import realmlib

    return realmlib.write_demo_realm(REALM_FILE)


def java_home() -> str | None:
    """Keycloak 26.4 supports Java 17 and 21; the machine's default Java (17) is used unless
    JAVA_HOME names another."""
    return os.environ.get("JAVA_HOME")


def ready() -> bool:
    return common.http_ok(f"{URL}/realms/{REALM}/.well-known/openid-configuration")


def start(fresh: bool = False) -> None:
    demo_realm_file()  # also when Keycloak already runs: the tests read the demo users from it
    if not fresh and common.pid_of("keycloak") and ready():
        return
    common.stop("keycloak")
    common.ensure_ports_free({PORT: "Keycloak"})
    dist = common.tool("keycloak", V["KEYCLOAK_VERSION"])
    if fresh and HOME.exists():
        shutil.rmtree(HOME)
    if not (HOME / "bin" / "kc.sh").exists():
        step(f"preparing keycloak {V['KEYCLOAK_VERSION']} in {HOME}")
        shutil.copytree(dist, HOME, symlinks=True)
    imports = HOME / "data" / "import"
    imports.mkdir(parents=True, exist_ok=True)
    shutil.copy(REALM_FILE, imports / "primehub-realm.json")
    step(f"starting keycloak on {URL} (realm {REALM} imported on first start; 30-90 s)")
    env = {
        "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JAVA_OPTS_KC_HEAP": "-Xms128m -Xmx768m",
    }
    jh = java_home()
    if jh:
        env["JAVA_HOME"] = jh
    common.start(
        "keycloak",
        [
            str(HOME / "bin" / "kc.sh"),
            "start-dev",
            "--http-host=127.0.0.1",
            f"--http-port={PORT}",
            # Browsers use localhost, the hub uses 127.0.0.1: two addresses as in a real cluster.
            # Pinning the public hostname keeps one token issuer; the back channel answers on any address.
            f"--hostname=http://localhost:{PORT}",
            "--hostname-backchannel-dynamic=true",
            "--import-realm",
            "--health-enabled=true",
            "--log-level=info",
        ],
        env=env,
    )
    common.wait_for(ready, 240, "keycloak", "keycloak")


def stop() -> None:
    common.stop("keycloak", grace=20)


def password_token(
    username: str, password: str, client_id: str = "jupyterhub", client_secret: str = "local-dev-only-secret"
) -> dict:
    """A token for a demo user through the password grant (direct access grants are on locally)."""
    data = urllib.parse.urlencode(
        {
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": client_secret,
            "username": username,
            "password": password,
            "scope": "openid",
        }
    ).encode()
    req = urllib.request.Request(f"{URL}/realms/{REALM}/protocol/openid-connect/token", data=data)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())
