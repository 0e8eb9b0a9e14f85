"""In-process measurements: our code's CPU cost without Keycloak, Kubernetes or HTTP.

Runnable on their own, without the local stack: `python -m benchmarks --in-process [--quick]`
(also part of `make bench`'s growth case). Everything here calls what the hub calls, with the
generated platform of fixtures.Shape:

- growth: the form and one spawn's plan for a user whose own offers stay the same (20 groups)
  while the platform grows 1x, 10x, 100x; `CatalogWatcher.catalog()` on an unchanged catalog and
  after one watch event;
- a user in every group (200 groups at 10x): the form cold (rendered) and warm (the rendered form
  reused), through `PrimeHubSpawner(_mock=True)`, and the longest time the event loop was blocked
  while the cold form was rendered;
- fast failure: from a FailedScheduling event arriving in the (notifying) event reflector to the
  spawn's scheduling watch returning the failure;
- 10 and 1,000 servers running (their pods in the pod reflector): a warm form and the check of a
  form submission. The real case 7 (memory per server, a hub restart finding them) needs the stack.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from primehub_hub.form import build_form, collection_paused, render_form, rendered_forms
from primehub_hub.plan import plan_launch
from primehub_hub.resources import PLURALS, Catalog, CatalogWatcher
from primehub_hub.watch import notifying

from . import equivalent
from .fixtures import Shape

OWN_GROUPS = 20  # the user's own groups in the growth runs: their offers do not grow with the platform
NAMESPACE = "bench"


def log(message: str) -> None:
    print(f"--> [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _ms(fn, reps: int) -> float:
    """Median CPU time of this thread in ms: the shared machine's other load does not count."""
    out = []
    for _ in range(reps):
        t = time.thread_time()
        fn()
        out.append((time.thread_time() - t) * 1000)
    return round(statistics.median(out), 2)


class _Store:
    """A reflector's store without a watch: the notifying subclass counts changes like the hub's."""

    def __init__(self, resources: dict | None = None):
        self.resources = dict(resources or {})
        self.watch_task = asyncio.get_running_loop().create_future()  # never done: alive
        self.first_load_future = asyncio.get_running_loop().create_future()
        self.first_load_future.set_result(None)

    @property
    def pods(self):
        return self.resources

    @property
    def events(self):
        return list(self.resources.values())


async def _catalog_costs(objects: list[dict], reps: int) -> dict:
    watcher = CatalogWatcher(NAMESPACE)
    by_kind: dict = {kind: {} for kind in PLURALS}
    for i, obj in enumerate(objects):
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(i)}}
        by_kind[obj["kind"]][f"{NAMESPACE}/{obj['metadata']['name']}"] = obj
    Store = notifying(_Store)
    watcher.reflectors = {kind: Store(res) for kind, res in by_kind.items()}
    t = time.perf_counter()
    await watcher.catalog()
    first_ms = (time.perf_counter() - t) * 1000
    unchanged = []
    for _ in range(max(reps, 20)):
        t = time.perf_counter()
        await watcher.catalog()
        unchanged.append((time.perf_counter() - t) * 1000)
    # one watch event (an instance type edited), then the next call
    store = watcher.reflectors["InstanceType"]
    key, obj = next(iter(store.resources.items()))
    store.resources[key] = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "changed"}}
    t = time.perf_counter()
    await watcher.catalog()
    after_event_ms = (time.perf_counter() - t) * 1000
    return {
        "catalog_call_ms": round(statistics.median(unchanged), 4),
        "catalog_first_ms": round(first_ms, 1),
        "catalog_after_event_ms": round(after_event_ms, 1),
    }


def _spawner(info, cat, pods=()):
    from types import SimpleNamespace

    from primehub_hub.spawner import PrimeHubSpawner

    return PrimeHubSpawner(
        _mock=True,
        user=SimpleNamespace(name=info.username, id=1, url=f"/user/{info.username}/"),
        primehub_user=info,
        primehub_catalog=cat,
        primehub_pods=list(pods),
        namespace=NAMESPACE,
        cmd=["jupyterhub-singleuser"],
    )


async def _lateness_while(awaitable_factory) -> tuple[float, object]:
    """Largest lateness (ms) of a 5 ms sleep on the loop while the awaitable runs, and its result."""
    lateness = []
    stop = asyncio.Event()

    async def ticker():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lateness.append((time.perf_counter() - t - 0.005) * 1000)

    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.02)
    t = time.perf_counter()
    result = await awaitable_factory()
    elapsed = time.perf_counter() - t
    stop.set()
    await tick
    return max(lateness or [0]), (result, elapsed)


async def _form_through_spawner(info, cat, warm_reps: int) -> dict:
    """Cold (rendered) and warm (reused) form through the spawner; the loop's longest block meanwhile,
    next to the same machine's lateness with nothing to do over as long (the noise floor)."""
    spawner = _spawner(info, cat)
    rendered_forms.clear()
    blocked, (html, elapsed) = await _lateness_while(spawner._render_primehub_form)
    idle, _ = await _lateness_while(lambda: asyncio.sleep(elapsed))
    warm = []
    for _ in range(warm_reps):
        t = time.perf_counter()
        await spawner._render_primehub_form()
        warm.append((time.perf_counter() - t) * 1000)
    return {
        "cold_ms": round(elapsed * 1000, 1),
        "warm_ms": round(statistics.median(warm), 3),
        "loop_blocked_max_ms": round(blocked, 1),
        "loop_idle_max_ms": round(idle, 1),
        "html_bytes": len(html.encode()),
    }


def growth(scales: list[int], reps: int, all_groups_max: int = 200) -> list[dict]:
    from primehub_hub.offline import offline_kube_config

    rows = []
    for scale in scales:
        shape = Shape.scaled("x", scale)
        log(
            f"in-process: {scale}x ({shape.groups} groups, {shape.instance_types} instance types, "
            f"{shape.images} images, {shape.datasets} datasets)"
        )
        objects = shape.objects()
        grants = shape.grants()
        cat = Catalog.from_objects(objects)
        own = equivalent.user_info("bench-grow", grants, shape.group_names[:OWN_GROUPS])
        group = own.groups[0]
        it, img = equivalent.launch_choice(own, cat, group.name)
        options = {"group": group.name, "instance_type": it, "image": img}
        row = {
            "scale": scale,
            "groups": shape.groups,
            "instance_types": shape.instance_types,
            "images": shape.images,
            "datasets": shape.datasets,
            "own_groups": len(own.groups),
        }
        row.update(asyncio.run(_catalog_costs(objects, reps)))
        row["plan_launch_ms"] = _ms(
            lambda: plan_launch(own, cat, options, strict=True), max(reps, 30)
        )  # about 1 ms: many runs
        render_form(build_form(own, cat))  # template compiled
        row["form_ms"] = _ms(lambda: render_form(build_form(own, cat)), reps)
        with offline_kube_config():
            row["form_spawner"] = asyncio.run(_form_through_spawner(own, cat, reps))
            if shape.groups <= all_groups_max:
                everyone_user = equivalent.user_info("bench-all", grants)
                row["all_groups"] = {
                    "groups": len(everyone_user.groups),
                    **asyncio.run(_form_through_spawner(everyone_user, cat, reps)),
                }
        rows.append(row)
    return rows


async def _one_failure(spawner, events, trial: int) -> float:
    spawner._pod_created = True
    watching = asyncio.ensure_future(spawner._watch_scheduling())
    for _ in range(5):
        await asyncio.sleep(0)
    t = time.perf_counter()
    events.resources[f"{NAMESPACE}/{spawner.pod_name}.{trial}"] = {
        "involvedObject": {"name": spawner.pod_name},
        "reason": "FailedScheduling",
        "metadata": {"uid": f"e{trial}"},
        "message": "0/2 nodes are available: 2 Insufficient cpu.",
    }
    await asyncio.wait_for(watching, 60)
    return (time.perf_counter() - t) * 1000


async def _failures(trials: int) -> list[float]:
    from kubespawner import KubeSpawner

    Store = notifying(_Store)
    out = []
    for trial in range(trials):
        shape = Shape.scaled("x", 1)
        cat = Catalog.from_objects(shape.objects())
        info = equivalent.user_info("bench-failer", shape.grants(), shape.group_names[:1])
        spawner = _spawner(info, cat)
        spawner.user_options = {"group": info.groups[0].name}
        await spawner.load_user_options()
        pods = Store(
            {
                f"{NAMESPACE}/{spawner.pod_name}": {
                    "metadata": {"name": spawner.pod_name, "namespace": NAMESPACE},
                    "spec": {},
                    "status": {"phase": "Pending"},
                }
            }
        )
        events = Store()
        KubeSpawner.reflectors[("pods", NAMESPACE)] = pods
        KubeSpawner.reflectors[("events", NAMESPACE)] = events
        try:
            out.append(await _one_failure(spawner, events, trial))
        finally:
            KubeSpawner.reflectors.pop(("pods", NAMESPACE), None)
            KubeSpawner.reflectors.pop(("events", NAMESPACE), None)
    return out


def failure(trials: int) -> dict:
    from primehub_hub.offline import offline_kube_config

    log(f"in-process: fast failure, {trials} trials")
    with offline_kube_config():
        times = asyncio.run(_failures(trials))
    return {
        "trials": trials,
        "event_to_failure_ms": {"p50": round(statistics.median(times), 3), "max": round(max(times), 3)},
    }


def profiles(top: int = 8) -> dict:
    """Where the time goes (cProfile, by own time): a cold form and one spawn plan at 1x and 10x, for
    the user whose offers stay the same, and the cold form of the user in every group at 10x."""
    import cProfile
    import pstats

    out = {}
    for scale in (1, 10):
        s = Shape.scaled("x", scale)
        cat = Catalog.from_objects(s.objects())
        grants = s.grants()
        own = equivalent.user_info("bench-grow", grants, s.group_names[:OWN_GROUPS])
        render_form(build_form(own, cat))  # template compiled outside the profile
        g = own.groups[0]
        it, img = equivalent.launch_choice(own, cat, g.name)
        cases = [
            ("form", lambda: render_form(build_form(own, cat))),
            ("plan_launch", lambda: plan_launch(own, cat, {"group": g.name, "instance_type": it, "image": img})),
        ]
        if scale == 10:
            everyone_user = equivalent.user_info("bench-all", grants)
            cases.append(("form_all_groups", lambda: render_form(build_form(everyone_user, cat))))
        for what, fn in cases:
            prof = cProfile.Profile()
            with collection_paused():  # as the spawner renders: no collector pause billed to a random frame
                prof.enable()
                fn()
                prof.disable()
            stats = pstats.Stats(prof)
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
            out[f"{what}@{scale}x"] = {
                "total_ms": round(stats.total_tt * 1000, 1),
                "top": [
                    {
                        "function": f"{func[0].split('site-packages/')[-1].split('hub-config/')[-1]}:{func[1]}({func[2]})",
                        "calls": st[1],
                        "own_ms": round(st[2] * 1000, 1),
                        "cumulative_ms": round(st[3] * 1000, 1),
                    }
                    for func, st in rows
                ],
            }
    return out


def _running_pod(i: int, groups: list[str]) -> dict:
    from primehub_hub.quotas import LABEL_GROUP, LABEL_USER, label_value

    # labelled as the hub labels its own pods (PrimeHub's escaping), so usage counting sees them
    return {
        "metadata": {
            "name": f"jupyter-other-{i:04d}",
            "namespace": NAMESPACE,
            "labels": {
                LABEL_GROUP: label_value(groups[i % len(groups)]),
                LABEL_USER: label_value(f"other-{i:04d}"),
                "component": "singleuser-server",
            },
        },
        "spec": {"containers": [{"name": "notebook", "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}}}]},
        "status": {"phase": "Running"},
    }


async def _with_servers(count: int, reps: int) -> dict:
    from kubespawner import KubeSpawner

    shape = Shape.scaled("x", 1)
    cat = Catalog.from_objects(shape.objects())
    info = equivalent.user_info("bench-form", shape.grants())
    group = info.groups[0]
    it, img = equivalent.launch_choice(info, cat, group.name)
    pods = notifying(_Store)(
        {f"{NAMESPACE}/jupyter-other-{i:04d}": _running_pod(i, shape.group_names) for i in range(count)}
    )
    KubeSpawner.reflectors[("pods", NAMESPACE)] = pods
    try:
        spawner = _spawner(info, cat)
        spawner.primehub_pods = None  # usage and the early quota look from the (notifying) pod reflector
        rendered_forms.clear()
        await spawner._render_primehub_form()
        # CPU time of this thread (nothing here waits on I/O): the shared machine's load does not count
        warm, submit = [], []
        for _ in range(reps):
            t = time.thread_time()
            await spawner._render_primehub_form()
            warm.append((time.thread_time() - t) * 1000)
            t = time.thread_time()
            await spawner._primehub_options_from_form(
                {"group": [group.name], f"instance_type@{group.name}": [it], f"image@{group.name}": [img]}
            )
            submit.append((time.thread_time() - t) * 1000)
        # one server starts elsewhere: the next form shows the new usage
        pods.resources[f"{NAMESPACE}/jupyter-new"] = _running_pod(count, shape.group_names)
        t = time.perf_counter()
        await spawner._render_primehub_form()
        after_change = (time.perf_counter() - t) * 1000
    finally:
        KubeSpawner.reflectors.pop(("pods", NAMESPACE), None)
    return {
        "servers": count,
        "form_warm_ms": round(statistics.median(warm), 3),
        "options_from_form_ms": round(statistics.median(submit), 3),
        "form_after_pod_change_ms": round(after_change, 1),
    }


def servers(counts: list[int], reps: int) -> list[dict]:
    """The form and a submission's check with 10 and 1,000 servers running (pods in the reflector)."""
    from primehub_hub.offline import offline_kube_config

    out = []
    with offline_kube_config():
        for count in counts:
            log(f"in-process: {count} running servers")
            out.append(asyncio.run(_with_servers(count, max(reps, 100))))  # sub-millisecond figures: many runs
    return out
