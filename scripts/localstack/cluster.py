"""The real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built from source by scripts/provision, with RBAC + Node authorization, signed
service-account tokens, the default admission plugins (plus NodeRestriction) and the controller
manager's hostPath provisioner behind a default StorageClass, so PVCs bind as on a real cluster.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from . import common, pki
from .common import STATE_DIR, V, step

ETCD_PORT = 23790
ETCD_PEER_PORT = 23800
API_PORT = 6443
KCM_PORT = 10257
SCHED_PORT = 10259
API_URL = f"https://127.0.0.1:{API_PORT}"
NAMESPACE = "primehub"

PKI = STATE_DIR / "pki"
KUBECONFIG = STATE_DIR / "kubeconfig"


def bin_path(name: str) -> Path:
    if name == "etcd":
        return common.tool("etcd", V["ETCD_VERSION"], "etcd")
    return common.tool("k8s", V["K8S_VERSION"], name)


def kubeconfig_for(name: str, cn: str, orgs: tuple[str, ...] = ()) -> Path:
    """A kubeconfig with a client certificate for `cn` (in `orgs` groups)."""
    path = STATE_DIR / "kubeconfigs" / f"{name}.kubeconfig"
    crt, key = pki.ensure_cert(PKI, name, cn, orgs)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": API_URL, "certificate-authority": str(PKI / "ca.crt")}}],
        "users": [{"name": name, "user": {"client-certificate": str(crt), "client-key": str(key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": name, "namespace": NAMESPACE}}],
        "current-context": "local",
    }
    # JSON is valid YAML, and every client reads it.
    path.write_text(json.dumps(cfg, indent=2))
    path.chmod(0o600)
    return path


def kubectl(
    *args: str, check: bool = True, input: str | None = None, kubeconfig: Path = KUBECONFIG
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(bin_path("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        text=True,
        capture_output=True,
        input=input,
    )
    if check and proc.returncode:
        raise common.StackError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _api_ready() -> bool:
    return common.http_ok(f"{API_URL}/readyz", cafile=PKI / "ca.crt")


def start_etcd() -> None:
    if common.pid_of("etcd") and common.http_ok(f"http://127.0.0.1:{ETCD_PORT}/health"):
        return
    common.stop("etcd")
    step(f"starting etcd {V['ETCD_VERSION']} on 127.0.0.1:{ETCD_PORT}")
    data = STATE_DIR / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    common.start(
        "etcd",
        [
            str(bin_path("etcd")),
            "--name=local",
            f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            # A throwaway test cluster: durability is not worth the fsync latency on a shared disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    common.wait_for(lambda: common.http_ok(f"http://127.0.0.1:{ETCD_PORT}/health"), 30, "etcd", "etcd")


def start_apiserver() -> None:
    if common.pid_of("kube-apiserver") and _api_ready():
        return
    common.stop("kube-apiserver")
    step(f"starting kube-apiserver {V['K8S_VERSION']} on {API_URL}")
    ca, _ = pki.ensure_ca(PKI)
    crt, key = pki.ensure_cert(
        PKI,
        "apiserver",
        "kube-apiserver",
        server=True,
        sans=(
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        ),
    )
    sa_key, sa_pub = pki.ensure_sa_key(PKI)
    common.start(
        "kube-apiserver",
        [
            str(bin_path("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            "--bind-address=127.0.0.1",
            f"--secure-port={API_PORT}",
            # The endpoints reconciler refuses loopback addresses; nothing here routes to the
            # kubernetes Service anyway, so it is turned off rather than fed a fake address.
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={crt}",
            f"--tls-private-key-file={key}",
            f"--client-ca-file={ca}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--profiling=false",
            "--event-ttl=1h",
            "--v=1",
        ],
    )
    common.wait_for(_api_ready, 90, "kube-apiserver", "kube-apiserver")


def start_controller_manager() -> None:
    if common.pid_of("kube-controller-manager"):
        return
    step("starting kube-controller-manager (hostPath provisioner on)")
    kc = kubeconfig_for("controller-manager", "system:kube-controller-manager")
    sa_key, _ = pki.ensure_sa_key(PKI)
    common.start(
        "kube-controller-manager",
        [
            str(bin_path("kube-controller-manager")),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={KCM_PORT}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={PKI / 'ca.crt'}",
            "--enable-hostpath-provisioner=true",
            f"--cluster-signing-cert-file={PKI / 'ca.crt'}",
            f"--cluster-signing-key-file={PKI / 'ca.key'}",
            "--controllers=*,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            "--v=1",
        ],
    )


def start_scheduler() -> None:
    if common.pid_of("kube-scheduler"):
        return
    step("starting kube-scheduler")
    kc = kubeconfig_for("scheduler", "system:kube-scheduler")
    common.start(
        "kube-scheduler",
        [
            str(bin_path("kube-scheduler")),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={SCHED_PORT}",
            "--leader-elect=false",
            "--v=1",
        ],
    )


STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


def bootstrap() -> None:
    """Objects every later step expects: the admin kubeconfig, the namespace, a default StorageClass."""
    admin = kubeconfig_for("admin", "kubernetes-admin", ("system:masters",))
    if not KUBECONFIG.exists() or KUBECONFIG.read_text() != admin.read_text():
        KUBECONFIG.write_text(admin.read_text())
        KUBECONFIG.chmod(0o600)
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [ns, STORAGE_CLASS]}))
    # The ServiceAccount admission plugin refuses pods until the controller manager has made the
    # namespace's default ServiceAccount.
    common.wait_for(
        lambda: kubectl("get", "serviceaccount", "default", "-n", NAMESPACE, check=False).returncode == 0,
        60,
        "the default ServiceAccount in namespace primehub (kube-controller-manager)",
        "kube-controller-manager",
    )


def up() -> None:
    start_etcd()
    start_apiserver()
    bootstrap_pki_clients()
    start_controller_manager()
    start_scheduler()
    bootstrap()


def bootstrap_pki_clients() -> None:
    kubeconfig_for("admin", "kubernetes-admin", ("system:masters",))


def down() -> None:
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        common.stop(name)


def apply_crds(run=None) -> None:
    """The project's CRDs (crds/*.yaml), applied and Established, so custom resources can be written
    right after (idempotent). `run` as in apply_catalog; the integration tests pass their cluster's."""
    run = run or kubectl
    run(
        "apply",
        "--server-side",
        "--force-conflicts",
        *[f"-f={f}" for f in sorted((common.REPO_ROOT / "crds").glob("*.yaml"))],
    )
    run(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/instancetypes.primehub.io",
        "crd/images.primehub.io",
        "crd/datasets.primehub.io",
    )


def apply_catalog(run=None) -> None:
    """The CRDs, then the example catalog, into the hub's namespace (idempotent). `run` is the
    kubectl of another cluster (the kind backend); the local stack's by default."""
    run = run or kubectl
    crds = common.REPO_ROOT / "crds"
    files = sorted(crds.glob("*.yaml"))
    if not files:
        return
    step("applying the CRDs and the example catalog")
    apply_crds(run)
    examples = crds / "examples"
    if examples.exists():
        run("apply", "--server-side", "--force-conflicts", "-n", NAMESPACE, "-f", str(examples))
    # PrimeHub's controller makes the claims of `pv` datasets; on the local stack we make them here.
    run(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-n",
        NAMESPACE,
        "-f",
        str(Path(__file__).parent / "demo-dataset-volumes.yaml"),
    )
