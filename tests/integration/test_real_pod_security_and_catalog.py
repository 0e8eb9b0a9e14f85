"""The user's server in a real container (E2E_BACKEND=kind): it runs as jovyan with the chart's
restricted settings, and the demo catalog, as shipped in crds/examples, starts there.

What the pod asks for is checked without containers (tests/unit/test_user_pod_security.py,
tests/integration/test_pod_security.py); here the kernel says what the process really got.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from userflows import CPU_SMALL, message_of, spawn, stop_server, wait_ready

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.backend(
        "kind",
        reason="needs real containers: the local node agent runs servers as processes of the stack's user, "
        "without mounts, seccomp or capabilities of their own",
    ),
]
REPO = Path(__file__).resolve().parents[2]


def _exec(cluster, pod: str, *argv: str):
    return cluster.kubectl("exec", "-n", cluster.namespace, pod, "--", *argv, check=False, timeout=60)


@pytest.fixture
def alice(hub, cluster):
    stop_server(hub, cluster, "alice")
    status, resp = spawn(hub, "alice", CPU_SMALL)
    assert status in (201, 202), message_of(resp)
    wait_ready(hub, "alice", timeout=180)
    yield "jupyter-alice"
    stop_server(hub, cluster, "alice")


def _status(cluster, pod: str) -> dict[str, str]:
    out = _exec(cluster, pod, "cat", "/proc/self/status").stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_the_server_runs_as_jovyan_without_privileges(cluster, alice):
    ids = _exec(cluster, alice, "id", "-u").stdout.strip(), _exec(cluster, alice, "id", "-g").stdout.strip()
    assert ids == ("1000", "100"), ids
    status = _status(cluster, alice)
    assert status["Seccomp"] == "2", "the RuntimeDefault seccomp filter is on"
    assert status["NoNewPrivs"] == "1", "no privilege escalation"
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, "every capability dropped"
    # the start wrapper's links were made without root
    assert _exec(cluster, alice, "test", "-L", "/home/jovyan/datasets").returncode == 0


def test_the_demo_catalog_starts_as_shipped(cluster, alice):
    """alice is in ml-team, which is granted `archive`: it is mounted into her data-science server too,
    so it must be a volume that exists, not a server that never answers."""
    shipped = {
        d["metadata"]["name"]: d["spec"]
        for d in yaml.safe_load_all((REPO / "crds" / "examples" / "datasets.yaml").read_text())
        if d and d.get("kind") == "Dataset"
    }
    live = json.loads(cluster.kubectl("get", "datasets", "-n", cluster.namespace, "-o", "json").stdout)
    for item in live["items"]:
        name = item["metadata"]["name"]
        if name in shipped:
            assert item["spec"] == shipped[name], f"dataset {name} differs from crds/examples/datasets.yaml"
    mounts = _exec(cluster, alice, "cat", "/proc/mounts").stdout
    assert " /datasets/archive " in mounts, mounts
    probe = _exec(cluster, alice, "touch", "/datasets/archive/.probe")
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr, (probe.stdout, probe.stderr)
