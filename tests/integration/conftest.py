"""Session fixtures for the servers of the stack: `cluster`, `keycloak`, `hub`, `browser`.

E2E_BACKEND=local (the default) starts the real servers of the local stack on loopback (the same
code as `make up`), reusing any that are already running and stopping, at the end, only those this
session started. E2E_BACKEND=kind runs real containers: pytest-kind's KindCluster, testcontainers'
KeycloakContainer and the Helm chart with its images (tests/integration/backends/kind.py).

A server that cannot start fails the tests that need it, with its log; nothing is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(Path(__file__).parent))

from stack import Cluster, Hub, Keycloak  # noqa: E402

BACKEND = os.environ.get("E2E_BACKEND", "local")


def _log_dir() -> Path:
    if BACKEND == "local":
        from localstack import common

        return common.LOG_DIR
    return REPO / "test-artifacts" / "logs"


def pytest_collection_modifyitems(config, items):
    # A test made for one backend is left out on the other here, before any server is started, with
    # its written reason. Nothing else skips: a server that cannot start fails the tests needing it.
    for item in items:
        marker = item.get_closest_marker("backend")
        if marker is not None and marker.args[0] != BACKEND:
            reason = marker.kwargs["reason"]
            item.add_marker(pytest.mark.skip(reason=f"runs on E2E_BACKEND={marker.args[0]} only: {reason}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Every failing test says where the servers' logs are.
    if call.excinfo is not None and "integration" in str(item.fspath):
        item.add_report_section(call.when, "stack logs", f"server logs are in {_log_dir()}")
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    if rep.failed and BACKEND == "local":
        _dump_hub_tasks()
    return rep


def _dump_hub_tasks() -> None:
    """JupyterHub logs every thread's and asyncio task's stack on SIGUSR1: where a stuck spawn waits."""
    import signal

    from localstack import common

    pid = common.pid_of("hub")
    if pid:
        os.kill(pid, signal.SIGUSR1)


class _Started:
    """Names of the local servers this session started, so teardown stops only those."""

    def __init__(self):
        self.names: list[str] = []

    def run(self, names: list[str], fn):
        from localstack import common

        before = {n for n in names if common.pid_of(n)}
        try:
            fn()
        except common.StackError as e:
            pytest.fail(f"the local stack could not start: {e}", pytrace=False)
        self.names += [n for n in names if n not in before and common.pid_of(n)]

    def stop_all(self):
        from localstack import common

        for n in reversed(self.names):
            common.stop(n, grace=20)


@pytest.fixture(scope="session")
def _started():
    s = _Started()
    yield s
    if BACKEND == "kind":
        from backends import kind

        kind.teardown()
    elif os.environ.get("PRIMEHUB_KEEP_STACK") != "1":
        s.stop_all()


def _kind(part: str, *args):
    """One part of the kind backend; a part that cannot start fails the tests that need it."""
    from backends import kind

    try:
        return getattr(kind, part)(*args)
    except (kind.BackendError, RuntimeError, OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"the kind backend could not start its {part}: {e}", pytrace=False)


@pytest.fixture(autouse=True)
def _kind_logs_on_failure(request):
    """On the kind backend, a failing test leaves the hub's, proxy's and Keycloak's logs behind."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if BACKEND == "kind" and rep is not None and rep.failed and "cluster" in request.fixturenames:
        from backends import kind

        kind.save_logs(request.getfixturevalue("cluster"))


@pytest.fixture(scope="session")
def cluster(_started) -> Cluster:
    if BACKEND == "kind":
        return _kind("cluster")
    from localstack import cluster as lc
    from localstack import nodes

    _started.run(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"], lc.up)
    _started.run(["node-agent"], nodes.start)
    _started.run([], lc.apply_catalog)
    from localstack import common

    def restart_apiserver():
        common.stop("kube-apiserver")
        lc.start_apiserver()

    return Cluster(
        kubeconfig=str(lc.KUBECONFIG),
        namespace=lc.NAMESPACE,
        api_url=lc.API_URL,
        kubectl_bin=str(lc.bin_path("kubectl")),
        log_dir=common.LOG_DIR,
        restart_apiserver=restart_apiserver,
    )


@pytest.fixture(scope="session")
def keycloak(_started) -> Keycloak:
    if BACKEND == "kind":
        return _kind("keycloak")
    from localstack import keycloak as lk

    _started.run(["keycloak"], lk.start)
    return Keycloak(
        url=lk.URL,
        browser_url=f"http://localhost:{lk.PORT}",
        admin_user=lk.ADMIN_USER,
        admin_password=lk.ADMIN_PASSWORD,
        realm=lk.REALM,
        realm_file=lk.REALM_FILE,
        stop=lk.stop,
        start=lk.start,
    )


@pytest.fixture(scope="session")
def hub(_started, cluster, keycloak) -> Hub:
    if BACKEND == "kind":
        return _kind("hub", cluster, keycloak)
    from localstack import common
    from localstack import hub as lh

    _started.run(["hub"], lh.start)

    def restart():
        lh.stop()
        lh.start()

    return Hub(url=lh.URL, api_url=lh.API_URL, api_token=lh.admin_token(), log_dir=common.LOG_DIR, restart=restart)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.fail(f"{chromium} is missing: run `make tools` (installs Debian's chromium)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The helm built by `make tools` (or $HELM)."""
    from localstack import common

    path = str(common.helm_path())
    if not Path(path).exists():
        pytest.fail(f"{path} is missing: run `make tools`", pytrace=False)
    return path
