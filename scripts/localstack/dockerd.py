"""The Docker engine the kind backend and `make images` use.

A running engine (DOCKER_HOST, or the default socket) is used as it is. Otherwise the project starts
its own `dockerd` from Debian's `docker.io` package, with its data root and socket in the state folder
and its exec root under /run (socket paths must stay short), so `make down` stops exactly what it
started and nothing of the machine's own Docker setup is touched.

`python -m localstack.dockerd` prints the DOCKER_HOST to export (starting the engine if needed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import common
from .common import StackError, step

NAME = "dockerd"
DOCKER_DIR = common.STATE_DIR / "docker"
SOCKET = DOCKER_DIR / "docker.sock"
# One exec root per state folder: containerd's sockets live there and must stay under 108 bytes.
EXEC_ROOT = Path("/run") / f"primehub-docker-{hashlib.sha256(str(common.STATE_DIR).encode()).hexdigest()[:8]}"
DOCKER_BIN = os.environ.get("DOCKER", "/usr/bin/docker")
OWN_HOST = f"unix://{SOCKET}"


def _ping(host: str) -> bool:
    env = dict(os.environ, DOCKER_HOST=host)
    try:
        r = subprocess.run(
            [DOCKER_BIN, "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and bool(r.stdout.strip())


def existing_host() -> str | None:
    """An engine that already answers: $DOCKER_HOST, our own, or the machine's default socket."""
    candidates = [os.environ.get("DOCKER_HOST"), OWN_HOST, "unix:///var/run/docker.sock"]
    for host in candidates:
        if host and _ping(host):
            return host
    return None


def ensure() -> str:
    """Return a DOCKER_HOST that answers, starting the project's own engine when none does."""
    host = existing_host()
    if host:
        return host
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists():
        raise StackError(
            "no Docker engine answers and dockerd is not installed: run `make tools KIND=1` "
            "(installs Debian's docker.io) or start an engine and set DOCKER_HOST"
        )
    if os.geteuid() != 0:
        raise StackError("no Docker engine answers, and starting one needs root: start Docker and set DOCKER_HOST")
    step(f"starting the project's Docker engine (data in {DOCKER_DIR})")
    (DOCKER_DIR / "data").mkdir(parents=True, exist_ok=True)
    EXEC_ROOT.mkdir(parents=True, exist_ok=True)
    SOCKET.unlink(missing_ok=True)
    common.start(
        NAME,
        [
            dockerd,
            "--data-root",
            str(DOCKER_DIR / "data"),
            "--exec-root",
            str(EXEC_ROOT),
            "-H",
            OWN_HOST,
            "--pidfile",
            str(DOCKER_DIR / "dockerd.pid"),
            "--storage-driver",
            "overlay2",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
            # No registry answers from this machine: fail pulls fast instead of retrying.
            "--max-download-attempts",
            "1",
        ],
    )
    common.wait_for(lambda: _ping(OWN_HOST), 60, "Docker engine", NAME)
    return OWN_HOST


def stop() -> bool:
    """Stop the engine only if the project started it; its containers stop with it."""
    if common.pid_of(NAME) is None:
        return False
    env = dict(os.environ, DOCKER_HOST=OWN_HOST)
    ids = subprocess.run([DOCKER_BIN, "ps", "-q"], env=env, capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run([DOCKER_BIN, "stop", "-t", "5", *ids], env=env, capture_output=True)
    return common.stop(NAME, grace=30)


if __name__ == "__main__":
    try:
        print(ensure())
    except StackError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(1)
