"""Case 7: a thousand running servers on one hub.

The same measurements with `base` (10) and with N (1,000; --quick 100) servers running on a fresh
bench hub of our own:
- the warm options form and one spawn's overhead, exactly as cases 1 and 2 measure them (browser
  flow), for `bench-srv-probe`, a user in case 1's 20 groups and in the servers' group (the form
  shows that group's usage: every running server);
- the hub's resident memory (VmRSS of its process, and of the proxy it started), both while running
  and in a freshly restarted hub that has found every server again; the per-server figure is the
  difference between N and `base` divided by the servers in between;
- a hub restart: the hub process stopped (SIGTERM; servers are left running, as JupyterHub does with
  cleanup_servers off) and started on the same database, timed until its API answers, until every
  server is ready again (JupyterHub polls each spawner and checks its URL answers before it marks
  it ready) and until the new proxy has every route back.

The servers belong to N users `bench-srv-u0000...`, each with one server, as on a real platform (one
user with N named servers would skip the per-user part of the hub's memory). Their Keycloak users
are made by partial imports of 50 (no passwords, so no password hashing); their first spawns go
through the REST API, `batch` at a time. Their instance type selects the bench's own extra nodes
(benchnodes.py: another node agent, several nodes of 110 pods) and the pods carry the stand-in
annotation, so the agent answers for each server on its pod IP instead of running a process
(scripts/localstack/standin.py). The probe's own spawns use case 1's groups and run on the stack's
nodes, as in case 2.
"""

from __future__ import annotations

import concurrent.futures
import time
import traceback

import requests

from . import case_form, case_spawn, fixtures
from .benchnodes import NODE_LABEL, TOLERATION, BenchNodes, node_count
from .measure import summary
from .stack import NAMESPACE, PROXY_API, BenchHub, Kube, Realm, browser_login, log

PREFIX = "bench-srv-"
GROUP = f"{PREFIX}servers"
INSTANCE_TYPE = f"{PREFIX}tiny"
PROBE = f"{PREFIX}probe"
TAG = "srv"  # fixture label of the case's custom resources


def owners(n: int) -> list[str]:
    return [f"{PREFIX}u{i:04d}" for i in range(n)]


def instance_type() -> dict:
    return {
        "apiVersion": "primehub.io/v1alpha1",
        "kind": "InstanceType",
        "metadata": {"name": INSTANCE_TYPE, "namespace": NAMESPACE, "labels": {fixtures.LABEL: TAG}},
        "spec": {
            "displayName": "Bench servers (case 7)",
            "limits": {"cpu": fixtures.TINY_CPU, "memory": fixtures.TINY_MEMORY},
            "nodeSelector": {NODE_LABEL: "true"},
            "tolerations": [dict(TOLERATION)],
        },
    }


def spawn_body() -> dict:
    return {"group": GROUP, "instance_type": INSTANCE_TYPE, "image": fixtures.TINY_IMAGE}


def run(hub: BenchHub, kube: Kube, realm: Realm, cfg, shape_groups: list[str], choices: list) -> dict:
    n = cfg.servers
    base = min(cfg.servers_base, n)
    names = owners(n)
    nodes = BenchNodes(kube, node_count(n))
    out: dict = {"servers": n, "base": base, "nodes": nodes.count}
    log(f"servers: {n} servers (measured at {base} and {n}) on {nodes.count} bench nodes; setting up")
    try:
        out["keycloak_setup_s"] = round(
            realm.import_fixture(
                {GROUP: [f"it:{INSTANCE_TYPE}", f"img:{fixtures.TINY_IMAGE}"]},
                [{"username": PROBE, "groups": [*shape_groups, GROUP], "password": True}]
                + [{"username": u, "groups": [GROUP]} for u in names],
            ),
            1,
        )
        kube.create_objects([instance_type()])
        out["nodes_ready_s"] = nodes.start()
        log(f"servers: bench nodes Ready in {out['nodes_ready_s']} s; starting the case's hub (log {hub.log_path})")
        hub.start()
        hub.ensure_users(names)
        session = browser_login(PROBE)
        out["spawn_base"] = spawn_all(hub, names[:base], cfg.servers_batch, already=0)
        out["at_base"] = measure(hub, nodes, session, choices, cfg, base)
        out["restart_base"] = restart(hub, base)
        out["spawn_rest"] = spawn_all(hub, names[base:], cfg.servers_batch, already=base)
        out["pods_per_node"] = nodes.pods_per_node()
        out["at_n"] = measure(hub, nodes, session, choices, cfg, n)
        out["restart_n"] = restart(hub, n)
        _log_summary(out)
    except Exception as e:
        # what was measured before the failure stays in the results, with the reason
        log(f"servers: failed: {e!r}")
        traceback.print_exc()
        out["error"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        log("servers: cleaning up (the case's hub, bench pods, bench nodes, its Keycloak users)")
        for what, step in (
            ("stopping the hub", hub.stop),
            ("deleting the bench pods", kube.delete_all_pods),
            ("waiting for the pods to go", lambda: kube.wait_no_pods(300)),
            ("removing the bench nodes", nodes.stop),
            ("deleting the case's instance type", lambda: kube.delete_objects(TAG)),
            ("removing its Keycloak users and group", lambda: realm.purge(PREFIX, client=False)),
        ):
            try:
                step()
            except Exception as e:  # every step is tried: one failure must not leave the rest behind
                log(f"servers: cleanup: {what} failed: {e!r}")
    return out


# --- spawning ----------------------------------------------------------------------------


def spawn_all(hub: BenchHub, users: list[str], batch: int, already: int, timeout: float = 300) -> dict:
    """First spawns of `users` through the REST API, `batch` at a time, each batch until no server
    is pending. Servers that fail are counted (and named); too many fail the case."""
    log(f"servers: spawning {len(users)} servers, {batch} at a time ({already} already running)")
    t0 = time.monotonic()
    batch_s, failed = [], []
    for i in range(0, len(users), batch):
        chunk = users[i : i + batch]
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda u: _post_spawn(hub, u), chunk))
        failed += [f"{u}: {a}" for u, a in zip(chunk, answers) if a is not None]
        expected = already + i + len(chunk) - len(failed)
        counts = _wait_settled(hub, expected, timeout)
        if counts["ready"] < expected:
            failed += _not_ready(hub, chunk)
        batch_s.append(time.monotonic() - t)
        log(
            f"servers: {counts['ready']} of {already + len(users)} ready "
            f"({batch_s[-1]:.1f} s for the last {len(chunk)}; {len(failed)} failed so far)"
        )
        if len(failed) > max(3, len(users) // 50):
            raise RuntimeError(
                f"{len(failed)} of {i + len(chunk)} spawns failed, e.g. {failed[:2]}; see {hub.log_path} "
                f"(last error: {hub.last_error(PREFIX)})"
            )
    return {
        "spawned": len(users),
        "seconds": round(time.monotonic() - t0, 1),
        "batch": batch,
        "batch_s": summary(batch_s),
        "failed": len(failed),
        "failures": failed[:5],
    }


def _post_spawn(hub: BenchHub, user: str) -> str | None:
    """Start `user`'s server; None when the hub took the request, else what it answered."""
    try:
        r = hub.api("POST", f"/users/{user}/server", spawn_body(), timeout=120)
    except requests.RequestException as e:
        return f"{type(e).__name__}: {e}"[:200]
    return None if r.status_code in (201, 202) else f"{r.status_code} {r.text[:150]}"


def _wait_settled(hub: BenchHub, expected: int, timeout: float) -> dict:
    """Until no server is pending (and at least `expected` are ready, or the pending ones ended)."""
    deadline = time.monotonic() + timeout
    counts = {"active": None, "ready": 0, "pending": None}
    while time.monotonic() < deadline:
        try:
            counts = hub.spawner_counts()
        except requests.RequestException as e:  # a hub busy with a batch may miss a poll
            log(f"servers: asking the hub for its servers failed ({e}); asking again")
        if counts["pending"] == 0:
            return counts
        time.sleep(0.5)
    log(
        f"servers: still {counts['pending']} pending after {timeout:.0f} s ({counts['ready']} ready, {expected} expected)"
    )
    return counts


def _not_ready(hub: BenchHub, users: list[str]) -> list[str]:
    ready = {u["name"] for u in hub.active_users() if ((u.get("servers") or {}).get("") or {}).get("ready")}
    missing = [u for u in users if u not in ready]
    # the hub's reason for the first few (each look reads the whole hub log)
    return [f"{u}: not ready ({hub.last_error(u) if i < 3 else 'see the hub log'})" for i, u in enumerate(missing)]


# --- measuring -----------------------------------------------------------------------------


def measure(hub: BenchHub, nodes: BenchNodes, session, choices: list, cfg, running: int) -> dict:
    """Memory, then the warm form and one spawn at a time, as cases 1 and 2 measure them."""
    time.sleep(2)  # the last batch's readiness checks and proxy updates are done
    counts = hub.spawner_counts()
    rss = hub.rss_mib()
    log(f"servers: {counts['ready']} running; hub {rss['hub']} MiB, proxy {rss['proxy']} MiB; form and spawns")
    since = hub.last_id()
    hub.stats_action("reset-lag")
    before = hub.stats(since)
    lists_before, t0 = before.get("relists") or {}, time.monotonic()
    form = case_form.run(hub, session, "primehub", cfg.servers_renders)
    spawn = case_spawn.run_browser(hub, session, "primehub", PROBE, choices, cfg.servers_spawns)
    stats = hub.stats(since)
    window_s = time.monotonic() - t0
    log(
        f"servers: with {running} running: warm form p50 {(form.get('server_ms_warm') or {}).get('p50')} ms, "
        f"spawn overhead p50 {(spawn.get('ours_ms') or {}).get('p50')} ms"
    )
    return {
        "running": running,
        "counts": counts,
        "rss_mib": rss,
        "agent_rss_mib": nodes.rss_mib(),
        "form": form,
        "spawn": spawn,
        "loop_stall_max_ms": round(stats["lag"]["max_ms"], 1),
        "gc": {k: round(stats["lag"].get(k) or 0, 1) for k in ("gc_ms", "gc_max_ms", "gc_full", "gc_full_max_ms")},
        "loop_blocked_max_ms": round(stats["lag"]["max_blocked_ms"], 1),
        "stall_frames": stats.get("stall_frames"),
        # full lists of the pods and events the hub's reflectors read meanwhile (watch.py)
        "relists": {
            k: v - (lists_before.get(k) or 0) for k, v in (stats.get("relists") or {}).items() if v is not None
        },
        "window_s": round(window_s, 1),
        # pods and events the hub's reflectors held at the end (what an O(namespace) read costs)
        "held": stats.get("held"),
        # every request the hub made to Keycloak meanwhile (the probe's own and the background ones)
        "keycloak_requests": (stats.get("totals") or {}).get("keycloak", 0)
        - (before.get("totals") or {}).get("keycloak", 0),
    }


def restart(hub: BenchHub, running: int, timeout: float | None = None) -> dict:
    """Stop the hub process and start it on the same database; time until it has every server back."""
    timeout = timeout or 120 + running * 0.5
    log(f"servers: restarting the hub with {running} servers running")
    hub.stop()
    hub.start(fresh=False)
    t0 = hub.started_at  # the new hub process's start
    api_up = time.monotonic() - t0
    proxy = requests.Session()
    proxy.headers["Authorization"] = f"token {hub.proxy_token}"
    ready_s = routes_s = None
    counts, routes = {}, 0
    next_log = time.monotonic() + 5
    while time.monotonic() - t0 < timeout and (ready_s is None or routes_s is None):
        try:
            counts = hub.spawner_counts()
            if ready_s is None and counts["ready"] >= running and counts["pending"] == 0:
                ready_s = time.monotonic() - t0
            routes = sum(
                1 for r in proxy.get(f"{PROXY_API}/api/routes", timeout=30).json() if r.startswith(f"/user/{PREFIX}u")
            )
            if routes_s is None and routes >= running:
                routes_s = time.monotonic() - t0
        except requests.RequestException as e:  # a busy hub may miss a poll: ask again
            log(f"servers: restart +{time.monotonic() - t0:.0f} s: poll failed ({e}); asking again")
        if time.monotonic() >= next_log:
            next_log += 5
            log(f"servers: restart +{time.monotonic() - t0:.0f} s: {counts} in the hub, {routes} routes in the proxy")
        time.sleep(0.25)
    # what the REST API lists, once: every user's model (the polling above does not load the hub with it)
    listed = [
        u for u in hub.active_users() if u["name"].startswith(f"{PREFIX}u") and ((u.get("servers") or {}).get(""))
    ]
    ready_listed = sum(1 for u in listed if u["servers"][""].get("ready"))
    time.sleep(2)
    rss = hub.rss_mib()
    result = {
        "running": running,
        "hub_api_s": round(api_up, 2),
        "all_ready_s": None if ready_s is None else round(ready_s, 2),
        "all_routes_s": None if routes_s is None else round(routes_s, 2),
        "listed_active": len(listed),
        "listed_ready": ready_listed,
        "lost": running - len(listed),
        "routes": routes,
        "rss_mib": rss,
    }
    if ready_s is None or routes_s is None:
        result["timeout_s"] = round(timeout)
        log(f"servers: restart did not find every server in {timeout:.0f} s: {counts}, {routes} routes")
    log(
        f"servers: restart with {running}: API up {result['hub_api_s']} s, all ready {result['all_ready_s']} s, "
        f"all routes {result['all_routes_s']} s; {ready_listed} listed ready; hub {rss['hub']} MiB"
    )
    return result


def per_server_mib(res: dict, key: str) -> float | None:
    """MiB of hub memory per running server between `base` and N: key 'restart' (fresh processes
    that found them) or 'at' (the hub that spawned them, its request history included)."""
    n, base = res.get("servers"), res.get("base")
    lo = ((res.get(f"{key}_base") or {}).get("rss_mib") or {}).get("hub")
    hi = ((res.get(f"{key}_n") or {}).get("rss_mib") or {}).get("hub")
    if lo is None or hi is None or not n or n == base:
        return None
    return round((hi - lo) / (n - base), 3)


def _log_summary(out: dict) -> None:
    a, z = out["at_base"], out["at_n"]
    log(
        f"servers: done. Warm form p50 {(a['form'].get('server_ms_warm') or {}).get('p50')} -> "
        f"{(z['form'].get('server_ms_warm') or {}).get('p50')} ms; spawn overhead p50 "
        f"{(a['spawn'].get('ours_ms') or {}).get('p50')} -> {(z['spawn'].get('ours_ms') or {}).get('p50')} ms; "
        f"hub memory per server {per_server_mib(out, 'restart')} MiB (restarted hubs), "
        f"{per_server_mib(out, 'at')} MiB (running); restart finds {out['servers']} in "
        f"{out['restart_n'].get('all_ready_s')} s"
    )
