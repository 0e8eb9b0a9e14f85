"""The catalog's CRDs and the realm export on the real servers: the API server accepts the demo
catalog as written and refuses each broken resource naming the field; Keycloak imports the realm,
the hub's service account can read what the hub needs and nothing more, and apply_realm.py is
idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import kubernetes
import pytest
import yaml

from localstack import cluster as local_cluster

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
EXAMPLES = CRDS / "examples"
INVALID = sorted((CRDS / "invalid").glob("*.yaml"))
REALM_TOOLS = REPO / "scripts" / "realm"
PLURAL = {"InstanceType": "instancetypes", "Image": "images", "Dataset": "datasets"}


def _examples() -> list[dict]:
    docs = []
    for f in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def _field_of(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# field:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{path} has no '# field:' comment")


@pytest.fixture(scope="module")
def catalog(cluster):
    """The CRDs and the demo catalog, applied here (idempotent) so that this module does not
    depend on what the cluster fixture already did."""
    local_cluster.apply_crds(run=cluster.kubectl)
    if cluster.kubectl("get", "namespace", cluster.namespace, check=False).returncode:
        cluster.kubectl("create", "namespace", cluster.namespace)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-n", cluster.namespace, "-f", str(EXAMPLES))
    return cluster


# --- CRDs and the catalog ------------------------------------------------------------------------


def test_crds_are_established_with_their_names(catalog):
    crds = json.loads(catalog.kubectl("get", "crd", "-o", "json").stdout)["items"]
    by_name = {c["metadata"]["name"]: c for c in crds}
    for plural, kind, short in (
        ("instancetypes", "InstanceType", "it"),
        ("images", "Image", "img"),
        ("datasets", "Dataset", "dset"),
    ):
        crd = by_name[f"{plural}.primehub.io"]
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True", conditions
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["kind"] == kind
        assert short in crd["spec"]["names"]["shortNames"]
        assert [v["name"] for v in crd["spec"]["versions"] if v["served"] and v["storage"]] == ["v1alpha1"]


def test_every_example_is_stored_as_written(catalog):
    """Nothing of the demo catalog is pruned: each spec and annotation comes back unchanged."""
    api = kubernetes.client.CustomObjectsApi(catalog.api())
    docs = _examples()
    assert docs
    for doc in docs:
        name = doc["metadata"]["name"]
        stored = api.get_namespaced_custom_object(
            "primehub.io", "v1alpha1", catalog.namespace, PLURAL[doc["kind"]], name
        )
        assert stored["spec"] == doc["spec"], f"{doc['kind']} {name} was changed by the API server"
        for key, value in (doc["metadata"].get("annotations") or {}).items():
            assert stored["metadata"]["annotations"][key] == value


def test_the_demo_catalog_has_the_names_other_parts_use(catalog):
    api = kubernetes.client.CustomObjectsApi(catalog.api())

    def names(plural):
        items = api.list_namespaced_custom_object("primehub.io", "v1alpha1", catalog.namespace, plural)["items"]
        return {i["metadata"]["name"] for i in items}

    assert {"cpu-small", "cpu-large", "gpu-small", "gpu-huge", "amd-gpu"} <= names("instancetypes")
    assert {"base-notebook", "datascience-notebook", "pytorch-gpu", "private-notebook"} <= names("images")
    assert {"public-data", "team-data", "training-set", "archive", "notebooks-repo", "ml-private", "scratch"} <= names(
        "datasets"
    )
    out = catalog.kubectl("get", "primehub", "-n", catalog.namespace).stdout
    assert "instancetype.primehub.io/gpu-huge" in out and "dataset.primehub.io/scratch" in out


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_resource_is_refused_naming_the_field(catalog, path):
    field = _field_of(path)
    proc = catalog.kubectl("create", "-n", catalog.namespace, "-f", str(path), check=False)
    if proc.returncode == 0:
        catalog.kubectl("delete", "-n", catalog.namespace, "-f", str(path), check=False)
        raise AssertionError(f"the API server accepted {path.name}:\n{proc.stdout}")
    assert "is invalid" in proc.stderr, proc.stderr
    assert field in proc.stderr, f"the refusal does not name {field}:\n{proc.stderr}"


def test_primehub_flat_instance_types_still_load(catalog):
    """An InstanceType as PrimeHub wrote it (flat 'limits.cpu' keys) is accepted and kept."""
    doc = {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "InstanceType",
        "metadata": {"name": "primehub-flat-form"},
        "spec": {
            "displayName": "cpu-1",
            "limits.cpu": 1,
            "limits.memory": "1G",
            "limits.nvidia.com/gpu": 0,
            "requests.cpu": 0.5,
            "requests.memory": "1G",
        },
    }
    out = catalog.kubectl(
        "create", "--dry-run=server", "-o", "json", "-n", catalog.namespace, "-f", "-", input=json.dumps(doc)
    )
    assert json.loads(out.stdout)["spec"] == doc["spec"]


def test_memory_is_compared_as_a_quantity_not_as_text(catalog):
    def instance_type(limit, request):
        return json.dumps(
            {
                "apiVersion": "primehub.io/v1alpha1",
                "kind": "InstanceType",
                "metadata": {"name": "memory-compare"},
                "spec": {"limits": {"cpu": 1, "memory": limit}, "requests": {"memory": request}},
            }
        )

    ok = catalog.kubectl(
        "create",
        "--dry-run=server",
        "-n",
        catalog.namespace,
        "-f",
        "-",
        input=instance_type("1Gi", "1000M"),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr  # "1000M" > "1Gi" as text, smaller as bytes
    refused = catalog.kubectl(
        "create", "--dry-run=server", "-n", catalog.namespace, "-f", "-", input=instance_type("900M", "1G"), check=False
    )
    assert refused.returncode != 0 and "spec.requests.memory" in refused.stderr


PRIMEHUB_EXPORT = REPO / "tests" / "fixtures" / "primehub-export.yaml"


def test_a_primehub_export_is_accepted_unchanged_and_the_hub_offers_it(catalog):
    """What a running PrimeHub stores (empty pullSecret and url, a custom image still building with
    imageSpec and status, enableUploadServer as a string, flat limits.gpu with AMD and Intel resource
    names) is accepted as is, comes back unchanged, and the hub's own parser offers it."""
    sys.path.insert(0, str(REPO / "hub-config"))
    from primehub_hub.entitlements import EVERYONE, Group, UserInfo
    from primehub_hub.plan import group_offer
    from primehub_hub.resources import Catalog

    docs = [d for d in yaml.safe_load_all(PRIMEHUB_EXPORT.read_text()) if d]
    api = kubernetes.client.CustomObjectsApi(catalog.api())
    try:
        catalog.kubectl(
            "apply", "--server-side", "--force-conflicts", "-n", catalog.namespace, "-f", str(PRIMEHUB_EXPORT)
        )
        stored = []
        for doc in docs:
            obj = api.get_namespaced_custom_object(
                "primehub.io", "v1alpha1", catalog.namespace, PLURAL[doc["kind"]], doc["metadata"]["name"]
            )
            assert obj["spec"] == doc["spec"], f"{doc['kind']} {doc['metadata']['name']} was changed"
            if "status" in doc:
                assert obj.get("status") == doc["status"], f"status of {doc['metadata']['name']} was pruned"
            stored.append(obj)
        parsed = Catalog.from_objects(stored)
        roles = [
            "it:ph-cpu-1",
            "it:ph-gpu-amd",
            "it:ph-gpu-intel",
            "img:ph-base",
            "img:ph-custom-building",
            "ds:ph-mnist",
            "ds:ph-env",
        ]
        user = UserInfo("migrated", groups=[Group("data-science", realm_roles=roles), Group(EVERYONE)])
        offer = group_offer(user, user.groups[0], parsed)
        assert [o.resource.name for o in offer.instance_types] == [
            "ph-gpu-amd",
            "ph-cpu-1",
            "ph-gpu-intel",
        ]  # by display name
        assert parsed.instance_types["ph-gpu-intel"].gpu_resource_name == "gpu.intel.com/i915"
        assert [o.resource.name for o in offer.images] == ["ph-base"]  # the one still building is not offered
        assert sorted(m.dataset.name for m in offer.datasets) == ["ph-env", "ph-mnist"]
    finally:
        catalog.kubectl(
            "delete", "-n", catalog.namespace, "--ignore-not-found", "-f", str(PRIMEHUB_EXPORT), check=False
        )


def test_the_rules_that_catch_real_mistakes_still_refuse(catalog):
    """Loosening for PrimeHub's empty strings keeps the mistakes out: an image with an empty url and
    nothing being built, a git dataset with an empty url, flat limits.gpu without its resource name."""
    bad = [
        {"kind": "Image", "metadata": {"name": "empty-url"}, "spec": {"type": "both", "url": ""}},
        {"kind": "Dataset", "metadata": {"name": "git-empty-url"}, "spec": {"type": "git", "url": ""}},
        {
            "kind": "InstanceType",
            "metadata": {"name": "flat-gpu-no-name"},
            "spec": {"limits.cpu": 1, "limits.memory": "1G", "limits.gpu": 1},
        },
    ]
    for doc in bad:
        doc["apiVersion"] = "primehub.io/v1alpha1"
        proc = catalog.kubectl(
            "create", "--dry-run=server", "-n", catalog.namespace, "-f", "-", input=json.dumps(doc), check=False
        )
        assert proc.returncode != 0 and "is invalid" in proc.stderr, (doc["metadata"]["name"], proc.stderr)


# --- the realm -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def realm_file(keycloak) -> dict:
    return json.loads(Path(keycloak.realm_file).read_text())


def test_realm_is_imported(keycloak, realm_file):
    admin = keycloak.admin()
    for group in realm_file["groups"]:
        live = admin.get_group_by_path(group["path"])
        # At least what the file says: other tests may add to the shared realm, never take away.
        assert live["attributes"] | group["attributes"] == live["attributes"], group["name"]
        assert {r["name"] for r in admin.get_group_realm_roles(live["id"])} >= set(group["realmRoles"]), group["name"]
    roles = {r["name"] for r in admin.get_realm_roles()}
    assert {r["name"] for r in realm_file["roles"]["realm"]} <= roles
    for user in realm_file["users"]:
        uid = admin.get_user_id(user["username"])
        assert uid, f"user {user['username']} is missing"
        if user.get("serviceAccountClientId"):
            continue
        assert {g["path"] for g in admin.get_user_groups(uid)} >= set(user["groups"]), user["username"]
    alice = admin.get_user(admin.get_user_id("alice"))
    assert alice["attributes"]["volume-capacity"] == ["5"] and alice["attributes"]["timezone"] == ["Asia/Taipei"]
    dana = admin.get_user_id("dana")
    realm_management = admin.get_client_id("realm-management")
    assert "realm-admin" in {r["name"] for r in admin.get_client_roles_of_user(dana, realm_management)}


def _claims(jwt: str) -> dict:
    import base64

    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.parametrize("username", ["alice", "bob", "carol", "dana", "erin"])
def test_demo_user_gets_tokens_with_groups_and_roles(keycloak, realm_file, username):
    tokens = keycloak.password_token(username, f"{username}-pw")
    user = next(u for u in realm_file["users"] if u["username"] == username)
    for token in (tokens["access_token"], tokens["id_token"]):
        claims = _claims(token)
        assert claims["preferred_username"] == username
        assert claims["email"] == user["email"]
        # Names, not paths: the groups mapper has full.path off.
        assert set(claims["groups"]) >= {p.lstrip("/") for p in user["groups"]}
        assert "img:base-notebook" in claims["roles"]  # everyone's grant, through the group
    access = _claims(tokens["access_token"])
    assert access["exp"] - access["iat"] == 300


class _Admin:
    """The Admin REST API with a bearer token, as the hub calls it."""

    def __init__(self, keycloak, token: str):
        self.base = f"{keycloak.url}/admin/realms/{keycloak.realm}"
        self.token = token

    def call(self, method: str, path: str, body=None, query: dict | None = None):
        url = self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        req = urllib.request.Request(
            url,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                text = r.read().decode()
                return r.status, json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


@pytest.fixture(scope="module")
def service_account(keycloak) -> _Admin:
    return _Admin(keycloak, keycloak.service_token()["access_token"])


def test_service_account_holds_only_read_roles(keycloak):
    claims = _claims(keycloak.service_token()["access_token"])
    assert set(claims["resource_access"]["realm-management"]["roles"]) == {"view-users", "query-users", "query-groups"}


def test_service_account_reads_users_groups_attributes_and_role_mappings(service_account, realm_file):
    sa = service_account
    status, users = sa.call("GET", "/users", query={"username": "alice", "exact": "true"})
    assert status == 200 and len(users) == 1
    alice = users[0]
    assert alice["attributes"]["timezone"] == ["Asia/Taipei"]
    status, groups = sa.call("GET", f"/users/{alice['id']}/groups")
    assert status == 200 and {g["name"] for g in groups} == {"everyone", "data-science", "ml-team"}
    ds = next(g for g in groups if g["name"] == "data-science")
    status, group = sa.call("GET", f"/groups/{ds['id']}")
    expected = next(g for g in realm_file["groups"] if g["name"] == "data-science")
    assert status == 200 and group["attributes"] | expected["attributes"] == group["attributes"]
    status, mappings = sa.call("GET", f"/groups/{ds['id']}/role-mappings/realm")
    assert status == 200 and {r["name"] for r in mappings} >= set(expected["realmRoles"])
    status, mappings = sa.call("GET", f"/users/{alice['id']}/role-mappings")
    assert status == 200
    status, roles = sa.call("GET", "/roles")
    assert status == 200 and "it:gpu-huge" in {r["name"] for r in roles}
    status, everyone = sa.call("GET", "/group-by-path/everyone")
    assert status == 200 and everyone["attributes"]["displayName"] == ["Everyone"]
    status, full = sa.call("GET", f"/users/{alice['id']}/groups", query={"briefRepresentation": "false"})
    assert status == 200 and all("attributes" in g for g in full)
    status, mappings = sa.call("GET", f"/groups/{ds['id']}/role-mappings")
    assert status == 200 and set(expected["realmRoles"]) <= {r["name"] for r in mappings["realmMappings"]}
    # Admin status: realm-management's realm-admin, seen in the user's mappings; the client's
    # id there opens the composite view without reading the clients list.
    status, dana = sa.call("GET", "/users", query={"username": "dana", "exact": "true"})
    status, mappings = sa.call("GET", f"/users/{dana[0]['id']}/role-mappings")
    assert status == 200
    realm_management = mappings["clientMappings"]["realm-management"]
    assert "realm-admin" in {r["name"] for r in realm_management["mappings"]}
    status, composite = sa.call(
        "GET", f"/users/{dana[0]['id']}/role-mappings/clients/{realm_management['id']}/composite"
    )
    assert status == 200 and "manage-users" in {r["name"] for r in composite}


def test_service_account_cannot_create_users_or_change_roles(service_account):
    sa = service_account
    _, users = sa.call("GET", "/users", query={"username": "carol", "exact": "true"})
    carol = users[0]["id"]
    _, groups = sa.call("GET", f"/users/{carol}/groups")
    everyone = next(g for g in groups if g["name"] == "everyone")["id"]
    _, roles = sa.call("GET", "/roles")
    gpu_huge = [r for r in roles if r["name"] == "it:gpu-huge"]
    attempts = [
        ("POST", "/users", {"username": "mallory", "enabled": True}),
        ("POST", f"/users/{carol}/role-mappings/realm", gpu_huge),
        ("POST", f"/groups/{everyone}/role-mappings/realm", gpu_huge),
        ("DELETE", f"/groups/{everyone}/role-mappings/realm", [r for r in roles if r["name"] == "it:cpu-small"]),
        ("PUT", f"/groups/{everyone}", {"name": "everyone", "attributes": {"quota-gpu": ["99"]}}),
        ("POST", "/roles", {"name": "it:sneaky"}),
    ]
    for method, path, body in attempts:
        status, text = sa.call(method, path, body)
        assert status == 403, f"{method} {path} answered {status}: {text}"


def _apply_realm(keycloak) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEYCLOAK_ADMIN_PASSWORD": keycloak.admin_password}
    return subprocess.run(
        [
            sys.executable,
            str(REALM_TOOLS / "apply_realm.py"),
            "--server",
            keycloak.url,
            "--admin-user",
            keycloak.admin_user,
            "--realm-file",
            str(keycloak.realm_file),
            "--with-users",
        ],
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


def test_apply_realm_twice_changes_nothing_the_second_time(keycloak):
    first = _apply_realm(keycloak)
    assert first.returncode == 0, first.stderr
    second = _apply_realm(keycloak)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "no changes", second.stdout


def test_apply_realm_restores_what_was_removed(keycloak):
    admin = keycloak.admin()
    tiny = admin.get_group_by_path("/tiny")
    admin.update_group(tiny["id"], {"name": "tiny", "attributes": {**tiny["attributes"], "quota-cpu": ["9"]}})
    cpu_large = [r for r in admin.get_group_realm_roles(tiny["id"]) if r["name"] == "it:cpu-large"]
    admin.delete_group_realm_roles(tiny["id"], cpu_large)
    out = _apply_realm(keycloak)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        'group /tiny: set attribute quota-cpu to "0.5" (was "9")',
        "group /tiny: grant realm role it:cpu-large",
    ]
    assert admin.get_group_by_path("/tiny")["attributes"]["quota-cpu"] == ["0.5"]
    assert _apply_realm(keycloak).stdout.strip() == "no changes"


def test_check_catalog_on_the_live_realm_and_cluster(catalog, keycloak, tmp_path):
    """The consistency check on what the servers hold: the demo's ghost grant is reported."""
    admin = keycloak.admin()
    export = admin.connection.raw_post(
        f"admin/realms/{keycloak.realm}/partial-export", data="", exportGroupsAndRoles="true", exportClients="false"
    ).json()
    (tmp_path / "realm.json").write_text(json.dumps(export))
    live = catalog.kubectl(
        "get",
        "instancetypes.primehub.io,images.primehub.io,datasets.primehub.io",
        "-n",
        catalog.namespace,
        "-o",
        "yaml",
    ).stdout
    (tmp_path / "catalog.yaml").write_text(live)
    proc = subprocess.run(
        [
            sys.executable,
            str(REALM_TOOLS / "check_catalog.py"),
            "--realm-file",
            str(tmp_path / "realm.json"),
            str(tmp_path / "catalog.yaml"),
        ],
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "grants it:ghost-type, but there is no InstanceType 'ghost-type'" in proc.stdout
    assert "0 errors" in proc.stdout
