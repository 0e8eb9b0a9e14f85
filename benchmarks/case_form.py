"""Case 1: the options form. Server-side time of GET /hub/spawn, and the calls made per render.

Server-side time is the hub's own measure of the request (tornado's request_time(), the number
in its `log:192 ... 200 GET /hub/spawn ... NNN.NNms` line), taken from the bench hub's log_function.
"""

from __future__ import annotations

import re
import time

from .measure import calls_of, merged_calls, summary
from .stack import PUBLIC_URL, BenchHub, log, wait_stack


def _render(session, hub: BenchHub) -> tuple[float, str]:
    for attempt in range(3):
        t = time.perf_counter()
        r = session.get(f"{PUBLIC_URL}/hub/spawn", timeout=600)
        elapsed = (time.perf_counter() - t) * 1000
        if r.status_code == 200 and r.url.startswith(f"{PUBLIC_URL}/hub/spawn"):
            return elapsed, r.text
        if r.status_code < 500 or attempt == 2:
            raise RuntimeError(f"GET /hub/spawn answered {r.status_code} at {r.url}; see {hub.log_path}")
        # a shared server is restarting (other tests do that): wait, and measure again
        log(f"GET /hub/spawn answered {r.status_code}; waiting for the stack")
        wait_stack()
    raise AssertionError("unreachable")


def groups_shown(variant: str, page: str) -> int:
    if variant == "plain":
        return len(
            set(re.findall(r'name="profile"[^>]*value="([^"]+)"', page))
            | set(re.findall(r'value="([^"]+)"[^>]*name="profile"', page))
        )
    return len(re.findall(r'name="group" value="', page))


def run(hub: BenchHub, session, variant: str, renders: int, warmups: int = 2) -> dict:
    log(f"form ({variant}): 1 cold + {renders} warm renders of GET /hub/spawn")
    # warm-up: the first render starts the catalog and pod watches and compiles the template
    for _ in range(warmups):
        _render(session, hub)

    # cold: the Keycloak user cache forgotten, as after its 30 s TTL
    since = hub.last_id()
    hub.stats_action("forget")
    _render(session, hub)
    cold = [
        r
        for r in hub.stats(since)["records"]
        if r["path"] == "/hub/spawn" and r["method"] == "GET" and r.get("status") == 200
    ]

    _render(session, hub)  # refills nothing new; makes sure the next loop starts warm
    since = hub.last_id()
    client_ms = []
    page = ""
    t0 = time.monotonic()
    for _ in range(renders):
        elapsed, page = _render(session, hub)
        client_ms.append(elapsed)
    loop_s = time.monotonic() - t0
    records = [
        r
        for r in hub.stats(since)["records"]
        if r["path"] == "/hub/spawn" and r["method"] == "GET" and r.get("status") == 200
    ]
    warm = [r for r in records if not r["timings"].get("refresh_user")]
    return {
        "variant": variant,
        "renders": len(records),
        "loop_seconds": round(loop_s, 1),
        "server_ms": summary([r["ms"] for r in records]),
        "server_ms_warm": summary([r["ms"] for r in warm]),
        "client_ms": summary(client_ms),
        "form_function_ms": summary([r["timings"].get("form") for r in records]),
        # garbage collections the render set off (hubside.py charges them to the request)
        "gc_ms": summary([r["timings"].get("gc", 0.0) for r in warm]),
        "keycloak_calls_per_render": [calls_of(r, "keycloak") for r in records],
        "k8s_calls_per_render": [calls_of(r, "k8s") for r in records],
        "renders_with_auth_refresh": sum(1 for r in records if r["timings"].get("refresh_user")),
        "calls": merged_calls(records),
        "cold": {
            "server_ms": cold[0]["ms"] if cold else None,
            "keycloak_calls": calls_of(cold[0], "keycloak") if cold else None,
            "k8s_calls": calls_of(cold[0], "k8s") if cold else None,
        },
        "html_bytes": len(page.encode()),
        "groups_shown": groups_shown(variant, page),
    }
