"""The realm tools' rules (scripts/realm) and the shape of the files they work on: the realm export,
the CRDs and the demo catalog. No servers: tests/integration/test_catalog_and_realm.py runs the same
files against real ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import apply_realm as ar
import check_catalog as cc
import realm_client as rc
import realmlib as rl

REPO = Path(__file__).resolve().parents[2]

REALM_FILE = REPO / "keycloak-realm" / "primehub-realm.json"
CRDS = REPO / "crds"


@pytest.fixture(scope="module")
def realm() -> dict:
    return rl.load_realm(REALM_FILE)


def _catalog(**kinds) -> dict:
    """{kind: {name: resource}} with the given names, e.g. _catalog(InstanceType=["a"])."""
    out = {k: {} for k in cc.CATALOG_KINDS}
    for kind, names in kinds.items():
        for n in names:
            spec = n if isinstance(n, tuple) else (n, {})
            out[kind][spec[0]] = {"kind": kind, "metadata": {"name": spec[0]}, "spec": spec[1]}
    return out


def _levels(findings) -> list[tuple[str, str]]:
    return [(f.level, f.subject) for f in findings]


# --- realmlib ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role, prefix, expected",
    [
        ("it:cpu-small", "", ("InstanceType", "cpu-small", False)),
        ("img:base-notebook", "", ("Image", "base-notebook", False)),
        ("ds:team-data", "", ("Dataset", "team-data", False)),
        ("ds:rw:team-data", "", ("Dataset", "team-data", True)),
        ("acme:it:cpu-small", "acme", ("InstanceType", "cpu-small", False)),
        ("acme:ds:rw:x", "acme", ("Dataset", "x", True)),
    ],
)
def test_parse_grant(role, prefix, expected):
    g = rl.parse_grant(role, prefix)
    assert (g.kind, g.name, g.writable) == expected and g.role == role


@pytest.mark.parametrize(
    "role, prefix",
    [
        ("offline_access", ""),
        ("default-roles-primehub", ""),
        ("uma_authorization", ""),
        ("it:cpu-small", "acme"),  # with a prefix, unprefixed roles are not grants
        ("other:it:cpu-small", "acme"),
        ("gpu:x", ""),
    ],
)
def test_roles_that_are_not_grants(role, prefix):
    assert rl.parse_grant(role, prefix) is None


def test_grant_role_is_the_inverse_of_parse_grant():
    for kind in ("InstanceType", "Image", "Dataset"):
        for prefix in ("", "p"):
            role = rl.grant_role(kind, "x", writable=kind == "Dataset", prefix=prefix)
            g = rl.parse_grant(role, prefix)
            assert (g.kind, g.name, g.writable) == (kind, "x", kind == "Dataset")


@pytest.mark.parametrize(
    "value, size",
    [
        ("8G", 8 * 1024**3),
        ("512M", 512 * 1024**2),
        ("4Gi", 4 * 1024**3),
        ("1.5G", int(1.5 * 1024**3)),
        ("8g", 8 * 1024**3),
        ("8GB", 8 * 1024**3),
        ("1k", 1024),
        ("1073741824", 1073741824),
        ("8X", None),
        ("G", None),
        ("-1G", None),
        ("", None),
    ],
)
def test_parse_memory_reads_g_as_gib(value, size):
    assert rl.parse_memory(value) == size


@pytest.mark.parametrize(
    "key, value, ok",
    [
        ("quota-cpu", "4", True),
        ("quota-cpu", "0.5", True),
        ("quota-cpu", "0", True),
        ("quota-cpu", "-1", False),
        ("quota-cpu", "four", False),
        ("quota-cpu", "500m", True),
        ("quota-gpu", "1", True),
        ("quota-gpu", "1.5", False),
        ("project-quota-gpu", "two", False),
        ("quota-memory", "8G", True),
        ("project-quota-memory", "12Gi", True),
        ("quota-memory", "8GB", True),
        ("quota-memory", "8g", True),
        ("quota-memory", "8X", False),
        ("quota-memory", "8", False),  # no unit: 8 bytes
        ("shared-volume-capacity", "1G", True),
        ("shared-volume-capacity", "10", True),  # GiB, as the hub reads it
        ("shared-volume-capacity", "big", False),
        ("enabled-shared-volume", "true", True),
        ("enabled-shared-volume", "yes", False),
        ("launch-group-only", "false", True),
        ("launch-group-only", "1", False),
    ],
)
def test_check_quota_value(key, value, ok):
    problem = rl.check_quota_value(key, value)
    assert (problem is None) == ok, problem
    if problem:
        level, why = problem
        assert key in why and value in why
        assert level == ("warning" if value == "8" else "error")


def test_group_attributes_unknown_primehub_and_typos():
    found = rl.check_group_attributes(
        "g",
        {
            "quota_cpu": ["2"],  # a typo of quota-cpu
            "colour": ["blue"],  # unknown, nothing close
            "mlflow-tracking-uri": ["http://x"],  # PrimeHub's, not this hub's: quiet
            "admins": ["alice"],
            "user-volume-capacity": ["20G"],
            "displayName": ["G"],
        },
    )
    assert ("warning", "unknown attribute 'quota_cpu' (did you mean 'quota-cpu'?)") in found
    assert ("warning", "unknown attribute 'colour'") in found
    assert len(found) == 2


def test_group_attributes_errors_and_warnings():
    found = rl.check_group_attributes(
        "g", {"quota-cpu": ["lots"], "quota-gpu": ["1", "2"], "enabled-shared-volume": ["true"]}
    )
    levels = sorted(level for level, _ in found)
    assert levels == ["error", "error", "warning"]
    assert any("shared-volume-capacity is missing" in m for _, m in found)
    assert any("only the first ('1') is used" in m for _, m in found)


def test_quota_on_everyone_is_pointless():
    found = rl.check_group_attributes("everyone", {"quota-cpu": ["1"]})
    assert found == [("warning", "quota-cpu on everyone do nothing: everyone is never a launch group")]


@pytest.mark.parametrize(
    "value, ok",
    [("5", True), ("2.5", True), ("5G", True), ("512Mi", True), ("five", False), ("-5", False), ("", False)],
)
def test_volume_capacity(value, ok):
    assert rl.is_volume_capacity(value) == ok


def test_project_volume_name():
    assert rl.project_volume_name("Data_Science") == "project-data-science"
    slugged = rl.project_volume_name("team one")
    assert slugged.startswith("project-team-one") and slugged != "project-team one"


def test_iter_groups_walks_sub_groups():
    groups = [{"name": "a", "path": "/a", "subGroups": [{"name": "b", "subGroups": [{"name": "c"}]}]}]
    assert [p for p, _ in rl.iter_groups(groups)] == ["/a", "/a/b", "/a/b/c"]


# --- check_catalog -------------------------------------------------------------------------------


def test_grant_without_resource_and_resource_without_grant():
    grants = {
        "ml-team": [rl.parse_grant("it:gpu-small"), rl.parse_grant("it:ghost-type")],
        "everyone": [rl.parse_grant("ds:public-data")],
    }
    found = cc.check_grants(grants, _catalog(InstanceType=["gpu-small", "amd-gpu"], Dataset=["public-data"]))
    assert _levels(found) == [("warning", "group ml-team"), ("warning", "InstanceType amd-gpu")]
    assert "ghost-type" in found[0].message and "ignored" in found[0].message
    assert "nobody sees it" in found[1].message


def test_a_writable_grant_counts_as_a_grant_and_mixed_grants_are_reported():
    grants = {"g": [rl.parse_grant("ds:rw:team-data"), rl.parse_grant("ds:team-data")]}
    found = cc.check_grants(grants, _catalog(Dataset=["team-data"]))
    assert len(found) == 1 and "both read-only and writable" in found[0].message


def test_grant_with_empty_name_is_an_error():
    assert rl.parse_grant("it:") is None  # the hub ignores it...
    realm = {
        "realm": "r",
        "groups": [{"name": "g", "path": "/g", "realmRoles": ["it:", "ds:rw:a:b", "it:ok", "other:x"]}],
    }
    found = cc.check_ignored_grants(realm)  # ...and check_catalog says so
    assert _levels(found) == [("error", "group g"), ("error", "group g")]
    assert "'it:'" in found[0].message and "'ds:rw:a:b'" in found[1].message


def test_roles_mapped_but_not_defined():
    realm = {
        "realm": "r",
        "roles": {"realm": [{"name": "it:a"}]},
        "groups": [{"name": "g", "path": "/g", "realmRoles": ["it:a", "it:b", "default-roles-r"]}],
        "users": [{"username": "u", "realmRoles": ["offline_access", "img:nope"]}],
    }
    found = cc.check_roles_defined(realm)
    assert _levels(found) == [("error", "group g"), ("error", "user u")]
    assert "'it:b'" in found[0].message and "'img:nope'" in found[1].message


def test_users_in_unknown_groups_direct_grants_and_bad_volume_capacity():
    realm = {
        "realm": "r",
        "groups": [{"name": "everyone", "path": "/everyone"}],
        "users": [
            {
                "username": "u",
                "groups": ["/everyone", "/ghosts"],
                "realmRoles": ["it:x"],
                "attributes": {"volume-capacity": ["five"]},
            },
            {"username": "service-account-x", "serviceAccountClientId": "x", "groups": ["/nope"]},
        ],
    }
    found = cc.check_users(realm)
    assert sorted(f.level for f in found) == ["error", "error", "warning"]
    assert all(f.subject == "user u" for f in found)


def test_group_names_and_shared_volume_names():
    realm = {
        "realm": "r",
        "groups": [
            {
                "name": "team one",
                "path": "/team one",
                "attributes": {"enabled-shared-volume": ["true"], "shared-volume-capacity": ["1G"]},
            },
            {"name": "a", "path": "/a", "subGroups": [{"name": "team one", "path": "/a/team one"}]},
        ],
    }
    found = cc.check_groups(realm)
    messages = [f.message for f in found]
    assert not any("PVC" in m for m in messages)  # the hub slugs such a name into a valid one
    assert any("more than one group has this name" in m for m in messages)
    assert any("no group 'everyone'" in m for m in messages)


def test_launch_groups_whose_instance_types_all_exceed_the_quota():
    realm = {
        "realm": "r",
        "groups": [
            {"name": "everyone", "path": "/everyone", "realmRoles": ["it:small"]},
            {"name": "tiny", "path": "/tiny", "attributes": {"quota-cpu": ["0.5"]}, "realmRoles": ["it:big"]},
            {"name": "fine", "path": "/fine", "attributes": {"quota-cpu": ["1"], "quota-memory": ["1G"]}},
            {"name": "no-gpu", "path": "/no-gpu", "attributes": {"quota-gpu": ["0"]}, "realmRoles": ["it:gpu"]},
        ],
    }
    catalog = _catalog(
        InstanceType=[
            ("small", {"limits": {"cpu": 1, "memory": "1G"}}),
            ("big", {"limits": {"cpu": 4, "memory": "8G"}}),
            ("gpu", {"limits": {"cpu": 1, "memory": "1G", "nvidia.com/gpu": 1}}),
        ]
    )
    found = cc.check_launchable(realm, catalog)
    assert [f.subject for f in found] == ["group tiny"]
    assert "big, small" in found[0].message and "quota-cpu 0.5" in found[0].message


def test_primehub_flat_instance_types_count_for_the_quota_check():
    realm = {
        "realm": "r",
        "groups": [{"name": "g", "path": "/g", "attributes": {"quota-memory": ["1G"]}, "realmRoles": ["it:flat"]}],
    }
    catalog = _catalog(InstanceType=[("flat", {"limits.cpu": 1, "limits.memory": "2G"})])
    assert [f.subject for f in cc.check_launchable(realm, catalog)] == ["group g"]


def test_group_offering_no_instance_type():
    realm = {"realm": "r", "groups": [{"name": "g", "path": "/g", "realmRoles": ["it:ghost"]}]}
    found = cc.check_launchable(realm, _catalog())
    assert found[0].message == "offers no existing instance type"


def test_annotations_the_schema_cannot_check():
    catalog = _catalog()
    catalog["Dataset"]["d"] = {
        "metadata": {
            "name": "d",
            "annotations": {"dataset.primehub.io/launchGroupOnly": "yes", "dataset.primehub.io/mountRoot": "mnt/"},
        }
    }
    found = cc.check_resources(catalog)
    assert sorted(f.level for f in found) == ["error", "warning"]


def test_load_catalog_reads_lists_and_only_the_folder_itself(tmp_path):
    (tmp_path / "a.yaml").write_text(
        yaml.safe_dump_all(
            [
                {"apiVersion": "primehub.io/v1alpha1", "kind": "Image", "metadata": {"name": "i"}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
            ]
        )
    )
    (tmp_path / "live.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {"apiVersion": "primehub.io/v1alpha1", "kind": "Dataset", "metadata": {"name": "d"}},
                    {"apiVersion": "primehub.io/v1alpha1", "kind": "Image", "metadata": {"name": "i"}},
                ],
            }
        )
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yaml").write_text(
        yaml.safe_dump({"apiVersion": "primehub.io/v1alpha1", "kind": "InstanceType", "metadata": {"name": "nested"}})
    )
    catalog, findings = cc.load_catalog([str(tmp_path)])
    assert set(catalog["Image"]) == {"i"} and set(catalog["Dataset"]) == {"d"} and not catalog["InstanceType"]
    assert [f.message for f in findings] == [f"defined twice; {tmp_path / 'live.yaml'} wins"]


def test_load_catalog_reports_bad_yaml_and_missing_paths(tmp_path):
    (tmp_path / "bad.yaml").write_text("a: [unclosed\n")
    _, findings = cc.load_catalog([str(tmp_path / "bad.yaml")])
    assert findings[0].level == "error" and "not valid YAML" in findings[0].message
    with pytest.raises(FileNotFoundError):
        cc.load_catalog([str(tmp_path / "missing.yaml")])


def test_exit_status():
    warn, err = cc.Finding("warning", "s", "m"), cc.Finding("error", "s", "m")
    assert cc.exit_status([], strict=False) == 0
    assert cc.exit_status([warn], strict=False) == 0
    assert cc.exit_status([warn], strict=True) == 1
    assert cc.exit_status([warn, err], strict=False) == 1


def test_the_demo_realm_and_catalog(capsys):
    """The demo is consistent except for what it shows on purpose: the ghost grant, two resources
    nobody is granted, and the groups whose quota rules out every instance type."""
    assert cc.main(["--realm-file", str(REALM_FILE), str(CRDS), str(CRDS / "examples")]) == 0
    out = capsys.readouterr().out
    assert "WARNING group ml-team: grants it:ghost-type, but there is no InstanceType 'ghost-type'" in out
    assert "InstanceType amd-gpu: no group grants it" in out
    assert "Dataset scratch: no group grants it" in out
    assert "group tiny: every instance type it offers" in out
    assert "group empty-quota: every instance type it offers" in out
    assert out.strip().splitlines()[-1].endswith("0 errors, 5 warnings")
    assert cc.main(["--strict", "--realm-file", str(REALM_FILE), str(CRDS / "examples")]) == 1


def test_broken_realm_file_is_exit_status_2(tmp_path, capsys):
    (tmp_path / "r.json").write_text("{}")
    assert cc.main(["--realm-file", str(tmp_path / "r.json"), str(CRDS / "examples")]) == 2
    assert "not a Keycloak realm export" in capsys.readouterr().err


# --- apply_realm planning ------------------------------------------------------------------------


def test_realm_settings_changes_only_plain_values():
    desired = {"realm": "r", "id": "x", "accessTokenLifespan": 300, "enabled": True, "groups": [], "smtp": {}}
    payload, lines = ar.realm_settings_changes(desired, {"accessTokenLifespan": 60, "enabled": True})
    assert payload == {"accessTokenLifespan": 300}
    assert lines == ["realm r: set accessTokenLifespan to 300 (was 60)"]
    assert ar.realm_settings_changes(desired, {"accessTokenLifespan": 300, "enabled": True}) == ({}, [])


def test_profile_changes_add_missing_attributes_and_keep_existing_ones():
    current = {
        "attributes": [{"name": "username"}, {"name": "timezone", "validations": {"length": {"max": 10}}}],
        "groups": [{"name": "user-metadata"}],
    }
    desired = {
        "attributes": [{"name": "timezone"}, {"name": "volume-capacity"}],
        "groups": [{"name": "primehub"}],
        "unmanagedAttributePolicy": "ADMIN_VIEW",
    }
    new, lines = ar.profile_changes(desired, current)
    assert [a["name"] for a in new["attributes"]] == ["username", "timezone", "volume-capacity"]
    assert new["attributes"][1]["validations"] == {"length": {"max": 10}}  # an admin's choice stays
    assert new["unmanagedAttributePolicy"] == "ADMIN_VIEW"
    assert len(lines) == 3
    assert ar.profile_changes(desired, new) == (None, [])
    assert "unmanagedAttributePolicy" not in current  # the input is not modified


def test_profile_changes_keep_a_policy_the_admin_set():
    new, lines = ar.profile_changes(
        {"unmanagedAttributePolicy": "ADMIN_VIEW"}, {"attributes": [], "unmanagedAttributePolicy": "ENABLED"}
    )
    assert (new, lines) == (None, [])


def test_role_changes():
    desired = [{"name": "it:a", "description": "A", "composite": False}, {"name": "it:b", "description": "B"}]
    current = [{"name": "it:a", "id": "1", "description": "old"}, {"name": "offline_access"}]
    create, update = ar.role_changes(desired, current)
    assert create == [({"name": "it:b", "description": "B"}, "create realm role it:b")]
    assert update == [("it:a", {"name": "it:a", "id": "1", "description": "A"}, "realm role it:a: set description")]
    assert ar.role_changes(desired, [{"name": "it:a", "description": "A"}, {"name": "it:b", "description": "B"}]) == (
        [],
        [],
    )


def test_attribute_changes_merge_and_keep_other_keys():
    merged, lines = ar.attribute_changes(
        "group /g", {"quota-cpu": ["4"], "displayName": ["G"]}, {"quota-cpu": ["2"], "mlflow-ui-url": ["http://x"]}
    )
    assert merged == {"quota-cpu": ["4"], "displayName": ["G"], "mlflow-ui-url": ["http://x"]}
    assert lines == ['group /g: set attribute quota-cpu to "4" (was "2")', 'group /g: set attribute displayName to "G"']
    assert ar.attribute_changes("g", {"a": ["1"]}, {"a": ["1"], "b": ["2"]})[1] == []
    assert ar.attribute_changes("g", {"a": "1"}, {"a": ["1"]})[1] == []  # a bare string is one value


def test_missing_keeps_the_export_order():
    assert ar.missing(["c", "a", "b"], ["a"]) == ["c", "b"]


@pytest.fixture
def client(realm) -> dict:
    return next(c for c in realm["clients"] if c["clientId"] == "jupyterhub")


def test_client_changes_none_when_equal_up_to_order(client):
    current = json.loads(json.dumps(client))
    current["redirectUris"].reverse()
    current["id"] = "uuid"
    current["attributes"]["client.secret.creation.time"] = "1"
    new, lines = rc.client_changes(client, current)
    assert lines == []
    assert new["attributes"]["client.secret.creation.time"] == "1"


def test_client_changes_report_each_field(client):
    current = {**json.loads(json.dumps(client)), "directAccessGrantsEnabled": True, "standardFlowEnabled": False}
    current["attributes"]["pkce.code.challenge.method"] = ""
    new, lines = rc.client_changes(client, current)
    assert new["directAccessGrantsEnabled"] is False and new["attributes"]["pkce.code.challenge.method"] == "S256"
    assert new["standardFlowEnabled"] is True
    assert len(lines) == 3 and all(ln.startswith("client jupyterhub: set ") for ln in lines)


def test_apply_realm_never_weakens_a_stricter_client_on_the_server():
    demo = next(c for c in rl.demo_realm()["clients"] if c["clientId"] == "jupyterhub")
    server = {
        **json.loads(json.dumps(demo)),
        "directAccessGrantsEnabled": False,
        "implicitFlowEnabled": False,
        "redirectUris": ["https://hub.example.com/hub/oauth_callback"],
        "webOrigins": ["https://hub.example.com"],
        "baseUrl": "https://hub.example.com/hub/",
    }
    server["attributes"] = {
        **server["attributes"],
        "access.token.lifespan": "120",
        "post.logout.redirect.uris": "https://hub.example.com/*",
    }
    kept = []
    new, lines = rc.client_changes(demo, server, kept=kept)
    assert lines == []
    assert new["directAccessGrantsEnabled"] is False  # the demo file would turn the password grant on
    assert new["redirectUris"] == ["https://hub.example.com/hub/oauth_callback"]  # not back to localhost
    assert new["attributes"]["access.token.lifespan"] == "120"
    assert new["attributes"]["post.logout.redirect.uris"] == "https://hub.example.com/*"
    assert any("directAccessGrantsEnabled kept as false" in k for k in kept) and len(kept) == 6
    # --hub-url is how the addresses change
    new, lines = rc.client_changes(demo, server, ["https://new.example.com"])
    assert new["redirectUris"] == ["https://new.example.com/hub/oauth_callback"]


def test_hub_urls_replace_the_local_addresses(client):
    want = rc.effective_client(client, ["https://hub.example.com/"])
    assert want["redirectUris"] == ["https://hub.example.com/hub/oauth_callback"]
    assert want["webOrigins"] == ["https://hub.example.com"]
    assert want["attributes"]["post.logout.redirect.uris"] == "https://hub.example.com/*"
    assert client["redirectUris"][0].startswith("http://127.0.0.1")  # the export is not modified


def test_mapper_changes():
    desired = [
        {
            "name": "groups",
            "protocolMapper": "oidc-group-membership-mapper",
            "config": {"claim.name": "groups", "full.path": "false"},
        },
        {"name": "email", "protocolMapper": "oidc-usermodel-attribute-mapper", "config": {}},
    ]
    current = [
        {
            "id": "1",
            "name": "groups",
            "protocolMapper": "oidc-group-membership-mapper",
            "config": {"claim.name": "groups", "full.path": "true", "extra": "kept"},
        }
    ]
    add, update = rc.mapper_changes(desired, current)
    assert add == [(desired[1], "add protocol mapper email")]
    assert update == [
        (
            {
                "id": "1",
                "name": "groups",
                "protocolMapper": "oidc-group-membership-mapper",
                "config": {"claim.name": "groups", "full.path": "false", "extra": "kept"},
            },
            "update protocol mapper groups (full.path)",
        )
    ]
    assert rc.mapper_changes(
        desired, [dict(current[0], config={**current[0]["config"], "full.path": "false"}), {"id": "2", **desired[1]}]
    ) == ([], [])


def test_user_field_changes():
    payload, lines = ar.user_field_changes(
        {"username": "u", "email": "u@x", "enabled": True, "credentials": []}, {"email": "old@x", "enabled": True}
    )
    assert payload == {"email": "u@x"} and lines == ['user u: set email to "u@x"']


def test_service_account_and_profile_come_from_the_export(realm):
    sa = rc.service_account_entry(realm, "jupyterhub")
    assert sa["username"] == "service-account-jupyterhub"
    profile = ar.export_profile(realm)
    assert {"volume-capacity", "timezone"} <= {a["name"] for a in profile["attributes"]}
    assert rc.service_account_entry(realm, "nope") is None


# --- the realm export ----------------------------------------------------------------------------


def _group(realm, name):
    return next(g for g in realm["groups"] if g["name"] == name)


def test_realm_client_is_the_hubs(client, realm):
    assert realm["realm"] == "primehub" and realm["accessTokenLifespan"] == 300
    # what an operator imports: no secret (Keycloak makes one), no password grant
    assert "secret" not in client and not client["publicClient"]
    assert (
        client["standardFlowEnabled"] and not client["directAccessGrantsEnabled"] and client["serviceAccountsEnabled"]
    )
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert set(client["redirectUris"]) == {
        "http://127.0.0.1:8000/hub/oauth_callback",
        "http://localhost:8000/hub/oauth_callback",
    }
    assert set(client["attributes"]["post.logout.redirect.uris"].split("##")) == {
        "http://127.0.0.1:8000/*",
        "http://localhost:8000/*",
    }
    mappers = {m["name"]: m for m in client["protocolMappers"]}
    assert mappers["groups"]["config"]["full.path"] == "false"
    assert mappers["groups"]["config"]["claim.name"] == "groups"
    assert mappers["realm roles"]["config"]["claim.name"] == "roles"
    assert mappers["realm roles"]["config"]["multivalued"] == "true"
    for m in mappers.values():
        for where in ("id.token.claim", "access.token.claim", "userinfo.token.claim"):
            assert m["config"][where] == "true", (m["name"], where)


def test_service_account_can_only_read(realm):
    sa = rc.service_account_entry(realm, "jupyterhub")
    assert sa["clientRoles"] == {"realm-management": ["view-users", "query-users", "query-groups"]}
    assert not sa.get("realmRoles")


def test_realm_groups_and_grants(realm):
    grants = cc.group_grants(realm)
    names = {g: {x.role for x in gs} for g, gs in grants.items()}
    assert names["everyone"] == {"it:cpu-small", "img:base-notebook", "ds:public-data", "ds:notebooks-repo"}
    assert names["data-science"] == {
        "it:cpu-large",
        "img:datascience-notebook",
        "img:private-notebook",
        "ds:rw:team-data",
        "ds:training-set",
    }
    assert names["ml-team"] == {
        "it:gpu-small",
        "it:gpu-huge",
        "img:pytorch-gpu",
        "ds:ml-private",
        "ds:archive",
        "ds:team-data",
        "it:ghost-type",
    }
    assert names["tiny"] == {"it:cpu-large"} and names["empty-quota"] == set()
    assert _group(realm, "tiny")["attributes"]["quota-cpu"] == ["0.5"]
    assert _group(realm, "data-science")["attributes"]["enabled-shared-volume"] == ["true"]
    for g in realm["groups"]:
        assert g["attributes"]["displayName"], g["name"]
        assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in g["attributes"].values())
    defined = {r["name"] for r in realm["roles"]["realm"]}
    assert set().union(*names.values()) == defined


def test_the_importable_realm_has_no_users_or_secrets_and_the_demo_overlay_adds_them(realm):
    assert [u["username"] for u in realm["users"]] == ["service-account-jupyterhub"]
    assert "local-dev-only-secret" not in REALM_FILE.read_text()
    demo = rl.demo_realm()
    client = next(c for c in demo["clients"] if c["clientId"] == "jupyterhub")
    assert client["secret"] == "local-dev-only-secret" and client["directAccessGrantsEnabled"] is True
    assert rl.load_realm(REALM_FILE) == realm  # the overlay is laid over a copy


def test_the_demo_realm_file_for_a_local_keycloak(tmp_path):
    import demo_realm

    out = tmp_path / "realm.json"
    assert demo_realm.main([str(out)]) == 0
    assert json.loads(out.read_text()) == rl.demo_realm()


def test_realm_demo_users():
    realm = rl.demo_realm()
    users = {u["username"]: u for u in realm["users"] if not u.get("serviceAccountClientId")}
    assert set(users) == {"alice", "bob", "carol", "dana", "erin"}
    expected_groups = {
        "alice": {"data-science", "ml-team"},
        "bob": {"data-science", "gpu-lab"},
        "carol": set(),
        "dana": {"data-science"},
        "erin": {"tiny", "empty-quota"},
    }
    for name, u in users.items():
        assert set(u["groups"]) == {"/everyone"} | {f"/{g}" for g in expected_groups[name]}
        assert u["credentials"] == [{"type": "password", "value": f"{name}-pw", "temporary": False}]
        assert u["emailVerified"] and u["enabled"] and u["requiredActions"] == []
        # The declarative user profile requires these; without them Keycloak asks at login.
        assert u["email"] and u["firstName"] and u["lastName"]
    assert users["alice"]["attributes"] == {"volume-capacity": ["5"], "timezone": ["Asia/Taipei"]}
    assert users["dana"]["clientRoles"] == {"realm-management": ["realm-admin"]}
    assert not any(u.get("clientRoles") for n, u in users.items() if n != "dana")


def test_realm_export_has_no_findings_that_are_errors(realm):
    realm = rl.demo_realm()
    assert [
        f for f in cc.check_roles_defined(realm) + cc.check_groups(realm) + cc.check_users(realm) if f.level == "error"
    ] == []


# --- CRDs and the demo catalog -------------------------------------------------------------------


def _yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _crd_schemas() -> dict[str, dict]:
    out = {}
    for f in sorted(CRDS.glob("*.yaml")):
        (crd,) = _yaml_docs(f)
        assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == "primehub.io"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1"
        out[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def _undeclared(value, schema: dict, path: str) -> list[str]:
    """Paths in `value` that the structural schema does not declare (the API server would prune them)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        if "properties" in schema:
            out = []
            for k, v in value.items():
                if k not in schema["properties"]:
                    out.append(f"{path}.{k}")
                else:
                    out += _undeclared(v, schema["properties"][k], f"{path}.{k}")
            return out
        if isinstance(schema.get("additionalProperties"), dict):
            return [p for k, v in value.items() for p in _undeclared(v, schema["additionalProperties"], f"{path}.{k}")]
    if isinstance(value, list) and "items" in schema:
        return [p for i, v in enumerate(value) for p in _undeclared(v, schema["items"], f"{path}[{i}]")]
    return []


def test_crds_parse_and_name_their_kinds():
    assert set(_crd_schemas()) == {"InstanceType", "Image", "Dataset"}


def test_every_example_field_is_declared_by_its_crd():
    schemas = _crd_schemas()
    docs = [d for f in sorted((CRDS / "examples").glob("*.yaml")) for d in _yaml_docs(f)]
    assert len(docs) == 16
    for doc in docs:
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]
        assert _undeclared(doc["spec"], schemas[doc["kind"]]["properties"]["spec"], "spec") == [], doc["metadata"][
            "name"
        ]


def test_each_invalid_resource_says_which_field_and_why():
    files = sorted((CRDS / "invalid").glob("*.yaml"))
    assert len(files) >= 20
    names = set()
    for f in files:
        text = f.read_text()
        assert "# field: " in text and "# why: " in text, f.name
        (doc,) = _yaml_docs(f)
        assert doc["apiVersion"] == "primehub.io/v1alpha1"
        names.add((doc["kind"], doc["metadata"]["name"]))
    assert len(names) == len(files)  # one resource per file, none sharing a name


class _FakeKeycloak:
    """Just enough of KeycloakAdmin for a realm-settings-only export."""

    def __init__(self, realms: dict):
        self.realms = realms
        self.calls = []

    def get_realm(self, name):
        from keycloak.exceptions import KeycloakGetError

        if name not in self.realms:
            raise KeycloakGetError(error_message="Realm not found.", response_code=404)
        return dict(self.realms[name])

    def create_realm(self, payload):
        self.calls.append(("create_realm", payload["realm"]))
        self.realms[payload["realm"]] = dict(payload)

    def update_realm(self, name, payload):
        self.calls.append(("update_realm", payload))
        self.realms[name].update(payload)

    def change_current_realm(self, name):
        pass

    def get_realm_roles(self, brief_representation=True):
        return []


def _run(fake, export, **kw):
    lines = []
    ar.Applier(fake, export, out=lines.append, **kw).run()
    return lines


def test_an_existing_realms_settings_are_left_alone_unless_asked(capsys):
    export = {"realm": "r", "accessTokenLifespan": 300, "sslRequired": "external"}
    fake = _FakeKeycloak({"r": {"realm": "r", "accessTokenLifespan": 60, "sslRequired": "all"}})
    assert _run(fake, export) == ["no changes"]
    assert fake.calls == []
    assert "left alone (accessTokenLifespan, sslRequired)" in capsys.readouterr().err
    assert _run(fake, export, realm_settings=True) == [
        "realm r: set accessTokenLifespan to 300 (was 60)",
        'realm r: set sslRequired to "external" (was "all")',
    ]
    assert _run(fake, export) == ["no changes"]


def test_a_new_realm_gets_the_files_settings_and_a_dry_run_changes_nothing():
    export = {"realm": "r", "accessTokenLifespan": 300}
    fake = _FakeKeycloak({})
    assert _run(fake, export, dry_run=True) == [
        "would create realm r",
        "(a dry run stops here: everything else in r would be created too)",
    ]
    assert fake.calls == []
    assert _run(fake, export) == ["create realm r", "realm r: set accessTokenLifespan to 300 (was null)"]
    assert _run(fake, export) == ["no changes"]


# --- the realm tools and the hub read a realm alike ------------------------------------------------


def test_check_catalog_and_the_hub_read_the_same_realm_the_same_way():
    """check_catalog's verdicts and the hub's (through `primehub-profiles explain`) on one realm:
    memory units the hub accepts are not errors, `1k` is 1024 bytes for both, and a long group's
    shared volume has the one name the hub gives it."""
    from primehub_hub.explain import explain_user
    from primehub_hub.realm_export import user_info_from_realm_export
    from primehub_hub.resources import Catalog

    long_group = "Data_Science_Department_Of_A_Rather_Large_Company_Worldwide"
    attributes = {
        "ml-team": {"quota-memory": ["8g"], "project-quota-memory": ["8GB"], "quota-cpu": ["500m"]},
        "tiny": {"quota-memory": ["1k"]},
        long_group: {"enabled-shared-volume": ["true"], "shared-volume-capacity": ["10"]},
    }
    realm = {
        "realm": "r",
        "groups": [{"name": "everyone", "path": "/everyone", "realmRoles": ["it:small", "img:base"]}]
        + [{"name": n, "path": f"/{n}", "attributes": a} for n, a in attributes.items()],
        "users": [{"username": "alice", "enabled": True, "groups": [f"/{n}" for n in attributes]}],
    }
    docs = [
        {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "InstanceType",
            "metadata": {"name": "small"},
            "spec": {"limits.cpu": 0.5, "limits.memory": "1G"},
        },
        {
            "apiVersion": "primehub.io/v1alpha1",
            "kind": "Image",
            "metadata": {"name": "base"},
            "spec": {"url": "jupyter/base-notebook", "type": "both"},
        },
    ]
    tool = cc.check_all(
        realm, {k: {d["metadata"]["name"]: d for d in docs if d["kind"] == k} for k in cc.CATALOG_KINDS}
    )
    hub = {
        g["name"]: g
        for g in explain_user(user_info_from_realm_export(realm, "alice"), Catalog.from_objects(docs))["groups"]
    }

    assert [f for f in tool if f.level == "error"] == []
    assert all(not g["quotaErrors"] for g in hub.values())
    assert hub["ml-team"]["quota"]["memory"] == rl.parse_memory("8g") == 8 * 1024**3
    assert hub["ml-team"]["projectQuota"]["memory"] == rl.parse_memory("8GB") == 8 * 1024**3
    assert hub["tiny"]["quota"]["memory"] == rl.parse_memory("1k") == 1024
    # 1 GiB does not fit 1 KiB: both say so, about the same group
    assert [f.subject for f in tool if "exceeds its quota" in f.message] == ["group tiny"]
    assert [n for n, g in hub.items() if not all(i["fitsQuota"] for i in g["instanceTypes"])] == ["tiny"]
    (volume,) = hub[long_group]["sharedVolumes"]
    assert volume["claimName"] == rl.project_volume_name(long_group)
    assert len(volume["claimName"]) <= 63 and volume["capacity"] == "10Gi"
