"""What the end-to-end tests do to the hub and the cluster, shared by the e2e test files."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import urllib.request

# The demo catalog's everyday launch: alice and bob are in data-science, which grants both.
CPU_SMALL = {"group": "data-science", "instance_type": "cpu-small", "image": "base-notebook"}


def pod_of(cluster, user: str) -> dict | None:
    p = cluster.kubectl("get", "pod", f"jupyter-{user}", "-n", cluster.namespace, "-o", "json", check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def primehub_label(name: str) -> str:
    """The pods' primehub.io/user and primehub.io/group value, as PrimeHub escaped names."""
    import escapism

    return "escaped-" + escapism.escape(name, safe=set("abcdefghijklmnopqrstuvwxyz0123456789"), escape_char="-").lower()


def pods_of_group(cluster, group: str) -> list[dict]:
    out = cluster.kubectl(
        "get", "pods", "-n", cluster.namespace, "-o", "json", "-l", f"primehub.io/group={primehub_label(group)}"
    )
    return [p for p in json.loads(out.stdout)["items"] if not p["metadata"].get("deletionTimestamp")]


def ensure_user(hub, name: str) -> None:
    status, _ = hub.api("POST", f"/users/{name}")
    assert status in (201, 409), f"could not create hub user {name}: {status}"


def stop_server(hub, cluster, user: str) -> None:
    # (JupyterHub answers 500 to stopping the server of a user it does not know.)
    if hub.api("GET", f"/users/{user}")[0] != 404:
        status, body = hub.api("DELETE", f"/users/{user}/server")
        assert status in (202, 204, 400, 404), f"stopping {user}: {status} {body}"
        cluster.wait(
            lambda: not (hub.api("GET", f"/users/{user}")[1] or {}).get("servers"),
            60,
            f"{user}'s server gone from the hub",
        )
    if pod_of(cluster, user) is not None:
        # A pod this hub does not run was left by a hub with another database: `make test` and
        # `make test-next` (JupyterHub 6 migrates its database) keep one each.
        cluster.kubectl("delete", "pod", f"jupyter-{user}", "-n", cluster.namespace, "--wait=false", check=False)
    cluster.wait(lambda: pod_of(cluster, user) is None, 60, f"pod of {user} removed")


def servers_stopped(hub, cluster):
    """The body of a test file's `clean` fixture: yields `use(*names)`, which stops those users'
    servers now and again when the test ends, so a test starts and leaves them stopped."""
    users: list[str] = []

    def use(*names):
        for n in names:
            stop_server(hub, cluster, n)
            users.append(n)

    yield use
    for n in users:
        stop_server(hub, cluster, n)


def spawn(hub, user: str, options: dict) -> tuple[int, object]:
    ensure_user(hub, user)
    return hub.api("POST", f"/users/{user}/server", options)


def wait_ready(hub, user: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, info = hub.api("GET", f"/users/{user}")
        server = (info or {}).get("servers", {}).get("")
        if server and server.get("ready"):
            return server
        if not server or (server.get("pending") is None and not server.get("ready")):
            if info and not info.get("servers"):
                raise AssertionError(f"{user}'s server stopped while starting (hub log: {hub.log_dir})")
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server not ready after {timeout}s (logs: {hub.log_dir})")


def progress_until_done(hub, user: str, timeout: float = 300) -> list[dict]:
    """The spawn's progress events as the start page reads them, up to the ready or failed one."""
    req = urllib.request.Request(
        f"{hub.api_url}/users/{user}/server/progress",
        headers={"Authorization": f"token {hub.api_token}", "Accept": "text/event-stream"},
    )
    seen = []
    with urllib.request.urlopen(req, timeout=timeout) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            event = json.loads(line[len("data:") :])
            seen.append(event)
            if event.get("failed") or event.get("ready"):
                break
    return seen


def message_of(body) -> str:
    if isinstance(body, dict):
        return str(body.get("message", body))
    return str(body)


def container_env(pod: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}


def mounts(pod: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in pod["spec"]["containers"][0].get("volumeMounts", [])}


def volumes(pod: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod["spec"].get("volumes", [])}


GiB = 1024**3
_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": GiB, "Ti": 1024**4, "k": 10**3, "M": 10**6, "G": 10**9, "m": 0.001}


def quantity(q) -> float:
    """A Kubernetes quantity as a number (bytes, cores)."""
    q = str(q)
    for unit in sorted(_UNITS, key=len, reverse=True):
        if q.endswith(unit):
            return float(q[: -len(unit)]) * _UNITS[unit]
    return float(q)


def quantities(resources: dict) -> dict[str, float]:
    return {k: quantity(v) for k, v in resources.items()}


def run_coroutine(coro):
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop running
    in the test's thread for the whole session."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
