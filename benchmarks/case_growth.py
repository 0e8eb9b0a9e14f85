"""Case 5: how form and spawn costs grow with the platform (groups and resources together).

Two ways, both reported and labelled:
- through the real stack (Keycloak + custom resources + bench hub), at the scales whose objects
  can be created within the run's time budget;
- in-process, calling the functions the hub calls (build_form + render_form for the form,
  plan_launch for a spawn, CatalogWatcher.catalog() on a warm cache) with the same generated
  data, without Keycloak or HTTP: this isolates our code's CPU cost and reaches 100x.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from primehub_hub.form import build_form, render_form
from primehub_hub.plan import group_offer, plan_launch
from primehub_hub.resources import PLURALS, Catalog, CatalogWatcher

from . import case_form, case_spawn, equivalent
from .fixtures import Shape
from .stack import NAMESPACE, PUBLIC_URL, BenchHub, Kube, Realm, browser_login, log


def _timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


class _FakeReflector:
    def __init__(self, resources: dict, loop):
        self.resources = resources
        self.watch_task = loop.create_future()  # never done: the watcher counts as alive


async def _catalog_call_ms(objects: list[dict], reps: int) -> list[float]:
    loop = asyncio.get_running_loop()
    watcher = CatalogWatcher(NAMESPACE)
    by_kind: dict = {kind: {} for kind in PLURALS}
    for i, obj in enumerate(objects):
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(i)}}
        by_kind[obj["kind"]][f"{NAMESPACE}/{obj['metadata']['name']}"] = obj
    watcher.reflectors = {kind: _FakeReflector(res, loop) for kind, res in by_kind.items()}
    await watcher.catalog()  # builds the Catalog once, as after a change
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        await watcher.catalog()
        out.append((time.perf_counter() - t) * 1000)
    return out


def inprocess(scales: list[int], full_form_max_groups: int, reps: int) -> list[dict]:
    rows = []
    for scale in scales:
        shape = Shape.scaled("x", scale)
        log(f"growth in-process: {scale}x ({shape.groups} groups, {shape.instance_types} instance types, "
            f"{shape.images} images, {shape.datasets} datasets)")
        objects = shape.objects()
        grants = shape.grants()
        t = time.perf_counter()
        cat = Catalog.from_objects(objects)
        build_s = time.perf_counter() - t
        user = equivalent.user_info("bench-grow", grants)
        group = user.groups[0]
        it, img = equivalent.launch_choice(user, cat, group.name)
        options = {"group": group.name, "instance_type": it, "image": img}
        plan_ms = _timed(lambda: plan_launch(user, cat, options, strict=True), reps)
        per_group = _timed(lambda: [group_offer(user, g, cat) for g in user.groups[:5]], 1)[0] / min(5, len(user.groups))
        row = {
            "scale": scale, "groups": shape.groups, "instance_types": shape.instance_types, "images": shape.images,
            "datasets": shape.datasets, "catalog_build_s": round(build_s, 2),
            "catalog_call_ms": round(statistics.median(asyncio.run(_catalog_call_ms(objects, reps))), 2),
            "plan_launch_ms": round(statistics.median(plan_ms), 2),
            "group_offer_ms": round(per_group, 2),
        }
        if shape.groups <= full_form_max_groups:
            html = ""

            def form():
                nonlocal html
                html = render_form(build_form(user, cat))

            form()  # template compiled, caches warm
            form_ms = _timed(form, reps if shape.groups <= 40 else 1)
            row.update({"form_ms": round(statistics.median(form_ms), 1), "form_projected": False,
                        "html_bytes": len(html.encode())})
        else:
            # one full render would take minutes: the form model is one group_offer per group
            row.update({"form_ms": round(per_group * shape.groups, 1), "form_projected": True})
        rows.append(row)
    return rows


def real(hub: BenchHub, kube: Kube, realm: Realm, scale: int, renders: int, spawns: int) -> dict:
    tag = f"x{scale}"
    shape = Shape.scaled(tag, scale)
    prefix = f"bench-{tag}-"
    user = f"{prefix}user"
    api_users = [f"{prefix}s{i:03d}" for i in range(spawns)]
    log(f"growth on the real stack: {scale}x ({shape.groups} groups, {len(shape.roles())} grant roles, "
        f"{len(shape.objects())} custom resources)")
    grants = shape.grants()
    result = {"scale": scale, "groups": shape.groups, "instance_types": shape.instance_types, "images": shape.images,
              "datasets": shape.datasets}
    try:
        result["keycloak_setup_s"] = round(realm.import_fixture(
            grants, [{"username": user, "groups": shape.group_names, "password": True}]
            + [{"username": u, "groups": shape.group_names} for u in api_users]), 1)
        result["k8s_setup_s"] = round(kube.create_objects(shape.objects(NAMESPACE)), 1)
        session = browser_login(user)
        _wait_catalog(session, hub, shape)
        since = hub.last_id()
        hub.stats_action("reset-lag")
        result["form"] = case_form.run(hub, session, "primehub", renders, warmups=1)
        cat = equivalent.catalog(shape.objects())
        info = equivalent.user_info(user, grants)
        choices = [(g, *equivalent.launch_choice(info, cat, g)) for g in shape.group_names[:3]]
        result["spawn_browser"] = case_spawn.run_browser(hub, session, "primehub", user, choices, max(1, spawns - 1))
        result["spawn_api"] = case_spawn.run_api(hub, kube, "primehub", api_users, choices)
        stats = hub.stats(since)
        result["loop_stall_max_ms"] = round(stats["lag"]["max_ms"], 1)
        result["loop_blocked_max_ms"] = round(stats["lag"]["max_blocked_ms"], 1)
        result["stall_frames"] = stats.get("stall_frames")
    finally:
        log(f"growth: removing the {scale}x objects")
        kube.delete_objects(tag)
        realm.purge(prefix, client=False)
    return result


def _wait_catalog(session, hub: BenchHub, shape: Shape, timeout: float = 180) -> None:
    """Until the hub's watch has every new instance type (the form offers them all)."""
    deadline = time.monotonic() + timeout
    last = shape.it(shape.instance_types - 1)
    while time.monotonic() < deadline:
        page = session.get(f"{PUBLIC_URL}/hub/spawn", timeout=600).text
        if f'value="{last}"' in page:
            return
        time.sleep(2)
    raise TimeoutError("the bench hub's catalog did not catch up with the new custom resources")


def profiles(shape: Shape, top: int = 8) -> dict:
    """Where the time goes (cProfile, by own time) in one form render and one spawn plan at 1x and 10x."""
    import cProfile
    import pstats

    out = {}
    for scale in (1, 10):
        s = Shape.scaled("x", scale)
        cat = Catalog.from_objects(s.objects())
        user = equivalent.user_info("bench-grow", s.grants())
        render_form(build_form(user, cat))  # template compiled outside the profile
        g = user.groups[0]
        it, img = equivalent.launch_choice(user, cat, g.name)
        for what, fn in (("form", lambda: render_form(build_form(user, cat))),
                         ("plan_launch", lambda: plan_launch(user, cat, {"group": g.name, "instance_type": it, "image": img}))):
            prof = cProfile.Profile()
            prof.enable()
            fn()
            prof.disable()
            stats = pstats.Stats(prof)
            total = stats.total_tt
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
            out[f"{what}@{scale}x"] = {
                "total_ms": round(total * 1000, 1),
                "top": [{"function": f"{func[0].split('site-packages/')[-1].split('hub-config/')[-1]}:{func[1]}({func[2]})",
                         "calls": st[1], "own_ms": round(st[2] * 1000, 1), "cumulative_ms": round(st[3] * 1000, 1)}
                        for func, st in rows],
            }
    return out
