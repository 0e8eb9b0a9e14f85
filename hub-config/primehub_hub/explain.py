"""What a user may launch and why, as plain data (the `explain` command). Pure."""

from .entitlements import EVERYONE, everyone_group, launch_groups, parse_grants
from .plan import group_offer
from .quotas import format_cpu, format_gpu, format_memory, primehub_label, quota_problems
from .singleuser import shm_size
from .volumes import home_capacity_decision, home_claim_name


def _quota(quota):
    return {"cpu": quota.cpu, "gpu": quota.gpu, "memory": quota.memory}


def _grant_sources(user, group, prefix, pick):
    """name -> groups (this one and/or everyone) whose roles grant it."""
    sources = {}
    for source in (group, everyone_group(user)):
        if source is None:
            continue
        for name in pick(parse_grants(source.realm_roles, prefix)):
            sources.setdefault(name, []).append(source.name)
    return sources


def _decisions(kind, catalog_names, sources, offered_names):
    rows = []
    for name in sorted(set(catalog_names) | set(sources)):
        if name in offered_names:
            rows.append({"kind": kind, "name": name, "offered": True, "why": "granted to " + " and ".join(sources[name])})
        elif name in sources:
            rows.append({"kind": kind, "name": name, "offered": False, "why": f"granted to {' and '.join(sources[name])}, but no such {kind} exists"})
        else:
            rows.append({"kind": kind, "name": name, "offered": False, "why": "not granted to this group or to everyone"})
    return rows


def explain_home(user, *, default_capacity="1Gi", naming="primehub"):
    """The user's home volume and pod labels, with why."""
    capacity, why = home_capacity_decision(user.attributes, default_capacity)
    return {
        "claimName": home_claim_name(user.username, naming),
        "naming": naming,
        "capacity": capacity,
        "capacityWhy": why,
        "userLabel": primehub_label(user.username),
    }


def explain_user(user, catalog, prefix="", *, home_default="1Gi", home_naming="primehub", shm_setting="limit"):
    groups = []
    for group in launch_groups(user):
        offer = group_offer(user, group, catalog, prefix)
        instance_types = []
        for o in offer.instance_types:
            it = o.resource
            what = f"instance type '{it.label}'"
            user_problems = quota_problems(it.limits, offer.user_quota, whose=f"your quota in group '{group.label}'", what=what)
            project_problems = quota_problems(it.limits, offer.project_quota, whose=f"the quota of group '{group.label}'", what=what)
            instance_types.append(
                {
                    "name": it.name,
                    "displayName": it.label,
                    "cpu": it.cpu_limit,
                    "memory": it.memory_limit,
                    "gpu": it.gpu_limit,
                    "gpuResourceName": it.gpu_resource_name if it.gpu_limit else None,
                    "fitsQuota": not user_problems,
                    "fitsProjectQuota": not project_problems,
                    "reason": "; ".join(user_problems + project_problems),
                    "grantedBy": list(o.granted_by),
                    "shmSize": shm_size(it, shm_setting) or None,
                }
            )
        images = [
            {
                "name": o.resource.name,
                "displayName": o.resource.label,
                "type": o.resource.type,
                "url": o.resource.url,
                "urlForGpu": o.resource.url_for_gpu or None,
                "grantedBy": list(o.granted_by),
            }
            for o in offer.images
        ]
        datasets = [
            {
                "name": m.dataset.name,
                "displayName": m.dataset.label,
                "type": m.dataset.type,
                "writable": m.writable,
                "mountPath": None if m.dataset.type == "env" else m.dataset.mount_path,
                "launchGroupOnly": m.dataset.launch_group_only,
                "grantedBy": list(m.granted_by),
            }
            for m in offer.datasets
        ]
        it_sources = _grant_sources(user, group, prefix, lambda g: g.instance_types)
        img_sources = _grant_sources(user, group, prefix, lambda g: g.images)
        decisions = _decisions("InstanceType", catalog.instance_types, it_sources, {i["name"] for i in instance_types})
        decisions += _decisions("Image", catalog.images, img_sources, {i["name"] for i in images})
        mounted = {d["name"] for d in datasets}
        skipped = {s.dataset.name: s.reason for s in offer.skipped_datasets}
        ds_sources = {}
        for g in launch_groups(user) + ([everyone_group(user)] if everyone_group(user) else []):
            for name in parse_grants(g.realm_roles, prefix).dataset_access:
                ds_sources.setdefault(name, []).append(g.name)
        for name in sorted(set(catalog.datasets) | set(ds_sources)):
            if name in mounted:
                why = "granted to " + " and ".join(next(d["grantedBy"] for d in datasets if d["name"] == name))
            elif name in skipped:
                why = skipped[name]
            elif name in ds_sources:
                why = f"granted to {' and '.join(ds_sources[name])}, but no such Dataset exists"
            else:
                why = "not granted to any of your groups or to everyone"
            decisions.append({"kind": "Dataset", "name": name, "offered": name in mounted, "why": why})
        groups.append(
            {
                "name": group.name,
                "displayName": group.label,
                "groupLabel": primehub_label(group.name),
                "quota": _quota(offer.user_quota),
                "projectQuota": _quota(offer.project_quota),
                "quotaErrors": list(offer.user_quota.errors + offer.project_quota.errors),
                "instanceTypes": instance_types,
                "images": images,
                "datasets": datasets,
                "sharedVolumes": [
                    {"claimName": v.claim_name, "mountPath": v.mount_path, "capacity": v.capacity} for v in offer.shared_volumes
                ],
                "volumeError": offer.volume_error or None,
                "decisions": decisions,
            }
        )
    return {
        "user": user.username,
        "admin": bool(user.is_admin),
        "everyone": everyone_group(user) is not None,
        "home": explain_home(user, default_capacity=home_default, naming=home_naming),
        "groups": groups,
    }


def _table(headers, rows):
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(cell))) for w, cell in zip(widths, row)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _quota_text(q):
    return f"cpu {format_cpu(q['cpu'])}, gpu {format_gpu(q['gpu'])}, memory {format_memory(q['memory'])}"


def render_text(report):
    out = [f"User {report['user']}" + (" (admin)" if report["admin"] else "")]
    if not report["everyone"]:
        out.append(f"The realm has no '{EVERYONE}' group: there are no global grants.")
    home = report.get("home")
    if home:
        out.append(f"Home volume: {home['claimName']} ({home['naming']} naming), {home['capacity']} from {home['capacityWhy']}")
        out.append(f"Pod label primehub.io/user={home['userLabel']}")
    if not report["groups"]:
        out.append("No launch group: this user sees 'No group is configured for you'.")
    for group in report["groups"]:
        out.append("")
        title = f"Group {group['name']}" + (f" ({group['displayName']})" if group["displayName"] != group["name"] else "")
        out.append(title)
        out.append("=" * len(title))
        out.append(f"Pod label primehub.io/group={group['groupLabel']}")
        out.append(f"Your quota:  {_quota_text(group['quota'])}")
        out.append(f"Group quota: {_quota_text(group['projectQuota'])}")
        for error in group["quotaErrors"]:
            out.append(f"Quota error: {error} (treated as 0)")
        if group["volumeError"]:
            out.append(f"Cannot launch: {group['volumeError']}")
        for volume in group["sharedVolumes"]:
            out.append(f"Shared volume: {volume['claimName']} at {volume['mountPath']} ({volume['capacity']})")
        out.append("")
        out.append(
            _table(
                ["instance type", "cpu", "memory", "gpu", "/dev/shm", "fits quota", "note"],
                [
                    [i["name"], format_cpu(i["cpu"]), format_memory(i["memory"]), i["gpu"], i.get("shmSize") or "64Mi (default)",
                     "yes" if i["fitsQuota"] and i["fitsProjectQuota"] else "NO", i["reason"]]
                    for i in group["instanceTypes"]
                ]
                or [["(none)", "", "", "", "", "", ""]],
            )
        )
        out.append("")
        out.append(_table(["image", "type", "url"], [[i["name"], i["type"], i["url"]] for i in group["images"]] or [["(none)", "", ""]]))
        out.append("")
        out.append(
            _table(
                ["dataset", "type", "access", "mounted at"],
                [[d["name"], d["type"], "read-write" if d["writable"] else "read-only", d["mountPath"] or "(environment)"] for d in group["datasets"]]
                or [["(none)", "", "", ""]],
            )
        )
        out.append("")
        out.append(
            _table(
                ["kind", "name", "offered", "why"],
                [[d["kind"], d["name"], "yes" if d["offered"] else "no", d["why"]] for d in group["decisions"]],
            )
        )
    return "\n".join(out) + "\n"
