#!/usr/bin/env python3
"""Check that a realm export and a catalog of InstanceType/Image/Dataset resources agree.

    check_catalog.py --realm-file keycloak-realm/primehub-realm.json crds/examples
    kubectl get instancetypes,images,datasets -n primehub -o yaml > live.yaml
    check_catalog.py --realm-file exported-realm.json live.yaml

Errors are what the hub cannot use or the import would trip over (a malformed quota, a shared
volume without a capacity, a group role that is not defined, a user in a group that does not exist).
Warnings are what is ignored at launch but is probably a mistake (a grant without a resource, a
resource nobody is granted, an unknown group attribute, a group whose instance types all exceed
its quota). Exit status: 1 when there is an error, or a warning with --strict; else 0.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

import realmlib
from realmlib import EVERYONE, Grant, first, iter_groups, parse_grant

CATALOG_KINDS = ("InstanceType", "Image", "Dataset")
TRUE_ANNOTATIONS = ("dataset.primehub.io/launchGroupOnly", "dataset.primehub.io/homeSymlink")
MOUNT_ROOT = "dataset.primehub.io/mountRoot"


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    subject: str  # e.g. "group ml-team", "InstanceType amd-gpu"
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():7} {self.subject}: {self.message}"


# --- reading --------------------------------------------------------------------------------------


def resource_documents(docs) -> list[dict]:
    """Catalog resources among YAML documents; `kubectl get -o yaml` lists are opened up."""
    out = []
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out += resource_documents(doc["items"])
        elif doc.get("kind") in CATALOG_KINDS and str(doc.get("apiVersion", "")).startswith("primehub.io/"):
            out.append(doc)
    return out


def load_catalog(paths: list[str]) -> tuple[dict[str, dict[str, dict]], list[Finding]]:
    """{kind: {name: resource}} from YAML files and folders (a folder's *.yaml/*.yml/*.json, not
    its sub-folders, so that crds/ does not pick up crds/invalid/)."""
    catalog: dict[str, dict[str, dict]] = {k: {} for k in CATALOG_KINDS}
    findings: list[Finding] = []
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json") and f.is_file())
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    for f in files:
        with open(f, encoding="utf-8") as fh:
            try:
                docs = list(yaml.safe_load_all(fh))
            except yaml.YAMLError as e:
                findings.append(Finding("error", str(f), f"is not valid YAML: {e}"))
                continue
        for doc in resource_documents(docs):
            name = (doc.get("metadata") or {}).get("name")
            kind = doc["kind"]
            if not name:
                findings.append(Finding("error", str(f), f"a {kind} without metadata.name"))
                continue
            if name in catalog[kind]:
                findings.append(Finding("warning", f"{kind} {name}", f"defined twice; {f} wins"))
            catalog[kind][name] = doc
    return catalog, findings


# --- rules (pure) ---------------------------------------------------------------------------------


def group_grants(realm: dict, prefix: str = "") -> dict[str, list[Grant]]:
    """{group name: grants} from each group's realm roles."""
    out = {}
    for _path, g in iter_groups(realm.get("groups") or []):
        grants = [gr for r in g.get("realmRoles") or [] if (gr := parse_grant(r, prefix))]
        out[g["name"]] = grants
    return out


def check_ignored_grants(realm: dict, prefix: str = "") -> list[Finding]:
    """Group roles shaped like a grant that the hub does not read as one (`it:`, `ds:rw:a:b`)."""
    return [
        Finding(
            "error", f"group {g['name']}", f"role {r!r} looks like a grant but names no resource; the hub ignores it"
        )
        for _path, g in iter_groups(realm.get("groups") or [])
        for r in g.get("realmRoles") or []
        if realmlib.looks_like_grant(r, prefix)
    ]


def check_grants(grants: dict[str, list[Grant]], catalog: dict[str, dict]) -> list[Finding]:
    """Grants without a resource, and resources that no group grants."""
    findings = []
    granted: set[tuple[str, str]] = set()
    for group, gs in sorted(grants.items()):
        for g in gs:
            granted.add((g.kind, g.name))
            if g.name not in catalog.get(g.kind, {}):
                findings.append(
                    Finding(
                        "warning",
                        f"group {group}",
                        f"grants {g.role}, but there is no {g.kind} {g.name!r} (the grant is ignored)",
                    )
                )
        seen: dict[tuple[str, str], Grant] = {}
        for g in gs:
            if g.kind == "Dataset" and (g.kind, g.name) in seen and seen[(g.kind, g.name)].writable != g.writable:
                findings.append(
                    Finding(
                        "warning",
                        f"group {group}",
                        f"grants dataset {g.name} both read-only and writable; it is mounted writable",
                    )
                )
            seen[(g.kind, g.name)] = g
    for kind in CATALOG_KINDS:
        for name in sorted(catalog.get(kind, {})):
            if (kind, name) not in granted:
                findings.append(Finding("warning", f"{kind} {name}", "no group grants it, so nobody sees it"))
    return findings


def check_roles_defined(realm: dict) -> list[Finding]:
    """Group and user realm roles that the export does not define (only when it defines roles)."""
    defined = {r["name"] for r in (realm.get("roles") or {}).get("realm") or []}
    if not defined:
        return []
    defined.add(f"default-roles-{realm['realm']}")
    findings = []
    for _path, g in iter_groups(realm.get("groups") or []):
        for r in g.get("realmRoles") or []:
            if r not in defined:
                findings.append(
                    Finding("error", f"group {g['name']}", f"is mapped to realm role {r!r}, which is not defined")
                )
    for u in realm.get("users") or []:
        for r in u.get("realmRoles") or []:
            if r not in defined and r not in ("offline_access", "uma_authorization"):
                findings.append(
                    Finding("error", f"user {u['username']}", f"has realm role {r!r}, which is not defined")
                )
    return findings


def check_groups(realm: dict) -> list[Finding]:
    findings = []
    names = set()
    for _path, g in iter_groups(realm.get("groups") or []):
        name = g["name"]
        if name in names:
            # The hub knows groups by name; two groups of one name (in different parents) are ambiguous.
            findings.append(Finding("warning", f"group {name}", "more than one group has this name"))
        names.add(name)
        for level, msg in realmlib.check_group_attributes(name, g.get("attributes") or {}):
            findings.append(Finding(level, f"group {name}", msg))
    if EVERYONE not in names and names:
        findings.append(Finding("warning", "realm", f"has no group {EVERYONE!r}: nothing is granted to all users"))
    return findings


def check_users(realm: dict, prefix: str = "") -> list[Finding]:
    findings = []
    paths = {path for path, _g in iter_groups(realm.get("groups") or [])}
    for u in realm.get("users") or []:
        who = f"user {u.get('username')}"
        if u.get("serviceAccountClientId"):
            continue
        for p in u.get("groups") or []:
            if p not in paths:
                findings.append(Finding("error", who, f"is in group {p!r}, which the export does not define"))
        for r in u.get("realmRoles") or []:
            if parse_grant(r, prefix):
                findings.append(
                    Finding("warning", who, f"holds {r} directly; grants only count when mapped to a group")
                )
        attrs = u.get("attributes") or {}
        cap = first(attrs.get("volume-capacity"))
        if cap is not None and not realmlib.is_volume_capacity(cap):
            findings.append(
                Finding(
                    "error",
                    who,
                    f"volume-capacity must be a number of GiB such as 5, or a size such as 5G, not {cap!r}",
                )
            )
    return findings


def check_launchable(realm: dict, catalog: dict, prefix: str = "") -> list[Finding]:
    """Launch groups that offer no instance type, or none within the per-user quota."""
    grants = group_grants(realm, prefix)
    global_its = {g.name for g in grants.get(EVERYONE, []) if g.kind == "InstanceType"}
    findings = []
    for _path, g in iter_groups(realm.get("groups") or []):
        name = g["name"]
        if name == EVERYONE:
            continue
        offered = sorted(
            ({gr.name for gr in grants.get(name, []) if gr.kind == "InstanceType"} | global_its)
            & set(catalog.get("InstanceType", {}))
        )
        if not offered:
            findings.append(Finding("warning", f"group {name}", "offers no existing instance type"))
            continue
        attrs = g.get("attributes") or {}
        if not any(realmlib.fits_user_quota(catalog["InstanceType"][it], attrs) for it in offered):
            quota = ", ".join(
                f"{k} {first(attrs[k])}" for k in ("quota-cpu", "quota-gpu", "quota-memory") if k in attrs
            )
            findings.append(
                Finding(
                    "warning",
                    f"group {name}",
                    f"every instance type it offers ({', '.join(offered)}) exceeds its quota ({quota})",
                )
            )
    return findings


def check_resources(catalog: dict) -> list[Finding]:
    """What the CRD schema cannot check: the annotations the hub reads."""
    findings = []
    for kind in CATALOG_KINDS:
        for name, doc in sorted(catalog.get(kind, {}).items()):
            ann = (doc.get("metadata") or {}).get("annotations") or {}
            for key in TRUE_ANNOTATIONS:
                if key in ann and ann[key] not in ("true", "false"):
                    findings.append(
                        Finding(
                            "warning", f"{kind} {name}", f'{key} is {ann[key]!r}; only the string "true" turns it on'
                        )
                    )
            root = ann.get(MOUNT_ROOT)
            if root is not None and not str(root).startswith("/"):
                findings.append(
                    Finding("error", f"{kind} {name}", f"{MOUNT_ROOT} must be an absolute path, not {root!r}")
                )
    return findings


def check_all(realm: dict, catalog: dict, prefix: str = "") -> list[Finding]:
    return (
        check_roles_defined(realm)
        + check_groups(realm)
        + check_users(realm, prefix)
        + check_ignored_grants(realm, prefix)
        + check_grants(group_grants(realm, prefix), catalog)
        + check_launchable(realm, catalog, prefix)
        + check_resources(catalog)
    )


def exit_status(findings: list[Finding], strict: bool) -> int:
    if any(f.level == "error" for f in findings):
        return 1
    if strict and findings:
        return 1
    return 0


def report(findings: list[Finding], catalog: dict, realm: dict) -> str:
    lines = [str(f) for f in sorted(findings, key=lambda f: (f.level != "error", f.subject, f.message))]
    counts = ", ".join(f"{len(v)} {k}{'s' if len(v) != 1 else ''}" for k, v in catalog.items())
    groups = sum(1 for _ in iter_groups(realm.get("groups") or []))
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    lines.append(
        f"checked realm {realm['realm']} ({groups} groups) against {counts}: "
        f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--realm-file",
        default=str(Path(__file__).resolve().parents[2] / "keycloak-realm" / "primehub-realm.json"),
        help="realm export (default: keycloak-realm/primehub-realm.json)",
    )
    ap.add_argument("--role-prefix", default="", help="the hub's keycloak.rolePrefix, if set")
    ap.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    ap.add_argument("paths", nargs="+", help="YAML files or folders with InstanceType/Image/Dataset resources")
    args = ap.parse_args(argv)
    try:
        realm = realmlib.load_realm(args.realm_file)
        catalog, findings = load_catalog(args.paths)
    except (OSError, ValueError) as e:
        print(f"check_catalog: {e}", file=sys.stderr)
        return 2
    findings += check_all(realm, catalog, args.role_prefix)
    print(report(findings, catalog, realm))
    return exit_status(findings, args.strict)


if __name__ == "__main__":
    sys.exit(main())
