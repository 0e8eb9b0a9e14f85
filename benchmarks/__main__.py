"""Run the benchmarks on the local stack and write docs/benchmarks.md (`make bench`).

`python -m benchmarks [--quick] [--only CASE] [--growth-real-scale N] [--servers N] [--cleanup]`;
`python -m benchmarks --in-process [--quick]` runs only the in-process case (our code's CPU cost,
no local stack needed: inprocess.py).

Everything the run creates is its own: namespace `bench`, Keycloak users/groups/roles named
`bench-...` and the client `bench-hub`, bench hubs on ports 9080/9001/9081 with state in
.local-stack/bench/, and for case 7 (servers) extra nodes `bench-node-...` served by a node agent of
its own (benchnodes.py). All of it is removed at the end (also after a failure), unless --keep.
Results accumulate in .local-stack/bench/results.json, so `--only` refreshes one case of the page.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

from . import (
    benchnodes,
    case_concurrency,
    case_failure,
    case_form,
    case_growth,
    case_servers,
    case_spawn,
    equivalent,
    fixtures,
    inprocess,
    report,
)
from .stack import NAMESPACE, REPO, STATE, BenchHub, Kube, Realm, Watch, browser_login, log, stack_epoch, wait_stack

CASES = ("form", "spawn", "concurrency", "failure", "growth", "servers", "inprocess")
RESULTS = STATE / "results.json"
FORM_USER = "bench-form"
FAIL_USER = "bench-failer"


@dataclass
class Config:
    form_renders: int = 30
    spawn_browser: int = 20
    spawn_api: int = 20
    users: int = 100
    quota_fits: int = 40
    fail_reps: int = 10
    fail_reps_plain: int = 2
    plain_start_timeout: int = 30
    # 10x through the real stack needs ~7 min of Keycloak setup alone: run it with --growth-real-scale 10
    growth_real_scale: int = 5
    growth_renders: int = 3
    growth_spawns: int = 3
    growth_scales: list = field(default_factory=lambda: [1, 10, 100])
    growth_reps: int = 5
    fail_reps_inprocess: int = 10
    # case 3 again with the hub database on PostgreSQL (benchmarks/postgres.py), when it is installed
    postgres: bool = True
    # case 7: servers running on one hub, measured with servers_base and with servers running
    servers: int = 1000
    servers_base: int = 10
    servers_batch: int = 50
    servers_renders: int = 100
    servers_spawns: int = 40


QUICK = Config(
    form_renders=10,
    spawn_browser=4,
    spawn_api=4,
    users=20,
    quota_fits=8,
    fail_reps=3,
    fail_reps_plain=1,
    growth_real_scale=2,
    growth_renders=2,
    growth_spawns=2,
    growth_scales=[1, 10],
    growth_reps=3,
    servers=100,
    servers_renders=10,
    servers_spawns=4,
)


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "cpu": model or platform.processor(),
        "kernel": platform.release(),
    }


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in (
        "jupyterhub",
        "jupyterhub-kubespawner",
        "oauthenticator",
        "kubernetes_asyncio",
        "tornado",
        "jinja2",
        "python-keycloak",
    ):
        try:
            out[dist] = version(dist)
        except Exception:
            out[dist] = "?"
    for line in (REPO / "scripts" / "versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.strip().split("=", 1)
            if k in ("K8S_VERSION", "KEYCLOAK_VERSION", "ETCD_VERSION", "CHP_VERSION"):
                out[k.split("_")[0].lower()] = v
    try:
        out["commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "hub-config"], capture_output=True, text=True
        ).stdout.strip()
        out["hub_config_uncommitted_changes"] = bool(dirty)
    except OSError:
        pass
    return out


def load_results() -> dict:
    try:
        return json.loads(RESULTS.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def setup(kube: Kube, realm: Realm, cfg: Config, shape: fixtures.Shape) -> dict:
    log("removing leftovers of earlier runs, then creating the bench fixtures")
    realm.purge()
    kube.ensure_namespace()
    kube.delete_all_pods()
    kube.delete_objects()
    kube.wait_no_pods()
    realm.ensure_client()
    grants = {**shape.grants(), **fixtures.small_grants()}
    users = [{"username": FORM_USER, "groups": shape.group_names, "password": True}]
    users += [{"username": u, "groups": shape.group_names} for u in spawn_users(cfg)]
    users += [
        {"username": u, "groups": [fixtures.CONC_GROUP]} for u in case_concurrency.users_for("bench-c", cfg.users)
    ]
    users += [
        {"username": u, "groups": [fixtures.QUOTA_GROUP]} for u in case_concurrency.users_for("bench-q", cfg.users)
    ]
    users += [{"username": FAIL_USER, "groups": [fixtures.FAIL_GROUP]}]
    kc_s = realm.import_fixture(grants, users, {fixtures.QUOTA_GROUP: fixtures.quota_attributes(cfg.quota_fits)})
    k8s_s = kube.create_objects(shape.objects(NAMESPACE) + fixtures.small_objects(NAMESPACE))
    log(f"fixtures ready: Keycloak {kc_s:.1f}s, custom resources {k8s_s:.1f}s")
    return {
        "keycloak_s": round(kc_s, 1),
        "custom_resources_s": round(k8s_s, 1),
        "users": len(users),
        "groups": len(grants),
        "roles": len({r for rs in grants.values() for r in rs}),
    }


def spawn_users(cfg: Config) -> list[str]:
    return [f"bench-s{i:03d}" for i in range(cfg.spawn_api)]


def spawn_choices(shape: fixtures.Shape) -> list[tuple[str, str, str]]:
    info = equivalent.user_info(FORM_USER, shape.grants())
    cat = equivalent.catalog(shape.objects())
    return [(g, *equivalent.launch_choice(info, cat, g)) for g in shape.group_names]


def guarded(out: dict, case: str, key: str, hub: BenchHub, kube: Kube, fn, retries: int = 1) -> None:
    """Run one measurement. The shared stack's servers get restarted by other tests now and then:
    a measurement during which that happened (or that failed) is repeated once after the stack is
    back; if it is disturbed again it is kept with a note, and a failure is recorded as such."""
    for attempt in range(retries + 1):
        before = stack_epoch()
        try:
            value, error = fn(), None
        except Exception as e:
            log(f"{case}/{key} failed: {e!r}")
            traceback.print_exc()
            value, error = {"error": f"{type(e).__name__}: {e}"[:500]}, e
        disturbed = stack_epoch() != before
        if (error or disturbed) and attempt < retries:
            log(f"{case}/{key}: {'failed' if error else 'a shared server restarted meanwhile'}; measuring again")
            _reset(hub, kube)
            continue
        if disturbed and isinstance(value, dict):
            value["disturbed"] = (
                "a shared server (API server, Keycloak, scheduler, node agent or etcd) restarted during this measurement"
            )
        out.setdefault(case, {})[key] = value
        if error:
            _reset(hub, kube)
        return


def _reset(hub: BenchHub, kube: Kube) -> None:
    wait_stack()
    try:
        hub.stop_servers([u["name"] for u in hub.active_users()], kube)
    except Exception as e:
        log(f"stopping servers after a failure: {e}")
    kube.delete_all_pods()
    kube.wait_no_pods()


def run_hub_cases(
    variant: str,
    hub: BenchHub,
    kube: Kube,
    realm: Realm,
    watch: Watch,
    cfg: Config,
    shape: fixtures.Shape,
    selected: list[str],
    out: dict,
) -> None:
    hub.start()
    out.setdefault("_hub_versions", {})[variant] = hub.version
    try:
        session = browser_login(FORM_USER) if {"form", "spawn"} & set(selected) else None
        if "form" in selected:
            guarded(out, "form", variant, hub, kube, lambda: case_form.run(hub, session, variant, cfg.form_renders))
        if "spawn" in selected:
            choices = spawn_choices(shape)
            guarded(
                out,
                "spawn",
                f"{variant}_browser",
                hub,
                kube,
                lambda: case_spawn.run_browser(hub, session, variant, FORM_USER, choices, cfg.spawn_browser),
            )
            guarded(
                out,
                "spawn",
                f"{variant}_api",
                hub,
                kube,
                lambda: case_spawn.run_api(hub, kube, variant, spawn_users(cfg), choices),
            )
        if "concurrency" in selected:
            guarded(
                out,
                "concurrency",
                variant,
                hub,
                kube,
                lambda: _burst(hub, kube, watch, cfg, variant, "bench-c", fixtures.CONC_GROUP),
            )
            if variant == "primehub":
                guarded(
                    out,
                    "concurrency",
                    "primehub_quota",
                    hub,
                    kube,
                    lambda: _burst(hub, kube, watch, cfg, variant, "bench-q", fixtures.QUOTA_GROUP, cfg.quota_fits),
                )
        if "failure" in selected:
            body = (
                {"profile": fixtures.FAIL_GROUP}
                if variant == "plain"
                else {"group": fixtures.FAIL_GROUP, "instance_type": fixtures.HUGE_IT, "image": fixtures.TINY_IMAGE}
            )
            reps = cfg.fail_reps_plain if variant == "plain" else cfg.fail_reps
            guarded(
                out,
                "failure",
                variant,
                hub,
                kube,
                lambda: case_failure.run(
                    hub, watch, variant, FAIL_USER, body, reps, timeout=cfg.plain_start_timeout + 60
                ),
            )
            out["failure"]["start_timeout_s"] = cfg.plain_start_timeout
        if "growth" in selected and variant == "primehub":
            # not repeated: creating its objects again would take minutes
            guarded(
                out.setdefault("growth", {}).setdefault("real", {}),
                "scales",
                str(cfg.growth_real_scale),
                hub,
                kube,
                lambda: case_growth.real(
                    hub, kube, realm, cfg.growth_real_scale, cfg.growth_renders, cfg.growth_spawns
                ),
                retries=0,
            )
    finally:
        hub.stop()
        kube.delete_all_pods()


def _burst(
    hub: BenchHub,
    kube: Kube,
    watch: Watch,
    cfg: Config,
    variant: str,
    prefix: str,
    group: str,
    expect: int | None = None,
) -> dict:
    users = case_concurrency.users_for(prefix, cfg.users)
    try:
        return case_concurrency.run(
            hub, kube, watch, variant, users, case_concurrency.body_for(variant, group), group, expect_pods=expect
        )
    finally:
        hub.stop_servers(users, kube)


def run_concurrency_on_postgres(kube: Kube, realm: Realm, watch: Watch, cfg: Config, profiles: Path, out: dict) -> None:
    """Case 3 once more for both hubs, their database on the bench's own PostgreSQL server."""
    try:
        import psycopg2  # noqa: F401  (the hub's PostgreSQL driver)

        from localstack.postgres import Postgres

        pg = Postgres(STATE / "postgres").start()
    except Exception as e:
        log(f"concurrency on PostgreSQL skipped: {e}")
        out.setdefault("concurrency", {})["postgres_skipped"] = f"{type(e).__name__}: {e}"[:300]
        return
    try:
        for variant in ("primehub", "plain"):
            pg.reset()
            hub = BenchHub(
                variant,
                realm.client_secret,
                profiles if variant == "plain" else None,
                cfg.plain_start_timeout,
                db_url=pg.url,
            )
            hub.start()
            try:
                guarded(
                    out,
                    "concurrency",
                    f"{variant}_postgres",
                    hub,
                    kube,
                    lambda: _burst(hub, kube, watch, cfg, variant, "bench-c", fixtures.CONC_GROUP),
                )
            finally:
                hub.stop()
                kube.delete_all_pods()
    finally:
        pg.stop()


def run_servers(kube: Kube, realm: Realm, cfg: Config, shape: fixtures.Shape, out: dict) -> None:
    """Case 7 on a fresh PrimeHub bench hub whose pods get in-agent stand-ins (benchmarks/case_servers.py)."""
    hub = BenchHub("primehub", realm.client_secret, stand_ins=True)
    guarded(
        out,
        "servers",
        "primehub",
        hub,
        kube,
        lambda: case_servers.run(hub, kube, realm, cfg, shape.group_names, spawn_choices(shape)),
        retries=0,  # not repeated: setting up a thousand servers again would take many minutes
    )
    out.setdefault("_hub_versions", {})["servers"] = getattr(hub, "version", "?")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions (a few minutes)")
    ap.add_argument("--only", choices=CASES, help="run one case; the page keeps the other cases' last results")
    ap.add_argument("--keep", action="store_true", help="leave the bench fixtures in place (debugging)")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument("--growth-real-scale", type=int, help="scale of the real-stack growth run (default 5, quick 2)")
    ap.add_argument("--no-postgres", action="store_true", help="skip case 3 on PostgreSQL")
    ap.add_argument("--servers", type=int, help="servers kept running in case 7 (default 1000, quick 100)")
    ap.add_argument("--cleanup", action="store_true", help="only remove what an interrupted run left behind")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="only the in-process case (no local stack needed); same as --only inprocess",
    )
    a = ap.parse_args(argv)
    if a.in_process:
        a.only = "inprocess"
    if a.cleanup:
        log("removing bench pods, namespace bench and the bench Keycloak objects")
        kube = Kube()
        kube.delete_namespace()
        benchnodes.remove(kube)
        log(f"Keycloak: {Realm().purge()} removed")
        return 0
    cfg = QUICK if a.quick else Config()
    if a.growth_real_scale:
        cfg.growth_real_scale = a.growth_real_scale
    if a.no_postgres:
        cfg.postgres = False
    if a.servers:
        cfg.servers = a.servers
    selected = [a.only] if a.only else list(CASES)
    STATE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks"
        + (" --quick" if a.quick else "")
        + (f" --only {a.only}" if a.only else "")
        + (f" --growth-real-scale {a.growth_real_scale}" if a.growth_real_scale else "")
        + (f" --servers {a.servers}" if a.servers else ""),
        "quick": a.quick,
        "config": asdict(cfg),
        "machine": machine(),
        "versions": versions(),
    }
    shape = fixtures.Shape.scaled("f", 1)
    out: dict = {}
    kube = realm = watch = None
    try:
        if "inprocess" in selected:
            out["inprocess"] = {
                "growth": inprocess.growth(cfg.growth_scales, cfg.growth_reps),
                "failure": inprocess.failure(cfg.fail_reps_inprocess),
                "servers": inprocess.servers([10, 1000], cfg.growth_reps),
                "profiles": inprocess.profiles(),
            }
        stack_cases = [c for c in selected if c != "inprocess"]
        # case 7 has a hub of its own (a fresh one, restarted on purpose)
        hub_cases = [c for c in stack_cases if c != "servers"]
        if stack_cases:
            kube, realm = Kube(), Realm()
            meta["fixtures"] = setup(kube, realm, cfg, shape)
        if hub_cases:
            # case 7 reads none of it: its thousand pods would only load the machine it measures on
            watch = Watch(kube).start()
        if hub_cases:
            run_hub_cases(
                "primehub", BenchHub("primehub", realm.client_secret), kube, realm, watch, cfg, shape, hub_cases, out
            )
            # growth is about our code: no plain-KubeSpawner run
            plain_cases = [c for c in hub_cases if c != "growth"]
            if plain_cases:
                profiles = STATE / "profiles-plain.json"
                profiles.write_text(json.dumps(equivalent.plain_profile_list(FORM_USER, shape)))
                run_hub_cases(
                    "plain",
                    BenchHub("plain", realm.client_secret, profiles, cfg.plain_start_timeout),
                    kube,
                    realm,
                    watch,
                    cfg,
                    shape,
                    plain_cases,
                    out,
                )
                if "concurrency" in plain_cases and cfg.postgres:
                    run_concurrency_on_postgres(kube, realm, watch, cfg, profiles, out)
        if "servers" in stack_cases:
            if watch is not None:
                watch.stop()
            run_servers(kube, realm, cfg, shape, out)
    finally:
        if watch is not None:
            watch.stop()
        if kube is not None and not a.keep:
            log("cleaning up: bench pods, namespace bench, bench Keycloak objects")
            try:
                kube.delete_all_pods()
                kube.delete_namespace()
                if "servers" in selected:
                    benchnodes.remove(kube)
            finally:
                realm.purge()
        meta["seconds"] = round(time.monotonic() - started)
        results = load_results()
        meta["hub_versions"] = out.pop("_hub_versions", {})
        for case, value in out.items():
            if case == "growth":
                # real-stack growth runs of other scales (other runs) stay on the page
                old = ((results.get("growth") or {}).get("real") or {}).get("scales") or {}
                new = (value.get("real") or {}).get("scales") or {}
                value["real"] = {"scales": {**old, **{k: {**v, "date": meta["date"]} for k, v in new.items()}}}
            results[case] = {"run": meta, **value}
        RESULTS.write_text(json.dumps(results, indent=1))
        log(f"results in {RESULTS} ({meta['seconds']} s)")
    if not a.no_write:
        path = report.write(results)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
