"""The Helm chart against the real API server of the stack.

Every object the chart renders must be accepted by the API server (server-side dry run, with its
admission and validation), a `helm install` must create them, the hub's ServiceAccount must be able
to do exactly what KubeSpawner and the PrimeHub spawner do and nothing beyond its namespace, and
`helm upgrade` must keep the generated secrets, or every upgrade would log all users out and make
their encrypted auth state unreadable.

The chart's pods are pinned to a node that does not exist: the node agent of the local stack runs
pod commands as host processes, and a proxy or hub of this release must not compete for the ports
of the stack's own hub. Whether the hub really spawns with this ServiceAccount is tested elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml

from localstack import common

REPO = Path(__file__).resolve().parents[2]
# Another copy of the chart (a packaged or vendored one) can be put under test with PRIMEHUB_CHART_DIR.
CHART = Path(os.environ.get("PRIMEHUB_CHART_DIR", REPO / "chart"))
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
NOWHERE = "primehub.io/chart-test-no-such-node"
RELEASE = "hub"


class Helm:
    def __init__(self, cluster, bin: str):
        self.bin = bin
        self.cluster = cluster

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.bin, f"--kubeconfig={self.cluster.kubeconfig}", *args], text=True, capture_output=True, timeout=300
        )
        if check and proc.returncode:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def helm(cluster, helm_bin) -> Helm:
    return Helm(cluster, helm_bin)


@pytest.fixture(scope="module")
def namespace(cluster):
    """A namespace of its own, so that the test neither sees nor disturbs the stack's `primehub`."""
    ns = f"chart-test-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    # Pods are admitted only once the namespace's default ServiceAccount exists.
    cluster.wait(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
        60,
        f"the default ServiceAccount of {ns}",
    )
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _pinned_nowhere() -> list[str]:
    key = NOWHERE.replace(".", "\\.")  # --set splits keys at unescaped dots
    return ["--set-string", f"hub.nodeSelector.{key}=true", "--set-string", f"proxy.chp.nodeSelector.{key}=true"]


def _release_values(*more: str, public_url="http://127.0.0.1:18000", client_secret="chart-test-secret") -> list[str]:
    """What every release of this module is installed with: the local Keycloak, the hub's address, a
    ClusterIP proxy, `more` --set values, and its pods pinned to no node (_pinned_nowhere)."""
    values = [
        "keycloak.url=http://127.0.0.1:8180",
        f"keycloak.clientSecret={client_secret}",
        f"primehub.publicUrl={public_url}",
        "proxy.service.type=ClusterIP",
        *more,
    ]
    return [arg for value in values for arg in ("--set", value)] + _pinned_nowhere()


def _secret(cluster, ns: str, name: str) -> dict[str, str]:
    out = cluster.kubectl("get", "secret", name, "-n", ns, "-o", "json").stdout
    return {k: base64.b64decode(v).decode() for k, v in json.loads(out)["data"].items()}


def _sa_client(cluster, token: str) -> kubernetes.client.ApiClient:
    """An API client that authenticates with the bearer token only (no admin client certificate)."""
    admin = cluster.api().configuration
    cfg = kubernetes.client.Configuration()
    cfg.host = admin.host
    cfg.ssl_ca_cert = admin.ssl_ca_cert
    cfg.verify_ssl = admin.verify_ssl
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.ApiClient(cfg)


# --- server-side validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_every_rendered_object_is_accepted_by_the_api_server(cluster, helm, namespace, example):
    extra = ["--set", "scheduling.podPriority.enabled=true"] if example == "minimal.yaml" else []
    out = helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        "-f",
        str(CHART / "examples" / example),
        *extra,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Role",
        "RoleBinding",
        "CustomResourceDefinition",
    }
    proc = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-", input=out, check=False
    )
    assert proc.returncode == 0, f"the API server refused objects of {example}:\n{proc.stderr}"
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout


# --- install, permissions, upgrade -----------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(cluster, helm, namespace):
    proc = helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        *_release_values(),
    )
    yield proc.stdout
    helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "120s", check=False)


def test_a_second_release_in_the_same_namespace_is_refused(cluster, helm, namespace, installed):
    proc = helm(
        "install",
        "second-hub",
        str(CHART),
        "--namespace",
        namespace,
        *_release_values(public_url="http://127.0.0.1:18001"),
        check=False,
    )
    assert proc.returncode != 0, "a second hub was installed next to the first"
    assert f"already has the hub of release {RELEASE}" in proc.stderr, proc.stderr
    assert helm("status", "second-hub", "--namespace", namespace, check=False).returncode != 0


def test_install_creates_the_objects(cluster, namespace, installed):
    assert "http://127.0.0.1:18000/hub/oauth_callback" in installed, "NOTES must name the redirect URI"
    got = json.loads(
        cluster.kubectl(
            "get",
            "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,"
            "persistentvolumeclaims,networkpolicies",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
            "-o",
            "json",
        ).stdout
    )["items"]
    names = {(o["kind"], o["metadata"]["name"]) for o in got}
    for wanted in [
        ("Deployment", "hub"),
        ("Deployment", "proxy"),
        ("Service", "hub"),
        ("Service", "proxy-api"),
        ("Service", "proxy-public"),
        ("ConfigMap", "hub-config"),
        ("Secret", "hub"),
        ("Secret", "hub-keycloak"),
        ("Secret", "hub-extra-config"),
        ("ServiceAccount", "hub"),
        ("Role", "hub"),
        ("RoleBinding", "hub"),
        ("PersistentVolumeClaim", "hub-db-dir"),
        ("NetworkPolicy", "hub"),
        ("NetworkPolicy", "proxy"),
        ("NetworkPolicy", "singleuser"),
    ]:
        assert wanted in names, f"{wanted} was not created"
    role = next(o for o in got if o["kind"] == "Role")
    assert all("*" not in r[f] for r in role["rules"] for f in ("apiGroups", "resources", "verbs"))
    binding = next(o for o in got if o["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": namespace}]
    hub = next(o for o in got if o["kind"] == "Deployment" and o["metadata"]["name"] == "hub")
    assert hub["spec"]["template"]["spec"]["serviceAccountName"] == "hub"
    # The CRDs the chart ships are served by the API server.
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout
    for crd in ("instancetypes", "images", "datasets"):
        assert f"{crd}.primehub.io" in crds


def _can_i(cluster, namespace: str, verb: str, resource: str, ns: str) -> bool:
    proc = cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", ns, f"--as=system:serviceaccount:{namespace}:hub", check=False
    )
    return proc.stdout.strip() == "yes"


def test_service_account_may_do_what_the_spawner_does_and_no_more(cluster, namespace, installed):
    for verb in ("get", "list", "watch", "create", "delete"):
        assert _can_i(cluster, namespace, verb, "pods", namespace), verb
    for verb in ("get", "list", "create", "delete"):
        assert _can_i(cluster, namespace, verb, "persistentvolumeclaims", namespace), verb
    for crd in ("instancetypes.primehub.io", "images.primehub.io", "datasets.primehub.io"):
        assert _can_i(cluster, namespace, "list", crd, namespace), crd
        assert not _can_i(cluster, namespace, "create", crd, namespace), crd
    assert _can_i(cluster, namespace, "watch", "events", namespace)
    for ns in (namespace, cluster.namespace, "kube-system"):
        assert not _can_i(cluster, namespace, "get", "secrets", ns), f"secrets of {ns}"
    assert not _can_i(cluster, namespace, "list", "pods", cluster.namespace), "pods of another namespace"
    assert not _can_i(cluster, namespace, "*", "*", namespace)
    assert not _can_i(cluster, namespace, "create", "roles.rbac.authorization.k8s.io", namespace)


def test_service_account_token_against_the_api_server(cluster, namespace, installed):
    token = cluster.kubectl("create", "token", "hub", "-n", namespace, "--duration=10m").stdout.strip()
    api = _sa_client(cluster, token)
    core = kubernetes.client.CoreV1Api(api)
    name = f"sa-probe-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {NOWHERE: "true"},
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": "local/none", "command": ["sleep", "1"]}],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    assert core.read_namespaced_pod(name, namespace).metadata.name == name
    assert name in [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)

    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    core.create_namespaced_persistent_volume_claim(namespace, pvc)
    assert core.read_namespaced_persistent_volume_claim(name, namespace).spec.resources.requests["storage"] == "1Gi"
    core.delete_namespaced_persistent_volume_claim(name, namespace)

    custom = kubernetes.client.CustomObjectsApi(api)
    for plural in ("instancetypes", "images", "datasets"):
        listed = custom.list_namespaced_custom_object("primehub.io", "v1alpha1", namespace, plural)
        assert listed["items"] == [], plural
    core.list_namespaced_event(namespace)

    for call, what in [
        (lambda: core.list_namespaced_secret(cluster.namespace), f"secrets of {cluster.namespace}"),
        (lambda: core.read_namespaced_secret("hub", namespace), "its own namespace's secrets"),
        (lambda: core.list_namespaced_pod(cluster.namespace), f"pods of {cluster.namespace}"),
        (
            lambda: custom.list_namespaced_custom_object("primehub.io", "v1alpha1", cluster.namespace, "instancetypes"),
            f"the catalog of {cluster.namespace}",
        ),
    ]:
        with pytest.raises(kubernetes.client.ApiException) as refused:
            call()
        assert refused.value.status == 403, what


def test_upgrade_keeps_the_generated_secrets(cluster, helm, namespace, installed):
    before = _secret(cluster, namespace, "hub")
    assert set(before) == {"cookie-secret", "crypt-key", "proxy-token"}
    helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        *_release_values("cull.timeout=7200", client_secret="chart-test-secret-2"),
    )
    assert _secret(cluster, namespace, "hub") == before
    # What was meant to change did.
    assert _secret(cluster, namespace, "hub-keycloak") == {"client-secret": "chart-test-secret-2"}
    settings = json.loads(_secret(cluster, namespace, "hub-extra-config")["settings.json"])
    assert settings["cull"]["timeout"] == 7200
    revision = json.loads(helm("status", RELEASE, "--namespace", namespace, "-o", "json").stdout)["version"]
    assert revision == 2


def test_hub_with_the_charts_service_account_completes_a_spawn(cluster, keycloak, namespace, installed, tmp_path):
    """The hub itself, holding only the chart's ServiceAccount token, spawns into the release namespace:
    every call KubeSpawner and PrimeHubSpawner make (catalog watches, PVCs, pods, events) goes
    through the chart's Role on the real API server."""
    import shutil

    from stack import Hub
    from userflows import wait_ready

    from localstack import cluster as lc
    from localstack import hub as lh

    # The catalog and the demo dataset claims, as an operator would apply them (the hub may only read them).
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(REPO / "crds" / "examples"))
    cluster.kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        str(REPO / "scripts" / "localstack" / "demo-dataset-volumes.yaml"),
    )
    token = cluster.kubectl("create", "token", "hub", "-n", namespace, "--duration=30m").stdout.strip()
    kubeconfig = tmp_path / "hub-sa.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "sa",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": lc.API_URL, "certificate-authority": str(lc.PKI / "ca.crt")},
                    }
                ],
                "users": [{"name": "hub", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "hub", "namespace": namespace}}],
            }
        )
    )
    extra = tmp_path / "extra-config"
    extra.mkdir()
    shutil.copy(REPO / "scripts" / "localstack" / "hub-extra-config" / "10-local-stack.py", extra)
    shutil.copy(REPO / "scripts" / "localstack" / "admin_role.py", tmp_path)  # which it loads from ../
    # A second hub beside the stack's own, on its own ports.
    (extra / "20-other-ports.py").write_text(
        'c.JupyterHub.bind_url = "http://127.0.0.1:8200"\n'
        'c.JupyterHub.hub_bind_url = "http://127.0.0.1:8281"\n'
        'c.JupyterHub.hub_connect_url = "http://127.0.0.1:8281"\n'
        'c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8201"\n'
    )
    home = tmp_path / "hub"
    home.mkdir()
    settings = lh.write_settings(
        lh.settings(namespace=namespace, extraConfigDir=str(extra), publicUrl="http://127.0.0.1:8200"),
        tmp_path / "settings.json",
    )
    env = {**lh.env(settings), "KUBECONFIG": str(kubeconfig)}
    name = "hub-chart-sa"
    common.start(name, lh.argv(), env=env, cwd=home)
    hub = Hub(
        url="http://127.0.0.1:8200",
        api_url="http://127.0.0.1:8281/hub/api",
        api_token=lh.admin_token(),
        log_dir=common.LOG_DIR,
    )
    try:
        common.wait_for(lambda: common.http_ok(hub.api_url + "/"), 60, "the hub with the chart's token", name)
        assert hub.api("POST", "/users/bob")[0] in (201, 409)
        status, body = hub.api(
            "POST", "/users/bob/server", {"group": "gpu-lab", "instance_type": "cpu-small", "image": "base-notebook"}
        )
        assert status in (201, 202), body
        wait_ready(hub, "bob")
        pod = json.loads(cluster.kubectl("get", "pod", "jupyter-bob", "-n", namespace, "-o", "json").stdout)
        assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"] == "cpu-node"
        assert hub.api("DELETE", "/users/bob/server")[0] in (202, 204)
        cluster.wait(
            lambda: cluster.kubectl("get", "pod", "jupyter-bob", "-n", namespace, check=False).returncode != 0,
            60,
            "bob's pod removed by the hub",
        )
    finally:
        common.stop(name)
