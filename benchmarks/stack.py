"""What the benchmarks need from the shared local stack, touching only their own objects.

- Kubernetes: namespace `bench` (custom resources, pods), a watch on its pods and events;
- Keycloak: users, groups and grant roles named `bench-...` (roles `it:bench-...` etc.) in realm
  `primehub`, and a temporary confidential client `bench-hub` whose redirect URI is the bench hub;
- bench hubs: our own JupyterHub processes on ports of our own, state in .local-stack/bench/.
The lead's hub, namespace `primehub` and the realm's own users and groups are never touched.
"""

from __future__ import annotations

import concurrent.futures
import html
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".local-stack" / "bench"
KUBECONFIG = REPO / ".local-stack" / "kubeconfig"
NAMESPACE = "bench"
# 9000 is taken by Keycloak 26's management interface (health/metrics) on the local stack.
PROXY_PORT, PROXY_API_PORT, HUB_PORT = 9080, 9001, 9081
PUBLIC_URL = f"http://127.0.0.1:{PROXY_PORT}"
HUB_API = f"http://127.0.0.1:{HUB_PORT}/hub/api"
PROXY_API = f"http://127.0.0.1:{PROXY_API_PORT}"
KC_URL = "http://127.0.0.1:8180"
KC_BROWSER_URL = "http://localhost:8180"
REALM = "primehub"
CLIENT_ID = "bench-hub"
PREFIX = "bench-"
PASSWORD = "bench-pw-local-only"

sys.path.insert(0, str(REPO / "scripts"))


def log(msg: str) -> None:
    print(f"--> [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # as the servers themselves bind: connections in TIME_WAIT do not make the port busy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def rss_mib(pid: int) -> float | None:
    """Resident memory of one process (VmRSS), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


# --- Kubernetes --------------------------------------------------------------------------


class Kube:
    def __init__(self):
        from kubernetes import client, config

        self.client = client
        self.api_client = config.new_client_from_config(str(KUBECONFIG))
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    def ensure_namespace(self) -> None:
        from kubernetes.client.rest import ApiException

        try:
            ns = self.core.read_namespace(NAMESPACE)
            if ns.status.phase == "Terminating":
                log("namespace bench is still terminating from an earlier run; waiting")
                self._wait(lambda: not self._namespace_exists(), 180, "old namespace bench gone")
                raise ApiException(status=404)
        except ApiException as e:
            if e.status != 404:
                raise
            self.core.create_namespace(
                {"metadata": {"name": NAMESPACE, "labels": {"bench.primehub.io/owner": "benchmarks"}}}
            )
        # pods are refused until the controller manager has made the default ServiceAccount
        self._wait(lambda: self._has_default_sa(), 60, "default ServiceAccount in namespace bench")

    def _namespace_exists(self) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self.core.read_namespace(NAMESPACE)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def _has_default_sa(self) -> bool:
        return any(sa.metadata.name == "default" for sa in self.core.list_namespaced_service_account(NAMESPACE).items)

    @staticmethod
    def _wait(check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.3)
        raise TimeoutError(f"{what}: not after {timeout:.0f}s")

    def create_objects(self, objects: list[dict], workers: int = 6) -> float:
        """Create custom resources in namespace bench; returns seconds taken."""
        from kubernetes.client.rest import ApiException

        from primehub_hub.resources import GROUP, PLURALS, VERSION

        def create(obj):
            for attempt in range(5):
                try:
                    self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURALS[obj["kind"]], obj)
                    return
                except ApiException as e:
                    if e.status == 409:
                        return
                    if e.status in (429, 500, 503, 504) and attempt < 4:
                        time.sleep(0.5 * (attempt + 1))
                        continue
                    raise

        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(create, objects))
        return time.monotonic() - t

    def delete_objects(self, tag: str | None = None) -> None:
        from primehub_hub.resources import GROUP, PLURALS, VERSION

        from .fixtures import LABEL

        selector = f"{LABEL}={tag}" if tag else LABEL
        for plural in PLURALS.values():
            self.custom.delete_collection_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, plural, label_selector=selector
            )

    def count_objects(self, tag: str) -> int:
        from primehub_hub.resources import GROUP, PLURALS, VERSION

        from .fixtures import LABEL

        return sum(
            len(
                self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, p, label_selector=f"{LABEL}={tag}"
                )["items"]
            )
            for p in PLURALS.values()
        )

    def pods(self, selector: str = "") -> list:
        return [
            p
            for p in self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
            if not p.metadata.deletion_timestamp
        ]

    def delete_all_pods(self) -> None:
        self.core.delete_collection_namespaced_pod(NAMESPACE, grace_period_seconds=0)

    def wait_no_pods(self, timeout: float = 120) -> None:
        self._wait(lambda: not self.core.list_namespaced_pod(NAMESPACE).items, timeout, "all bench pods gone")

    def delete_namespace(self) -> None:
        from kubernetes.client.rest import ApiException

        try:
            self.core.delete_namespace(NAMESPACE)
        except ApiException as e:
            if e.status != 404:
                raise


class Watch:
    """Pods and events of namespace bench, with the wall-clock time this process saw each change."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self.lock = threading.Lock()
        self.pods: dict[str, dict] = {}
        self.events: list[dict] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in ("pods", "events")]

    def start(self) -> "Watch":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        with self.lock:
            self.pods.clear()
            self.events.clear()

    def _run(self, kind: str) -> None:
        from kubernetes import watch

        method = self.kube.core.list_namespaced_pod if kind == "pods" else self.kube.core.list_namespaced_event
        version = None  # where the next watch starts: each one resumes where the last one ended
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                args = {"resource_version": version} if version else {}
                for ev in w.stream(method, NAMESPACE, timeout_seconds=5, _request_timeout=10, **args):
                    now = time.time()
                    self._seen(kind, ev["type"], ev["object"], now)
                    if self._stop.is_set():
                        w.stop()
                        break
                # Without a version every watch would first replay every object as ADDED: with case
                # 7's thousand pods that cost this process most of a core, beside the hub it measures.
                version = w.resource_version
            except Exception as e:  # the stream may end or the server may hiccup (410: too old): watch anew
                version = None
                if not self._stop.is_set():
                    log(f"watch of {kind} restarted: {e}")
                    time.sleep(0.5)

    def _seen(self, kind: str, etype: str, obj, now: float) -> None:
        with self.lock:
            if kind == "pods":
                name = obj.metadata.name
                entry = self.pods.setdefault(
                    name, {"user": (obj.metadata.labels or {}).get("hub.jupyter.org/username"), "first_seen": now}
                )
                phase = obj.status.phase if obj.status else None
                if phase == "Running" and "running" not in entry:
                    entry["running"] = now
                if obj.spec and obj.spec.node_name and "scheduled" not in entry:
                    entry["scheduled"] = now
                if etype == "DELETED":
                    entry["deleted"] = now
                entry["group"] = (obj.metadata.labels or {}).get("primehub.io/group")
            else:
                if etype != "ADDED" or obj.reason != "FailedScheduling":
                    return
                stamp = obj.event_time or obj.first_timestamp or obj.metadata.creation_timestamp
                self.events.append(
                    {
                        "pod": obj.involved_object.name,
                        "seen": now,
                        "message": obj.message,
                        "stamp": stamp.timestamp() if stamp else None,
                    }
                )

    def first_failed_scheduling(self, pod: str) -> dict | None:
        with self.lock:
            found = [e for e in self.events if e["pod"] == pod]
        return min(found, key=lambda e: e["seen"]) if found else None

    def snapshot(self) -> dict[str, dict]:
        with self.lock:
            return {k: dict(v) for k, v in self.pods.items()}


# --- Keycloak ----------------------------------------------------------------------------


def wait_stack(timeout: float = 300) -> None:
    """Other tests on the shared stack restart the API server and Keycloak on purpose: wait them out."""
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(REPO / ".local-stack" / "pki" / "ca.crt"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("https://127.0.0.1:6443/readyz", context=ctx, timeout=5) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        time.sleep(2)
    wait_keycloak(max(10.0, deadline - time.monotonic()))


def wait_keycloak(timeout: float = 240) -> None:
    """The shared Keycloak may be restarting (other tests stop it on purpose): wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{KC_URL}/realms/{REALM}/.well-known/openid-configuration", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise RuntimeError(f"Keycloak at {KC_URL} is not answering; start it (see docs/benchmarks.md)")


class Realm:
    """Bench objects in realm primehub, through python-keycloak with the bootstrap admin."""

    def __init__(self):
        from keycloak import KeycloakAdmin

        wait_keycloak()
        self.kc = KeycloakAdmin(
            server_url=KC_URL,
            username="admin",
            password="admin",
            realm_name=REALM,
            user_realm_name="master",
            pool_maxsize=16,
        )
        self.client_secret = secrets.token_hex(16)

    def ensure_client(self) -> None:
        """The bench hub's own client: our redirect URI, a service account that may read users and
        groups (the roles the hub's client has), and no role claims in tokens (full scope off), so a
        user holding thousands of grants still gets a token that fits an HTTP header."""
        old = self.kc.get_client_id(CLIENT_ID)
        if old:
            self.kc.delete_client(old)
        self.kc.create_client(
            {
                "clientId": CLIENT_ID,
                "name": "Benchmarks (temporary)",
                "enabled": True,
                "protocol": "openid-connect",
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": self.client_secret,
                "standardFlowEnabled": True,
                "directAccessGrantsEnabled": False,
                "serviceAccountsEnabled": True,
                "fullScopeAllowed": False,
                "redirectUris": [f"{PUBLIC_URL}/hub/oauth_callback"],
                "attributes": {"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": f"{PUBLIC_URL}/*"},
            }
        )
        uuid = self.kc.get_client_id(CLIENT_ID)
        sa = self.kc.get_client_service_account_user(uuid)
        mgmt = self.kc.get_client_id("realm-management")
        roles = [
            r for r in self.kc.get_client_roles(mgmt) if r["name"] in ("view-users", "query-users", "query-groups")
        ]
        self.kc.assign_client_role(sa["id"], mgmt, roles)
        # with full scope off, a role reaches the token only through the client's scope mappings
        self.kc.connection.raw_post(
            f"admin/realms/{REALM}/clients/{uuid}/scope-mappings/clients/{mgmt}", data=json.dumps(roles)
        )

    def _import(self, payload: dict) -> None:
        # Keycloak's dev database (H2) gives up on table locks held by concurrent requests after a
        # few seconds; chunks are small and SKIP makes a retried chunk harmless
        for attempt in range(5):
            try:
                self.kc.partial_import_realm(REALM, {"ifResourceExists": "SKIP", **payload})
                return
            except Exception as e:
                if attempt == 4:
                    raise
                log(f"Keycloak partial import failed ({str(e)[:80]}); retrying")
                wait_keycloak()
                time.sleep(1 + attempt)

    def import_fixture(self, grants: dict[str, list[str]], users: list[dict], attributes: dict | None = None) -> float:
        """Roles, groups with their grants and attributes, and users, by partial imports in chunks."""
        t = time.monotonic()
        attributes = attributes or {}
        roles = sorted({r for rs in grants.values() for r in rs})
        # small chunks: Keycloak's dev database (H2) times out on table locks with large ones
        for i in range(0, len(roles), 500):
            self._import({"roles": {"realm": [{"name": r} for r in roles[i : i + 500]]}})
        t_roles = time.monotonic() - t
        groups = [
            {"name": g, "path": f"/{g}", "realmRoles": rs, "attributes": attributes.get(g, {})}
            for g, rs in grants.items()
        ]
        for i in range(0, len(groups), 20):
            self._import({"groups": groups[i : i + 20]})
        t_groups = time.monotonic() - t - t_roles
        reps = []
        for u in users:
            rep = {
                "username": u["username"],
                "enabled": True,
                "email": f"{u['username']}@bench.invalid",
                "emailVerified": True,
                "firstName": "Bench",
                "lastName": u["username"],
                "groups": [f"/{g}" for g in u["groups"]],
            }
            if u.get("password"):
                rep["credentials"] = [{"type": "password", "value": PASSWORD, "temporary": False}]
            reps.append(rep)
        for i in range(0, len(reps), 50):
            self._import({"users": reps[i : i + 50]})
            if len(reps) > 500 and (i // 50) % 10 == 9:
                log(f"Keycloak import: {i + 50} of {len(reps)} users")
        total = time.monotonic() - t
        log(
            f"Keycloak import: {len(roles)} roles {t_roles:.0f}s, {len(groups)} groups {t_groups:.0f}s, "
            f"{len(reps)} users {total - t_roles - t_groups:.0f}s"
        )
        return total

    def _parallel(self, fn, items, workers: int = 8) -> None:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(fn, items))

    def purge(self, prefix: str = PREFIX, client: bool = True) -> dict:
        """Delete the bench users, groups and grant roles whose names start with `prefix`
        (and the bench client); waits out a Keycloak restart."""
        assert prefix.startswith(PREFIX)
        for attempt in range(3):
            try:
                return self._purge(prefix, client)
            except Exception as e:
                if attempt == 2:
                    raise
                log(f"Keycloak purge failed ({e}); waiting for Keycloak and trying again")
                wait_keycloak()

    def _purge(self, prefix: str, client: bool) -> dict:
        users = [
            u
            for u in self.kc.get_users({"search": prefix, "briefRepresentation": True})
            if u["username"].startswith(prefix)
        ]
        self._parallel(lambda u: self.kc.delete_user(u["id"]), users)
        groups = [
            g
            for g in self.kc.get_groups({"search": prefix, "briefRepresentation": True, "max": 100000})
            if g["name"].startswith(prefix)
        ]
        self._parallel(lambda g: self.kc.delete_group(g["id"]), groups)
        grant = re.compile(r"^(it|img|ds|ds:rw):" + re.escape(prefix))
        roles = [r["name"] for r in self.kc.get_realm_roles(search_text=prefix) if grant.match(r["name"])]
        self._parallel(self._delete_role, roles)
        if client:
            uuid = self.kc.get_client_id(CLIENT_ID)
            if uuid:
                self.kc.delete_client(uuid)
        return {"users": len(users), "groups": len(groups), "roles": len(roles)}

    def _delete_role(self, name: str) -> None:
        # role names hold ':' which python-keycloak puts into the path as is; Keycloak accepts it
        self.kc.connection.raw_delete(f"admin/realms/{REALM}/roles/{requests.utils.quote(name, safe='')}")

    def set_group_attributes(self, name: str, attributes: dict) -> None:
        group = self.kc.get_group_by_path(f"/{name}")
        group["attributes"] = attributes
        self.kc.update_group(group["id"], group)


# --- bench hubs ----------------------------------------------------------------------------


def _secret(folder: Path, name: str) -> str:
    f = folder / name
    if not f.exists():
        f.write_text(secrets.token_hex(32))
        f.chmod(0o600)
    return f.read_text().strip()


class BenchHub:
    """One JupyterHub process of ours, from hub-config/jupyterhub_config.py plus benchmarks/hub_extra/."""

    def __init__(
        self,
        variant: str,
        client_secret: str,
        profiles: Path | None = None,
        start_timeout: int = 30,
        db_url: str | None = None,
        stand_ins: bool = False,
    ):
        self.variant = variant
        # its pods ask the node agent for an in-agent stand-in instead of a process (case 7)
        self.stand_ins = stand_ins
        self.db_url = db_url  # None: SQLite in the hub's folder
        self.folder = STATE / f"hub-{variant}"
        self.client_secret = client_secret
        self.profiles = profiles
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(24)
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"

    @property
    def proxy_token(self) -> str:
        return _secret(self.folder, "proxy-token")

    @property
    def log_path(self) -> Path:
        return self.folder / "hub.log"

    def env(self) -> dict[str, str]:
        from localstack import hub as lhub

        settings = lhub.settings(
            publicUrl=PUBLIC_URL,
            namespace=NAMESPACE,
            extraConfigDir=str(REPO / "benchmarks" / "hub_extra"),
            singleuser={
                "cmd": [str(REPO / ".venv" / "bin" / "python"), str(REPO / "benchmarks" / "fake_singleuser.py")],
                # no home PVC: the stand-in servers need none, and 100 claims would measure the provisioner
                "storage": {"homeVolume": False},
            },
        )
        settings["keycloak"]["clientId"] = CLIENT_ID
        env = dict(os.environ)
        env.update(lhub.env(lhub.write_settings(settings, self.folder / "settings.json")))
        env.update(
            {
                "PRIMEHUB_KEYCLOAK_CLIENT_SECRET": self.client_secret,
                "JUPYTERHUB_CRYPT_KEY": _secret(self.folder, "crypt-key"),
                "CONFIGPROXY_AUTH_TOKEN": _secret(self.folder, "proxy-token"),
                "BENCH_REPO": str(REPO),
                "BENCH_ADMIN_TOKEN": self.token,
                "BENCH_HUB_PORT": str(HUB_PORT),
                "BENCH_PROXY_PORT": str(PROXY_PORT),
                "BENCH_PROXY_API_PORT": str(PROXY_API_PORT),
                "BENCH_SPAWNER": self.variant,
                "BENCH_START_TIMEOUT": str(self.start_timeout),
            }
        )
        env.pop("PRIMEHUB_LOCAL_ADMIN_TOKEN", None)
        if self.profiles:
            env["BENCH_PROFILES"] = str(self.profiles)
        if self.db_url:
            env["BENCH_DB_URL"] = self.db_url
        if self.stand_ins:
            env["BENCH_STAND_IN"] = "1"
        return env

    def code_version(self) -> str:
        """The commit the hub runs (hub-config/ is imported at start; the lead may commit meanwhile)."""
        git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
        dirty = git("status", "--porcelain", "hub-config")
        return git("rev-parse", "--short", "HEAD") + (" + uncommitted hub-config changes" if dirty else "")

    def start(self, fresh: bool = True) -> None:
        """Start the hub; `fresh=False` keeps its database, as a restart of a running hub does."""
        self.version = self.code_version()
        for port in (PROXY_PORT, PROXY_API_PORT, HUB_PORT):
            if not port_free(port):
                raise RuntimeError(f"port {port} is in use: is another bench hub still running?")
        self.folder.mkdir(parents=True, exist_ok=True)
        # a fresh database each time: no servers or users left over from an earlier run
        for name in ("jupyterhub.sqlite", "jupyterhub-proxy.pid") if fresh else ("jupyterhub-proxy.pid",):
            (self.folder / name).unlink(missing_ok=True)
        env = self.env()
        logf = open(self.log_path, "ab")
        logf.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} bench hub ({self.variant})\n".encode())
        logf.flush()
        self.started_at = time.monotonic()  # a restart's timings start here (case 7)
        self.proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "jupyterhub"), "-f", str(REPO / "hub-config" / "jupyterhub_config.py")],
            cwd=self.folder,
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench hub exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if (
                    requests.get(f"{HUB_API}/", timeout=2).status_code == 200
                    and requests.get(f"{PUBLIC_URL}/hub/api/", timeout=2).status_code == 200
                ):
                    self.stats()  # starts the loop-stall task
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"bench hub not ready in 90 s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM our hub's process group (the hub and the proxy it started), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass
        # the proxy is in the same process group; make sure its port is free for the next hub
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(port_free(p) for p in (PROXY_PORT, PROXY_API_PORT, HUB_PORT)):
            time.sleep(0.2)

    # --- REST -------------------------------------------------------------------------

    def api(self, method: str, path: str, body=None, timeout: float = 30) -> requests.Response:
        return self.session.request(method, HUB_API + path, json=body, timeout=timeout)

    def stats(self, since: int = 0) -> dict:
        r = self.session.get(f"http://127.0.0.1:{HUB_PORT}/hub/bench/stats", params={"since": since}, timeout=30)
        r.raise_for_status()
        return r.json()

    def stats_action(self, action: str) -> None:
        self.session.post(
            f"http://127.0.0.1:{HUB_PORT}/hub/bench/stats", params={"action": action}, timeout=30
        ).raise_for_status()

    def last_id(self) -> int:
        return self.stats(since=1 << 62)["last_id"]

    def spawner_counts(self) -> dict:
        """{active, ready, pending} over the hub's spawners in memory (cheap: no database, no JSON per user)."""
        return self.stats(since=1 << 62)["servers"]

    def rss_mib(self) -> dict:
        """Resident memory (VmRSS, MiB) of the hub process and of the proxy it started."""
        out = {"hub": rss_mib(self.proc.pid) if self.proc and self.proc.poll() is None else None}
        try:
            out["proxy"] = rss_mib(int((self.folder / "jupyterhub-proxy.pid").read_text()))
        except (OSError, ValueError):
            out["proxy"] = None
        return out

    def ensure_users(self, names: list[str]) -> None:
        for i in range(0, len(names), 200):
            r = self.api("POST", "/users", {"usernames": names[i : i + 200]})
            if r.status_code not in (201, 409):
                raise RuntimeError(f"creating hub users: {r.status_code} {r.text[:200]}")

    def active_users(self) -> list[dict]:
        """Users with a pending or running server (the REST API pages by 200)."""
        out: list[dict] = []
        while True:
            page = self.api("GET", f"/users?state=active&limit=200&offset={len(out)}", timeout=60).json()
            out += page
            if len(page) < 200:
                return out

    def server(self, user: str) -> dict | None:
        r = self.api("GET", f"/users/{user}")
        r.raise_for_status()
        return (r.json().get("servers") or {}).get("")

    def last_error(self, user: str) -> str:
        """The hub's last error line about `user`, to say why a spawn failed."""
        lines = [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if line.startswith("[E ") and user in line
        ]
        return lines[-1].split("] ", 1)[-1][:300] if lines else "no error line in the hub log"

    def wait_ready(self, user: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(user)
            if server and server.get("ready"):
                return
            if server is None:
                raise RuntimeError(f"{user}'s server stopped while starting: {self.last_error(user)}")
            time.sleep(0.1)
        raise TimeoutError(f"{user}'s server not ready after {timeout}s; see {self.log_path}")

    def stop_server(self, user: str, timeout: float = 60) -> None:
        r = self.api("DELETE", f"/users/{user}/server")
        if r.status_code not in (202, 204, 400, 404):
            raise RuntimeError(f"stopping {user}: {r.status_code} {r.text[:200]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server(user) is None:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{user}'s server did not stop in {timeout}s")

    def stop_servers(self, users: list[str], kube: Kube, timeout: float = 180) -> None:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda u: self.api("DELETE", f"/users/{u}/server", timeout=60), users))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = [u["name"] for u in self.active_users() if u["name"] in set(users)]
            if not busy and not kube.pods():
                return
            time.sleep(1)
        log(f"servers still up after {timeout}s; deleting bench pods directly")
        kube.delete_all_pods()


class BrowserSession(requests.Session):
    """A person's browser on the bench hub: logs in through Keycloak's form, and again whenever
    the hub sends it back there (the shared Keycloak may have been restarted, ending sessions)."""

    def __init__(self, username: str):
        super().__init__()
        self.username = username

    def request(self, method, url, *args, **kwargs):
        r = super().request(method, url, *args, **kwargs)
        if r.url.startswith(KC_BROWSER_URL) and "kc-form-login" in r.text:
            self.login_form(r)
            r = super().request(method, url, *args, **kwargs)
        return r

    def login_form(self, r: requests.Response) -> requests.Response:
        # Keycloak marks its cookies Secure; browsers send those to http://localhost, requests does not
        for cookie in self.cookies:
            cookie.secure = False
        m = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', r.text) or re.search(
            r'action="([^"]*login-actions/authenticate[^"]*)"', r.text
        )
        if not m:
            raise RuntimeError(f"no Keycloak login form at {r.url} ({r.status_code})")
        done = super().request(
            "POST",
            html.unescape(m.group(1)),
            data={"username": self.username, "password": PASSWORD, "credentialId": ""},
            timeout=60,
        )
        if done.status_code != 200 or not done.url.startswith(PUBLIC_URL):
            raise RuntimeError(f"login of {self.username} ended at {done.url} ({done.status_code}): {done.text[:300]}")
        return done


def browser_login(username: str) -> BrowserSession:
    """Log in to the bench hub as a person would: hub -> Keycloak login form -> back to the hub."""
    s = BrowserSession(username)
    r = requests.Session.request(s, "GET", f"{PUBLIC_URL}/hub/oauth_login", params={"next": "/hub/home"}, timeout=30)
    s.login_form(r)
    return s


def stack_epoch() -> tuple:
    """Process ids of the shared servers a measurement depends on: a change means one was restarted."""
    out = []
    for name in ("kube-apiserver", "keycloak", "kube-scheduler", "node-agent", "etcd"):
        try:
            out.append((REPO / ".local-stack" / "pids" / f"{name}.pid").read_text().strip())
        except OSError:
            out.append(None)
    return tuple(out)


def xsrf(session: requests.Session) -> str:
    values = [c.value for c in session.cookies if c.name == "_xsrf" and c.domain.startswith("127.0.0.1")]
    return values[-1] if values else ""
