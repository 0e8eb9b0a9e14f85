"""What the hub sets up inside the user's server (rather than around it). Pure.

- idle kernels are shut down by the server itself (Jupyter Server's kernel culling), as PrimeHub
  configured it, so a forgotten notebook does not hold its memory or GPU until the whole server is
  culled by the hub's idle culler.
"""

import posixpath
import shlex

import jupyterhub

# PrimeHub's defaults: a server that does not come up in 20 minutes fails (image pulls of large
# GPU images take long); an idle server is stopped after 2 hours.
DEFAULT_START_TIMEOUT = 1200
DEFAULT_CULL_TIMEOUT = 7200
DEFAULT_KERNEL_CULL_TIMEOUT = 3600
KERNEL_CULL_INTERVAL = 300


def kernel_culling_args(idle_timeout, interval=KERNEL_CULL_INTERVAL):
    """jupyterhub-singleuser arguments that make the server shut down idle kernels (0 = never).

    `cull_connected`: a kernel whose notebook is still open in a forgotten browser tab is idle too.
    """
    if not idle_timeout or idle_timeout <= 0:
        return []
    interval = max(1, min(int(interval), int(idle_timeout)))
    return [
        f"--MappingKernelManager.cull_idle_timeout={int(idle_timeout)}",
        f"--MappingKernelManager.cull_interval={interval}",
        "--MappingKernelManager.cull_connected=True",
    ]


def jupyterhub_has_stop_on_pending_page(version=None):
    """JupyterHub 6 shows its own Stop button while a server starts; before that the hub adds Cancel."""
    version = version or jupyterhub.__version__
    try:
        return int(str(version).split(".")[0]) >= 6
    except ValueError:
        return False


# --- shared memory ---------------------------------------------------------------------------------

SHM_VOLUME = "primehub-shm"
SHM_PATH = "/dev/shm"
SHM_LIMIT = "limit"  # as large as the instance type's memory limit


def shm_size(instance_type, setting):
    """The size limit of /dev/shm for a launch ('' = Kubernetes' default of 64 MiB, no volume).

    The instance type's annotation `instancetype.primehub.io/shmSize` wins over the operator's
    setting. `limit` means the memory limit: a memory-backed volume is counted in the container's
    memory, so it can never use more than that anyway.
    """
    wanted = (getattr(instance_type, "shm_size", "") or setting or "").strip()
    if not wanted or wanted in ("0", "none", "off"):
        return ""
    if wanted == SHM_LIMIT:
        from .quotas import k8s_memory_quantity

        return k8s_memory_quantity(instance_type.memory_limit)
    return wanted


def shm_pieces(size, configured_mounts):
    """(volume, mount) for a memory-backed /dev/shm, or (None, None) when off or already mounted by
    the operator (zero-to-jupyterhub's recipe: singleuser.storage.extraVolumes/extraVolumeMounts)."""
    if not size or any(m.get("mountPath", "").rstrip("/") == SHM_PATH for m in configured_mounts):
        return None, None
    return (
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}},
        {"name": SHM_VOLUME, "mountPath": SHM_PATH},
    )


# --- sudo and ownership of writable mounts ---------------------------------------------------------


def chown_extra(plan):
    """Mount paths the notebook user must own: writable datasets and group volumes (docker-stacks'
    start script changes their owner when the container starts as root; fsGroup does not reach
    hostPath and NFS volumes)."""
    paths = [m.dataset.mount_path for m in plan.datasets if m.writable and m.dataset.type != "env"]
    paths += [v.mount_path for v in plan.shared_volumes]
    return ",".join(paths)


# What a container must not have to start as root: the restricted level's settings the chart
# defaults to (runAsNonRoot, a non-zero user, no privilege escalation, every capability dropped).
_NON_ROOT_KEYS = ("runAsNonRoot", "runAsUser", "runAsGroup")


def sudo_overrides(grant_sudo, pod_context=None, container_context=None):
    """KubeSpawner trait values and env for docker-stacks' GRANT_SUDO: the container must start as
    root (its start script then drops to the notebook user), and sudo needs privilege escalation
    and the runtime's default capabilities (changing users, owning files).

    The security contexts win over `uid` and `allow_privilege_escalation` in KubeSpawner, so the
    non-root settings are taken out of them here; seccomp, fsGroup and the rest stay. Such a pod
    passes Pod Security Admission `baseline`, never `restricted`.
    """
    if not grant_sudo:
        return {}, {}
    if callable(pod_context) or callable(container_context):
        # an operator's own function decides the contexts (KubeSpawner allows it); it must allow root
        return {"uid": 0, "allow_privilege_escalation": True}, {"GRANT_SUDO": "yes"}
    pod = {k: v for k, v in (pod_context or {}).items() if k not in _NON_ROOT_KEYS}
    container = {k: v for k, v in (container_context or {}).items() if k not in _NON_ROOT_KEYS}
    container.update({"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": True})
    capabilities = {k: v for k, v in (container.pop("capabilities", None) or {}).items() if k != "drop"}
    if capabilities:
        container["capabilities"] = capabilities
    traits = {
        "uid": 0,
        "allow_privilege_escalation": True,
        "pod_security_context": pod,
        "container_security_context": container,
    }
    return traits, {"GRANT_SUDO": "yes"}


# --- links made when the server starts --------------------------------------------------------------

HOME = "~/"


def home_links(plan, *, dataset_symlinks=True):
    """PrimeHub's links in the home folder: `~/datasets` to the dataset folder, `~/<group>` to each
    group volume, and `~/<name>` to each dataset annotated homeSymlink."""
    links = []
    if any(m.dataset.type != "env" and m.dataset.mount_root == "/datasets/" for m in plan.datasets):
        links.append(("/datasets", HOME + "datasets"))
    for volume in plan.shared_volumes:
        links.append((volume.mount_path, HOME + posixpath.basename(volume.mount_path)))
    if dataset_symlinks:
        links += [(path, HOME + posixpath.basename(path.rstrip("/"))) for path in plan.home_symlinks]
    return links


def _shell_path(path):
    if path.startswith(HOME):
        return '"$HOME"/' + shlex.quote(path[len(HOME) :])
    return shlex.quote(path)


def links_command(links):
    """One shell command making each link unless something (a user's own file, folder or link) is
    already there: nothing of the user's is ever replaced or deleted. In the home folder, a link to
    a target that is not there is not made; elsewhere (a git checkout that git-sync has not written
    yet, linked in the pod's own folder) it is, and starts working once the target appears."""
    steps = []
    for target, link in links:
        t, lk = shlex.quote(target), _shell_path(link)
        make = f"{{ [ -e {t} ] && ln -s {t} {lk}; }}" if link.startswith(HOME) else f"ln -s {t} {lk}"
        steps.append(f"{{ [ -e {lk} ] || [ -L {lk} ] || {make}; }}")
    return "; ".join(steps + ["true"])


# --- the start wrapper: PrimeHub's start-up hooks, Safe Mode, images without jupyterhub-singleuser ----

START_SCRIPTS_DIR = "/usr/local/bin/start-notebook.d"
SAFE_MODE_ENV = "PRIMEHUB_SAFE_MODE"
SAFE_HOME_SUBFOLDER = "user"

# POSIX sh; "$@" is the server's command. The hooks are PrimeHub's: the operator's start scripts
# (docker-stacks' start.sh already runs them in its images, so only other images need this), the
# group's /project/<group>/.primehub/profile and the user's ~/.primehub/profile. A hook that fails
# is reported and skipped; Safe Mode skips them all.
START_WRAPPER = r"""
say() { echo "primehub-start: $*" >&2; }
if [ "${PRIMEHUB_SAFE_MODE:-}" = "true" ]; then
  say "Safe Mode: start-up hooks skipped; your home volume is at $HOME/user"
else
  if ! command -v start.sh >/dev/null 2>&1 && [ -d /usr/local/bin/start-notebook.d ]; then
    for hook in /usr/local/bin/start-notebook.d/*.sh; do
      [ -r "$hook" ] || continue
      say "running $hook"; . "$hook" || say "$hook failed; going on"
    done
  fi
  for profile in "${PRIMEHUB_GROUP_VOLUME:-/nonexistent}/.primehub/profile" "$HOME/.primehub/profile"; do
    [ -r "$profile" ] || continue
    say "sourcing $profile"; . "$profile" || say "$profile failed; going on"
  done
fi
if command -v "$1" >/dev/null 2>&1; then exec "$@"; fi
if [ "$1" = jupyterhub-singleuser ] && command -v pip >/dev/null 2>&1; then
  say "the image has no jupyterhub-singleuser: installing jupyterhub==${PRIMEHUB_JUPYTERHUB_VERSION} for this user"
  if pip install --user --quiet "jupyterhub==${PRIMEHUB_JUPYTERHUB_VERSION}"; then
    PATH="$HOME/.local/bin:$PATH"; export PATH
    exec "$@"
  fi
fi
say "cannot start: the image has no $1 and it could not be installed; choose another image or ask your administrator"
exit 127
"""


def wrapped_command(cmd):
    """The server's command run through the start wrapper."""
    return ["sh", "-c", START_WRAPPER.strip(), "primehub-start", *cmd]


def start_env(plan, *, safe_mode):
    """Variables the start wrapper reads."""
    env = {"PRIMEHUB_JUPYTERHUB_VERSION": jupyterhub.__version__}
    launch_volume = next((v for v in plan.shared_volumes if v.group == plan.group.name), None)
    if launch_volume is not None:
        env["PRIMEHUB_GROUP_VOLUME"] = launch_volume.mount_path
    if safe_mode:
        env[SAFE_MODE_ENV] = "true"
    return env


def safe_mode_mounts(mounts, home):
    """Safe Mode as in PrimeHub: the home volume mounted one folder deeper (<home>/user), so that
    what is in it (shell start files, Jupyter settings, environments) cannot stop the server."""
    home = home.rstrip("/")
    moved = []
    for mount in mounts:
        if mount.get("mountPath", "").rstrip("/") == home:
            mount = {**mount, "mountPath": f"{home}/{SAFE_HOME_SUBFOLDER}"}
        moved.append(mount)
    return moved
