"""Case 5: how form and spawn costs grow with the platform (groups and resources together),
through the real stack (Keycloak + custom resources + bench hub), at the scales whose objects can
be created within the run's time budget. The in-process side (our code's CPU cost, to 100x) is
inprocess.py.
"""

from __future__ import annotations

import time

from . import case_form, case_spawn, equivalent
from .fixtures import Shape
from .inprocess import OWN_GROUPS
from .stack import NAMESPACE, PUBLIC_URL, BenchHub, Kube, Realm, browser_login, log


def real(hub: BenchHub, kube: Kube, realm: Realm, scale: int, renders: int, spawns: int) -> dict:
    tag = f"x{scale}"
    shape = Shape.scaled(tag, scale)
    prefix = f"bench-{tag}-"
    user = f"{prefix}user"
    # a user whose own offers do not grow with the platform: the groups of case 1's user
    own_user = f"{prefix}own"
    own_groups = shape.group_names[:OWN_GROUPS]
    api_users = [f"{prefix}s{i:03d}" for i in range(spawns)]
    log(
        f"growth on the real stack: {scale}x ({shape.groups} groups, {len(shape.roles())} grant roles, "
        f"{len(shape.objects())} custom resources)"
    )
    grants = shape.grants()
    result = {
        "scale": scale,
        "groups": shape.groups,
        "instance_types": shape.instance_types,
        "images": shape.images,
        "datasets": shape.datasets,
    }
    try:
        result["keycloak_setup_s"] = round(
            realm.import_fixture(
                grants,
                [
                    {"username": user, "groups": shape.group_names, "password": True},
                    {"username": own_user, "groups": own_groups, "password": True},
                ]
                + [{"username": u, "groups": shape.group_names} for u in api_users],
            ),
            1,
        )
        result["k8s_setup_s"] = round(kube.create_objects(shape.objects(NAMESPACE)), 1)
        session = browser_login(user)
        _wait_catalog(session, hub, shape)
        since = hub.last_id()
        hub.stats_action("reset-lag")
        result["form"] = case_form.run(hub, session, "primehub", renders, warmups=1)
        result["form_own"] = case_form.run(hub, browser_login(own_user), "primehub", renders, warmups=1)
        result["own_groups"] = len(own_groups)
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
