"""Paths, versions and process handling shared by every part of the local stack.

Each server runs as its own process group with its pid in `<state>/pids/<name>.pid` and its output
in `<state>/logs/<name>.log`, so `make down` (or a test session) can stop exactly what was started,
and a second `make up` finds a healthy server already running and leaves it alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(
    os.environ.get("PRIMEHUB_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "primehub-local"
)
STATE_DIR = Path(os.environ.get("PRIMEHUB_STATE", REPO_ROOT / ".local-stack"))
LOG_DIR = STATE_DIR / "logs"
PID_DIR = STATE_DIR / "pids"
VENV_BIN = REPO_ROOT / ".venv" / "bin"


def versions() -> dict[str, str]:
    out = {}
    for line in (REPO_ROOT / "scripts" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


V = versions()


class StackError(RuntimeError):
    """A server of the local stack could not be started; the message names it and its log."""


def step(msg: str) -> None:
    print(f"==> [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(*parts: str) -> Path:
    """A built tool in the cache; fails with the command that builds it when it is missing."""
    p = CACHE_DIR.joinpath(*parts)
    if not p.exists():
        raise StackError(f"{p} is missing: run `make tools` (scripts/provision/all.sh) to build it")
    return p


def pid_of(name: str) -> int | None:
    f = PID_DIR / f"{name}.pid"
    try:
        pid = int(f.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    # A zombie (our own exited child) counts as dead.
    try:
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return None
    except (FileNotFoundError, IndexError):
        return None
    return pid


def log_path(name: str) -> Path:
    return LOG_DIR / f"{name}.log"


def start(name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    PID_DIR.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    log = open(log_path(name), "ab")
    log.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
    log.flush()
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=str(cwd) if cwd else None,
        start_new_session=True,
    )
    (PID_DIR / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def stop(name: str, grace: float = 10.0) -> bool:
    """SIGTERM the server's process group, then SIGKILL after `grace` seconds."""
    pid = pid_of(name)
    pidfile = PID_DIR / f"{name}.pid"
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_of(name) is not None:
        _reap(pid)
        time.sleep(0.1)
    if pid_of(name) is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.2)
        _reap(pid)
    pidfile.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_for(check: Callable[[], bool], timeout: float, what: str, name: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        if name is not None and pid_of(name) is None:
            raise StackError(f"{what}: the process exited; see {log_path(name)}\n{tail(name)}")
        time.sleep(0.3)
    raise StackError(
        f"{what}: not ready after {timeout:.0f}s; see {log_path(name) if name else LOG_DIR}\n{tail(name) if name else ''}"
    )


def tail(name: str | None, lines: int = 25) -> str:
    if not name:
        return ""
    try:
        return "\n".join(log_path(name).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def http_ok(url: str, cafile: Path | None = None, timeout: float = 2.0) -> bool:
    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return 200 <= r.status < 400
    except urllib.error.HTTPError as e:
        return 200 <= e.code < 400
    except Exception:
        return False


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on host:port (a socket left in TIME_WAIT does not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def ensure_ports_free(ports: dict[int, str], wait: float = 15) -> None:
    """Fail with a readable message when another program holds a port a server of ours needs.

    The local stack and the kind backend use the same loopback ports for the hub and Keycloak; a
    server that cannot bind would otherwise show up as resets and refusals in every browser test.
    """
    deadline = time.monotonic() + wait  # a server of ours that was just stopped may still be exiting
    while True:
        taken = [f"{port} ({what})" for port, what in ports.items() if port_in_use(port)]
        if not taken or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if taken:
        raise StackError(
            f"port {', '.join(taken)} is already in use by another program: stop it first "
            "(`make down` stops the local stack and the kind backend's Docker engine)"
        )


def which_or_fail(cmd: str, what: str) -> str:
    p = shutil.which(cmd)
    if not p:
        raise StackError(f"{what} needs `{cmd}` on PATH")
    return p


def helm_path() -> Path:
    """helm from $HELM, else the one `make tools` builds into the cache folder (may not exist yet)."""
    return Path(os.environ.get("HELM") or CACHE_DIR / "helm" / V["HELM_VERSION"] / "helm")
