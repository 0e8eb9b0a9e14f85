"""git datasets: node folders a git-sync fills. The hub cannot see nodes' folders, so it mounts git
datasets only when the operator says a git-sync runs (the chart's gitSync.enabled, which deploys one,
or gitSync.external); otherwise the user is told, on the form and on the start page, instead of
getting a missing folder (a pod that never starts) or an empty, root-owned one.
"""

from __future__ import annotations

import logging

import pytest
from test_chart_render import CHART, by_kind, chart_settings, one, render

from hub_scenario import catalog, make_spawner, user
from primehub_hub.datasets import NO_GIT_SYNC
from primehub_hub.form import build_form, render_form
from primehub_hub.plan import plan_launch

VISION = {"group": "vision", "instance_type": "gpu-one", "image": "torch"}
NOTICE = f"Dataset 'notebooks' is not mounted: {NO_GIT_SYNC}."


def _volume_names(plan):
    return {v["name"] for v in plan.volumes}


def test_without_a_git_sync_a_launch_leaves_git_datasets_out_with_a_notice():
    plan = plan_launch(user("ana"), catalog(), VISION, git_sync_on_nodes=False)
    assert "notebooks" not in {m.dataset.name for m in plan.datasets}
    assert "dataset-notebooks" not in _volume_names(plan) and not plan.links
    assert [n for n in plan.notices if n.startswith(NOTICE)], plan.notices
    assert "please tell your administrator" in plan.notices[0]
    # the other datasets of the launch are mounted as before
    assert "dataset-sales" in _volume_names(plan)


def test_with_a_git_sync_the_checkout_is_mounted():
    plan = plan_launch(user("ana"), catalog(), VISION, git_sync_on_nodes=True)
    assert "dataset-notebooks" in _volume_names(plan) and plan.links and not plan.notices


def test_the_form_says_which_git_datasets_are_not_mounted():
    model = {g.name: g for g in build_form(user("ana"), catalog(), git_sync_on_nodes=False)}
    assert model["vision"].unavailable_datasets == [{"label": "notebooks", "type": "git", "reason": NO_GIT_SYNC}]
    assert "notebooks" not in {d["name"] for d in model["vision"].datasets}
    with_git_sync = build_form(user("ana"), catalog(), git_sync_on_nodes=True)
    assert all(not g.unavailable_datasets for g in with_git_sync)
    html = render_form(list(model.values()))
    assert f"Dataset notebooks (git) is not mounted: {NO_GIT_SYNC}. Please tell your administrator." in html


@pytest.mark.asyncio
@pytest.mark.usefixtures("offline_kube")
async def test_the_spawner_needs_the_operators_word_and_the_pod_has_no_empty_folder():
    spawner = make_spawner("ana", options_explicit=True, git_sync_on_nodes=False)
    spawner.user_options = dict(VISION)
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    assert "dataset-notebooks" not in {v.name for v in pod.spec.volumes}
    assert pod.metadata.annotations["hub.primehub.io/notices"].startswith(NOTICE)
    events = [e async for e in _first_progress(spawner)]
    assert events[0]["message"].startswith(NOTICE)


async def _first_progress(spawner):
    async for event in spawner.progress():
        yield event
        return


def test_the_hub_mounts_no_git_dataset_unless_told_and_the_local_stack_says_so():
    from traitlets.config import Config

    from localstack import hub as local_hub
    from primehub_hub.settings import Settings, apply_settings
    from primehub_hub.spawner import PrimeHubSpawner

    assert PrimeHubSpawner.git_sync_on_nodes.default_value is False
    c = Config()
    apply_settings(c, Settings.from_document({}, env={}))
    assert c.PrimeHubSpawner.git_sync_on_nodes is False
    assert local_hub.settings()["primehub"]["gitSyncOnNodes"] is True  # the node agent's stand-in folders


def test_explain_gives_the_reason():
    from primehub_hub.explain import explain_user

    report = explain_user(user("ana"), catalog(), git_sync_on_nodes=False)
    (vision,) = [g for g in report["groups"] if g["name"] == "vision"]
    (row,) = [d for d in vision["decisions"] if d["kind"] == "Dataset" and d["name"] == "notebooks"]
    assert row == {"kind": "Dataset", "name": "notebooks", "offered": False, "why": NO_GIT_SYNC}


# --- the chart --------------------------------------------------------------------------------------


def _render(*values):
    return render("-f", str(CHART / "examples/minimal.yaml"), *values)


def test_by_default_the_chart_deploys_no_git_sync_and_the_hub_mounts_no_git_dataset():
    docs = _render()
    assert chart_settings(docs)["primehub"]["gitSyncOnNodes"] is False
    assert not by_kind(docs, "DaemonSet")


def test_an_external_git_sync_is_the_operators_word():
    docs = _render("--set", "gitSync.external=true")
    assert chart_settings(docs)["primehub"]["gitSyncOnNodes"] is True
    assert not by_kind(docs, "DaemonSet")


def test_the_git_sync_daemonset_fills_the_folders_the_hub_mounts():
    docs = _render("--set", "gitSync.enabled=true", "--set", "primehub.gitSyncHostRoot=/srv/git/")
    assert chart_settings(docs)["primehub"]["gitSyncOnNodes"] is True
    spec = one(docs, "DaemonSet", "git-sync")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["datasets"]["hostPath"] == {"path": "/srv/git/", "type": "DirectoryOrCreate"}
    assert spec["tolerations"] == [{"operator": "Exists"}], "every node, GPU nodes included"
    lister, syncer = spec["containers"]
    # the lister runs the hub's own package from the hub-config ConfigMap, without root
    assert lister["command"][:3] == ["python3", "-m", "primehub_hub.gitsync"]
    assert "--namespace=chart-unit" in lister["command"]
    items = {i["path"] for i in volumes["config"]["configMap"]["items"]}
    assert "primehub_hub/gitsync.py" in items and "primehub_hub/resources.py" in items
    assert lister["securityContext"]["runAsNonRoot"] is True
    # git-sync's layout is the spawner's: <root><name>/ with the checkout behind the link <name>
    script = syncer["command"][2]
    assert '--root="/gitsync/$name" --link="$name"' in script and "--one-time" in script
    assert {"name": "datasets", "mountPath": "/gitsync"} in syncer["volumeMounts"]
    assert syncer["image"] == "registry.k8s.io/git-sync/git-sync:v4.4.0"
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
    role = one(docs, "Role", "git-sync")
    assert role["rules"] == [{"apiGroups": ["primehub.io"], "resources": ["datasets"], "verbs": ["get", "list"]}]
    assert spec["serviceAccountName"] == "git-sync"
    assert one(docs, "RoleBinding", "git-sync")["subjects"][0]["name"] == "git-sync"


def test_the_default_git_sync_root_is_the_hubs():
    from primehub_hub.datasets import DEFAULT_GIT_SYNC_HOST_ROOT

    spec = one(_render("--set", "gitSync.enabled=true"), "DaemonSet", "git-sync")["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "datasets"]
    assert volume["hostPath"]["path"] == DEFAULT_GIT_SYNC_HOST_ROOT


# --- what the DaemonSet syncs (primehub_hub.gitsync) -----------------------------------------------


def _git(name, url, annotations=None):
    metadata = {"name": name, "annotations": annotations or {}}
    return {"kind": "Dataset", "metadata": metadata, "spec": {"type": "git", "url": url}}


def test_only_network_repositories_of_git_datasets_are_synced(caplog):
    from primehub_hub.gitsync import repositories

    objects = [
        _git("notebooks", "https://github.com/jupyter/notebook.git"),
        _git("private", "git@gitlab.example.com:team/data.git"),
        _git("over-ssh", "ssh://git@git.example.com/team/data.git"),
        _git("node-files", "file:///etc"),
        _git("local", "/var/lib/kubelet"),
        _git("option", "--upload-pack=touch /tmp/x"),
        _git("scp-option", "-oProxyCommand=x@host:path"),
        _git("no-url", ""),
        _git("elsewhere", "https://x.example/r.git", {"dataset.primehub.io/gitSyncHostRoot": "/srv/other/"}),
        {"kind": "Dataset", "metadata": {"name": "env-one"}, "spec": {"type": "env", "variables": {"a": "b"}}},
        {"kind": "Dataset", "metadata": {"name": "broken"}, "spec": {"type": "tape"}},
    ]
    with caplog.at_level(logging.INFO, logger="primehub_hub.gitsync"):
        repos = repositories(objects)
    assert repos == [
        ("notebooks", "https://github.com/jupyter/notebook.git"),
        ("over-ssh", "ssh://git@git.example.com/team/data.git"),
        ("private", "git@gitlab.example.com:team/data.git"),
    ]
    logged = caplog.text
    for name in ("node-files", "local", "option", "scp-option", "no-url", "elsewhere", "broken"):
        assert name in logged, name


def test_the_list_file_is_replaced_whole_and_only_when_it_changes(tmp_path):
    from primehub_hub.gitsync import sync_once

    out = tmp_path / "repositories"
    objects = [_git("notebooks", "https://github.com/jupyter/notebook.git")]
    sync_once("primehub", str(out), lister=lambda ns: objects)
    assert out.read_text() == "notebooks https://github.com/jupyter/notebook.git\n"
    before = out.stat().st_mtime_ns
    sync_once("primehub", str(out), lister=lambda ns: objects)
    assert out.stat().st_mtime_ns == before
    sync_once("primehub", str(out), lister=lambda ns: [])
    assert out.read_text() == "" and not (tmp_path / "repositories.tmp").exists()
