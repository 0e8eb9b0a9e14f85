#!/usr/bin/env python3
"""Apply a realm export to a running Keycloak, idempotently, through the Admin REST API.

For administrators who cannot re-import a realm (an import never touches an existing realm):

    apply_realm.py --server https://keycloak.example.com --admin-user admin \\
        --admin-password-file ~/.kc-admin --realm-file keycloak-realm/primehub-realm.json \\
        --hub-url https://hub.example.com --client-secret-file ~/.hub-client-secret

It creates what is missing and sets what differs: the user-profile attributes, realm roles, groups with their attributes and role mappings, the
hub's client with its protocol mappers, and its service account's roles; users too with
--with-users. It never deletes anything and never removes a role mapping or an attribute the export
does not name, and it leaves an existing realm's own settings (sslRequired, token lifespans, ...)
alone unless --realm-settings is given. Nor does it ever loosen an existing client: the password
grant, the implicit flow or public access stay off, longer tokens and the file's local addresses
are not written over the server's (--hub-url sets the addresses). It prints one line per change,
or `no changes`.

Secrets: an existing client keeps its secret unless --client-secret(-file) is given; a new client
gets that secret, else the export's, else one Keycloak generates (keycloak-realm/primehub-realm.json
has none). Passwords are set only when a user is created. The demo users and secret are in
keycloak-realm/demo-overlay.json; scripts/realm/demo_realm.py writes the realm with them for a
local stack.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import realmlib
from realm_client import ClientApplier

USER_FIELDS = ("enabled", "email", "emailVerified", "firstName", "lastName")


# --- planning (pure) ------------------------------------------------------------------------------


def realm_settings_changes(desired: dict, current: dict) -> tuple[dict, list[str]]:
    """Plain top-level values (strings, numbers, booleans) of the export that differ."""
    payload, lines = {}, []
    for key, value in desired.items():
        if key in ("id", "realm") or isinstance(value, (dict, list)) or value is None:
            continue
        if current.get(key) != value:
            payload[key] = value
            lines.append(
                f"realm {desired['realm']}: set {key} to {json.dumps(value)} (was {json.dumps(current.get(key))})"
            )
    return payload, lines


def profile_changes(desired: dict, current: dict) -> tuple[dict | None, list[str]]:
    """Add the user-profile attributes and groups the export declares and the realm lacks.

    Existing declarations are kept as they are: an administrator may have tightened them.
    """
    new = copy.deepcopy(current)
    lines = []
    have = {a["name"] for a in new.get("attributes") or []}
    for attr in desired.get("attributes") or []:
        if attr["name"] not in have:
            new.setdefault("attributes", []).append(attr)
            lines.append(f"user profile: declare attribute {attr['name']}")
    have_groups = {g["name"] for g in new.get("groups") or []}
    for grp in desired.get("groups") or []:
        if grp["name"] not in have_groups:
            new.setdefault("groups", []).append(grp)
            lines.append(f"user profile: add attribute group {grp['name']}")
    policy = desired.get("unmanagedAttributePolicy")
    if policy and not new.get("unmanagedAttributePolicy"):
        new["unmanagedAttributePolicy"] = policy
        lines.append(f"user profile: set unmanagedAttributePolicy to {policy}")
    return (new if lines else None), lines


def export_profile(realm: dict) -> dict | None:
    for comp in (realm.get("components") or {}).get("org.keycloak.userprofile.UserProfileProvider") or []:
        raw = (comp.get("config") or {}).get("kc.user.profile.config")
        if raw:
            return json.loads(realmlib.first(raw))
    return None


def role_changes(
    desired: list[dict], current: list[dict]
) -> tuple[list[tuple[dict, str]], list[tuple[str, dict, str]]]:
    """(payload, line) of realm roles to create; (name, payload, line) of those whose description differs."""
    by_name = {r["name"]: r for r in current}
    create, update = [], []
    for r in desired:
        cur = by_name.get(r["name"])
        if cur is None:
            create.append(
                ({k: r[k] for k in ("name", "description", "attributes") if k in r}, f"create realm role {r['name']}")
            )
        elif "description" in r and (cur.get("description") or "") != r["description"]:
            update.append(
                (r["name"], {**cur, "description": r["description"]}, f"realm role {r['name']}: set description")
            )
    return create, update


def attribute_changes(subject: str, desired: dict, current: dict) -> tuple[dict, list[str]]:
    """Merged attributes (export's keys set, others kept) and one line per changed key."""
    merged = {k: list(v) for k, v in (current or {}).items()}
    lines = []
    for key, values in (desired or {}).items():
        values = list(values) if isinstance(values, list) else [values]
        if merged.get(key) != values:
            was = merged.get(key)
            merged[key] = values
            shown = values[0] if len(values) == 1 else values
            lines.append(
                f"{subject}: set attribute {key} to {json.dumps(shown)}"
                + (f" (was {json.dumps(was[0] if len(was) == 1 else was)})" if was else "")
            )
    return merged, lines


def missing(desired, current) -> list[str]:
    """Names in `desired` that are not in `current`, in the export's order."""
    have = set(current)
    return [n for n in desired if n not in have]


def user_field_changes(desired: dict, current: dict) -> tuple[dict, list[str]]:
    payload, lines = {}, []
    for key in USER_FIELDS:
        if key in desired and current.get(key) != desired[key]:
            payload[key] = desired[key]
            lines.append(f"user {desired['username']}: set {key} to {json.dumps(desired[key])}")
    return payload, lines


# --- applying ------------------------------------------------------------------------------------


class Applier(ClientApplier):
    """Runs the plan against Keycloak; with dry_run it only prints what it would do. The hub's client
    and its service account are applied by ClientApplier (realm_client.py)."""

    def __init__(
        self,
        admin,
        realm: dict,
        *,
        dry_run: bool = False,
        with_users: bool = False,
        hub_urls: list[str] | None = None,
        client_secret: str | None = None,
        realm_settings: bool = False,
        out=print,
    ):
        self.kc = admin
        self.realm = realm
        self.name = realm["realm"]
        self.dry_run = dry_run
        self.with_users = with_users
        self.hub_urls = hub_urls
        self.client_secret = client_secret
        self.realm_settings = realm_settings
        self.out = out
        self.changes = 0
        self.group_ids: dict[str, str | None] = {}
        self.client_uuids: dict[str, str | None] = {}

    def change(self, lines: list[str], fn=None, *args, **kwargs):
        """Print the lines; unless this is a dry run, make the call that carries them out."""
        for line in lines:
            self.out(("would " if self.dry_run else "") + line)
        self.changes += len(lines)
        if lines and fn is not None and not self.dry_run:
            return fn(*args, **kwargs)
        return None

    @staticmethod
    def note(line: str):
        print(f"note: {line}", file=sys.stderr)

    # Each step reads what it needs, plans with the pure functions above, then writes.
    def run(self) -> int:
        if self.apply_realm():
            self.apply_profile()
            self.apply_roles()
            self.apply_groups()
            for client in self.realm.get("clients") or []:
                self.apply_client(client)
            if self.with_users:
                self.apply_users()
        if self.changes == 0:
            self.out("no changes")
        return self.changes

    def apply_realm(self) -> bool:
        """Create the realm if needed and set its plain settings; False when a dry run stops here."""
        from keycloak.exceptions import KeycloakGetError

        created = False
        try:
            current = self.kc.get_realm(self.name)
        except KeycloakGetError as e:
            if e.response_code != 404:
                raise
            self.change([f"create realm {self.name}"], self.kc.create_realm, {"realm": self.name, "enabled": True})
            if self.dry_run:
                self.out(f"(a dry run stops here: everything else in {self.name} would be created too)")
                return False
            current, created = self.kc.get_realm(self.name), True
        self.kc.change_current_realm(self.name)
        payload, lines = realm_settings_changes(self.realm, current)
        if created or self.realm_settings:
            self.change(lines, self.kc.update_realm, self.name, payload)
        elif payload:
            # An existing realm's settings (sslRequired, lifespans, ...) are the operator's: a demo
            # file applied by mistake must not weaken them.
            self.note(
                f"realm settings that differ from the file were left alone ({', '.join(sorted(payload))}); "
                "pass --realm-settings to set them"
            )
        return True

    def apply_profile(self):
        desired = export_profile(self.realm)
        if desired:
            new, lines = profile_changes(desired, self.kc.get_realm_users_profile())
            self.change(lines, self.kc.update_realm_users_profile, new)

    def apply_roles(self):
        desired = (self.realm.get("roles") or {}).get("realm") or []
        create, update = role_changes(desired, self.kc.get_realm_roles(brief_representation=False))
        for payload, line in create:
            self.change([line], self.kc.create_realm_role, payload, skip_exists=True)
        for name, payload, line in update:
            self.change([line], self.kc.update_realm_role, name, payload)

    def _group(self, path: str) -> dict | None:
        from keycloak.exceptions import KeycloakGetError

        try:
            return self.kc.get_group_by_path(path)
        except KeycloakGetError as e:
            if e.response_code == 404:
                return None
            raise

    def _client_uuid(self, client_id: str) -> str | None:
        if self.client_uuids.get(client_id) is None:
            self.client_uuids[client_id] = self.kc.get_client_id(client_id)
        return self.client_uuids[client_id]

    def _grant_client_roles(self, who: str, subject_id: str | None, wanted: dict | None, held, assign) -> dict:
        """Grant `who` (a group, user or service account) the client roles of `wanted` ({clientId: [role]})
        it lacks; returns {clientId: [roles it held]}. `held(subject_id, client uuid)` reads them and
        `assign(subject_id, clientId, role)` grants one: one path for all three, so they read and print alike."""
        have_by_client = {}
        for client_id, roles in (wanted or {}).items():
            cuuid = self._client_uuid(client_id)
            have = [r["name"] for r in held(subject_id, cuuid)] if subject_id and cuuid else []
            for role in missing(roles, have):
                self.change([f"{who}: grant client role {client_id}/{role}"], assign, subject_id, client_id, role)
            have_by_client[client_id] = have
        return have_by_client

    def apply_groups(self):
        for path, g in realmlib.iter_groups(self.realm.get("groups") or []):
            current = self._group(path)
            if current is None:
                parent_path = path.rsplit("/", 1)[0]
                parent = self.group_ids.get(parent_path) if parent_path else None
                self.change(
                    [f"create group {path}"],
                    self.kc.create_group,
                    {"name": g["name"], "attributes": g.get("attributes") or {}},
                    parent=parent,
                )
                created = None if self.dry_run else self._group(path)
                gid = created["id"] if created else None
                current_roles: list[str] = []
            else:
                gid = current["id"]
                merged, lines = attribute_changes(f"group {path}", g.get("attributes"), current.get("attributes"))
                self.change(
                    lines,
                    self.kc.update_group,
                    gid,
                    {
                        "name": current["name"],
                        "attributes": merged,
                        **({"description": current["description"]} if current.get("description") else {}),
                    },
                )
                current_roles = [r["name"] for r in self.kc.get_group_realm_roles(gid)]
            self.group_ids[path] = gid
            for role in missing(g.get("realmRoles") or [], current_roles):
                self.change([f"group {path}: grant realm role {role}"], self._assign_group_realm_role, gid, role)
            grant = self._assign_group_client_role
            self._grant_client_roles(f"group {path}", gid, g.get("clientRoles"), self.kc.get_group_client_roles, grant)

    def _assign_group_realm_role(self, gid: str, role: str):
        self.kc.assign_group_realm_roles(gid, [self.kc.get_realm_role(role)])

    def _assign_group_client_role(self, gid: str, client_id: str, role: str):
        cuuid = self._client_uuid(client_id)
        self.kc.assign_group_client_roles(gid, cuuid, [self.kc.get_client_role(cuuid, role)])

    def apply_users(self):
        for u in self.realm.get("users") or []:
            if u.get("serviceAccountClientId"):
                continue
            name = u["username"]
            uid = self.kc.get_user_id(name)
            if uid is None:
                payload = {
                    k: u[k]
                    for k in ("username", *USER_FIELDS, "attributes", "credentials", "requiredActions")
                    if k in u
                }
                uid = self.change([f"create user {name}"], self.kc.create_user, payload)
                current_groups: list[str] = []
                current_realm_roles: list[str] = []
            else:
                current = self.kc.get_user(uid)
                payload, lines = user_field_changes(u, current)
                merged, attr_lines = attribute_changes(f"user {name}", u.get("attributes"), current.get("attributes"))
                if attr_lines:
                    payload["attributes"] = merged
                self.change(lines + attr_lines, self.kc.update_user, uid, {**_user_update_base(current), **payload})
                current_groups = [g["path"] for g in self.kc.get_user_groups(uid)]
                current_realm_roles = [r["name"] for r in self.kc.get_realm_roles_of_user(uid)]
            for path in missing(u.get("groups") or [], current_groups):
                self.change([f"user {name}: add to group {path}"], self._join, uid, path)
            for role in missing(u.get("realmRoles") or [], current_realm_roles):
                self.change([f"user {name}: grant realm role {role}"], self._assign_user_realm_role, uid, role)
            grant = self._assign_user_client_role
            self._grant_client_roles(f"user {name}", uid, u.get("clientRoles"), self.kc.get_client_roles_of_user, grant)

    def _join(self, uid: str, path: str):
        gid = self.group_ids.get(path) or self._group(path)["id"]
        self.kc.group_user_add(uid, gid)

    def _assign_user_realm_role(self, uid: str, role: str):
        self.kc.assign_realm_roles(uid, [self.kc.get_realm_role(role)])


def _user_update_base(current: dict) -> dict:
    # A user update replaces the profile attributes it names; send the current ones back
    # so that fields the export does not mention stay as they are.
    return {k: current[k] for k in ("username", *USER_FIELDS, "attributes") if k in current}


def _read_secret(value: str | None, path: str | None) -> str | None:
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return value


def connect(server: str, user: str, password: str, admin_realm: str, verify: bool):
    from keycloak import KeycloakAdmin

    return KeycloakAdmin(
        server_url=server.rstrip("/") + "/",
        username=user,
        password=password,
        realm_name=admin_realm,
        user_realm_name=admin_realm,
        verify=verify,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="Keycloak base URL, e.g. http://127.0.0.1:8180")
    ap.add_argument("--admin-user", required=True, help="an administrator of the master realm")
    ap.add_argument(
        "--admin-password",
        default=os.environ.get("KEYCLOAK_ADMIN_PASSWORD"),
        help="its password (default: $KEYCLOAK_ADMIN_PASSWORD)",
    )
    ap.add_argument("--admin-password-file", help="read the password from this file instead")
    ap.add_argument("--admin-realm", default="master", help="realm the administrator logs in to (default master)")
    ap.add_argument(
        "--realm-file", default=str(Path(__file__).resolve().parents[2] / "keycloak-realm" / "primehub-realm.json")
    )
    ap.add_argument(
        "--with-users", action="store_true", help="also apply the export's users (demo users: local stacks only)"
    )
    ap.add_argument(
        "--hub-url",
        action="append",
        help="the hub's public base URL; sets the client's redirect URIs, "
        "web origins and post-logout URIs instead of the export's (repeatable)",
    )
    ap.add_argument("--client-secret", help="set the hub client's secret to this")
    ap.add_argument("--client-secret-file", help="read the client secret from this file instead")
    ap.add_argument(
        "--realm-settings",
        action="store_true",
        help="also set the plain realm settings of the file on an existing realm (a new realm always gets them)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    ap.add_argument("--insecure", action="store_true", help="do not verify Keycloak's TLS certificate")
    args = ap.parse_args(argv)

    password = _read_secret(args.admin_password, args.admin_password_file)
    if not password:
        ap.error("give --admin-password, --admin-password-file or $KEYCLOAK_ADMIN_PASSWORD")
    realm = realmlib.load_realm(args.realm_file)
    from keycloak.exceptions import KeycloakError

    try:
        admin = connect(args.server, args.admin_user, password, args.admin_realm, not args.insecure)
        Applier(
            admin,
            realm,
            dry_run=args.dry_run,
            with_users=args.with_users,
            hub_urls=args.hub_url,
            client_secret=_read_secret(args.client_secret, args.client_secret_file),
            realm_settings=args.realm_settings,
        ).run()
    except KeycloakError as e:
        print(f"apply_realm: Keycloak refused: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
