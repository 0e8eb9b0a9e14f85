# The hub's one configuration file, used unchanged by the local stack and the Helm chart.
# Settings come from environment variables (docs/architecture.md); files in
# PRIMEHUB_EXTRA_CONFIG_DIR run last and may override anything here.
import glob
import logging
import os
import sys

# The stock hub image mounts this folder at /usr/local/etc/jupyterhub/ without installing the
# package, so the package next to this file must be importable from here.
_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

from primehub_hub.auth import PrimeHubAuthenticator  # noqa: E402
from primehub_hub.settings import Settings  # noqa: E402
from primehub_hub.singleuser import jupyterhub_has_stop_on_pending_page, kernel_culling_args  # noqa: E402
from primehub_hub.spawner import PrimeHubSpawner  # noqa: E402

c = get_config()  # noqa: F821 (provided by traitlets when loading this file)
settings = Settings.from_env()
_log = logging.getLogger("primehub_hub.config")

# --- login -----------------------------------------------------------------------------
c.JupyterHub.authenticator_class = PrimeHubAuthenticator
if not settings.keycloak_url:
    _log.warning("PRIMEHUB_KEYCLOAK_URL is not set; logins will fail")
c.PrimeHubAuthenticator.keycloak_url = settings.keycloak_url
c.PrimeHubAuthenticator.keycloak_internal_url = settings.keycloak_internal_url
c.PrimeHubAuthenticator.realm = settings.realm
c.PrimeHubAuthenticator.client_id = settings.client_id
c.PrimeHubAuthenticator.client_secret = settings.client_secret
c.PrimeHubAuthenticator.public_url = settings.public_url
# PrimeHub's scopeRequired: only holders of this realm role may log in (empty: everyone in the realm)
c.PrimeHubAuthenticator.scope_required = settings.scope_required
# Keycloak before 18 takes redirect_uri on logout, later ones post_logout_redirect_uri; auto asks once
c.PrimeHubAuthenticator.keycloak_logout_style = settings.keycloak_logout
# The logout round trip through Keycloak is the authenticator's logout_handler (/hub/logout).

# --- spawning --------------------------------------------------------------------------
c.JupyterHub.spawner_class = PrimeHubSpawner
c.PrimeHubSpawner.role_prefix = settings.role_prefix
# PrimeHub's habits: /dev/shm sized to the instance type, optional sudo, the start wrapper (start-up
# hooks, Safe Mode, images without jupyterhub-singleuser) and the operator's start scripts
c.PrimeHubSpawner.shm_size = settings.shm_size
c.PrimeHubSpawner.grant_sudo = settings.grant_sudo
c.PrimeHubSpawner.start_wrapper = settings.start_wrapper
c.PrimeHubSpawner.start_scripts_configmap = settings.start_scripts_configmap
c.KubeSpawner.namespace = settings.namespace
c.KubeSpawner.cmd = settings.singleuser_cmd
# jupyter/docker-stacks images run as uid 1000 in group 100; the group owns mounted volumes
c.KubeSpawner.fs_gid = 100
# PrimeHub's 20 minutes (large GPU images pull slowly); unschedulable pods fail fast regardless
c.KubeSpawner.start_timeout = settings.start_timeout
# the server shuts down its own idle kernels (PRIMEHUB_KERNEL_CULL_TIMEOUT, 0 = never)
c.KubeSpawner.args = kernel_culling_args(settings.kernel_cull_timeout)
# the start page gets a Cancel button where JupyterHub has no Stop button of its own (before 6)
c.JupyterHub.template_paths = [os.path.join(_here, "primehub_hub", "hub_templates")]
c.JupyterHub.template_vars = {"primehub_cancel_button": not jupyterhub_has_stop_on_pending_page()}

if settings.home_volume:
    c.KubeSpawner.storage_pvc_ensure = True
    # one home per user, shared by their named servers
    c.KubeSpawner.pvc_name_template = "claim-{username}"
    # "primehub": PrimeHub's claim-<escaped name>, so homes made by PrimeHub are found again
    c.PrimeHubSpawner.home_pvc_naming = settings.home_pvc_naming
    c.KubeSpawner.storage_capacity = settings.home_capacity
    c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]
    c.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {"home": {"name": "home", "mountPath": "/home/jovyan"}}

if settings.hub_connect_url:
    c.JupyterHub.hub_connect_url = settings.hub_connect_url

# --- operator additions, last ------------------------------------------------------------
if settings.extra_config_dir:
    for _path in sorted(glob.glob(os.path.join(settings.extra_config_dir, "*.py"))):
        _log.info("Loading extra config %s", _path)
        with open(_path, encoding="utf-8") as _f:
            _code = compile(_f.read(), _path, "exec")
        exec(_code, {"c": c, "get_config": get_config, "settings": settings, "__file__": _path, "__name__": "__config__"})  # noqa: F821, S102
