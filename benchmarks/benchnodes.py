"""Extra nodes for case 7 (a thousand running servers), served by a node agent of the bench's own.

The local stack's two nodes hold 110 pods each (kubelet's default), and the lead's hub shares them.
Case 7 therefore starts a second node agent (scripts/localstack/nodeagent.py, the same code) that
registers `bench-node-0..k`, labelled and tainted `bench.primehub.io/servers`, so that only pods of
the case's instance type (which selects and tolerates them) land there, spread by the real
scheduler. Its pods get loopback IPs 127.101.x.y (the stack's agent uses 127.100.x.y). The case's
pods carry the stand-in annotation, so the agent answers for them itself instead of running a
process per server (scripts/localstack/standin.py).

Everything is the bench's: the agent's process (pid in .local-stack/bench/bench-nodes.pid), its
work folder, the Node and Lease objects and the nodes' client certificates. `remove()` takes it
all away, also after an interrupted run (`python -m benchmarks --cleanup`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .stack import STATE, Kube, log, rss_mib

NODE_LABEL = "bench.primehub.io/servers"
OWNER_LABEL = "bench.primehub.io/owner"
TAINT = {"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}
TOLERATION = {"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
NODE_PREFIX = "bench-node-"
IP_PREFIX = "127.101"
PODS_PER_NODE = 110  # what the node agent registers (kubelet's default max-pods)
FILL = 100  # servers planned per node, leaving room for the scheduler's spreading
WORKDIR = STATE / "bench-nodes"
PIDFILE = STATE / "bench-nodes.pid"
LEASE_NAMESPACE = "kube-node-lease"


def node_count(servers: int) -> int:
    """Enough nodes for `servers` pods with room to spare; at least two ("several nodes")."""
    return max(2, math.ceil(servers / FILL) + 1)


def node_specs(count: int) -> list[dict]:
    return [
        {
            "name": f"{NODE_PREFIX}{i}",
            "cpu": "16",
            "memory": "64Gi",
            "labels": {NODE_LABEL: "true", OWNER_LABEL: "benchmarks"},
            "taints": [dict(TAINT)],
        }
        for i in range(count)
    ]


def _pki() -> Path:
    from localstack import cluster

    return cluster.PKI


class BenchNodes:
    def __init__(self, kube: Kube, count: int):
        self.kube, self.count = kube, count
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return STATE / "bench-nodes.log"  # kept after the run (the work folder is not)

    def start(self, timeout: float = 120) -> float:
        """Start the agent and wait until every node is Ready; returns the seconds that took."""
        from localstack import nodes

        remove(self.kube)  # whatever an interrupted run left
        WORKDIR.mkdir(parents=True, exist_ok=True)
        nodes_file = WORKDIR / "nodes.json"
        nodes_file.write_text(json.dumps(node_specs(self.count), indent=1))
        logf = open(self.log_path, "ab")
        logf.write(f"\n---- {time.strftime('%Y-%m-%d %H:%M:%S')} bench node agent, {self.count} nodes\n".encode())
        logf.flush()
        log(f"starting the bench node agent: {self.count} nodes {NODE_PREFIX}0..{self.count - 1} (log {self.log_path})")
        t = time.monotonic()
        self.proc = subprocess.Popen(
            nodes.agent_argv(WORKDIR, nodes_file, IP_PREFIX),
            env={**os.environ, "PYTHONPATH": str(nodes.SCRIPTS)},
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        PIDFILE.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bench node agent exited ({self.proc.returncode}); see {self.log_path}")
            ready = self.ready_nodes()
            if len(ready) >= self.count:
                return round(time.monotonic() - t, 1)
            time.sleep(0.5)
        raise TimeoutError(f"bench nodes not Ready after {timeout:.0f}s ({len(self.ready_nodes())} of {self.count})")

    def ready_nodes(self) -> list[str]:
        return [
            n.metadata.name
            for n in self.kube.core.list_node(label_selector=NODE_LABEL).items
            if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
        ]

    def pods_per_node(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.kube.pods():
            node = p.spec.node_name or ""
            if node.startswith(NODE_PREFIX):
                out[node] = out.get(node, 0) + 1
        return dict(sorted(out.items()))

    def rss_mib(self) -> float | None:
        return rss_mib(self.proc.pid) if self.proc and self.proc.poll() is None else None

    def stop(self) -> None:
        remove(self.kube)


def _our_agent(pid: int) -> bool:
    # a pid file can outlive its process, and the number be reused: only ever signal our own agent
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"localstack.nodeagent" in cmdline and str(WORKDIR).encode() in cmdline


def _stop_agent() -> None:
    try:
        pid = int(PIDFILE.read_text())
    except (OSError, ValueError):
        return
    if _our_agent(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and _our_agent(pid):
                _reap(pid)
                time.sleep(0.2)
            if _our_agent(pid):
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid)
    PIDFILE.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def remove(kube: Kube) -> int:
    """Stop the bench node agent and delete its Nodes, Leases, certificates and work folder.
    Pods still bound to the nodes should be deleted first (the case does); returns the nodes deleted."""
    from kubernetes.client import CoordinationV1Api
    from kubernetes.client.rest import ApiException

    _stop_agent()
    nodes = [n.metadata.name for n in kube.core.list_node(label_selector=NODE_LABEL).items]
    leases = CoordinationV1Api(kube.api_client)
    for name in nodes:
        for delete in (
            lambda: kube.core.delete_node(name),
            lambda: leases.delete_namespaced_lease(name, LEASE_NAMESPACE),
        ):
            try:
                delete()
            except ApiException as e:
                if e.status != 404:
                    raise
    for f in _pki().glob(f"node-{NODE_PREFIX}*"):
        f.unlink(missing_ok=True)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    if nodes:
        log(f"bench nodes removed: {', '.join(nodes)}")
    return len(nodes)
