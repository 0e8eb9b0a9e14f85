"""A private PostgreSQL server for a hub's database: the local stack's hub when asked
(`PRIMEHUB_LOCAL_DB=postgres make up`) and the bench hubs (case 3 on PostgreSQL).

Debian's PostgreSQL (`apt-get install postgresql`; the binaries in /usr/lib/postgresql/<v>/bin)
runs a cluster of its own in a folder of .local-stack/: no TCP port at all, only a Unix socket in
that folder, so it never meets the system's cluster or anyone's port 5432. PostgreSQL refuses to
run as root; as root the server runs as the `postgres` account Debian's package created. The hub
connects with `postgresql+psycopg2://jupyterhub@/jupyterhub?host=<folder>` (psycopg2, which the
chart's stock hub image ships and requirements-dev.txt installs).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from .common import STATE_DIR, step

FOLDER = STATE_DIR / "postgres"
PORT = 5499  # only names the socket file: the server listens on no TCP address
DATABASE = "jupyterhub"
USER = "jupyterhub"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `apt-get install postgresql` (Debian's packages)")
    return found[-1]


def _as_owner(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


class Postgres:
    def __init__(self, folder: Path = FOLDER):
        self.folder = Path(folder)
        self.data = self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{USER}@/{DATABASE}?host={self.folder}&port={PORT}"

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self, fresh: bool = True) -> "Postgres":
        """Start the server; `fresh` starts from an empty cluster, else an existing one is kept."""
        if self.running():
            if not fresh:
                return self
            self.stop()
        if fresh:
            shutil.rmtree(self.folder, ignore_errors=True)
        created = not self.data.exists()
        if created:
            self.folder.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                account = pwd.getpwnam("postgres")
                os.chown(self.folder, account.pw_uid, account.pw_gid)
            _as_owner([_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        _as_owner(
            [
                _bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.folder / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-c listen_addresses='' -c unix_socket_directories='{self.folder}' -p {PORT} "
                "-c fsync=off -c max_connections=200",
                "start",
            ]
        )
        if created:
            self._psql(f"CREATE ROLE {USER} LOGIN")
            self._psql(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        step(f"PostgreSQL for the hub database: socket in {self.folder}, no TCP port")
        return self

    def _psql(self, sql: str) -> None:
        _as_owner(
            [
                _bin("psql"),
                "-h",
                str(self.folder),
                "-p",
                str(PORT),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]
        )

    def stop(self) -> bool:
        if not self.running():
            return False
        try:
            _as_owner([_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        except subprocess.CalledProcessError as e:
            step(f"stopping PostgreSQL in {self.folder}: {e.stderr.strip()}")
        deadline = time.monotonic() + 10
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        return True

    def reset(self) -> None:
        """An empty hub database (each bench hub starts without users or servers)."""
        self._psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        self._psql(f"CREATE DATABASE {DATABASE} OWNER {USER}")
