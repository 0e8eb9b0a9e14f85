"""What the realm tools share: reading a realm export, and the hub's rules for what is in it.

The rules themselves (what a grant role means, how quotas and capacities are read, what a group's
shared volume is called) belong to the hub's package `primehub_hub` and are imported from it, so
check_catalog.py reports exactly what the hub will do. Pure functions only (no network), unit-tested
in tests/unit/test_realm_tools.py.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# The rules of this checkout's hub, even when another copy of the package is installed.
_HUB_CONFIG = Path(__file__).resolve().parents[2] / "hub-config"
if _HUB_CONFIG.is_dir() and str(_HUB_CONFIG) not in sys.path:
    sys.path.insert(0, str(_HUB_CONFIG))

from primehub_hub.entitlements import EVERYONE, GRANT_KINDS, flatten_attributes
from primehub_hub.entitlements import parse_grant as hub_parse_grant
from primehub_hub.quotas import (
    PROJECT_QUOTA_PREFIX,
    QUOTA_ATTRIBUTES,
    USER_QUOTA_PREFIX,
    parse_quota,
    quota_problems,
)
from primehub_hub.quotas import parse_memory as hub_parse_memory
from primehub_hub.resources import InvalidResource, parse_instance_type
from primehub_hub.volumes import (
    ATTR_CAPACITY,
    ATTR_ENABLED,
    ATTR_LAUNCH_GROUP_ONLY,
    parse_capacity,
    project_name,
)

# Kinds of grant, by the prefix of the realm role that carries it.
KIND_OF_PREFIX = GRANT_KINDS


@dataclass(frozen=True)
class Grant:
    kind: str  # InstanceType, Image or Dataset
    name: str  # the resource's metadata.name
    writable: bool  # ds:rw:<name>
    role: str  # the realm role, as written


def parse_grant(role: str, prefix: str = "") -> Grant | None:
    """The grant a realm role stands for, as the hub reads it; None for any other role."""
    parsed = hub_parse_grant(role, prefix)
    if parsed is None:
        return None
    kind, name, writable = parsed
    return Grant(KIND_OF_PREFIX[kind], name, writable, role)


def looks_like_grant(role: str, prefix: str = "") -> bool:
    """A role shaped like a grant (`it:`, `img:`, `ds:` after the prefix) that the hub ignores."""
    lead = f"{prefix}:" if prefix else ""
    head = role[len(lead) :].partition(":")[0] if role.startswith(lead) else ""
    return head in KIND_OF_PREFIX and ":" in role[len(lead) :] and parse_grant(role, prefix) is None


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


REALM_DIR = Path(__file__).resolve().parents[2] / "keycloak-realm"
REALM_FILE = REALM_DIR / "primehub-realm.json"
DEMO_OVERLAY = REALM_DIR / "demo-overlay.json"


def apply_overlay(realm: dict, overlay: dict) -> dict:
    """The realm with the overlay laid over it: its clients' fields set (matched by clientId), its
    users added. The realm an operator imports carries no users or secrets; the demo overlay adds
    them for the local stack and the tests only."""
    merged = json.loads(json.dumps(realm))
    clients = {c["clientId"]: c for c in merged.get("clients") or []}
    for change in overlay.get("clients") or []:
        if change["clientId"] not in clients:
            raise ValueError(f"the overlay changes client {change['clientId']!r}, which the realm does not define")
        clients[change["clientId"]].update(json.loads(json.dumps(change)))
    names = {u["username"] for u in merged.get("users") or []}
    for user in overlay.get("users") or []:
        if user["username"] in names:
            raise ValueError(f"the overlay adds user {user['username']!r}, which the realm already has")
        merged.setdefault("users", []).append(json.loads(json.dumps(user)))
    return merged


def demo_realm(realm_file: str | Path = REALM_FILE, overlay_file: str | Path = DEMO_OVERLAY) -> dict:
    """The realm the local stack imports: keycloak-realm/primehub-realm.json plus the demo overlay."""
    with open(overlay_file, encoding="utf-8") as f:
        return apply_overlay(load_realm(realm_file), json.load(f))


def write_demo_realm(dest: str | Path) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(demo_realm(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return dest


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
USED_GROUP_ATTRIBUTES = {"displayName", *QUOTA_ATTRIBUTES, ATTR_ENABLED, ATTR_CAPACITY, ATTR_LAUNCH_GROUP_ONLY}
# Written by PrimeHub's console for features this hub does not have. Not typos, so not reported.
PRIMEHUB_GROUP_ATTRIBUTES = {
    "user-volume-capacity",
    "home-symlink",
    "enabled-deployment",
    "max-deploy",
    "job-default-active-deadline-seconds",
    "admins",
    "deploymentsUsage",
}
PRIMEHUB_GROUP_ATTRIBUTE_PREFIXES = ("mlflow-",)
_BOOL = {"true", "false"}


def parse_memory(value: str) -> int | None:
    """Bytes of a memory size as the hub reads it ('8G' = '8g' = '8GB' = 8 GiB); None when it is not one."""
    try:
        return hub_parse_memory(str(value))
    except ValueError:
        return None


def check_quota_value(key: str, value: str) -> tuple[str, str] | None:
    """(level, why) when a quota/volume attribute value is wrong, or None when it is fine:
    'error' when the hub cannot read it, 'warning' when it reads it but surely not as meant."""
    v = str(value).strip()
    if key in QUOTA_ATTRIBUTES:
        prefix = PROJECT_QUOTA_PREFIX if key.startswith(PROJECT_QUOTA_PREFIX) else USER_QUOTA_PREFIX
        if parse_quota({key: v}, prefix).errors:
            return "error", _QUOTA_HELP[key[len(prefix) :]].format(key=key, value=value)
        if key.endswith("-memory") and v.replace(".", "", 1).isdigit():
            # Read as bytes, like PrimeHub did: a quota of a few bytes is never what was meant.
            return "warning", f"{key} {value!r} has no unit, so it means {v} bytes; write it with one, such as {v}G"
    elif key == ATTR_CAPACITY:
        if parse_capacity(v) is None:
            return "error", f"{key} must be a number of GiB such as 10, or a size such as 10G, not {value!r}"
    elif key in (ATTR_ENABLED, ATTR_LAUNCH_GROUP_ONLY):
        if v not in _BOOL:
            return "error", f"{key} must be true or false, not {value!r}"
    return None


_QUOTA_HELP = {
    "cpu": "{key} must be a number of cores such as 2, 0.5 or 500m, not {value!r}",
    "gpu": "{key} must be a whole number of GPUs, not {value!r}",
    "memory": "{key} must be a size such as 8G or 512M, not {value!r}",
}


def fits_user_quota(instance_type: dict, attributes: dict) -> bool:
    """Whether an InstanceType resource fits a group's per-user quota, by the hub's own rules."""
    try:
        parsed = parse_instance_type(instance_type)
    except InvalidResource:
        return True  # the hub skips it; the CRD schema reports it
    quota = parse_quota(flatten_attributes(attributes), USER_QUOTA_PREFIX)
    if quota.errors:
        return True  # malformed quotas are reported by check_group_attributes
    return not quota_problems(parsed.limits, quota, whose="quota", what="instance type")


def is_volume_capacity(value: str) -> bool:
    """A user's volume-capacity as the hub reads it: a number of GiB (5, 2.5) or a size (5G, 512Mi)."""
    return parse_capacity(value) is not None


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
            out.append(
                ("warning", f"{', '.join(quota_keys)} on {EVERYONE} do nothing: {EVERYONE} is never a launch group")
            )
    return out


def project_volume_name(group: str) -> str:
    """The shared volume's PVC name, exactly as the hub names it."""
    return "project-" + project_name(group)
