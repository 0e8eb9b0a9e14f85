"""The foundation: the real control plane schedules onto the node agent's nodes, pods run and are
reachable, PVCs bind, the scheduler reports what cannot fit, and Keycloak hands out tokens."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid

import pytest


def _pod(name: str, command: list[str], resources: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"test": "stack"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": "local/python", "command": command, "resources": resources or {}}],
            **spec,
        },
    }


def _create(cluster, pod: dict) -> None:
    cluster.kubectl("apply", "-n", cluster.namespace, "-f", "-", input=json.dumps(pod))


def _get(cluster, name: str) -> dict | None:
    p = cluster.kubectl("get", "pod", name, "-n", cluster.namespace, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def _events(cluster, name: str) -> list[dict]:
    out = cluster.kubectl(
        "get", "events", "-n", cluster.namespace, "-o", "json", f"--field-selector=involvedObject.name={name}"
    )
    return json.loads(out.stdout)["items"]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_pod_is_scheduled_run_reached_and_deleted(cluster):
    name = _name("web")
    _create(
        cluster,
        _pod(
            name,
            ["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
            {"requests": {"cpu": "100m", "memory": "64Mi"}},
        ),
    )
    pod = cluster.wait(
        lambda: (p := _get(cluster, name)) and p["status"].get("phase") == "Running" and p, 60, f"pod {name} Running"
    )
    # The real scheduler bound it, to a node that tolerates nothing special: the CPU node.
    assert pod["spec"]["nodeName"] == "cpu-node"
    scheduled = [e for e in _events(cluster, name) if e["reason"] == "Scheduled"]
    assert scheduled and "cpu-node" in scheduled[0]["message"]
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.100.")

    def served():
        try:
            with urllib.request.urlopen(f"http://{ip}:8080/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    cluster.wait(served, 30, f"HTTP on {ip}:8080")
    cluster.kubectl("delete", "pod", name, "-n", cluster.namespace, "--wait=true", "--timeout=60s")
    assert _get(cluster, name) is None
    assert not served(), "the pod's process must stop with the pod"


def test_scheduler_reports_a_pod_no_node_can_take(cluster):
    name = _name("gpu-hog")
    _create(
        cluster,
        _pod(
            name,
            ["sleep", "600"],
            {"limits": {"nvidia.com/gpu": "8"}},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
    )
    try:
        ev = cluster.wait(
            lambda: [e for e in _events(cluster, name) if e["reason"] == "FailedScheduling"],
            30,
            "a FailedScheduling event",
        )
        assert "Insufficient nvidia.com/gpu" in ev[0]["message"]
        # events.k8s.io events carry the reporter in reportingComponent; core events in source
        assert "default-scheduler" in (ev[0].get("reportingComponent"), ev[0].get("source", {}).get("component"))
        assert not _get(cluster, name)["spec"].get("nodeName")
    finally:
        cluster.kubectl("delete", "pod", name, "-n", cluster.namespace, "--wait=false")


def test_gpu_pod_lands_on_the_gpu_node_only_with_toleration(cluster):
    untolerating = _name("gpu-no-tol")
    _create(cluster, _pod(untolerating, ["sleep", "600"], {"limits": {"nvidia.com/gpu": "1"}}))
    tolerating = _name("gpu-tol")
    _create(
        cluster,
        _pod(
            tolerating,
            ["sleep", "600"],
            {"limits": {"nvidia.com/gpu": "1"}},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            nodeSelector={"accelerator": "nvidia-tesla"},
        ),
    )
    try:
        pod = cluster.wait(
            lambda: (p := _get(cluster, tolerating)) and p["status"].get("phase") == "Running" and p,
            60,
            "the tolerating GPU pod Running",
        )
        assert pod["spec"]["nodeName"] == "gpu-node"
        ev = cluster.wait(
            lambda: [e for e in _events(cluster, untolerating) if e["reason"] == "FailedScheduling"],
            30,
            "FailedScheduling for the pod without toleration",
        )
        assert "untolerated taint" in ev[0]["message"]
    finally:
        cluster.kubectl(
            "delete", "pod", untolerating, tolerating, "-n", cluster.namespace, "--wait=true", "--timeout=60s"
        )


def test_missing_command_is_reported_like_kubelet(cluster):
    name = _name("broken")
    _create(cluster, _pod(name, ["no-such-command-here"]))
    try:

        def waiting():
            p = _get(cluster, name)
            st = (p or {}).get("status", {}).get("containerStatuses") or []
            return st and st[0]["state"].get("waiting")

        w = cluster.wait(waiting, 60, "a waiting container status")
        assert w["reason"] == "RunContainerError"
        assert "no-such-command-here" in w["message"]
    finally:
        cluster.kubectl("delete", "pod", name, "-n", cluster.namespace, "--wait=true", "--timeout=60s")


def test_failing_process_ends_failed_with_exit_code(cluster):
    name = _name("exit3")
    _create(cluster, _pod(name, ["python3", "-c", "import sys; sys.exit(3)"]))
    try:
        pod = cluster.wait(
            lambda: (p := _get(cluster, name)) and p["status"].get("phase") == "Failed" and p, 60, "phase Failed"
        )
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    finally:
        cluster.kubectl("delete", "pod", name, "-n", cluster.namespace, "--wait=true", "--timeout=60s")


def test_pvc_binds_through_the_default_storage_class(cluster):
    name = _name("claim")
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.kubectl("apply", "-n", cluster.namespace, "-f", "-", input=json.dumps(pvc))
    try:

        def bound():
            out = cluster.kubectl("get", "pvc", name, "-n", cluster.namespace, "-o", "json")
            return json.loads(out.stdout)["status"].get("phase") == "Bound"

        cluster.wait(bound, 60, f"PVC {name} Bound")
    finally:
        cluster.kubectl("delete", "pvc", name, "-n", cluster.namespace, "--wait=false")


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_keycloak_issues_a_token_for_a_demo_user(keycloak):
    tok = keycloak.password_token("alice", "alice-pw")
    claims = _claims(tok["access_token"])
    assert claims["preferred_username"] == "alice"
    assert tok["refresh_token"] and tok["id_token"]


def test_keycloak_refuses_a_wrong_password(keycloak):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as e:
        keycloak.password_token("alice", "not-her-password")
    assert e.value.code == 401
