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
    out += [f"- `{k}`: {v['disturbed']} (measured twice; both times disturbed)" for k, v in case.items()
            if isinstance(v, dict) and v.get("disturbed")]
    return (["", "Notes on this run:", *out, ""]) if out else []


def _stall_frames(frames, n: int = 4) -> str:
    return "; ".join(f"`{f}` ({c})" for f, c in (frames or [])[:n]) or "–"


# --- sections ----------------------------------------------------------------------------

def section_form(res: dict):
    ph, pl = res.get("primehub") or {}, res.get("plain") or {}
    ratio = _ratio((ph.get("server_ms_warm") or {}).get("p50"), (pl.get("server_ms_warm") or {}).get("p50"))
    kc, k8s = _max(ph.get("keycloak_calls_per_render")), _max(ph.get("k8s_calls_per_render"))
    ok_ratio = None if ratio is None else ratio <= 1.5
    ok_calls = None if kc is None else (kc == 0 and k8s == 0)
    lines = [
        "## 1. Options form", "", _run_line(res), "",
        "GET /hub/spawn for `bench-form`, a user in 20 groups, with a catalog of 200 instance types, 100 images and "
        "500 datasets (custom resources in namespace `bench`; grants are realm roles of the groups; each group offers "
        "about 30 instance types, 15 images, and mounts about 100 datasets). Server-side time is the hub's own "
        "request time (the number in its `log:192 … 200 GET /hub/spawn … ms` line). *Warm*: the Keycloak user cache "
        "(30 s) valid and no auth refresh during the request. The plain KubeSpawner hub has the same authenticator "
        "and a static `profile_list` generated from the same offers with the hub's own functions: one profile per "
        "group, instance type and image as profile options with the same overrides, the same dataset volumes, and "
        "the mounted datasets listed in the description so both pages carry the same information (plus the two small "
        "profiles of cases 3 and 4).", "",
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
        f"**Ratio PrimeHub / plain, warm p50: {ratio if ratio is not None else '–'}x** (target ≤ 1.5x): {_met(ok_ratio)}. "
        f"Zero Kubernetes and Keycloak calls per warm render: {_met(ok_calls)}.",
        "",
    ]
    return lines + _errors(res), {"1. form ≤ 1.5x plain KubeSpawner": (ok_ratio, f"{ratio}x"),
                                  "1. form: 0 Kubernetes/Keycloak calls per warm render": (ok_calls, f"Keycloak {kc}, Kubernetes {k8s}")}


def _spawn_row(name: str, d: dict | None) -> str:
    d = d or {}
    if d.get("error"):
        return f"| {name} | failed | | | | | | | | | |"
    return (f"| {name} | {d.get('spawns', '–')} | {_v(d.get('ours_ms'))} | {_v(d.get('ours_ms'), 'p95')} | "
            f"{_v(d.get('options_from_form_ms'))} | {_v(d.get('load_user_options_ms'))} | {_v(d.get('quota_list_pods_ms'))} | "
            f"{_v(d.get('pod_manifest_ms'))} | {_v(d.get('auth_refresh_ms'))} | {_v(d.get('request_to_pod_create_ms'))} | "
            f"{_range(d.get('keycloak_calls_per_spawn'))} | {_range(d.get('k8s_calls_per_spawn'))} |")


def section_spawn(res: dict):
    pb, pa = res.get("primehub_browser") or {}, res.get("primehub_api") or {}
    p95 = _max([(pb.get("ours_ms") or {}).get("p95"), (pa.get("ours_ms") or {}).get("p95")])
    kc_b, kc_a = _max(pb.get("keycloak_calls_per_spawn")), _max(pa.get("keycloak_calls_per_spawn"))
    ok_time = None if p95 is None else p95 <= 50
    ok_kc_b = None if kc_b is None else kc_b <= 1
    ok_kc_a = None if kc_a is None else kc_a <= 1
    lines = [
        "## 2. Spawn overhead", "", _run_line(res), "",
        "One spawn at a time. *browser*: `bench-form` (20 groups) loads the form and submits it, as JupyterHub's page "
        "does; JupyterHub first refreshes the user's auth (`refresh_pre_spawn`, on whenever auth state is). *api*: an "
        "admin token starts each of 20 users' first server (`POST /hub/api/users/{name}/server`), so their Keycloak "
        "entitlements are not cached yet. **ours** = `options_from_form` (parsing + the full entitlement and quota "
        "check) + the spawner's window from `start()` to the moment KubeSpawner's pod creation request begins: "
        "`load_user_options` (plan and overrides), shared volumes, the group's quota lock and live pod count, and "
        "KubeSpawner's own pod manifest (its column shows how much of the window that is). The authenticator's "
        "pre-spawn refresh is ours too, but runs before the spawner: it is its own column. Calls are all calls "
        "charged to the spawn request, KubeSpawner's and JupyterHub's included.", "",
        "| spawner, flow | spawns | ours p50 ms | ours p95 ms | options_from_form p50 | load_user_options p50 | quota pod list p50 | KubeSpawner manifest p50 | auth refresh p50 | request→pod create p50 | Keycloak calls/spawn | Kubernetes calls/spawn |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        _spawn_row("PrimeHub, browser", pb),
        _spawn_row("PrimeHub, api", pa),
        _spawn_row("plain, browser", res.get("plain_browser")),
        _spawn_row("plain, api", res.get("plain_api")),
        "",
        *(["(– in the pod list column: the groups have no quota, so no pods are counted.)", ""]
          if not (pb.get("quota_list_pods_ms") or {}).get("n") else []),
        f"Target p95 ≤ 50 ms: {_met(ok_time)} (worst p95 {_num(p95)} ms). Target ≤ 1 Keycloak call per spawn: "
        f"{_met(ok_kc_b)} for the user's own spawn through the form ({kc_b}), {_met(ok_kc_a)} for an admin's REST "
        f"spawn of a user whose entitlements are not cached ({kc_a}).",
        "",
    ]
    pbr = res.get("plain_browser") or {}
    if pbr.get("ours_ms"):
        lines += [f"For scale: plain KubeSpawner's same window (its `load_user_options` applying a profile, and its "
                  f"manifest) takes p50 {_v(pbr.get('ours_ms'))} ms, p95 {_v(pbr.get('ours_ms'), 'p95')} ms on this machine.", ""]
    slow = pb.get("slowest") or []
    if slow:
        lines += ["The slowest PrimeHub browser spawns (ms): " + "; ".join(
            ", ".join(f"{k} {v}" for k, v in row.items() if v and k in (
                "ours_ms", "options_from_form", "load_user_options", "load_primehub_user", "load_catalog",
                "lock_and_list_ms", "quota_list_pods", "pod_manifest")) for row in slow), ""]
    fails = [f for key in ("primehub_browser", "primehub_api", "plain_browser", "plain_api")
             for f in ((res.get(key) or {}).get("failures") or [])]
    if fails:
        lines += [f"{len(fails)} spawn(s) failed during the run: " + " | ".join(fails[:3]), ""]
    calls = pb.get("calls") or {}
    if calls:
        lines += [f"All calls of the {pb.get('spawns')} PrimeHub browser spawns together (`http` = the hub checking the new "
                  "server answers, `proxy` = adding its route):", "", "| call | count |", "| --- | ---: |"]
        lines += [f"| `{k}` | {v} |" for k, v in calls.items()]
        lines.append("")
    return lines + _errors(res), {
        "2. spawn overhead p95 ≤ 50 ms": (ok_time, f"ours p95 {_num(p95)} ms; whole request → pod creation p50 "
                                          f"{_v(pb.get('request_to_pod_create_ms'))} ms (browser, incl. auth refresh), "
                                          f"{_v(pa.get('request_to_pod_create_ms'))} ms (admin REST, incl. a Keycloak load)"),
        "2. spawn ≤ 1 Keycloak call, user's own spawn (form)": (ok_kc_b, f"{kc_b} per spawn"),
        "2. spawn ≤ 1 Keycloak call, admin REST spawn of a user not cached": (ok_kc_a, f"{kc_a} per spawn"),
    }


def _conc_row(name: str, d: dict | None) -> str:
    d = d or {}
    if d.get("error"):
        return f"| {name} | failed | | | | | | | | | |"
    ready = d.get("all_ready_s")
    if ready is None and d.get("ready") is not None:
        ready = f"{d['ready']} ready, last at {_v(d.get('ready_s'), 'max', 2)}"
    return (f"| {name} | {d.get('users', '–')} | {d.get('pods_created', '–')} | {d.get('all_pods_exist_s', '–')} | "
            f"{d.get('all_pods_running_s', '–')} | {ready if ready is not None else '–'} | {d.get('loop_stall_max_ms', '–')} | "
            f"{d.get('loop_blocked_max_ms', '–')} | {d.get('loop_stalls_over_100ms', '–')} | "
            f"{_v(d.get('start_to_pod_create_ms'))} / {_v(d.get('start_to_pod_create_ms'), 'p95')} | "
            f"{_v(d.get('auth_refresh_ms'))} | {d.get('keycloak_calls', '–')} | {d.get('k8s_calls', '–')} |")


def section_concurrency(res: dict):
    ph, pl, q = res.get("primehub") or {}, res.get("plain") or {}, res.get("primehub_quota") or {}
    stall = _max([ph.get("loop_stall_max_ms"), q.get("loop_stall_max_ms")])
    ok_stall = None if stall is None else stall < 100
    ok_quota = q.get("quota_held")
    run = res.get("run") or {}
    n = (run.get("config") or {}).get("users", ph.get("users"))
    lines = [
        "## 3. Concurrent spawns", "", _run_line(res), "",
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
        "| run | users | pods created | all pods exist s | all Running s | all ready s | max loop stall ms | of it blocked ms | stalls > 100 ms | start→pod create p50 / p95 ms | auth refresh p50 ms | Keycloak calls | Kubernetes calls |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        _conc_row("PrimeHub", ph),
        _conc_row(f"PrimeHub, project quota fits {q.get('quota_expected_pods', 'k')}", q),
        _conc_row("plain KubeSpawner", pl),
        "",
        f"Ratios PrimeHub / plain: every pod exists {_ratio(ph.get('all_pods_exist_s'), pl.get('all_pods_exist_s'))}x, "
        f"every server ready {_ratio(ph.get('all_ready_s'), pl.get('all_ready_s'))}x. "
        + (f"In the PrimeHub run each spawn waited {_v(ph.get('quota_lock_wait_ms'))} ms (p50; p95 "
           f"{_v(ph.get('quota_lock_wait_ms'), 'p95')} ms) for its group's quota lock."
           if (ph.get("quota_lock_wait_ms") or {}).get("n") else
           "The group has no quota, so its spawns take no quota lock; with the project quota, each spawn waited "
           f"p50 {_v(q.get('quota_lock_wait_ms'))} ms (p95 {_v(q.get('quota_lock_wait_ms'), 'p95')} ms) for it."),
        "",
        f"Max loop stall < 100 ms: {_met(ok_stall)} ({_num(stall)} ms). While the loop was late, the watchdog found it in: "
        f"{_stall_frames(ph.get('stall_frames'))} (PrimeHub run); {_stall_frames(pl.get('stall_frames'))} (plain run).",
        "",
        f"No quota overrun: {_met(ok_quota)}: {q.get('pods_created', '–')} pods were created and "
        f"{q.get('pods_alive_after', '–')} were alive afterwards for a project quota that fits "
        f"{q.get('quota_expected_pods', '–')}; the other spawns were refused before any pod was made. Plain "
        "KubeSpawner has no quota to test.",
        "",
    ]
    return lines + _errors(res), {"3. max event-loop stall < 100 ms": (ok_stall, f"{_num(stall)} ms (blocked "
                                                                          f"{_num(_max([ph.get('loop_blocked_max_ms'), q.get('loop_blocked_max_ms')]))} ms)"),
                                  "3. no quota overrun (exactly k pods)": (ok_quota, f"{q.get('pods_created')} pods, k = {q.get('quota_expected_pods')}")}


def section_failure(res: dict):
    ph, pl = res.get("primehub") or {}, res.get("plain") or {}
    worst = (ph.get("from_event_stamp_s") or {}).get("max")
    ok = None if worst is None else bool(worst <= 1.0 and ph.get("all_failed"))
    lines = [
        "## 4. Fast failure", "", _run_line(res), "",
        "A spawn whose instance type asks for 64 CPUs (no node has them). From the scheduler's FailedScheduling event "
        "(its own `eventTime`; and when our watch saw it) to the spawn's progress stream "
        "(`GET /hub/api/users/{name}/server/progress`) ending with `failed`. Plain KubeSpawner waits for its start "
        f"timeout ({res.get('start_timeout_s', 30)} s here).", "",
        "| | trials | event time → failed, p50 / max s | event seen → failed, p50 / max s | POST → failed, p50 s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, d in (("PrimeHub", ph), ("plain KubeSpawner", pl)):
        lines.append(f"| {name} | {d.get('reps', '–')} | {_v(d.get('from_event_stamp_s'), 'p50', 2)} / {_v(d.get('from_event_stamp_s'), 'max', 2)} | "
                     f"{_v(d.get('from_event_seen_s'), 'p50', 2)} / {_v(d.get('from_event_seen_s'), 'max', 2)} | {_v(d.get('post_to_failed_s'), 'p50', 2)} |")
    lines += ["", f"Target ≤ 1 s: {_met(ok)} (worst {worst} s). PrimeHub's user reads: “{ph.get('message', '')}”; "
              f"plain KubeSpawner's: “{pl.get('message', '')}”.", ""]
    return lines + _errors(res), {"4. fast failure ≤ 1 s": (ok, f"worst {_num(worst, 2)} s")}


def section_growth(res: dict):
    real = res.get("real") or {}
    rows = res.get("inprocess") or []
    lines = [
        "## 5. Growth", "", _run_line(res), "",
        "Groups and resources grow together: at scale s, 20s groups, 200s instance types, 100s images, 500s datasets; "
        "the user is in every group; each group keeps offering about 30 instance types and 15 images and granting 25 "
        "datasets of its own, and 100 datasets stay shared (not launch-group-only). **In-process** calls the functions "
        "the hub calls, with the same generated data and no Keycloak or HTTP: the form (`build_form` + `render_form`), "
        "one spawn's `plan_launch`, and `CatalogWatcher.catalog()` on a warm cache (called on every render and twice "
        "per spawn). A full form render that would take minutes is projected as groups × the measured cost of one "
        "group's offer (marked ≈; the HTML rendering is left out of the projection).", "",
        "| scale | groups | instance types | images | datasets | form ms | page bytes | plan_launch (one spawn) ms | one group's offer ms | catalog() per call ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        form = f"≈{r['form_ms']:.0f}" if r.get("form_projected") else f"{r['form_ms']:.1f}"
        lines.append(f"| {r['scale']}x | {r['groups']} | {r['instance_types']} | {r['images']} | {r['datasets']} | {form} | "
                     f"{r.get('html_bytes', '–')} | {r['plan_launch_ms']} | {r['group_offer_ms']} | {r['catalog_call_ms']} |")
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
            "", "**Through the real stack** (Keycloak, custom resources, a bench hub; the same measurements as cases 1 "
            "and 2). The default run does 5x, whose Keycloak objects take about 2.5 minutes to create in the local "
            "Keycloak (a dev-mode database that also times out on large imports); `--only growth --growth-real-scale 10` "
            "adds a 10x column (5 to 7 minutes of setup). 100x is not run this way: 2,000 groups with 80,000 grant roles "
            "and 80,000 custom resources take far longer to create than a run may last, and one form render would "
            "block the hub for many minutes (projection above).", "",
            "| measure | " + " | ".join(f"{c['scale']}x" for c in cols) + " |",
            "| --- | " + " | ".join("---:" for _ in cols) + " |",
            row("measured", lambda c: c.get("date", "?")),
            row("groups / instance types / images / datasets", lambda c: f"{c['groups']} / {c['instance_types']} / {c['images']} / {c['datasets']}"),
            row("setup: Keycloak s, custom resources s", lambda c: f"{c.get('keycloak_setup_s')}, {c.get('k8s_setup_s')}"),
            row("form, server-side ms p50 (renders)", lambda c: f"{_v((c.get('form') or {}).get('server_ms'))} ({(c.get('form') or {}).get('renders', '–')})"),
            row("form, cold Keycloak cache: ms; Keycloak calls", lambda c: f"{((c.get('form') or {}).get('cold') or {}).get('server_ms', '–')}; {((c.get('form') or {}).get('cold') or {}).get('keycloak_calls', '–')}"),
            row("page bytes", lambda c: (c.get("form") or {}).get("html_bytes", "–")),
            row("spawn, browser: ours p50 ms", lambda c: _v((c.get("spawn_browser") or {}).get("ours_ms"))),
            row("spawn, browser: auth refresh p50 ms; Keycloak calls", lambda c: f"{_v((c.get('spawn_browser') or {}).get('auth_refresh_ms'))}; {_range((c.get('spawn_browser') or {}).get('keycloak_calls_per_spawn'))}"),
            row("spawn, api (first spawn): ours p50 ms", lambda c: _v((c.get("spawn_api") or {}).get("ours_ms"))),
            row("spawn, api: auth refresh p50 ms; Keycloak calls", lambda c: f"{_v((c.get('spawn_api') or {}).get('auth_refresh_ms'))}; {_range((c.get('spawn_api') or {}).get('keycloak_calls_per_spawn'))}"),
            row("hub event loop: max stall ms (of it blocked)", lambda c: f"{c.get('loop_stall_max_ms', '–')} ({c.get('loop_blocked_max_ms', '–')})"),
            row("where the loop was while stalled", lambda c: _stall_frames(c.get("stall_frames"), 3)),
        ]
    prof = res.get("profiles") or {}
    if prof:
        lines += ["", "Where the time goes (cProfile of one call, functions by own time):", ""]
        for name, p in prof.items():
            lines.append(f"- `{name}`, {p['total_ms']} ms: " + "; ".join(
                f"`{t['function']}` {t['own_ms']} ms in {t['calls']} calls" for t in p["top"][:4]))
    lines.append("")
    return lines + _errors(res), {}


# --- what dominates, from the numbers ------------------------------------------------------

def _ours_share(frames) -> str:
    total = sum(c for _, c in frames or [])
    ours = sum(c for f, c in frames or [] if f.startswith("primehub_hub/"))
    return (f"Of the {total} stack samples taken while the PrimeHub hub's loop was late (its 12 most frequent "
            f"frames), {ours} were in `primehub_hub`.") if total else ""


def findings(results: dict) -> list[str]:
    """Sentences about what dominates, each built from the numbers of the results file."""
    out = []
    form = results.get("form") or {}
    ph, pl = form.get("primehub") or {}, form.get("plain") or {}
    growth = results.get("growth") or {}
    prof = growth.get("profiles") or {}
    rows = growth.get("inprocess") or []
    if ph.get("form_function_ms"):
        f1, f10 = prof.get("form@1x") or {}, prof.get("form@10x") or {}
        top = lambda p: ", ".join(f"`{t['function']}` {t['own_ms']} ms ({t['calls']} calls)" for t in (p.get("top") or [])[:3]) or "–"  # noqa: E731
        out.append(
            f"- **Form (case 1).** Of the {_v(ph.get('server_ms_warm'))} ms of a warm render (p50), "
            f"{_v(ph.get('form_function_ms'))} ms are the spawner's form function, pure CPU in the hub's event loop (no "
            f"calls). One render profiled in-process spends its own time in {top(f1)} at 1x, and in {top(f10)} at 10x. "
            "`dataset_decisions` walks the whole dataset catalog once per launch group and collects every other group's "
            "dataset grants for each of them, so the form model grows with groups × (datasets + groups × grants); "
            "jinja then renders one row per mounted dataset per group. The plain baseline costs "
            f"{_v(pl.get('server_ms_warm'))} ms because KubeSpawner renders a static `profile_list` form once per "
            "spawner and keeps the string: only JupyterHub's page template runs per request. Indexing the catalog by "
            "granted name (instead of scanning it per group), computing the user's dataset grants once per render, and "
            "caching the rendered form per user keyed by catalog version, user-info load and usage would close most of "
            "the gap.")
    spawn = results.get("spawn") or {}
    pb, pa = spawn.get("primehub_browser") or {}, spawn.get("primehub_api") or {}
    if pb.get("keycloak_calls_per_spawn"):
        kb, ka = _max(pb.get("keycloak_calls_per_spawn")), _max(pa.get("keycloak_calls_per_spawn"))
        browser_calls = ", ".join(f"`{k.split(' ', 1)[1]}` {v}" for k, v in (pb.get("calls") or {}).items() if k.startswith("keycloak"))
        out.append(
            f"- **Keycloak calls per spawn (case 2).** Browser spawns make up to {kb} ({browser_calls or 'none'} over "
            f"{pb.get('spawns')} spawns): JupyterHub refreshes auth before every spawn (`refresh_pre_spawn`) and "
            "`PrimeHubAuthenticator.refresh_user` checks the Keycloak session through userinfo; the spawner itself hits "
            f"the user cache. An admin's REST spawn of a user whose entitlements are not cached makes up to {ka}: one "
            "full load (the user, their groups, one role-mappings request per group, their role mappings for admin "
            "status, plus `everyone` every 30 s). A realm-wide group → grants cache refreshed in the background would "
            "make that one or two calls whatever the number of groups.")
        out.append(
            f"- **Spawn time (case 2).** Our window p50 {_v(pb.get('ours_ms'))} ms (browser) and "
            f"{_v(pa.get('ours_ms'))} ms (api); its parts (p50): `options_from_form` {_v(pb.get('options_from_form_ms'))}, "
            f"`load_user_options` {_v(pb.get('load_user_options_ms'))}, "
            + (f"live pod list {_v(pb.get('quota_list_pods_ms'))}, " if (pb.get("quota_list_pods_ms") or {}).get("n") else "")
            + f"KubeSpawner's manifest {_v(pb.get('pod_manifest_ms'))} ms. `options_from_form` and `load_user_options` each "
            "run the whole plan, and each reads the user's auth state (decrypted in a thread) and `CatalogWatcher.catalog()` "
            "(which copies and sorts every custom resource to see whether anything changed). The tail (p95) is mostly "
            "the shared machine: plain KubeSpawner's own window has one of the same size here "
            f"(p95 {_v((spawn.get('plain_browser') or {}).get('ours_ms'), 'p95')} ms).")
    conc = results.get("concurrency") or {}
    cp = conc.get("primehub") or {}
    if cp.get("start_to_pod_create_ms"):
        lock = cp.get("quota_lock_wait_ms") or {}
        lock_text = (f"Spawns waited p50 {_v(lock)} ms for their group's quota lock, held while listing the group's "
                     "pods and creating the pod. " if lock.get("n") else
                     "Spawns of a group without quotas do not take the quota lock. ")
        out.append(
            f"- **Concurrent spawns (case 3).** {lock_text}The auth refresh before each spawn took p50 "
            f"{_v(cp.get('auth_refresh_ms'))} ms: {cp.get('keycloak_calls')} Keycloak calls for {cp.get('users')} users "
            "queue behind tornado's HTTP client (10 connections at a time) and the stalled loop. The loop stalls are mostly JupyterHub's own "
            "synchronous SQLite work (`sqlalchemy … do_commit / do_execute`) in both hubs; plain KubeSpawner adds "
            "a deep copy of its whole `profile_list` per spawner (`_get_initialized_profile_list`). "
            f"{_ours_share(cp.get('stall_frames'))} Frames "
            "`tornado/platform/asyncio.py:…(start)` mean the loop was idle but the process had no core (starved, not blocked).")
    if len(rows) >= 2:
        a, b = rows[0], rows[1]
        text = (f"- **Growth (case 5).** From {a['scale']}x to {b['scale']}x the form goes from {a['form_ms']:.0f} ms to "
                f"{b['form_ms']:.0f} ms ({b['form_ms'] / a['form_ms']:.0f}x for 10x the platform), while one spawn's "
                f"`plan_launch` goes from {a['plan_launch_ms']} to {b['plan_launch_ms']} ms. The form blocks the event "
                "loop for its whole duration: at 10x no other request is served for seconds.")
        if len(rows) > 2:
            c = rows[2]
            text += (f" At {c['scale']}x `CatalogWatcher.catalog()` alone costs {c['catalog_call_ms']} ms per call even "
                     "when nothing changed (it is called on every render and twice per spawn); a version counter bumped "
                     "by the reflectors' events would make it constant.")
        out.append(text)
    fail = (results.get("failure") or {}).get("primehub") or {}
    if fail.get("from_event_stamp_s"):
        out.append(
            f"- **Fast failure (case 4)** takes {_v(fail.get('from_event_stamp_s'), 'p50', 2)} s typically, "
            f"{_v(fail.get('from_event_stamp_s'), 'max', 2)} s at worst: the spawner looks at the pod every "
            "`scheduling_poll_interval` (0.5 s). Reacting to the pod reflector's update instead of polling would leave "
            "only the watch latency.")
    return out


def write(results: dict) -> Path:
    runs = [v.get("run") for v in results.values() if isinstance(v, dict) and v.get("run")]
    latest = max(runs, key=lambda r: r.get("date", "")) if runs else {}
    m, ver = latest.get("machine", {}), latest.get("versions", {})
    body: list[str] = []
    verdicts: dict = {}
    for key, fn in (("form", section_form), ("spawn", section_spawn), ("concurrency", section_concurrency),
                    ("failure", section_failure), ("growth", section_growth)):
        if key in results:
            lines, v = fn(results[key])
            body += lines
            verdicts.update(v)
    head = [
        "# Benchmarks", "",
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
        "stand-in server (case 3). Everything is removed at the end. No test asserts on time; this page is the record.",
        "",
        f"**Machine**: {m.get('cores', '?')} cores ({m.get('cpu', '?')}), {m.get('memory_gib', '?')} GiB memory, Linux "
        f"{m.get('kernel', '?')}. It also runs the whole local stack (etcd, kube-apiserver, scheduler, controller "
        "manager, node agent, Keycloak, the lead's hub and its tests), so absolute times are noisy and p95s of small "
        "samples are close to the maximum; ratios within one run are the robust part.",
        "",
        "**Versions**: " + ", ".join(f"{k} {v}" for k, v in ver.items() if k not in ("commit", "hub_config_uncommitted_changes"))
        + f"; repository commit {ver.get('commit', '?')}"
        + (" with uncommitted changes in hub-config/" if ver.get("hub_config_uncommitted_changes") else "") + ".",
        "",
        "**Runs on this page**: " + "; ".join(sorted({f"{r.get('date', '?')} `{r.get('command', '?')}` ({r.get('seconds', '?')} s)"
                                                     for r in runs})) + ".",
        "",
        "## Targets", "",
        "| target | result | measured |",
        "| --- | --- | --- |",
        *[f"| {k} | {_met(ok)} | {txt} |" for k, (ok, txt) in verdicts.items()],
        "",
    ]
    found = findings(results)
    if found:
        head += ["## What dominates", "", *found, ""]
    body += [
        "## How it is measured", "",
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
        "- `--quick` runs 10 renders, 4 spawns per flow, 20 concurrent users (quota fits 8), 2x real-stack growth and "
        "in-process growth to 10x, in about 4 minutes; the default run takes 9 to 15 minutes on this machine.",
        "",
    ]
    DOC.write_text("\n".join(head + body).rstrip() + "\n")
    return DOC


if __name__ == "__main__":
    print(write(json.loads((STATE / "results.json").read_text())), file=sys.stderr)
