"""Writes docs/benchmarks.md from .local-stack/bench/results.json (the numbers of the last runs).

Every number and every "what dominates" sentence on the page comes from the results file, so the
page can be regenerated (`python -m benchmarks.report`) without running anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .stack import REPO, STATE

DOC = REPO / "docs" / "benchmarks.md"


def _v(d: dict | None, key: str = "p50", digits: int = 1):
    if not isinstance(d, dict) or d.get(key) is None:
        return "–"
    return f"{d[key]:.{digits}f}"


def _num(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _met(ok) -> str:
    return "not run" if ok is None else ("**met**" if ok else "**missed**")


def _ratio(a, b) -> float | None:
    return round(a / b, 2) if a and b else None


def _max(values):
    values = [v for v in values or [] if v is not None]
    return max(values) if values else None


def _range(values) -> str:
    values = [v for v in values or [] if v is not None]
    if not values:
        return "–"
    return str(values[0]) if min(values) == max(values) else f"{min(values)}–{max(values)}"


def _run_line(case: dict) -> str:
    run = case.get("run") or {}
    hubs = ", ".join(f"{k} hub on {v}" for k, v in (run.get("hub_versions") or {}).items())
    return f"_Measured {run.get('date', '?')} by `{run.get('command', '?')}`" + (f" ({hubs})" if hubs else "") + "._"


def _errors(case: dict) -> list[str]:
    out = [f"- `{k}` failed: {v['error']}" for k, v in case.items() if isinstance(v, dict) and v.get("error")]
    out += [
        f"- `{k}`: {v['disturbed']} (measured twice; both times disturbed)"
        for k, v in case.items()
        if isinstance(v, dict) and v.get("disturbed")
    ]
    return (["", "Notes on this run:", *out, ""]) if out else []


def _stall_frames(frames, n: int = 4) -> str:
    return "; ".join(f"`{f}` ({c})" for f, c in (frames or [])[:n]) or "–"


# --- sections ----------------------------------------------------------------------------


def section_form(res: dict):
    ph, pl = res.get("primehub") or {}, res.get("plain") or {}
    ratio = _ratio((ph.get("server_ms_warm") or {}).get("p50"), (pl.get("server_ms_warm") or {}).get("p50"))
    kc, k8s = _max(ph.get("keycloak_calls_per_render")), _max(ph.get("k8s_calls_per_render"))
    ok_ratio = None if ratio is None else ratio <= 1.2
    ok_calls = None if kc is None else (kc == 0 and k8s == 0)
    cold_kc = (ph.get("cold") or {}).get("keycloak_calls")
    ok_cold = None if cold_kc is None else cold_kc <= 2
    lines = [
        "## 1. Options form",
        "",
        _run_line(res),
        "",
        "GET /hub/spawn for `bench-form`, a user in 20 groups, with a catalog of 200 instance types, 100 images and "
        "500 datasets (custom resources in namespace `bench`; grants are realm roles of the groups; each group offers "
        "about 30 instance types, 15 images, and mounts about 100 datasets). Server-side time is the hub's own "
        "request time (the number in its `log:192 … 200 GET /hub/spawn … ms` line). *Warm*: the Keycloak user cache "
        "(30 s) valid and no auth refresh during the request. The plain KubeSpawner hub has the same authenticator "
        "and a static `profile_list` generated from the same offers with the hub's own functions: one profile per "
        "group, instance type and image as profile options with the same overrides, the same dataset volumes, and "
        "the mounted datasets listed in the description so both pages carry the same information (plus the two small "
        "profiles of cases 3 and 4).",
        "",
        "| | PrimeHubSpawner | plain KubeSpawner |",
        "| --- | ---: | ---: |",
        f"| server-side ms, warm, p50 / p95 | {_v(ph.get('server_ms_warm'))} / {_v(ph.get('server_ms_warm'), 'p95')} | {_v(pl.get('server_ms_warm'))} / {_v(pl.get('server_ms_warm'), 'p95')} |",
        f"| of which the spawner's form function, p50 ms | {_v(ph.get('form_function_ms'))} | {_v(pl.get('form_function_ms')) if (pl.get('form_function_ms') or {}).get('n') else 'cached (see below)'} |",
        f"| client-side ms through the proxy, p50 | {_v(ph.get('client_ms'))} | {_v(pl.get('client_ms'))} |",
        f"| renders (warm) | {ph.get('renders', '–')} ({(ph.get('server_ms_warm') or {}).get('n', '–')}) | {pl.get('renders', '–')} ({(pl.get('server_ms_warm') or {}).get('n', '–')}) |",
        f"| Keycloak calls per warm render | {_range(ph.get('keycloak_calls_per_render'))} | {_range(pl.get('keycloak_calls_per_render'))} |",
        f"| Kubernetes calls per warm render | {_range(ph.get('k8s_calls_per_render'))} | {_range(pl.get('k8s_calls_per_render'))} |",
        f"| cold render (Keycloak cache forgotten): ms; Keycloak calls | {(ph.get('cold') or {}).get('server_ms', '–')}; {(ph.get('cold') or {}).get('keycloak_calls', '–')} | {(pl.get('cold') or {}).get('server_ms', '–')}; {(pl.get('cold') or {}).get('keycloak_calls', '–')} |",
        f"| page bytes; groups (profiles) offered | {ph.get('html_bytes', '–')}; {ph.get('groups_shown', '–')} | {pl.get('html_bytes', '–')}; {pl.get('groups_shown', '–')} |",
        "",
        f"**Ratio PrimeHub / plain, warm p50: {ratio if ratio is not None else '–'}x** (target ≤ 1.2x): {_met(ok_ratio)}. "
        f"Zero Kubernetes and Keycloak calls per warm render: {_met(ok_calls)}. At most 2 Keycloak calls for a cold "
        f"render: {_met(ok_cold)} ({cold_kc if cold_kc is not None else '–'}).",
        "",
    ]
    return lines + _errors(res), {
        "1. form ≤ 1.2x plain KubeSpawner, warm": (ok_ratio, f"{ratio}x"),
        "1. form: 0 Kubernetes/Keycloak calls per warm render": (ok_calls, f"Keycloak {kc}, Kubernetes {k8s}"),
        "1. form: ≤ 2 Keycloak calls, cold": (ok_cold, f"{cold_kc}"),
    }


def _spawn_row(name: str, d: dict | None) -> str:
    d = d or {}
    if d.get("error"):
        return f"| {name} | failed | | | | | | | | | | | |"
    return (
        f"| {name} | {d.get('spawns', '–')} | {_v(d.get('ours_ms'))} | {_v(d.get('ours_ms'), 'p95')} | "
        f"{_v(d.get('options_from_form_ms'))} | {_v(d.get('load_user_options_ms'))} | {_v(d.get('quota_list_pods_ms'))} | "
        f"{_v(d.get('pod_manifest_ms'))} | {_v(d.get('auth_refresh_ms'))} | {_v(d.get('request_to_pod_create_ms'))} | "
        f"{_range(d.get('keycloak_calls_per_spawn'))} | {_range(d.get('k8s_calls_per_spawn'))} |"
    )


def section_spawn(res: dict):
    pb, pa = res.get("primehub_browser") or {}, res.get("primehub_api") or {}
    p95 = _max([(pb.get("ours_ms") or {}).get("p95"), (pa.get("ours_ms") or {}).get("p95")])
    kc_b, kc_a = _max(pb.get("keycloak_calls_per_spawn")), _max(pa.get("keycloak_calls_per_spawn"))
    ok_time = None if p95 is None else p95 <= 50
    ok_kc_b = None if kc_b is None else kc_b <= 2
    ok_kc_a = None if kc_a is None else kc_a <= 2
    lines = [
        "## 2. Spawn overhead",
        "",
        _run_line(res),
        "",
        "One spawn at a time. *browser*: `bench-form` (20 groups) loads the form and submits it, as JupyterHub's page "
        "does; JupyterHub first refreshes the user's auth (`refresh_pre_spawn`, on whenever auth state is). *api*: an "
        "admin token starts each of 20 users' first server (`POST /hub/api/users/{name}/server`), so their Keycloak "
        "entitlements are not cached yet. **ours** = `options_from_form` (parsing + the full entitlement and quota "
        "check) + the spawner's window from `start()` to the moment KubeSpawner's pod creation request begins: "
        "`load_user_options` (plan and overrides), shared volumes, the group's quota lock and live pod count, and "
        "KubeSpawner's own pod manifest (its column shows how much of the window that is). The authenticator's "
        "pre-spawn refresh is ours too, but runs before the spawner: it is its own column. Calls are all calls "
        "charged to the spawn request, KubeSpawner's and JupyterHub's included.",
        "",
        "| spawner, flow | spawns | ours p50 ms | ours p95 ms | options_from_form p50 | load_user_options p50 | quota pod list p50 | KubeSpawner manifest p50 | auth refresh p50 | request→pod create p50 | Keycloak calls/spawn | Kubernetes calls/spawn |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        _spawn_row("PrimeHub, browser", pb),
        _spawn_row("PrimeHub, api", pa),
        _spawn_row("plain, browser", res.get("plain_browser")),
        _spawn_row("plain, api", res.get("plain_api")),
        "",
        *(
            ["(– in the pod list column: the groups have no quota, so no pods are counted.)", ""]
            if not (pb.get("quota_list_pods_ms") or {}).get("n")
            else []
        ),
        f"Target p95 ≤ 50 ms: {_met(ok_time)} (worst p95 {_num(p95)} ms). Target ≤ 2 Keycloak calls per spawn: "
        f"{_met(ok_kc_b)} for the user's own spawn through the form ({kc_b}), {_met(ok_kc_a)} for an admin's REST "
        f"spawn of a user whose entitlements are not cached ({kc_a}).",
        "",
    ]
    pbr = res.get("plain_browser") or {}
    if pbr.get("ours_ms"):
        lines += [
            f"For scale: plain KubeSpawner's same window (its `load_user_options` applying a profile, and its "
            f"manifest) takes p50 {_v(pbr.get('ours_ms'))} ms, p95 {_v(pbr.get('ours_ms'), 'p95')} ms on this machine.",
            "",
        ]
    slow = pb.get("slowest") or []
    if slow:
        lines += [
            "The slowest PrimeHub browser spawns (ms): "
            + "; ".join(
                ", ".join(
                    f"{k} {v}"
                    for k, v in row.items()
                    if v
                    and k
                    in (
                        "ours_ms",
                        "options_from_form",
                        "load_user_options",
                        "load_primehub_user",
                        "load_catalog",
                        "lock_and_list_ms",
                        "quota_list_pods",
                        "pod_manifest",
                    )
                )
                for row in slow
            ),
            "",
        ]
    fails = [
        f
        for key in ("primehub_browser", "primehub_api", "plain_browser", "plain_api")
        for f in ((res.get(key) or {}).get("failures") or [])
    ]
    if fails:
        lines += [f"{len(fails)} spawn(s) failed during the run: " + " | ".join(fails[:3]), ""]
    calls = pb.get("calls") or {}
    if calls:
        lines += [
            f"All calls of the {pb.get('spawns')} PrimeHub browser spawns together (`http` = the hub checking the new "
            "server answers, `proxy` = adding its route):",
            "",
            "| call | count |",
            "| --- | ---: |",
        ]
        lines += [f"| `{k}` | {v} |" for k, v in calls.items()]
        lines.append("")
    return lines + _errors(res), {
        "2. spawn overhead p95 ≤ 50 ms": (
            ok_time,
            f"ours p95 {_num(p95)} ms; whole request → pod creation p50 "
            f"{_v(pb.get('request_to_pod_create_ms'))} ms (browser, incl. auth refresh), "
            f"{_v(pa.get('request_to_pod_create_ms'))} ms (admin REST, incl. a Keycloak load)",
        ),
        "4. spawn ≤ 2 Keycloak calls, user's own spawn (form)": (ok_kc_b, f"{kc_b} per spawn"),
        "4. spawn ≤ 2 Keycloak calls, admin REST spawn of a user not cached": (ok_kc_a, f"{kc_a} per spawn"),
    }


def _conc_row(name: str, d: dict | None) -> str:
    d = d or {}
    if d.get("error"):
        return f"| {name} | failed | | | | | | | | | | | |"
    ready = d.get("all_ready_s")
    if ready is None and d.get("ready") is not None:
        ready = f"{d['ready']} ready, last at {_v(d.get('ready_s'), 'max', 2)}"
    return (
        f"| {name} | {d.get('users', '–')} | {d.get('pods_created', '–')} | {d.get('all_pods_exist_s', '–')} | "
        f"{d.get('all_pods_running_s', '–')} | {ready if ready is not None else '–'} | {d.get('loop_stall_max_ms', '–')} | "
        f"{d.get('loop_blocked_max_ms', '–')} | {d.get('loop_stalls_over_100ms', '–')} | {_num(_share(d))}% | "
        f"{_v(d.get('start_to_pod_create_ms'))} / {_v(d.get('start_to_pod_create_ms'), 'p95')} | "
        f"{_v(d.get('auth_refresh_ms'))} | {d.get('keycloak_calls', '–')} | {d.get('k8s_calls', '–')} |"
    )


def section_concurrency(res: dict):
    ph, pl, q = res.get("primehub") or {}, res.get("plain") or {}, res.get("primehub_quota") or {}
    stall = _max([ph.get("loop_stall_max_ms"), q.get("loop_stall_max_ms")])
    plain_stall = pl.get("loop_stall_max_ms")
    ok_stall = None if stall is None or plain_stall is None else stall <= plain_stall
    share = _share(ph)
    ok_share = None if share is None else share <= 5.0
    refresh = (ph.get("auth_refresh_ms") or {}).get("p50")
    ok_refresh = None if refresh is None else refresh < 500
    ok_quota = q.get("quota_held")
    run = res.get("run") or {}
    n = (run.get("config") or {}).get("users", ph.get("users"))
    lines = [
        "## 3. Concurrent spawns",
        "",
        _run_line(res),
        "",
        f"{n} users send `POST /hub/api/users/{{name}}/server` at the same instant (threads released by a barrier) with an "
        "admin token; they are in one group with no quota, instance type 0.01 CPU / 16 MiB, which tolerates the GPU "
        "node's taint so both nodes' 110 pod slots count. Times are seconds from the release; *ready* is when the hub "
        "added the user's route to the proxy (it does so once the server answered), read from the proxy's API so the "
        "watching does not load the hub. The pods run `benchmarks/fake_singleuser.py`, a minimal HTTP server that "
        "answers the hub's readiness check: a real `jupyterhub-singleuser` needs about a second of CPU to start, and "
        f"{n} of them on 2 cores would measure the machine, not the hub. *Running* is reported by the node agent, the "
        "local stack's kubelet stand-in. *Loop stall* is the largest lateness of a 10 ms sleep in the hub's event "
        "loop; *blocked* is the part of it the loop thread spent computing (the rest is the process waiting for a core).",
        "",
        "| run | users | pods created | all pods exist s | all Running s | all ready s | max loop stall ms | of it blocked ms | stalls > 100 ms | stall samples in our frames | start→pod create p50 / p95 ms | auth refresh p50 ms | Keycloak calls | Kubernetes calls |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        _conc_row("PrimeHub", ph),
        _conc_row(f"PrimeHub, project quota fits {q.get('quota_expected_pods', 'k')}", q),
        _conc_row("plain KubeSpawner", pl),
        *(
            [
                _conc_row("PrimeHub, PostgreSQL", res.get("primehub_postgres")),
                _conc_row("plain KubeSpawner, PostgreSQL", res.get("plain_postgres")),
            ]
            if res.get("primehub_postgres") or res.get("plain_postgres")
            else []
        ),
        "",
        (
            "The hub database is SQLite in the first rows; the PostgreSQL rows run the same burst with the hub's "
            "database on a PostgreSQL server of the bench's own (Debian's packages, a Unix socket, `benchmarks/postgres.py`)."
            if res.get("primehub_postgres")
            else f"Case 3 on PostgreSQL was not run: {res.get('postgres_skipped', 'disabled (--no-postgres)')}."
        ),
        "",
        f"Ratios PrimeHub / plain: every pod exists {_ratio(ph.get('all_pods_exist_s'), pl.get('all_pods_exist_s'))}x, "
        f"every server ready {_ratio(ph.get('all_ready_s'), pl.get('all_ready_s'))}x. "
        + (
            f"In the PrimeHub run each spawn waited {_v(ph.get('quota_lock_wait_ms'))} ms (p50; p95 "
            f"{_v(ph.get('quota_lock_wait_ms'), 'p95')} ms) for its group's quota lock."
            if (ph.get("quota_lock_wait_ms") or {}).get("n")
            else "The group has no quota, so its spawns take no quota lock; with the project quota, each spawn waited "
            f"p50 {_v(q.get('quota_lock_wait_ms'))} ms (p95 {_v(q.get('quota_lock_wait_ms'), 'p95')} ms) for it."
        ),
        "",
        f"Largest loop stall no worse than plain KubeSpawner's: {_met(ok_stall)} ({_num(stall)} ms against "
        f"{_num(plain_stall)} ms). Share of stall samples with this project's frames on the loop's stack ≤ 5%: "
        f"{_met(ok_share)} ({_num(share)}%). Pre-spawn auth refresh p50 < 500 ms: {_met(ok_refresh)} "
        f"({_v(ph.get('auth_refresh_ms'))} ms). While the loop was late, the watchdog found it in: "
        f"{_stall_frames(ph.get('stall_frames'))} (PrimeHub run); {_stall_frames(pl.get('stall_frames'))} (plain run).",
        "",
        f"No quota overrun: {_met(ok_quota)}: {q.get('pods_created', '–')} pods were created and "
        f"{q.get('pods_alive_after', '–')} were alive afterwards for a project quota that fits "
        f"{q.get('quota_expected_pods', '–')}; the other spawns were refused before any pod was made. Plain "
        "KubeSpawner has no quota to test.",
        "",
    ]
    return lines + _errors(res), {
        "4. 100 simultaneous spawns: auth refresh p50 < 500 ms": (ok_refresh, f"{_v(ph.get('auth_refresh_ms'))} ms"),
        "6. loop stall samples in this project's frames ≤ 5%": (ok_share, f"{_num(share)}%"),
        "6. largest loop stall ≤ plain KubeSpawner's": (ok_stall, f"{_num(stall)} ms vs {_num(plain_stall)} ms"),
        "quotas: no overrun (exactly k pods)": (
            ok_quota,
            f"{q.get('pods_created')} pods, k = {q.get('quota_expected_pods')}",
        ),
    }


def _share(d: dict):
    total, ours = d.get("stall_samples"), d.get("stall_samples_ours")
    return round(100.0 * ours / total, 1) if total else (0.0 if total == 0 else None)


def section_failure(res: dict):
    ph, pl = res.get("primehub") or {}, res.get("plain") or {}
    worst = (ph.get("from_event_seen_s") or {}).get("max")
    ok = None if worst is None else bool(worst <= 0.1 and ph.get("all_failed"))
    lines = [
        "## 4. Fast failure",
        "",
        _run_line(res),
        "",
        "A spawn whose instance type asks for 64 CPUs (no node has them). From the scheduler's FailedScheduling event "
        "(its own `eventTime`; and when our watch saw it) to the spawn's progress stream "
        "(`GET /hub/api/users/{name}/server/progress`) ending with `failed`. Plain KubeSpawner waits for its start "
        f"timeout ({res.get('start_timeout_s', 30)} s here).",
        "",
        "| | trials | event time → failed, p50 / max s | event seen → failed, p50 / max s | POST → failed, p50 s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, d in (("PrimeHub", ph), ("plain KubeSpawner", pl)):
        lines.append(
            f"| {name} | {d.get('reps', '–')} | {_v(d.get('from_event_stamp_s'), 'p50', 2)} / {_v(d.get('from_event_stamp_s'), 'max', 2)} | "
            f"{_v(d.get('from_event_seen_s'), 'p50', 2)} / {_v(d.get('from_event_seen_s'), 'max', 2)} | {_v(d.get('post_to_failed_s'), 'p50', 2)} |"
        )
    lines += [
        "",
        f"Target ≤ 0.1 s from the watch seeing the event (p50 and max): {_met(ok)} (worst {worst} s). "
        f"PrimeHub's user reads: “{ph.get('message', '')}”; plain KubeSpawner's: “{pl.get('message', '')}”.",
        "",
    ]
    return lines + _errors(res), {"5. fast failure ≤ 0.1 s from the event seen": (ok, f"worst {_num(worst, 3)} s")}


def section_growth(res: dict):
    real = res.get("real") or {}
    lines = [
        "## 5. Growth through the real stack",
        "",
        _run_line(res),
        "",
        "Groups and resources grow together: at scale s, 20s groups, 200s instance types, 100s images, 500s datasets; "
        "each group keeps offering about 30 instance types and 15 images and granting 25 datasets of its own, and 100 "
        "datasets stay shared (not launch-group-only). Two users: one in every group (their offers grow with the "
        "platform) and one in the first 20 groups (their own offers stay those of case 1's user). Keycloak, custom "
        "resources and a bench hub; the same measurements as cases 1 and 2. The default run does 5x, whose Keycloak "
        "objects take minutes to create in the local Keycloak (a dev-mode database that also times out on large "
        "imports); `--only growth --growth-real-scale 10` adds a 10x column. 100x is measured in-process only (below).",
    ]
    scales = (real.get("scales") or {}) if isinstance(real, dict) else {}
    done = {k: v for k, v in sorted(scales.items(), key=lambda kv: int(kv[0])) if not v.get("error")}
    for k, v in scales.items():
        if v.get("error"):
            lines += ["", f"The real-stack run at {k}x ({v.get('date', '?')}) failed: {v['error']}"]
        elif v.get("disturbed"):
            lines += ["", f"Note on the real-stack run at {k}x: {v['disturbed']}."]
    if done:
        cols = list(done.values())

        def row(label, fn):
            return f"| {label} | " + " | ".join(str(fn(c)) for c in cols) + " |"

        lines += [
            "",
            "| measure | " + " | ".join(f"{c['scale']}x" for c in cols) + " |",
            "| --- | " + " | ".join("---:" for _ in cols) + " |",
            row("measured", lambda c: c.get("date", "?")),
            row(
                "groups / instance types / images / datasets",
                lambda c: f"{c['groups']} / {c['instance_types']} / {c['images']} / {c['datasets']}",
            ),
            row(
                "setup: Keycloak s, custom resources s",
                lambda c: f"{c.get('keycloak_setup_s')}, {c.get('k8s_setup_s')}",
            ),
            row(
                "form, user in 20 groups (own offers unchanged), server-side ms p50",
                lambda c: _v((c.get("form_own") or {}).get("server_ms")),
            ),
            row(
                "form, user in every group, server-side ms p50 (renders)",
                lambda c: f"{_v((c.get('form') or {}).get('server_ms'))} ({(c.get('form') or {}).get('renders', '–')})",
            ),
            row(
                "form, user in every group, cold Keycloak cache: ms; Keycloak calls",
                lambda c: (
                    f"{((c.get('form') or {}).get('cold') or {}).get('server_ms', '–')}; {((c.get('form') or {}).get('cold') or {}).get('keycloak_calls', '–')}"
                ),
            ),
            row("page bytes (user in every group)", lambda c: (c.get("form") or {}).get("html_bytes", "–")),
            row("spawn, browser: ours p50 ms", lambda c: _v((c.get("spawn_browser") or {}).get("ours_ms"))),
            row(
                "spawn, browser: auth refresh p50 ms; Keycloak calls",
                lambda c: (
                    f"{_v((c.get('spawn_browser') or {}).get('auth_refresh_ms'))}; {_range((c.get('spawn_browser') or {}).get('keycloak_calls_per_spawn'))}"
                ),
            ),
            row("spawn, api (first spawn): ours p50 ms", lambda c: _v((c.get("spawn_api") or {}).get("ours_ms"))),
            row(
                "spawn, api: auth refresh p50 ms; Keycloak calls",
                lambda c: (
                    f"{_v((c.get('spawn_api') or {}).get('auth_refresh_ms'))}; {_range((c.get('spawn_api') or {}).get('keycloak_calls_per_spawn'))}"
                ),
            ),
            row(
                "hub event loop: max stall ms (of it blocked)",
                lambda c: f"{c.get('loop_stall_max_ms', '–')} ({c.get('loop_blocked_max_ms', '–')})",
            ),
            row("where the loop was while stalled", lambda c: _stall_frames(c.get("stall_frames"), 3)),
        ]
    lines.append("")
    return lines + _errors(res), {}


def _times(ratio) -> str:
    return "–" if ratio is None else f"{ratio}x"


def _gc(x) -> str:
    """The longest full collection of the garbage collector in a measure window, in words."""
    g = (x or {}).get("gc") or {}
    if not g.get("gc_full"):
        return "none"
    return f"{g['gc_full']} of up to {_num(g.get('gc_full_max_ms'), 1)} ms"


def _relists(x: dict) -> str:
    """How often the hub's pod and event reflectors read their whole list during a measure."""
    r = x.get("relists")
    if not r:
        return "–"
    return f"{r.get('pods', '–')} / {r.get('events', '–')} ({x.get('window_s', '–')})"


def _servers_figures(d: dict) -> dict:
    """The comparisons of case 7, from its raw results (case_servers.run)."""
    from .case_servers import per_server_mib

    a, z = d.get("at_base") or {}, d.get("at_n") or {}
    ra, rz = d.get("restart_base") or {}, d.get("restart_n") or {}
    form_a, form_z = (
        ((a.get("form") or {}).get("server_ms_warm") or {}),
        ((z.get("form") or {}).get("server_ms_warm") or {}),
    )
    spawn_a, spawn_z = ((a.get("spawn") or {}).get("ours_ms") or {}), ((z.get("spawn") or {}).get("ours_ms") or {})
    return {
        "form_ratio": _ratio(form_z.get("p50"), form_a.get("p50")),
        "spawn_ratio": _ratio(spawn_z.get("p50"), spawn_a.get("p50")),
        "mib_restarted": per_server_mib(d, "restart"),
        "mib_running": per_server_mib(d, "at"),
        "found": rz.get("listed_ready"),
        "lost": rz.get("lost"),
        "all_ready_s": rz.get("all_ready_s"),
        "all_ready_base_s": ra.get("all_ready_s"),
    }


def _servers_verdicts(d: dict) -> dict:
    f = _servers_figures(d)
    n = d.get("servers")
    label = f"{n:,}" if isinstance(n, int) else "N"
    ok_form = None if f["form_ratio"] is None else f["form_ratio"] <= 1.2
    ok_spawn = None if f["spawn_ratio"] is None else f["spawn_ratio"] <= 1.2
    ok_found = None if f["found"] is None else (f["found"] == n and f["lost"] == 0 and f["all_ready_s"] is not None)
    return {
        f"7. {label} servers: warm form within 1.2x of {d.get('base')} (real stack)": (
            ok_form,
            _times(f["form_ratio"]),
        ),
        f"7. {label} servers: spawn overhead within 1.2x of {d.get('base')} (real stack)": (
            ok_spawn,
            _times(f["spawn_ratio"]),
        ),
        f"7. {label} servers: a hub restart finds every server": (
            ok_found,
            f"{f['found']} of {n} ready after {_num(f['all_ready_s'], 1)} s; "
            f"hub memory {_num(f['mib_restarted'], 3)} MiB per server",
        ),
    }


def section_servers(res: dict):
    d = res.get("primehub") or {}
    lines = ["## 7. 1,000 running servers", "", _run_line(res), ""]
    if not d.get("at_base"):
        return lines + _errors(res), {}
    n, base = d.get("servers"), d.get("base")
    if n != 1000:
        lines += [f"**This run kept {n} servers running, not 1,000.**", ""]
    a, z = d.get("at_base") or {}, d.get("at_n") or {}
    ra, rz = d.get("restart_base") or {}, d.get("restart_n") or {}
    f = _servers_figures(d)
    sa, sz = d.get("spawn_base") or {}, d.get("spawn_rest") or {}

    def pair(fn) -> str:
        return f"{fn(a)} | {fn(z)}"

    def form(x, k="p50"):
        return _v((x.get("form") or {}).get("server_ms_warm"), k)

    def spawn(x, k="p50"):
        return _v((x.get("spawn") or {}).get("ours_ms"), k)

    def rss(x, who):
        return _num((x.get("rss_mib") or {}).get(who))

    lines += [
        f"{n} users `bench-srv-u…`, one server each, started through the REST API "
        f"{sz.get('batch', '–')} at a time on a fresh PrimeHub bench hub, and the same measurements with {base} and "
        f"with {n} of them running. Their instance type selects {d.get('nodes', '–')} extra nodes of 110 pods "
        "(`bench-node-…`, a second node agent of the bench's own), and their pods ask that agent for an in-agent "
        "stand-in: it answers on the pod's IP and port as `benchmarks/fake_singleuser.py` does, so a thousand "
        "servers cost sockets, not processes. *Form* and *spawn overhead* are cases 1 and 2's measures for "
        "`bench-srv-probe` (case 1's 20 groups plus the servers' group, whose usage the form shows; its spawns "
        "use case 1's groups). *Memory* is the hub process's VmRSS; per server = the difference between "
        f"{n} and {base} servers divided by the {(n or 0) - (base or 0)} in between, taken in a hub just restarted "
        "(it has found every server, and carries no request history) and in the hub that spawned them. A "
        "*restart* stops the hub process (servers keep running, `cleanup_servers` off) and starts it on the same "
        "database: until its API answers, until every server is ready again (JupyterHub polls each spawner and "
        "checks its URL answers; read from the hub's spawners every 0.25 s through the bench stats endpoint, then "
        "confirmed by the REST API's listing) and until the new proxy has every route back.",
        "",
        f"| measure | {base} servers | {n:,} servers | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| warm form, server-side ms p50 / p95 | {form(a)} / {form(a, 'p95')} | {form(z)} / {form(z, 'p95')} | "
        f"{_times(f['form_ratio'])} |",
        f"| spawn overhead (ours), ms p50 / p95 | {spawn(a)} / {spawn(a, 'p95')} | {spawn(z)} / {spawn(z, 'p95')} | "
        f"{_times(f['spawn_ratio'])} |",
        "| spawn: request → pod create, ms p50 | "
        + pair(lambda x: _v((x.get("spawn") or {}).get("request_to_pod_create_ms")))
        + " | |",
        "| Keycloak / Kubernetes calls per warm render | "
        + pair(
            lambda x: (
                f"{_range((x.get('form') or {}).get('keycloak_calls_per_render'))} / "
                f"{_range((x.get('form') or {}).get('k8s_calls_per_render'))}"
            )
        )
        + " | |",
        f"| hub RSS MiB, restarted hub | {rss(ra, 'hub')} | {rss(rz, 'hub')} | {_num(f['mib_restarted'], 3)} MiB per server |",
        f"| hub RSS MiB, the hub that spawned them | {rss(a, 'hub')} | {rss(z, 'hub')} | {_num(f['mib_running'], 3)} MiB per server |",
        f"| proxy RSS MiB (restarted hub's proxy) | {rss(ra, 'proxy')} | {rss(rz, 'proxy')} | |",
        f"| restart: hub API answers, s | {_num(ra.get('hub_api_s'), 2)} | {_num(rz.get('hub_api_s'), 2)} | |",
        f"| restart: every server ready again, s | {_num(ra.get('all_ready_s'), 2)} | {_num(rz.get('all_ready_s'), 2)} | |",
        f"| restart: every route back in the proxy, s | {_num(ra.get('all_routes_s'), 2)} | {_num(rz.get('all_routes_s'), 2)} | |",
        f"| restart: servers listed ready by the REST API (lost) | {ra.get('listed_ready', '–')} ({ra.get('lost', '–')}) | "
        f"{rz.get('listed_ready', '–')} ({rz.get('lost', '–')}) | |",
        "| hub event loop during form and spawns: max stall ms (of it blocked) | "
        + pair(lambda x: f"{x.get('loop_stall_max_ms', '–')} ({x.get('loop_blocked_max_ms', '–')})")
        + " | |",
        "| spawn overhead by step, p50 ms: plan / JupyterHub until start() / its commit and the hops into the "
        "start / KubeSpawner until the pod manifest / manifest and volumes / quota lock and count | "
        + pair(_spawn_steps)
        + " | |",
        "| pods / events the hub's reflectors held | "
        + pair(lambda x: f"{(x.get('held') or {}).get('pods', '–')} / {(x.get('held') or {}).get('events', '–')}")
        + " | |",
        "| full lists of pods / events the hub read meanwhile (in s) | " + pair(_relists) + " | |",
        "| Keycloak requests the hub made meanwhile (all, background included) | "
        + pair(lambda x: str(x.get("keycloak_requests", "–")))
        + " | |",
        "",
        f"Setting up: Keycloak users {d.get('keycloak_setup_s', '–')} s, bench nodes Ready in "
        f"{d.get('nodes_ready_s', '–')} s; the first {sa.get('spawned', '–')} servers took {sa.get('seconds', '–')} s, "
        f"the next {sz.get('spawned', '–')} {sz.get('seconds', '–')} s (p50 {_v(sz.get('batch_s'))} s per batch of "
        f"{sz.get('batch', '–')}); {(sa.get('failed') or 0) + (sz.get('failed') or 0)} failed. Pods per bench node: "
        + (", ".join(f"{k} {v}" for k, v in (d.get("pods_per_node") or {}).items()) or "–")
        + f". The bench node agent held {_num(z.get('agent_rss_mib'))} MiB with {n} stand-ins.",
        "",
    ]
    fails = (sa.get("failures") or []) + (sz.get("failures") or [])
    if fails:
        lines += ["Failed spawns, first few: " + " | ".join(fails[:3]), ""]
    if z.get("stall_frames"):
        lines += [f"While the loop was late with {n} servers, it was in: {_stall_frames(z.get('stall_frames'))}.", ""]
    return lines + _errors(res), _servers_verdicts(d)


def _spawn_steps(x: dict) -> str:
    """The spawn window's steps (case_spawn.SEGMENTS), p50 ms each."""
    steps = (x.get("spawn") or {}).get("segments_p50_ms") or {}
    return " / ".join(_num(v, 1) for v in steps.values()) if steps else "–"


def _start_to_manifest(x: dict) -> str:
    """From spawner.start() to KubeSpawner's pod manifest, p50 ms (the sum of the two steps' p50s)."""
    steps = (x.get("spawn") or {}).get("segments_p50_ms") or {}
    parts = [steps.get("spawner_start->kube_start"), steps.get("kube_start->manifest")]
    if None in parts:
        parts = [steps.get("spawner_start->manifest")]  # results of before the kube_start mark
    return "–" if None in parts else _num(sum(parts), 1)


def _growth_targets(rows: list[dict]):
    by = {r["scale"]: r for r in rows}
    one, ten = by.get(1), by.get(10)
    out = {}
    if one and ten:
        form_ratio = _ratio(ten["form_ms"], one["form_ms"])
        plan_ratio = _ratio(ten["plan_launch_ms"], one["plan_launch_ms"])
        out["2. form at 10x ≤ 1.5x its 1x cost (own offers unchanged, in-process)"] = (
            None if form_ratio is None else form_ratio <= 1.5,
            f"{form_ratio}x",
        )
        out["2. one spawn's plan at 10x ≤ 1.5x its 1x cost (in-process)"] = (
            None if plan_ratio is None else plan_ratio <= 1.5,
            f"{plan_ratio}x",
        )
    calls = [r.get("catalog_call_ms") for r in rows if r.get("catalog_call_ms") is not None]
    if len(calls) >= 2:
        flat = max(calls) <= 10 * max(min(calls), 0.001)
        out["2. catalog() on an unchanged catalog O(1)"] = (
            flat,
            " / ".join(f"{r['scale']}x {r['catalog_call_ms']} ms" for r in rows),
        )
    big = next((r["all_groups"] for r in rows if (r.get("all_groups") or {}).get("groups", 0) >= 200), None)
    if big:
        out["3. user in 200 groups: form < 150 ms (warm, in-process)"] = (
            big["warm_ms"] < 150,
            f"warm {big['warm_ms']} ms, cold {big['cold_ms']} ms",
        )
        out["3. user in 200 groups: loop never blocked > 50 ms (in-process)"] = (
            big["loop_blocked_max_ms"] <= 50,
            f"{big['loop_blocked_max_ms']} ms (idle machine over as long: {big.get('loop_idle_max_ms', '–')} ms)",
        )
    return out


def section_inprocess(res: dict):
    rows = res.get("growth") or []
    fail = res.get("failure") or {}
    lines = [
        "## In-process: our code's cost as the platform grows",
        "",
        _run_line(res),
        "",
        "`python -m benchmarks --in-process` (no local stack: `benchmarks/inprocess.py`) calls what the hub calls with "
        "the generated platform of case 5, without Keycloak or HTTP. The **user's own offers stay the same** (the first "
        "20 groups) while the platform grows. *form* and *plan* are CPU ms of this thread (median; the machine's "
        "other load does not count): `build_form` + `render_form`, and one spawn's `plan_launch`. *catalog()* is "
        "`CatalogWatcher.catalog()` on unchanged custom resources, then after one watch event (notifying reflectors as "
        "in the hub). *Spawner* goes through `PrimeHubSpawner(_mock=True)`: cold renders the form (off the event loop), "
        "warm reuses it; *loop blocked* is the largest lateness of a 5 ms sleep on the loop during the cold render.",
        "",
        "| scale | groups | instance types | images | datasets | form CPU ms | plan_launch CPU ms | catalog() ms, unchanged | catalog() ms, after one event | spawner: cold ms / warm ms / loop blocked ms | page bytes |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        sp = r.get("form_spawner") or {}
        lines.append(
            f"| {r['scale']}x | {r['groups']} | {r['instance_types']} | {r['images']} | {r['datasets']} | "
            f"{r['form_ms']} | {r['plan_launch_ms']} | {r['catalog_call_ms']} | {r.get('catalog_after_event_ms', '–')} | "
            f"{sp.get('cold_ms', '–')} / {sp.get('warm_ms', '–')} / {sp.get('loop_blocked_max_ms', '–')} | {sp.get('html_bytes', '–')} |"
        )
    big = [r for r in rows if r.get("all_groups")]
    if big:
        lines += [
            "",
            "**A user in every group** (their offers are large: at 10x, 200 groups, each with its instance "
            "types, images and mounted datasets), through the spawner:",
            "",
            "| scale | groups | cold ms | warm ms | loop late ms during the cold render (idle machine, as long) | page bytes |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in big:
            a = r["all_groups"]
            lines.append(
                f"| {r['scale']}x | {a['groups']} | {a['cold_ms']} | {a['warm_ms']} | {a['loop_blocked_max_ms']} "
                f"({a.get('loop_idle_max_ms', '–')}) | {a['html_bytes']} |"
            )
        lines += [
            "",
            "*Idle*: the largest lateness of the same probe with nothing to do, measured right after for as "
            "long as the render took: the shared machine's own noise floor.",
        ]
    if fail:
        t = fail.get("event_to_failure_ms") or {}
        lines += [
            "",
            f"**Fast failure, in-process**: from a FailedScheduling event arriving in the event reflector to the "
            f"spawn's scheduling watch returning the failure, {fail.get('trials')} trials: p50 {t.get('p50')} ms, "
            f"max {t.get('max')} ms (the real-stack figure in section 4 adds the pod's removal and JupyterHub's "
            "progress stream).",
        ]
    servers = res.get("servers") or []
    if servers:
        lines += [
            "",
            "**Running servers** (their pods in the pod reflector, spread over the user's 20 groups, which have no quota): "
            "a warm form, the check of a form submission (plan and the early quota look over the live pods), "
            "and the first form after one more server started in one of the user's groups (usage changed: "
            "rendered again).",
            "",
            "| servers | warm form CPU ms | options_from_form CPU ms | form after a pod change ms (wall) |",
            "| ---: | ---: | ---: | ---: |",
            *[
                f"| {x['servers']} | {x['form_warm_ms']} | {x['options_from_form_ms']} | {x['form_after_pod_change_ms']} |"
                for x in servers
            ],
        ]
    prof = res.get("profiles") or {}
    if prof:
        lines += ["", "Where the time goes (cProfile of one call, functions by own time):", ""]
        for name, p in prof.items():
            lines.append(
                f"- `{name}`, {p['total_ms']} ms: "
                + "; ".join(f"`{t['function']}` {t['own_ms']} ms in {t['calls']} calls" for t in p["top"][:4])
            )
    lines.append("")
    verdicts = _growth_targets(rows)
    by_count = {x["servers"]: x for x in servers}
    if 10 in by_count and 1000 in by_count:
        a, z = by_count[10], by_count[1000]
        worst = max(
            _ratio(z["form_warm_ms"], a["form_warm_ms"]) or 0,
            _ratio(z["options_from_form_ms"], a["options_from_form_ms"]) or 0,
        )
        verdicts["7. 1,000 servers: form and submission within 1.2x of 10 (in-process)"] = (
            worst <= 1.2,
            f"form {a['form_warm_ms']} → {z['form_warm_ms']} ms, check {a['options_from_form_ms']} → {z['options_from_form_ms']} ms",
        )
    if fail:
        t = fail.get("event_to_failure_ms") or {}
        if t.get("max") is not None:
            verdicts["5. fast failure: event → failure ≤ 0.1 s (in-process, p50 and max)"] = (
                t["max"] <= 100,
                f"p50 {t.get('p50')} ms, max {t['max']} ms",
            )
    return lines + _errors(res), verdicts


def _baseline() -> dict:
    try:
        return json.loads((Path(__file__).parent / "baseline.json").read_text())
    except (OSError, ValueError):
        return {}


def section_before_after(results: dict):
    """One table per point of issue 11: the last run before it (baseline.json) and this page's runs."""
    b = _baseline()
    if not b:
        return []
    form = results.get("form") or {}
    ph, pl = form.get("primehub") or {}, form.get("plain") or {}
    rows_ip = ((results.get("inprocess") or {}).get("growth")) or []
    by = {r["scale"]: r for r in rows_ip}
    spawn = results.get("spawn") or {}
    conc = results.get("concurrency") or {}
    cp, cpl = conc.get("primehub") or {}, conc.get("plain") or {}
    fail = (results.get("failure") or {}).get("primehub") or {}
    fail_ip = ((results.get("inprocess") or {}).get("failure") or {}).get("event_to_failure_ms") or {}
    big = next((r["all_groups"] for r in rows_ip if (r.get("all_groups") or {}).get("groups", 0) >= 200), {})
    real5 = (((results.get("growth") or {}).get("real") or {}).get("scales") or {}).get("5") or {}
    ratio = _ratio((ph.get("server_ms_warm") or {}).get("p50"), (pl.get("server_ms_warm") or {}).get("p50"))

    def table(title, rows):
        return [
            f"**{title}**",
            "",
            "| measure | before | after |",
            "| --- | ---: | ---: |",
            *[f"| {m} | {x} | {y} |" for m, x, y in rows],
            "",
        ]

    def ip(scale, key):
        r = by.get(scale)
        return f"{r[key]} (in-process)" if r and r.get(key) is not None else "not run"

    missing = [
        c for c in ("form", "spawn", "concurrency", "failure", "growth", "servers", "inprocess") if c not in results
    ]
    lines = [
        "## Before and after (issue 11)",
        "",
        f"*Before*: the run of {b['date']} (commit {b['commit']}; in-process growth then had the user in every "
        "group, so its form column is the user-in-200-groups case). *After*: the runs on this page. A value marked "
        "in-process comes from `python -m benchmarks --in-process`; everything else from `make bench`."
        + (f" Not yet run for this page: {', '.join(missing)} (– in the after column)." if missing else ""),
        "",
    ]
    lines += table(
        "1. Options form (case 1 scale)",
        [
            (
                "warm server-side p50 ms (plain KubeSpawner)",
                f"{b['form_warm_p50_ms']} ({b['form_plain_warm_p50_ms']})",
                f"{_v(ph.get('server_ms_warm'))} ({_v(pl.get('server_ms_warm'))})",
            ),
            ("ratio to plain KubeSpawner (target ≤ 1.2x)", f"{b['form_ratio']}x", f"{ratio}x" if ratio else "not run"),
            (
                "calls per warm render",
                b["form_warm_calls"],
                f"Keycloak {_range(ph.get('keycloak_calls_per_render'))}, Kubernetes {_range(ph.get('k8s_calls_per_render'))}",
            ),
            (
                "cold render: ms; Keycloak calls (target ≤ 2)",
                f"{b['form_cold_ms']}; {b['form_cold_keycloak_calls']}",
                f"{(ph.get('cold') or {}).get('server_ms', 'not run')}; {(ph.get('cold') or {}).get('keycloak_calls', '–')}",
            ),
        ],
    )
    lines += table(
        "2. Growth (form and plan at 10x ≤ 1.5x their 1x; catalog() O(1))",
        [
            (
                "form ms at 1x / 10x / 100x",
                " / ".join(str(b["growth_form_ms"][k]) for k in ("1", "10", "100")),
                " / ".join(str((by.get(k) or {}).get("form_ms", "–")) for k in (1, 10, 100))
                + " (in-process, CPU, own offers)",
            ),
            (
                "plan_launch ms at 1x / 10x / 100x",
                " / ".join(str(b["growth_plan_ms"][k]) for k in ("1", "10", "100")),
                " / ".join(str((by.get(k) or {}).get("plan_launch_ms", "–")) for k in (1, 10, 100))
                + " (in-process, CPU)",
            ),
            (
                "catalog() per call, unchanged, ms at 1x / 10x / 100x",
                " / ".join(str(b["growth_catalog_ms"][k]) for k in ("1", "10", "100")),
                " / ".join(str((by.get(k) or {}).get("catalog_call_ms", "–")) for k in (1, 10, 100)) + " (in-process)",
            ),
            (
                "real stack 5x: form server-side p50 ms, user in every group (in 20 groups)",
                b["growth_real_5x_form_ms"],
                f"{_v((real5.get('form') or {}).get('server_ms'))} ({_v((real5.get('form_own') or {}).get('server_ms'))})"
                if real5
                else "not run",
            ),
        ],
    )
    lines += table(
        "3. A user in 200 groups (form < 150 ms; loop never blocked > 50 ms)",
        [
            (
                "form ms",
                f"{b['all_groups_10x_form_ms']} (every render)",
                f"warm {big.get('warm_ms', '–')}, cold {big.get('cold_ms', '–')} (in-process)" if big else "not run",
            ),
            (
                "longest loop block during a render ms",
                b["all_groups_loop_block_ms"],
                f"{big.get('loop_blocked_max_ms', '–')} (in-process)" if big else "not run",
            ),
            (
                "real stack 5x (100 groups): max loop stall ms",
                b["real_5x_loop_stall_ms"],
                real5.get("loop_stall_max_ms", "not run"),
            ),
        ],
    )
    lines += table(
        "4. Keycloak (≤ 2 calls for any spawn; 100 simultaneous spawns: auth refresh p50 < 500 ms)",
        [
            (
                "calls per spawn: browser; admin REST of a user not cached",
                f"{b['keycloak_browser_spawn_calls']}; {b['keycloak_api_spawn_calls']}",
                f"{_range((spawn.get('primehub_browser') or {}).get('keycloak_calls_per_spawn'))}; "
                f"{_range((spawn.get('primehub_api') or {}).get('keycloak_calls_per_spawn'))}",
            ),
            (
                "100 simultaneous spawns: auth refresh p50 ms; Keycloak calls",
                f"{b['concurrency_auth_refresh_p50_ms']}; {b['concurrency_keycloak_calls']}",
                f"{_v(cp.get('auth_refresh_ms'))}; {cp.get('keycloak_calls', '–')}",
            ),
        ],
    )
    lines += table(
        "5. Fast failure (≤ 0.1 s from the watch seeing FailedScheduling, p50 and max)",
        [
            (
                "event seen → failed, p50 / max s (trials)",
                f"{b['failure_seen_to_failed_s']['p50']} / {b['failure_seen_to_failed_s']['max']} ({b['failure_trials']})",
                f"{_v(fail.get('from_event_seen_s'), 'p50', 3)} / {_v(fail.get('from_event_seen_s'), 'max', 3)} ({fail.get('reps', '–')})",
            ),
            (
                "event in the reflector → failure, p50 / max ms",
                "0.5 s poll",
                f"{fail_ip.get('p50', '–')} / {fail_ip.get('max', '–')} (in-process)",
            ),
        ],
    )
    lines += table(
        "6. 100 simultaneous spawns (stall samples in our frames ≤ 5%; largest stall ≤ plain's)",
        [
            (
                "largest loop stall ms (plain KubeSpawner)",
                f"{b['concurrency_stall_max_ms']} ({b['concurrency_plain_stall_max_ms']})",
                f"{cp.get('loop_stall_max_ms', '–')} ({cpl.get('loop_stall_max_ms', '–')})",
            ),
            (
                "stall samples with primehub_hub on the stack",
                b["concurrency_ours_share"],
                f"{cp.get('stall_samples_ours', '–')} of {cp.get('stall_samples', '–')} ({_num(_share(cp))}%)",
            ),
            (
                "on PostgreSQL: largest loop stall ms; auth refresh p50 ms (plain KubeSpawner's stall)",
                "not measured",
                f"{(conc.get('primehub_postgres') or {}).get('loop_stall_max_ms', '–')}; "
                f"{_v((conc.get('primehub_postgres') or {}).get('auth_refresh_ms'))} "
                f"({(conc.get('plain_postgres') or {}).get('loop_stall_max_ms', '–')})",
            ),
        ],
    )
    srv = {x["servers"]: x for x in ((results.get("inprocess") or {}).get("servers") or [])}
    real = (results.get("servers") or {}).get("primehub") or {}
    rf = _servers_figures(real) if real.get("at_base") else {}
    ra, rz = real.get("at_base") or {}, real.get("at_n") or {}
    rn = f"{real.get('base', 10)} / {real.get('servers', 1000):,}" if rf else ""
    pre = b.get("servers_before_resume") or {}
    lines += table(
        "7. 1,000 running servers (form and spawn overhead within 1.2x of 10)",
        [
            (
                f"real stack: longest loop block during form and spawns ms, {rn or '10 / 1,000'} servers "
                "(before: the watches relisted every 10 s, 2026-12-02 13:00)",
                pre.get("loop_blocked_max_ms", "not measured"),
                f"{ra.get('loop_blocked_max_ms', '–')} / {rz.get('loop_blocked_max_ms', '–')}" if rf else "not run",
            ),
            (
                f"real stack: full lists of pods / events read by the hub while measured with {real.get('servers', 1000):,} (s)",
                pre.get("relists", "not measured"),
                _relists(rz) if rf else "not run",
            ),
            (
                f"real stack: Keycloak requests of the hub while measured with {real.get('servers', 1000):,} "
                "(the offboarding check's before)",
                pre.get("offboarding_requests", "not measured"),
                f"{rz.get('keycloak_requests', '–')} in {rz.get('window_s', '–')} s" if rf else "not run",
            ),
            (
                f"real stack: warm form server-side p50 ms, {rn or '10 / 1,000'} servers",
                pre.get("form_ms", b["servers_1000"]),
                f"{_v((ra.get('form') or {}).get('server_ms_warm'))} / {_v((rz.get('form') or {}).get('server_ms_warm'))} "
                f"({rf['form_ratio']}x)"
                if rf
                else "not run",
            ),
            (
                f"real stack: spawn overhead (ours) p50 ms, {rn or '10 / 1,000'} servers",
                pre.get("spawn_ms", b["servers_1000"]),
                f"{_v((ra.get('spawn') or {}).get('ours_ms'))} / {_v((rz.get('spawn') or {}).get('ours_ms'))} "
                f"({rf['spawn_ratio']}x)"
                if rf
                else "not run",
            ),
            (
                f"real stack: KubeSpawner's start until the pod manifest, p50 ms, {rn or '10 / 1,000'} servers "
                "(before: it sorted every event of the namespace, 2026-12-02 19:55; spawn overhead then "
                f"{(b.get('servers_before_events') or {}).get('spawn_ms', '–')})",
                (b.get("servers_before_events") or {}).get("start_to_manifest_ms", "not measured"),
                f"{_start_to_manifest(ra)} / {_start_to_manifest(rz)}" if rf else "not run",
            ),
            (
                "hub memory per running server, MiB (restarted hub; the hub that spawned them)",
                b["servers_1000"],
                f"{_num(rf['mib_restarted'], 3)}; {_num(rf['mib_running'], 3)}" if rf else "not run",
            ),
            (
                "hub restart: every server ready again, s (found of started)",
                b["servers_1000"],
                f"{_num(rf['all_ready_s'], 1)} ({rf['found']} of {real.get('servers')})" if rf else "not run",
            ),
            (
                "warm form ms, 10 / 1,000 servers",
                b["servers_1000"],
                f"{(srv.get(10) or {}).get('form_warm_ms', '–')} / {(srv.get(1000) or {}).get('form_warm_ms', '–')} (in-process)",
            ),
            (
                "form submission check ms, 10 / 1,000 servers",
                b["servers_1000"],
                f"{(srv.get(10) or {}).get('options_from_form_ms', '–')} / {(srv.get(1000) or {}).get('options_from_form_ms', '–')} (in-process)",
            ),
        ],
    )
    return lines


# --- what dominates, from the numbers ------------------------------------------------------


def _member_view_cost(view) -> str:
    """What the hub's background read of the realm's memberships cost Keycloak, in a sentence."""
    if not view:
        return ""
    return (
        f"That cost moved to the background: each read of the member view takes {view['requests']} admin requests "
        f"({view['groups']} groups, {view['users']} members) and {view['took_ms']} ms, every 10 s. "
    )


def _ours_share(frames) -> str:
    total = sum(c for _, c in frames or [])
    ours = sum(c for f, c in frames or [] if f.startswith("primehub_hub/"))
    return (
        (
            f"Of the {total} stack samples taken while the PrimeHub hub's loop was late (its 12 most frequent "
            f"frames), {ours} were in `primehub_hub`."
        )
        if total
        else ""
    )


def _top(p: dict, n: int = 3) -> str:
    return (
        ", ".join(f"`{t['function']}` {t['own_ms']} ms ({t['calls']} calls)" for t in (p.get("top") or [])[:n]) or "–"
    )


def findings(results: dict) -> list[str]:
    """Sentences about what dominates, each built from the numbers of the results file."""
    out = []
    form = results.get("form") or {}
    ph, pl = form.get("primehub") or {}, form.get("plain") or {}
    ip = results.get("inprocess") or {}
    prof = ip.get("profiles") or {}
    rows = ip.get("growth") or []
    if ph.get("server_ms_warm"):
        out.append(
            f"- **Form (case 1).** A warm render takes {_v(ph.get('server_ms_warm'))} ms server-side (p50), of which "
            f"{_v(ph.get('form_function_ms'))} ms are the spawner's form function: the rendered form is reused while the "
            "user's entitlements, quota usage, remembered choices and the catalog are unchanged, so what remains is "
            f"JupyterHub's page template around it, as for plain KubeSpawner ({_v(pl.get('server_ms_warm'))} ms)."
        )
    if prof:
        out.append(
            f"- **A cold render** (first, or after a change) in-process spends its own time in {_top(prof.get('form@1x') or {})} "
            f"at 1x; for a user in 200 groups in {_top(prof.get('form_all_groups@10x') or {})}: jinja writing one row per "
            "mounted dataset per group. It runs in a worker thread with the garbage collector paused (its many "
            "short-lived objects would otherwise set off a full collection that stops every thread), so the loop keeps "
            "serving; a warm render reuses the page."
        )
    spawn = results.get("spawn") or {}
    pb, pa = spawn.get("primehub_browser") or {}, spawn.get("primehub_api") or {}
    if pb.get("keycloak_calls_per_spawn"):
        out.append(
            f"- **Keycloak calls per spawn (case 2).** Browser spawns make {_range(pb.get('keycloak_calls_per_spawn'))} "
            "(JupyterHub's pre-spawn refresh checks the Keycloak session through userinfo; the entitlements come from "
            "the cache the form filled). An admin's REST spawn of a user the hub has not cached makes "
            f"{_range(pa.get('keycloak_calls_per_spawn'))}: the user's groups come from the member view (every "
            "group's members, read in the background every 10 s, like `everyone`); without it (a user in no group, or "
            "`keycloak_member_view` off) the user and their groups are 2 requests, whose full representations carry "
            "the role names; admin status is not read on behalf of another user."
        )
    conc = results.get("concurrency") or {}
    cp = conc.get("primehub") or {}
    if cp.get("start_to_pod_create_ms"):
        out.append(
            f"- **Concurrent spawns (case 3).** The auth refresh before each spawn took p50 {_v(cp.get('auth_refresh_ms'))} ms "
            f"({cp.get('keycloak_calls')} Keycloak calls for {cp.get('users')} users; reading the groups "
            f"{_v(cp.get('auth_refresh_entitlements_ms'), 'p50', 3)} ms of it). {_member_view_cost(cp.get('member_view'))}"
            f"{_ours_share(cp.get('stall_frames'))} The stalls' frames: {_stall_frames(cp.get('stall_frames'), 3)}."
        )
    if len(rows) >= 2:
        text = (
            "- **Growth (in-process).** With the user's own offers unchanged, the form costs "
            + " / ".join(f"{r['form_ms']} ms at {r['scale']}x" for r in rows)
            + ", one spawn's plan "
            + " / ".join(f"{r['plan_launch_ms']} ms" for r in rows)
            + ", and `catalog()` on an unchanged catalog "
            + " / ".join(f"{r['catalog_call_ms']} ms" for r in rows)
            + ": offers are looked up by granted name and the watcher keeps its Catalog until a watch event. "
            "What still grows with the platform is the one-off work after a change: "
            + " / ".join(f"{r.get('catalog_after_event_ms', '–')} ms" for r in rows)
            + " for the first `catalog()` after one watch event."
        )
        out.append(text)
    fail = (results.get("failure") or {}).get("primehub") or {}
    if fail.get("from_event_seen_s"):
        out.append(
            f"- **Fast failure (case 4)** takes {_v(fail.get('from_event_seen_s'), 'p50', 3)} s typically, "
            f"{_v(fail.get('from_event_seen_s'), 'max', 3)} s at worst from the watch seeing the event: the spawn "
            "wakes on the pod and event reflectors' changes; the rest is the watch delivering the event to the hub, "
            "the pod's removal and JupyterHub's progress stream."
        )
    srv = (results.get("servers") or {}).get("primehub") or {}
    if srv.get("restart_n"):
        f, rz = _servers_figures(srv), srv["restart_n"]
        out.append(
            f"- **Running servers (case 7).** With {srv.get('servers')} servers the warm form costs {_times(f['form_ratio'])} "
            f"and one spawn's overhead {_times(f['spawn_ratio'])} of their figures with {srv.get('base')}; the hub holds "
            f"{_num(f['mib_restarted'], 3)} MiB per running server. A restart answers its API after "
            f"{_num(rz.get('hub_api_s'), 1)} s (JupyterHub waits up to `init_spawners_timeout`, 10 s, for its checks "
            f"before serving) and has every server ready again after {_num(rz.get('all_ready_s'), 1)} s. While the "
            f"loop was late with them running it was in: {_stall_frames((srv.get('at_n') or {}).get('stall_frames'), 3)}. "
            f"Its longest block: {_num((srv.get('at_n') or {}).get('loop_blocked_max_ms'), 1)} ms with "
            f"{srv.get('servers')} servers, {_num((srv.get('at_base') or {}).get('loop_blocked_max_ms'), 1)} ms with "
            f"{srv.get('base')}. Full lists of pods / events the hub read while measured with "
            f"{srv.get('servers')} servers: {_relists(srv.get('at_n') or {})} s. KubeSpawner's reflectors list the "
            "whole namespace again at every watch restart (10 s), parsed on the loop: with 1,000 servers that "
            "held it for up to 700 ms each time (the before/after table of point 7). The hub's watches now "
            "resume from their last version and list only every `relist_seconds` (60 s; watch.py). The "
            "offboarding check looked up each user with a running server in Keycloak every 30 s: 1,000 admin "
            "requests and auth-state decrypts per check, on the hub's loop and in Keycloak; it now reads the member "
            "view once per check (offboarding.py). And the bench's own watch of the namespace replayed every pod "
            "every 5 s, which took most of a core of this 2-core machine beside the hub it measured; it now "
            "resumes too, and is off during this case. KubeSpawner's start read the pod's events by sorting every "
            f"event of the namespace ({_held_events(srv.get('at_n'))} with {srv.get('servers')} servers), about "
            "11 ms more per spawn with 1,000 servers; the spawner now reads them from the event reflector's index "
            "by pod (spawn_scheduling.py). What is left of the largest stall is the garbage "
            f"collector's full pass over the hub's heap: {_gc(srv.get('at_base'))} with {srv.get('base')} servers, "
            f"{_gc(srv.get('at_n'))} with {srv.get('servers')} (when one fell in the window)."
        )
    return out


def _held_events(x: dict | None) -> str:
    return str(((x or {}).get("held") or {}).get("events", "thousands"))


def write(results: dict) -> Path:
    runs = [v.get("run") for v in results.values() if isinstance(v, dict) and v.get("run")]
    latest = max(runs, key=lambda r: r.get("date", "")) if runs else {}
    m, ver = latest.get("machine", {}), latest.get("versions", {})
    body: list[str] = []
    verdicts: dict = {}
    for key, fn in (
        ("form", section_form),
        ("spawn", section_spawn),
        ("concurrency", section_concurrency),
        ("failure", section_failure),
        ("growth", section_growth),
        ("servers", section_servers),
        ("inprocess", section_inprocess),
    ):
        if key in results:
            lines, v = fn(results[key])
            body += lines
            verdicts.update(v)
    head = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/bin/python -m benchmarks`; `--quick` for a smaller run, `--only CASE` to "
        "refresh one case; `python -m benchmarks.report` rewrites this page from the last results) from "
        "`.local-stack/bench/results.json`. The run uses the local stack (`make up`) and only objects of its own: "
        "namespace `bench`, Keycloak users, groups and grant roles named `bench-…` and a temporary client `bench-hub` "
        "in realm `primehub`, and its own hubs on 127.0.0.1:9080 (proxy; 9000 is Keycloak's management port), :9001 "
        "(proxy API) and :9081 (hub), started from `hub-config/jupyterhub_config.py` with `benchmarks/hub_extra/` as "
        "the extra config. That adds instrumentation only (`benchmarks/hubside.py`: call counters at tornado's "
        "`AsyncHTTPClient.fetch` and kubernetes_asyncio's `ApiClient.call_api`, timers in subclasses of the spawner "
        "and authenticator, a loop-stall probe, `/hub/bench/stats`) and three bench settings for both hubs alike: "
        "`slow_spawn_timeout` 0 (spawn requests answer 202 at once), no home volume, and single-user pods running a "
        "stand-in server (case 3; case 7's thousand are answered by a node agent of its own on extra nodes). "
        "Everything is removed at the end. No test asserts on time; this page is the record.",
        "",
        f"**Machine**: {m.get('cores', '?')} cores ({m.get('cpu', '?')}), {m.get('memory_gib', '?')} GiB memory, Linux "
        f"{m.get('kernel', '?')}. It also runs the whole local stack (etcd, kube-apiserver, scheduler, controller "
        "manager, node agent, Keycloak, the lead's hub and its tests), so absolute times are noisy and p95s of small "
        "samples are close to the maximum; ratios within one run are the robust part.",
        "",
        "**Versions**: "
        + ", ".join(f"{k} {v}" for k, v in ver.items() if k not in ("commit", "hub_config_uncommitted_changes"))
        + f"; repository commit {ver.get('commit', '?')}"
        + (" with uncommitted changes in hub-config/" if ver.get("hub_config_uncommitted_changes") else "")
        + ".",
        "",
        "**Runs on this page**: "
        + "; ".join(
            sorted({f"{r.get('date', '?')} `{r.get('command', '?')}` ({r.get('seconds', '?')} s)" for r in runs})
        )
        + ".",
        "",
        "## Targets",
        "",
        "| target | result | measured |",
        "| --- | --- | --- |",
        *[f"| {k} | {_met(ok)} | {txt} |" for k, (ok, txt) in verdicts.items()],
        "",
    ]
    head += section_before_after(results)
    found = findings(results)
    if found:
        head += ["## What dominates", "", *found, ""]
    body += [
        "## How it is measured",
        "",
        "- Calls are charged to the request that caused them: the bench hub gives each request a record in a "
        "contextvar; the spawn task, the spawner's start and every call they make inherit it, so a spawn's "
        "Keycloak and Kubernetes calls are counted even after its 202 went out. Reflector watches are started with "
        "the record cleared, so their relists count for no request.",
        "- Server-side times are the hub's own (`request_time()`, the `log:192` number); timings of our code come "
        "from subclasses of `PrimeHubSpawner`, `KubeSpawner` and `PrimeHubAuthenticator` in `benchmarks/hubside.py`, "
        "plus a probe class placed between `PrimeHubSpawner` and `KubeSpawner` in the MRO that marks where "
        "KubeSpawner's pod creation begins.",
        "- A measurement during which one of the shared servers restarted (other tests do that) or which failed is "
        "repeated once; a second disturbance is noted in its section.",
        "- `--quick` runs 10 renders, 4 spawns per flow, 20 concurrent users (quota fits 8), 3 fast-failure trials, "
        "2x real-stack growth and in-process growth to 10x, in about 4 minutes; the default run takes 9 to 15 minutes "
        "on this machine. `--in-process` runs only the in-process case, without the local stack (about a minute). "
        "Case 7 keeps 1,000 servers running (`--quick`: 100; `--servers N` for another number).",
        "",
    ]
    DOC.write_text("\n".join(head + body).rstrip() + "\n")
    return DOC


if __name__ == "__main__":
    print(write(json.loads((STATE / "results.json").read_text())), file=sys.stderr)
