"""The chart over a release's life, rendered by the real helm without a cluster: the idle culler
reaches the hub from the first start, an upgrade that changes the database keeps the old one's
volume, `helm uninstall` stops user servers and keeps data, and the small-cluster example fits
a 2-core node.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from test_chart_render import CHART, CHART_REPO, apply_chart_config, by_kind, one, render

MINIMAL = str(CHART / "examples/minimal.yaml")


def culler_command(docs: list[dict]) -> list[str]:
    services = apply_chart_config(docs).JupyterHub.services.get_value([])
    (culler,) = [s for s in services if s["name"] == "jupyterhub-idle-culler"]
    return culler["command"]


# --- the idle culler -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "api_url"),
    [("/", "http://127.0.0.1:8081/hub/api"), ("/jh", "http://127.0.0.1:8081/jh/hub/api")],
)
def test_the_culler_reaches_the_hub_over_loopback_not_through_the_service(base_url, api_url):
    # The hub Service routes only to a Ready pod, and the culler's first pass runs before the hub
    # pod is Ready: through the Service every hub start lost that pass to a ConnectionRefusedError.
    command = culler_command(render("-f", MINIMAL, "--set", f"hub.baseUrl={base_url}"))
    urls = [a for a in command if a.startswith("--url=")]
    assert urls == [f"--url={api_url}"], command


def test_the_pinned_culler_takes_the_url_option():
    # requirements-hub.txt pins jupyterhub-idle-culler (the default cull.enabled needs it); its
    # command line must know --url, or the hub's managed service would exit at start.
    assert re.search(r"^jupyterhub-idle-culler==", (CHART_REPO / "requirements-hub.txt").read_text(), re.M)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyterhub_idle_culler", "--help"], text=True, capture_output=True, timeout=60
    )
    assert re.search(r"^\s+--url\s", proc.stdout + proc.stderr, re.M), proc.stdout + proc.stderr


# --- the hub database's volume ------------------------------------------------------------------------


def test_helm_never_deletes_the_hub_database_volume():
    # An upgrade to another hub.db.type stops rendering the PVC; without "keep" Helm deletes it
    # (and with a Delete reclaim policy the database). Helm reads the annotation on uninstall too.
    pvc = one(render("-f", MINIMAL), "PersistentVolumeClaim", "hub-db-dir")
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    # Helm's ownership label stays on the kept PVC, which is what lets a later release adopt it.
    assert pvc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    given = render("-f", MINIMAL, "--set-json", 'hub.db.pvc.annotations={"backup.example.com/schedule":"daily"}')
    assert one(given, "PersistentVolumeClaim", "hub-db-dir")["metadata"]["annotations"] == {
        "backup.example.com/schedule": "daily",
        "helm.sh/resource-policy": "keep",
    }
    # An operator who wants Helm's default back says so explicitly.
    opted_out = render("-f", MINIMAL, "--set-json", 'hub.db.pvc.annotations={"helm.sh/resource-policy":"delete"}')
    pvc = one(opted_out, "PersistentVolumeClaim", "hub-db-dir")
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "delete"}
    assert not by_kind(render("-f", MINIMAL, "--set", "hub.db.type=sqlite-memory"), "PersistentVolumeClaim")
