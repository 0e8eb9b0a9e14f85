"""Settings of the Helm chart, applied after hub-config/jupyterhub_config.py.

The chart mounts this file as 00-chart.py in PRIMEHUB_EXTRA_CONFIG_DIR, so it runs after the
repository's entry point and before the operator's hub.extraConfig snippets (which may override it).
Everything it sets comes from the JSON document the chart renders from its values
(PRIMEHUB_CHART_SETTINGS); the entry point stays the one file shared with the local stack.
"""

import json
import os
import sys

try:
    c  # noqa: B018 - the loader may hand us the config object as `c`...
except NameError:
    c = get_config()  # noqa: F821 - ...or only traitlets' get_config()

with open(os.environ["PRIMEHUB_CHART_SETTINGS"], encoding="utf-8") as f:
    _chart = json.load(f)

_hub = _chart["hub"]
c.JupyterHub.base_url = _hub["baseUrl"]
# The proxy runs in its own Deployment, so a hub restart (upgrade, eviction) neither drops the routes
# nor stops user servers: KubeSpawner finds its pods again on start.
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = _chart["proxy"]["apiUrl"]
c.JupyterHub.cleanup_servers = False
c.JupyterHub.hub_bind_url = _hub["bindUrl"]
c.JupyterHub.hub_connect_url = _hub["connectUrl"]
c.JupyterHub.db_url = _hub["dbUrl"]
c.JupyterHub.concurrent_spawn_limit = _hub["concurrentSpawnLimit"]
c.JupyterHub.active_server_limit = _hub["activeServerLimit"]
if _hub["debug"]:
    c.JupyterHub.log_level = "DEBUG"
    c.Spawner.debug = True

_su = _chart["singleuser"]
c.KubeSpawner.start_timeout = _su["startTimeout"]
if _su["defaultUrl"]:
    c.Spawner.default_url = _su["defaultUrl"]
c.KubeSpawner.uid = _su["uid"]
c.KubeSpawner.fs_gid = _su["fsGid"]
c.KubeSpawner.allow_privilege_escalation = _su["allowPrivilegeEscalation"]
# update() merges into KubeSpawner's defaults and into whatever the entry point set, instead of
# replacing them: the NetworkPolicies select user pods by these labels.
c.KubeSpawner.common_labels.update(_su["commonLabels"])
if _su["extraLabels"]:
    c.KubeSpawner.extra_labels.update(_su["extraLabels"])
if _su["extraEnv"]:
    c.KubeSpawner.environment.update(_su["extraEnv"])
if _su["storageClass"]:
    c.KubeSpawner.storage_class = _su["storageClass"]
# The entry point mounts the home volume (PRIMEHUB_HOME_VOLUME) as volume_mounts["home"]; only its
# place is the chart's to change.
_mounts = c.KubeSpawner.get("volume_mounts")
if isinstance(_mounts, dict) and isinstance(_mounts.get("home"), dict):
    _mounts["home"]["mountPath"] = _su["homeMountPath"]
# zero-to-jupyterhub's singleuser.storage.extraVolumes/extraVolumeMounts (e.g. its /dev/shm recipe),
# added by name to what the entry point set
for _trait, _key in (("volumes", "extraVolumes"), ("volume_mounts", "extraVolumeMounts")):
    _items = _su.get(_key) or []
    if _items:
        _current = c.KubeSpawner.get(_trait)
        _current = dict(_current) if isinstance(_current, dict) else {f"z2jh-{i}": v for i, v in enumerate(_current or [])}
        for _item in _items:
            _current[f"z2jh-{_item['name']}"] = _item
        setattr(c.KubeSpawner, _trait, _current)
if _su["priorityClassName"]:
    c.KubeSpawner.priority_class_name = _su["priorityClassName"]

_ph = _chart["primehub"]
c.PrimeHubSpawner.scheduling_failure_grace = float(_ph["schedulingFailureGrace"])
c.PrimeHubSpawner.shared_volume_access_modes = _ph["sharedVolumeAccessModes"]
if _ph["sharedVolumeStorageClass"]:
    c.PrimeHubSpawner.shared_volume_storage_class = _ph["sharedVolumeStorageClass"]
if _ph["gitSyncHostRoot"]:
    c.PrimeHubSpawner.git_sync_host_root = _ph["gitSyncHostRoot"]

_cull = _chart["cull"]
if _cull["enabled"]:
    # Run as a hub-managed service so it starts and stops with the hub and gets its API token and
    # JUPYTERHUB_API_URL (base URL included) from the hub itself.
    _cull_cmd = [
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--timeout={_cull['timeout']}",
        f"--cull-every={_cull['every']}",
        f"--concurrency={_cull['concurrency']}",
        f"--max-age={_cull['maxAge']}",
        f"--cull-users={str(_cull['users']).lower()}",
        f"--cull-admin-users={str(_cull['adminUsers']).lower()}",
        f"--remove-named-servers={str(_cull['removeNamedServers']).lower()}",
    ]
    _cull_scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    if _cull["users"]:
        _cull_scopes.append("admin:users")
    c.JupyterHub.services.append({"name": "jupyterhub-idle-culler", "command": _cull_cmd})
    c.JupyterHub.load_roles.append(
        {
            "name": "jupyterhub-idle-culler",
            "description": "Stop idle servers (the chart's cull.* values)",
            "scopes": _cull_scopes,
            "services": ["jupyterhub-idle-culler"],
        }
    )
