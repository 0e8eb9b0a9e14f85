"""E2E_BACKEND=kind: the same fixtures with real containers.

pytest-kind's KindCluster runs the locally built kind with the locally built node image (`make images`),
testcontainers' KeycloakContainer runs the Keycloak image with the realm imported, on kind's Docker
network, and the hub is `helm install` of chart/ with the chart's own images loaded into the node. The
browser reaches the hub (proxy-public NodePort) and Keycloak on the same loopback addresses as on the
local backend (127.0.0.1:8000 and localhost:8180), so the realm's redirect URIs serve both.

One node plays both parts of the local stack's cpu-node and gpu-node: it is labelled
accelerator=nvidia-tesla and advertises 2 NVIDIA GPUs as an extended resource (nothing in the demo
images touches a GPU). It sees this machine's 2 cores, so the cluster's own pods request no CPU (the
node image's kubeadm patches, CoreDNS patched below, the hub and proxy through chart values) and the
notebooks keep the chart's defaults: the largest demo instance type requests both cores.

The demo catalog's node folders are made on the node as an operator (or PrimeHub's git-sync) would:
the hostPath datasets' folders and the git datasets' checkouts (the chart is told `gitSync.external`);
everything else is the demo catalog as shipped.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

from stack import Cluster, Hub, Keycloak

from images import build as images
from images import cache as image_cache
from localstack import admin_role, common, dockerd
from localstack import cluster as local_cluster
from localstack import keycloak as local_keycloak

REPO = Path(__file__).resolve().parents[3]


NAME = "primehub-e2e"
NAMESPACE = "primehub"
HUB_PORT = 8000
HUB_NODE_PORT = 30080
KEYCLOAK_PORT = 8180
KEYCLOAK_CONTAINER = "primehub-keycloak"
CLIENT_SECRET = "local-dev-only-secret"
NODE = f"{NAME}-control-plane"
NO_CPU_REQUEST = {"requests": {"cpu": "0", "memory": "128Mi"}}
STATE = common.STATE_DIR / "kind"

LOG_DIR = REPO / "test-artifacts" / "logs"
_state: dict = {}


class BackendError(RuntimeError):
    """The kind backend could not start a part; the message says which and what to run."""


def _prepare_environment() -> None:
    os.environ["DOCKER_HOST"] = dockerd.ensure()
    # kind's `docker run --privileged` goes through the shim (see scripts/images/bin/docker).
    os.environ["PATH"] = f"{REPO / 'scripts' / 'images' / 'bin'}:{os.environ['PATH']}"
    # testcontainers' reaper image cannot be pulled here; the session removes what it started.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    # Containers publish their ports on this machine's loopback; testcontainers, seeing /.dockerenv
    # (this sandbox is itself a container), would otherwise try the Docker network's gateway.
    os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    missing = [
        t
        for t in [images.NODE, *images.chart_images().values(), *images.singleuser_tags()]
        if image_cache.label_of(t) is None
    ]
    if missing:
        raise BackendError(f"images missing from the Docker engine: {', '.join(missing)}; run `make images`")


def _kind_config() -> Path:
    STATE.mkdir(parents=True, exist_ok=True)
    cfg = STATE / "kind-config.yaml"
    cfg.write_text(f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  apiServerAddress: 127.0.0.1
kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    patches:
      directory: /kind/kubeadm-patches
nodes:
  - role: control-plane
    labels:
      accelerator: nvidia-tesla
    extraPortMappings:
      - containerPort: {HUB_NODE_PORT}
        hostPort: {HUB_PORT}
        listenAddress: 127.0.0.1
""")
    return cfg


def _kubectl_runner(kc):
    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [str(kc.kubectl_path), f"--kubeconfig={kc.kubeconfig_path}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=300,
        )
        if check and r.returncode:
            raise BackendError(f"kubectl {' '.join(args[:3])} failed: {r.stderr[-2000:]}")
        return r

    return run


def cluster() -> Cluster:
    from pytest_kind import KindCluster

    _prepare_environment()
    V = common.V
    kc = KindCluster(
        NAME,
        image=images.NODE,
        kubeconfig=STATE / "kubeconfig",
        kind_path=common.tool("kind", V["KIND_VERSION"], "kind"),
        kubectl_path=common.tool("k8s", V["K8S_VERSION"], "kubectl"),
    )
    STATE.mkdir(parents=True, exist_ok=True)
    common.step(f"kind cluster {NAME} (node image {images.NODE})")
    stale = image_cache.docker("inspect", "-f", "{{.State.Running}}", NODE, check=False)
    if stale.returncode == 0 and stale.stdout.strip() != "true":
        kc.delete()  # left by an engine that was stopped under it
    if stale.returncode != 0 or stale.stdout.strip() != "true":
        common.ensure_ports_free({HUB_PORT: "the hub through the cluster's proxy Service"})
        _kind_network()
    kc.create(config_file=_kind_config())
    _state["kind"] = kc
    run = _kubectl_runner(kc)
    run("wait", "--for=condition=Ready", "node", "--all", "--timeout=180s")
    _shape_nodes(run)
    _load_images(kc)
    for deployment in ("coredns", "local-path-provisioner"):
        ns = "kube-system" if deployment == "coredns" else "local-path-storage"
        run("-n", ns, "rollout", "status", f"deployment/{deployment}", "--timeout=180s")
    run("create", "namespace", NAMESPACE, check=False)
    local_cluster.apply_catalog(run=run)
    _prepare_dataset_folders(run)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return Cluster(
        kubeconfig=str(kc.kubeconfig_path),
        namespace=NAMESPACE,
        api_url="",
        kubectl_bin=str(kc.kubectl_path),
        log_dir=LOG_DIR,
        restart_apiserver=lambda: _restart_apiserver(run, NODE),
        nodes={"cpu": NODE, "gpu": NODE},
    )


def _shape_nodes(run) -> None:
    """The node as the local stack's gpu-node too; CoreDNS asks for no CPU, so both cores stay for notebooks."""
    # An extended resource the scheduler counts, as a device plugin would advertise it.
    run(
        "patch",
        "node",
        NODE,
        "--subresource=status",
        "--type=json",
        "-p",
        '[{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "2"}]',
    )
    run(
        "-n",
        "kube-system",
        "patch",
        "deployment",
        "coredns",
        "--type=json",
        "-p",
        json.dumps(
            [
                {"op": "replace", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/template/spec/containers/0/resources/requests/cpu", "value": "0"},
            ]
        ),
    )


def _prepare_dataset_folders(run) -> None:
    import yaml

    from primehub_hub.datasets import DEFAULT_GIT_SYNC_HOST_ROOT

    docs = yaml.safe_load_all((REPO / "crds" / "examples" / "datasets.yaml").read_text())
    folders = []
    for d in (d for d in docs if d and d.get("kind") == "Dataset"):
        spec = d["spec"]
        if spec.get("type") == "hostPath":
            folders.append(spec["hostPath"]["path"])
        elif spec.get("type") == "git":
            # git-sync's layout: the checkout at <host root>/<name>/<name>.
            name = d["metadata"]["name"]
            folders.append(f"{DEFAULT_GIT_SYNC_HOST_ROOT}{name}/{name}")
    script = "; ".join(f"mkdir -p {f} && echo demo > {f}/README" for f in folders)
    image_cache.docker("exec", NODE, "sh", "-c", script)


def _load_images(kc) -> None:
    """The chart's images and the notebook image (kind skips what the node already has)."""
    chart = images.chart_images()
    for tags in ([chart["hub"], chart["proxy"]], images.singleuser_tags()):
        common.step(f"kind load docker-image {' '.join(tags)}")
        r = subprocess.run(
            [str(kc.kind_path), "load", "docker-image", "--name", NAME, *tags], capture_output=True, text=True
        )
        if r.returncode:
            raise BackendError(f"kind load docker-image {' '.join(tags)} failed: {r.stderr[-2000:]}")


def _restart_apiserver(run, node: str) -> None:
    """Stop the API server's container; kubelet starts it again as it would after a crash."""
    image_cache.docker("exec", node, "sh", "-c", "crictl stop $(crictl ps -q --name kube-apiserver)")
    common.wait_for(
        lambda: run("get", "--raw", "/readyz", check=False).returncode == 0,
        120,
        "the kind API server after its restart",
    )


def keycloak() -> Keycloak:
    from testcontainers.keycloak import KeycloakContainer

    _prepare_environment()
    image_cache.docker("rm", "-f", KEYCLOAK_CONTAINER, check=False)
    common.ensure_ports_free({KEYCLOAK_PORT: "the Keycloak container"})
    _kind_network()
    # The importable realm plus the demo overlay (users, client secret), as the local stack imports it.
    realm = local_keycloak.demo_realm_file()
    kc = KeycloakContainer(
        images.chart_images()["keycloak"],
        username="admin",
        password="admin",
        cmd=f"start-dev --hostname=http://localhost:{KEYCLOAK_PORT} --hostname-backchannel-dynamic=true",
    )
    kc.with_name(KEYCLOAK_CONTAINER)
    # On kind's Docker network at a fixed address (a restart keeps it, so the cluster's Service and
    # NetworkPolicy peer stay right); published on loopback only.
    from docker.types import EndpointConfig

    kc.with_kwargs(
        network="kind",
        networking_config={"kind": EndpointConfig("1.44", ipv4_address=keycloak_address())},
    )
    kc.with_bind_ports(8080, ("127.0.0.1", KEYCLOAK_PORT))
    kc.with_bind_ports(9000, ("127.0.0.1", None))
    kc.with_realm_import_file(str(realm))
    # Keycloak's start in a new container (the dev mode's Quarkus build, then the realm import) takes
    # about 80 s on this 2-core machine when it is idle, and over testcontainers' 120 s while the kind
    # node beside it is still settling (a fresh machine's first run): its readiness may take 6 minutes.
    from testcontainers.core.config import testcontainers_config

    testcontainers_config.max_tries = max(
        testcontainers_config.max_tries, round(360 / testcontainers_config.sleep_time)
    )
    common.step(f"Keycloak container {KEYCLOAK_CONTAINER} (realm imported; 40-120 s)")
    started = time.monotonic()
    kc.start()
    common.step(f"Keycloak container ready after {time.monotonic() - started:.0f} s")
    _state["keycloak"] = kc
    url = f"http://127.0.0.1:{KEYCLOAK_PORT}"

    def ready() -> bool:
        return common.http_ok(f"{url}/realms/primehub/.well-known/openid-configuration")

    def stop() -> None:
        image_cache.docker("stop", "-t", "10", KEYCLOAK_CONTAINER)

    def start() -> None:
        image_cache.docker("start", KEYCLOAK_CONTAINER)
        common.wait_for(ready, 180, "the Keycloak container after its restart")
        # Back means back for the cluster too: while the container was stopped, Docker's DNS forgot
        # its name and CoreDNS cached that answer (a Keycloak behind a Service keeps its name).
        common.wait_for(_reachable_from_the_hub, 120, "Keycloak's name from inside the cluster again")

    return Keycloak(
        url=url,
        browser_url=f"http://localhost:{KEYCLOAK_PORT}",
        admin_user="admin",
        admin_password="admin",
        realm="primehub",
        realm_file=realm,
        stop=stop,
        start=start,
    )


def _kind_network() -> None:
    """kind's Docker network, made here with a subnet of our own before kind would make it (kind uses
    a network of that name as it finds it): Docker gives a container a fixed address only on a network
    whose subnet was given when it was created (Keycloak's, see keycloak())."""
    r = image_cache.docker("network", "inspect", "kind", "-f", "{{range .Containers}}{{.Name}} {{end}}", check=False)
    if r.returncode == 0:
        if r.stdout.strip():
            return  # a cluster or Keycloak of this session already uses it
        image_cache.docker("network", "rm", "kind")
    subnet = _free_subnet()
    made = image_cache.docker(
        "network",
        "create",
        "-d=bridge",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=true",
        "--subnet",
        subnet,
        "kind",
        check=False,
    )
    if made.returncode:
        raise BackendError(
            f"could not make kind's Docker network with subnet {subnet} ({made.stderr.strip()}): "
            "set PRIMEHUB_KIND_SUBNET to a free private /16"
        )


def _free_subnet() -> str:
    """A /16 no route of this machine covers: bridges of stopped Docker engines keep their routes,
    and a second bridge on the same subnet would take the host's traffic to the containers.
    10.200-10.243: clear of the cluster's pod (10.244/16) and service (10.96/12) ranges."""
    import ipaddress

    if os.environ.get("PRIMEHUB_KIND_SUBNET"):
        return os.environ["PRIMEHUB_KIND_SUBNET"]
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    used = [
        ipaddress.ip_network(line.split()[0], strict=False) for line in routes.splitlines() if "/" in line.split()[0]
    ]
    for second in range(200, 244):
        net = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise BackendError("no free /16 in 10.200-10.243 for kind's network: set PRIMEHUB_KIND_SUBNET")


def keycloak_address() -> str:
    """Keycloak's address on kind's network: near the top of its IPv4 subnet, away from the nodes."""
    import ipaddress

    subnets = image_cache.docker("network", "inspect", "kind", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}")
    v4 = next(ipaddress.ip_network(s) for s in subnets.stdout.split() if ":" not in s)
    return str(v4.broadcast_address - 6)


def _keycloak_service(cluster: Cluster) -> None:
    """Keycloak under a cluster name, as an operator runs an outside Keycloak: a Service without a
    selector and its EndpointSlice at the container's fixed address. Docker's DNS forgets a stopped
    container's name and the cluster caches that answer, so a name of Docker's would stay unknown
    for a while after Keycloak is back; the Service's name never goes away."""
    labels = {"app.kubernetes.io/name": KEYCLOAK_CONTAINER}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": KEYCLOAK_CONTAINER, "namespace": NAMESPACE, "labels": labels},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": KEYCLOAK_CONTAINER,
            "namespace": NAMESPACE,
            "labels": {**labels, "kubernetes.io/service-name": KEYCLOAK_CONTAINER},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [keycloak_address()]}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, endpoints]})
    )


def _reachable_from_the_hub() -> bool:
    kc = _state.get("kind")
    if kc is None:
        return True
    probe = f"import socket; socket.create_connection(({KEYCLOAK_CONTAINER!r}, 8080), 3)"
    r = subprocess.run(
        [
            str(kc.kubectl_path),
            f"--kubeconfig={kc.kubeconfig_path}",
            "exec",
            "-n",
            NAMESPACE,
            "deployment/hub",
            "--",
            "python3",
            "-c",
            probe,
        ],
        capture_output=True,
        timeout=30,
    )
    return r.returncode == 0


def _admin_token() -> str:
    f = STATE / "admin-api-token"
    if not f.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        f.write_text(secrets.token_hex(32))
        f.chmod(0o600)
    return f.read_text().strip()


def hub_values() -> dict:
    """The chart's values for the kind backend: the addresses above and a test admin service."""
    token = _admin_token()
    roles = [admin_role.role()]
    keycloak_ip = keycloak_address()
    return {
        "keycloak": {
            "url": f"http://localhost:{KEYCLOAK_PORT}",
            "internalUrl": f"http://{KEYCLOAK_CONTAINER}:8080",
            "clientSecret": CLIENT_SECRET,
            # Keycloak runs outside the cluster at a private address: name it, as an operator would.
            "networkPolicyPeers": [{"ipBlock": {"cidr": f"{keycloak_ip}/32"}}],
        },
        # The demo catalog's hostPath datasets live under /srv/datasets on the nodes.
        "primehub": {"publicUrl": f"http://127.0.0.1:{HUB_PORT}", "datasetHostPaths": ["/srv/datasets/"]},
        # The git checkouts are made on the node above, as an outside git-sync would.
        "gitSync": {"external": True},
        "proxy": {
            "service": {"type": "NodePort", "nodePorts": {"http": HUB_NODE_PORT}},
            "chp": {"resources": NO_CPU_REQUEST},
        },
        "hub": {
            "resources": NO_CPU_REQUEST,
            "extraConfig": {
                "kind-backend": "\n".join(
                    [
                        f"c.JupyterHub.services = [{{'name': {admin_role.NAME!r}, 'api_token': {token!r}}}]",
                        f"c.JupyterHub.load_roles = {roles!r}",
                    ]
                )
            },
        },
    }


def hub(cluster: Cluster, keycloak: Keycloak) -> Hub:
    kc = _state["kind"]
    _keycloak_service(cluster)
    values = STATE / "hub-values.json"
    values.write_text(json.dumps(hub_values()))
    helm = str(common.helm_path())
    common.step("helm install of chart/ into the kind cluster")
    r = subprocess.run(
        [
            helm,
            "upgrade",
            "--install",
            "primehub",
            str(REPO / "chart"),
            "-n",
            NAMESPACE,
            f"--kubeconfig={kc.kubeconfig_path}",
            "-f",
            str(values),
            "--wait",
            "--timeout=5m",
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise BackendError(f"helm install failed: {r.stderr[-3000:]}\n{_pod_summary(cluster)}")
    url = f"http://127.0.0.1:{HUB_PORT}"
    api_url = f"{url}/hub/api"
    common.wait_for(lambda: common.http_ok(f"{api_url}/"), 120, "the hub through proxy-public")

    def restart() -> None:
        cluster.kubectl("rollout", "restart", "deployment/hub", "-n", NAMESPACE)
        cluster.kubectl("rollout", "status", "deployment/hub", "-n", NAMESPACE, "--timeout=180s", timeout=200)
        common.wait_for(lambda: _api_answers(api_url), 120, "the hub after its restart")

    return Hub(url=url, api_url=api_url, api_token=_admin_token(), log_dir=LOG_DIR, restart=restart)


def _api_answers(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def _pod_summary(cluster: Cluster) -> str:
    return cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout


def save_logs(cluster: Cluster) -> None:
    """The hub's, the proxy's and Keycloak's logs into test-artifacts/logs, for a failing run."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for dep in ("hub", "proxy"):
        out = cluster.kubectl("logs", f"deployment/{dep}", "-n", NAMESPACE, "--tail=2000", check=False)
        (LOG_DIR / f"kind-{dep}.log").write_text(out.stdout + out.stderr)
    (LOG_DIR / "kind-pods.txt").write_text(_pod_summary(cluster))
    r = image_cache.docker("logs", "--tail", "2000", KEYCLOAK_CONTAINER, check=False)
    (LOG_DIR / "kind-keycloak.log").write_text(r.stdout + r.stderr)


def teardown() -> None:
    """Remove what the session started, unless PRIMEHUB_KEEP_STACK=1."""
    if os.environ.get("PRIMEHUB_KEEP_STACK") == "1":
        return
    if "keycloak" in _state:
        image_cache.docker("rm", "-f", KEYCLOAK_CONTAINER, check=False)
    if "kind" in _state:
        _state["kind"].delete()
