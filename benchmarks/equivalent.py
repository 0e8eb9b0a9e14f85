"""The plain-KubeSpawner baseline: a static `profile_list` equivalent to what PrimeHub offers.

Computed once, offline, with the hub's own pure functions (plan.group_offer, plan.plan_launch), so
the baseline offers exactly the same groups, instance types, images and dataset mounts to the
benchmark user: one profile per launch group, with instance type and image as profile options. The
profile description lists the same mounted datasets the PrimeHub form lists, so both forms carry
the same information.
"""

from __future__ import annotations

from primehub_hub.entitlements import Group, UserInfo
from primehub_hub.plan import group_offer, plan_launch
from primehub_hub.quotas import LABEL_GROUP, format_cpu, format_memory, primehub_label
from primehub_hub.resources import Catalog, instance_type_override

from . import fixtures


def user_info(
    username: str, grants: dict[str, list[str]], groups: list[str] | None = None, attributes=None
) -> UserInfo:
    names = groups if groups is not None else list(grants)
    return UserInfo(
        username=username,
        groups=[
            Group(name=g, realm_roles=list(grants[g]), attributes=dict((attributes or {}).get(g, {})), id=f"id-{g}")
            for g in names
        ],
    )


def catalog(objects: list[dict]) -> Catalog:
    return Catalog.from_objects(objects)


def launch_choice(user: UserInfo, cat: Catalog, group: str) -> tuple[str, str]:
    """A CPU instance type and an image the group offers (what the spawn benchmark submits)."""
    g = next(x for x in user.groups if x.name == group)
    offer = group_offer(user, g, cat)
    it = next(o.resource for o in offer.instance_types if not o.resource.has_gpu)
    img = next(o.resource for o in offer.images if not o.resource.incompatibility(it))
    return it.name, img.name


def it_override(it) -> dict:
    # the same trait values PrimeHubSpawner.instance_type_to_override sets
    return instance_type_override(it)


def _group_profile(user: UserInfo, cat: Catalog, group: Group) -> dict:
    offer = group_offer(user, group, cat)
    plan = plan_launch(user, cat, {"group": group.name}, strict=False)
    env = {k: v for k, v in plan.env.items() if k not in ("INSTANCE_TYPE", "IMAGE_NAME")}
    datasets = "; ".join(
        f"{m.dataset.label} ({m.dataset.type}) at {'environment variables' if m.dataset.type == 'env' else m.dataset.mount_path}, "
        f"{'read-write' if m.writable else 'read-only'}"
        for m in offer.datasets
    )
    return {
        "display_name": group.label,
        "slug": group.name,
        "description": f"Datasets mounted: {datasets}" if datasets else "No datasets are mounted for this group.",
        "kubespawner_override": {
            "extra_labels": {LABEL_GROUP: primehub_label(group.name)},
            "environment": env,
            "volumes": plan.volumes,
            "volume_mounts": plan.volume_mounts,
        },
        "profile_options": {
            "instance_type": {
                "display_name": "Instance type",
                "choices": {
                    o.resource.name: {
                        "display_name": f"{o.resource.label} ({format_cpu(o.resource.cpu_limit)}, {format_memory(o.resource.memory_limit)})",
                        "kubespawner_override": it_override(o.resource),
                    }
                    for o in offer.instance_types
                },
            },
            "image": {
                "display_name": "Image",
                "choices": {
                    o.resource.name: {
                        "display_name": o.resource.label,
                        "kubespawner_override": {"image": o.resource.url},
                    }
                    for o in offer.images
                },
            },
        },
    }


def _fixed_profile(slug: str, it_objects: list[dict], it_name: str) -> dict:
    it = Catalog.from_objects(it_objects).instance_types[it_name]
    return {
        "display_name": slug,
        "slug": slug,
        "kubespawner_override": {
            **it_override(it),
            "image": "registry.bench.invalid/tiny:1",
            "extra_labels": {LABEL_GROUP: primehub_label(slug)},
            "environment": {"GROUP_NAME": slug, "TZ": "UTC", "NVIDIA_VISIBLE_DEVICES": "none"},
        },
    }


def plain_profile_list(username: str, shape: fixtures.Shape) -> list[dict]:
    """One profile per launch group of the form user, then the concurrency and failure profiles."""
    grants = shape.grants()
    user = user_info(username, grants)
    cat = catalog(shape.objects())
    profiles = [_group_profile(user, cat, g) for g in user.groups]
    profiles[0]["default"] = True
    small = fixtures.small_objects()
    profiles.append(_fixed_profile(fixtures.CONC_GROUP, small, fixtures.TINY_IT))
    profiles.append(_fixed_profile(fixtures.FAIL_GROUP, small, fixtures.HUGE_IT))
    return profiles
