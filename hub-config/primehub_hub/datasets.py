"""Dataset -> pod pieces (volumes, volume mounts, environment, home symlinks). Pure.

Volumes and mounts are dicts in Kubernetes API field names, as KubeSpawner's `volumes` and
`volume_mounts` take them. Every mount is read-only unless the launch group (or everyone)
grants `ds:rw:`; git datasets are always read-only.
"""

import logging
import re
from dataclasses import dataclass, field

from kubespawner.slugs import is_valid_object_name, safe_slug

_log = logging.getLogger(__name__)

# Kubernetes' classic rule for environment variable names (C identifiers plus '-' and '.').
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
DEFAULT_GIT_SYNC_HOST_ROOT = "/home/dataset/"


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

    Names that are not valid environment variable names are dropped with a log line.
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
            if ENV_NAME.match(candidate):
                env[candidate] = value
            else:
                log.warning("Dataset %s: dropping variable %r, %r is not a valid environment variable name", dataset.name, key, candidate)
    return env


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
        claim = volume_name("dataset", dataset.volume_name)
        volume = {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
    elif dataset.type == "hostPath":
        volume = {"name": name, "hostPath": {"path": dataset.host_path}}
    elif dataset.type == "nfs":
        volume = {"name": name, "nfs": {"server": dataset.nfs_server, "path": dataset.nfs_path, "readOnly": read_only}}
    elif dataset.type == "git":
        read_only = True
        root = dataset.git_sync_host_root or git_sync_host_root
        root = root if root.endswith("/") else root + "/"
        volume = {"name": name, "hostPath": {"path": root + dataset.name}}
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


def datasets_pieces(mounts, *, git_sync_host_root=DEFAULT_GIT_SYNC_HOST_ROOT, log=None):
    """Pieces for a list of `entitlements.DatasetMount`."""
    pieces = PodPieces()
    for mount in mounts:
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
