"""Group shared volumes and the user's home volume capacity. Pure.

Group attributes: `enabled-shared-volume: "true"`, `shared-volume-capacity` (e.g. `10G`, G = GiB)
and `launch-group-only` (default true). The PVC is `project-<group>` with the group name
lower-cased and `_` turned into `-`, mounted at `/project/<that name>`.
"""

import re
from dataclasses import dataclass

from kubespawner.slugs import escape_slug, safe_slug

from .errors import ConfigurationError
from .quotas import GiB, k8s_memory_quantity, parse_memory

ATTR_ENABLED = "enabled-shared-volume"
ATTR_CAPACITY = "shared-volume-capacity"
ATTR_LAUNCH_GROUP_ONLY = "launch-group-only"
# PrimeHub's console writes the user attribute volumeCapacity (GiB); volume-capacity is read too.
USER_ATTRS_CAPACITY = ("volumeCapacity", "volume-capacity")
PROJECT_ROOT = "/project/"
# How home volumes are named: "primehub" = claim-<name escaped the legacy way> (PrimeHub's and
# KubeSpawner < 7's names, e.g. claim-john-2edoe for john.doe); "kubespawner" = claim-<KubeSpawner 7's
# safe slug> (claim-john.doe).
HOME_NAMINGS = ("primehub", "kubespawner")
# On project PVCs the hub creates: the Keycloak id of the group that owns the volume.
ANNOTATION_GROUP_KEY = "hub.primehub.io/group-key"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parse_capacity(raw):
    """Bytes of a volume capacity, None when it is not one (or not more than 0).

    PrimeHub stored a bare number of GiB (`10`, `2.5`); a size with a unit (`10G`, `512Mi`) is read
    like a quota (G = GiB). The realm tools check capacities with this too.
    """
    text = str(raw or "").strip()
    try:
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
            nbytes = int(float(text) * GiB)
        else:
            nbytes = parse_memory(text)
    except ValueError:
        return None
    return nbytes if nbytes > 0 else None


def project_name(group_name):
    """The group's volume name: lower-case, `_` -> `-`; a hashed slug if still not DNS-safe."""
    name = group_name.lower().replace("_", "-")
    if _DNS_LABEL.match(name) and len(name) <= 55:
        return name
    return safe_slug(name, max_length=55)


@dataclass(frozen=True)
class SharedVolume:
    group: str
    claim_name: str
    mount_path: str
    capacity: str  # a Kubernetes quantity
    launch_group_only: bool
    group_key: str = ""  # the group's Keycloak id (or path): who owns the volume

    @property
    def volume(self):
        return {"name": self.claim_name, "persistentVolumeClaim": {"claimName": self.claim_name}}

    @property
    def volume_mount(self):
        return {"name": self.claim_name, "mountPath": self.mount_path}


def shared_volume(group):
    """The group's shared volume, None when not enabled; ConfigurationError when unusable."""
    attributes = group.attributes or {}
    if attributes.get(ATTR_ENABLED) != "true":
        return None
    raw_capacity = (attributes.get(ATTR_CAPACITY) or "").strip()
    if not raw_capacity:
        raise ConfigurationError(
            f"Group '{group.label}' has a shared volume enabled but no {ATTR_CAPACITY}; "
            "ask your administrator to set the capacity (e.g. 10G) or disable the shared volume."
        )
    nbytes = parse_capacity(raw_capacity)
    if not nbytes:
        raise ConfigurationError(
            f"Group '{group.label}' has an invalid {ATTR_CAPACITY} {raw_capacity!r}; "
            "ask your administrator to fix it (e.g. 10G)."
        )
    name = project_name(group.name)
    return SharedVolume(
        group=group.name,
        claim_name=f"project-{name}",
        mount_path=PROJECT_ROOT + name,
        capacity=k8s_memory_quantity(nbytes),
        launch_group_only=attributes.get(ATTR_LAUNCH_GROUP_ONLY, "true") != "false",
        group_key=group.key,
    )


def shared_volumes_for_launch(launch_group, groups):
    """Shared volumes mounted when launching under `launch_group`, given all the user's groups.

    A misconfigured volume of another group that would not be mounted anyway does not block
    the launch; one that would be mounted does.
    """
    volumes = []
    for group in groups:
        attributes = group.attributes or {}
        if attributes.get(ATTR_ENABLED) != "true":
            continue
        launch_only = attributes.get(ATTR_LAUNCH_GROUP_ONLY, "true") != "false"
        if launch_only and group.key != launch_group.key:
            continue
        volume = shared_volume(group)
        for other in volumes:
            if other.claim_name == volume.claim_name:
                raise volume_clash(volume, other.group)
        volumes.append(volume)
    return volumes


def home_claim_name(username, naming="primehub"):
    """The name of a user's home PVC under a naming scheme (see HOME_NAMINGS)."""
    if naming == "primehub":
        return "claim-" + escape_slug(username)
    # KubeSpawner 7's `{username}` in pvc_name_template "claim-{username}"
    return "claim-" + safe_slug(username, max_length=48)


def _user_capacity_attribute(user_attributes):
    for name in USER_ATTRS_CAPACITY:
        raw = ((user_attributes or {}).get(name) or "").strip()
        if raw:
            return name, raw
    return None, ""


def volume_clash(volume, other_group):
    """Two groups whose names differ only in case or '_' vs '-' (or same-named subgroups) would
    share one project volume, each seeing the other's files: refused."""
    return ConfigurationError(
        f"Groups '{volume.group}' and '{other_group}' both map to the project volume {volume.claim_name}, "
        "so they would share each other's files. Please ask your administrator to rename one of them."
    )


def home_capacity(user_attributes, default):
    """The home volume size: user attribute `volumeCapacity` (GiB, unit optional) else default."""
    return home_capacity_decision(user_attributes, default)[0]


def home_capacity_decision(user_attributes, default):
    """(capacity, why): the user's attribute when it is a size, else the operator's default."""
    attribute, raw = _user_capacity_attribute(user_attributes)
    if not raw:
        return default, "the default home capacity (singleuser.storage.capacity)"
    nbytes = parse_capacity(raw)
    if not nbytes:
        return default, f"user attribute {attribute}={raw!r} is not a size; the default is used"
    return k8s_memory_quantity(nbytes), f"user attribute {attribute}={raw!r}"
