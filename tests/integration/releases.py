"""The chart's release on the kind backend, for tests that change it as an operator would (helm)."""

from __future__ import annotations

import json
import subprocess

from localstack import common

CHART_NAME = "primehub-jupyterhub"


def helm(cluster, *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    """helm on the test cluster's kubeconfig and namespace."""
    return subprocess.run(
        [str(common.helm_path()), f"--kubeconfig={cluster.kubeconfig}", "-n", cluster.namespace, *args],
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def release_name(cluster) -> str:
    """The backend installs the chart once into the namespace; its release name is read, not assumed."""
    r = helm(cluster, "list", "-o", "json")
    assert r.returncode == 0, r.stderr
    names = [rel["name"] for rel in json.loads(r.stdout) if rel["chart"].startswith(f"{CHART_NAME}-")]
    assert len(names) == 1, f"expected one release of {CHART_NAME}, got {names}"
    return names[0]
