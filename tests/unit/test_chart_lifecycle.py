"""The chart over a release's life, rendered by the real helm without a cluster: the idle culler
reaches the hub from the first start, an upgrade that changes the database keeps the old one's
volume, `helm uninstall` stops user servers and keeps data, and the small-cluster example fits
a 2-core node.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from test_chart_render import (
    CHART,
    CHART_REPO,
    NAMESPACE,
    apply_chart_config,
    by_kind,
    container,
    env_of,
    helm,
    one,
    render,
)

MINIMAL = str(CHART / "examples/minimal.yaml")


def culler_command(docs: list[dict]) -> list[str]:
    services = apply_chart_config(docs).JupyterHub.services.get_value([])
    (culler,) = [s for s in services if s["name"] == "jupyterhub-idle-culler"]
    return culler["command"]


# --- the idle culler -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "api_url"),
    [("/", "http://127.0.0.1:8081/hub/api"), ("/jh", "http://127.0.0.1:8081/jh/hub/api")],
)
def test_the_culler_reaches_the_hub_over_loopback_not_through_the_service(base_url, api_url):
    # The hub Service routes only to a Ready pod, and the culler's first pass runs before the hub
    # pod is Ready: through the Service every hub start lost that pass to a ConnectionRefusedError.
    command = culler_command(render("-f", MINIMAL, "--set", f"hub.baseUrl={base_url}"))
    urls = [a for a in command if a.startswith("--url=")]
    assert urls == [f"--url={api_url}"], command


@pytest.mark.parametrize(
    ("hub", "api_url"),
    [
        # JupyterHub's own defaults (hub_ip 127.0.0.1, hub_port 8081)
        ({"hubBindUrl": None, "baseUrl": None}, "http://127.0.0.1:8081/hub/api"),
        ({"hubBindUrl": "http://[::]:8081", "baseUrl": "/"}, "http://[::1]:8081/hub/api"),
        ({"hubBindUrl": "http://10.1.2.3:9000", "baseUrl": "/x/y/"}, "http://10.1.2.3:9000/x/y/hub/api"),
    ],
)
def test_the_culler_url_follows_where_the_hub_listens(hub, api_url):
    from primehub_hub.settings import local_hub_api_url

    assert local_hub_api_url(hub) == api_url


def test_the_local_stack_culler_reaches_its_hub_on_loopback_too():
    from localstack import hub as local_hub
    from primehub_hub.settings import Settings, local_hub_api_url

    hub = Settings.from_document(local_hub.settings(), env={}).document["hub"]
    assert local_hub_api_url(hub) == "http://127.0.0.1:8081/hub/api"


def test_the_pinned_culler_takes_the_url_option():
    # requirements-hub.txt pins jupyterhub-idle-culler (the default cull.enabled needs it); its
    # command line must know --url, or the hub's managed service would exit at start.
    assert re.search(r"^jupyterhub-idle-culler==", (CHART_REPO / "requirements-hub.txt").read_text(), re.M)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyterhub_idle_culler", "--help"], text=True, capture_output=True, timeout=60
    )
    # (tornado's options print "  --url  ...", the traitlets-based releases "--url=<Unicode>")
    assert re.search(r"^\s*--url[=\s]", proc.stdout + proc.stderr, re.M), proc.stdout + proc.stderr


# --- the hub database's volume ------------------------------------------------------------------------


def test_helm_never_deletes_the_hub_database_volume():
    # An upgrade to another hub.db.type stops rendering the PVC; without "keep" Helm deletes it
    # (and with a Delete reclaim policy the database). Helm reads the annotation on uninstall too.
    pvc = one(render("-f", MINIMAL), "PersistentVolumeClaim", "hub-db-dir")
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    # Helm's ownership label stays on the kept PVC, which is what lets a later release adopt it.
    assert pvc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    given = render("-f", MINIMAL, "--set-json", 'hub.db.pvc.annotations={"backup.example.com/schedule":"daily"}')
    assert one(given, "PersistentVolumeClaim", "hub-db-dir")["metadata"]["annotations"] == {
        "backup.example.com/schedule": "daily",
        "helm.sh/resource-policy": "keep",
    }
    # An operator who wants Helm's default back says so explicitly.
    opted_out = render("-f", MINIMAL, "--set-json", 'hub.db.pvc.annotations={"helm.sh/resource-policy":"delete"}')
    pvc = one(opted_out, "PersistentVolumeClaim", "hub-db-dir")
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "delete"}
    assert not by_kind(render("-f", MINIMAL, "--set", "hub.db.type=sqlite-memory"), "PersistentVolumeClaim")


# --- helm uninstall -----------------------------------------------------------------------------------

HOOK = "hub-uninstall"


def hook_objects(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook")}


def test_uninstall_runs_a_pre_delete_hook_that_cleans_up_after_itself():
    docs = render("-f", MINIMAL)
    hooks = hook_objects(docs)
    assert set(hooks) == {"ServiceAccount", "Role", "RoleBinding", "Job"}
    for kind, d in hooks.items():
        annotations = d["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-delete", kind
        # gone once it worked; a failed Job stays for `kubectl logs` until the next try replaces it
        assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
        assert d["metadata"]["name"] == HOOK and "namespace" not in d["metadata"], kind
    weight = {k: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for k, d in hooks.items()}
    assert max(weight[k] for k in ("ServiceAccount", "Role", "RoleBinding")) < weight["Job"], weight
    # only hooks: a plain install or upgrade creates none of them
    assert not [d for d in docs if d["metadata"]["name"] == HOOK and d not in hooks.values()]


def test_the_uninstall_hook_may_only_list_and_delete_pods_of_its_namespace():
    hooks = hook_objects(render("-f", MINIMAL))
    assert hooks["Role"]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]}]
    assert hooks["RoleBinding"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": HOOK}
    assert hooks["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": HOOK, "namespace": NAMESPACE}]
    assert hooks["Job"]["spec"]["template"]["spec"]["serviceAccountName"] == HOOK
    # rbac.create=false: the operator grants it (README, "Uninstall"); the chart creates no Role
    assert set(hook_objects(render("-f", MINIMAL, "--set", "rbac.create=false"))) == {"ServiceAccount", "Job"}
    assert not hook_objects(render("-f", MINIMAL, "--set", "uninstall.stopServers=false"))


def test_the_uninstall_job_runs_the_chart_script_in_the_hub_image_locked_down():
    docs = render("-f", MINIMAL)
    spec = hook_objects(docs)["Job"]["spec"]["template"]["spec"]
    (job,) = spec["containers"]
    assert job["image"] == container(docs, "hub", "hub")["image"]
    assert job["command"][:2] == ["python3", "-c"]
    assert job["command"][2] == (CHART / "files/uninstall/stop_user_servers.py").read_text()
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = job["securityContext"]
    assert sc["runAsUser"] > 0 and sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # schedulable on a node full of the notebooks it is about to stop
    assert "cpu" not in job["resources"]["requests"]


@pytest.mark.parametrize("release", ["hub", "second"])
def test_the_uninstall_job_stops_exactly_the_pods_the_single_user_policy_selects(release):
    args = ["-f", MINIMAL] + (["--set", f"fullnameOverride={release}"] if release != "hub" else [])
    out = helm("template", release, str(CHART), "--namespace", NAMESPACE, *args).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    prefix = "" if release == "hub" else f"{release}-"
    job = one(docs, "Job", f"{prefix}{HOOK}")
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    selector = dict(kv.split("=") for kv in env["PRIMEHUB_USER_POD_SELECTOR"]["value"].split(","))
    policy = one(docs, "NetworkPolicy", f"{prefix}singleuser")["spec"]["podSelector"]["matchLabels"]
    assert selector == policy and selector["app.kubernetes.io/instance"] == release
    assert env["PRIMEHUB_NAMESPACE"]["value"] == NAMESPACE
    assert env["PRIMEHUB_STOP_TIMEOUT"]["value"] == "180"


def _load_hook_script():
    spec = importlib.util.spec_from_file_location("stop_user_servers", CHART / "files/uninstall/stop_user_servers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Namespace:
    """The pods of one namespace as the API server keeps them, in plain data: a delete marks a pod
    terminating, and the next list no longer has it unless it is `stuck` (a finalizer, a node gone)."""

    def __init__(self, pods, stuck=(), late=()):
        self.pods = {name: None for name in pods}  # name -> deletionTimestamp
        self.stuck, self.late, self.lists, self.deleted = set(stuck), list(late), 0, []

    async def list_namespaced_pod(self, namespace, label_selector):
        assert (namespace, label_selector) == ("ns", "sel")
        self.lists += 1
        for name, ts in list(self.pods.items()):
            if ts is not None and name not in self.stuck:
                del self.pods[name]
        if self.lists == 2 and self.late:  # a spawn that lands while the hook runs
            self.pods.update({name: None for name in self.late})
        items = [
            SimpleNamespace(metadata=SimpleNamespace(name=n, deletion_timestamp=ts)) for n, ts in self.pods.items()
        ]
        return SimpleNamespace(items=items)

    async def delete_namespaced_pod(self, name, namespace):
        from kubernetes_asyncio.client.exceptions import ApiException

        self.deleted.append(name)
        if name == "jupyter-gone":  # went on its own between the list and the delete
            del self.pods[name]
            raise ApiException(status=404, reason="Not Found")
        self.pods[name] = "now"


@pytest.mark.asyncio
async def test_the_hook_script_stops_every_user_pod_and_those_that_appear_meanwhile():
    script = _load_hook_script()
    api = _Namespace(["jupyter-alice", "jupyter-bob", "jupyter-gone"], late=["jupyter-carol"])
    lines = []
    left = await script.stop_user_servers(api, "ns", "sel", timeout=60, interval=0, log=lines.append)
    assert left == [] and not api.pods
    assert sorted(api.deleted) == ["jupyter-alice", "jupyter-bob", "jupyter-carol", "jupyter-gone"]
    assert "stopping user server pod jupyter-carol" in lines and lines[-1].startswith("no user server left in ns")


@pytest.mark.asyncio
async def test_the_hook_script_names_the_pods_that_would_not_go():
    script = _load_hook_script()
    api = _Namespace(["jupyter-alice", "jupyter-stuck"], stuck=["jupyter-stuck", "jupyter-old"])
    api.pods["jupyter-old"] = "yesterday"  # left terminating before the hook ran
    left = await script.stop_user_servers(api, "ns", "sel", timeout=0, interval=0, log=lambda _: None)
    assert left == ["jupyter-old", "jupyter-stuck"]
    assert sorted(api.deleted) == ["jupyter-alice", "jupyter-stuck"], "a terminating pod is not deleted again"


# --- a small cluster ----------------------------------------------------------------------------------

SMALL = CHART / "examples/small-cluster.yaml"


def _cpu(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_the_small_cluster_example_passes_the_schema_and_leaves_a_core_for_a_notebook():
    helm("lint", "--strict", str(CHART), "-f", str(SMALL), "--namespace", NAMESPACE)
    docs = render("-f", str(SMALL))
    requests = {}
    for d in docs:
        if d["kind"] == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                requests[(d["metadata"]["name"], c["name"])] = c["resources"]["requests"]
    assert set(requests) == {("hub", "hub"), ("proxy", "chp")}
    # A 2-core node with a kubeadm control plane, CoreDNS and a network plugin (about 950m of
    # requests) keeps a whole core for a notebook whose instance type has no requests.
    assert sum(_cpu(r["cpu"]) for r in requests.values()) + 0.95 + 1 <= 2, requests
    defaults = render("-f", MINIMAL)
    default_cpu = sum(_cpu(container(defaults, d, c)["resources"]["requests"]["cpu"]) for d, c in requests)
    assert default_cpu + 0.95 + 1 > 2, "the defaults alone would fit: the example has no reason to exist"


def test_the_instance_type_the_small_cluster_example_shows_is_valid_and_overcommits():
    from primehub_hub.resources import instance_type_override, parse_instance_type

    lines = SMALL.read_text().splitlines()
    start = lines.index("#   apiVersion: primehub.io/v1alpha1")
    text = "\n".join(line[4:] for line in lines[start:] if line.startswith("#   "))
    shown = yaml.safe_load(text)
    assert shown["kind"] == "InstanceType" and shown["apiVersion"] == "primehub.io/v1alpha1"
    crd = yaml.safe_load((CHART / "crds/instancetypes.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    types = {"number": (int, float), "string": str}
    for part in ("limits", "requests"):
        for key, value in shown["spec"][part].items():
            declared = schema[part]["properties"][key]
            assert isinstance(value, types[declared["type"]]), f"spec.{part}.{key}: the CRD wants {declared['type']}"
            if "pattern" in declared:
                assert re.fullmatch(declared["pattern"].strip("^$"), value), f"spec.{part}.{key}"
    override = instance_type_override(parse_instance_type(shown))
    assert (override["cpu_guarantee"], override["cpu_limit"]) == (0.25, 1.0)
    assert override["mem_guarantee"] < override["mem_limit"]
