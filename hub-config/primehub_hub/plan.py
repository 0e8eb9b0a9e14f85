"""From a user, the catalog and submitted options to a launch plan, or a refusal. Pure.

The spawner, the options form and the `primehub-profiles` CLI all go through `group_offer` and
`plan_launch`, so what the form offers, what the server accepts and what the CLI explains
cannot drift apart.

Options are `{"group": str, "instance_type": str, "image": str}` (`profile` is accepted as an
alias of `group`, KubeSpawner's name for it). In strict mode (options the user just submitted)
anything not granted is refused; in lenient mode (options remembered from an earlier launch)
a choice that is no longer granted is dropped quietly and replaced by the first usable one.
"""

import re
from dataclasses import dataclass, field, replace

from .datasets import (
    DEFAULT_GIT_SYNC_HOST_ROOT,
    DEFAULT_MOUNT_ROOTS,
    dataset_claims,
    dataset_unavailable,
    datasets_pieces,
    volume_name,
)
from .entitlements import (
    UserDatasets,
    find_launch_group,
    launch_groups,
    offered_images,
    offered_instance_types,
)
from .errors import BadRequest, ConfigurationError, NoLaunchGroup, QuotaExceeded, Refused
from .quotas import ZERO, launch_quota_problems, project_quota, user_quota
from .userenv import parse_env, user_env_for_launch
from .volumes import shared_volumes_for_launch

OPTION_KEYS = ("group", "instance_type", "image", "env", "safe_mode")
_TRUE, _FALSE = ("on", "true", "yes", "1"), ("off", "false", "no", "0", "")
OPTION_ALIASES = {"profile": "group"}
MAX_OPTION_LENGTH = 253
# No resource or group name holds one; in a log line they could forge or hide entries.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _shown(text):
    """`text` safe to echo into a message or log line: control characters escaped, kept short."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)[:60]


NO_GROUP_MESSAGE = (
    "No group is configured for you, so there is nothing you can launch yet. "
    "Please ask your administrator to add you to a group."
)


def normalize_options(raw, *, strict):
    """Validate the shape of submitted options; returns {key: str} for the known keys.

    Accepts form data (`{key: [str]}`) and JSON (`{key: str}`). In strict mode a wrong type, an
    over-long value, several values or an unknown key is a 400; in lenient mode they are ignored.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        if strict:
            raise BadRequest("Server options must be an object with group, instance_type and image.")
        return {}
    options = {}
    unknown = []
    for key, value in raw.items():
        canonical = OPTION_ALIASES.get(key, key)
        if canonical not in OPTION_KEYS:
            unknown.append(_shown(str(key)))
            continue
        if canonical == "env":
            env = _env_option(value, strict=strict)
            if env:
                options["env"] = env
            continue
        if canonical == "safe_mode":
            # a one-off (PrimeHub's Safe Mode): taken from a submission, never from remembered options
            if strict and _safe_mode_option(value, strict=strict):
                options["safe_mode"] = True
            continue
        value = _name_option(canonical, value, strict=strict)
        if value is None:
            continue
        if canonical in options and options[canonical] != value:
            if strict:
                raise BadRequest(f"Option '{canonical}' was given twice with different values.")
            continue
        options[canonical] = value
    if unknown and strict:
        names = ", ".join(sorted(unknown)[:5])
        raise BadRequest(
            f"Unknown server option(s): {names}. Only group, instance_type, image, env and safe_mode can be chosen."
        )
    return options


def _single(value):
    """A form posts every field as a list; one value stands for itself."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _env_option(value, *, strict):
    """The user's own environment variables ({name: value}), from the form's text or the API's JSON."""
    value = _single(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return parse_env(value, strict=strict)


def _safe_mode_option(value, *, strict):
    """Whether Safe Mode is asked for; a value that is neither on nor off is a 400 when strict."""
    value = _single(value)
    text = str(value).strip().lower() if isinstance(value, (str, bool)) else None
    if text not in _TRUE + _FALSE:
        if strict:
            raise BadRequest("Option 'safe_mode' must be on or off.")
        return False
    return text in _TRUE


def _name_option(canonical, value, *, strict):
    """A chosen name (group, instance type, image), or None where there is none or (lenient) a bad one."""
    if isinstance(value, list):
        if len(value) != 1:
            if strict:
                raise BadRequest(f"Option '{canonical}' must have exactly one value.")
            return None
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_OPTION_LENGTH or _CONTROL.search(value):
        if strict:
            raise BadRequest(f"Option '{canonical}' must be a name of at most {MAX_OPTION_LENGTH} characters.")
        return None
    return value


@dataclass(frozen=True)
class Choice:
    """One entry of a select in the form: usable or disabled with a reason."""

    name: str
    label: str
    description: str = ""
    reason: str = ""
    resource: object = None

    @property
    def enabled(self):
        return not self.reason


@dataclass
class GroupOffer:
    """Everything offered when launching under one group."""

    group: object
    instance_types: list = field(default_factory=list)  # entitlements.Offer
    images: list = field(default_factory=list)  # entitlements.Offer
    datasets: list = field(default_factory=list)  # entitlements.DatasetMount
    skipped_datasets: list = field(default_factory=list)
    # (entitlements.DatasetMount, reason): granted, but this hub cannot mount them (the user is told)
    unavailable_datasets: list = field(default_factory=list)
    user_quota: object = None
    project_quota: object = None
    shared_volumes: list = field(default_factory=list)
    volume_error: str = ""

    def instance_type_reason(self, instance_type, user_usage=ZERO, group_usage=ZERO):
        """Why the instance type cannot be launched now ('' when it can)."""
        return "; ".join(sum(self.quota_problems(instance_type, user_usage, group_usage), []))

    def quota_problems(self, instance_type, user_usage=ZERO, group_usage=ZERO):
        """(user quota sentences, group quota sentences) for launching `instance_type` here."""
        quotas = (self.user_quota, self.project_quota)
        return launch_quota_problems(instance_type, self.group, user_usage, group_usage, quotas)

    def instance_type_choices(self, user_usage=ZERO, group_usage=ZERO):
        return [
            Choice(
                o.resource.name,
                o.resource.label,
                o.resource.description,
                self.instance_type_reason(o.resource, user_usage, group_usage),
                o.resource,
            )
            for o in self.instance_types
        ]

    def image_choices(self, instance_type=None):
        choices = []
        for offer in self.images:
            reason = offer.resource.incompatibility(instance_type) if instance_type else ""
            choices.append(
                Choice(
                    offer.resource.name, offer.resource.label, offer.resource.description, reason or "", offer.resource
                )
            )
        return choices


def group_offer(user, group, catalog, prefix="", datasets=None, with_skipped=True, git_sync_on_nodes=True):
    """What launching under `group` offers. `datasets` (a UserDatasets of this user, catalog
    and prefix) lets a caller deciding several groups share the per-user work.
    `git_sync_on_nodes`: whether a git-sync fills git datasets' node folders (else they are unavailable)."""
    datasets = datasets or UserDatasets(user, catalog, prefix)
    granted, skipped = datasets.decisions(group, with_skipped=with_skipped)
    mounted, unavailable = [], []
    for mount in granted:
        reason = dataset_unavailable(mount.dataset, git_sync_on_nodes=git_sync_on_nodes)
        if reason:
            unavailable.append((mount, reason))
        else:
            mounted.append(mount)
    offer = GroupOffer(
        group=group,
        instance_types=offered_instance_types(user, group, catalog, prefix, datasets.everyone),
        images=offered_images(user, group, catalog, prefix, datasets.everyone),
        datasets=mounted,
        skipped_datasets=skipped,
        unavailable_datasets=unavailable,
        user_quota=user_quota(group),
        project_quota=project_quota(group),
    )
    try:
        offer.shared_volumes = shared_volumes_for_launch(group, datasets.groups)
    except ConfigurationError as e:
        offer.volume_error = e.message
    return offer


@dataclass
class LaunchPlan:
    user: object
    group: object
    instance_type: object
    image: object
    image_url: str
    datasets: list
    shared_volumes: list
    env: dict
    volumes: list
    volume_mounts: list
    home_symlinks: list
    links: list = field(default_factory=list)  # (target, link path): git checkouts at <mountRoot><name>
    dropped: list = field(default_factory=list)  # remembered choices dropped quietly
    user_env: dict = field(default_factory=dict)  # the user's own variables (the hub's win)
    safe_mode: bool = False  # start without the start-up hooks, the home volume one folder deeper
    notices: list = field(default_factory=list)  # what the user is told while the server starts

    @property
    def options(self):
        options = {"group": self.group.name, "instance_type": self.instance_type.name, "image": self.image.name}
        if self.user_env:
            options["env"] = dict(self.user_env)
        if self.safe_mode:
            options["safe_mode"] = True
        return options

    def dataset_claims(self):
        """{dataset name: PVC} of the mounted datasets that need a claim."""
        return dataset_claims(self.datasets)


def missing_dataset_notice(dataset, claim):
    return (
        f"Dataset '{dataset.label}' is not mounted: its volume ({claim}) does not exist. "
        "The server starts without it; please tell your administrator."
    )


def unavailable_dataset_notice(dataset, reason):
    return (
        f"Dataset '{dataset.label}' is not mounted: {reason}. "
        "The server starts without it; please tell your administrator."
    )


def leave_out_datasets(plan, missing):
    """The plan without the datasets named in `missing` ({name: claim}), each with a notice.

    PrimeHub's admission webhook dropped a dataset whose volume was missing rather than let the
    pod hang in Pending; the user is told here instead of finding out by its absence.
    """
    if not missing:
        return plan
    gone = {volume_name("dataset", name) for name in missing}
    left_out = [m for m in plan.datasets if m.dataset.name in missing]
    gone_paths = {m.dataset.mount_path for m in left_out}
    return replace(
        plan,
        datasets=[m for m in plan.datasets if m.dataset.name not in missing],
        volumes=[v for v in plan.volumes if v.get("name") not in gone],
        volume_mounts=[m for m in plan.volume_mounts if m.get("name") not in gone],
        home_symlinks=[p for p in plan.home_symlinks if p not in gone_paths],
        notices=plan.notices + [missing_dataset_notice(m.dataset, missing[m.dataset.name]) for m in left_out],
    )


def _pick(name, choices, *, strict, kind, where, dropped):
    """The chosen entry, or the first usable one when nothing (or, leniently, nothing valid) was chosen."""
    by_name = {c.name: c for c in choices}
    if name:
        choice = by_name.get(name)
        if choice is None:
            if strict:
                raise Refused(f"You are not allowed to use {kind} '{name}' {where}.")
            dropped.append(f"{kind} '{name}' is no longer available {where}")
        elif not choice.enabled:
            if strict:
                error = QuotaExceeded if "quota" in choice.reason else Refused
                raise error(f"Cannot launch with {kind} '{choice.label}': {choice.reason}.")
            dropped.append(f"{kind} '{name}': {choice.reason}")
        else:
            return choice
    for choice in choices:
        if choice.enabled:
            return choice
    if not choices:
        raise Refused(f"No {kind} is available {where}. Please ask your administrator to grant one.")
    reasons = "; ".join(f"{c.label}: {c.reason}" for c in choices)
    error = QuotaExceeded if "quota" in reasons else Refused
    raise error(f"No {kind} can be launched {where}: {reasons}.")


def _choose_group(user, options, *, strict, dropped):
    """The launch group asked for, else (nothing asked, or leniently, no longer a member) the first.

    Returns (group, options): a remembered instance type or image belonged to a dropped group, so
    they are forgotten with it.
    """
    groups = launch_groups(user)
    if not groups:
        raise NoLaunchGroup(NO_GROUP_MESSAGE)
    asked = options.get("group")
    if not asked:
        return groups[0], options
    group = find_launch_group(user, asked)
    if group is not None:
        return group, options
    if strict:
        raise Refused(f"You are not a member of group '{asked}', so you cannot launch under it.")
    dropped.append(f"group '{asked}' is no longer one of your groups")
    return groups[0], {k: v for k, v in options.items() if k in ("env", "safe_mode")}


def _mounts(offer, *, git_sync_host_root, host_path_prefixes, mount_roots, log):
    """(volumes, volume mounts, dataset environment, home symlinks, links) of the datasets and group volumes."""
    pieces = datasets_pieces(
        offer.datasets,
        git_sync_host_root=git_sync_host_root,
        host_path_prefixes=host_path_prefixes,
        mount_roots=mount_roots,
        log=log,
    )
    volumes, mounts = list(pieces.volumes), list(pieces.volume_mounts)
    # folders that get links to git checkouts (e.g. /datasets) must be writable: an empty folder of
    # the pod's own; the other datasets are mounted inside it as before
    for number, root in enumerate(sorted({link.rsplit("/", 1)[0] for _, link in pieces.links})):
        volumes.append({"name": f"primehub-links-{number}", "emptyDir": {}})
        mounts.append({"name": f"primehub-links-{number}", "mountPath": root})
    volumes += [shared.volume for shared in offer.shared_volumes]
    mounts += [shared.volume_mount for shared in offer.shared_volumes]
    return volumes, mounts, dict(pieces.env), pieces.home_symlinks, pieces.links


def _platform_env(user, group, instance_type, image):
    """The hub's own variables; they win over dataset variables of the same name."""
    env = {
        "GROUP_NAME": group.name,
        "GROUP_ID": group.id or "",
        "INSTANCE_TYPE": instance_type.name,
        "IMAGE_NAME": image.name,
        "TZ": (user.attributes or {}).get("timezone") or "UTC",
    }
    if not instance_type.has_gpu:
        # a GPU node's devices stay hidden from a launch without GPUs
        env["NVIDIA_VISIBLE_DEVICES"] = "none"
    return env


def plan_launch(
    user,
    catalog,
    raw_options,
    *,
    prefix="",
    strict=True,
    git_sync_host_root=DEFAULT_GIT_SYNC_HOST_ROOT,
    host_path_prefixes=(),
    mount_roots=DEFAULT_MOUNT_ROOTS,
    git_sync_on_nodes=True,
    log=None,
):
    """Decide the launch, or raise a PrimeHubError with the sentence the user should read.

    `host_path_prefixes`: the node folders hostPath datasets may mount (none by default);
    `mount_roots`: where in the container datasets may be mounted; `git_sync_on_nodes`: whether
    git datasets can be mounted (else they are left out with a notice).
    """
    dropped = []
    group, options = _choose_group(user, normalize_options(raw_options, strict=strict), strict=strict, dropped=dropped)
    offer = group_offer(user, group, catalog, prefix, with_skipped=False, git_sync_on_nodes=git_sync_on_nodes)
    if offer.volume_error:
        raise ConfigurationError(offer.volume_error)
    instance_type, image = _choose_resources(offer, options, group, strict=strict, dropped=dropped)
    volumes, mounts, env, home_symlinks, links = _mounts(
        offer,
        git_sync_host_root=git_sync_host_root,
        host_path_prefixes=host_path_prefixes,
        mount_roots=mount_roots,
        log=log,
    )
    env.update(_platform_env(user, group, instance_type, image))
    user_env = user_env_for_launch(options.get("env"), env, strict=strict)
    # the user's variables first, so that the hub's own can never be replaced
    env = {**user_env, **env}
    return LaunchPlan(
        user=user,
        group=group,
        instance_type=instance_type,
        image=image,
        image_url=image.url_for(instance_type),
        datasets=offer.datasets,
        shared_volumes=offer.shared_volumes,
        env=env,
        volumes=volumes,
        volume_mounts=mounts,
        home_symlinks=home_symlinks,
        links=links,
        dropped=dropped,
        user_env=user_env,
        safe_mode=bool(options.get("safe_mode")),
        notices=[unavailable_dataset_notice(m.dataset, reason) for m, reason in offer.unavailable_datasets],
    )


def _choose_resources(offer, options, group, *, strict, dropped):
    """The instance type, then an image that can run on it, from what the group offers."""
    where = f"in group '{group.label}'"
    instance_type = _pick(
        options.get("instance_type"),
        offer.instance_type_choices(),
        strict=strict,
        kind="instance type",
        where=where,
        dropped=dropped,
    ).resource
    image = _pick(
        options.get("image"),
        offer.image_choices(instance_type),
        strict=strict,
        kind="image",
        where=f"{where} with instance type '{instance_type.label}'",
        dropped=dropped,
    ).resource
    return instance_type, image
