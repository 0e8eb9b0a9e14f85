"""Starts the node agent (nodeagent.py) as its own process and waits for its Nodes to be Ready."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import cluster, common
from .common import STATE_DIR, VENV_BIN, step


def ready() -> bool:
    out = cluster.kubectl("get", "nodes", "-o", "json", check=False)
    if out.returncode:
        return False
    names = {
        n["metadata"]["name"]
        for n in json.loads(out.stdout)["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    }
    return {"cpu-node", "gpu-node"} <= names


def agent_argv(workdir: Path, nodes_file: Path | None = None, pod_ip_prefix: str | None = None) -> list[str]:
    """The node agent's command line (run with PYTHONPATH=`SCRIPTS`): the stack's and the bench's."""
    argv = [
        sys.executable,
        "-m",
        "localstack.nodeagent",
        "--server",
        cluster.API_URL,
        "--pki",
        str(cluster.PKI),
        "--workdir",
        str(workdir),
        "--path",
        f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    ]
    if nodes_file:
        argv += ["--nodes", str(nodes_file)]
    if pod_ip_prefix:
        argv += ["--pod-ip-prefix", pod_ip_prefix]
    return argv


SCRIPTS = Path(__file__).parent.parent  # the folder holding the `localstack` package


def start(nodes_file: Path | None = None) -> None:
    if common.pid_of("node-agent") and ready():
        return
    common.stop("node-agent")
    step("starting the node agent (nodes cpu-node and gpu-node)")
    argv = agent_argv(STATE_DIR / "node-agent", nodes_file)
    common.start("node-agent", argv, env={"PYTHONPATH": str(SCRIPTS)})
    common.wait_for(ready, 60, "node agent nodes Ready", "node-agent")
