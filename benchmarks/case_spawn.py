"""Case 2: the hub's own work per spawn, one spawn at a time.

Two ways in, both as they happen in production:
- browser: the user (logged in through Keycloak) loads the form and submits it (POST /hub/spawn);
  JupyterHub refreshes the user's auth first (refresh_pre_spawn, on with auth state);
- api: an admin starts servers for users through the REST API (POST /hub/api/users/{name}/server),
  each user's first spawn, so their Keycloak entitlements are not cached yet.

"Our code" is options_from_form (form parsing and the full entitlement/quota check) plus the
spawner's window from start() to the moment KubeSpawner's pod creation request begins (plan,
overrides, shared volumes, quota lock and pod count). The authenticator's pre-spawn refresh is
reported on its own line: it is ours too, but runs before the spawner is involved.
"""

from __future__ import annotations

from .measure import calls_of, merged_calls, our_window, summary
from .stack import PUBLIC_URL, BenchHub, Kube, log, wait_stack, xsrf


def form_fields(variant: str, group: str, it: str, img: str) -> dict:
    if variant == "plain":
        return {"profile": group, f"profile-option-{group}--instance_type": it, f"profile-option-{group}--image": img}
    return {"group": group, f"instance_type@{group}": it, f"image@{group}": img}


def api_options(variant: str, group: str, it: str, img: str) -> dict:
    if variant == "plain":
        return {"profile": group, "instance_type": it, "image": img}
    return {"group": group, "instance_type": it, "image": img}


def _spawn_records(records: list[dict], method: str, path_prefix: str) -> list[dict]:
    return [
        r
        for r in records
        if r["method"] == method and r["path"].startswith(path_prefix) and "start" in (r.get("marks") or {})
    ]


# The window's steps in order (hubside.py marks them): apply_user_options (the plan), JupyterHub
# until spawner.start(), JupyterHub's commit and the hops until KubeSpawner's _start runs,
# KubeSpawner until the pod manifest (the watches, the pod's events, the home volume), the
# manifest and our volumes until the create request, the quota lock and count until the pod create.
SEGMENTS = ("start", "applied", "spawner_start", "kube_start", "manifest", "create_request", "pod_create")


def _segments(records: list[dict]) -> dict:
    """p50 ms of each step of the window, to see which one grows (marks missing: left out)."""
    marks = [r.get("marks") or {} for r in records]
    return {
        f"{a}->{b}": summary([m[b] - m[a] for m in marks if a in m and b in m]).get("p50")
        for a, b in zip(SEGMENTS, SEGMENTS[1:])
    }


def _describe(records: list[dict]) -> dict:
    ours = []
    for r in records:
        window = our_window(r)
        ours.append(None if window is None else window + r["timings"].get("options_from_form", 0.0))
    return {
        "spawns": len(records),
        "ours_ms": summary(ours),
        "options_from_form_ms": summary([r["timings"].get("options_from_form") for r in records]),
        "start_to_pod_create_ms": summary([our_window(r) for r in records]),
        "load_user_options_ms": summary([r["timings"].get("load_user_options") for r in records]),
        "pod_manifest_ms": summary([r["timings"].get("pod_manifest") for r in records]),
        "load_primehub_user_ms": summary([r["timings"].get("load_primehub_user") for r in records]),
        "pvc_create_ms": summary([r["timings"].get("pvc_create") for r in records]),
        "get_env_ms": summary([r["timings"].get("get_env") for r in records]),
        # garbage collections the spawn's request set off (the whole request, not only the window)
        "gc_ms": summary([r["timings"].get("gc", 0.0) for r in records]),
        # the hub thread's CPU inside the manifest: the rest of its wall time is waiting
        "pod_manifest_cpu_ms": summary([(r.get("cpu") or {}).get("pod_manifest") for r in records]),
        "segments_p50_ms": _segments(records),
        "quota_list_pods_ms": summary([r["timings"].get("quota_list_pods") for r in records]),
        "auth_refresh_ms": summary([r["timings"].get("refresh_user") for r in records]),
        "request_to_pod_create_ms": summary([(r.get("marks") or {}).get("pod_create") for r in records]),
        "keycloak_calls_per_spawn": [calls_of(r, "keycloak") for r in records],
        "k8s_calls_per_spawn": [calls_of(r, "k8s") for r in records],
        "calls": merged_calls(records),
        # what the slowest spawns spent their time on
        "slowest": [
            {
                "ours_ms": round(o, 1),
                **{k: round(v, 1) for k, v in r["timings"].items()},
                "lock_and_list_ms": round(r["marks"]["pod_create"] - r["marks"]["create_request"], 1)
                if "quota_list" in r["marks"] and "pod_create" in r["marks"]
                else None,
            }
            for o, r in sorted(((o, r) for o, r in zip(ours, records) if o is not None), key=lambda x: -x[0])[:3]
        ],
    }


def run_browser(hub: BenchHub, session, variant: str, user: str, choices: list[tuple[str, str, str]], n: int) -> dict:
    log(f"spawn ({variant}, browser form): {n} spawns of {user}, one at a time")
    since = hub.last_id()
    failures = []
    for i in range(n):
        group, it, img = choices[i % len(choices)]
        page = session.get(f"{PUBLIC_URL}/hub/spawn", timeout=600)
        # as JupyterHub's spawn page does: the xsrf token in the form's action URL, not in the body
        r = session.post(
            f"{PUBLIC_URL}/hub/spawn",
            params={"_xsrf": xsrf(session)},
            data=form_fields(variant, group, it, img),
            allow_redirects=False,
            timeout=600,
        )
        if page.status_code != 200 or r.status_code not in (302, 303):
            failures.append(f"GET /hub/spawn {page.status_code}, POST {r.status_code}: {r.text[:200]}")
            log(f"spawn {i + 1} of {user} refused ({page.status_code}/{r.status_code}); waiting for the stack")
            wait_stack()
            continue
        try:
            hub.wait_ready(user)
        except RuntimeError as e:
            # one failed spawn is a result too; the next iteration starts from a stopped server
            failures.append(str(e)[:400])
            log(f"spawn {i + 1} of {user} failed: {e}")
            continue
        hub.stop_server(user)
    records = _spawn_records(hub.stats(since)["records"], "POST", "/hub/spawn")
    return {"variant": variant, "flow": "browser", "failures": failures, **_describe(records)}


def run_api(hub: BenchHub, kube: Kube, variant: str, users: list[str], choices: list[tuple[str, str, str]]) -> dict:
    log(f"spawn ({variant}, REST API): first spawn of {len(users)} users, one at a time")
    hub.ensure_users(users)
    since = hub.last_id()
    failures = []
    for i, user in enumerate(users):
        group, it, img = choices[i % len(choices)]
        r = hub.api("POST", f"/users/{user}/server", api_options(variant, group, it, img))
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawning {user}: {r.status_code} {r.text[:300]}")
        try:
            hub.wait_ready(user)
        except RuntimeError as e:
            failures.append(str(e)[:400])
            log(f"spawn of {user} failed: {e}")
    records = _spawn_records(hub.stats(since)["records"], "POST", "/hub/api/users/")
    hub.stop_servers(users, kube)
    return {"variant": variant, "flow": "api", "failures": failures, **_describe(records)}
