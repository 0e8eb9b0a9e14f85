"""Bench-only instrumentation inside a bench hub (never in the lead's hub or the chart).

Loaded by benchmarks/hub_extra/50-bench.py, the bench hub's extra config folder (its settings' extraConfigDir). It:

- gives every hub request a record (a contextvar set in BaseHandler.prepare). Tasks started while
  handling the request (the spawn, the spawner's start) copy the context, so Keycloak and
  Kubernetes calls made for a spawn are charged to the request that asked for it, even after the
  response has gone out. Reflector watch tasks are started with the contextvar cleared: their
  periodic relists belong to no request;
- counts outgoing calls at the two funnels every call goes through: tornado's
  AsyncHTTPClient.fetch (Keycloak, the proxy's REST API, single-user readiness checks) and
  kubernetes_asyncio's ApiClient.call_api;
- times our code in a subclass of each spawner and of the authenticator, marking when the
  spawner's start begins and when KubeSpawner's pod creation request begins (a probe class placed
  between PrimeHubSpawner and KubeSpawner in the MRO);
- records the hub's own request duration (the number in its `log:192` line) through the
  tornado log_function;
- measures event-loop stalls with a task that sleeps 10 ms in a loop and records how late it wakes;
- serves all this as JSON at /hub/bench/stats for the bench admin token, with the number of active,
  ready and pending servers (case 7 watches a thousand of them without asking for every user's model);
- for case 7 (BENCH_STAND_IN), annotates the pods so the node agent answers for them itself
  (scripts/localstack/standin.py) instead of running a process per server.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import gc
import itertools
import json
import os
import re
import sys
import threading
import time
import traceback

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

CURRENT = contextvars.ContextVar("bench_record", default=None)
RECORDS: collections.deque = collections.deque(maxlen=50000)
TOTALS: collections.Counter = collections.Counter()
_ids = itertools.count(1)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_urls = {"keycloak": [], "proxy": []}


def new_record(**fields) -> dict:
    rec = {
        "id": next(_ids),
        "wall": time.time(),
        "perf0": time.perf_counter(),
        "calls": collections.Counter(),
        "timings": collections.defaultdict(float),
        "cpu": collections.defaultdict(float),
        "counts": collections.Counter(),
        "marks": {},
        **fields,
    }
    RECORDS.append(rec)
    return rec


def mark(name: str) -> None:
    rec = CURRENT.get()
    if rec is not None and name not in rec["marks"]:
        rec["marks"][name] = round((time.perf_counter() - rec["perf0"]) * 1000, 3)


class timed:
    """Adds the wall time of a block to the current record under `name`."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t, self.cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc):
        rec = CURRENT.get()
        if rec is not None:
            rec["timings"][self.name] += (time.perf_counter() - self.t) * 1000
            rec["counts"][self.name] += 1
            # the loop thread's CPU meanwhile (other tasks' included, when the block awaits):
            # wall time well above it is time spent waiting (for the loop, the GIL, the CPU)
            rec["cpu"][self.name] += (time.thread_time() - self.cpu) * 1000
        return False


def _count(kind: str, what: str) -> None:
    TOTALS[kind] += 1
    rec = CURRENT.get()
    if rec is not None:
        rec["calls"][f"{kind} {what}"] += 1


def _classify(url: str) -> str:
    for kind, prefixes in _urls.items():
        if any(url.startswith(p) for p in prefixes):
            return kind
    return "http"


def _short(url: str) -> str:
    path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    return "/" + _UUID.sub("{id}", path)


# --- the funnels -------------------------------------------------------------------------


def _patch_http() -> None:
    original = AsyncHTTPClient.fetch

    def fetch(self, request, raise_error=True, **kwargs):
        if isinstance(request, HTTPRequest):
            url, method = request.url, request.method
        else:
            url, method = str(request), kwargs.get("method", "GET")
        kind = _classify(url)
        _count(kind, f"{method} {_short(url) if kind == 'keycloak' else ''}".strip())
        return original(self, request, raise_error=raise_error, **kwargs)

    AsyncHTTPClient.fetch = fetch


def _patch_kubernetes() -> None:
    from kubernetes_asyncio.client import ApiClient
    from kubespawner.reflector import ResourceReflector

    original = ApiClient.call_api

    def call_api(self, resource_path, method, *args, **kwargs):
        query = kwargs.get("query_params") or (args[1] if len(args) > 1 else None) or []
        watch = any(k == "watch" and v for k, v in query)
        _count("k8s-watch" if watch else "k8s", f"{method} {resource_path}")
        return original(self, resource_path, method, *args, **kwargs)

    ApiClient.call_api = call_api

    start = ResourceReflector.start

    async def reflector_start(self):
        token = CURRENT.set(None)
        try:
            with _reflector_timer(self):
                return await start(self)
        finally:
            CURRENT.reset(token)

    ResourceReflector.start = reflector_start


class _reflector_timer:
    def __init__(self, reflector):
        self.kind = getattr(reflector, "kind", "?")

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *exc):
        TOTALS[f"reflector-start {self.kind}"] += 1
        TOTALS[f"reflector-start-ms {self.kind}"] += int((time.perf_counter() - self.t) * 1000)
        return False


def _patch_requests() -> None:
    from jupyterhub.handlers.base import BaseHandler

    prepare = BaseHandler.prepare

    async def bench_prepare(self):
        rec = new_record(method=self.request.method, path=self.request.path)
        self._bench_record = rec
        CURRENT.set(rec)
        return await prepare(self)

    BaseHandler.prepare = bench_prepare


def log_function(handler) -> None:
    from jupyterhub.log import log_request

    log_request(handler)
    rec = getattr(handler, "_bench_record", None)
    if rec is not None:
        rec["status"] = handler.get_status()
        # the same number as the hub's log line: tornado's request_time() of this request
        rec["ms"] = round(handler.request.request_time() * 1000, 3)
        user = getattr(handler, "_jupyterhub_user", None)
        rec["user"] = getattr(user, "name", None)


# --- event-loop stalls ---------------------------------------------------------------------
#
# A 10 ms sleep that wakes up late means the loop thread either ran something else for that long
# (blocked: its own CPU time grew by about the lateness) or was not given a core (starved: the
# machine is busy). Both are recorded, and a watchdog thread samples the loop thread's stack while
# a stall lasts, so the report can say what was running.

LAG: dict = {}
STALL_STACKS: collections.Counter = collections.Counter()
STALL_OURS: collections.Counter = collections.Counter()
_heartbeat = [time.monotonic()]
_lag_task = None
_loop_thread = [None]
_INTERESTING = (
    "primehub_hub",
    "kubespawner",
    "jupyterhub",
    "kubernetes_asyncio",
    "tornado",
    "sqlalchemy",
    "oauthenticator",
    "jinja2",
)


def reset_lag() -> None:
    LAG.clear()
    LAG.update(
        {
            "max_ms": 0.0,
            "max_at": None,
            "max_cpu_ms": 0.0,
            "max_blocked_ms": 0.0,
            "samples": 0,
            "over_20": 0,
            "over_50": 0,
            "over_100": 0,
            "blocked_over_100": 0,
            "since": time.time(),
            # watchdog samples of a stalled loop, and how many had a primehub_hub frame on the stack
            "stall_samples": 0,
            "stall_samples_ours": 0,
            # the garbage collector's pauses (all threads; a full collection walks the whole heap)
            "gc_ms": 0.0,
            "gc_max_ms": 0.0,
            "gc_full": 0,
            "gc_full_max_ms": 0.0,
        }
    )
    STALL_STACKS.clear()
    STALL_OURS.clear()


reset_lag()
_gc_started = [0.0]


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_started[0]) * 1000
    LAG["gc_ms"] = LAG.get("gc_ms", 0.0) + ms
    LAG["gc_max_ms"] = max(LAG.get("gc_max_ms", 0.0), ms)
    if info.get("generation") == 2:
        LAG["gc_full"] = LAG.get("gc_full", 0) + 1
        LAG["gc_full_max_ms"] = max(LAG.get("gc_full_max_ms", 0.0), ms)
    # charged to the request whose allocation set it off (the callback runs in that context)
    rec = CURRENT.get()
    if rec is not None:
        rec["timings"]["gc"] += ms
        rec["counts"]["gc"] += 1


gc.callbacks.append(_gc_timer)


async def _lag_loop() -> None:
    loop = asyncio.get_running_loop()
    _loop_thread[0] = threading.get_ident()
    while True:
        before, cpu = loop.time(), time.thread_time()
        await asyncio.sleep(0.01)
        late = (loop.time() - before - 0.01) * 1000
        used = (time.thread_time() - cpu) * 1000
        _heartbeat[0] = time.monotonic()
        LAG["samples"] += 1
        for limit in (20, 50, 100):
            if late > limit:
                LAG[f"over_{limit}"] += 1
        # the part of the lateness the loop thread spent computing
        blocked = min(late, used)
        if blocked > 100:
            LAG["blocked_over_100"] += 1
        LAG["max_blocked_ms"] = max(LAG["max_blocked_ms"], blocked)
        if late > LAG["max_ms"]:
            LAG["max_ms"], LAG["max_at"], LAG["max_cpu_ms"] = late, time.time(), used


def _short_frame(frame: traceback.FrameSummary) -> str:
    name = frame.filename
    for marker in ("site-packages/", "hub-config/", "lib/python3"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    return f"{name}:{frame.lineno}({frame.name})"


def _watchdog() -> None:
    while True:
        time.sleep(0.02)
        ident = _loop_thread[0]
        if ident is None or time.monotonic() - _heartbeat[0] < 0.05:
            continue
        frame = sys._current_frames().get(ident)
        if frame is None:
            continue
        stack = traceback.extract_stack(frame)
        LAG["stall_samples"] = LAG.get("stall_samples", 0) + 1
        if any("primehub_hub" in f.filename for f in stack):
            LAG["stall_samples_ours"] = LAG.get("stall_samples_ours", 0) + 1
        STALL_STACKS[" < ".join(_short_frame(f) for f in reversed(stack[-4:]))] += 1
        ours = next((f for f in reversed(stack) if any(m in f.filename for m in _INTERESTING)), None)
        if ours is not None:
            STALL_OURS[_short_frame(ours)] += 1


def _ensure_lag_task() -> None:
    global _lag_task
    if _lag_task is None or _lag_task.done():
        _lag_task = asyncio.get_running_loop().create_task(_lag_loop())
        threading.Thread(target=_watchdog, name="bench-stall-watchdog", daemon=True).start()


# --- subclasses that time our code -----------------------------------------------------


def spawner_classes():
    from kubespawner import KubeSpawner

    from primehub_hub.spawner import PrimeHubSpawner

    class PodCreateProbe(KubeSpawner):
        """Between PrimeHubSpawner and KubeSpawner in the MRO: marks where KubeSpawner's own pod
        creation request begins, i.e. where our pre-spawn work ends."""

        async def _make_create_pod_request(self, pod, request_timeout):
            mark("pod_create")
            with timed("k8s_create_pod"):
                return await super()._make_create_pod_request(pod, request_timeout)

        async def get_pod_manifest(self):
            # KubeSpawner's own work inside our window, to tell the two apart
            mark("manifest")
            with timed("pod_manifest"):
                return await super().get_pod_manifest()

        async def _make_create_pvc_request(self, pvc, request_timeout):
            # KubeSpawner's home volume request (409 when it exists), inside our window too
            with timed("pvc_create"):
                return await super()._make_create_pvc_request(pvc, request_timeout)

    class BenchPrimeHubSpawner(PrimeHubSpawner, PodCreateProbe):
        def start(self):
            rec = CURRENT.get()
            if rec is not None:
                rec["spawn_user"] = self.user.name
            mark("start")
            mark("spawner_start")
            return super().start()

        def get_env(self):
            # read inside KubeSpawner's pod manifest (JupyterHub's, KubeSpawner's and ours)
            with timed("get_env"):
                return super().get_env()

        async def _start(self):
            # KubeSpawner's start proper: what comes before it is JupyterHub's database commit
            # after start() and the hops into the start's tasks
            mark("kube_start")
            return await super()._start()

        async def _render_primehub_form(self, spawner=None):
            with timed("form"):
                return await super()._render_primehub_form(spawner)

        async def _primehub_options_from_form(self, formdata):
            with timed("options_from_form"):
                return await super()._primehub_options_from_form(formdata)

        async def apply_primehub_options(self, user_options):
            # JupyterHub's apply_user_options hook runs just before start(): our pre-spawn work begins
            # here (the first mark wins), so the window still covers the plan
            rec = CURRENT.get()
            if rec is not None:
                rec["spawn_user"] = self.user.name
            mark("start")
            try:
                return await super().apply_primehub_options(user_options)
            finally:
                mark("applied")

        async def decide_launch(self, user_options):
            # the plan and overrides, made by JupyterHub's apply_user_options hook (or load_user_options);
            # kept under the name the report and the KubeSpawner baseline use
            with timed("load_user_options"):
                return await super().decide_launch(user_options)

        async def load_primehub_user(self):
            with timed("load_primehub_user"):
                return await super().load_primehub_user()

        async def load_catalog(self):
            with timed("load_catalog"):
                return await super().load_catalog()

        async def _list_group_pods(self, group_name):
            mark("quota_list")
            with timed("quota_list_pods"):
                return await super()._list_group_pods(group_name)

        async def _make_create_pod_request(self, pod, request_timeout):
            mark("create_request")
            return await super()._make_create_pod_request(pod, request_timeout)

    class BenchKubeSpawner(PodCreateProbe):
        def start(self):
            rec = CURRENT.get()
            if rec is not None:
                rec["spawn_user"] = self.user.name
            mark("start")
            return super().start()

        async def _render_options_form_dynamically(self, current_spawner):
            with timed("form"):
                return await super()._render_options_form_dynamically(current_spawner)

        def _options_from_form(self, formdata):
            with timed("options_from_form"):
                return super()._options_from_form(formdata)

        async def load_user_options(self):
            with timed("load_user_options"):
                return await super().load_user_options()

    return BenchPrimeHubSpawner, BenchKubeSpawner


def _relists() -> dict:
    """Full lists each of KubeSpawner's reflectors (pods, events) has read since it started."""
    from kubespawner import KubeSpawner

    # keyed (kind, namespace) by KubeSpawner; one namespace here
    return {key[0]: getattr(r, "relists", None) for key, r in KubeSpawner.reflectors.items()}


def _held() -> dict:
    """How many objects each of KubeSpawner's reflectors (pods, events) holds now."""
    from kubespawner import KubeSpawner

    return {key[0]: len(r.resources) for key, r in KubeSpawner.reflectors.items()}


def server_counts(users) -> dict:
    """Active (running or pending), ready and pending servers of the users the hub has in memory
    (JupyterHub loads every user with a server at start)."""
    out = {"active": 0, "ready": 0, "pending": 0}
    for user in list(users.values()):
        for spawner in list(user.spawners.values()):
            out["active"] += bool(spawner.active)
            out["ready"] += bool(spawner.ready)
            out["pending"] += bool(spawner.pending)
    return out


class StatsHandler(web.RequestHandler):
    """GET: records after ?since=<id>, call totals, loop stalls. POST action=reset-lag|forget."""

    def check_xsrf_cookie(self):
        pass

    def prepare(self):
        _ensure_lag_task()
        header = self.request.headers.get("Authorization", "")
        if header.split()[-1:] != [os.environ.get("BENCH_ADMIN_TOKEN", "\0")]:
            raise web.HTTPError(403)

    def get(self):
        since = int(self.get_argument("since", "0"))
        records = []
        for rec in list(RECORDS):
            if rec["id"] > since:
                out = {k: v for k, v in rec.items() if k != "perf0"}
                out["calls"], out["counts"] = dict(rec["calls"]), dict(rec["counts"])
                out["timings"] = {k: round(v, 3) for k, v in rec["timings"].items()}
                out["cpu"] = {k: round(v, 3) for k, v in rec["cpu"].items()}
                records.append(out)
        self.set_header("Content-Type", "application/json")
        self.write(
            json.dumps(
                {
                    "last_id": RECORDS[-1]["id"] if RECORDS else 0,
                    "records": records,
                    "totals": dict(TOTALS),
                    "lag": dict(LAG),
                    "pid": os.getpid(),
                    "stall_stacks": STALL_STACKS.most_common(12),
                    "stall_frames": STALL_OURS.most_common(12),
                    "servers": server_counts(self.settings.get("users") or {}),
                    "member_view": _member_view(self.settings.get("authenticator")),
                    "relists": _relists(),
                    "held": _held(),
                }
            )
        )

    def post(self):
        action = self.get_argument("action")
        if action == "reset-lag":
            reset_lag()
        elif action == "forget":
            # every user's Keycloak entry gone, as after the 30 s TTL (the realm-wide `everyone`
            # group, which the hub keeps fresh in the background from its start, stays)
            admin = getattr(self.settings["authenticator"], "keycloak_admin", None)
            if admin is not None:
                admin.forget()
        else:
            raise web.HTTPError(400)
        self.write("{}")


def _member_view(authenticator) -> dict | None:
    """What the hub's background read of every group's members last cost (keycloak_member_view)."""
    members = getattr(getattr(authenticator, "keycloak_admin", None), "_members", None)
    if members is None:
        return None
    return {
        "groups": len(members.groups),
        "users": len(members.users),
        "requests": members.requests,
        "took_ms": round(members.took * 1000, 1),
    }


def configure(c, env) -> None:
    """Everything the bench hub sets on top of hub-config/jupyterhub_config.py."""
    from primehub_hub.auth import PrimeHubAuthenticator

    hub_port, proxy_port, api_port = env["BENCH_HUB_PORT"], env["BENCH_PROXY_PORT"], env["BENCH_PROXY_API_PORT"]
    c.JupyterHub.bind_url = f"http://127.0.0.1:{proxy_port}"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{hub_port}"
    c.JupyterHub.hub_connect_url = f"http://127.0.0.1:{hub_port}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{api_port}"
    c.ConfigurableHTTPProxy.should_start = True
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.last_activity_interval = 300
    # the POST returns at once (202) so progress streams and concurrent spawns are observed
    # from the start instead of after JupyterHub's 10 s wait inside the request
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0, "log_function": log_function}
    c.JupyterHub.concurrent_spawn_limit = 500
    c.KubeSpawner.start_timeout = int(env.get("BENCH_START_TIMEOUT", "30"))
    c.KubeSpawner.http_timeout = 60
    c.JupyterHub.services = [{"name": "bench-admin", "api_token": env["BENCH_ADMIN_TOKEN"]}]
    c.JupyterHub.load_roles = [
        {
            "name": "bench-admin",
            "services": ["bench-admin"],
            "scopes": ["admin:users", "admin:servers", "read:users", "list:users", "read:servers", "tokens"],
        },
    ]

    # The bench catalog's hostPath and git datasets are mounted, as on a platform whose operator allows
    # /srv/bench/ and runs a git-sync (PrimeHub mounted them regardless): without this the form lists a
    # notice per dataset instead of its row. The node agent mounts nothing either way.
    c.PrimeHubSpawner.dataset_host_path_prefixes = ["/srv/bench/"]
    c.PrimeHubSpawner.git_sync_on_nodes = True

    # the entry point has set both Keycloak addresses from the settings document by now
    keycloak_urls = (c.PrimeHubAuthenticator.get("keycloak_internal_url"), c.PrimeHubAuthenticator.get("keycloak_url"))
    _urls["keycloak"] = [u.rstrip("/") for u in keycloak_urls if isinstance(u, str) and u]
    _urls["proxy"] = [f"http://127.0.0.1:{api_port}"]
    _patch_http()
    _patch_kubernetes()
    _patch_requests()

    class BenchAuthenticator(PrimeHubAuthenticator):
        async def refresh_user(self, user, handler=None, **kwargs):
            with timed("refresh_user"):
                return await super().refresh_user(user, handler, **kwargs)

        async def load_user_info(self, username, user_id=None, *, fresh=False):
            with timed("keycloak_user_info"):
                return await super().load_user_info(username, user_id, fresh=fresh)

        async def load_entitlements(self, username, user_id=None):
            with timed("keycloak_user_info"):
                return await super().load_entitlements(username, user_id)

        def get_handlers(self, app):
            return super().get_handlers(app) + [(r"/bench/stats", StatsHandler)]

    c.JupyterHub.authenticator_class = BenchAuthenticator
    if env.get("BENCH_MEMBER_VIEW") == "0":
        c.PrimeHubAuthenticator.keycloak_member_view = False  # to compare with the view off
    if env.get("BENCH_RELIST_SECONDS"):
        # 0: the reflectors list the namespace at every watch restart, as KubeSpawner does (to compare)
        c.ResourceReflector.relist_seconds = int(env["BENCH_RELIST_SECONDS"])
    if env.get("BENCH_DB_URL"):
        c.JupyterHub.db_url = env["BENCH_DB_URL"]  # the bench's own PostgreSQL (localstack/postgres.py)
    if env.get("BENCH_STAND_IN"):
        sys.path.insert(0, os.path.join(env["BENCH_REPO"], "scripts"))
        from localstack.standin import ANNOTATION, KIND

        c.KubeSpawner.extra_annotations = {ANNOTATION: KIND}
    primehub, plain = spawner_classes()
    if env.get("BENCH_SPAWNER") == "plain":
        c.JupyterHub.spawner_class = plain
        with open(env["BENCH_PROFILES"], encoding="utf-8") as f:
            c.KubeSpawner.profile_list = json.load(f)
    else:
        c.JupyterHub.spawner_class = primehub
    try:
        _ensure_lag_task()
    except RuntimeError:
        pass  # no running loop yet: the first stats request starts it
