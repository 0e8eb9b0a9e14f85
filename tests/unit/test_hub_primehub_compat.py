"""Moving from PrimeHub (issue: existing catalogs, realms, homes and habits work on the first day).

Each section is one rule of docs/migrating-from-primehub.md, tested on the pure decision.
"""

import logging
from pathlib import Path

import pytest
import yaml

from hub_scenario import make_spawner, user
from primehub_hub.entitlements import EVERYONE, Group, UserInfo
from primehub_hub.plan import group_offer
from primehub_hub.resources import Catalog

REPO = Path(__file__).resolve().parents[2]
EXPORT = REPO / "tests" / "fixtures" / "primehub-export.yaml"
CRDS = REPO / "crds"


def export_objects():
    return [d for d in yaml.safe_load_all(EXPORT.read_text()) if d]


def crd_schema(kind):
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise AssertionError(kind)


def undeclared(value, schema, path):
    """Fields the structural schema would prune (the API server keeps only declared fields)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        out = []
        for key, item in value.items():
            if key in schema["properties"]:
                out += undeclared(item, schema["properties"][key], f"{path}.{key}")
            else:
                out.append(f"{path}.{key}")
        return out
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return [p for k, v in value.items() for p in undeclared(v, schema["additionalProperties"], f"{path}.{k}")]
    if isinstance(value, list) and "items" in schema:
        return [p for i, v in enumerate(value) for p in undeclared(v, schema["items"], f"{path}[{i}]")]
    return []


def migrated_user(roles):
    """A user of group data-science whose realm roles are `roles` (PrimeHub's grant names)."""
    return UserInfo(
        username="migrated.user",
        groups=[Group("data-science", realm_roles=list(roles), id="g-ds"), Group(EVERYONE)],
    )


# --- 1. the CRDs accept what PrimeHub stores, and the hub offers it ----------------------------


def test_every_field_of_a_primehub_export_is_declared_so_nothing_is_pruned():
    for doc in export_objects():
        schema = crd_schema(doc["kind"])
        for part in ("spec", "status"):
            if part in doc:
                assert undeclared(doc[part], schema["properties"][part], part) == [], doc["metadata"]["name"]


def test_the_schemas_allow_the_empty_strings_primehub_writes():
    image = crd_schema("Image")["properties"]["spec"]["properties"]
    dataset = crd_schema("Dataset")["properties"]["spec"]["properties"]
    import re

    for field in (
        image["pullSecret"],
        image["url"],
        image["urlForGpu"],
        image["imageSpec"]["properties"]["pullSecret"],
        dataset["url"],
    ):
        assert "minLength" not in field and re.search(field["pattern"], ""), field
    # enableUploadServer is "true" (console) or true (other tools): the schema keeps either
    assert dataset["enableUploadServer"].get("x-kubernetes-preserve-unknown-fields") is True
    it = crd_schema("InstanceType")["properties"]["spec"]["properties"]
    assert "limits.gpu" in it and it["limits.gpu"]["x-kubernetes-int-or-string"]


def test_the_hub_reads_a_primehub_export(caplog):
    caplog.set_level(logging.WARNING)
    catalog = Catalog.from_objects(export_objects())
    assert set(catalog.instance_types) == {"ph-cpu-1", "ph-gpu-amd", "ph-gpu-intel"}
    amd, intel = catalog.instance_types["ph-gpu-amd"], catalog.instance_types["ph-gpu-intel"]
    assert (amd.gpu_limit, amd.gpu_resource_name) == (1, "amd.com/gpu")
    assert (intel.gpu_limit, intel.gpu_resource_name) == (1, "gpu.intel.com/i915")
    assert catalog.instance_types["ph-cpu-1"].gpu_limit == 0
    # pullSecret "" is no pull secret; a custom image still building is left out, with a log line
    assert catalog.images["ph-base"].pull_secret == ""
    assert "ph-custom-building" not in catalog.images
    assert "Image ph-custom-building: not built yet" in caplog.text
    assert catalog.datasets["ph-mnist"].volume_name == "ph-mnist"
    assert set(catalog.datasets) == {"ph-mnist", "ph-env"}


def test_a_primehub_group_is_offered_the_exported_catalog():
    catalog = Catalog.from_objects(export_objects())
    roles = ["it:ph-cpu-1", "it:ph-gpu-amd", "img:ph-base", "img:ph-custom-building", "ds:ph-mnist", "ds:rw:ph-env"]
    info = migrated_user(roles)
    offer = group_offer(info, info.groups[0], catalog)
    # by display name: "AMD GPU" before "CPU 1"
    assert [o.resource.name for o in offer.instance_types] == ["ph-gpu-amd", "ph-cpu-1"]
    assert [o.resource.name for o in offer.images] == ["ph-base"]
    assert sorted(m.dataset.name for m in offer.datasets) == ["ph-env", "ph-mnist"]


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_an_amd_instance_type_from_primehub_requests_amd_gpus():
    catalog = Catalog.from_objects(export_objects())
    info = migrated_user(["it:ph-gpu-amd", "img:ph-base"])
    spawner = make_spawner("migrated.user", info=info, cat=catalog, options_explicit=True)
    spawner.user_options = {"group": "data-science", "instance_type": "ph-gpu-amd", "image": "ph-base"}
    await spawner.load_user_options()
    assert spawner.extra_resource_limits == {"amd.com/gpu": 1}
    assert spawner.image == "infuseai/docker-stacks:base-notebook-63fdf50a-gpu"
    assert not spawner.image_pull_secrets


# --- 4. labels as PrimeHub wrote them ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, label",
    [
        ("alice", "escaped-alice"),
        ("data-science", "escaped-data-2dscience"),
        ("data_science", "escaped-data-5fscience"),
        ("Alice.Smith@corp.com", "escaped--41lice-2e-53mith-40corp-2ecom"),
    ],
)
def test_labels_are_escaped_as_primehub_escaped_them(name, label):
    from primehub_hub.quotas import primehub_label

    assert primehub_label(name) == label


def test_a_name_too_long_for_a_label_still_gives_a_valid_label():
    from kubespawner.slugs import is_valid_label

    from primehub_hub.quotas import primehub_label

    long_name = "a-very-long-group-name-that-primehub-could-not-label-either-" * 2
    assert is_valid_label(primehub_label(long_name)) and primehub_label(long_name) != primehub_label(long_name + "x")


def test_a_primehub_job_in_the_same_group_counts_towards_the_quota():
    from primehub_hub.quotas import GiB, primehub_label, usage_from_pods

    job_pod = {  # a PrimeHub job's pod: labelled by PrimeHub's controller, not by this hub
        "metadata": {
            "name": "job-123",
            "labels": {"primehub.io/group": "escaped-data-2dscience", "primehub.io/user": "escaped-bob"},
        },
        "spec": {"containers": [{"resources": {"limits": {"cpu": "2", "memory": "4Gi"}}}]},
        "status": {"phase": "Running"},
    }
    mine, group = usage_from_pods([job_pod], primehub_label("data-science"), primehub_label("alice"))
    assert (group.cpu, group.memory) == (2.0, 4 * GiB) and mine.cpu == 0


# --- 5. existing homes are found; capacity from volumeCapacity; one default -----------------------


@pytest.mark.parametrize(
    "username, claim",
    [
        ("alice", "claim-alice"),
        ("john.doe", "claim-john-2edoe"),
        ("mary-ann", "claim-mary-2dann"),
        ("first_last", "claim-first-5flast"),
        ("ann@corp.com", "claim-ann-40corp-2ecom"),
        ("Bob", "claim--42ob"),
    ],
)
def test_home_claims_are_named_as_primehub_named_them(username, claim):
    from primehub_hub.volumes import home_claim_name

    assert home_claim_name(username, "primehub") == claim


def test_the_kubespawner_naming_is_kubespawner_7s():
    from primehub_hub.volumes import home_claim_name

    assert home_claim_name("alice", "kubespawner") == "claim-alice"
    assert home_claim_name("john.doe", "kubespawner").startswith("claim-john-doe---")  # a hashed slug


@pytest.mark.parametrize(
    "attributes, capacity",
    [
        ({"volumeCapacity": "50"}, "50Gi"),  # PrimeHub's console: a number of GiB
        ({"volumeCapacity": "30G"}, "30Gi"),
        ({"volume-capacity": "25"}, "25Gi"),
        ({"volumeCapacity": "50", "volume-capacity": "25"}, "50Gi"),
        ({"volumeCapacity": "lots"}, "20Gi"),
        ({}, "20Gi"),
    ],
)
def test_home_capacity_from_the_users_attribute_else_the_one_default(attributes, capacity):
    from primehub_hub.volumes import home_capacity

    assert home_capacity(attributes, "20Gi") == capacity


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_a_migrated_user_gets_the_primehub_home_and_its_capacity():
    info = UserInfo(
        "john.doe",
        attributes={"volumeCapacity": "50"},
        groups=[Group("data-science", realm_roles=["it:small", "img:base"])],
    )
    spawner = make_spawner(
        "john.doe", info=info, options_explicit=True, storage_pvc_ensure=True, storage_capacity="20Gi"
    )
    spawner.user_options = {"group": "data-science"}
    await spawner.load_user_options()
    assert spawner.pvc_name == "claim-john-2edoe" and spawner.storage_capacity == "50Gi"


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_a_home_claim_already_remembered_is_never_renamed():
    info = UserInfo("john.doe", groups=[Group("data-science", realm_roles=["it:small", "img:base"])])
    spawner = make_spawner("john.doe", info=info, options_explicit=True, storage_pvc_ensure=True)
    spawner.load_state({"pvc_name": "claim-john.doe"})
    spawner.user_options = {"group": "data-science"}
    await spawner.load_user_options()
    assert spawner.pvc_name == "claim-john.doe"


def _configured(document):
    """JupyterHub's config from a settings document, as jupyterhub_config.py builds it."""
    from traitlets.config import Config

    from primehub_hub.settings import Settings, apply_settings

    c = Config()
    apply_settings(c, Settings.from_document(document, env={}))
    return c


def test_the_home_naming_is_a_setting():
    assert _configured({}).PrimeHubSpawner.home_pvc_naming == "primehub"
    c = _configured({"singleuser": {"storage": {"homePvcNaming": "kubespawner"}}})
    assert c.PrimeHubSpawner.home_pvc_naming == "kubespawner"


def test_explain_shows_the_home_claim_capacity_and_labels():
    from primehub_hub.explain import explain_user, render_text

    info = UserInfo("john.doe", attributes={"volumeCapacity": "50"}, groups=[Group("data_science")])
    report = explain_user(info, Catalog(), home_default="20Gi")
    assert report["home"]["claimName"] == "claim-john-2edoe" and report["home"]["capacity"] == "50Gi"
    text = render_text(report)
    assert "claim-john-2edoe" in text and "volumeCapacity" in text
    assert "primehub.io/group=escaped-data-5fscience" in text and "primehub.io/user=escaped-john-2edoe" in text


# --- 11. a dataset whose volume is missing is left out, with a notice ------------------------------


def _analysts_plan():
    from hub_scenario import catalog
    from primehub_hub.plan import plan_launch

    return plan_launch(user("ana"), catalog(), {"group": "analysts"}, strict=True)


def test_the_plan_names_the_claims_its_datasets_need():
    assert _analysts_plan().dataset_claims() == {"sales": "dataset-sales-vol", "team-wide": "dataset-team-wide"}


def test_a_dataset_with_a_missing_claim_is_left_out_with_a_notice_and_the_rest_stays():
    from primehub_hub.plan import leave_out_datasets

    plan = _analysts_plan()
    after = leave_out_datasets(plan, {"sales": "dataset-sales-vol"})
    assert "dataset-sales" not in [v["name"] for v in after.volumes]
    assert "/datasets/sales" not in [m["mountPath"] for m in after.volume_mounts]
    assert [m.dataset.name for m in after.datasets] == [
        m.dataset.name for m in plan.datasets if m.dataset.name != "sales"
    ]
    assert len(after.volumes) == len(plan.volumes) - 1
    (notice,) = after.notices
    assert "'sales'" in notice.lower() or "Sales" in notice
    assert "dataset-sales-vol" in notice and "does not exist" in notice
    assert leave_out_datasets(plan, {}) is plan


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_the_spawner_leaves_out_a_dataset_whose_claim_is_missing_and_says_so(caplog):
    caplog.set_level(logging.WARNING)
    spawner = make_spawner("ana", options_explicit=True, primehub_claims={"dataset-team-wide"})
    spawner.user_options = {"group": "analysts"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    assert "/datasets/sales" not in [m.mount_path for m in pod.spec.containers[0].volume_mounts]
    assert "dataset sales left out of the launch: its PVC dataset-sales-vol does not exist" in caplog.text
    assert "dataset-sales-vol" in pod.metadata.annotations["hub.primehub.io/notices"]
    spawner.events_enabled = False  # no cluster events here; only the notice
    messages = [e["message"] async for e in spawner.progress()]
    assert len(messages) == 1 and "dataset-sales-vol" in messages[0]


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_an_existing_claim_keeps_the_dataset():
    spawner = make_spawner("ana", options_explicit=True, primehub_claims={"dataset-sales-vol", "dataset-team-wide"})
    spawner.user_options = {"group": "analysts"}
    await spawner.load_user_options()
    assert "/datasets/sales" in [
        m["mountPath"]
        for m in (spawner.volume_mounts.values() if isinstance(spawner.volume_mounts, dict) else spawner.volume_mounts)
    ]
    assert spawner.plan.notices == []


# --- 7. descriptions, order by display name, PrimeHub's default, the user's own variables ----------


def _catalog_with_labels():
    def it(name, label, description="", cpu=1):
        return {
            "kind": "InstanceType",
            "metadata": {"name": name},
            "spec": {"displayName": label, "description": description, "limits.cpu": cpu, "limits.memory": "1G"},
        }

    def img(name, label, description=""):
        return {
            "kind": "Image",
            "metadata": {"name": name},
            "spec": {"displayName": label, "description": description, "url": f"example/{name}"},
        }

    return Catalog.from_objects(
        [
            it("a-big", "zeta (big)", "Eight cores", cpu=8),
            it("b-small", "Alpha", "One core <b>fast</b>"),
            it("c-mid", "beta"),
        ]
        + [img("x-lab", "Lab", "JupyterLab & friends"), img("y-base", "base")]
    )


def _labelled_user(quota_cpu=None):
    attributes = {"quota-cpu": quota_cpu} if quota_cpu is not None else {}
    roles = ["it:a-big", "it:b-small", "it:c-mid", "img:x-lab", "img:y-base"]
    return UserInfo("u", groups=[Group("team", attributes=attributes, realm_roles=roles)])


def test_instance_types_and_images_are_offered_by_display_name_case_insensitively():
    info = _labelled_user()
    offer = group_offer(info, info.groups[0], _catalog_with_labels())
    assert [o.resource.label for o in offer.instance_types] == ["Alpha", "beta", "zeta (big)"]
    assert [o.resource.label for o in offer.images] == ["base", "Lab"]


def test_without_a_remembered_choice_the_first_usable_by_display_name_is_chosen():
    from primehub_hub.plan import plan_launch

    plan = plan_launch(_labelled_user(), _catalog_with_labels(), {"group": "team"}, strict=False)
    assert (plan.instance_type.name, plan.image.name) == ("b-small", "y-base")


def test_the_form_shows_descriptions_escaped_and_selects_primehubs_default():
    from primehub_hub.form import build_form, render_form

    model = build_form(_labelled_user(), _catalog_with_labels())
    html = render_form(model)
    assert "One core &lt;b&gt;fast&lt;/b&gt;" in html and "<b>fast" not in html
    assert "JupyterLab &amp; friends" in html
    (team,) = model
    assert [c.name for c in team.instance_types if c.selected] == ["b-small"]
    assert html.index("Alpha") < html.index("beta") < html.index("zeta (big)")


def test_the_default_skips_what_the_quota_does_not_allow():
    from primehub_hub.plan import plan_launch

    catalog = _catalog_with_labels()
    info = UserInfo(
        "u",
        groups=[Group("team", attributes={"quota-cpu": "0.5"}, realm_roles=["it:a-big", "it:b-small", "img:y-base"])],
    )
    with pytest.raises(Exception, match="quota"):
        plan_launch(info, catalog, {"group": "team"}, strict=False)
    info.groups[0].attributes["quota-cpu"] = "2"
    assert plan_launch(info, catalog, {"group": "team"}, strict=False).instance_type.name == "b-small"


@pytest.mark.parametrize(
    "text, env",
    [
        ("", {}),
        (
            "MLFLOW_TRACKING_URI=http://mlflow:5000\n\n# a comment\nEMPTY=",
            {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "EMPTY": ""},
        ),
        ("A=x=y\r\nB= spaced ", {"A": "x=y", "B": " spaced "}),
    ],
)
def test_user_variables_are_read_from_name_value_lines(text, env):
    from primehub_hub.userenv import parse_env

    assert parse_env(text, strict=True) == env


@pytest.mark.parametrize(
    "text, words",
    [
        ("JUPYTERHUB_API_TOKEN=stolen", "JUPYTERHUB_API_TOKEN is set by the hub"),
        ("LD_PRELOAD=/tmp/x.so", "LD_PRELOAD is set by the hub"),
        ("GROUP_NAME=other", "GROUP_NAME is set by the hub"),
        ("1BAD=x", "not a variable name"),
        ("NOEQUALS", "line 1 is not NAME=value"),
        ("A=1\nA=2", "A is given twice"),
    ],
)
def test_user_variables_that_are_the_hubs_or_malformed_are_refused(text, words):
    from primehub_hub.errors import BadRequest
    from primehub_hub.userenv import parse_env

    with pytest.raises(BadRequest, match=words):
        parse_env(text, strict=True)
    parse_env(text, strict=False)  # remembered: dropped quietly, never an error page


def test_a_user_variable_cannot_replace_a_dataset_variable_of_the_launch():
    from hub_scenario import catalog
    from primehub_hub.errors import BadRequest
    from primehub_hub.plan import plan_launch

    with pytest.raises(BadRequest, match="HANDBOOK_URL is set by the hub for this launch"):
        plan_launch(user("ana"), catalog(), {"group": "analysts", "env": "HANDBOOK_URL=mine"}, strict=True)
    lenient = plan_launch(
        user("ana"), catalog(), {"group": "analysts", "env": {"HANDBOOK_URL": "mine", "OWN": "1"}}, strict=False
    )
    assert lenient.env["HANDBOOK_URL"] != "mine" and lenient.user_env == {"OWN": "1"}


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_user_variables_reach_the_pod_are_remembered_and_never_beat_the_operators():
    spawner = make_spawner("ana", options_explicit=True, environment={"COMPANY_PROXY": "http://proxy:3128"})
    spawner.user_options = await spawner._primehub_options_from_form(
        {"group": ["analysts"], "env": ["MY_SETTING=42\nCOMPANY_PROXY=none"]}
    )
    assert spawner.user_options["env"] == {"MY_SETTING": "42", "COMPANY_PROXY": "none"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["MY_SETTING"] == "42"
    assert env["COMPANY_PROXY"] == "http://proxy:3128"  # the operator's singleuser.extraEnv wins
    assert env["GROUP_NAME"] == "analysts" and "JUPYTERHUB_API_TOKEN" in env
    # the next form is pre-filled with them
    html = await spawner._render_primehub_form()
    assert "MY_SETTING=42" in html and 'name="env"' in html


# --- 9. PrimeHub's timeouts, idle kernels culled in the server, Cancel while starting -------------


def test_start_timeout_and_kernel_culling_default_to_primehubs_and_are_settable():
    default = _configured({})
    assert default.KubeSpawner.start_timeout == 1200
    assert "--MappingKernelManager.cull_idle_timeout=3600" in default.KubeSpawner.args
    tuned = _configured({"singleuser": {"startTimeout": 600, "kernelCullTimeout": 0}})
    assert tuned.KubeSpawner.start_timeout == 600 and tuned.KubeSpawner.args == []


def test_the_users_server_culls_its_idle_kernels():
    from primehub_hub.singleuser import kernel_culling_args

    args = kernel_culling_args(3600)
    assert "--MappingKernelManager.cull_idle_timeout=3600" in args
    assert "--MappingKernelManager.cull_connected=True" in args
    assert "--MappingKernelManager.cull_interval=300" in args
    assert kernel_culling_args(60)[1] == "--MappingKernelManager.cull_interval=60"
    assert kernel_culling_args(0) == []


def test_the_start_page_template_is_configured():
    c = _configured({})
    (templates,) = c.JupyterHub.template_paths
    assert Path(templates, "spawn_pending.html").is_file()
    # Our Cancel only where the installed JupyterHub has no Stop button on that page (before 6).
    from jupyterhub import version_info

    assert c.JupyterHub.template_vars == {"primehub_cancel_button": version_info[0] < 6}


@pytest.mark.parametrize("version, own_button", [("5.3.0", False), ("6.0.0b1", True), ("6.1.2", True)])
def test_cancel_is_added_only_where_jupyterhub_has_no_stop_button(version, own_button):
    from primehub_hub.singleuser import jupyterhub_has_stop_on_pending_page

    assert jupyterhub_has_stop_on_pending_page(version) is own_button


def _pending_page(cancel_button, server=""):
    from types import SimpleNamespace

    from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader, PrefixLoader

    base = "{% block message %}<p>starting</p>{% endblock message %}{% block script %}<script>base</script>{% endblock script %}"
    env = Environment(
        loader=ChoiceLoader(
            [
                FileSystemLoader(str(REPO / "hub-config" / "primehub_hub" / "hub_templates")),
                PrefixLoader({"templates": DictLoader({"spawn_pending.html": base})}),
            ]
        ),
        autoescape=True,
    )
    return env.get_template("spawn_pending.html").render(
        primehub_cancel_button=cancel_button,
        user=SimpleNamespace(name="o'brien</script>"),
        spawner=SimpleNamespace(name=server),
    )


def test_the_start_page_has_a_cancel_button_that_stops_the_pending_start():
    html = _pending_page(True)
    assert "<p>starting</p>" in html and "<script>base</script>" in html  # JupyterHub's page, extended
    assert 'id="primehub-cancel-start"' in html and "api.stop_server(user" in html
    assert '</script>"' not in html and "o\\u0027brien\\u003c/script\\u003e" in html  # the name cannot end the script
    assert "primehub-cancel-start" not in _pending_page(False)


# --- 2. scopeRequired: only holders of a realm role may log in ---------------------------------------


def _jwt(claims):
    import base64
    import json

    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"e30.{body}.sig"


def _auth_model(realm_roles=(), userinfo_roles=None):
    oauth_user = {"preferred_username": "ann"}
    if userinfo_roles is not None:
        oauth_user["roles"] = list(userinfo_roles)
    return {
        "name": "ann",
        "admin": False,
        "auth_state": {"access_token": _jwt({"realm_access": {"roles": list(realm_roles)}}), "oauth_user": oauth_user},
    }


def _authenticator(**kwargs):
    from primehub_hub.auth import PrimeHubAuthenticator

    return PrimeHubAuthenticator(
        keycloak_url="https://id.example.com", client_id="jupyterhub", client_secret="s", **kwargs
    )


def test_login_roles_come_from_the_token_and_primehubs_roles_claim():
    from primehub_hub.auth import login_roles

    assert login_roles(_auth_model(["offline_access", "notebook-users"])["auth_state"]) == {
        "offline_access",
        "notebook-users",
    }
    assert "lab" in login_roles(_auth_model([], ["lab"])["auth_state"])
    assert login_roles({"access_token": "not-a-jwt"}) == set()


@pytest.mark.asyncio
async def test_scope_required_lets_in_only_holders_of_the_role():
    from primehub_hub.errors import Refused

    gate = _authenticator(scope_required="notebook-users")
    # The gate is in check_blocked_users: JupyterHub never asks check_allowed while allow_all is on.
    assert gate.allow_all
    assert await gate.check_blocked_users("ann", _auth_model(["notebook-users"])) is True
    assert await gate.check_blocked_users("ann", _auth_model([], ["notebook-users"])) is True
    with pytest.raises(Refused, match="needs the role 'notebook-users'") as refused:
        await gate.check_blocked_users("ann", _auth_model(["offline_access"]))
    assert refused.value.status_code == 403
    assert await _authenticator().check_blocked_users("ann", _auth_model([])) is True  # no gate by default


def test_scope_required_is_a_setting():
    assert (
        _configured({"keycloak": {"scopeRequired": "notebook-users"}}).PrimeHubAuthenticator.scope_required
        == "notebook-users"
    )
    assert _configured({}).PrimeHubAuthenticator.scope_required == ""


# --- 3. logout against Keycloak before 18 -------------------------------------------------------


RETURN = "https://hub.example.com/hub/logout?kc=true"


def test_legacy_logout_sends_redirect_uri_only():
    from urllib.parse import parse_qs, urlparse

    from primehub_hub.logout import end_session_url

    query = parse_qs(urlparse(end_session_url(_authenticator(), "id-tok", RETURN, "legacy")).query)
    assert query == {"redirect_uri": [RETURN]}
    query = parse_qs(urlparse(end_session_url(_authenticator(), "id-tok", RETURN, "oidc")).query)
    assert (
        query["post_logout_redirect_uri"] == [RETURN]
        and query["id_token_hint"] == ["id-tok"]
        and "redirect_uri" not in query
    )


@pytest.mark.parametrize(
    "status, location, style",
    [
        (302, RETURN, "legacy"),  # Keycloak < 18: a session-less logout goes on to redirect_uri
        (302, "https://hub.example.com/hub/logout", "legacy"),
        (400, "", "oidc"),  # Keycloak >= 18: "Invalid parameter: redirect_uri"
        (200, "", "oidc"),
        (302, "https://id.example.com/realms/primehub/login-actions/x", "oidc"),
    ],
)
def test_the_logout_style_is_read_from_keycloaks_answer(status, location, style):
    from primehub_hub.logout import logout_style_from_probe

    assert logout_style_from_probe(status, location, RETURN) == style


@pytest.mark.asyncio
async def test_auto_asks_keycloak_once_and_a_setting_asks_nothing():
    from types import SimpleNamespace

    class Client:
        def __init__(self, code, location=""):
            self.calls, self.code, self.location = [], code, location

        async def fetch(self, url, **kwargs):
            self.calls.append((url, kwargs.get("follow_redirects")))
            return SimpleNamespace(code=self.code, headers={"Location": self.location})

    old = _authenticator(keycloak_internal_url="http://kc:8080")
    old.http_client = Client(302, RETURN)
    assert await old.logout_style(RETURN) == "legacy" and await old.logout_style(RETURN) == "legacy"
    ((url, follow),) = old.http_client.calls
    assert (
        url.startswith("http://kc:8080/realms/primehub/protocol/openid-connect/logout?redirect_uri=")
        and follow is False
    )
    fixed = _authenticator(keycloak_logout_style="legacy")
    fixed.http_client = Client(400)
    assert await fixed.logout_style(RETURN) == "legacy" and fixed.http_client.calls == []


def test_the_logout_style_is_a_setting():
    assert _configured({}).PrimeHubAuthenticator.keycloak_logout_style == "auto"
    assert _configured({"keycloak": {"logout": "legacy"}}).PrimeHubAuthenticator.keycloak_logout_style == "legacy"


# --- 8. shared memory, zero-to-jupyterhub's extra volumes, sudo, writable mounts ----------------------


async def _pod_dict(spawner):
    from kubernetes_asyncio.client import ApiClient

    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        return client.sanitize_for_serialization(pod)


def _it(annotations=None, memory="8G"):
    from primehub_hub.resources import parse_instance_type

    obj = {
        "kind": "InstanceType",
        "metadata": {"name": "t", "annotations": annotations or {}},
        "spec": {"limits.cpu": 2, "limits.memory": memory},
    }
    return parse_instance_type(obj)


@pytest.mark.parametrize(
    "annotations, setting, size",
    [
        ({}, "limit", "8Gi"),
        ({}, "2Gi", "2Gi"),
        ({}, "", ""),
        ({"instancetype.primehub.io/shmSize": "1Gi"}, "limit", "1Gi"),
        ({"instancetype.primehub.io/shmSize": "limit"}, "", "8Gi"),
    ],
)
def test_shm_size_per_instance_type_else_the_setting(annotations, setting, size):
    from primehub_hub.singleuser import shm_size

    assert shm_size(_it(annotations), setting) == size


def test_a_bad_shm_annotation_names_the_instance_type():
    from primehub_hub.resources import InvalidResource

    with pytest.raises(InvalidResource, match="InstanceType t: annotation instancetype.primehub.io/shmSize"):
        _it({"instancetype.primehub.io/shmSize": "lots"})


def test_the_operators_own_dev_shm_mount_replaces_the_hubs():
    from primehub_hub.singleuser import shm_pieces

    volume, mount = shm_pieces("2Gi", [])
    assert volume == {"name": "primehub-shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    assert mount == {"name": "primehub-shm", "mountPath": "/dev/shm"}
    assert shm_pieces("2Gi", [{"name": "shm-volume", "mountPath": "/dev/shm"}]) == (None, None)
    assert shm_pieces("", []) == (None, None)


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_the_pod_gets_dev_shm_sudo_and_owned_writable_mounts():
    spawner = make_spawner("ana", options_explicit=True, grant_sudo=True, uid=1000)
    spawner.user_options = {"group": "analysts", "instance_type": "medium", "image": "base"}
    await spawner.load_user_options()
    pod = await _pod_dict(spawner)
    shm = {v["name"]: v for v in pod["spec"]["volumes"]}["primehub-shm"]
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    container = pod["spec"]["containers"][0]
    assert "/dev/shm" in [m["mountPath"] for m in container["volumeMounts"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GRANT_SUDO"] == "yes"
    assert container["securityContext"]["runAsUser"] == 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is True
    owned = env["CHOWN_EXTRA"].split(",")
    assert "/datasets/reports" in owned and "/project/analysts" in owned  # ds:rw:reports, the group volume
    assert "/datasets/sales" not in owned  # read-only


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_without_sudo_the_server_starts_as_the_configured_user():
    spawner = make_spawner("ana", options_explicit=True, uid=1000)
    spawner.user_options = {"group": "analysts", "instance_type": "medium", "image": "base"}
    await spawner.load_user_options()
    container = (await _pod_dict(spawner))["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "GRANT_SUDO" not in env and container["securityContext"]["runAsUser"] == 1000


def test_zero_to_jupyterhubs_extra_volumes_are_added_to_every_pod():
    c = _configured(
        {
            "singleuser": {
                "storage": {
                    "extraVolumes": [{"name": "shm-volume", "emptyDir": {"medium": "Memory"}}],
                    "extraVolumeMounts": [{"name": "shm-volume", "mountPath": "/dev/shm"}],
                }
            }
        }
    )
    assert set(c.KubeSpawner.volumes) == {"home", "z2jh-shm-volume"}
    assert c.KubeSpawner.volume_mounts["z2jh-shm-volume"]["mountPath"] == "/dev/shm"


def test_the_habits_are_settings():
    c = _configured(
        {"primehub": {"shmSize": "2Gi", "grantSudo": True, "startWrapper": False, "startScriptsConfigMap": "s"}}
    )
    spawner = c.PrimeHubSpawner
    assert (spawner.shm_size, spawner.grant_sudo, spawner.start_wrapper, spawner.start_scripts_configmap) == (
        "2Gi",
        True,
        False,
        "s",
    )


# --- 6. ~/datasets, ~/<group>, git datasets' content directly at /datasets/<name> ------------------


def _run_links(tmp_path, links):
    """Run the start-up link command with a scratch HOME, as the container's shell would."""
    import subprocess

    from primehub_hub.singleuser import links_command

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    subprocess.run(["sh", "-c", links_command(links)], check=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    return home


def test_links_are_made_in_the_home_folder_and_never_replace_a_users_file(tmp_path):
    datasets = tmp_path / "datasets"
    (datasets / "mnist").mkdir(parents=True)
    group = tmp_path / "project-team"
    group.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (home / "team").write_text("my own notes")  # a user's file where a link would go
    _run_links(
        tmp_path, [(str(datasets), "~/datasets"), (str(group), "~/team"), (str(tmp_path / "absent"), "~/absent")]
    )
    assert (home / "datasets").is_symlink() and (home / "datasets" / "mnist").is_dir()
    assert not (home / "team").is_symlink() and (home / "team").read_text() == "my own notes"
    assert not (home / "absent").exists() and not (home / "absent").is_symlink()
    _run_links(tmp_path, [(str(datasets), "~/datasets")])  # the next start leaves the link as it is
    assert (home / "datasets").is_symlink()


def test_names_with_spaces_or_quotes_stay_one_path(tmp_path):
    target = tmp_path / "a b's"
    target.mkdir()
    home = _run_links(tmp_path, [(str(target), "~/x y")])
    assert (home / "x y").is_symlink()


def test_git_datasets_link_their_checkout_to_the_mount_path():
    from primehub_hub.datasets import dataset_pieces
    from primehub_hub.resources import parse_dataset

    ds = parse_dataset(
        {"kind": "Dataset", "metadata": {"name": "repo"}, "spec": {"type": "git", "url": "https://x/y.git"}}
    )
    pieces = dataset_pieces(ds, writable=False, git_sync_host_root="/home/dataset/")
    assert pieces.volumes == [{"name": "dataset-repo", "hostPath": {"path": "/home/dataset/repo", "type": "Directory"}}]
    assert pieces.volume_mounts == [{"name": "dataset-repo", "mountPath": "/gitsync/repo", "readOnly": True}]
    # git-sync's checkout is <folder>/<name>: its files appear directly in /datasets/repo
    assert pieces.links == [("/gitsync/repo/repo", "/datasets/repo")]


def test_a_launch_with_a_git_dataset_gets_a_writable_dataset_folder_and_the_home_links():
    from primehub_hub.plan import plan_launch
    from primehub_hub.singleuser import home_links

    catalog = Catalog.from_objects(
        [
            {"kind": "InstanceType", "metadata": {"name": "s"}, "spec": {"limits.cpu": 1, "limits.memory": "1G"}},
            {"kind": "Image", "metadata": {"name": "i"}, "spec": {"url": "x/y"}},
            {"kind": "Dataset", "metadata": {"name": "repo"}, "spec": {"type": "git", "url": "https://x/y.git"}},
            {"kind": "Dataset", "metadata": {"name": "mnist"}, "spec": {"type": "pv", "volumeName": "mnist"}},
        ]
    )
    info = UserInfo(
        "u",
        groups=[
            Group(
                "team_a",
                realm_roles=["it:s", "img:i", "ds:repo", "ds:mnist"],
                attributes={"enabled-shared-volume": "true", "shared-volume-capacity": "1"},
            )
        ],
    )
    plan = plan_launch(info, catalog, {"group": "team_a"})
    root = [m for m in plan.volume_mounts if m["mountPath"] == "/datasets"]
    assert len(root) == 1 and {"name": root[0]["name"], "emptyDir": {}} in plan.volumes
    assert plan.links == [("/gitsync/repo/repo", "/datasets/repo")]
    assert home_links(plan) == [("/datasets", "~/datasets"), ("/project/team-a", "~/team-a")]


# --- 10. start-up hooks, Safe Mode, images without jupyterhub-singleuser ----------------------------


def _start(tmp_path, command, **env):
    import subprocess

    from primehub_hub.singleuser import wrapped_command

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full_env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PRIMEHUB_JUPYTERHUB_VERSION": "5.3.0", **env}
    return subprocess.run(wrapped_command(command), env=full_env, capture_output=True, text=True, timeout=60)


def test_the_group_and_user_profiles_run_before_the_server(tmp_path):
    group = tmp_path / "project" / "team"
    (group / ".primehub").mkdir(parents=True)
    (group / ".primehub" / "profile").write_text("export FROM_GROUP=g\n")
    (tmp_path / "home" / ".primehub").mkdir(parents=True)
    (tmp_path / "home" / ".primehub" / "profile").write_text("export FROM_USER=u\nfalse\n")
    done = _start(tmp_path, ["sh", "-c", 'echo "got $FROM_GROUP $FROM_USER"'], PRIMEHUB_GROUP_VOLUME=str(group))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "got g u"
    assert "sourcing" in done.stderr


def test_safe_mode_skips_the_hooks(tmp_path):
    (tmp_path / "home" / ".primehub").mkdir(parents=True)
    (tmp_path / "home" / ".primehub" / "profile").write_text("exit 3\n")  # a profile that breaks the start
    assert _start(tmp_path, ["sh", "-c", "echo started"]).returncode == 3
    done = _start(tmp_path, ["sh", "-c", "echo started"], PRIMEHUB_SAFE_MODE="true")
    assert done.returncode == 0 and done.stdout.strip() == "started" and "Safe Mode" in done.stderr


def test_an_image_without_the_server_command_fails_with_a_sentence(tmp_path):
    done = _start(tmp_path, ["no-such-server-command", "--port=8888"])
    assert done.returncode == 127
    assert "cannot start: the image has no no-such-server-command" in done.stderr


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_safe_mode_is_a_one_off_that_moves_the_home_volume():
    spawner = make_spawner(
        "ana", options_explicit=True, volume_mounts={"home": {"name": "home", "mountPath": "/home/jovyan"}}
    )
    spawner.user_options = await spawner._primehub_options_from_form({"group": ["analysts"], "safe_mode": ["on"]})
    assert spawner.user_options["safe_mode"] is True
    await spawner.load_user_options()
    pod = await _pod_dict(spawner)
    container = pod["spec"]["containers"][0]
    assert "/home/jovyan/user" in [m["mountPath"] for m in container["volumeMounts"]]
    assert {e["name"]: e.get("value") for e in container["env"]}["PRIMEHUB_SAFE_MODE"] == "true"
    from primehub_hub.singleuser import START_WRAPPER

    assert container["args"][:4] == ["sh", "-c", START_WRAPPER.strip(), "primehub-start"]  # intact, not expanded
    assert container["args"][4] == "jupyterhub-singleuser"
    # remembered options never start in Safe Mode again
    from primehub_hub.plan import normalize_options

    assert "safe_mode" not in normalize_options(spawner.user_options, strict=False)
    spawner.options_explicit = False
    await spawner.load_user_options()
    assert not spawner.plan.safe_mode
    assert "/home/jovyan" in [m["mountPath"] for m in spawner.volume_mounts.values()]


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_operator_start_scripts_are_mounted_from_a_configmap():
    spawner = make_spawner("ana", options_explicit=True, start_scripts_configmap="primehub-start-scripts")
    spawner.user_options = {"group": "analysts"}
    await spawner.load_user_options()
    pod = await _pod_dict(spawner)
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "primehub-start-scripts"]
    assert volume["configMap"] == {"name": "primehub-start-scripts", "defaultMode": 0o755}
    assert "/usr/local/bin/start-notebook.d" in [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]


def test_explain_shows_dev_shm_per_instance_type():
    from primehub_hub.explain import explain_user, render_text

    report = explain_user(_labelled_user(), _catalog_with_labels(), shm_setting="limit")
    (team,) = report["groups"]
    assert {i["name"]: i["shmSize"] for i in team["instanceTypes"]}["a-big"] == "1Gi"
    assert "/dev/shm" in render_text(report)
    assert (
        explain_user(_labelled_user(), _catalog_with_labels(), shm_setting="")["groups"][0]["instanceTypes"][0][
            "shmSize"
        ]
        is None
    )


def test_a_git_checkout_not_synced_yet_is_linked_anyway(tmp_path):
    folder = tmp_path / "datasets"
    folder.mkdir()
    _run_links(tmp_path, [(str(tmp_path / "gitsync" / "repo" / "repo"), str(folder / "repo"))])
    assert (folder / "repo").is_symlink() and not (folder / "repo").exists()  # works once git-sync writes it
