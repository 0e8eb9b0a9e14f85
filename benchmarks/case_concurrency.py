"""Case 3: N users spawn at once through the REST API, on the real scheduler and node agent.

Timeline from the moment the requests are released (all threads wait at a barrier):
every pod exists (our watch sees it), every pod Running (node agent reported it), every server
ready in the hub (polled every 0.5 s). Meanwhile the bench hub's loop-stall probe records how late
a 10 ms sleep wakes up. With a group project quota that fits k < N servers, exactly k pods may exist.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

import requests

from primehub_hub.quotas import primehub_label

from . import fixtures
from .measure import calls_of, merged_calls, our_window, summary
from .stack import HUB_API, PROXY_API, BenchHub, Kube, Watch, log


def _burst(hub: BenchHub, users: list[str], body: dict) -> tuple[float, dict]:
    barrier = threading.Barrier(len(users) + 1)
    results = {}

    def one(user):
        barrier.wait()
        t = time.time()
        try:
            r = requests.post(
                f"{HUB_API}/users/{user}/server",
                json=body,
                headers={"Authorization": f"token {hub.token}"},
                timeout=120,
            )
            results[user] = (r.status_code, time.time() - t)
        except requests.RequestException as e:
            results[user] = (str(e), time.time() - t)

    with concurrent.futures.ThreadPoolExecutor(len(users)) as pool:
        futures = [pool.submit(one, u) for u in users]
        barrier.wait()
        t0 = time.time()
        for f in futures:
            f.result()
    return t0, results


def _settle(hub: BenchHub, users: list[str], t0: float, timeout: float) -> dict:
    """Wait until no server of `users` is pending. Readiness times come from the proxy's routing
    table (the hub adds a user's route once the server answered), polled every 0.2 s at the
    proxy, so that watching does not load the hub; the hub itself is asked every 2 s."""
    wanted = {f"/user/{u}": u for u in users}
    ready_at: dict[str, float] = {}
    proxy = requests.Session()
    proxy.headers["Authorization"] = f"token {hub.proxy_token}"
    deadline = time.monotonic() + timeout
    next_hub = 0.0
    while time.monotonic() < deadline:
        routes = proxy.get(f"{PROXY_API}/api/routes", timeout=30).json()
        now = time.time()
        for route in routes:
            route = route.rstrip("/")
            if route in wanted and wanted[route] not in ready_at:
                ready_at[wanted[route]] = now - t0
        if time.monotonic() >= next_hub:
            next_hub = time.monotonic() + 2
            servers = {
                u["name"]: (u.get("servers") or {}).get("") for u in hub.active_users() if u["name"] in set(users)
            }
            pending = [n for n, srv in servers.items() if srv and not srv.get("ready")]
            ready = [n for n, srv in servers.items() if srv and srv.get("ready")]
            if not pending:
                return {
                    "ready": len(ready),
                    "not_running": len(users) - len(ready),
                    "all_ready_s": round(max(ready_at.values()), 2) if len(ready_at) == len(users) else None,
                    "ready_s": summary(list(ready_at.values())),
                    "settled_s": round(time.time() - t0, 2),
                }
        time.sleep(0.2)
    return {"ready": None, "timeout": True, "settled_s": None, "ready_s": summary(list(ready_at.values()))}


def run(
    hub: BenchHub,
    kube: Kube,
    watch: Watch,
    variant: str,
    users: list[str],
    body: dict,
    group_label: str,
    expect_pods: int | None = None,
    timeout: float = 300,
) -> dict:
    log(
        f"concurrency ({variant}): {len(users)} users spawn at once"
        + (f", project quota fits {expect_pods}" if expect_pods is not None else "")
    )
    hub.ensure_users(users)
    watch.reset()
    since = hub.last_id()
    hub.stats_action("reset-lag")
    t0, posted = _burst(hub, users, body)
    settled = _settle(hub, users, t0, timeout)
    stats = hub.stats(since)
    pods = {k: v for k, v in watch.snapshot().items() if v.get("user") in set(users)}
    live = kube.pods(f"primehub.io/group={primehub_label(group_label)}")
    records = [
        r
        for r in stats["records"]
        if r["method"] == "POST" and r["path"].startswith("/hub/api/users/") and r["path"].endswith("/server")
    ]
    spawned = [r for r in records if "pod_create" in (r.get("marks") or {})]
    lock_wait = [
        r["marks"]["quota_list"] - r["marks"]["create_request"]
        for r in spawned
        if "quota_list" in r["marks"] and "create_request" in r["marks"]
    ]
    first = [v["first_seen"] - t0 for v in pods.values()]
    running = [v["running"] - t0 for v in pods.values() if "running" in v]
    result = {
        "variant": variant,
        "users": len(users),
        "post_status": _count_status(posted),
        "post_s": summary([d for _, d in posted.values()]),
        "pods_created": len(pods),
        "pods_alive_after": len(live),
        "pods_running": len(running),
        "all_pods_exist_s": round(max(first), 2) if first else None,
        "all_pods_running_s": round(max(running), 2) if len(running) == len(pods) and running else None,
        "pods_exist_s": summary(first),
        "pods_running_s": summary(running),
        **settled,
        "loop_stall_max_ms": round(stats["lag"]["max_ms"], 1),
        "loop_stalls_over_50ms": stats["lag"]["over_50"],
        "loop_stalls_over_100ms": stats["lag"]["over_100"],
        "loop_samples": stats["lag"]["samples"],
        "loop_stall_max_cpu_ms": round(stats["lag"]["max_cpu_ms"], 1),
        "loop_blocked_max_ms": round(stats["lag"]["max_blocked_ms"], 1),
        "loop_blocked_over_100ms": stats["lag"]["blocked_over_100"],
        "stall_stacks": stats.get("stall_stacks"),
        "stall_frames": stats.get("stall_frames"),
        "stall_samples": stats["lag"].get("stall_samples"),
        "stall_samples_ours": stats["lag"].get("stall_samples_ours"),
        "start_to_pod_create_ms": summary([our_window(r) for r in spawned]),
        "quota_lock_wait_ms": summary(lock_wait),
        "auth_refresh_ms": summary([r["timings"].get("refresh_user") for r in records]),
        # the part of the refresh spent reading the user's groups (Keycloak or the realm view)
        "auth_refresh_entitlements_ms": summary([r["timings"].get("keycloak_user_info") for r in records]),
        "keycloak_calls": sum(calls_of(r, "keycloak") for r in records),
        "k8s_calls": sum(calls_of(r, "k8s") for r in records),
        "calls": merged_calls(records),
        "member_view": stats.get("member_view"),
    }
    if expect_pods is not None:
        result["quota_expected_pods"] = expect_pods
        result["quota_held"] = len(pods) == expect_pods and len(live) == expect_pods
    return result


def _count_status(posted: dict) -> dict:
    out: dict = {}
    for status, _ in posted.values():
        out[str(status)] = out.get(str(status), 0) + 1
    return out


def users_for(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def body_for(variant: str, group: str) -> dict:
    if variant == "plain":
        return {"profile": group}
    return {"group": group, "instance_type": fixtures.TINY_IT, "image": fixtures.TINY_IMAGE}
