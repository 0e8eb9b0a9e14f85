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


def start(nodes_file: Path | None = None) -> None:
    if common.pid_of("node-agent") and ready():
        return
    common.stop("node-agent")
    step("starting the node agent (nodes cpu-node and gpu-node)")
    argv = [
        sys.executable,
        "-m",
        "localstack.nodeagent",
        "--server",
        cluster.API_URL,
        "--pki",
        str(cluster.PKI),
        "--workdir",
        str(STATE_DIR / "node-agent"),
        "--path",
        f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    ]
    if nodes_file:
        argv += ["--nodes", str(nodes_file)]
    common.start("node-agent", argv, env={"PYTHONPATH": str(Path(__file__).parent.parent)})
    common.wait_for(ready, 60, "node agent nodes Ready", "node-agent")
