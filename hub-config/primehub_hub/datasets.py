"""Dataset -> pod pieces (volumes, volume mounts, environment, home symlinks). Pure.

Volumes and mounts are dicts in Kubernetes API field names, as KubeSpawner's `volumes` and
`volume_mounts` take them. Every mount is read-only unless the launch group (or everyone)
grants `ds:rw:`; git datasets are always read-only.
"""

import logging
import re
from dataclasses import dataclass, field

from kubespawner.slugs import is_valid_object_name, safe_slug

from .resources import DEFAULT_GIT_SYNC_ROOT

_log = logging.getLogger(__name__)

# Kubernetes' classic rule for environment variable names (C identifiers plus '-' and '.').
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
DEFAULT_GIT_SYNC_HOST_ROOT = "/home/dataset/"
# Where datasets may be mounted in the user's container: places no image keeps its own files in
# (a mount root of /opt/conda/ would shadow the interpreter, /home/ the user's home).
DEFAULT_MOUNT_ROOTS = ("/datasets/", "/mnt/", "/data/", "/srv/")

# The variables the hub, KubeSpawner, JupyterHub and the server's runtime own. This module owns the
# list for every caller: a dataset variable (written by whoever may write Datasets, who is not
# trusted with the user's server) and a user's own variable (userenv.py) alike never set the API
# URL, token, OAuth scopes, resources, the start wrapper's switches, nor what makes the loader, the
# shell or an interpreter run other code.
RESERVED_ENV_PREFIXES = (
    "JUPYTERHUB_",
    "JPY_",
    "JUPYTER_",
    "LD_",
    "PYTHON",
    "IPYTHON",
    "CONDA_",
    "NVIDIA_",
    "MEM_",
    "CPU_",
    "KUBERNETES_",
)
RESERVED_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "SHELL",
        "ENV",
        "BASH_ENV",
        "NB_USER",
        "NB_UID",
        "NB_GID",
        "NODE_OPTIONS",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "TZ",
        "GROUP_NAME",
        "GROUP_ID",
        "INSTANCE_TYPE",
        "IMAGE_NAME",
        "GRANT_SUDO",
        "CHOWN_HOME",
        "CHOWN_EXTRA",
    }
)


def reserved_env_name(name):
    """True for names nobody but the hub may set (compared upper-cased: dataset variables are, and a
    user's `ld_preload` is refused as plainly as `LD_PRELOAD`)."""
    upper = name.upper()
    return upper in RESERVED_ENV_NAMES or upper.startswith(RESERVED_ENV_PREFIXES)


@dataclass
class PodPieces:
    volumes: list = field(default_factory=list)
    volume_mounts: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    home_symlinks: list = field(default_factory=list)
    links: list = field(default_factory=list)  # (target, link path) made when the server starts

    def extend(self, other):
        self.volumes.extend(other.volumes)
        self.volume_mounts.extend(other.volume_mounts)
        self.env.update(other.env)
        self.home_symlinks.extend(other.home_symlinks)
        self.links.extend(other.links)


def volume_name(prefix, name):
    """`<prefix>-<name>` when that is a valid volume name, else a collision-free slug of it."""
    candidate = f"{prefix}-{name}"
    if is_valid_object_name(candidate):
        return candidate
    return f"{prefix}-{safe_slug(name, max_length=63 - len(prefix) - 1)}"


def dataset_env(dataset, log=None):
    """`<NAME>_<KEY>` upper-cased for each variable, plus the same with '-' replaced by '_'.

    Names that are not valid environment variable names, or that are reserved (see
    `reserved_env_name`), are dropped with a log line naming the dataset.
    """
    log = log or _log
    env = {}
    for key, value in dataset.variables.items():
        name = f"{dataset.name}_{key}".upper()
        candidates = [name]
        underscored = name.replace("-", "_")
        if underscored != name:
            candidates.append(underscored)
        for candidate in candidates:
            if reserved_env_name(candidate):
                log.warning(
                    "Dataset %s: dropping variable %r, %r is reserved for the hub and the server's runtime",
                    dataset.name,
                    key,
                    candidate,
                )
            elif ENV_NAME.match(candidate):
                env[candidate] = value
            else:
                log.warning(
                    "Dataset %s: dropping variable %r, %r is not a valid environment variable name",
                    dataset.name,
                    key,
                    candidate,
                )
    return env


def _folder(path):
    """`path` as an absolute folder ending in '/', or None when it is relative or has '.'/'..' parts."""
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None
    return "/" + "".join(p + "/" for p in parts)


def _under(path, prefixes):
    folder = _folder(path)
    return folder is not None and any(
        (root := _folder(prefix)) is not None and folder.startswith(root) for prefix in prefixes
    )


def dataset_refusal(
    dataset, *, host_path_prefixes=(), mount_roots=DEFAULT_MOUNT_ROOTS, git_sync_host_root=DEFAULT_GIT_SYNC_HOST_ROOT
):
    """Why a catalog writer may not have this dataset mounted, or None.

    Writing Datasets does not make one a node administrator: node folders must lie under an
    operator's allow-list (`host_path_prefixes`, empty refuses every hostPath dataset), git
    datasets come from the configured git-sync root (or an allowed one), and mounts land only
    under `mount_roots`. The CRD refuses the plainly dangerous; annotations it cannot see.
    """
    if dataset.type == "env":
        return None
    if not _under(dataset.mount_root, mount_roots):
        return f"mount root {dataset.mount_root!r} is not under an allowed mount root ({', '.join(mount_roots)})"
    if dataset.type == "hostPath" and not _under(dataset.host_path, host_path_prefixes):
        allowed = ", ".join(host_path_prefixes) or "none are allowed"
        return f"host path {dataset.host_path!r} is not under an allowed host path ({allowed})"
    if (
        dataset.type == "git"
        and _folder(dataset.git_sync_root) != DEFAULT_GIT_SYNC_ROOT
        and not _under(dataset.git_sync_root, mount_roots)
    ):
        # the checkout's folder is mounted there (and linked into the mount root): never over the image's files
        return f"git-sync root {dataset.git_sync_root!r} is neither {DEFAULT_GIT_SYNC_ROOT} nor under an allowed mount root"
    if dataset.type == "git" and dataset.git_sync_host_root:
        root = dataset.git_sync_host_root
        if _folder(root) != _folder(git_sync_host_root) and not _under(root, host_path_prefixes):
            return f"git-sync host root {root!r} is neither the configured one nor under an allowed host path"
    return None


NO_GIT_SYNC = "git datasets need a git-sync on the nodes, and this hub has none"


def dataset_unavailable(dataset, *, git_sync_on_nodes=True):
    """Why a granted dataset cannot be mounted on this hub (said to the user), or None.

    A git dataset is a folder of the node that a git-sync fills. The hub cannot look into nodes'
    folders, so it relies on the operator's word (`git_sync_on_nodes`): without a git-sync the
    folder is missing (the pod never starts) or empty and root-owned (the user sees nothing).
    """
    if dataset.type == "git" and not git_sync_on_nodes:
        return NO_GIT_SYNC
    return None


def dataset_pieces(dataset, writable, *, git_sync_host_root=DEFAULT_GIT_SYNC_HOST_ROOT, log=None):
    """What mounting `dataset` adds to the pod."""
    pieces = PodPieces()
    if dataset.type == "env":
        pieces.env.update(dataset_env(dataset, log))
        return pieces

    name = volume_name("dataset", dataset.name)
    read_only = not writable
    mount_path = dataset.mount_path
    if dataset.type == "pv":
        # the literal PVC name (parse_dataset checked it is one): a PVC cannot be found under a hash
        claim = f"dataset-{dataset.volume_name}"
        volume = {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
    elif dataset.type == "hostPath":
        # Directory: never a socket or device file, and never created on the node
        volume = {"name": name, "hostPath": {"path": dataset.host_path, "type": "Directory"}}
    elif dataset.type == "nfs":
        volume = {"name": name, "nfs": {"server": dataset.nfs_server, "path": dataset.nfs_path, "readOnly": read_only}}
    elif dataset.type == "git":
        read_only = True
        root = dataset.git_sync_host_root or git_sync_host_root
        root = root if root.endswith("/") else root + "/"
        volume = {"name": name, "hostPath": {"path": root + dataset.name, "type": "Directory"}}
        # git-sync keeps the checkout at <host folder>/<name>/<name>, a link it swaps on every sync:
        # the folder is mounted under the git-sync root and <mountRoot><name> links to the checkout,
        # so the repository's files are directly in /datasets/<name> and follow each sync.
        mount_path = dataset.git_sync_root + dataset.name
        pieces.links.append((f"{mount_path}/{dataset.name}", dataset.mount_path))
    else:  # parse_dataset rejects other types; keep the pod valid regardless
        return pieces

    pieces.volumes.append(volume)
    pieces.volume_mounts.append({"name": name, "mountPath": mount_path, "readOnly": read_only})
    if dataset.home_symlink:
        pieces.home_symlinks.append(dataset.mount_path)
    return pieces


def datasets_pieces(
    mounts,
    *,
    git_sync_host_root=DEFAULT_GIT_SYNC_HOST_ROOT,
    host_path_prefixes=(),
    mount_roots=DEFAULT_MOUNT_ROOTS,
    log=None,
):
    """Pieces for a list of `entitlements.DatasetMount`; refused datasets are left out with a log line."""
    log = log or _log
    pieces = PodPieces()
    for mount in mounts:
        refusal = dataset_refusal(
            mount.dataset,
            host_path_prefixes=host_path_prefixes,
            mount_roots=mount_roots,
            git_sync_host_root=git_sync_host_root,
        )
        if refusal:
            log.warning("Dataset %s is not mounted: %s (an operator setting allows it)", mount.dataset.name, refusal)
            continue
        pieces.extend(dataset_pieces(mount.dataset, mount.writable, git_sync_host_root=git_sync_host_root, log=log))
    return pieces


def dataset_claims(mounts):
    """{dataset name: the PVC its volume needs} for the mounts that need one (type pv).

    Read from the pieces `dataset_pieces` builds, so the claim name has one owner.
    """
    claims = {}
    for mount in mounts:
        for volume in dataset_pieces(mount.dataset, mount.writable).volumes:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                claims[mount.dataset.name] = claim
    return claims
