"""UserInfo from a Keycloak realm export file (Keycloak's own JSON format).

Used by the `primehub-profiles` CLI and by tests, so that a realm can be checked without a
running Keycloak. It reads what the admin API would return: the user's direct groups (by
path), each group's `attributes` and `realmRoles`, the `everyone` group, and admin status
through client roles of users and groups (including parent groups and composite roles,
as Keycloak resolves them).
"""

import json

from .entitlements import ADMIN_CLIENT, ADMIN_ROLE, EVERYONE, flatten_attributes
from .keycloak import group_from_representation, user_info_from_representations


class RealmExportError(ValueError):
    pass


def load_realm_export(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("users", []), list):
        raise RealmExportError(f"{path}: not a Keycloak realm export (expected an object with users and groups)")
    return data


def _walk_groups(groups, parent_path="", ancestors=()):
    for group in groups or []:
        name = group.get("name") or ""
        path = group.get("path") or f"{parent_path}/{name}"
        yield path, group, ancestors
        yield from _walk_groups(group.get("subGroups"), path, ancestors + (group,))


def group_index(export):
    """{path: (group representation, ancestor representations)}"""
    return {path: (group, ancestors) for path, group, ancestors in _walk_groups(export.get("groups"))}


def find_user(export, username):
    wanted = (username or "").lower()
    for user in export.get("users") or []:
        if (user.get("username") or "").lower() == wanted:
            return user
    raise RealmExportError(f"user '{username}' is not in the realm export")


def _role_definitions(export):
    roles = export.get("roles") or {}
    realm = {r.get("name"): r for r in roles.get("realm") or []}
    client = {c: {r.get("name"): r for r in defs or []} for c, defs in (roles.get("client") or {}).items()}
    return realm, client


def _expand(start, export):
    """Close a set of ("realm", None, role) / ("client", client, role) over composite roles."""
    realm_defs, client_defs = _role_definitions(export)
    seen = set()
    todo = list(start)
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        kind, client, name = item
        definition = realm_defs.get(name) if kind == "realm" else client_defs.get(client, {}).get(name)
        composites = (definition or {}).get("composites") or {}
        todo.extend(("realm", None, r) for r in composites.get("realm") or [])
        for c, names in (composites.get("client") or {}).items():
            todo.extend(("client", c, r) for r in names or [])
    return seen


def _direct_roles(rep):
    roles = {("realm", None, r) for r in rep.get("realmRoles") or []}
    for client, names in (rep.get("clientRoles") or {}).items():
        roles.update(("client", client, r) for r in names or [])
    return roles


def is_realm_admin(export, user, memberships):
    """Whether the user holds realm-management's realm-admin, directly or through groups."""
    roles = _direct_roles(user)
    for group, ancestors in memberships:
        for rep in (group, *ancestors):
            roles |= _direct_roles(rep)
    return ("client", ADMIN_CLIENT, ADMIN_ROLE) in _expand(roles, export)


def user_info_from_realm_export(export, username):
    user = find_user(export, username)
    index = group_index(export)
    memberships = []
    for path in user.get("groups") or []:
        if path not in index:
            raise RealmExportError(f"user '{username}' is in group {path!r}, which the realm export does not define")
        memberships.append(index[path])
    groups = [group_from_representation(g, g.get("realmRoles")) for g, _ in memberships]
    everyone_rep = index.get(f"/{EVERYONE}", (None, ()))[0]
    everyone = group_from_representation(everyone_rep, everyone_rep.get("realmRoles")) if everyone_rep else None
    info = user_info_from_representations(user, groups, everyone, is_realm_admin(export, user, memberships))
    info.attributes = flatten_attributes(user.get("attributes"))
    return info
