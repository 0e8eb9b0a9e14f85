"""User pods against Pod Security Admission of the real API server.

The pod is the one the chart's hub would create: the chart renders its settings document (`helm
template`), the hub's settings code configures the spawner from it, and the spawner's own path
builds the pod (`primehub_hub.cli.build_pod`, what `primehub-profiles pod` prints). It is then
submitted with a server-side dry run (`dryRun=All`: admission runs, nothing is stored) into
namespaces labelled `pod-security.kubernetes.io/enforce`.

A launch without node folders passes `restricted`. A hostPath or git dataset is a node folder, which
`baseline` already forbids: such a launch needs a `privileged` namespace (docs/behaviour.md).
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml
from userflows import CPU_SMALL, run_coroutine

from localstack import common

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
# Grants of the demo realm's data-science group, minus the node-folder datasets the tests add.
GRANTS = ["it:cpu-small", "img:base-notebook", "ds:public-data", "ds:rw:team-data"]


def helm_template(*args: str) -> str:
    """The chart rendered for its minimal example plus `args` (helm template)."""
    proc = subprocess.run(
        [str(common.helm_path()), "template", "hub", str(CHART), "-f", str(CHART / "examples" / "minimal.yaml"), *args],
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def chart_settings(*values: str) -> dict:
    """The settings document the chart hands its hub, for these values."""
    (secret,) = [
        d
        for d in yaml.safe_load_all(helm_template("--show-only", "templates/hub/extra-config-secret.yaml", *values))
        if d
    ]
    return json.loads(base64.b64decode(secret["data"]["settings.json"]))


def user_pod(namespace: str, grants: list[str], *values: str) -> dict:
    """The pod the chart's hub would create for a data-science member holding `grants`."""
    from traitlets.config import Config

    from primehub_hub.cli import build_pod, load_resource_objects
    from primehub_hub.entitlements import EVERYONE, Group, UserInfo
    from primehub_hub.offline import offline_kube_config
    from primehub_hub.resources import Catalog
    from primehub_hub.settings import Settings, apply_settings

    config = Config()
    apply_settings(config, Settings.from_document(chart_settings(*values), env={}))
    catalog = Catalog.from_objects(load_resource_objects([REPO / "crds" / "examples"]))
    user = UserInfo("psa-user", groups=[Group("data-science", realm_roles=grants), Group(EVERYONE)])
    with offline_kube_config():
        return run_coroutine(build_pod(user, catalog, CPU_SMALL, namespace=namespace, config=config))


@pytest.fixture(scope="module")
def levels(cluster):
    """{level: namespace} for restricted, baseline and privileged, each enforcing its level."""
    suffix = uuid.uuid4().hex[:6]
    made = {}
    try:
        for level in ("restricted", "baseline", "privileged"):
            ns = f"psa-{level}-{suffix}"
            cluster.kubectl("create", "namespace", ns)
            made[level] = ns
            cluster.kubectl("label", "namespace", ns, f"pod-security.kubernetes.io/enforce={level}")
            # the ServiceAccount admission plugin refuses pods until the default ServiceAccount exists
            cluster.wait(
                lambda ns=ns: (
                    cluster.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0
                ),
                60,
                f"the default ServiceAccount of {ns}",
            )
        yield made
    finally:
        for ns in made.values():
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def dry_run(cluster, namespace: str, pod: dict) -> str:
    """'' when the API server would admit the pod, else its refusal."""
    try:
        cluster.core().create_namespaced_pod(namespace, pod, dry_run="All")
    except kubernetes.client.ApiException as e:
        try:
            return f"{e.status}: {json.loads(e.body)['message']}"
        except (TypeError, ValueError, KeyError):
            return f"{e.status}: {e.body}"
    return ""


def test_a_launch_without_node_folders_passes_restricted(cluster, levels):
    """The chart's defaults: no hostPath allowed, no git-sync, so the demo's git dataset (granted to
    everyone) is left out with a notice instead of being mounted from the node."""
    pod = user_pod(levels["restricted"], GRANTS + ["ds:notebooks-repo"])
    assert "not mounted" in pod["metadata"]["annotations"]["hub.primehub.io/notices"]
    volumes = {next(k for k in v if k != "name") for v in pod["spec"]["volumes"]}
    assert volumes <= {"persistentVolumeClaim", "emptyDir"}, volumes  # the home, team-data, /dev/shm
    assert dry_run(cluster, levels["restricted"], pod) == ""


@pytest.mark.parametrize(
    "grant, values",
    [
        ("ds:training-set", ["--set", "primehub.datasetHostPaths={/srv/datasets/}"]),
        ("ds:notebooks-repo", ["--set", "gitSync.external=true"]),
    ],
    ids=["hostPath", "git"],
)
def test_a_node_folder_dataset_needs_a_privileged_namespace(cluster, levels, grant, values):
    pods = {level: user_pod(ns, GRANTS + [grant], *values) for level, ns in levels.items()}
    assert any("hostPath" in v for v in pods["restricted"]["spec"]["volumes"]), "the dataset is mounted"
    for level in ("restricted", "baseline"):
        refusal = dry_run(cluster, levels[level], pods[level])
        assert refusal.startswith("403") and f'violates PodSecurity "{level}:' in refusal, refusal
        assert "hostPath" in refusal, refusal
    assert dry_run(cluster, levels["privileged"], pods["privileged"]) == ""


def test_the_git_sync_daemonset_is_accepted_where_its_node_folder_is(cluster, levels):
    """The chart's git-sync (gitSync.enabled) writes into a node folder: its objects are valid, and its
    pod is admitted in a privileged namespace and refused where hostPath volumes are not allowed."""
    rendered = helm_template(
        "--namespace",
        levels["privileged"],
        "--set",
        "gitSync.enabled=true",
        "--show-only",
        "templates/gitsync/daemonset.yaml",
        "--show-only",
        "templates/gitsync/rbac.yaml",
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert {d["kind"] for d in docs} == {"DaemonSet", "ServiceAccount", "Role", "RoleBinding"}
    applied = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", levels["privileged"], "-f", "-", input=rendered
    )
    assert applied.stdout.count("(server dry run)") == len(docs), applied.stdout
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    spec = dict(daemonset["spec"]["template"]["spec"], serviceAccountName="default")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "git-sync-probe"}, "spec": spec}
    assert dry_run(cluster, levels["privileged"], pod) == ""
    refusal = dry_run(cluster, levels["baseline"], pod)
    assert refusal.startswith("403") and "hostPath" in refusal, refusal
