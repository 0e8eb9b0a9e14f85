"""`make images`: every image the kind backend runs, built on this machine.

No container registry is reachable here, so each image is assembled from what the package registries
serve: a Debian rootfs from debootstrap, Debian packages, wheels from PyPI, configurable-http-proxy from
npm, Keycloak from Maven Central and our own Go builds. The chart's images carry exactly the names the
chart's defaults use, so `helm install` runs unchanged. With PRIMEHUB_IMAGES=pull (a machine that reaches
the registries) the chart's and Keycloak's official images are pulled instead; the kind node is then
kind's own `kindest/node`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from localstack import common
from localstack.common import StackError, step

from . import cache

REPO = common.REPO_ROOT
V = common.V
BASE = f"primehub.local/debian:{V['DEBIAN_SUITE']}"
NODE = f"primehub.local/kind-node:{V['K8S_VERSION']}"
WORK = common.CACHE_DIR / "images" / "contexts"


def chart_images() -> dict[str, str]:
    """The image names the chart's defaults and the demo catalog use."""
    values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())
    hub = values["hub"]["image"]
    chp = values["proxy"]["chp"]["image"]
    return {
        "hub": f"{hub['name']}:{hub['tag']}",
        "proxy": f"{chp['name']}:{chp['tag']}",
        "keycloak": f"quay.io/keycloak/keycloak:{V['KEYCLOAK_VERSION']}",
    }


def singleuser_tags() -> list[str]:
    """Every image URL of the demo catalog (CPU and GPU variants) runs our singleuser image."""
    tags = []
    for doc in yaml.safe_load_all((REPO / "crds" / "examples" / "images.yaml").read_text()):
        if doc and doc.get("kind") == "Image":
            for key in ("url", "urlForGpu"):
                url = doc["spec"].get(key, "")
                # The private-registry example stays unpullable on purpose (its pull secret is the test).
                if url and not url.startswith("registry.example.com") and url not in tags:
                    tags.append(url)
    return tags


def context(name: str) -> Path:
    d = WORK / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def base() -> None:
    """Debian from debootstrap, imported as the parent of every other image."""
    suite, mirror = V["DEBIAN_SUITE"], V["DEBIAN_MIRROR"]
    digest = cache.hash_tree(Path(tempfile.mkdtemp()), {"suite": suite, "mirror": mirror, "v": 1})
    rootfs_tar = cache.IMAGE_CACHE / f"rootfs-{suite}-{digest}.tar"

    def build():
        if not rootfs_tar.exists():
            _debootstrap(suite, mirror, rootfs_tar)
        cache.docker("import", "--change", f"LABEL {cache.LABEL}={digest}", str(rootfs_tar), BASE)

    # The rootfs archive is the cache; no second `docker save` of the same bytes.
    if cache.label_of(BASE) == digest:
        step(f"image {BASE} up to date")
        return
    step(f"image {BASE}: {'importing the cached rootfs' if rootfs_tar.exists() else 'debootstrap (about 2 minutes)'}")
    build()


def _debootstrap(suite: str, mirror: str, out: Path) -> None:
    if not shutil.which("debootstrap"):
        raise StackError("debootstrap is missing: run `make tools KIND=1`")
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=common.CACHE_DIR))
    log = common.LOG_DIR / "debootstrap.log"
    common.LOG_DIR.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "w") as f:
            r = subprocess.run(
                ["debootstrap", "--variant=minbase", suite, str(root / "fs"), mirror],
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        if r.returncode != 0:
            raise StackError(f"debootstrap {suite} failed; see {log}")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-C", str(root / "fs"), "-cf", f"{out}.tmp", "."], check=True)
        os.replace(f"{out}.tmp", out)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wheelhouse(requirements: str, dest: Path) -> None:
    """Wheels for the image, downloaded on the host into a cache keyed by the requirements."""
    import hashlib

    key = hashlib.sha256(requirements.encode()).hexdigest()[:16]
    cached = common.CACHE_DIR / "wheelhouse" / key
    if not cached.exists():
        step(f"downloading wheels ({len(requirements.splitlines())} requirements)")
        tmp = cached.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "requirements.txt").write_text(requirements)
        r = subprocess.run(
            [
                str(common.VENV_BIN / "python"),
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux_2_17_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
                "--platform",
                "linux_x86_64",
                "-d",
                str(tmp / "wheels"),
                "-r",
                str(tmp / "requirements.txt"),
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise StackError(f"pip download for an image failed:\n{r.stderr[-2000:]}")
        os.replace(tmp, cached)
    shutil.copytree(cached / "wheels", dest)


def python_image(name: str, tag_list: list[str], requirements: str) -> None:
    ctx = context(name)
    shutil.copy(REPO / "images" / name / "Dockerfile", ctx / "Dockerfile")
    (ctx / "requirements.txt").write_text(requirements)
    _wheelhouse(requirements, ctx / "wheelhouse")
    digest = cache.hash_tree(ctx, {"base": cache.label_of(BASE)})
    cache.ensure(tag_list, digest, lambda: cache.docker_build(ctx, tag_list, digest, args={"BASE": BASE}))


def hub_requirements() -> str:
    """requirements-hub.txt (the pinned hub image's set) plus the idle culler the chart's default runs."""
    lines = [
        ln.strip()
        for ln in (REPO / "requirements-hub.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    if not any(ln.lower().startswith("jupyterhub-idle-culler") for ln in lines):
        lines.append("jupyterhub-idle-culler==1.4.0")
    return "\n".join(lines) + "\n"


def singleuser_requirements() -> str:
    pins = dict(
        re.findall(
            r"^([A-Za-z0-9_.-]+)==(\S+)",
            (REPO / "requirements-dev.txt").read_text() + (REPO / "requirements-hub.txt").read_text(),
            re.M,
        )
    )
    return f"jupyterhub=={pins['jupyterhub']}\njupyterlab=={pins['jupyterlab']}\n"


def proxy() -> None:
    tag = chart_images()["proxy"]
    version = tag.rsplit(":", 1)[1]
    npm_dir = common.CACHE_DIR / "chp" / version
    if not (npm_dir / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        step(f"installing configurable-http-proxy {version} from npm for the proxy image")
        r = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(npm_dir),
                f"configurable-http-proxy@{version}",
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise StackError(f"npm install configurable-http-proxy@{version} failed:\n{r.stderr[-2000:]}")
    ctx = context("proxy")
    shutil.copy(REPO / "images" / "proxy" / "Dockerfile", ctx / "Dockerfile")
    shutil.copytree(npm_dir, ctx / "chp", symlinks=True)
    digest = cache.hash_tree(ctx, {"base": cache.label_of(BASE)})
    cache.ensure([tag], digest, lambda: cache.docker_build(ctx, [tag], digest, args={"BASE": BASE}))


def keycloak() -> None:
    tag = chart_images()["keycloak"]
    dist = common.tool("keycloak", V["KEYCLOAK_VERSION"])
    ctx = context("keycloak")
    shutil.copy(REPO / "images" / "keycloak" / "Dockerfile", ctx / "Dockerfile")
    # The distribution as published (the local stack runs its own copy in the state folder).
    shutil.copytree(dist, ctx / "keycloak", symlinks=True, ignore=shutil.ignore_patterns("data"))
    digest = cache.hash_tree(ctx, {"base": cache.label_of(BASE)})
    cache.ensure([tag], digest, lambda: cache.docker_build(ctx, [tag], digest, args={"BASE": BASE}))


def chart() -> None:
    names = chart_images()
    python_image("hub", [names["hub"]], hub_requirements())
    proxy()
    python_image("singleuser", singleuser_tags(), singleuser_requirements())
    keycloak()


def pull() -> None:
    """PRIMEHUB_IMAGES=pull: the official images, for machines that reach the registries."""
    for tag in [*chart_images().values(), *singleuser_tags(), f"kindest/node:{V['K8S_VERSION']}"]:
        step(f"docker pull {tag}")
        cache.docker("pull", tag, capture=False)
