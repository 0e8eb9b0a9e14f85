"""The kind node image, assembled from our own builds.

`kind build node-image` cannot run here (it calls `ctr info`, which Debian's containerd lacks, and pulls
its base image), so the node is assembled by hand: a base with systemd, containerd and runc from Debian,
kind's own base files, our kubelet/kubeadm/kubectl/crictl, and inside its containerd every image kubeadm
and the node's add-ons expect, under exactly the names they expect.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from localstack import common
from localstack.common import StackError, step

from . import build, cache
from .privileges import FLAGS

V = common.V
KIND_MODULE_FILES = (
    Path.home() / "go" / "pkg" / "mod" / "sigs.k8s.io" / f"kind@{V['KIND_VERSION']}" / "images" / "base" / "files"
)
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"  # kind's containerd config names this one
ASSEMBLER = "primehub-node-assemble"


def _k8s(name: str) -> Path:
    return common.tool("k8s", V["K8S_VERSION"], name)


def _pause() -> Path:
    found = sorted((common.CACHE_DIR / "pause").glob("*/pause"))
    if not found:
        raise StackError("pause is missing: run `make tools KIND=1`")
    return found[-1]


def kubeadm_images() -> list[str]:
    out = subprocess.run(
        [str(_k8s("kubeadm")), "config", "images", "list", "--kubernetes-version", V["K8S_VERSION"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def components() -> dict[str, str]:
    """Build every component image; returns tag -> content digest."""
    binaries = {
        "kube-apiserver": _k8s("kube-apiserver"),
        "kube-controller-manager": _k8s("kube-controller-manager"),
        "kube-scheduler": _k8s("kube-scheduler"),
        "kube-proxy": _k8s("kube-proxy"),
        "etcd": common.tool("etcd", V["ETCD_VERSION"], "etcd"),
        "coredns": common.tool("coredns", V["COREDNS_VERSION"], "coredns"),
        "pause": _pause(),
    }
    plan: list[tuple[list[str], str, Path, bool]] = []  # tags, binary name, binary, needs Debian tools
    for image in kubeadm_images():
        short = image.rsplit("/", 1)[1].split(":")[0]
        tags = [image, SANDBOX_IMAGE] if short == "pause" else [image]
        plan.append((tags, short, binaries[short], short == "kube-proxy"))
    plan.append(
        (
            [f"primehub.local/kube-router:{V['KUBE_ROUTER_VERSION']}"],
            "kube-router",
            common.tool("kube-router", V["KUBE_ROUTER_VERSION"], "kube-router"),
            True,
        )
    )
    plan.append(
        (
            [f"primehub.local/local-path-provisioner:{V['LOCAL_PATH_VERSION']}"],
            "local-path-provisioner",
            common.tool("local-path-provisioner", V["LOCAL_PATH_VERSION"], "local-path-provisioner"),
            True,
        )
    )
    digests = {}
    for tags, name, binary, debian in plan:
        digests[tags[0]] = _component(tags, name, binary, debian)
        for t in tags[1:]:
            digests[t] = digests[tags[0]]
    return digests


def _component(tags: list[str], name: str, binary: Path, debian: bool) -> str:
    ctx = build.context(f"component-{name}")
    (ctx / "bin").mkdir()
    shutil.copy(binary, ctx / "bin" / name)
    if debian:
        shutil.copy(common.REPO_ROOT / "images" / "components" / "Dockerfile.debian", ctx / "Dockerfile")
    else:
        # CoreDNS and pause are started by path, the others by name (kubeadm's
        # manifests give only the command name), so both work.
        (ctx / "Dockerfile").write_text(
            "FROM scratch\nCOPY bin/ /usr/local/bin/\n"
            f'COPY bin/{name} /{name}\nENV PATH=/usr/local/bin\nENTRYPOINT ["/{name}"]\n'
        )
    digest = cache.hash_tree(ctx, {"base": cache.label_of(build.BASE) if debian else "scratch"})
    cache.ensure(tags, digest, lambda: cache.docker_build(ctx, tags, digest, args={"BASE": build.BASE}))
    return digest


def _node_context() -> Path:
    if not KIND_MODULE_FILES.exists():
        raise StackError(f"{KIND_MODULE_FILES} is missing: run `make tools KIND=1` (downloads kind's module)")
    ctx = build.context("node")
    src = common.REPO_ROOT / "images" / "node"
    shutil.copy(src / "Dockerfile", ctx / "Dockerfile")
    shutil.copytree(KIND_MODULE_FILES, ctx / "kind-files")
    (ctx / "kind-files" / "etc" / "containerd" / "config.toml").unlink()  # ours replaces it
    subprocess.run(["chmod", "-R", "u+w", str(ctx)], check=True)
    shutil.copytree(src / "node-files", ctx / "node-files")
    for manifest in (ctx / "node-files" / "kind" / "manifests").glob("*.yaml"):
        text = manifest.read_text().replace("PRIMEHUB_LOCAL_PATH_VERSION", V["LOCAL_PATH_VERSION"])
        manifest.write_text(text.replace("PRIMEHUB_KUBE_ROUTER_VERSION", V["KUBE_ROUTER_VERSION"]))
    (ctx / "node-files" / "kind" / "version").write_text(V["K8S_VERSION"] + "\n")
    (ctx / "bin").mkdir()
    for name in ("kubelet", "kubeadm", "kubectl"):
        shutil.copy(_k8s(name), ctx / "bin" / name)
    shutil.copy(common.tool("crictl", V["CRICTL_VERSION"], "crictl"), ctx / "bin" / "crictl")
    return ctx


def node() -> None:
    images = components()
    ctx = _node_context()
    digest = cache.hash_tree(ctx, {"base": cache.label_of(build.BASE), "images": images})
    cache.ensure([build.NODE], digest, lambda: _assemble(ctx, digest, sorted(set(images))))


def _assemble(ctx: Path, digest: str, images: list[str]) -> None:
    base_tag = f"{build.NODE}-base"
    cache.docker_build(ctx, [base_tag], digest, args={"BASE": build.BASE})
    cache.docker("rm", "-f", ASSEMBLER, check=False)
    cache.docker("run", "-d", "--name", ASSEMBLER, "--entrypoint", "sleep", *FLAGS, base_tag, "infinity")
    try:
        cache.docker("exec", "-d", ASSEMBLER, "containerd", "--config", "/etc/containerd/config.toml")
        cache.docker(
            "exec",
            ASSEMBLER,
            "sh",
            "-c",
            "for i in $(seq 100); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1",
        )
        for tag in images:
            step(f"node image: importing {tag}")
            save = subprocess.Popen([cache.DOCKER, "save", tag], stdout=subprocess.PIPE)
            r = subprocess.run(
                [cache.DOCKER, "exec", "-i", ASSEMBLER, "ctr", "-n", "k8s.io", "images", "import", "--no-unpack", "-"],
                stdin=save.stdout,
                capture_output=True,
                text=True,
            )
            save.stdout.close()  # so that `docker save` ends if the import stops reading
            save.wait()
            if r.returncode != 0 or save.returncode != 0:
                raise StackError(f"importing {tag} into the node image failed: {r.stderr[-1500:]}")
            # Pinned, so kubelet's image garbage collection never removes what no registry can give back.
            cache.docker(
                "exec", ASSEMBLER, "ctr", "-n", "k8s.io", "images", "label", tag, "io.cri-containerd.pinned=pinned"
            )
        cache.docker("exec", ASSEMBLER, "pkill", "containerd")
        cache.docker("exec", ASSEMBLER, "sh", "-c", "rm -rf /run/containerd /tmp/*")
        cache.docker(
            "commit",
            "--change",
            'ENTRYPOINT ["/usr/local/bin/primehub-node-prelude", "/usr/local/bin/entrypoint", "/sbin/init"]',
            "--change",
            "CMD []",
            "--change",
            f"LABEL {cache.LABEL}={digest}",
            ASSEMBLER,
            build.NODE,
        )
    finally:
        cache.docker("rm", "-f", ASSEMBLER, check=False)
        cache.docker("rmi", base_tag, check=False)
