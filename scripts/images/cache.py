"""Images cached by content.

Every image is named by what went into it: the sha256 of its build context (Dockerfile, files,
binaries, wheels) and build arguments, stored as a label on the image and in the name of a
`docker save` archive in the cache folder. A Docker engine that already holds the image with that
label builds nothing; a fresh engine (a new state folder) loads the archive; only a changed input
builds again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

from localstack import common
from localstack.common import StackError, step

IMAGE_CACHE = common.CACHE_DIR / "images"
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
LABEL = "io.primehub.content"


def docker(*args: str, capture: bool = True, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([DOCKER, *args], capture_output=capture, text=True, **kw)
    if check and r.returncode != 0:
        raise StackError(f"docker {' '.join(args[:3])} ... failed:\n{(r.stderr or '')[-3000:]}")
    return r


def hash_tree(root: Path, extra: dict | None = None) -> str:
    """sha256 of every file under root (path, mode and bytes) plus the build arguments."""
    h = hashlib.sha256(json.dumps(extra or {}, sort_keys=True).encode())
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            h.update(f"L {p.relative_to(root)} {os.readlink(p)}\n".encode())
        elif p.is_file():
            h.update(f"F {p.relative_to(root)} {p.stat().st_mode & 0o777:o}\n".encode())
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:20]


def label_of(tag: str) -> str | None:
    r = docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag, check=False)
    if r.returncode != 0:
        return None
    return (json.loads(r.stdout) or {}).get(LABEL)


def _archive(tag: str, digest: str) -> Path:
    slug = tag.replace("/", "_").replace(":", "_")
    return IMAGE_CACHE / f"{slug}-{digest}.tar"


def ensure(tags: list[str], digest: str, build: Callable[[], None]) -> bool:
    """Make `tags` exist with content `digest`; True when something was built or loaded."""
    if all(label_of(t) == digest for t in tags):
        common.step(f"image {tags[0]} up to date ({digest[:12]})")
        return False
    archive = _archive(tags[0], digest)
    t0 = time.monotonic()
    if archive.exists():
        step(f"loading image {tags[0]} from the cache")
        docker("load", "-i", str(archive))
    else:
        step(f"building image {tags[0]}")
        build()
        if label_of(tags[0]) != digest:
            raise StackError(f"image {tags[0]}: the build did not set label {LABEL}={digest}")
        for old in IMAGE_CACHE.glob(archive.name.rsplit("-", 1)[0] + "-*.tar"):
            old.unlink()
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        docker("save", "-o", str(archive) + ".tmp", *tags)
        os.replace(str(archive) + ".tmp", archive)
    for t in tags[1:]:
        if label_of(t) != digest:
            docker("tag", tags[0], t)
    common.step(f"image {tags[0]} ready in {time.monotonic() - t0:.0f}s")
    return True


def docker_build(
    context: Path, tags: list[str], digest: str, dockerfile: str = "Dockerfile", args: dict[str, str] | None = None
) -> None:
    argv = ["build", "--network", "host", "-f", str(context / dockerfile), "--label", f"{LABEL}={digest}"]
    for t in tags:
        argv += ["-t", t]
    for k, v in (args or {}).items():
        argv += ["--build-arg", f"{k}={v}"]
    log = common.LOG_DIR / f"image-{tags[0].replace('/', '_').replace(':', '_')}.log"
    common.LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        r = subprocess.run(
            [DOCKER, *argv, str(context)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, DOCKER_BUILDKIT="0"),
        )
    if r.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise StackError(f"building image {tags[0]} failed; see {log}\n{tail}")
