"""PrimeHubSpawner against an in-memory Kubernetes API: what reaches the pod, server-side
re-checks, quotas under concurrency, spawning for another user, and fast failure."""

import asyncio
import gc
import json
import logging
import threading
import time
from types import SimpleNamespace

import pytest
from jupyterhub import version_info as JUPYTERHUB_VERSION
from tornado import web

from hub_scenario import (
    GPU_LAUNCH,
    NAMESPACE,
    FakeCoreApi,
    FakeReflector,
    PodRemovingApi,
    catalog,
    make_spawner,
    planned_spawner,
    reflectors,
    user,
)
from primehub_hub import quotas
from primehub_hub.entitlements import EVERYONE, Group, UserInfo
from primehub_hub.errors import (
    BadRequest,
    ConfigurationError,
    MountFailed,
    NoLaunchGroup,
    QuotaExceeded,
    Refused,
    SchedulingFailed,
    quiet_refusals,
)
from primehub_hub.quotas import GiB
from primehub_hub.volumes import ANNOTATION_GROUP_KEY

pytestmark = pytest.mark.usefixtures("offline_kube")


def env_of(pod):
    return {e.name: e.value for e in pod.spec.containers[0].env}


def names(items):
    return [i["name"] if isinstance(i, dict) else i.name for i in items]


# --- what reaches the pod ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_gpu_launch_reaches_the_pod():
    spawner = make_spawner("ana", options_explicit=True)
    spawner.user_options = dict(GPU_LAUNCH)
    await spawner.load_user_options()
    assert spawner.image == "example/torch:cuda"
    assert (spawner.cpu_limit, spawner.mem_limit, spawner.extra_resource_limits) == (
        4.0,
        16 * GiB,
        {"nvidia.com/gpu": 1},
    )
    assert spawner.node_selector == {"accelerator": "nvidia"}
    assert spawner.storage_capacity == "20Gi"

    pod = await spawner.get_pod_manifest()
    labels = pod.metadata.labels
    assert labels["primehub.io/user"] == "escaped-ana" and labels["primehub.io/group"] == "escaped-vision"
    env = env_of(pod)
    assert env["GROUP_NAME"] == "vision" and env["GROUP_ID"] == "g-vision"
    assert env["INSTANCE_TYPE"] == "gpu-one" and env["IMAGE_NAME"] == "torch" and env["TZ"] == "Asia/Taipei"
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    # KubeSpawner expands {…} in its environment; dataset values must arrive untouched
    assert env["HANDBOOK_URL"] == "https://handbook.example.com/{page}"
    assert pod.spec.tolerations[0].key == "nvidia.com/gpu"
    mounts = {m.mount_path: m.read_only for m in pod.spec.containers[0].volume_mounts}
    assert mounts["/datasets/reports"] is True  # read-only under vision
    assert "/datasets/confidential" not in mounts  # launch-group-only, granted to analysts
    assert mounts["/project/vision"] in (None, False)
    links = pod.spec.containers[0].lifecycle.post_start["exec"]["command"][-1]
    assert 'ln -s /srv/git/notebooks "$HOME"/notebooks' in links  # homeSymlink, never over a user's file
    assert "ln -s /gitsync/notebooks/notebooks /srv/git/notebooks" in links  # the git checkout itself


@pytest.mark.asyncio
async def test_a_dataset_cannot_take_over_the_servers_hub_connection():
    from hub_scenario import RESOURCES
    from primehub_hub.cli import load_resource_objects
    from primehub_hub.resources import Catalog

    rogue = {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "jupyterhub"},
        "spec": {"type": "env", "variables": {"api_url": "https://attacker.example/hub/api", "api_token": "x"}},
    }
    info = user("ana")
    everyone = next(g for g in info.groups if g.name == EVERYONE)
    everyone.realm_roles = [*everyone.realm_roles, "ds:jupyterhub"]
    spawner = make_spawner(
        "ana",
        info=info,
        cat=Catalog.from_objects(load_resource_objects([RESOURCES]) + [rogue]),
        options_explicit=True,
        hub_connect_url="http://hub.internal:8081",
    )
    spawner.api_token = "the-servers-own-token"
    spawner.user_options = dict(GPU_LAUNCH)
    await spawner.load_user_options()
    env = env_of(await spawner.get_pod_manifest())
    assert env["JUPYTERHUB_API_TOKEN"] == "the-servers-own-token"
    assert "attacker" not in env["JUPYTERHUB_API_URL"]


@pytest.mark.asyncio
async def test_each_launch_starts_from_the_configured_baseline():
    spawner = make_spawner(
        "ana",
        options_explicit=True,
        node_selector={"pool": "users"},
        tolerations=[{"key": "users", "operator": "Exists"}],
        extra_labels={"team": "x"},
    )
    spawner.user_options = dict(GPU_LAUNCH)
    await spawner.load_user_options()
    assert spawner.node_selector == {"pool": "users", "accelerator": "nvidia"}
    assert [t["key"] for t in spawner.tolerations] == ["users", "nvidia.com/gpu"]

    spawner.user_options = {"group": "analysts", "instance_type": "small", "image": "lab"}
    await spawner.load_user_options()
    assert spawner.node_selector == {"pool": "users"}
    assert [t["key"] for t in spawner.tolerations] == ["users"]
    assert spawner.extra_resource_limits == {}
    assert spawner.image_pull_secrets == [{"name": "regcred"}]
    assert spawner.extra_labels["team"] == "x" and spawner.extra_labels["primehub.io/group"] == "escaped-analysts"
    volumes = names(spawner.volumes)
    assert len(volumes) == len(set(volumes))
    pod = await spawner.get_pod_manifest()
    env = env_of(pod)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "none" and env["GROUP_NAME"] == "analysts"
    assert pod.spec.containers[0].resources.limits == {"cpu": 1.0, "memory": 2 * GiB}


@pytest.mark.asyncio
async def test_explicit_zero_requests_and_requests_of_the_instance_type():
    spawner = make_spawner("root", options_explicit=True, explicit_zero_requests=True)
    spawner.user_options = {"group": "analysts", "instance_type": "small", "image": "base"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    assert pod.spec.containers[0].resources.requests == {"cpu": "0", "memory": "0"}
    spawner.user_options = {"group": "analysts", "instance_type": "medium", "image": "base"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    assert pod.spec.containers[0].resources.requests == {"cpu": 0.5, "memory": GiB}


# --- server-side re-checks ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "formdata, error",
    [
        ({"group": ["interns"]}, Refused),
        ({"group": ["vision"], "instance_type@vision": ["medium"]}, Refused),
        ({"group": ["vision"], "instance_type@vision": ["small"], "image@vision": ["cuda"]}, Refused),
        ({"group": ["vision"], "instance_type@vision": ["gpu-two"]}, QuotaExceeded),
        ({"group": ["vision"], "env": ["LD_PRELOAD=/evil.so"]}, BadRequest),
        ({"group": ["vision", "analysts"]}, BadRequest),
    ],
)
async def test_forged_form_submissions_are_refused_with_4xx(formdata, error):
    spawner = make_spawner("ana")
    with pytest.raises(error) as info:
        await spawner.run_options_from_form(formdata)
    assert isinstance(info.value, web.HTTPError) and 400 <= info.value.status_code < 500


@pytest.mark.asyncio
async def test_a_valid_form_submission_becomes_clean_user_options():
    spawner = make_spawner("ana")
    formdata = {
        "group": ["vision"],
        "instance_type@vision": ["gpu-one"],
        "image@vision": ["torch"],
        "instance_type@analysts": ["medium"],
    }
    assert await spawner.run_options_from_form(formdata) == GPU_LAUNCH
    assert await spawner.options_from_query({"group": ["analysts"]}) == {
        "group": "analysts",
        "instance_type": "medium",
        "image": "base",
    }


def request_handler(method="POST", body=b"", query=None):
    return SimpleNamespace(request=SimpleNamespace(method=method, body=body, query_arguments=query or {}))


@pytest.mark.asyncio
async def test_api_submitted_options_are_checked_strictly_before_any_pod():
    api = FakeCoreApi()
    spawner = make_spawner("ana")
    spawner.api = api
    spawner.handler = request_handler(body=b'{"group": "interns"}')
    spawner.user_options = {"group": "interns"}
    with pytest.raises(Refused, match="not a member of group 'interns'") as info:
        await spawner.load_user_options()
    assert info.value.status_code == 403
    assert api.pods == {} and spawner.plan is None


async def jupyterhub_spawn_steps(spawner):
    """What JupyterHub's User.spawn does with user_options before and at the start: its
    apply_user_options hook, then KubeSpawner's start, which begins with load_user_options."""
    await spawner._run_apply_user_options(spawner.user_options)
    await spawner.load_user_options()


@pytest.mark.asyncio
async def test_a_normal_spawn_applies_the_options_through_jupyterhubs_hook_without_a_warning(caplog):
    spawner = make_spawner("ana")
    spawner.handler = request_handler(body=b"group=vision&instance_type%40vision=gpu-one&image%40vision=torch")
    spawner.user_options = dict(GPU_LAUNCH)
    decided = []
    original = spawner.decide_launch

    async def counted(options):
        decided.append(dict(options))
        return await original(options)

    spawner.decide_launch = counted
    with caplog.at_level("DEBUG"):
        await jupyterhub_spawn_steps(spawner)
    assert "unhandled user_options" not in caplog.text.lower()
    assert spawner.image == "example/torch:cuda" and spawner.extra_resource_limits == {"nvidia.com/gpu": 1}
    assert decided == [GPU_LAUNCH]  # decided once, by the hook; the start applies no second time


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "options",
    [
        {"group": "interns"},  # not a member
        {"group": "vision", "instance_type": "medium"},  # not granted under vision
        {"group": "vision", "instance_type": "small", "image": "cuda"},  # GPU image without GPUs
    ],
)
async def test_forged_api_options_are_still_refused_by_the_hook_before_any_pod(options, caplog):
    api = FakeCoreApi()
    spawner = make_spawner("ana")
    spawner.api = api
    spawner.handler = request_handler(body=json.dumps(options).encode())
    spawner.user_options = dict(options)
    with caplog.at_level("INFO"), pytest.raises(Refused) as info:
        await spawner._run_apply_user_options(spawner.user_options)
    assert info.value.status_code == 403 and info.value.jupyterhub_message
    assert api.pods == {} and spawner.plan is None
    # the operator's log says why in one line, not with a traceback as if the hub were broken
    logged = [r for r in caplog.records if info.value.message in r.getMessage()]
    assert logged and all(r.levelname == "WARNING" and not r.exc_info for r in logged), caplog.text
    assert "Traceback" not in caplog.text


def test_a_configuration_error_keeps_its_traceback_in_the_log(caplog):
    log = logging.getLogger("test-refusal-tracebacks")
    quiet_refusals(log)
    quiet_refusals(log)  # once, however many spawners are made
    assert len(log.filters) == 1
    for error in (ConfigurationError("Group 'vision' has no project volume size."), Refused("Not yours.")):
        try:
            raise error
        except Exception:
            log.exception("Exception applying user_options for %s", "ana")
    misconfigured, refused = caplog.records[-2:]
    assert misconfigured.levelname == "ERROR" and misconfigured.exc_info
    assert refused.levelname == "WARNING" and not refused.exc_info
    assert refused.getMessage() == "Exception applying user_options for ana: Not yours."


@pytest.mark.asyncio
async def test_with_an_operators_own_apply_hook_the_start_still_checks_the_options():
    applied = []
    spawner = make_spawner("ana", apply_user_options=lambda spawner, options: applied.append(options))
    spawner.handler = request_handler(body=b'{"group": "interns"}')
    spawner.user_options = {"group": "interns"}
    await spawner._run_apply_user_options(spawner.user_options)
    assert applied == [{"group": "interns"}]
    with pytest.raises(Refused, match="not a member of group 'interns'"):
        await spawner.load_user_options()
    assert spawner.plan is None


@pytest.mark.asyncio
async def test_options_changed_after_the_hook_are_decided_again_at_the_start():
    # e.g. a pre_spawn_hook that rewrites user_options between JupyterHub's hook and the start
    spawner = make_spawner("ana", options_explicit=True)
    spawner.user_options = dict(GPU_LAUNCH)
    await spawner._run_apply_user_options(spawner.user_options)
    spawner.user_options = {"group": "interns"}
    with pytest.raises(Refused):
        await spawner.load_user_options()


@pytest.mark.asyncio
async def test_remembered_options_no_longer_granted_are_dropped_quietly_at_spawn():
    spawner = make_spawner("ana")
    spawner.handler = request_handler(body=b"")  # a start without options re-uses the last ones
    spawner.user_options = {"group": "vision", "instance_type": "gpu-two", "image": "cuda"}
    await spawner.load_user_options()
    assert spawner.user_options == {"group": "vision", "instance_type": "amd-one", "image": "cuda"}
    assert spawner.extra_resource_limits == {"amd.com/gpu": 1}


@pytest.mark.asyncio
async def test_a_named_servers_display_name_is_not_a_server_option():
    # JupyterHub 6 (jupyterhub#5443) passes ?display_name=... to /hub/spawn/<user>/<server>; the remembered choices
    # still apply leniently, as on a start without options.
    spawner = make_spawner("ana")
    spawner.handler = request_handler(method="GET", query={"display_name": [b"My GPU box"], "next": [b"/x"]})
    spawner.user_options = {"group": "vision", "instance_type": "gpu-two", "image": "cuda"}
    await spawner.load_user_options()
    assert spawner.user_options == {"group": "vision", "instance_type": "amd-one", "image": "cuda"}


@pytest.mark.asyncio
async def test_a_start_through_jupyterhub_6s_body_schema_without_options_uses_the_remembered_ones():
    # JupyterHub 6 (REST API, jupyterhub#5443) accepts {"display_name": ..., "user_options": null}: no new options.
    # JupyterHub 5 reads the whole body as the options, and display_name is no server option.
    spawner = make_spawner("ana")
    spawner.handler = request_handler(body=b'{"display_name": "box", "user_options": null}')
    if JUPYTERHUB_VERSION >= (6,):
        spawner.user_options = {"group": "vision", "instance_type": "gpu-two", "image": "cuda"}  # remembered
        await spawner.load_user_options()
        assert spawner.user_options == {"group": "vision", "instance_type": "amd-one", "image": "cuda"}
    else:
        spawner.user_options = {"display_name": "box", "user_options": None}
        with pytest.raises(BadRequest, match="Unknown server option"):
            await spawner.load_user_options()


@pytest.mark.asyncio
async def test_options_in_jupyterhub_6s_body_schema_are_checked_strictly():
    spawner = make_spawner("ana")
    spawner.handler = request_handler(body=b'{"user_options": {"group": "interns"}}')
    # what JupyterHub hands the spawner: the inner object (6) or the whole body (5)
    spawner.user_options = (
        {"group": "interns"} if JUPYTERHUB_VERSION >= (6,) else {"user_options": {"group": "interns"}}
    )
    with pytest.raises((Refused, BadRequest)) as info:
        await spawner.load_user_options()
    assert info.value.status_code in (400, 403) and spawner.plan is None


@pytest.mark.asyncio
async def test_shared_volume_without_capacity_is_a_clear_error_and_no_pod():
    spawner = make_spawner("bea", options_explicit=True)
    spawner.user_options = {"group": "broken_vol"}
    with pytest.raises(ConfigurationError, match="shared volume enabled but no shared-volume-capacity"):
        await spawner.load_user_options()
    assert spawner.plan is None


# --- spawning for another user ------------------------------------------------------------------


class FakeAuthenticator:
    def __init__(self):
        self.asked = []

    async def load_user_info(self, username, user_id=None, *, fresh=False):
        self.asked.append(username)
        return user(username)


class FakeHubUser(SimpleNamespace):
    async def get_auth_state(self):
        return {"primehub": {"id": f"id-{self.name}"}}


@pytest.mark.asyncio
async def test_an_admin_starting_a_server_for_another_user_gets_the_owners_entitlements():
    from primehub_hub.spawner import PrimeHubSpawner

    authenticator = FakeAuthenticator()
    spawner = PrimeHubSpawner(
        _mock=True,
        user=FakeHubUser(name="ana", id=2, url="/user/ana/"),
        authenticator=authenticator,
        primehub_catalog=catalog(),
        primehub_pods=[],
        namespace=NAMESPACE,
    )
    admin = FakeHubUser(name="root", id=1, url="/user/root/")
    spawner.handler = SimpleNamespace(
        current_user=admin, request=SimpleNamespace(method="GET", body=b"", query_arguments={})
    )
    html = await spawner.get_options_form()
    assert "You are starting a server for ana" in html
    assert 'value="vision"' in html  # root is not in vision; ana is
    spawner.handler = request_handler(body=b"group=vision")
    spawner.user_options = dict(GPU_LAUNCH)
    await spawner.load_user_options()
    assert spawner.extra_labels["primehub.io/user"] == "escaped-ana"
    assert set(authenticator.asked) == {"ana"}


@pytest.mark.asyncio
async def test_a_spawn_takes_the_owners_keycloak_id_from_its_requests_refresh_else_from_the_auth_state():
    from primehub_hub.refresh import note_refreshed_id
    from primehub_hub.spawner import PrimeHubSpawner

    class Loader:
        def __init__(self):
            self.ids = []

        async def load_entitlements(self, username, user_id=None):
            self.ids.append(user_id)
            return user(username)

    class CountingUser(FakeHubUser):
        decrypted = 0

        async def get_auth_state(self):
            self.decrypted += 1
            return await super().get_auth_state()

    def spawner_for(handler):
        loader, owner_ = Loader(), CountingUser(name="ana", id=2, url="/user/ana/")
        spawner = PrimeHubSpawner(_mock=True, user=owner_, authenticator=loader, namespace=NAMESPACE)
        spawner.handler = handler
        return spawner, loader, owner_

    refreshed = request_handler(body=b"group=vision")
    note_refreshed_id(refreshed, "ana", {"name": "ana", "auth_state": {"primehub": {"id": "kc-ana-new"}}})
    spawner, loader, owner_ = spawner_for(refreshed)
    await spawner.load_primehub_user()
    assert loader.ids == ["kc-ana-new"] and owner_.decrypted == 0
    # no refresh in this request (refresh_pre_spawn off, or it kept the state): the stored state's id
    spawner, loader, owner_ = spawner_for(request_handler(body=b"group=vision"))
    await spawner.load_primehub_user()
    assert loader.ids == ["id-ana"] and owner_.decrypted == 1


@pytest.mark.asyncio
async def test_the_form_for_a_user_without_groups_is_the_no_group_refusal():
    spawner = make_spawner("nobody")
    with pytest.raises(NoLaunchGroup, match="No group is configured for you"):
        await spawner.get_options_form()


@pytest.mark.asyncio
async def test_the_form_shows_usage_from_the_users_pods():
    running = {
        "metadata": {
            "name": "jupyter-ana--other",
            "labels": {"primehub.io/group": "escaped-analysts", "primehub.io/user": "escaped-ana"},
        },
        "spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": str(GiB)}}}]},
        "status": {"phase": "Running"},
    }
    spawner = make_spawner("ana", primehub_pods=[running])
    html = await spawner.get_options_form()
    assert "<td>1 CPU</td>" in html
    assert "1 CPU already in use" in html  # medium (2 CPU) no longer fits the 2 CPU quota


@pytest.mark.asyncio
async def test_the_rendered_form_is_reused_until_entitlements_usage_or_catalog_change(monkeypatch):
    import copy
    import dataclasses

    from primehub_hub import spawn_form  # where the spawner builds its form
    from primehub_hub.form import rendered_forms

    rendered_forms.clear()
    renders = []
    real_build = spawn_form.build_form

    collecting = []

    def counting_build(*args, **kwargs):
        renders.append(threading.current_thread())
        collecting.append(gc.isenabled())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(spawn_form, "build_form", counting_build)
    spawner = make_spawner("ana")
    first = await spawner.get_options_form()
    assert await spawner.get_options_form() == first
    # entitlements read again from Keycloak, unchanged: still the same page
    spawner.primehub_user = user("ana")
    assert await spawner.get_options_form() == first
    assert len(renders) == 1
    assert 'value="medium"' in first
    # rendered off the event loop's thread: a big form does not stop the hub serving others;
    # and without a full garbage collection (set off by its many objects) pausing every thread
    assert renders[0] is not threading.main_thread()
    assert collecting == [False] and gc.isenabled()

    # a grant removed: the next form no longer offers it
    reduced = copy.deepcopy(user("ana"))
    analysts = next(g for g in reduced.groups if g.name == "analysts")
    analysts.realm_roles = [r for r in analysts.realm_roles if r != "it:medium"]
    spawner.primehub_user = reduced
    assert 'value="medium"' not in await spawner.get_options_form()
    assert len(renders) == 2

    # usage changed: shown at once
    running = {
        "metadata": {
            "name": "jupyter-ana--other",
            "labels": {"primehub.io/group": "escaped-analysts", "primehub.io/user": "escaped-ana"},
        },
        "spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": str(GiB)}}}]},
        "status": {"phase": "Running"},
    }
    spawner.primehub_pods = [running]
    assert "<td>1 CPU</td>" in await spawner.get_options_form()
    assert len(renders) == 3

    # the catalog changed (the watcher hands out a new Catalog): the page follows it
    cat = spawner.primehub_catalog
    spawner.primehub_catalog = dataclasses.replace(
        cat, instance_types={k: v for k, v in cat.instance_types.items() if k != "small"}
    )
    before = await spawner.get_options_form()
    assert 'value="small"' not in before
    assert len(renders) == 4

    # the remembered choice is part of the page too
    spawner.user_options = {"group": "vision", "instance_type": "gpu-two", "image": "torch"}
    page = await spawner.get_options_form()
    assert len(renders) == 5
    assert 'data-group="vision"' in page and page != before


# --- quotas at pod creation, under the group lock --------------------------------------------------


def pool_user(name, **attributes):
    pool = Group("pool", attributes=attributes, realm_roles=["it:small", "img:base"], id="g-pool")
    return UserInfo(name, groups=[pool, Group(EVERYONE)])


async def spawn_in_pool(api, names_, **attributes):
    cat = catalog()
    spawners = []
    for name in names_:
        spawner = make_spawner(name, info=pool_user(name, **attributes), cat=cat, options_explicit=True)
        spawner.api = api
        spawner.user_options = {"group": "pool", "instance_type": "small", "image": "base"}
        await spawner.load_user_options()
        spawners.append(spawner)

    async def create(spawner):
        pod = await spawner.get_pod_manifest()
        return await spawner._make_create_pod_request(pod, 5)

    return await asyncio.gather(*(create(s) for s in spawners), return_exceptions=True)


@pytest.mark.asyncio
async def test_concurrent_spawns_in_a_group_pass_only_as_many_as_fit():
    api = FakeCoreApi()
    results = await spawn_in_pool(api, [f"u{i}" for i in range(6)], **{"project-quota-cpu": "3"})
    passed = [r for r in results if r is True]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(passed) == 3 and len(refused) == 3, results
    assert len(api.pods) == 3
    assert "the quota of group 'pool' is 3 CPU" in str(refused[0]) and "3 CPU already in use" in str(refused[0])


@pytest.mark.asyncio
async def test_without_the_group_lock_the_same_spawns_would_overrun(monkeypatch):
    # shows that the test above depends on the lock, not on luck
    monkeypatch.setattr(quotas.quota_locks, "lock_for", lambda *key: asyncio.Lock())
    api = FakeCoreApi()
    results = await spawn_in_pool(api, [f"u{i}" for i in range(6)], **{"project-quota-cpu": "3"})
    assert len([r for r in results if r is True]) > 3


@pytest.mark.asyncio
async def test_user_quota_counts_the_users_other_servers_in_the_group():
    api = FakeCoreApi()
    first = await spawn_in_pool(api, ["solo"], **{"quota-cpu": "1.5"})
    assert first == [True]
    spawner = make_spawner("solo", info=pool_user("solo", **{"quota-cpu": "1.5"}), options_explicit=True)
    spawner.pod_name = "jupyter-solo--second"  # a named server of the same user
    spawner.api = api
    spawner.user_options = {"group": "pool", "instance_type": "small", "image": "base"}
    await spawner.load_user_options()
    with pytest.raises(QuotaExceeded, match="your quota in group 'pool' is 1.5 CPU"):
        await spawner._make_create_pod_request(await spawner.get_pod_manifest(), 5)
    assert len(api.pods) == 1


@pytest.mark.asyncio
async def test_a_stale_pod_of_the_same_server_is_not_counted_twice():
    api = FakeCoreApi()
    assert await spawn_in_pool(api, ["solo"], **{"quota-cpu": "1"}) == [True]
    api.pods["jupyter-solo"]["status"]["phase"] = "Failed"
    del api.pods["jupyter-solo"]
    assert await spawn_in_pool(api, ["solo"], **{"quota-cpu": "1"}) == [True]


@pytest.mark.asyncio
async def test_group_shared_volumes_are_created_when_missing():
    api = FakeCoreApi()
    spawner = make_spawner("ana", options_explicit=True, shared_volume_storage_class="nfs")
    spawner.api = api
    spawner.user_options = {"group": "analysts", "instance_type": "small", "image": "base"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    assert await spawner._make_create_pod_request(pod, 5) is True
    assert sorted(api.pvcs) == ["project-analysts", "project-vision"]
    pvc = api.pvcs["project-analysts"]
    assert pvc.spec.resources.requests == {"storage": "5Gi"}
    assert pvc.spec.access_modes == ["ReadWriteMany"] and pvc.spec.storage_class_name == "nfs"
    # a second start finds them (409) and goes on
    del api.pods[pod.metadata.name]
    assert await spawner._make_create_pod_request(pod, 5) is True


@pytest.mark.asyncio
async def test_a_project_volume_of_another_group_with_the_same_volume_name_is_not_mounted():
    api = FakeCoreApi()
    owner = make_spawner("ana", options_explicit=True)
    owner.api = api
    owner.user_options = {"group": "analysts", "instance_type": "small", "image": "base"}
    await owner.load_user_options()
    assert await owner._make_create_pod_request(await owner.get_pod_manifest(), 5) is True
    # another group, "Analysts" (a different Keycloak group), maps to the same volume project-analysts
    info = user("ana")
    for g in info.groups:
        if g.name == "analysts":
            g.name, g.id, g.path = "Analysts", "g-other", "/Analysts"
    intruder = make_spawner("bea", info=info, options_explicit=True)
    intruder.api = api
    intruder.user_options = {"group": "Analysts", "instance_type": "small", "image": "base"}
    await intruder.load_user_options()
    with pytest.raises(ConfigurationError, match="both map to the project volume project-analysts"):
        await intruder._make_create_pod_request(await intruder.get_pod_manifest(), 5)
    assert list(api.pods) == ["jupyter-ana"]


class RealmGroups:
    """The one Keycloak read the owner check makes: a group by id, None when the realm lacks it."""

    def __init__(self, **groups):
        self.groups = groups
        self.asked = []

    async def group_by_id(self, group_id):
        self.asked.append(group_id)
        return self.groups.get(group_id)


async def _launch_analysts(api, username, group_id, realm):
    info = user(username)
    for g in info.groups:
        if g.name == "analysts":
            g.id = group_id
    spawner = make_spawner(username, info=info, options_explicit=True)
    spawner.api = api
    spawner.authenticator = SimpleNamespace(keycloak_admin=realm)
    spawner.user_options = {"group": "analysts", "instance_type": "small", "image": "base"}
    await spawner.load_user_options()
    return spawner, await spawner.get_pod_manifest()


async def _volume_made_by_analysts(group_id):
    """A namespace where group analysts (id `group_id`) launched once: its project volume stays."""
    api = FakeCoreApi()
    first, pod = await _launch_analysts(api, "ana", group_id, RealmGroups())
    assert await first._make_create_pod_request(pod, 5) is True
    del api.pods[pod.metadata.name]
    return api


@pytest.mark.asyncio
async def test_a_re_imported_realm_keeps_its_groups_project_volumes():
    # The realm was restored from its export: group analysts has a new id and the old id is gone.
    api = await _volume_made_by_analysts("g-before")
    realm = RealmGroups()
    again, pod = await _launch_analysts(api, "ana", "g-after", realm)
    assert await again._make_create_pod_request(pod, 5) is True
    assert realm.asked == ["g-before"]
    assert api.pvcs["project-analysts"].metadata.annotations[ANNOTATION_GROUP_KEY] == "g-after"


@pytest.mark.asyncio
async def test_a_project_volume_whose_owner_still_exists_is_refused_naming_that_group():
    api = await _volume_made_by_analysts("g-before")
    # A second group that shares the name (a subgroup /research/analysts) while the first one lives on.
    realm = RealmGroups(**{"g-before": {"id": "g-before", "path": "/analysts"}})
    other, pod = await _launch_analysts(api, "bea", "g-sub", realm)
    with pytest.raises(
        ConfigurationError, match=r"Groups 'analysts' and 'analysts \(another group of that name\)' both map"
    ):
        await other._make_create_pod_request(pod, 5)
    assert not api.pods
    assert api.pvcs["project-analysts"].metadata.annotations[ANNOTATION_GROUP_KEY] == "g-before"


# --- fast failure ---------------------------------------------------------------------------------------


def unschedulable_pod(
    message="0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector.",
):
    return {
        "metadata": {"name": "jupyter-ana", "namespace": NAMESPACE},
        "spec": {},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}],
        },
    }


@pytest.mark.asyncio
async def test_the_scheduling_watch_ends_when_cancelled_as_the_pod_changes(monkeypatch):
    # The spawn's end cancels the watch at the moment the pod's last change wakes it. asyncio.wait_for
    # (before Python 3.12) then returns the wake-up and drops the cancellation: the watch went on
    # forever and the spawn, which waits for it, never completed (seen on the local stack).
    with reflectors(monkeypatch, pods={}):
        spawner = await planned_spawner()
        spawner.scheduling_poll_interval = 30
        spawner._pod_created = False
        watch = asyncio.ensure_future(spawner._watch_scheduling())
        await asyncio.sleep(0.05)  # waiting for a change
        spawner._scheduling_changed().set()
        watch.cancel()
        done, _ = await asyncio.wait({watch}, timeout=2)
    assert done and watch.cancelled(), "the watch kept running after it was cancelled"


@pytest.mark.asyncio
async def test_an_unschedulable_pod_is_reported_in_words_within_a_second(monkeypatch):
    with reflectors(monkeypatch, pods={f"{NAMESPACE}/jupyter-ana": unschedulable_pod()}):
        spawner = await planned_spawner()
        started = time.monotonic()
        failure = await asyncio.wait_for(spawner._watch_scheduling(), 2)
    assert time.monotonic() - started < 1
    assert isinstance(failure, SchedulingFailed)
    assert str(failure).startswith("No node can run this server: not enough free GPUs (nvidia.com/gpu) (1 node)")
    assert "no node matches the instance type's node selector" in str(failure)
    assert "'One GPU' asks for 4 CPU, 16 GiB memory, 1 GPU" in str(failure)


@pytest.mark.asyncio
async def test_the_grace_period_delays_the_verdict(monkeypatch):
    with reflectors(monkeypatch, pods={f"{NAMESPACE}/jupyter-ana": unschedulable_pod()}):
        spawner = await planned_spawner(scheduling_failure_grace=0.4)
        started = time.monotonic()
        await asyncio.wait_for(spawner._watch_scheduling(), 2)
    assert time.monotonic() - started >= 0.4


@pytest.mark.asyncio
async def test_waiting_continues_while_a_volume_is_prepared_or_a_node_is_being_added(monkeypatch):
    pvc = unschedulable_pod("0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
    with reflectors(monkeypatch, pods={f"{NAMESPACE}/jupyter-ana": pvc}):
        spawner = await planned_spawner()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spawner._watch_scheduling(), 0.5)
    events = {
        "e": {
            "involvedObject": {"name": "jupyter-ana"},
            "reason": "TriggeredScaleUp",
            "metadata": {"uid": "e"},
            "lastTimestamp": "t",
            "eventTime": None,
        }
    }
    with reflectors(monkeypatch, pods={f"{NAMESPACE}/jupyter-ana": unschedulable_pod()}, events=events):
        spawner = await planned_spawner()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spawner._watch_scheduling(), 0.5)


@pytest.mark.asyncio
async def test_the_scheduling_watch_reads_the_same_events_as_kubespawner_picking_its_pods_first(monkeypatch):
    def event(uid, pod, at):
        return {"involvedObject": {"name": pod}, "metadata": {"uid": uid}, "lastTimestamp": at, "eventTime": None}

    # a busy namespace: other servers' events interleaved with ana's, out of order, one before her start
    events = {
        e["metadata"]["uid"]: e
        for e in [event(f"o{i}", f"jupyter-u{i}", f"2026-12-02T09:{i % 60:02d}:00Z") for i in range(300)]
    }
    events.update(
        {
            "late": event("late", "jupyter-ana", "2026-12-02T09:30:00Z"),
            "marker": event("marker", "jupyter-ana", "2026-12-02T09:10:00Z"),
            "old": event("old", "jupyter-ana", "2026-12-02T09:00:00Z"),
            "early": event("early", "jupyter-ana", "2026-12-02T09:20:00Z"),
            # within one second (lastTimestamp's resolution): the order they arrived in
            "tie-b": event("tie-b", "jupyter-ana", "2026-12-02T09:25:00Z"),
            "tie-a": event("tie-a", "jupyter-ana", "2026-12-02T09:25:00Z"),
        }
    )
    mine = ["early", "tie-b", "tie-a", "late"]
    from kubespawner import KubeSpawner

    with reflectors(monkeypatch, pods={}, events=events) as (_pods, fake):
        spawner = await planned_spawner()
        spawner._last_event = "marker"
        # KubeSpawner's own reading, over its EventReflector's sorting of the whole namespace
        sorted_all = sorted(events.values(), key=lambda e: e["lastTimestamp"] or e["eventTime"])
        monkeypatch.setattr(type(fake), "events", property(lambda self: sorted_all))
        kubespawners = KubeSpawner.events.fget(spawner)
        assert [e["metadata"]["uid"] for e in kubespawners] == mine
        # the spawner's `events` (KubeSpawner's start and progress read it) is this same reading
        assert spawner._pod_events() == kubespawners and spawner.events == kubespawners

    # the spawner's own (notifying) reflector answers from its index of events by pod name
    from primehub_hub.watch import notifying

    indexed = notifying(FakeReflector)(events)
    monkeypatch.setitem(KubeSpawner.reflectors, ("events", NAMESPACE), indexed)
    indexed.resources = _unreadable_whole(indexed.resources)
    assert [e["metadata"]["uid"] for e in spawner._pod_events()] == mine
    assert [e["metadata"]["uid"] for e in spawner.events] == mine


def _unreadable_whole(watched):
    """The reflector's dict, failing any read of the whole namespace's events."""

    class Unreadable(type(watched)):
        def values(self):
            raise AssertionError("read every event of the namespace")

        items = values

    return Unreadable(watched, watched._changed)


@pytest.mark.asyncio
async def test_fast_failure_reacts_to_the_failed_scheduling_event_without_polling(monkeypatch):
    from kubespawner import KubeSpawner

    from primehub_hub.watch import notifying

    Store = notifying(FakeReflector)  # made notifying like the spawner's own reflectors
    pending = {"metadata": {"name": "jupyter-ana", "namespace": NAMESPACE}, "spec": {}, "status": {"phase": "Pending"}}
    pods, events = Store({f"{NAMESPACE}/jupyter-ana": pending}), Store()
    monkeypatch.setitem(KubeSpawner.reflectors, ("pods", NAMESPACE), pods)
    monkeypatch.setitem(KubeSpawner.reflectors, ("events", NAMESPACE), events)
    spawner = await planned_spawner()
    spawner.scheduling_poll_interval = 3600  # only a watch event can wake it
    watching = asyncio.ensure_future(spawner._watch_scheduling())
    for _ in range(5):
        await asyncio.sleep(0)
    # an event about another pod does not end this spawn
    events.resources[f"{NAMESPACE}/other.1"] = {
        "involvedObject": {"name": "jupyter-bob"},
        "reason": "FailedScheduling",
        "metadata": {"uid": "o1"},
        "message": "0/2 nodes are available: 2 Insufficient cpu.",
    }
    for _ in range(5):
        await asyncio.sleep(0)
    assert not watching.done()
    events.resources[f"{NAMESPACE}/jupyter-ana.1"] = {
        "involvedObject": {"name": "jupyter-ana"},
        "reason": "FailedScheduling",
        "metadata": {"uid": "a1"},
        "message": "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's node affinity/selector.",
    }
    failure = await asyncio.wait_for(watching, 30)
    assert isinstance(failure, SchedulingFailed)
    assert "not enough free GPUs" in str(failure)
    # the spawn stopped listening
    assert not pods._listeners and not events._listeners


@pytest.mark.asyncio
async def test_the_home_volume_not_yet_seen_by_the_scheduler_is_waited_for(monkeypatch):
    # The scheduler may see the pod before the claim the spawner created just before it.
    lagging = unschedulable_pod('persistentvolumeclaim "claim-ana" not found')
    with reflectors(monkeypatch, pods={f"{NAMESPACE}/jupyter-ana": lagging}):
        spawner = await planned_spawner(storage_pvc_ensure=True, pvc_name_template="claim-{username}")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spawner._watch_scheduling(), 0.5)
    missing_dataset = unschedulable_pod('persistentvolumeclaim "dataset-nowhere" not found')
    with reflectors(monkeypatch, pods={f"{NAMESPACE}/jupyter-ana": missing_dataset}):
        spawner = await planned_spawner(storage_pvc_ensure=True, pvc_name_template="claim-{username}")
        failure = await asyncio.wait_for(spawner._watch_scheduling(), 2)
    assert "dataset-nowhere" in str(failure)


@pytest.mark.asyncio
async def test_start_fails_fast_and_removes_the_pod(monkeypatch):
    with reflectors(monkeypatch, pods={}) as (pods, _events):
        spawner = await planned_spawner()
        spawner._pod_created = False
        stopped = []
        kube_start_cancelled = asyncio.Event()

        async def kube_start():
            # KubeSpawner's _start: creates the pod, then waits for it to run (here: forever)
            spawner._pod_created = True
            pods.resources[f"{NAMESPACE}/jupyter-ana"] = unschedulable_pod()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                kube_start_cancelled.set()
                raise

        async def stop(now=False):
            stopped.append(now)

        monkeypatch.setattr(spawner, "_start", kube_start)
        monkeypatch.setattr(spawner, "stop", stop)
        started = time.monotonic()
        with pytest.raises(SchedulingFailed, match="not enough free GPUs") as info:
            await asyncio.wait_for(spawner.start(), 3)
    assert time.monotonic() - started < 1.5
    assert info.value.jupyterhub_message == str(info.value)
    assert stopped == [True] and kube_start_cancelled.is_set()


@pytest.mark.asyncio
async def test_start_returns_the_url_when_the_pod_runs(monkeypatch):
    with reflectors(monkeypatch, pods={}):
        spawner = await planned_spawner()

        async def kube_start():
            await asyncio.sleep(0.1)
            return "http://127.100.0.1:8888"

        monkeypatch.setattr(spawner, "_start", kube_start)
        assert await spawner.start() == "http://127.100.0.1:8888"


@pytest.mark.parametrize("resource", ["nvidia.com/mig-1g.5gb", "gpu.intel.com/i915"])
@pytest.mark.asyncio
async def test_gpu_quota_counts_the_gpu_resource_instance_types_declare(resource):
    from hub_scenario import RESOURCES
    from primehub_hub.cli import load_resource_objects
    from primehub_hub.resources import Catalog

    sliced = {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "InstanceType",
        "metadata": {"name": "slice"},
        "spec": {"limits": {"cpu": 1, "memory": "1G", "gpu": 1}, "gpuResourceName": resource},
    }
    cat = Catalog.from_objects(load_resource_objects([RESOURCES]) + [sliced])
    pool = Group("pool", attributes={"quota-gpu": "1"}, realm_roles=["it:slice", "img:base"], id="g-pool")
    info = UserInfo("solo", groups=[pool, Group(EVERYONE)])
    api = FakeCoreApi()
    first = make_spawner("solo", info=info, cat=cat, options_explicit=True)
    first.api = api
    first.user_options = {"group": "pool", "instance_type": "slice", "image": "base"}
    await first.load_user_options()
    assert await first._make_create_pod_request(await first.get_pod_manifest(), 5) is True
    second = make_spawner("solo", info=info, cat=cat, options_explicit=True)
    second.pod_name = "jupyter-solo--second"
    second.api = api
    second.user_options = dict(first.user_options)
    await second.load_user_options()
    with pytest.raises(QuotaExceeded, match="GPU"):
        await second._make_create_pod_request(await second.get_pod_manifest(), 5)
    assert len(api.pods) == 1


@pytest.mark.asyncio
async def test_a_home_symlink_never_replaces_a_users_file():
    spawner = make_spawner("ana", options_explicit=True)
    spawner.user_options = dict(GPU_LAUNCH)
    await spawner.load_user_options()
    command = spawner.lifecycle_hooks["postStart"]["exec"]["command"][-1]
    # every link is made only when nothing (a file, folder or link of the user's) is there yet
    assert '{ [ -e "$HOME"/notebooks ] || [ -L "$HOME"/notebooks ] || ' in command
    assert " -f" not in command and "rm " not in command


@pytest.mark.asyncio
async def test_counting_a_groups_pods_under_the_lock_gives_up_in_time():
    from primehub_hub.errors import CatalogUnavailable

    class HangingApi(FakeCoreApi):
        async def list_namespaced_pod(self, *args, **kwargs):
            await asyncio.sleep(3600)

    api = HangingApi()
    spawner = make_spawner(
        "u0", info=pool_user("u0", **{"project-quota-cpu": "3"}), options_explicit=True, k8s_api_request_timeout=1
    )
    spawner.api = api
    spawner.user_options = {"group": "pool", "instance_type": "small", "image": "base"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    with pytest.raises(CatalogUnavailable, match="could not count the servers of group 'pool'"):
        # the outer bound only keeps a regression from hanging the suite
        await asyncio.wait_for(spawner._make_create_pod_request(pod, 5), 60)
    assert api.pods == {}
    assert not quotas.quota_locks.lock_for(NAMESPACE, "pool").locked()


@pytest.mark.asyncio
async def test_a_spawn_stopped_while_counting_a_groups_pods_frees_the_group():
    counting = asyncio.Event()

    class HangingApi(FakeCoreApi):
        async def list_namespaced_pod(self, *args, **kwargs):
            counting.set()
            await asyncio.sleep(3600)

    api = HangingApi()
    spawner = make_spawner(
        "u0", info=pool_user("u0", **{"project-quota-cpu": "3"}), options_explicit=True, k8s_api_request_timeout=600
    )
    spawner.api = api
    spawner.user_options = {"group": "pool", "instance_type": "small", "image": "base"}
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    task = asyncio.ensure_future(spawner._make_create_pod_request(pod, 5))
    await asyncio.wait_for(counting.wait(), 60)
    task.cancel()  # the user stops the pending spawn
    with pytest.raises(asyncio.CancelledError):
        await task
    assert api.pods == {}
    assert not quotas.quota_locks.lock_for(NAMESPACE, "pool").locked(), "the next spawn of the group may count"


# --- failed volume mounts -------------------------------------------------------------------------------

HOST_FOLDER_MISSING = 'MountVolume.SetUp failed for volume "dataset-reports" : hostPath type check failed: /data/reports is not a directory'


def placed_pod(uid="pod-uid-1"):
    """The pod on a node, its containers waiting for kubelet to mount the volumes."""
    return {
        "metadata": {"name": "jupyter-ana", "namespace": NAMESPACE, "uid": uid},
        "spec": {"nodeName": "cpu-node"},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
        },
    }


def mount_event(message, uid="pod-uid-1", count=1, first="2026-12-02T04:00:00Z", last=None, key="m1"):
    return {
        f"{NAMESPACE}/jupyter-ana.{key}": {
            "involvedObject": {"kind": "Pod", "name": "jupyter-ana", "uid": uid},
            "reason": "FailedMount",
            "type": "Warning",
            "message": message,
            "count": count,
            "firstTimestamp": first,
            "lastTimestamp": last or first,
            "eventTime": None,
            "metadata": {"uid": key},
        }
    }


@pytest.mark.asyncio
async def test_a_dataset_folder_missing_on_the_node_ends_the_spawn_naming_the_dataset(monkeypatch):
    pods = {f"{NAMESPACE}/jupyter-ana": placed_pod()}
    with reflectors(monkeypatch, pods=pods, events=mount_event(HOST_FOLDER_MISSING)):
        spawner = await planned_spawner()
        failure = await asyncio.wait_for(spawner._watch_scheduling(), 5)
    assert isinstance(failure, MountFailed) and failure.status_code == 503
    assert str(failure).startswith("Dataset 'reports' could not be mounted: its folder /data/reports does not exist")


@pytest.mark.asyncio
async def test_a_mount_failure_that_may_resolve_is_waited_for_until_kubelet_repeats_it(monkeypatch):
    missing_config = 'MountVolume.SetUp failed for volume "primehub-start-scripts" : configmap "scripts" not found'
    pods = {f"{NAMESPACE}/jupyter-ana": placed_pod()}
    with reflectors(monkeypatch, pods=pods, events=mount_event(missing_config, count=3, last="2026-12-02T04:00:04Z")):
        spawner = await planned_spawner(start_scripts_configmap="scripts")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spawner._watch_scheduling(), 0.5)
    repeated = mount_event(missing_config, count=7, last="2026-12-02T04:00:32Z")
    with reflectors(monkeypatch, pods=pods, events=repeated):
        spawner = await planned_spawner(start_scripts_configmap="scripts")
        failure = await asyncio.wait_for(spawner._watch_scheduling(), 5)
    assert "Volume 'primehub-start-scripts' could not be mounted" in str(failure)
    assert 'configmap "scripts" not found' in str(failure)


@pytest.mark.asyncio
async def test_mount_failures_of_an_earlier_pod_of_the_same_name_do_not_count(monkeypatch):
    pods = {f"{NAMESPACE}/jupyter-ana": placed_pod(uid="pod-uid-2")}
    with reflectors(monkeypatch, pods=pods, events=mount_event(HOST_FOLDER_MISSING, uid="pod-uid-1")):
        spawner = await planned_spawner()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spawner._watch_scheduling(), 0.5)


@pytest.mark.asyncio
async def test_a_home_volume_that_cannot_be_mounted_is_named_as_the_home_folder(monkeypatch):
    # kubelet names a claim's volume by the PersistentVolume bound to it
    nfs_down = (
        'MountVolume.SetUp failed for volume "pvc-4b1d" : mount failed: exit status 32\n'
        "Mounting command: mount\nMounting arguments: -t nfs 10.0.0.9:/home /var/lib/kubelet/pods/x/volumes/"
        "kubernetes.io~nfs/pvc-4b1d\nOutput: mount.nfs: Connection timed out\n"
    )
    pod = placed_pod()
    pod["spec"]["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ana"}}]
    api = FakeCoreApi()
    api.pvcs["claim-ana"] = SimpleNamespace(spec=SimpleNamespace(volume_name="pvc-4b1d"))
    with reflectors(monkeypatch, pods={f"{NAMESPACE}/jupyter-ana": pod}, events=mount_event(nfs_down)):
        spawner = await planned_spawner(
            storage_pvc_ensure=True,
            pvc_name_template="claim-{username}",
            volumes={"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}},
        )
        spawner.api = api
        failure = await asyncio.wait_for(spawner._watch_scheduling(), 5)
    assert str(failure).startswith("Your home folder could not be mounted: its storage server did not answer.")


@pytest.mark.asyncio
async def test_a_failed_mount_removes_the_pod_and_keeps_the_home_volume(monkeypatch):
    with reflectors(monkeypatch, pods={}) as (pods, events):
        spawner = await planned_spawner(storage_pvc_ensure=True, pvc_name_template="claim-{username}")
        spawner._pod_created = False

        api = spawner.api = PodRemovingApi(pods)
        api.pvcs["claim-ana"] = object()

        async def kube_start():
            # KubeSpawner's _start: the launch is applied, the pod created and placed, then kubelet
            # cannot mount a dataset
            await spawner.load_user_options()
            api.pods["jupyter-ana"] = placed_pod()
            pods.resources[f"{NAMESPACE}/jupyter-ana"] = placed_pod()
            spawner._pod_created = True
            events.resources.update(mount_event(HOST_FOLDER_MISSING))
            await asyncio.sleep(3600)

        monkeypatch.setattr(spawner, "_start", kube_start)
        with pytest.raises(MountFailed, match="Dataset 'reports' could not be mounted") as info:
            await asyncio.wait_for(spawner.start(), 10)
    assert info.value.jupyterhub_message == str(info.value)
    assert api.deleted == ["jupyter-ana"] and api.pods == {}
    assert list(api.pvcs) == ["claim-ana"]
