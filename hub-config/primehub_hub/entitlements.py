"""Who may launch what: grants from realm roles, launch groups, offers and dataset mounts.

Pure functions over plain data. `UserInfo` can be filled from the Keycloak admin API
(keycloak.py), from a realm export file (realm_export.py) or directly in tests.

Rules (docs/behaviour.md, "Who may launch what"):
- grant roles `it:<name>`, `img:<name>`, `ds:<name>`, `ds:rw:<name>`, optionally as `P:it:<name>`;
- the `everyone` group's grants apply to every group of every user; it is never a launch group;
- offers for a launch group = its grants + everyone's, restricted to existing resources;
- datasets mounted under G = granted to G, everyone, or any other group of the user, except
  launchGroupOnly datasets, which need a grant from G or everyone; writable iff G or everyone
  grants `ds:rw:`.
"""

import functools
from dataclasses import asdict, dataclass, field

EVERYONE = "everyone"
ADMIN_CLIENT = "realm-management"
ADMIN_ROLE = "realm-admin"


@dataclass
class Group:
    name: str
    display_name: str = ""
    attributes: dict = field(default_factory=dict)
    realm_roles: list = field(default_factory=list)
    id: str = ""
    # Keycloak's path (/parent/name): names repeat across parents, paths and ids do not
    path: str = ""

    @property
    def label(self):
        return self.display_name or self.name

    @property
    def key(self):
        return self.id or self.path or self.name


@dataclass
class UserInfo:
    """A user as the hub sees them.

    `groups` holds the user's groups and, when the realm has one, the `everyone` group, whether
    or not the user is a member of it: its grants are global.
    """

    username: str
    attributes: dict = field(default_factory=dict)
    groups: list = field(default_factory=list)
    is_admin: bool = False
    id: str = ""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        groups = [Group(**g) for g in data.get("groups") or []]
        return cls(
            username=data["username"],
            attributes=dict(data.get("attributes") or {}),
            groups=groups,
            is_admin=bool(data.get("is_admin")),
            id=data.get("id") or "",
        )


@dataclass(frozen=True)
class Grants:
    instance_types: frozenset = frozenset()
    images: frozenset = frozenset()
    # dataset name -> writable
    datasets: tuple = ()

    @property
    def dataset_access(self):
        return dict(self.datasets)


def normalize_prefix(prefix):
    return (prefix or "").strip().rstrip(":")


def parse_grants(roles, prefix=""):
    """Grants from role names. With a prefix, roles without it are not grants of this hub."""
    roles = tuple(r for r in roles or () if isinstance(r, str))
    return _parse_grants(roles, normalize_prefix(prefix))


GRANT_KINDS = {"it": "InstanceType", "img": "Image", "ds": "Dataset"}


def parse_grant(role, prefix=""):
    """(kind, name, writable) for a grant role, None for any other role (offline_access, ...).

    `kind` is "it", "img" or "ds". The realm tools (scripts/realm) read grants with this too.
    """
    prefix = normalize_prefix(prefix)
    lead = f"{prefix}:" if prefix else ""
    if not isinstance(role, str) or not role.startswith(lead):
        return None
    kind, sep, name = role[len(lead) :].partition(":")
    if not sep or kind not in GRANT_KINDS:
        return None
    if kind == "ds":
        mode, sep2, rest = name.partition(":")
        if sep2:
            # `ds:rw:<name>`; resource names never contain ':', so nothing else is a grant
            return (kind, rest, True) if mode == "rw" and rest and ":" not in rest else None
    return (kind, name, False) if name else None


# A form render asks for every group's grants once per launch group (datasets granted elsewhere
# count too), so a user in many groups would re-parse the same role lists groups² times. Grants
# are immutable and depend only on the role names, which makes them safe to share.
@functools.lru_cache(maxsize=4096)
def _parse_grants(roles, prefix):
    instance_types, images, datasets = set(), set(), {}
    for role in roles:
        grant = parse_grant(role, prefix)
        if grant is None:
            continue
        kind, name, writable = grant
        if kind == "it":
            instance_types.add(name)
        elif kind == "img":
            images.add(name)
        elif writable:
            datasets[name] = True
        else:
            datasets.setdefault(name, False)
    return Grants(frozenset(instance_types), frozenset(images), tuple(sorted(datasets.items())))


def is_everyone(name, path=""):
    """The global group is the top-level `everyone`; a subgroup of that name is an ordinary group."""
    return name == EVERYONE and (path or f"/{EVERYONE}") == f"/{EVERYONE}"


def everyone_group(user):
    for group in user.groups:
        if is_everyone(group.name, group.path):
            return group
    return None


def launch_groups(user):
    """The user's groups except `everyone`, de-duplicated by Keycloak id (or path), sorted by name."""
    seen = {}
    for group in user.groups:
        if not is_everyone(group.name, group.path) and group.key not in seen:
            seen[group.key] = group
    return sorted(seen.values(), key=lambda g: (g.name, g.path))


def find_launch_group(user, name):
    """The launch group called `name`; ConfigurationError when two of the user's groups carry it
    (subgroups of different parents), since a name alone cannot say which one is meant."""
    found = [g for g in launch_groups(user) if g.name == name]
    if len(found) > 1:
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"You are in {len(found)} groups named '{name}' ({', '.join(g.path or g.key for g in found)}); "
            "the hub cannot tell them apart. Please ask your administrator to rename one of them."
        )
    return found[0] if found else None


def _grants(group, prefix):
    return parse_grants(group.realm_roles if group else (), prefix)


@dataclass(frozen=True)
class Offer:
    """A resource offered under a launch group, and which groups' grants offer it."""

    resource: object
    granted_by: tuple


def grant_sources(groups, prefix, pick):
    """{resource name: [names of the groups granting it]} over `groups` (None entries skipped).

    `pick` selects the kind from a group's Grants (e.g. `lambda g: g.instance_types`). The form's
    offers and `explain`'s "granted to ..." both come from here.
    """
    sources = {}
    for source in groups:
        if source is None:
            continue
        for name in pick(_grants(source, prefix)):
            sources.setdefault(name, [])
            if source.name not in sources[name]:
                sources[name].append(source.name)
    return sources


def _offers(available, group, user, prefix, pick, everyone=False):
    everyone = everyone_group(user) if everyone is False else everyone
    sources = grant_sources((group, everyone), prefix, pick)
    # Walking the grants, not the catalog, keeps the cost at what the group is offered; grants
    # without a resource fall out here. Sorted by display name, case-insensitively, as PrimeHub's
    # form sorted them: the first usable entry is then the default choice, as in PrimeHub.
    offers = [Offer(available[name], tuple(sources[name])) for name in sources if name in available]
    return sorted(offers, key=lambda o: (o.resource.label.lower(), o.resource.name))


def offered_instance_types(user, group, catalog, prefix="", everyone=False):
    return _offers(catalog.instance_types, group, user, prefix, lambda g: g.instance_types, everyone)


def offered_images(user, group, catalog, prefix="", everyone=False):
    return _offers(catalog.images, group, user, prefix, lambda g: g.images, everyone)


@dataclass(frozen=True)
class DatasetMount:
    dataset: object
    writable: bool
    granted_by: tuple


@dataclass(frozen=True)
class SkippedDataset:
    dataset: object
    reason: str


class UserDatasets:
    """Which of the user's groups grant which dataset, computed once per user and catalog.

    Deciding the mounts of one launch group then costs that group's own grants plus the
    datasets mounted under every group, not every grant of every group of the user: a form
    for a user in many groups would otherwise cost groups x (all their grants).
    """

    def __init__(self, user, catalog, prefix=""):
        self.catalog = catalog
        self.prefix = prefix
        self.everyone = everyone_group(user)
        self.in_everyone = _grants(self.everyone, prefix).dataset_access
        self.groups = launch_groups(user)
        # dataset name -> the launch groups granting it, in launch-group order (groups, not names:
        # two groups may share a name)
        self.granters = {}
        for other in self.groups:
            for name in _grants(other, prefix).dataset_access:
                self.granters.setdefault(name, []).append(other)
        # granted somewhere and not launch-group-only: mounted under every launch group
        self.everywhere = {
            name for name in self.granters if name in catalog.datasets and not catalog.datasets[name].launch_group_only
        }

    def decisions(self, group, with_skipped=True):
        """(mounted, skipped) for a launch under `group`; skipped is [] unless asked for."""
        datasets = self.catalog.datasets
        in_group = _grants(group, self.prefix).dataset_access
        in_everyone = self.in_everyone
        near = (set(in_group) | set(in_everyone)) & datasets.keys()
        mounted = []
        for name in sorted(near | self.everywhere):
            by = []
            if name in in_group:
                by.append(group.name)
            if name in in_everyone:
                by.append(EVERYONE)
            by.extend(g.name for g in self.granters.get(name, ()) if g.key != group.key)
            writable = bool(in_group.get(name) or in_everyone.get(name))
            mounted.append(DatasetMount(datasets[name], writable, tuple(by)))
        skipped = []
        if with_skipped:
            for name in sorted(self.granters.keys() - near - self.everywhere):
                elsewhere = [g.name for g in self.granters[name] if g.key != group.key]
                if name in datasets and elsewhere:
                    skipped.append(
                        SkippedDataset(
                            datasets[name],
                            f"launch-group-only; granted to {', '.join(elsewhere)}, not to {group.name}",
                        )
                    )
        return mounted, skipped


def dataset_decisions(user, group, catalog, prefix=""):
    """(mounted, skipped) datasets for a launch under `group`.

    `skipped` lists granted datasets that are not mounted under this group, with the reason.
    """
    return UserDatasets(user, catalog, prefix).decisions(group)


def mounted_datasets(user, group, catalog, prefix=""):
    return dataset_decisions(user, group, catalog, prefix)[0]


def has_admin_role(client_roles):
    """True when `client_roles` ({client: [roles]}) holds realm-management's realm-admin."""
    return ADMIN_ROLE in set((client_roles or {}).get(ADMIN_CLIENT) or ())


def first_value(value):
    """Keycloak attributes are lists of strings; the data model uses the first value."""
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def flatten_attributes(attributes):
    return {str(k): first_value(v) for k, v in (attributes or {}).items()}
