"""What the realm tools share: reading a realm export, PrimeHub's grant names and group attributes.

Pure functions only (no network), so the rules are unit-tested in tests/unit/test_realm_tools.py.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# Kinds of grant, by the prefix of the realm role that carries it.
KIND_OF_PREFIX = {"it": "InstanceType", "img": "Image", "ds": "Dataset"}
EVERYONE = "everyone"


@dataclass(frozen=True)
class Grant:
    kind: str        # InstanceType, Image or Dataset
    name: str        # the resource's metadata.name
    writable: bool   # ds:rw:<name>
    role: str        # the realm role, as written


def parse_grant(role: str, prefix: str = "") -> Grant | None:
    """The grant a realm role stands for, or None for any other role (offline_access, ...).

    With a configured prefix P only P:it:<name> etc. are grants, as in the hub.
    """
    rest = role
    if prefix:
        if not role.startswith(prefix + ":"):
            return None
        rest = role[len(prefix) + 1:]
    head, sep, name = rest.partition(":")
    if not sep or head not in KIND_OF_PREFIX:
        return None
    writable = False
    if head == "ds" and name.startswith("rw:"):
        writable, name = True, name[3:]
    return Grant(KIND_OF_PREFIX[head], name, writable, role)


def grant_role(kind: str, name: str, writable: bool = False, prefix: str = "") -> str:
    short = {v: k for k, v in KIND_OF_PREFIX.items()}[kind]
    role = f"{short}:rw:{name}" if writable else f"{short}:{name}"
    return f"{prefix}:{role}" if prefix else role


def load_realm(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        realm = json.load(f)
    if not isinstance(realm, dict) or "realm" not in realm:
        raise ValueError(f"{path}: not a Keycloak realm export (no top-level 'realm')")
    return realm


def iter_groups(groups: list[dict], parent: str = "") -> Iterator[tuple[str, dict]]:
    """(path, group) for every group of an export, sub-groups included."""
    for g in groups or []:
        path = g.get("path") or f"{parent}/{g['name']}"
        yield path, g
        yield from iter_groups(g.get("subGroups") or [], path)


def first(values) -> str | None:
    """Keycloak attributes are lists of strings; the hub reads the first value."""
    if isinstance(values, list):
        return values[0] if values else None
    return values


# --- group attributes -------------------------------------------------------------------------

# Read by this project's hub (docs/behaviour.md).
USED_GROUP_ATTRIBUTES = {
    "displayName",
    "quota-cpu", "quota-gpu", "quota-memory",
    "project-quota-cpu", "project-quota-gpu", "project-quota-memory",
    "enabled-shared-volume", "shared-volume-capacity", "launch-group-only",
}
# Written by PrimeHub's console for features this hub does not have. Not typos, so not reported.
PRIMEHUB_GROUP_ATTRIBUTES = {
    "user-volume-capacity", "home-symlink", "enabled-deployment", "max-deploy",
    "job-default-active-deadline-seconds", "admins", "deploymentsUsage",
}
PRIMEHUB_GROUP_ATTRIBUTE_PREFIXES = ("mlflow-",)

_CPU = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_INT = re.compile(r"^[0-9]+$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTPE]i?|k)?$")
_BOOL = {"true", "false"}

# Binary multipliers for K/M/G/T like PrimeHub and JupyterHub (quota-memory 8G is 8 GiB);
# only the lower-case k is decimal, as in Kubernetes.
_UNIT = {None: 1, "k": 1000}
for _i, _u in enumerate("KMGTPE", start=1):
    _UNIT[_u] = _UNIT[_u + "i"] = 1024 ** _i


def parse_memory(value: str) -> int | None:
    """Bytes of '8G', '512Mi', '1073741824'; None when it is not a memory size."""
    m = _MEMORY.match(str(value).strip())
    if not m:
        return None
    return int(float(m.group(1)) * _UNIT[m.group(2)])


def check_quota_value(key: str, value: str) -> tuple[str, str] | None:
    """(level, why) when a quota/volume attribute value is wrong, or None when it is fine:
    'error' when the hub cannot read it, 'warning' when it reads it but surely not as meant."""
    v = str(value).strip()
    if key.endswith("-cpu"):
        if not _CPU.match(v):
            return "error", f"{key} must be a number of cores such as 2 or 0.5, not {value!r}"
    elif key.endswith("-gpu"):
        if not _INT.match(v):
            return "error", f"{key} must be a whole number of GPUs, not {value!r}"
    elif key.endswith("-memory") or key == "shared-volume-capacity":
        m = _MEMORY.match(v)
        if not m:
            return "error", f"{key} must be a size such as 8G or 512M, not {value!r}"
        if m.group(2) is None:
            # Read as bytes, like PrimeHub did: a quota of a few bytes is never what was meant.
            return "warning", f"{key} {value!r} has no unit, so it means {v} bytes; write it with one, such as {v}G"
    elif key in ("enabled-shared-volume", "launch-group-only"):
        if v not in _BOOL:
            return "error", f"{key} must be true or false, not {value!r}"
    return None


def is_volume_capacity(value: str) -> bool:
    """A user's volume-capacity: a number of GiB (5, 2.5) or a size with a unit (5G, 512Mi)."""
    v = str(value).strip()
    return bool(_CPU.match(v)) or parse_memory(v) is not None


def _close(word: str, choices) -> str | None:
    import difflib
    hits = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.75)
    return hits[0] if hits else None


def check_group_attributes(group: str, attributes: dict) -> list[tuple[str, str]]:
    """(level, message) for a group's attributes: 'error' for values the hub cannot use,
    'warning' for what is probably a mistake but harmless at launch."""
    out: list[tuple[str, str]] = []
    attributes = attributes or {}
    for key in sorted(attributes):
        values = attributes[key]
        values = values if isinstance(values, list) else [values]
        if key not in USED_GROUP_ATTRIBUTES:
            if key in PRIMEHUB_GROUP_ATTRIBUTES or key.startswith(PRIMEHUB_GROUP_ATTRIBUTE_PREFIXES):
                continue
            hint = _close(key, USED_GROUP_ATTRIBUTES)
            out.append(("warning", f"unknown attribute {key!r}" + (f" (did you mean {hint!r}?)" if hint else "")))
            continue
        if len(values) > 1:
            out.append(("warning", f"{key} has {len(values)} values; only the first ({values[0]!r}) is used"))
        if not values:
            continue
        if key == "displayName":
            continue
        problem = check_quota_value(key, values[0])
        if problem:
            out.append(problem)
    enabled = first(attributes.get("enabled-shared-volume"))
    if enabled == "true" and not first(attributes.get("shared-volume-capacity")):
        out.append(("error", "enabled-shared-volume is true but shared-volume-capacity is missing"))
    if group == EVERYONE:
        quota_keys = sorted(k for k in attributes if "quota" in k)
        if quota_keys:
            out.append(("warning", f"{', '.join(quota_keys)} on {EVERYONE} do nothing: "
                                   f"{EVERYONE} is never a launch group"))
    return out


def project_volume_name(group: str) -> str:
    """The shared volume's PVC name, project-<group> lower-cased with '_' -> '-' (as the hub does)."""
    return "project-" + group.lower().replace("_", "-")


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))
