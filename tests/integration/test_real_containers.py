"""What only real containers can show (E2E_BACKEND=kind): volumes really mounted with their read-only
flags, a home folder that outlives its server, the memory limit enforced, the hub and proxy running as
non-root on read-only root filesystems, and the NetworkPolicies enforced by the node's policy agent.

On the local backend the node agent runs each server as a local process: it mounts no volume, enforces
no limit and has no network namespaces, so none of this can be observed there; the local suite checks
the pod specs that ask for it instead (test_e2e_browser.py, test_chart.py).
"""

from __future__ import annotations

import json

import pytest
from userflows import CPU_SMALL, message_of, pod_of, spawn, stop_server, wait_ready

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.backend(
        "kind",
        reason="needs real containers: the local node agent runs servers as processes, "
        "without mounts, limits or network namespaces",
    ),
]


def _exec(cluster, pod: str, *argv: str, container: str | None = None, timeout: float = 60):
    args = ["exec", "-n", cluster.namespace, pod]
    if container:
        args += ["-c", container]
    return cluster.kubectl(*args, "--", *argv, check=False, timeout=timeout)


def _py(cluster, pod: str, code: str, timeout: float = 60):
    return _exec(cluster, pod, "python3", "-c", code, timeout=timeout)


def _start(hub, cluster, user: str, options: dict = CPU_SMALL) -> str:
    stop_server(hub, cluster, user)
    status, resp = spawn(hub, user, options)
    assert status in (201, 202), message_of(resp)
    wait_ready(hub, user, timeout=180)
    return f"jupyter-{user}"


@pytest.fixture
def alice(hub, cluster):
    pod = _start(hub, cluster, "alice")
    yield pod
    stop_server(hub, cluster, "alice")


# Writes a probe file into each folder and reports what happened, as the notebook user sees it.
_WRITE_PROBE = """
import json, os
out = {}
for d in %s:
    try:
        with open(os.path.join(d, '.probe'), 'w') as f:
            f.write('x')
        os.remove(os.path.join(d, '.probe'))
        out[d] = 'ok'
    except OSError as e:
        out[d] = e.strerror
print(json.dumps(out))
"""


def test_volumes_are_mounted_at_their_paths_with_their_read_only_flags(cluster, alice):
    folders = [
        "/home/jovyan",
        "/project/data-science",
        "/datasets/team-data",
        "/datasets/training-set",
        "/datasets/notebooks-repo",
    ]
    r = _py(cluster, alice, _WRITE_PROBE % json.dumps(folders))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["/home/jovyan"] == "ok", "the home volume is writable by the notebook user"
    assert result["/project/data-science"] == "ok", "the group's project volume is writable"
    assert result["/datasets/team-data"] == "ok", "data-science holds ds:rw:team-data"
    assert result["/datasets/training-set"] == "Read-only file system"
    assert result["/datasets/notebooks-repo"] == "Read-only file system"
    mounts = _exec(cluster, alice, "cat", "/proc/mounts").stdout
    assert " /home/jovyan " in mounts and " /datasets/team-data " in mounts, mounts
    env = _exec(cluster, alice, "printenv", "PUBLIC_DATA_BUCKET").stdout.strip()
    assert env == "demo-bucket", "the env dataset reaches the server's environment"


def test_a_file_in_the_home_folder_survives_a_stop_and_a_start(hub, cluster):
    pod = _start(hub, cluster, "bob")
    try:
        r = _exec(cluster, pod, "sh", "-c", "echo kept-across-restarts > /home/jovyan/notes.txt")
        assert r.returncode == 0, r.stderr
        stop_server(hub, cluster, "bob")
        pod = _start(hub, cluster, "bob")
        r = _exec(cluster, pod, "cat", "/home/jovyan/notes.txt")
        assert r.stdout.strip() == "kept-across-restarts", (r.stdout, r.stderr)
    finally:
        stop_server(hub, cluster, "bob")


def test_memory_past_the_instance_types_limit_is_killed(cluster, alice):
    # cpu-small allows 1 GB: a process that touches 1.5 GB is killed by the kernel, the server lives on.
    r = _py(cluster, alice, "b = bytearray(1536 * 1024 * 1024)\nprint('survived')", timeout=120)
    assert "survived" not in r.stdout
    assert r.returncode == 137, (r.returncode, r.stderr)
    assert _py(cluster, alice, "print('alive')").stdout.strip() == "alive", "the server itself keeps running"


@pytest.mark.parametrize(
    "deployment,program",
    [
        ("hub", ["python3", "-c", "import os; print(os.getuid())"]),
        ("proxy", ["node", "-e", "console.log(process.getuid())"]),
    ],
)
def test_hub_and_proxy_run_as_non_root_on_read_only_root_filesystems(cluster, hub, deployment, program):
    pod = cluster.kubectl(
        "get",
        "pods",
        "-n",
        cluster.namespace,
        "-l",
        f"app.kubernetes.io/component={deployment}",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ).stdout
    assert pod, f"no {deployment} pod"
    uid = _exec(cluster, pod, *program)
    assert uid.returncode == 0 and uid.stdout.strip() not in ("", "0"), (uid.stdout, uid.stderr)
    touch = _exec(cluster, pod, "sh", "-c", "touch /probe-of-the-root-filesystem")
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr, (touch.returncode, touch.stderr)


# Tries a TCP connection and says what the notebook would see: the policy agent drops packets, so a
# blocked destination times out (a closed port would be refused at once).
# A policy enforcer drops (a timeout) or rejects (kube-router answers with ICMP unreachable, read
# as refused): both are "blocked"; the test shows each destination answering from an allowed place.
_CONNECT = """
import errno, json, socket, sys
out = {}
for host, port in json.loads(sys.argv[1]):
    s = socket.socket()
    s.settimeout(4)
    try:
        s.connect((host, port))
        out[f"{host}:{port}"] = "open"
    except socket.timeout:
        out[f"{host}:{port}"] = "blocked"
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
            out[f"{host}:{port}"] = "blocked"
            continue
        out[f"{host}:{port}"] = e.strerror or str(e)
    finally:
        s.close()
print(json.dumps(out))
"""
METADATA = "169.254.169.254"


def _connect(cluster, pod: str, targets: list[tuple[str, int]], namespace: str | None = None) -> dict:
    args = ["exec", "-n", namespace or cluster.namespace, pod, "--", "python3", "-c", _CONNECT, json.dumps(targets)]
    r = cluster.kubectl(*args, check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


METADATA_STANDIN = "primehub-metadata-standin"


@pytest.fixture
def metadata_endpoint(cluster):
    """A stand-in for the cloud metadata server: a small web server in its own container on kind's
    network, and 169.254.169.254:80 forwarded to it by the node, so that a pod's connection leaves the
    node as it would in a cloud."""
    from backends import kind
    from images.cache import docker

    docker("rm", "-f", METADATA_STANDIN, check=False)
    docker(
        "run",
        "-d",
        "--name",
        METADATA_STANDIN,
        "--network",
        "kind",
        "--entrypoint",
        "python3",
        pod_image(cluster),
        "-m",
        "http.server",
        "8775",
    )
    target = docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", METADATA_STANDIN
    ).stdout.strip()
    rule = [
        "PREROUTING",
        "-d",
        f"{METADATA}/32",
        "-p",
        "tcp",
        "--dport",
        "80",
        "-j",
        "DNAT",
        "--to-destination",
        f"{target}:8775",
    ]
    docker("exec", kind.NODE, "iptables", "-t", "nat", "-I", *rule)
    yield
    docker("exec", kind.NODE, "iptables", "-t", "nat", "-D", *rule, check=False)
    docker("rm", "-f", METADATA_STANDIN, check=False)


@pytest.fixture
def bystander(cluster):
    """A pod in a namespace without NetworkPolicies: what works without the policies."""
    ns = "netpol-control"
    cluster.kubectl("create", "namespace", ns, check=False)
    cluster.kubectl(
        "run",
        "bystander",
        "-n",
        ns,
        f"--image={pod_image(cluster)}",
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sleep",
        "600",
    )
    cluster.kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/bystander", "--timeout=120s", timeout=150)
    yield "bystander", ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def pod_image(cluster) -> str:
    """The demo notebook image (already on the node): it has Python for the probes."""
    from images import build

    return build.singleuser_tags()[0]


def test_network_policies_let_a_server_reach_the_hub_and_nothing_it_must_not(
    hub, cluster, alice, metadata_endpoint, bystander
):
    _start(hub, cluster, "bob")
    try:
        bob_ip = pod_of(cluster, "bob")["status"]["podIP"]
        seen = _connect(cluster, alice, [("hub", 8081), (bob_ip, 8888), ("proxy-api", 8001), (METADATA, 80)])
        assert seen["hub:8081"] == "open", "a server reaches the hub's API (its activity and auth calls)"
        assert seen[f"{bob_ip}:8888"] == "blocked", "but not another user's server"
        assert seen["proxy-api:8001"] == "blocked", "nor the proxy's API"
        assert seen[f"{METADATA}:80"] == "blocked", "nor the cloud metadata address"

        # The same destinations from where the policies allow them (or from where no policy applies):
        # each of them does answer, so the blocks above are the policies' doing.
        proxy_pod = cluster.kubectl(
            "get",
            "pods",
            "-n",
            cluster.namespace,
            "-l",
            "app.kubernetes.io/component=proxy",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ).stdout
        reach = _exec(
            cluster,
            proxy_pod,
            "node",
            "-e",
            f"require('net').connect(8888, '{bob_ip}', () => {{ console.log('open'); process.exit(0) }})"
            ".on('error', e => { console.log(e.code); process.exit(1) })",
        )
        assert reach.stdout.strip() == "open", "the proxy reaches bob's server"
        hub_pod = cluster.kubectl(
            "get",
            "pods",
            "-n",
            cluster.namespace,
            "-l",
            "app.kubernetes.io/component=hub",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ).stdout
        assert _connect(cluster, hub_pod, [("proxy-api", 8001)])["proxy-api:8001"] == "open"
        name, ns = bystander
        assert _connect(cluster, name, [(METADATA, 80)], namespace=ns)[f"{METADATA}:80"] == "open"
    finally:
        stop_server(hub, cluster, "bob")


def test_the_hub_image_holds_exactly_the_pinned_hub_packages(cluster):
    """The image the chart runs has what requirements-hub.txt pins (the suite's hub runs the same set)."""
    import re
    from pathlib import Path

    from images.cache import docker

    from images import build

    tag = build.chart_images()["hub"]
    frozen = docker("run", "--rm", "--entrypoint", "pip", tag, "freeze").stdout
    installed = {m[0].lower().replace("_", "-"): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", frozen, re.M)}
    pinned = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (Path(build.REPO) / "requirements-hub.txt").read_text(), re.M)
    assert pinned, "requirements-hub.txt pins nothing"
    for name, version in pinned:
        assert installed.get(name.lower().replace("_", "-")) == version, (
            f"{name}: image has {installed.get(name.lower())}"
        )
