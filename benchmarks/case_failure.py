"""Case 4: an unschedulable spawn. From the scheduler's FailedScheduling event to the user's
progress stream (GET /hub/api/users/{name}/server/progress) ending with `failed`.

Two starting points are reported: the event's own timestamp (eventTime, microseconds, written by
the scheduler) and the moment our watch on the namespace saw the event. All clocks are this machine's.
"""

from __future__ import annotations

import json
import time

import requests

from .measure import summary
from .stack import HUB_API, BenchHub, Watch, log


def _progress_until_done(hub: BenchHub, user: str, timeout: float) -> tuple[float | None, dict | None]:
    with requests.get(
        f"{HUB_API}/users/{user}/server/progress",
        headers={"Authorization": f"token {hub.token}"},
        stream=True,
        timeout=timeout,
    ) as r:
        r.raise_for_status()
        for raw in r.iter_lines():
            if not raw.startswith(b"data:"):
                continue
            event = json.loads(raw[5:])
            if event.get("failed") or event.get("ready"):
                return time.time(), event
    return None, None


def _wait_gone(hub: BenchHub, watch: Watch, user: str, pod: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = watch.snapshot().get(pod)
        if hub.server(user) is None and (entry is None or "deleted" in entry):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{user}'s failed server or pod {pod} still there after {timeout}s")


def run(hub: BenchHub, watch: Watch, variant: str, user: str, body: dict, reps: int, timeout: float) -> dict:
    log(f"failure ({variant}): {reps} unschedulable spawns of {user}")
    hub.ensure_users([user])
    pod = f"jupyter-{user}"
    trials = []
    for _ in range(reps):
        watch.reset()
        t_post = time.time()
        r = hub.api("POST", f"/users/{user}/server", body)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawning {user}: {r.status_code} {r.text[:300]}")
        t_done, event = _progress_until_done(hub, user, timeout)
        failed = watch.first_failed_scheduling(pod)
        trial = {
            "failed": bool(event and event.get("failed")),
            "message": (event or {}).get("message", "")[:300],
            "post_to_failed_s": round(t_done - t_post, 3) if t_done else None,
        }
        if failed and t_done:
            trial["from_event_stamp_s"] = round(t_done - failed["stamp"], 3) if failed["stamp"] else None
            trial["from_event_seen_s"] = round(t_done - failed["seen"], 3)
            trial["scheduler_message"] = failed["message"][:200]
        trials.append(trial)
        _wait_gone(hub, watch, user, pod)
    return {
        "variant": variant,
        "reps": reps,
        "all_failed": all(t["failed"] for t in trials),
        "from_event_stamp_s": summary([t.get("from_event_stamp_s") for t in trials]),
        "from_event_seen_s": summary([t.get("from_event_seen_s") for t in trials]),
        "post_to_failed_s": summary([t.get("post_to_failed_s") for t in trials]),
        "message": trials[0]["message"] if trials else "",
        "trials": trials,
    }
