"""What a user may launch and why, as plain data (the `explain` command). Pure.

Every decision comes from the modules that make it for the hub: offers and grant sources from
entitlements.py, quota sentences from quotas.py (through plan.GroupOffer), volumes from volumes.py.
This module only lays them out.
"""

from .entitlements import EVERYONE, everyone_group, grant_sources, launch_groups
from .plan import group_offer
from .quotas import format_cpu, format_gpu, format_memory, primehub_label
from .singleuser import shm_size
from .volumes import home_capacity_decision, home_claim_name


def _decisions(kind, catalog_names, sources, offered_names):
    rows = []
    for name in sorted(set(catalog_names) | set(sources)):
        if name in offered_names:
            rows.append(
                {"kind": kind, "name": name, "offered": True, "why": "granted to " + " and ".join(sources[name])}
            )
        elif name in sources:
            rows.append(
                {
                    "kind": kind,
                    "name": name,
                    "offered": False,
                    "why": f"granted to {' and '.join(sources[name])}, but no such {kind} exists",
                }
            )
        else:
            rows.append(
                {"kind": kind, "name": name, "offered": False, "why": "not granted to this group or to everyone"}
            )
    return rows


def _instance_type_rows(offer, shm_setting="limit"):
    """Each offered instance type with its size, /dev/shm and whether it fits the user's and the group's quota."""
    rows = []
    for o in offer.instance_types:
        it = o.resource
        user_problems, project_problems = offer.quota_problems(it)
        rows.append(
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
    return rows


def _image_rows(offer):
    return [
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


def _dataset_rows(offer):
    return [
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


def _dataset_decisions(user, offer, catalog, prefix):
    """Why each dataset of the catalog or of a grant is mounted under this group, or not."""
    mounted = {m.dataset.name: m.granted_by for m in offer.datasets}
    skipped = {s.dataset.name: s.reason for s in offer.skipped_datasets}
    skipped.update({m.dataset.name: reason for m, reason in offer.unavailable_datasets})
    sources = grant_sources(launch_groups(user) + [everyone_group(user)], prefix, lambda g: g.dataset_access)
    rows = []
    for name in sorted(set(catalog.datasets) | set(sources)):
        if name in mounted:
            why = "granted to " + " and ".join(mounted[name])
        elif name in skipped:
            why = skipped[name]
        elif name in sources:
            why = f"granted to {' and '.join(sources[name])}, but no such Dataset exists"
        else:
            why = "not granted to any of your groups or to everyone"
        rows.append({"kind": "Dataset", "name": name, "offered": name in mounted, "why": why})
    return rows


def _group_decisions(user, group, offer, catalog, prefix):
    """Why each instance type, image and dataset is offered under `group`, or not."""
    here = (group, everyone_group(user))
    offered_its = {o.resource.name for o in offer.instance_types}
    offered_images = {o.resource.name for o in offer.images}
    return (
        _decisions(
            "InstanceType", catalog.instance_types, grant_sources(here, prefix, lambda g: g.instance_types), offered_its
        )
        + _decisions("Image", catalog.images, grant_sources(here, prefix, lambda g: g.images), offered_images)
        + _dataset_decisions(user, offer, catalog, prefix)
    )


def _group_report(user, group, catalog, prefix, shm_setting="limit", git_sync_on_nodes=True):
    offer = group_offer(user, group, catalog, prefix, git_sync_on_nodes=git_sync_on_nodes)
    return {
        "name": group.name,
        "displayName": group.label,
        "groupLabel": primehub_label(group.name),
        "quota": offer.user_quota.to_dict(),
        "projectQuota": offer.project_quota.to_dict(),
        "quotaErrors": list(offer.user_quota.errors + offer.project_quota.errors),
        "instanceTypes": _instance_type_rows(offer, shm_setting),
        "images": _image_rows(offer),
        "datasets": _dataset_rows(offer),
        "sharedVolumes": [
            {"claimName": v.claim_name, "mountPath": v.mount_path, "capacity": v.capacity} for v in offer.shared_volumes
        ],
        "volumeError": offer.volume_error or None,
        "decisions": _group_decisions(user, group, offer, catalog, prefix),
    }


def explain_home(user, *, default_capacity="1Gi", naming="primehub"):
    """The user's home volume and pod label, with why."""
    capacity, why = home_capacity_decision(user.attributes, default_capacity)
    return {
        "claimName": home_claim_name(user.username, naming),
        "naming": naming,
        "capacity": capacity,
        "capacityWhy": why,
        "userLabel": primehub_label(user.username),
    }


def explain_user(
    user, catalog, prefix="", *, home_default="1Gi", home_naming="primehub", shm_setting="limit", git_sync_on_nodes=True
):
    return {
        "user": user.username,
        "admin": bool(user.is_admin),
        "everyone": everyone_group(user) is not None,
        "home": explain_home(user, default_capacity=home_default, naming=home_naming),
        "groups": [
            _group_report(user, group, catalog, prefix, shm_setting, git_sync_on_nodes) for group in launch_groups(user)
        ],
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
        out.append(
            f"Home volume: {home['claimName']} ({home['naming']} naming), {home['capacity']} from {home['capacityWhy']}"
        )
        out.append(f"Pod label primehub.io/user={home['userLabel']}")
    if not report["groups"]:
        out.append("No launch group: this user sees 'No group is configured for you'.")
    for group in report["groups"]:
        out.append("")
        out.extend(_group_text(group))
    return "\n".join(out) + "\n"


def _group_text(group):
    """One launch group of the report: its labels, quotas and volumes, then a table per kind of choice."""
    title = f"Group {group['name']}" + (f" ({group['displayName']})" if group["displayName"] != group["name"] else "")
    out = [title, "=" * len(title)]
    out.append(f"Pod label primehub.io/group={group['groupLabel']}")
    out.append(f"Your quota:  {_quota_text(group['quota'])}")
    out.append(f"Group quota: {_quota_text(group['projectQuota'])}")
    for error in group["quotaErrors"]:
        out.append(f"Quota error: {error} (treated as 0)")
    if group["volumeError"]:
        out.append(f"Cannot launch: {group['volumeError']}")
    for volume in group["sharedVolumes"]:
        out.append(f"Shared volume: {volume['claimName']} at {volume['mountPath']} ({volume['capacity']})")
    for table in (_instance_types_table, _images_table, _datasets_table, _decisions_table):
        out.append("")
        out.append(table(group))
    return out


def _instance_types_table(group):
    rows = [
        [
            i["name"],
            format_cpu(i["cpu"]),
            format_memory(i["memory"]),
            i["gpu"],
            i.get("shmSize") or "64Mi (default)",
            "yes" if i["fitsQuota"] and i["fitsProjectQuota"] else "NO",
            i["reason"],
        ]
        for i in group["instanceTypes"]
    ]
    headers = ["instance type", "cpu", "memory", "gpu", "/dev/shm", "fits quota", "note"]
    return _table(headers, rows or [["(none)", "", "", "", "", "", ""]])


def _images_table(group):
    rows = [[i["name"], i["type"], i["url"]] for i in group["images"]]
    return _table(["image", "type", "url"], rows or [["(none)", "", ""]])


def _datasets_table(group):
    rows = [
        [d["name"], d["type"], "read-write" if d["writable"] else "read-only", d["mountPath"] or "(environment)"]
        for d in group["datasets"]
    ]
    return _table(["dataset", "type", "access", "mounted at"], rows or [["(none)", "", "", ""]])


def _decisions_table(group):
    rows = [[d["kind"], d["name"], "yes" if d["offered"] else "no", d["why"]] for d in group["decisions"]]
    return _table(["kind", "name", "offered", "why"], rows)
