"""The hub's settings: one document, written by the Helm chart and by the local stack alike.

`jupyterhub_config.py` reads the document named by $PRIMEHUB_SETTINGS (a JSON file) and hands it
to `apply_settings`, so a hub in a cluster and the local stack's hub are configured by the same
code from the same kind of document. The environment carries secrets only:
PRIMEHUB_KEYCLOAK_CLIENT_SECRET here, and JupyterHub's own JPY_COOKIE_SECRET,
JUPYTERHUB_CRYPT_KEY and CONFIGPROXY_AUTH_TOKEN. The document's keys, with their defaults, are
`DEFAULTS` below; docs/architecture.md describes them.

`config` passes any traitlet through, as zero-to-jupyterhub's `hub.config` does:
`{"PrimeHubSpawner": {"explicit_zero_requests": true}}` sets that trait without writing Python.
It is applied after everything else, so it wins over the other keys.
"""

import copy
import json
import os
import sys
from dataclasses import dataclass, field
from urllib.parse import urlparse

SETTINGS_ENV = "PRIMEHUB_SETTINGS"
CLIENT_SECRET_ENV = "PRIMEHUB_KEYCLOAK_CLIENT_SECRET"

# None means "leave JupyterHub's or KubeSpawner's own default".
DEFAULTS = {
    # scopeRequired: PrimeHub's login gate (a realm role); logout: auto | oidc (Keycloak 18+) | legacy
    "keycloak": {
        "url": "",
        "internalUrl": "",
        "realm": "primehub",
        "clientId": "jupyterhub",
        "rolePrefix": "",
        "scopeRequired": "",
        "logout": "auto",
    },
    "publicUrl": "",
    "namespace": "default",
    # *.py files run after these settings, in name order (the chart's hub.extraConfig); a relative
    # path is taken from the settings document's own folder
    "extraConfigDir": "",
    "hub": {
        "baseUrl": None,
        "bindUrl": None,
        "hubBindUrl": None,
        "connectUrl": None,
        "dbUrl": None,
        "concurrentSpawnLimit": None,
        "activeServerLimit": None,
        "debug": False,
    },
    # The chart runs the proxy in its own Deployment (apiUrl set); without it the hub starts one.
    "proxy": {"apiUrl": None},
    "singleuser": {
        "cmd": ["jupyterhub-singleuser"],
        "defaultUrl": "",
        # PrimeHub's 20 minutes (large GPU images pull slowly); unschedulable pods fail fast regardless
        "startTimeout": 1200,
        # the user's server shuts down kernels idle this long (seconds; 0 never)
        "kernelCullTimeout": 3600,
        "uid": None,
        # jupyter/docker-stacks images run as uid 1000 in group 100; the group owns mounted volumes
        "fsGid": 100,
        "allowPrivilegeEscalation": None,
        # Kubernetes' PodSecurityContext and SecurityContext of the user's pod and container, in API field
        # names; KubeSpawner lays them over uid, fsGid and allowPrivilegeEscalation key by key (and a
        # container's runAsUser wins over the pod's). The chart's defaults pass Pod Security Admission
        # restricted; primehub.grantSudo takes their non-root settings out (spawn_habits.py).
        "podSecurityContext": {},
        "containerSecurityContext": {},
        "commonLabels": {},
        "extraLabels": {},
        "extraEnv": {},
        "priorityClassName": "",
        # homePvcNaming: primehub = claim-<name escaped as PrimeHub did>, kubespawner = KubeSpawner 7's
        # names; extraVolumes/extraVolumeMounts: zero-to-jupyterhub's, added to every user pod
        "storage": {
            "homeVolume": True,
            "capacity": "1Gi",
            "homeMountPath": "/home/jovyan",
            "storageClass": "",
            "homePvcNaming": "primehub",
            "extraVolumes": [],
            "extraVolumeMounts": [],
        },
    },
    "primehub": {
        "schedulingFailureGrace": None,
        "mountFailureGrace": None,
        "imagePullFailureGrace": None,
        "sharedVolumeStorageClass": "",
        "sharedVolumeAccessModes": None,
        "gitSyncHostRoot": "",
        # a git-sync fills gitSyncHostRoot on every node (the chart's gitSync.enabled or gitSync.external);
        # without one, git datasets are left out with a notice instead of mounting empty folders
        "gitSyncOnNodes": False,
        # PrimeHub's habits in the user's pod (spawn_habits.py)
        "shmSize": "limit",
        "grantSudo": False,
        "startWrapper": True,
        "startScriptsConfigMap": "",
        # node folders hostPath datasets may mount; empty: no hostPath dataset is mounted
        "datasetHostPaths": [],
    },
    "cull": {"enabled": False},
    "config": {},
}


class SettingsError(ValueError):
    pass


# Objects taken whole, not key by key: a security context given replaces the default one.
_FREE_FORM = (
    "config",
    "commonLabels",
    "extraLabels",
    "extraEnv",
    "cull",
    "podSecurityContext",
    "containerSecurityContext",
)


def _merge(defaults, given, where=""):
    """`given` over `defaults`, key by key; a key the defaults do not know is refused (a typo)."""
    if not isinstance(given, dict):
        raise SettingsError(f"settings{where or ''} must be an object, not {type(given).__name__}")
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise SettingsError(f"unknown setting {where}.{key}".replace(" .", " "))
        if isinstance(defaults[key], dict) and key not in _FREE_FORM:
            out[key] = _merge(defaults[key], value or {}, f"{where}.{key}")
        else:
            out[key] = value
    return out


def _host_paths(value):
    if not isinstance(value, list) or not all(isinstance(p, str) and p.startswith("/") for p in value):
        raise SettingsError("primehub.datasetHostPaths must be a list of absolute paths")
    return value


def _security_context(value, where):
    if value is None:
        return {}
    if not isinstance(value, dict) or any("_" in key for key in value):
        # KubeSpawner refuses snake_case keys only when the first pod is made; say it at start-up
        raise SettingsError(f"{where} must be an object in Kubernetes' field names (runAsUser, not run_as_user)")
    return value


def _command(value):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SettingsError("singleuser.cmd must be a command: a non-empty list of strings")
    return value


@dataclass
class Settings:
    """The document with its defaults filled in, and the one secret the package reads itself."""

    document: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS))
    client_secret: str = ""
    # the folder of the document, for relative paths in it
    folder: str = "."

    @classmethod
    def from_document(cls, document, env=None):
        env = os.environ if env is None else env
        merged = _merge(DEFAULTS, document or {})
        merged["singleuser"]["cmd"] = _command(merged["singleuser"]["cmd"])
        merged["primehub"]["datasetHostPaths"] = _host_paths(merged["primehub"]["datasetHostPaths"])
        for key in ("podSecurityContext", "containerSecurityContext"):
            merged["singleuser"][key] = _security_context(merged["singleuser"][key], f"singleuser.{key}")
        if not isinstance(merged["config"], dict) or not all(isinstance(v, dict) for v in merged["config"].values()):
            raise SettingsError("config must map class names to {trait: value} objects")
        # a secret file or `kubectl create secret --from-file` often ends in a newline
        return cls(document=merged, client_secret=env.get(CLIENT_SECRET_ENV, "").strip())

    @classmethod
    def load(cls, path=None, env=None):
        """The document at `path`, else at $PRIMEHUB_SETTINGS; only the defaults when neither is set."""
        env = os.environ if env is None else env
        path = path or env.get(SETTINGS_ENV, "")
        if not path:
            return cls.from_document({}, env)
        try:
            with open(path, encoding="utf-8") as f:
                document = json.load(f)
        except (OSError, ValueError) as e:
            raise SettingsError(f"cannot read the hub's settings from {path}: {e}") from None
        settings = cls.from_document(document, env)
        settings.folder = os.path.dirname(os.path.abspath(path))
        return settings

    # What other code asks for by name.
    @property
    def keycloak_url(self):
        return (self.document["keycloak"]["url"] or "").rstrip("/")

    @property
    def keycloak_internal_url(self):
        return (self.document["keycloak"]["internalUrl"] or "").rstrip("/") or self.keycloak_url

    @property
    def realm(self):
        return self.document["keycloak"]["realm"]

    @property
    def client_id(self):
        return self.document["keycloak"]["clientId"]

    @property
    def role_prefix(self):
        return self.document["keycloak"]["rolePrefix"] or ""

    @property
    def public_url(self):
        return (self.document["publicUrl"] or "").rstrip("/")

    @property
    def namespace(self):
        return self.document["namespace"] or "default"

    @property
    def extra_config_dir(self):
        folder = self.document["extraConfigDir"] or ""
        return os.path.normpath(os.path.join(self.folder, folder)) if folder else ""


def _set(section, name, value):
    """Set a trait unless the document leaves it to the library's default (None)."""
    if value is not None:
        setattr(section, name, value)


def _apply_login(c, s):
    from .auth import PrimeHubAuthenticator

    c.JupyterHub.authenticator_class = PrimeHubAuthenticator
    c.PrimeHubAuthenticator.keycloak_url = s.keycloak_url
    c.PrimeHubAuthenticator.keycloak_internal_url = s.keycloak_internal_url
    c.PrimeHubAuthenticator.realm = s.realm
    c.PrimeHubAuthenticator.client_id = s.client_id
    c.PrimeHubAuthenticator.client_secret = s.client_secret
    c.PrimeHubAuthenticator.public_url = s.public_url
    keycloak = s.document["keycloak"]
    # PrimeHub's scopeRequired: only holders of this realm role may log in
    c.PrimeHubAuthenticator.scope_required = keycloak["scopeRequired"] or ""
    # Keycloak before 18 takes redirect_uri on logout, later ones post_logout_redirect_uri; auto asks once
    c.PrimeHubAuthenticator.keycloak_logout_style = keycloak["logout"]


def _apply_hub(c, hub, proxy):
    _set(c.JupyterHub, "base_url", hub["baseUrl"])
    _set(c.JupyterHub, "bind_url", hub["bindUrl"])
    _set(c.JupyterHub, "hub_bind_url", hub["hubBindUrl"])
    _set(c.JupyterHub, "hub_connect_url", hub["connectUrl"])
    _set(c.JupyterHub, "db_url", hub["dbUrl"])
    _set(c.JupyterHub, "concurrent_spawn_limit", hub["concurrentSpawnLimit"])
    _set(c.JupyterHub, "active_server_limit", hub["activeServerLimit"])
    if hub["debug"]:
        c.JupyterHub.log_level = "DEBUG"
        c.Spawner.debug = True
    # User servers keep running across a hub restart (upgrade, eviction): KubeSpawner finds its
    # pods again on start.
    c.JupyterHub.cleanup_servers = False
    # The chart runs the proxy in its own Deployment so a hub restart does not drop the routes.
    c.ConfigurableHTTPProxy.should_start = not proxy["apiUrl"]
    _set(c.ConfigurableHTTPProxy, "api_url", proxy["apiUrl"])


def _apply_home(c, storage):
    if not storage["homeVolume"]:
        return
    c.KubeSpawner.storage_pvc_ensure = True
    # one home per user, shared by their named servers
    c.KubeSpawner.pvc_name_template = "claim-{username}"
    c.KubeSpawner.storage_capacity = storage["capacity"]
    c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]
    if storage["storageClass"]:
        c.KubeSpawner.storage_class = storage["storageClass"]
    c.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {"home": {"name": "home", "mountPath": storage["homeMountPath"]}}
    # "primehub": PrimeHub's claim-<escaped name>, so homes made by PrimeHub are found again
    c.PrimeHubSpawner.home_pvc_naming = storage["homePvcNaming"]


def _apply_extra_volumes(c, storage):
    """zero-to-jupyterhub's singleuser.storage.extraVolumes/extraVolumeMounts (e.g. its /dev/shm recipe)."""
    for trait, key in (("volumes", "extraVolumes"), ("volume_mounts", "extraVolumeMounts")):
        items = storage[key] or []
        if not items:
            continue
        current = c.KubeSpawner.get(trait)
        current = dict(current) if isinstance(current, dict) else {f"z2jh-{i}": v for i, v in enumerate(current or [])}
        for item in items:
            current[f"z2jh-{item['name']}"] = item
        setattr(c.KubeSpawner, trait, current)


def _apply_singleuser(c, s, su):
    from .spawner import PrimeHubSpawner

    c.JupyterHub.spawner_class = PrimeHubSpawner
    c.PrimeHubSpawner.role_prefix = s.role_prefix
    c.KubeSpawner.namespace = s.namespace
    c.KubeSpawner.cmd = su["cmd"]
    _set(c.KubeSpawner, "start_timeout", su["startTimeout"])
    if su["defaultUrl"]:
        c.Spawner.default_url = su["defaultUrl"]
    _set(c.KubeSpawner, "uid", su["uid"])
    _set(c.KubeSpawner, "fs_gid", su["fsGid"])
    _set(c.KubeSpawner, "allow_privilege_escalation", su["allowPrivilegeEscalation"])
    if su["podSecurityContext"]:
        c.KubeSpawner.pod_security_context = su["podSecurityContext"]
    if su["containerSecurityContext"]:
        c.KubeSpawner.container_security_context = su["containerSecurityContext"]
    # update() merges into KubeSpawner's default labels instead of replacing them: the chart's
    # NetworkPolicies select user pods by these labels.
    if su["commonLabels"]:
        c.KubeSpawner.common_labels.update(su["commonLabels"])
    if su["extraLabels"]:
        c.KubeSpawner.extra_labels.update(su["extraLabels"])
    if su["extraEnv"]:
        c.KubeSpawner.environment.update(su["extraEnv"])
    if su["priorityClassName"]:
        c.KubeSpawner.priority_class_name = su["priorityClassName"]
    _apply_home(c, su["storage"])
    _apply_extra_volumes(c, su["storage"])
    from .singleuser import jupyterhub_has_stop_on_pending_page, kernel_culling_args

    # the server shuts down its own idle kernels
    c.KubeSpawner.args = kernel_culling_args(su["kernelCullTimeout"])
    # the start page gets a Cancel button where JupyterHub has no Stop button of its own (before 6)
    c.JupyterHub.template_paths = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "hub_templates")]
    c.JupyterHub.template_vars = {"primehub_cancel_button": not jupyterhub_has_stop_on_pending_page()}


def _apply_primehub(c, ph):
    if ph["schedulingFailureGrace"] is not None:
        c.PrimeHubSpawner.scheduling_failure_grace = float(ph["schedulingFailureGrace"])
    if ph["mountFailureGrace"] is not None:
        c.PrimeHubSpawner.mount_failure_grace = float(ph["mountFailureGrace"])
    if ph["imagePullFailureGrace"] is not None:
        c.PrimeHubSpawner.image_pull_failure_grace = float(ph["imagePullFailureGrace"])
    _set(c.PrimeHubSpawner, "shared_volume_access_modes", ph["sharedVolumeAccessModes"])
    if ph["sharedVolumeStorageClass"]:
        c.PrimeHubSpawner.shared_volume_storage_class = ph["sharedVolumeStorageClass"]
    if ph["gitSyncHostRoot"]:
        c.PrimeHubSpawner.git_sync_host_root = ph["gitSyncHostRoot"]
    c.PrimeHubSpawner.git_sync_on_nodes = bool(ph["gitSyncOnNodes"])
    # /dev/shm, sudo, the start wrapper and the operator's start scripts (spawn_habits.py)
    c.PrimeHubSpawner.shm_size = ph["shmSize"] or ""
    c.PrimeHubSpawner.grant_sudo = bool(ph["grantSudo"])
    c.PrimeHubSpawner.start_wrapper = bool(ph["startWrapper"])
    c.PrimeHubSpawner.start_scripts_configmap = ph["startScriptsConfigMap"] or ""
    c.PrimeHubSpawner.dataset_host_path_prefixes = ph["datasetHostPaths"]


def local_hub_api_url(hub):
    """The hub's API as a process in the hub's own pod reaches it: over loopback, never the Service.

    JupyterHub hands managed services JUPYTERHUB_API_URL built from hub_connect_url, which in a
    cluster is the `hub` Service: it routes only to a Ready pod, and the services start before the
    hub pod is Ready, so the culler's first pass failed on every start. The hub's port is listening
    by then (JupyterHub binds it before starting its services), so loopback always answers.
    """
    bind = urlparse(hub["hubBindUrl"] or "http://127.0.0.1:8081")  # JupyterHub's hub_ip/hub_port defaults
    host = bind.hostname or ""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    port = bind.port or (443 if bind.scheme == "https" else 80)
    base = "/" + (hub["baseUrl"] or "").strip("/")
    return f"{bind.scheme}://{host}:{port}{base.rstrip('/')}/hub/api"


def _apply_cull(c, cull, hub):
    if not cull.get("enabled"):
        return

    def flag(key):
        return str(bool(cull[key])).lower()

    # A hub-managed service starts and stops with the hub and gets its API token from the hub
    # itself; the API address is given here (local_hub_api_url says why).
    command = [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--url={local_hub_api_url(hub)}",
        f"--timeout={cull['timeout']}",
        f"--cull-every={cull['every']}",
        f"--concurrency={cull['concurrency']}",
        f"--max-age={cull['maxAge']}",
        f"--cull-users={flag('users')}",
        f"--cull-admin-users={flag('adminUsers')}",
        f"--remove-named-servers={flag('removeNamedServers')}",
    ]
    scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    if cull["users"]:
        scopes.append("admin:users")
    c.JupyterHub.services.append({"name": "jupyterhub-idle-culler", "command": command})
    c.JupyterHub.load_roles.append(
        {
            "name": "jupyterhub-idle-culler",
            "description": "Stop idle servers (the chart's cull.* values)",
            "scopes": scopes,
            "services": ["jupyterhub-idle-culler"],
        }
    )


def _apply_passthrough(c, config):
    """`config`: {Class: {trait: value}}, set as given (the chart's hub.config)."""
    for class_name, traits in config.items():
        for name, value in traits.items():
            setattr(c[class_name], name, value)


def apply_settings(c, settings):
    """Configure JupyterHub, the authenticator and the spawner from the settings document."""
    doc = settings.document
    _apply_login(c, settings)
    _apply_hub(c, doc["hub"], doc["proxy"])
    _apply_singleuser(c, settings, doc["singleuser"])
    _apply_primehub(c, doc["primehub"])
    _apply_cull(c, doc["cull"], doc["hub"])
    _apply_passthrough(c, doc["config"])
