"""`make up` / `make down` / `make status`: start, stop or show the local stack."""

from __future__ import annotations

import argparse
import sys
import time

from . import cluster, common, dockerd, hub, keycloak, nodes, postgres
from .common import StackError, step

SERVERS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "node-agent", "keycloak", "hub"]


def up(with_hub: bool = True) -> None:
    t0 = time.monotonic()
    cluster.up()
    nodes.start()
    cluster.apply_catalog()
    keycloak.start()
    if with_hub:
        hub.start()
    step(f"local stack up in {time.monotonic() - t0:.0f}s")
    print(f"""
  Hub:       {hub.URL}/hub/   (log in through Keycloak)
  Keycloak:  http://localhost:{keycloak.PORT}/admin/   (admin / {keycloak.ADMIN_PASSWORD}, local only)
  Demo users (password <name>-pw): alice, bob, carol, dana (admin), erin (see keycloak-realm/README.md)
  kubectl:   {cluster.bin_path("kubectl")} --kubeconfig {cluster.KUBECONFIG} get pods -n {cluster.NAMESPACE}
  Logs:      {common.LOG_DIR}
  Stop:      make down
""")


def down() -> None:
    for name in reversed(SERVERS):
        if common.stop(name, grace=20):
            step(f"stopped {name}")
    common.stop("proxy")
    if postgres.Postgres().stop():
        step("stopped the hub's PostgreSQL")
    # The kind backend's Docker engine, when the project started it (its containers stop with it).
    if dockerd.stop():
        step("stopped the project's Docker engine")


def status() -> int:
    bad = 0
    for name in SERVERS:
        pid = common.pid_of(name)
        print(f"{name:26} {'running pid ' + str(pid) if pid else 'stopped'}")
        bad += pid is None
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="localstack")
    ap.add_argument("command", choices=["up", "down", "status", "cluster"])
    a = ap.parse_args()
    try:
        if a.command == "up":
            up()
        elif a.command == "cluster":
            up(with_hub=False)
        elif a.command == "down":
            down()
        else:
            return status()
    except StackError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
