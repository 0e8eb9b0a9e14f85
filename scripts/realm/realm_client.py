"""The hub's Keycloak client in a realm export, applied by apply_realm.py: the fields the export owns,
what may never be loosened on an existing client, its protocol mappers and its service account's
roles. Planning is pure (unit-tested in tests/unit/test_realm_tools.py); `ClientApplier`, a mixin of
apply_realm.Applier, reads the server, plans with it and writes through `Applier.change`.
"""

from __future__ import annotations

import copy
import json

# Client fields the export owns. Anything else (ids, secrets, defaults Keycloak adds) is left alone.
CLIENT_FIELDS = (
    "name",
    "description",
    "enabled",
    "protocol",
    "publicClient",
    "clientAuthenticatorType",
    "standardFlowEnabled",
    "implicitFlowEnabled",
    "directAccessGrantsEnabled",
    "serviceAccountsEnabled",
    "frontchannelLogout",
    "rootUrl",
    "baseUrl",
    "redirectUris",
    "webOrigins",
    "bearerOnly",
    "consentRequired",
    "fullScopeAllowed",
)
SET_FIELDS = ("redirectUris", "webOrigins")  # order carries no meaning in Keycloak
# On an existing client these are the operator's: a file must never weaken what the server has.
WEAKER_WHEN_TRUE = ("directAccessGrantsEnabled", "implicitFlowEnabled", "publicClient", "fullScopeAllowed")
WEAKER_WHEN_FALSE = ("consentRequired",)
# Where the hub lives: set only from --hub-url, never back to the file's local addresses.
URL_FIELDS = ("redirectUris", "webOrigins", "baseUrl", "rootUrl")
URL_ATTRIBUTES = ("post.logout.redirect.uris",)


def weakens(key: str, value, current, hub_urls: list[str] | None = None) -> bool:
    """Whether setting an existing client's `key` from `current` to `value` would loosen it: turn on
    the password grant or the implicit flow, make it public, drop consent, lengthen its tokens, or
    put the file's local addresses in place of the operator's (without --hub-url)."""
    if key in WEAKER_WHEN_TRUE:
        return value is True and current is False
    if key in WEAKER_WHEN_FALSE:
        return value is False and current is True
    if key in URL_FIELDS or key in URL_ATTRIBUTES:
        return not hub_urls and current not in (None, "", [])
    if key == "access.token.lifespan":
        try:
            return float(value) > float(current)
        except (TypeError, ValueError):
            return False
    return False


def client_changes(
    desired: dict, current: dict, hub_urls: list[str] | None = None, kept: list[str] | None = None
) -> tuple[dict, list[str]]:
    """A full client payload with the export's fields set, and one line per field that differs.

    Never weakens the existing client (see `weakens`); what is left stricter is added to `kept`."""
    want = effective_client(desired, hub_urls)
    new = copy.deepcopy(current)
    lines = []
    kept = [] if kept is None else kept
    cid = desired["clientId"]
    for key in CLIENT_FIELDS:
        if key not in want:
            continue
        value, cur = want[key], current.get(key)
        same = (sorted(value) == sorted(cur or [])) if key in SET_FIELDS else (cur == value)
        if not same and weakens(key, value, cur, hub_urls):
            kept.append(f"client {cid}: {key} kept as {json.dumps(cur)} (the file's {json.dumps(value)} is weaker)")
        elif not same:
            new[key] = value
            lines.append(f"client {cid}: set {key} to {json.dumps(value)}")
    attrs = dict(current.get("attributes") or {})
    for key, value in (want.get("attributes") or {}).items():
        if attrs.get(key) != value and weakens(key, value, attrs.get(key), hub_urls):
            kept.append(
                f"client {cid}: attribute {key} kept as {json.dumps(attrs.get(key))} "
                f"(the file's {json.dumps(value)} is weaker)"
            )
        elif attrs.get(key) != value:
            attrs[key] = value
            lines.append(f"client {cid}: set attribute {key} to {json.dumps(value)}")
    new["attributes"] = attrs
    return new, lines


def effective_client(desired: dict, hub_urls: list[str] | None) -> dict:
    """The export's client, with its URLs replaced by those of the given hub(s) if any."""
    want = copy.deepcopy(desired)
    if hub_urls:
        bases = [u.rstrip("/") for u in hub_urls]
        want["redirectUris"] = [f"{b}/hub/oauth_callback" for b in bases]
        want["webOrigins"] = bases
        want["baseUrl"] = f"{bases[0]}/hub/"
        want.setdefault("attributes", {})["post.logout.redirect.uris"] = "##".join(f"{b}/*" for b in bases)
    return want


def mapper_changes(desired: list[dict], current: list[dict]) -> tuple[list[tuple[dict, str]], list[tuple[dict, str]]]:
    """(mapper, line) of protocol mappers to add, and of existing ones (full payload) whose type
    or config differ; config keys Keycloak added and the export does not name are kept."""
    by_name = {m["name"]: m for m in current}
    add, update = [], []
    for m in desired:
        cur = by_name.get(m["name"])
        if cur is None:
            add.append((m, f"add protocol mapper {m['name']}"))
            continue
        cfg = dict(cur.get("config") or {})
        diff = {k: v for k, v in (m.get("config") or {}).items() if cfg.get(k) != v}
        if diff or cur.get("protocolMapper") != m.get("protocolMapper"):
            cfg.update(m.get("config") or {})
            update.append(
                (
                    {**cur, "protocolMapper": m["protocolMapper"], "config": cfg},
                    f"update protocol mapper {m['name']}" + (f" ({', '.join(sorted(diff))})" if diff else ""),
                )
            )
    return add, update


def service_account_entry(realm: dict, client_id: str) -> dict | None:
    for u in realm.get("users") or []:
        if u.get("serviceAccountClientId") == client_id:
            return u
    return None


class ClientApplier:
    """The client steps of apply_realm.Applier (which has `kc`, `realm`, `hub_urls`, `client_secret`,
    `dry_run`, `change`, `note`, `_client_uuid` and `_grant_client_roles`)."""

    def apply_client(self, desired: dict):
        cid = desired["clientId"]
        uuid = self._client_uuid(cid)
        if uuid is None:
            payload = effective_client(desired, self.hub_urls)
            payload["secret"] = self.client_secret or desired.get("secret")
            if not self.client_secret and desired.get("secret"):
                self.note(
                    f"client {cid} gets the secret written in the realm file; "
                    "pass --client-secret-file to choose your own"
                )
            lines = [f"create client {cid}"] + [
                f"client {cid}: add protocol mapper {m['name']}" for m in desired.get("protocolMappers") or []
            ]
            self.change(lines, self.kc.create_client, payload)
            uuid = None if self.dry_run else self._client_uuid(cid)
        else:
            current = self.kc.get_client(uuid)
            kept: list[str] = []
            new, lines = client_changes(desired, current, self.hub_urls, kept)
            for line in kept:
                self.note(line)
            new.pop("protocolMappers", None)
            self.change(lines, self.kc.update_client, uuid, new)
            if self.client_secret is not None:
                have = (self.kc.get_client_secrets(uuid) or {}).get("value")
                if have != self.client_secret:
                    self.change(
                        [f"client {cid}: set its secret"],
                        self.kc.update_client,
                        uuid,
                        {**new, "secret": self.client_secret},
                    )
            add, update = mapper_changes(desired.get("protocolMappers") or [], self.kc.get_mappers_from_client(uuid))
            for m, line in add:
                self.change([f"client {cid}: {line}"], self.kc.add_mapper_to_client, uuid, m)
            for m, line in update:
                self.change([f"client {cid}: {line}"], self.kc.update_client_mapper, uuid, m["id"], m)
        self.apply_service_account(desired, uuid)

    def apply_service_account(self, client: dict, uuid: str | None):
        entry = service_account_entry(self.realm, client["clientId"])
        if not entry or not client.get("serviceAccountsEnabled"):
            return
        sa = self.kc.get_client_service_account_user(uuid) if uuid else None
        held = self._grant_client_roles(
            f"service account of {client['clientId']}",
            sa["id"] if sa else None,
            entry.get("clientRoles"),
            self.kc.get_client_roles_of_user,
            self._assign_user_client_role,
        )
        for client_id, roles in (entry.get("clientRoles") or {}).items():
            have = held[client_id]
            extra = sorted(set(have) - set(roles))
            if extra:
                # Not removed: someone granted them on purpose, or by mistake; either way a person decides.
                self.note(
                    f"the service account of {client['clientId']} also holds {client_id} roles "
                    f"{', '.join(extra)}, which the realm file does not give it (left in place)"
                )

    def _assign_user_client_role(self, user_id: str, client_id: str, role: str):
        cuuid = self._client_uuid(client_id)
        self.kc.assign_client_role(user_id, cuuid, [self.kc.get_client_role(cuuid, role)])
